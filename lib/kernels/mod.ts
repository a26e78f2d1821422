/**
 * The registry of the wasm kernels in `lib/kernels/` that replace slow ones of tfjs's wasm
 * backend; `lib/backend.ts` registers them, and benchmarks read the kernels they replaced.
 *
 * The matrix products and convolutions run on an optimized BLAS through FFI when one is
 * loaded (`blas_kernels.ts`, `blas.ts`): their entries wrap our wasm replacement (or tfjs's
 * kernel, or for `Conv2DBackpropFilter` the one `initBackend` registers) in a BLAS kernel
 * that falls back to it whenever BLAS is off or the case is not one it handles.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { batchMatMulWasmConfig, fusedMatMulWasmConfig } from "./batch_mat_mul.ts";
import {
  batchMatMulBlasConfig,
  conv2dBackpropFilterBlasConfig,
  conv2dBackpropInputBlasConfig,
  conv2dBlasConfig,
  fusedConv2dBlasConfig,
  fusedMatMulBlasConfig,
} from "./blas_kernels.ts";
import { conv2dBackpropInputWasmConfig } from "./conv2d_backprop_input.ts";
import { binaryWasmConfig, fusedBatchNormWasmConfig, reluWasmConfig } from "./elementwise.ts";
import { castWasmConfig, identityWasmConfig } from "./identity.ts";
import { maxPoolWasmConfig } from "./max_pool.ts";
import { maxPoolGradWasmConfig } from "./max_pool_grad.ts";
import { reduceLeadingWasmConfig } from "./reduce_leading.ts";
import { tileWasmConfig } from "./tile.ts";

/** A kernel config that replaces another; it keeps the one it replaced, its fallback. */
export interface WasmKernelReplacement extends tf.KernelConfig {
  /** The kernel registered before, as `tf.getKernel` returned it. */
  readonly original: tf.KernelConfig;
}

/**
 * How to replace wasm kernels, by kernel name: each entry makes the replacing config from
 * the config it replaces. `initBackend("wasm")` applies them; nothing else should. A kernel
 * has one entry: a BLAS kernel wraps the wasm replacement inside the same entry (a second
 * entry would find the first's replacement registered, and skip it).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { WASM_KERNEL_REPLACEMENTS } from "./mod.ts";
 *
 * assert.deepEqual(
 *   WASM_KERNEL_REPLACEMENTS.map(([name]) => name),
 *   [
 *     "Conv2DBackpropInput",
 *     "BatchMatMul",
 *     "_FusedMatMul",
 *     "Tile",
 *     "MaxPoolGrad",
 *     "Conv2D",
 *     "FusedConv2D",
 *     "Conv2DBackpropFilter",
 *     "Sum",
 *     "Mean",
 *     "Identity",
 *     "Cast",
 *     "Add",
 *     "Sub",
 *     "Multiply",
 *     "RealDiv",
 *     "FusedBatchNorm",
 *     "MaxPool",
 *     "Relu",
 *   ],
 * );
 * ```
 */
export const WASM_KERNEL_REPLACEMENTS: ReadonlyArray<
  readonly [string, (original: tf.KernelConfig) => WasmKernelReplacement]
> = [
  [tf.Conv2DBackpropInput, (o) => conv2dBackpropInputBlasConfig(conv2dBackpropInputWasmConfig(o))],
  [tf.BatchMatMul, (o) => batchMatMulBlasConfig(batchMatMulWasmConfig(o))],
  [tf._FusedMatMul, (o) => fusedMatMulBlasConfig(fusedMatMulWasmConfig(o))],
  [tf.Tile, tileWasmConfig],
  [tf.MaxPoolGrad, maxPoolGradWasmConfig],
  [tf.Conv2D, conv2dBlasConfig],
  [tf.FusedConv2D, fusedConv2dBlasConfig],
  // Wraps lib/kernels/conv2d_backprop_filter.ts, which initBackend registers first.
  [tf.Conv2DBackpropFilter, conv2dBackpropFilterBlasConfig],
  // Batch normalization's per-channel sums and means (reduce_leading.ts).
  [tf.Sum, reduceLeadingWasmConfig],
  [tf.Mean, reduceLeadingWasmConfig],
  // Clones (the tensors kernels save for their gradients) share data (identity.ts).
  [tf.Identity, identityWasmConfig],
  [tf.Cast, castWasmConfig],
  // Element-wise arithmetic with per-channel or scalar operands, tfjs's batch norm, in C
  // (elementwise.ts).
  [tf.Add, binaryWasmConfig],
  [tf.Sub, binaryWasmConfig],
  [tf.Multiply, binaryWasmConfig],
  [tf.RealDiv, binaryWasmConfig],
  [tf.FusedBatchNorm, fusedBatchNormWasmConfig],
  // Exact 2×2 pools in C (max_pool.ts).
  [tf.MaxPool, maxPoolWasmConfig],
  // ReLU in C (elementwise.ts).
  [tf.Relu, reluWasmConfig],
];

/**
 * The tfjs wasm kernel that one of ours replaced, for comparisons; undefined when `kernelName`
 * has not been replaced (say, before `initBackend("wasm")`).
 *
 * @param kernelName A kernel name, e.g. `"BatchMatMul"`.
 * @returns The replaced kernel's config, or undefined.
 *
 * @example Time tfjs's own transposed matrix product against ours
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { initBackend } from "../backend.ts";
 * import { replacedWasmKernel } from "./mod.ts";
 *
 * await initBackend("wasm");
 * const original = replacedWasmKernel("BatchMatMul");
 * assert.ok(original !== undefined);
 * const a = tf.ones([3, 2]);
 * const b = tf.ones([3, 4]);
 * const info = original.kernelFunc({
 *   inputs: { a, b },
 *   backend: tf.backend(),
 *   attrs: { transposeA: true, transposeB: false },
 * }) as tf.TensorInfo;
 * const out = tf.engine().makeTensorFromTensorInfo(info);
 * assert.deepEqual(out.shape, [2, 4]);
 * tf.dispose([a, b, out]);
 * ```
 */
export function replacedWasmKernel(kernelName: string): tf.KernelConfig | undefined {
  const current = tf.getKernel(kernelName, "wasm") as Partial<WasmKernelReplacement> | undefined;
  return current?.original;
}
