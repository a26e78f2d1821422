/**
 * The training losses the experiments compare.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
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
        return tf.losses.softmaxCrossEntropy(labels, logits) as Scalar;
      case "mse":
        return tf.mean(tf.squaredDifference(tf.softmax(logits), labels)) as Scalar;
      default:
        throw new Error(
          `computeLoss: loss must be one of ${LOSSES.join(", ")}, received ${JSON.stringify(name)}`,
        );
    }
  });
}
