/**
 * An `Identity` kernel for tfjs's wasm backend that shares its input's data, as tfjs's cpu
 * backend does, instead of copying it as tfjs 4.22.0's wasm kernel does.
 *
 * tfjs's engine calls `Identity` (through `tf.clone`) for every tensor a kernel saves for
 * its gradient while gradients are recorded: a LeNet step at batch 20 makes about 35 such
 * copies (each conv activation three times, each weight once), ≈0.4 ms of a 6 ms step on
 * this machine. Sharing is safe because tfjs tensors are immutable: no wasm kernel writes
 * into its inputs, and a `Variable`'s `assign` points the variable at new data rather than
 * overwriting the old. The wasm backend counts references per data buffer (its `Reshape`
 * shares data the same way), so the buffer is freed when its last tensor is disposed.
 *
 * `Cast` to the dtype a tensor already has is the same identity (tfjs's ReLU gradient casts
 * its float32 step mask to float32); it shares the data too. Strings, and casts that change
 * the dtype, go to the kernel each replaced (the `fallback`).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { WasmBackend, WasmKernelReplacement } from "./wasm_kernel.ts";
import { type KernelArgs, wasmReplacement } from "./wasm_kernel.ts";

/**
 * `x` itself on the wasm backend: a new tensor record over x's data, whose reference count
 * goes up by one.
 *
 * @param args The kernel's arguments: inputs `{ x }`.
 * @param fallback tfjs's wasm `Identity`, for strings.
 * @returns The output's tensor info (x's data id, shape and dtype).
 */
function _identity(args: KernelArgs, fallback: tf.KernelFunc): tf.TensorInfo {
  const { x } = args.inputs as { x: tf.TensorInfo };
  if (x.dtype === "string") return fallback(args) as tf.TensorInfo;
  (args.backend as unknown as WasmBackend).incRef(x.dataId);
  return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
}

/** `Cast`: the identity when the dtype does not change. */
function _cast(args: KernelArgs, fallback: tf.KernelFunc): tf.TensorInfo {
  const { x } = args.inputs as { x: tf.TensorInfo };
  const { dtype } = args.attrs as unknown as tf.CastAttrs;
  if (x.dtype !== dtype) return fallback(args) as tf.TensorInfo;
  return _identity(args, fallback);
}

/**
 * The registration record that replaces tfjs's wasm `Identity` with the sharing one,
 * keeping tfjs's as the fallback for strings.
 *
 * @param original tfjs's wasm `Identity`, as `tf.getKernel("Identity", "wasm")` returns it.
 * @returns The kernel config to register in its place.
 * @throws If `original` is not wasm's `Identity`.
 *
 * @example A clone shares the data, and disposing one tensor keeps the other's
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { initBackend } from "../backend.ts";
 *
 * await initBackend("wasm");
 * const x = tf.tensor1d([1, -0, 3]);
 * const y = tf.clone(x);
 * assert.equal(y.dataId, x.dataId);
 * x.dispose();
 * assert.deepEqual(Array.from(await y.data()), [1, -0, 3]);
 * y.dispose();
 * ```
 */
export function identityWasmConfig(original: tf.KernelConfig): WasmKernelReplacement {
  return wasmReplacement(
    original,
    [tf.Identity],
    (_name, args, fallback) => _identity(args, fallback),
  );
}

/**
 * The registration record that replaces tfjs's wasm `Cast`: a cast to the dtype the tensor
 * has shares its data; other casts go to tfjs's.
 *
 * @param original tfjs's wasm `Cast`.
 * @returns The kernel config to register in its place.
 * @throws If `original` is not wasm's `Cast`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { initBackend } from "../backend.ts";
 *
 * await initBackend("wasm");
 * const x = tf.tensor1d([1.5, 2]);
 * assert.equal(tf.cast(x, "float32").dataId, x.dataId);
 * assert.deepEqual(Array.from(await tf.cast(x, "int32").data()), [1, 2]);
 * ```
 */
export function castWasmConfig(original: tf.KernelConfig): WasmKernelReplacement {
  return wasmReplacement(original, [tf.Cast], (_name, args, fallback) => _cast(args, fallback));
}
