/**
 * The contract between the layers that call bnlab's own kernels and `lib/kernels/`, which
 * registers them: kernel names, and how a caller asks whether the active backend runs one.
 *
 * A layer never asks whether native code is loaded. It builds the kernel's inputs and attributes
 * and calls {@linkcode acceptsKernel}: true when a kernel of that name is registered for the
 * active backend and, if it has an `accepts` predicate ({@linkcode NamedKernelConfig}), the
 * predicate takes the case. Then it runs `tf.engine().runKernel(name, inputs, attrs)`; otherwise
 * it computes the same values with tfjs ops, its readable reference.
 *
 * A kernel registered under one of these names computes what the name's doc says, with the
 * floats of the reference it replaces.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";

/**
 * Batch statistics over every axis but the last: { x } → [mean, variance], each shaped like x
 * with the leading axes of size 1; attrs { axes } (must be the leading axes).
 */
export const BATCH_NORM_MOMENTS = "BnlabBatchNormMoments";
/**
 * y = γ·(x − μ)/√(σ² + ε) + β: { x, mean, variance, scale?, offset? }, attrs { epsilon, axes }
 * → y. γ and β hold one value per channel (the last axis).
 */
export const BATCH_NORM_FORWARD = "BnlabBatchNormForward";
/**
 * The analytic backward pass: { dy, x, mean, variance, scale? }, attrs { epsilon } →
 * [dx, dscale [C], doffset [C]].
 */
export const BATCH_NORM_BACKWARD = "BnlabBatchNormBackward";
/**
 * Group normalization's forward pass (layer normalization: one group), channels last:
 * { x, scale?, offset? }, attrs {@linkcode GroupNormAttrs} → [y, mean, invStd]. x is
 * [N, …, C] with C split into `groups` groups of C/G consecutive channels; per sample n and
 * group g, over its m values, μ = (1/m) Σ x and σ² = (1/m) Σ (x − μ)²; mean and invStd are
 * [N, G]: μ and 1/√(σ² + ε); y = γ·(x − μ)·invStd + β, γ and β [C].
 */
export const GROUP_NORM_FORWARD = "BnlabGroupNormForward";
/**
 * Group normalization's analytic backward pass: { dy, x, mean, invStd, scale? } (mean and
 * invStd as {@linkcode GROUP_NORM_FORWARD} returns them), attrs { groups } → [dx, dscale [C],
 * doffset [C]]: with x̂ = (x − μ)·invStd and g = γ·dy, dx = invStd·(g − mean(g) −
 * x̂·mean(g·x̂)) over each sample's group, dscale = Σ dy·x̂ and doffset = Σ dy per channel.
 */
export const GROUP_NORM_BACKWARD = "BnlabGroupNormBackward";

/** The attributes of {@linkcode GROUP_NORM_FORWARD}. */
export interface GroupNormAttrs {
  /** The number of groups G; it divides the channel count. */
  groups: number;
  /** ε, added to the variance inside the square root. */
  epsilon: number;
}

/**
 * Plain SGD's update of a step's variables in one call: { rate, value0, gradient0, value1,
 * gradient1, … } with rate a float32 scalar (−lr) → [rate·gradient_i + value_i for each i],
 * each product and sum rounded to float32 (tfjs's `SGDOptimizer`: `add(mul(c, gradient),
 * value)` per variable).
 */
export const SGD_UPDATE = "BnlabSgdUpdate";

/**
 * running·keep + (value·factor)·(1 − keep): { running, value }, attrs
 * {@linkcode RunningAverageAttrs} → running'.
 */
export const RUNNING_AVERAGE = "BnlabRunningAverage";

/** The attributes of {@linkcode RUNNING_AVERAGE}. */
export interface RunningAverageAttrs {
  /** The weight of the running value. */
  keep: number;
  /** The weight of the new value, 1 − keep as JavaScript computes it. */
  complement: number;
  /**
   * A factor the new value is first multiplied by (the unbiased variance's m/(m − 1)); 1 for
   * none (a float32 product by 1 is exact).
   */
  factor: number;
}

/**
 * Softmax cross-entropy, the mean over the batch: { labels, logits }, [batch, classes] each
 * (logits float32, labels float32 or int32) → [loss (a scalar), logSoftmax ([batch,
 * classes])], with the floats of
 * tfjs 4.22's `tf.losses.softmaxCrossEntropy(labels, logits)` (no weights, no smoothing):
 * logSoftmax = logits − (max + log Σ exp(logits − max)) per row, loss = (Σ_rows Σ_classes
 * −logSoftmax·labels) / batch.
 */
