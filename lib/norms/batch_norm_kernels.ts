/**
 * Batch normalization's calls of named kernels (`lib/named_kernels.ts`): the training-mode op
 * and the running-average update, each run as registered kernels when the active backend has
 * them and takes the case, else left to the tfjs ops of `batch_norm_ops.ts` and `batch_norm.ts`,
 * which compute the same closed forms.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import {
  acceptsKernel,
  BATCH_NORM_BACKWARD,
  BATCH_NORM_FORWARD,
  BATCH_NORM_MOMENTS,
  RUNNING_AVERAGE,
  type RunningAverageAttrs,
  runNormBackward,
} from "../named_kernels.ts";

/** Options of {@linkcode namedBatchNormTraining}. */
export interface NamedBatchNormTrainingOptions {
  /** Axes the statistics are computed over. */
  axes: number[];
  /** ε, added to the variance before the square root. */
  epsilon: number;
  /** γ, one value per channel (any shape with C values, the last axis of size C), or none. */
  scale?: tf.Tensor;
  /** β, like `scale`, or none. */
  offset?: tf.Tensor;
}

/**
 * The analytic training op of `batchNormTraining` as the named kernels {@linkcode
 * BATCH_NORM_MOMENTS}, {@linkcode BATCH_NORM_FORWARD} and {@linkcode BATCH_NORM_BACKWARD}: one
 * op over x, γ and β whose forward pass is two kernel calls (the statistics, then y) and whose
 * backward pass is one. The statistics are computed inside the op, so no gradient flows
 * through them (the op version differentiates them to zeros).
 *
 * @param x The input.
 * @param options Axes, ε, γ and β.
 * @returns y and the batch statistics (reduced axes kept as size 1), or null when the active
 *   backend has no such kernels or they decline the case (the caller runs tfjs ops).
 *
 * @example On a backend without the kernels the caller computes with tfjs ops
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { namedBatchNormTraining } from "./batch_norm_kernels.ts";
 *
 * await tf.setBackend("cpu");
 * assert.equal(namedBatchNormTraining(tf.ones([4, 2]), { axes: [0], epsilon: 1e-3 }), null);
 * ```
 */
export function namedBatchNormTraining(
  x: tf.Tensor,
  options: NamedBatchNormTrainingOptions,
): { y: tf.Tensor; mean: tf.Tensor; variance: tf.Tensor } | null {
  const { axes, epsilon, scale, offset } = options;
  const params: tf.NamedTensorMap = {};
  if (scale) params.scale = scale;
  if (offset) params.offset = offset;
  const attrs = { epsilon, axes };
  if (!acceptsKernel(BATCH_NORM_FORWARD, { inputs: { x, ...params }, attrs })) return null;
  const inputs: tf.Tensor[] = [x];
  if (scale) inputs.push(scale);
  if (offset) inputs.push(offset);
  let statistics: tf.Tensor[] = [];
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args.pop() as tf.GradSaveFunc;
    const [xs, ...rest] = args as tf.Tensor[];
    const gamma = scale ? rest[0] : undefined;
    const beta = offset ? rest[scale ? 1 : 0] : undefined;
    const [mean, variance] = tf.engine().runKernel(BATCH_NORM_MOMENTS, { x: xs }, {
      axes,
    }) as tf.Tensor[];
    const forwardInputs: tf.NamedTensorMap = { x: xs, mean, variance };
    if (gamma) forwardInputs.scale = gamma;
    if (beta) forwardInputs.offset = beta;
    const value = tf.engine().runKernel(BATCH_NORM_FORWARD, forwardInputs, attrs);
    save([xs, mean, variance, ...(gamma ? [gamma] : [])]);
    // Out of the op's scope; re-owned by the caller's scope below.
    statistics = [tf.keep(mean), tf.keep(variance)];
    return {
      value: value as tf.Tensor,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const savedGamma = saved[3];
        const [dx, dScale, dOffset] = runNormBackward(BATCH_NORM_BACKWARD, {
          dy,
          saved,
          statistic: "variance",
          attrs: { epsilon },
        });
        const grads: tf.Tensor[] = [dx];
        // dγ and dβ are [C]: reshaped to γ's and β's shapes.
        const shaped = (grad: tf.Tensor, like: tf.Tensor) =>
          like.rank === 1 ? grad : tf.reshape(grad, like.shape);
        if (savedGamma) grads.push(shaped(dScale, savedGamma));
        if (beta) grads.push(shaped(dOffset, beta));
        return grads;
      },
    };
  });
  const y = op(...inputs);
  const [mean, variance] = statistics.map((t) => tf.clone(t));
  tf.dispose(statistics);
  return { y, mean, variance };
}

/**
 * running·keep + (value·factor)·(1 − keep), the running-average update: the named kernel
 * {@linkcode RUNNING_AVERAGE} when the active backend has it, else tfjs ops with the same
 * floats.
 *
 * @param running The running statistic.
 * @param value The batch's statistic, with as many elements.
 * @param options `keep`, the weight of the running value, and `factor` for `value` (the
 *   unbiased variance's m/(m − 1)), or null for none.
 * @returns The updated statistic, in `running`'s shape.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { runningAverage } from "./batch_norm_kernels.ts";
 *
 * await tf.setBackend("cpu");
 * const out = runningAverage(tf.tensor1d([0, 1]), tf.tensor1d([1, 3]), { keep: 0.5 });
 * assert.deepEqual(Array.from(out.dataSync()), [0.5, 2]);
 * ```
 */
export function runningAverage(
  running: tf.Tensor,
  value: tf.Tensor,
  options: { keep: number; factor?: number | null },
): tf.Tensor {
  const { keep, factor = null } = options;
  const inputs = { running, value };
  if (acceptsKernel(RUNNING_AVERAGE, { inputs })) {
    const attrs: RunningAverageAttrs = { keep, complement: 1 - keep, factor: factor ?? 1 };
    return tf.engine().runKernel(RUNNING_AVERAGE, inputs, { ...attrs }) as tf.Tensor;
  }
  const scaled = factor === null ? value : tf.mul(value, factor);
  return tf.add(tf.mul(running, keep), tf.mul(tf.reshape(scaled, running.shape), 1 - keep));
}
