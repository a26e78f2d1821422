/**
 * Batch normalization over the leading axes as three wasm-backend kernels in C
 * (`native/bnlab_kernels.c`): the batch statistics, the forward pass and the analytic
 * backward pass, each one kernel call instead of the dozen tfjs ops of
 * `lib/norms/batch_norm_ops.ts`' analytic op (whose closed forms they compute, with per-channel
 * sums in double). A fourth kernel is tfjs's own `FusedBatchNorm` gradient in one pass
 * (`FUSED_BATCH_NORM_GRAD`, used by lib/kernels/gradients.ts). The first three are registered
 * under the names of `lib/named_kernels.ts`, each with an `accepts` predicate
 * ({@linkcode fusedBatchNormUsable}); `batchNormTraining` calls them by name and runs its tfjs
 * ops when they decline. tests/batch_norm_native_test.ts checks the two agree.
 *
 * x is read as [rows, channels]: every axis but the last (channels) is normalized over.
 * Large calls run in two parts on the matrix products' threads (`blas.ts`; the per-channel
 * sums over halves of the channels, the element-wise passes over halves of the rows), every
 * float computed as in one part.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { nativeKernels, requireNativeKernels } from "./native_library.ts";
import { runNativeNorm } from "./native_norm.ts";
import {
  BATCH_NORM_BACKWARD,
  BATCH_NORM_FORWARD,
  BATCH_NORM_MOMENTS,
  type NamedKernelConfig,
} from "../named_kernels.ts";
import {
  floatOffset,
  heapFloats,
  type KernelArgs,
  rowsAndChannels,
  type WasmBackend,
} from "./wasm_kernel.ts";

export { BATCH_NORM_BACKWARD, BATCH_NORM_FORWARD, BATCH_NORM_MOMENTS };
/**
 * tfjs's own `FusedBatchNorm` gradient in one kernel (lib/kernels/gradients.ts): { dy, x,
 * mean [C], variance [C], scale? [C] }, attrs { varianceEpsilon } → [dx, dmean, dvariance,
 * dscale, doffset], each of the last four [C].
 */
export const FUSED_BATCH_NORM_GRAD = "BnlabFusedBatchNormGrad";

function _moments(args: KernelArgs): tf.TensorInfo[] {
  const { x } = args.inputs as { x: tf.TensorInfo };
  const [rows, channels] = rowsAndChannels(x.shape);
  const statShape = [...x.shape.slice(0, -1).map(() => 1), channels];
  return runNativeNorm(BATCH_NORM_MOMENTS, args, {
    run: "bnlab_bn_moments",
    inputs: [x],
    outputs: [statShape, statShape], // mean, variance
    numbers: [rows, channels],
  });
}

function _forward(args: KernelArgs): tf.TensorInfo {
  const { x, mean, variance, scale, offset } = args.inputs as Record<string, tf.TensorInfo>;
  const { epsilon } = args.attrs as unknown as { epsilon: number };
  const [rows, channels] = rowsAndChannels(x.shape);
  const [y] = runNativeNorm(BATCH_NORM_FORWARD, args, {
    run: "bnlab_bn_forward",
    inputs: [x, mean, variance, scale, offset],
    outputs: [x.shape],
    numbers: [rows, channels, epsilon],
  });
  return y;
}

function _backward(args: KernelArgs): tf.TensorInfo[] {
  const { dy, x, mean, variance, scale } = args.inputs as Record<string, tf.TensorInfo>;
  const { epsilon } = args.attrs as unknown as { epsilon: number };
  const [rows, channels] = rowsAndChannels(x.shape);
  return runNativeNorm(BATCH_NORM_BACKWARD, args, {
    run: "bnlab_bn_backward",
    inputs: [dy, x, mean, variance, scale],
    outputs: [x.shape, [channels], [channels]], // dx, dScale, dOffset
    numbers: [rows, channels, epsilon],
  });
}

