/**
 * Group normalization (and layer normalization, its case of one group) over channels-last
 * inputs as two wasm-backend kernels in C (`native/bnlab_kernels.c`): the forward pass with
 * each sample's group statistics from one pass of sums in double, and the analytic backward
 * pass, each one kernel call instead of the dozen tfjs ops of `lib/norms/group_norm_ops.ts`'
 * analytic op (whose closed forms they compute). They are registered under the names of
 * `lib/named_kernels.ts` with an `accepts` predicate ({@linkcode groupNormUsable});
 * `groupNormalize` calls them by name (through `lib/norms/group_norm_kernels.ts`) and runs
 * its tfjs ops when they decline. tests/group_norm_native_test.ts checks the two agree.
 *
 * x is read as [samples, positions, channels]: the first axis is the sample, the last the
 * channels, every axis between them a position. Calls of 16,384 values or more run in two
 * halves of the samples on the matrix products' threads (`blas.ts`); the floats do not depend
 * on the thread count.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { nativeKernels } from "./native_library.ts";
import { runNativeNorm } from "./native_norm.ts";
import {
  GROUP_NORM_BACKWARD,
  GROUP_NORM_FORWARD,
  type GroupNormAttrs,
  type NamedKernelConfig,
} from "../named_kernels.ts";
import type { KernelArgs } from "./wasm_kernel.ts";

export { GROUP_NORM_BACKWARD, GROUP_NORM_FORWARD };

/** [samples, positions, channels] of a channels-last shape. */
function _dims(shape: number[]): [number, number, number] {
  const samples = shape[0];
  const channels = shape[shape.length - 1];
  return [samples, tf.util.sizeFromShape(shape) / (samples * channels), channels];
}

function _forward(args: KernelArgs): tf.TensorInfo[] {
  const { x, scale, offset } = args.inputs as Record<string, tf.TensorInfo>;
  const { groups, epsilon } = args.attrs as unknown as GroupNormAttrs;
  const [samples, positions, channels] = _dims(x.shape);
  return runNativeNorm(GROUP_NORM_FORWARD, args, {
    run: "bnlab_gn_forward",
    inputs: [x, scale, offset],
    outputs: [x.shape, [samples, groups], [samples, groups]], // y, mean, invStd
    numbers: [samples, positions, channels, groups, epsilon],
  });
}

function _backward(args: KernelArgs): tf.TensorInfo[] {
  const { dy, x, mean, invStd, scale } = args.inputs as Record<string, tf.TensorInfo>;
  const { groups } = args.attrs as unknown as { groups: number };
  const [samples, positions, channels] = _dims(x.shape);
  return runNativeNorm(GROUP_NORM_BACKWARD, args, {
    run: "bnlab_gn_backward",
    inputs: [dy, x, mean, invStd, scale],
    outputs: [x.shape, [channels], [channels]], // dx, dScale, dOffset
    numbers: [samples, positions, channels, groups],
  });
}

/**
 * Whether group normalization of `x` in `groups` groups of its last axis, with γ `scale` and
 * β `offset`, runs on these kernels: the wasm backend is active with the native kernels on
 * and the kernels registered, x is float32 of rank ≥ 2 and not empty, `groups` is a positive
 * integer dividing the channel count, and γ and β (if given) are float32 with one value per
 * channel.
 *
 * @param x The input, channels last.
 * @param options The group count, γ and β.
 * @returns True when the kernels handle the case.
 *
 * @example On the cpu backend the tfjs ops run
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { groupNormUsable } from "./group_norm_native.ts";
 *
 * await tf.setBackend("cpu");
 * assert.equal(groupNormUsable(tf.zeros([4, 6]), { groups: 2 }), false);
 * ```
 */
export function groupNormUsable(
  x: tf.Tensor,
  options: { groups: number; scale?: tf.Tensor; offset?: tf.Tensor },
): boolean {
  const { groups, scale, offset } = options;
  if (tf.getBackend() !== "wasm" || nativeKernels() === null) return false;
  if (tf.getKernel(GROUP_NORM_BACKWARD, "wasm") === undefined) return false;
  if (x.dtype !== "float32" || x.rank < 2 || x.size === 0) return false;
  const channels = x.shape[x.rank - 1];
  if (!Number.isInteger(groups) || groups <= 0 || channels % groups !== 0) return false;
  return [scale, offset].every((p) =>
    p === undefined || (p.dtype === "float32" && p.size === channels &&
      p.shape[p.rank - 1] === channels)
  );
}

/** The forward kernel's `accepts`: { x, scale?, offset? } with attrs { groups, epsilon }. */
function _accepts(inputs: tf.NamedTensorMap, attrs: tf.NamedAttrMap): boolean {
  const groups = attrs.groups as number | undefined;
  if (groups === undefined || typeof attrs.epsilon !== "number") return false;
  return groupNormUsable(inputs.x, { groups, scale: inputs.scale, offset: inputs.offset });
}

/**
 * The two kernels' configs for the wasm backend (registered by `installKernels`, `mod.ts`);
 * both decline, through `accepts`, the calls {@linkcode groupNormUsable} rejects.
 */
export const GROUP_NORM_KERNEL_CONFIGS: readonly NamedKernelConfig[] = [
  [GROUP_NORM_FORWARD, _forward],
  [GROUP_NORM_BACKWARD, _backward],
].map(([kernelName, kernelFunc]) => ({
  kernelName: kernelName as string,
  backendName: "wasm",
  kernelFunc: kernelFunc as unknown as tf.KernelFunc,
  accepts: _accepts,
}));
