/**
 * `MaxPool` for tfjs's wasm backend in C for the 2×2, stride-2 pools that tile their input
 * exactly (LeNet's two), replacing tfjs 4.22.0's XNNPACK pooling there (0.06–0.09 ms on
 * [20, 24, 24, 20], twice the C loop's time).
 *
 * Each output is its window's largest value by strict comparisons from −∞, the rule of
 * tfjs's cpu backend and of `MaxPoolGrad`'s argmax (`max_pool_grad.ts`): NaN is never
 * chosen, and a window of only NaN and −∞ gives −∞. Other pools, dtypes other than
 * float32, or the native kernels off or not built go to the kernel it replaced.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { WasmKernelReplacement } from "./wasm_kernel.ts";
import { nativeKernels } from "./native_library.ts";
import {
  floatOffset,
  heapFloats,
  type KernelArgs,
  type WasmBackend,
  wasmReplacement,
} from "./wasm_kernel.ts";

/**
 * Whether a pool is one the C kernels handle: a 2×2 window at stride 2, no padding, over an
 * input whose height and width are twice the output's (so windows tile it exactly).
 *
 * @param info The pool's geometry, from `tf.backend_util.computePool2DInfo`.
 * @returns True for such pools.
 *
 * @example LeNet's pools tile; a 3×3 window does not qualify
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { isExactPool2x2 } from "./max_pool.ts";
 *
 * const pool = (size: number) =>
 *   tf.backend_util.computePool2DInfo([20, 24, 24, 20], size, 2, 1, "valid");
 * assert.equal(isExactPool2x2(pool(2)), true);
 * assert.equal(isExactPool2x2(pool(3)), false);
 * ```
 */
export function isExactPool2x2(info: tf.backend_util.Conv2DInfo): boolean {
  return info.filterHeight === 2 && info.filterWidth === 2 && info.strideHeight === 2 &&
    info.strideWidth === 2 && info.dilationHeight === 1 && info.dilationWidth === 1 &&
    info.padInfo.top === 0 && info.padInfo.left === 0 &&
    info.inHeight === 2 * info.outHeight && info.inWidth === 2 * info.outWidth &&
    info.inChannels === info.outChannels;
}

function _maxPool(args: KernelArgs, fallback: tf.KernelFunc): tf.TensorInfo {
  const { x } = args.inputs as { x?: tf.TensorInfo };
  if (x == null) {
    throw new Error(
      `MaxPool (wasm): inputs must be { x }, received { ${Object.keys(args.inputs).join(", ")} }`,
    );
  }
  const native = nativeKernels();
  if (native === null || x.dtype !== "float32" || x.shape.length !== 4) {
    return fallback(args) as tf.TensorInfo;
  }
  const attrs = args.attrs as unknown as tf.MaxPoolAttrs;
  const info = tf.backend_util.computePool2DInfo(
    x.shape as [number, number, number, number],
    attrs.filterSize,
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
  );
  if (!isExactPool2x2(info) || tf.util.sizeFromShape(info.outShape) === 0) {
    return fallback(args) as tf.TensorInfo;
  }
  const backend = args.backend as unknown as WasmBackend;
  const out = backend.makeOutput(info.outShape, "float32");
  native.bnlab_max_pool_2x2(
    heapFloats(backend, [x]),
    floatOffset(backend, x),
    floatOffset(backend, out),
    info.batchSize,
    info.outHeight,
    info.outWidth,
    info.outChannels,
  );
  return out;
}

/**
 * The registration record that replaces tfjs's wasm `MaxPool` with the C kernel for exact
 * 2×2 pools, keeping tfjs's for the others.
 *
 * @param original tfjs's wasm `MaxPool`.
 * @returns The kernel config to register in its place.
 * @throws If `original` is not wasm's `MaxPool`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { initBackend } from "../backend.ts";
 *
 * await initBackend("wasm");
 * const x = tf.tensor4d([1, 5, 3, NaN], [1, 2, 2, 1]);
 * assert.deepEqual(Array.from(await tf.maxPool(x, 2, 2, "valid").data()), [5]);
 * ```
 */
export function maxPoolWasmConfig(original: tf.KernelConfig): WasmKernelReplacement {
  return wasmReplacement(
    original,
    [tf.MaxPool],
    (_name, args, fallback) => _maxPool(args, fallback),
  );
}