function _fusedBatchNormGrad(args: KernelArgs): tf.TensorInfo[] {
  const native = requireNativeKernels(FUSED_BATCH_NORM_GRAD);
  const backend = args.backend as unknown as WasmBackend;
  const { dy, x, mean, variance, scale } = args.inputs as Record<string, tf.TensorInfo>;
  const { varianceEpsilon } = args.attrs as unknown as { varianceEpsilon: number };
  const [rows, channels] = rowsAndChannels(x.shape);
  const dx = backend.makeOutput(x.shape, "float32");
  const stats = [0, 1, 2, 3].map(() => backend.makeOutput([channels], "float32"));
  const heap = heapFloats(backend, [dy, x, mean, variance, scale]);
  native.bnlab_fused_batch_norm_grad(
    heap,
    floatOffset(backend, dy),
    floatOffset(backend, x),
    floatOffset(backend, mean),
    floatOffset(backend, variance),
    floatOffset(backend, scale),
    floatOffset(backend, dx),
    ...stats.map((info) => floatOffset(backend, info)) as [number, number, number, number],
    rows,
    channels,
    varianceEpsilon,
  );
  return [dx, ...stats];
}

/**
 * The four kernels' configs for the wasm backend (registered by `installKernels`, `mod.ts`);
 * the first three decline, through `accepts`, the calls {@linkcode fusedBatchNormUsable}
 * rejects.
 */
export const BATCH_NORM_KERNEL_CONFIGS: readonly NamedKernelConfig[] = [
  [BATCH_NORM_MOMENTS, _moments, _accepts],
  [BATCH_NORM_FORWARD, _forward, _accepts],
  [BATCH_NORM_BACKWARD, _backward, _accepts],
  [FUSED_BATCH_NORM_GRAD, _fusedBatchNormGrad, undefined],
].map(([kernelName, kernelFunc, accepts]) => ({
  kernelName: kernelName as string,
  backendName: "wasm",
  kernelFunc: kernelFunc as unknown as tf.KernelFunc,
  ...(accepts !== undefined && { accepts: accepts as NamedKernelConfig["accepts"] }),
}));

/**
 * Whether batch normalization of `x` over `axes` with γ `scale` and β `offset` can run on
 * these kernels: the wasm backend is active with the native kernels on and the kernels
 * registered, x is float32 of rank ≥ 2, `axes` are all its axes but the last, and γ and β
 * (if given) are float32 with one value per channel.
 *
 * @param x The input.
 * @param axes The axes normalized over.
 * @param scale γ, or undefined.
 * @param offset β, or undefined.
 * @returns True when the fused kernels handle the case.
 *
 * @example On the cpu backend the tfjs ops run
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { fusedBatchNormUsable } from "./batch_norm_native.ts";
 *
 * await tf.setBackend("cpu");
 * assert.equal(fusedBatchNormUsable(tf.zeros([4, 3]), [0]), false);
 * ```
 */
export function fusedBatchNormUsable(
  x: tf.Tensor,
  axes: readonly number[],
  scale?: tf.Tensor,
  offset?: tf.Tensor,
): boolean {
  if (tf.getBackend() !== "wasm" || nativeKernels() === null) return false;
  if (tf.getKernel(BATCH_NORM_BACKWARD, "wasm") === undefined) return false;
  const rank = x.rank;
  if (x.dtype !== "float32" || rank < 2 || x.size === 0) return false;
  if (axes.length !== rank - 1 || axes.some((axis, i) => axis !== i)) return false;
  const channels = x.shape[rank - 1];
  return [scale, offset].every((p) =>
    p === undefined || (p.dtype === "float32" && p.size === channels &&
      p.shape[p.rank - 1] === channels)
  );
}

/** The named kernels' `accepts`: { x, scale?, offset? } with attrs { axes }. */
function _accepts(inputs: tf.NamedTensorMap, attrs: tf.NamedAttrMap): boolean {
  const axes = attrs.axes as number[] | undefined;
  return axes !== undefined && fusedBatchNormUsable(inputs.x, axes, inputs.scale, inputs.offset);
}
