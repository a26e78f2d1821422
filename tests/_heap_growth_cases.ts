/**
 * The cases of tests/wasm_heap_growth_test.ts, run each in a fresh worker by
 * tests/_heap_growth_worker.ts: one of bnlab's wasm kernels, called through `runKernel` (so
 * that no op copies its inputs first) on inputs made on cpu, the first as large as the whole
 * wasm heap, so that copying it onto the heap must grow the heap.
 */
import * as tf from "@tensorflow/tfjs";
import { RUNNING_AVERAGE } from "../lib/named_kernels.ts";

/** One kernel call and its inputs. */
export interface HeapGrowthCase {
  name: string;
  /** The inputs, made on the current (cpu) backend; the first holds 8·`rows` floats. */
  inputs: (rows: number) => tf.Tensor[];
  /** The kernel's name, its inputs by name, and its attributes. */
  kernel: string;
  names: string[];
  attrs?: Record<string, unknown>;
  /** What the kernel needs to run: the native library, or BLAS. */
  needs: "native" | "blas";
}

const _uniform = (shape: number[], low = -1, high = 1, seed = 0) =>
  tf.randomUniform(shape, low, high, "float32", seed);

export const HEAP_GROWTH_CASES: readonly HeapGrowthCase[] = [
  {
    name: "Add with a per-channel operand",
    inputs: (r) => [_uniform([r, 8]), _uniform([8], -1, 1, 1)],
    kernel: "Add",
    names: ["a", "b"],
    needs: "native",
  },
  {
    name: "Relu",
    inputs: (r) => [_uniform([r, 8])],
    kernel: "Relu",
    names: ["x"],
    needs: "native",
  },
  {
    name: "FusedBatchNorm",
    inputs: (r) => [
      _uniform([r, 8]),
      _uniform([8], -1, 1, 1),
      _uniform([8], 0.5, 1.5, 2),
      _uniform([8], -1, 1, 3),
      _uniform([8], 0.5, 1.5, 4),
    ],
    kernel: "FusedBatchNorm",
    names: ["x", "mean", "variance", "offset", "scale"],
    attrs: { varianceEpsilon: 1e-3 },
    needs: "native",
  },
  {
    name: "MaxPool 2×2",
    inputs: (r) => [_uniform([Math.ceil(r / 64), 8, 8, 8])],
    kernel: "MaxPool",
    names: ["x"],
    attrs: { filterSize: 2, strides: 2, pad: "valid" },
    needs: "native",
  },
  {
    name: "MaxPoolGrad 2×2",
    inputs: (r) => {
      const n = Math.ceil(r / 64);
      return [_uniform([n, 8, 8, 8]), _uniform([n, 4, 4, 8], -1, 1, 1)];
    },
    kernel: "MaxPoolGrad",
    names: ["input", "dy"],
    attrs: { filterSize: 2, strides: 2, pad: "valid" },
    needs: "native",
  },
  {
    name: "Sum over the leading axis",
    inputs: (r) => [_uniform([r, 8])],
    kernel: "Sum",
    names: ["x"],
    attrs: { axis: [0], keepDims: false },
    needs: "native",
  },
  {
    name: "Tile as a broadcast",
    inputs: (r) => [_uniform([1, 8 * r])],
    kernel: "Tile",
    names: ["x"],
    attrs: { reps: [2, 1] },
    needs: "native",
  },
  {
    name: "bnlab's running average",
    inputs: (r) => [_uniform([8 * r]), _uniform([8 * r], -1, 1, 1)],
    kernel: RUNNING_AVERAGE,
    names: ["running", "value"],
    attrs: { keep: 0.9, complement: 1 - 0.9, factor: 1 },
    needs: "native",
  },
  {
    name: "BatchMatMul",
    inputs: (r) => [_uniform([1, r, 8]), _uniform([1, 8, 4], -1, 1, 1)],
    kernel: "BatchMatMul",
    names: ["a", "b"],
    attrs: { transposeA: false, transposeB: false },
    needs: "blas",
  },
  {
    name: "_FusedMatMul with a bias and ReLU",
    inputs: (r) => [_uniform([1, r, 8]), _uniform([1, 8, 4], -1, 1, 1), _uniform([4], -1, 1, 2)],
    kernel: "_FusedMatMul",
    names: ["a", "b", "bias"],
    attrs: { transposeA: false, transposeB: false, activation: "relu" },
    needs: "blas",
  },
  {
    name: "Conv2D 5×5 (im2col and BLAS)",
    inputs: (r) => [_uniform([Math.ceil(r / 98), 28, 28, 1]), _uniform([5, 5, 1, 4], -1, 1, 1)],
    kernel: "Conv2D",
    names: ["x", "filter"],
    attrs: { strides: 1, pad: "valid", dataFormat: "NHWC", dilations: 1 },
    needs: "blas",
  },
  {
    name: "Conv2D 3×3 with padding (direct)",
    inputs: (r) => [
      _uniform([Math.ceil(r / 392), 14, 14, 16]),
      _uniform([3, 3, 16, 16], -1, 1, 1),
    ],
    kernel: "Conv2D",
    names: ["x", "filter"],
    attrs: { strides: 1, pad: "same", dataFormat: "NHWC", dilations: 1 },
    needs: "native",
  },
];