export const SOFTMAX_CROSS_ENTROPY = "BnlabSoftmaxCrossEntropy";
/**
 * Its gradient, as tfjs 4.22's: { dy (a scalar), labels, logSoftmax } → [dlabels, dlogits],
 * with g = dy / batch per row: dlabels = g·(labels − exp(logSoftmax)) (tfjs's, kept as it is)
 * and dlogits = g·(exp(logSoftmax) − labels).
 */
export const SOFTMAX_CROSS_ENTROPY_GRAD = "BnlabSoftmaxCrossEntropyGrad";

/** A kernel config that may decline a call it cannot handle (its caller then runs tfjs ops). */
export interface NamedKernelConfig extends tf.KernelConfig {
  /**
   * Whether the kernel handles these inputs and attributes now (say, its native library is
   * loaded and the shapes are ones it handles). Absent: it handles every call.
   */
  readonly accepts?: (inputs: tf.NamedTensorMap, attrs: tf.NamedAttrMap) => boolean;
}

/**
 * Whether `tf.engine().runKernel(kernelName, inputs, attrs)` runs on the active backend: a
 * kernel of that name is registered for it and takes the case.
 *
 * @param kernelName A kernel name, e.g. {@linkcode BATCH_NORM_FORWARD}.
 * @param options The inputs and attributes the call would pass.
 * @returns True when the named kernel runs the call.
 *
 * @example Without `initBackend`, bnlab's kernels are not registered
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { acceptsKernel, BATCH_NORM_MOMENTS } from "./named_kernels.ts";
 *
 * await tf.setBackend("cpu");
 * assert.equal(acceptsKernel(BATCH_NORM_MOMENTS, { inputs: { x: tf.zeros([2, 3]) } }), false);
 * ```
 */
export function acceptsKernel(
  kernelName: string,
  options: { inputs: tf.NamedTensorMap; attrs?: tf.NamedAttrMap },
): boolean {
  const backend = tf.getBackend();
  if (backend === undefined) return false;
  const config = tf.getKernel(kernelName, backend) as NamedKernelConfig | undefined;
  if (config === undefined) return false;
  return config.accepts?.(options.inputs, options.attrs ?? {}) ?? true;
}

/** Options of {@linkcode runNormBackward}. */
export interface RunNormBackwardOptions {
  /** The gradient of the normalized output, shaped like x. */
  dy: tf.Tensor;
  /**
   * What the forward pass saved: [x, mean, statistic, scale?], scale only when the
   * normalization has one.
   */
  saved: tf.Tensor[];
  /** The backward kernel's input name of `saved[2]`: `variance` or `invStd`. */
  statistic: "variance" | "invStd";
  /** The backward kernel's attributes. */
  attrs: tf.NamedAttrMap;
}

/**
 * Runs a normalization's backward kernel ({@linkcode BATCH_NORM_BACKWARD},
 * {@linkcode GROUP_NORM_BACKWARD}) by name on what its forward pass saved: inputs
 * { dy, x: saved[0], mean: saved[1], [statistic]: saved[2], scale: saved[3] if present }.
 *
 * @param kernelName The registered backward kernel.
 * @param options The gradient, the saved tensors, the statistic's name and the attributes.
 * @returns [dx, dScale, dOffset], new tensors owned by the caller.
 *
 * @example The gradient of a zero dy is zero
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { initBackend } from "./backend.ts";
 * import { GROUP_NORM_BACKWARD, runNormBackward } from "./named_kernels.ts";
 *
 * await initBackend("wasm");
 * const x = tf.tensor2d([[1, 3], [2, 6]]);
 * const mean = tf.tensor2d([[2], [4]]);
 * const invStd = tf.tensor2d([[1], [0.5]]);
 * const grads = runNormBackward(GROUP_NORM_BACKWARD, {
 *   dy: tf.zerosLike(x),
 *   saved: [x, mean, invStd],
 *   statistic: "invStd",
 *   attrs: { groups: 1, epsilon: 0 },
 * });
 * assert.deepEqual(grads.map((g) => g.shape), [[2, 2], [2], [2]]);
 * assert.deepEqual([...await grads[1].data()], [0, 0]);
 * tf.dispose([x, mean, invStd, ...grads]);
 * ```
 */
export function runNormBackward(kernelName: string, options: RunNormBackwardOptions): tf.Tensor[] {
  const { dy, saved, statistic, attrs } = options;
  const [x, mean, value, scale] = saved;
  const inputs: tf.NamedTensorMap = { dy, x, mean, [statistic]: value };
  if (scale) inputs.scale = scale;
  return tf.engine().runKernel(kernelName, inputs, attrs) as tf.Tensor[];
}
