/**
 * The training losses the experiments compare.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import {
  acceptsKernel,
  SOFTMAX_CROSS_ENTROPY,
  SOFTMAX_CROSS_ENTROPY_GRAD,
} from "../named_kernels.ts";
import type { Scalar, Tensor } from "../tfjs_types.ts";

/** Loss names accepted by the training loop. */
export type LossName = "xent" | "mse";
/** Allowed loss names. */
export const LOSSES: readonly LossName[] = ["xent", "mse"];

/**
 * Computes a mean loss over a batch from logits and one-hot targets.
 *
 * - `xent`: softmax cross-entropy, mean over the batch of −Σₖ yₖ·log softmax(z)ₖ.
 *   A uniform guess scores ln 10 ≈ 2.3026 on ten classes.
 * - `mse`: mean over batch and classes of (softmax(z)ₖ − yₖ)², PyTorch's
 *   `F.mse_loss(F.softmax(z), onehot)` with its default `reduction="mean"`.
 *
 * @param name Which loss.
 * @param logits Scores `[batch, classes]`.
 * @param labels One-hot targets `[batch, classes]`.
 * @returns A scalar.
 *
 * @example Cross-entropy of a uniform guess is ln 10
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { computeLoss } from "./losses.ts";
 * await tf.setBackend("cpu");
 * const loss = computeLoss("xent", tf.zeros([2, 10]), tf.oneHot([3, 7], 10));
 * console.log((await loss.data())[0].toFixed(4)); // "2.3026"
 * ```
 */
export function computeLoss(name: LossName, logits: Tensor, labels: Tensor): Scalar {
  return tf.tidy(() => {
    switch (name) {
      case "xent":
        return softmaxCrossEntropy(logits, labels);
      case "mse":
        return tf.mean(tf.squaredDifference(tf.softmax(logits), labels)) as Scalar;
      default:
        throw new Error(
          `computeLoss: loss must be one of ${LOSSES.join(", ")}, received ${JSON.stringify(name)}`,
        );
    }
  });
}

/**
 * tfjs's `tf.losses.softmaxCrossEntropy(labels, logits)`, the mean over the batch of
 * −Σₖ yₖ·log softmax(z)ₖ, with its floats and gradient; where the backend runs the
 * {@linkcode SOFTMAX_CROSS_ENTROPY} kernels (bnlab's on wasm) the forward pass and the
 * backward pass are one kernel each, else it is tfjs's op.
 *
 * @param logits Scores `[batch, classes]`, float32.
 * @param labels One-hot targets `[batch, classes]`.
 * @returns A scalar.
 *
 * @example The same value as tfjs's
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { initBackend } from "../backend.ts";
 * import { softmaxCrossEntropy } from "./losses.ts";
 *
 * await initBackend("wasm");
 * const logits = tf.tensor2d([[2, -1, 0.5], [0, 0, 3]]);
 * const labels = tf.tensor2d([[1, 0, 0], [0, 0, 1]]);
 * const ours = await softmaxCrossEntropy(logits, labels).data();
 * assert.deepEqual(ours, await tf.losses.softmaxCrossEntropy(labels, logits).data());
 * ```
 */
export function softmaxCrossEntropy(logits: Tensor, labels: Tensor): Scalar {
  if (!acceptsKernel(SOFTMAX_CROSS_ENTROPY, { inputs: { labels, logits } })) {
    return tf.losses.softmaxCrossEntropy(labels, logits) as Scalar;
  }
  const batch = logits.shape[0];
  const op = tf.customGrad((...args: (Tensor | tf.GradSaveFunc)[]) => {
    const save = args.pop() as tf.GradSaveFunc;
    const [y, z] = args as Tensor[];
    const [loss, logSoftmax] = tf.engine().runKernel(SOFTMAX_CROSS_ENTROPY, {
      labels: y,
      logits: z,
    }) as Tensor[];
    save([y, logSoftmax]);
    return {
      value: loss,
      gradFunc: (dy: Tensor, saved: Tensor[]) => {
        const [savedLabels, savedLogSoftmax] = saved;
        const inputs = { dy, labels: savedLabels, logSoftmax: savedLogSoftmax };
        if (acceptsKernel(SOFTMAX_CROSS_ENTROPY_GRAD, { inputs })) {
          return tf.engine().runKernel(SOFTMAX_CROSS_ENTROPY_GRAD, inputs) as Tensor[];
        }
        // tfjs's gradient through its ops: the mean's and the sum's (dy / batch on every row),
        // then softmax − labels for the logits (and, as tfjs has it, labels − softmax for the
        // labels).
        const perExample = tf.reshape(tf.broadcastTo(tf.div(dy, batch), [batch]), [batch, 1]);
        const softmax = tf.exp(savedLogSoftmax);
        const targets = tf.cast(savedLabels, "float32");
        return [
          tf.mul(perExample, tf.sub(targets, softmax)),
          tf.mul(perExample, tf.sub(softmax, targets)),
        ];
      },
    };
  });
  return op(labels, logits) as Scalar;
}
