/**
 * The one call shape the native normalization kernels share (`batch_norm_native.ts`,
 * `group_norm_native.ts`): the C function reads its tensors at their float offsets on the wasm
 * heap, inputs first, then the float32 outputs it writes, then its sizes (and epsilon, where it
 * takes one), and last the thread count of the matrix products (`blas.ts`), over which it splits
 * a large call without changing any float.
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs";
import { blasSliceThreads } from "./blas.ts";
import { requireNativeKernels } from "./native_library.ts";
import { floatOffsets, heapFloats, type KernelArgs, type WasmBackend } from "./wasm_kernel.ts";

/** The C functions of the normalization kernels, as `native/bnlab_kernels.c` names them. */
export type NativeNormFunction =
  | "bnlab_bn_moments"
  | "bnlab_bn_forward"
  | "bnlab_bn_backward"
  | "bnlab_gn_forward"
  | "bnlab_gn_backward";

/** One call of a native normalization kernel: which C function, on what. */
export interface NativeNormCall {
  /** The C function. */
  readonly run: NativeNormFunction;
  /** The tensors it reads, in its argument order; undefined for an absent optional one (γ, β). */
  readonly inputs: readonly (tf.TensorInfo | undefined)[];
  /** The shapes of the float32 tensors it writes, in its argument order after the inputs. */
  readonly outputs: readonly (readonly number[])[];
  /** The numbers after the tensors (sizes, then epsilon where it takes one), before the threads. */
  readonly numbers: readonly number[];
}

/**
 * Runs one native normalization kernel on the wasm backend: allocates its outputs, then calls
 * the C function with the heap, the inputs' and outputs' offsets, `call.numbers` and the
 * thread count.
 *
 * @param kernelName The calling kernel's registered name, for the error message.
 * @param args The arguments tfjs passed to the kernel (its backend is the wasm backend).
 * @param call The C function and its inputs, output shapes and numbers.
 * @returns The outputs, in the order of `call.outputs`, owned by the caller.
 * @throws If the native kernels are switched off or not built.
 *
 * @example The batch statistics of a [2, 3] input
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { initBackend } from "../backend.ts";
 * import { nativeKernels } from "./native_library.ts";
 * import { runNativeNorm } from "./native_norm.ts";
 *
 * await initBackend("wasm");
 * if (nativeKernels() !== null) {
 *   const x = tf.tensor2d([[1, 2, 3], [3, 4, 5]]);
 *   const [mean, variance] = runNativeNorm("Example", { inputs: {}, backend: tf.backend(), attrs: {} }, {
 *     run: "bnlab_bn_moments",
 *     inputs: [x],
 *     outputs: [[1, 3], [1, 3]],
 *     numbers: [2, 3],
 *   });
 *   assert.deepEqual([...tf.backend().readSync(mean.dataId) as Float32Array], [2, 3, 4]);
 *   assert.deepEqual([...tf.backend().readSync(variance.dataId) as Float32Array], [1, 1, 1]);
 *   [mean, variance].forEach((info) => tf.backend().disposeData(info.dataId));
 *   x.dispose();
 * }
 * ```
 */
export function runNativeNorm(
  kernelName: string,
  args: KernelArgs,
  call: NativeNormCall,
): tf.TensorInfo[] {
  const native = requireNativeKernels(kernelName);
  const backend = args.backend as unknown as WasmBackend;
  const outputs = call.outputs.map((shape) => backend.makeOutput([...shape], "float32"));
  const cFunction = native[call.run] as unknown as (heap: Float32Array, ...args: number[]) => void;
  cFunction(
    heapFloats(backend, call.inputs),
    ...floatOffsets(backend, [...call.inputs, ...outputs]),
    ...call.numbers,
    blasSliceThreads(),
  );
  return outputs;
}
