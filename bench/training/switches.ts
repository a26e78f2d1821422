/**
 * The training benchmark's switches: each runs a timed body with one of bnlab's speed-ups off
 * (tfjs's own kernels, tfjs's fused training convolution, no native kernels, one thread, no
 * BLAS) and puts it back after.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../../lib/backend.ts";
import { setBlasEnabled, setBlasSliceThreads, setOpenBlasOrder } from "../../lib/kernels/blas.ts";
import { setUnfusedConvTraining } from "../../lib/kernels/fused_conv_training.ts";
import { setGatheredProducts } from "../../lib/kernels/im2col.ts";
import { GRADIENT_REPLACEMENTS, replacedGradient } from "../../lib/kernels/gradients.ts";
import { replacedWasmKernel, WASM_KERNEL_REPLACEMENTS } from "../../lib/kernels/mod.ts";
import { setNativeEnabled } from "../../lib/kernels/native_library.ts";

/**
 * Runs `body` with tfjs's own wasm kernels and gradients registered in place of the
 * lib/kernels/ ones that replaced them, then puts ours back.
 *
 * @param body What to run.
 * @returns What `body` returns.
 *
 * @example
 * ```ts
 * import { withTfjsKernels } from "./switches.ts";
 *
 * console.log(await withTfjsKernels(async () => 1)); // 1
 * ```
 */
export async function withTfjsKernels<T>(body: () => Promise<T>): Promise<T> {
  await initBackend("wasm");
  const swapped: tf.KernelConfig[] = [];
  const gradients = GRADIENT_REPLACEMENTS.map(([name]) => tf.getGradient(name)!);
  const unfused = setUnfusedConvTraining(false);
  try {
    for (const [name] of GRADIENT_REPLACEMENTS) {
      const original = replacedGradient(name);
      if (original !== undefined) tf.registerGradient(original);
    }
    for (const [kernelName] of WASM_KERNEL_REPLACEMENTS) {
      const original = replacedWasmKernel(kernelName);
      const ours = tf.getKernel(kernelName, "wasm");
      if (original === undefined || ours === undefined) continue;
      tf.unregisterKernel(kernelName, "wasm");
      tf.registerKernel(original);
      swapped.push(ours);
    }
    return await body();
  } finally {
    for (const ours of swapped) {
      tf.unregisterKernel(ours.kernelName, "wasm");
      tf.registerKernel(ours);
    }
    gradients.forEach((config) => tf.registerGradient(config));
    setUnfusedConvTraining(unfused);
  }
}

/**
 * A wrapper that runs its body with `set(value)` in force, then restores what `set` returned.
 *
 * @param set A setter that returns the previous value.
 * @param value The value while the body runs.
 * @returns The wrapper.
 *
 * @example
 * ```ts
 * import { switched } from "./switches.ts";
 *
 * let flag = true;
 * const set = (value: boolean) => { const previous = flag; flag = value; return previous; };
 * console.log(await switched(set, false)(async () => flag), flag); // false true
 * ```
 */
export function switched<V>(
  set: (value: V) => V,
  value: V,
): <T>(body: () => Promise<T>) => Promise<T> {
  return async (body) => {
    const previous = set(value);
    try {
      return await body();
    } finally {
      set(previous);
    }
  };
}

/** Runs a body with tfjs's fused training convolution (the first layer's dx computed). */
export const withFusedConvTraining = switched(setUnfusedConvTraining, false);
/** Runs a body with the native kernels switched off. */
export const withoutNative = switched(setNativeEnabled, false);
/** Runs a body with products' slices on one thread. */
export const withOneThread = switched(setBlasSliceThreads, 1);
/** Runs a body with the BLAS kernels switched off. */
export const withoutBlas = switched(setBlasEnabled, false);
/** Runs a body with the products on OpenBLAS itself instead of bnlab's kernel with its floats. */
export const withoutOpenBlasOrder = switched(setOpenBlasOrder, false);
/** Runs a body with every convolution writing its cols matrix (no gathered products). */
export const withoutGatheredProducts = switched(setGatheredProducts, false);
