/**
 * The cases of tests/wasm_heap_growth_test.ts, run each in a fresh worker by
 * tests/_heap_growth_worker.ts: an op of bnlab's wasm kernels on inputs made on cpu, the first
 * sized to the whole wasm heap, so that copying it onto the heap must grow the heap.
 */
import * as tf from "@tensorflow/tfjs";

/** One op and the shapes of its inputs. */
export interface HeapGrowthCase {
  name: string;
  /** The inputs' shapes for `rows`; the first input holds 8·`rows` floats. */
  shapes: (rows: number) => number[][];
  op: (...inputs: tf.Tensor[]) => tf.Tensor;
  /** What the kernel needs to run: the native library, or BLAS. */
  needs: "native" | "blas";
}

export const HEAP_GROWTH_CASES: readonly HeapGrowthCase[] = [
  {
    name: "Add with a per-channel operand",
    shapes: (r) => [[r, 8], [8]],
    op: (a, b) => tf.add(a, b),
    needs: "native",
  },
  { name: "Relu", shapes: (r) => [[r, 8]], op: (x) => tf.relu(x), needs: "native" },
  {
    name: "FusedBatchNorm",
    shapes: (r) => [[r, 8], [8], [8], [8], [8]],
    op: (x, m, v, o, s) => tf.batchNorm(x, m, tf.abs(v), o, s, 1e-3),
    needs: "native",
  },
  {
    name: "MaxPool 2×2",
    shapes: (r) => [[Math.ceil(r / 64), 8, 8, 8]],
    op: (x) => tf.maxPool(x as tf.Tensor4D, 2, 2, "valid"),
    needs: "native",
  },
  {
    name: "MatMul",
    shapes: (r) => [[r, 8], [8, 4]],
    op: (a, b) => tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D),
    needs: "blas",
  },
  {
    name: "fused MatMul with a bias and ReLU",
    shapes: (r) => [[r, 8], [8, 4], [4]],
    op: (a, b, bias) =>
      tf.fused.matMul({ a: a as tf.Tensor2D, b: b as tf.Tensor2D, bias, activation: "relu" }),
    needs: "blas",
  },
  {
    name: "Conv2D 5×5 (im2col and BLAS)",
    shapes: (r) => [[Math.ceil(r / 98), 28, 28, 1], [5, 5, 1, 4]],
    op: (x, f) => tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, 1, "valid"),
    needs: "blas",
  },
  {
    name: "Conv2D 3×3 with padding (direct)",
    shapes: (r) => [[Math.ceil(r / 392), 14, 14, 16], [3, 3, 16, 16]],
    op: (x, f) => tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, 1, "same"),
    needs: "native",
  },
];
