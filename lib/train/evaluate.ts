/**
 * Test-set evaluation with running (inference) or batch statistics.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { batches, type LastBatch, numBatches } from "../data/batches.ts";
import type { Dataset } from "../data/mnist.ts";
import { checkBatchesNormalizable, checkModelFitsData, validateDataset } from "../data/validate.ts";
import { computeLoss, type LossName } from "./losses.ts";
import { Pacer } from "./yield.ts";
import type { LayersModel, Tensor } from "../tfjs_types.ts";

/** Options of {@linkcode evaluate}. */
export interface EvaluateOptions {
  /** Images per forward pass. @default {500} */
  batchSize?: number;
  /** Loss to report. @default {"xent"} */
  loss?: LossName;
  /**
   * Which statistics BN layers use: `running` is inference mode (`training: false`);
   * `batch` normalizes each evaluation batch with its own statistics, as in training, and
   * restores every non-trainable weight afterwards so the running statistics stay untouched.
   * @default {"running"}
   */
  statistics?: "running" | "batch";
  /**
   * What becomes of a final partial batch, as in training (see `LastBatch`); with `drop`, the
   * left-out images are not counted. It changes the result only with batch statistics (and
   * float rounding). @default {"merge"}
   */
  lastBatch?: LastBatch;
}

/** What {@linkcode evaluate} measures. */
export interface Evaluation {
  /** Fraction of images classified correctly. */
  accuracy: number;
  /** Number classified correctly. */
  correct: number;
  /** Number of images evaluated (fewer than the dataset's with `lastBatch: "drop"`). */
  count: number;
  /** Mean loss over the images. */
  loss: number;
  /** How many images were predicted as each class (a constant predictor shows here). */
  predictedCounts: number[];
}

/**
 * Measures accuracy and mean loss of a classifier on a dataset.
 *
 * @param model A model mapping NHWC images to logits.
 * @param data The images and labels.
 * @param options Batch size, loss, which BN statistics to use and the last-batch policy.
 * @returns Accuracy, loss and the histogram of predicted classes.
 * @throws If the dataset is inconsistent (short arrays, labels out of range, non-finite pixels,
 * no images), the model does not take its images, or a batch cannot be normalized with batch
 * statistics.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { evaluate } from "./evaluate.ts";
 * await tf.setBackend("cpu");
 * const model = tf.sequential({
 *   layers: [tf.layers.flatten({ inputShape: [2, 2, 1] }), tf.layers.dense({ units: 2 })],
 * });
 * const data = {
 *   name: "toy", split: "test" as const, count: 2, height: 2, width: 2, numClasses: 2,
 *   images: new Float32Array(8), labels: new Uint8Array([0, 1]),
 * };
 * const result = await evaluate(model, data);
 * console.log(result.count); // 2
 * ```
 */
export async function evaluate(
  model: LayersModel,
  data: Dataset,
  options: EvaluateOptions = {},
): Promise<Evaluation> {
  const batchSize = options.batchSize ?? 500;
  const lossName = options.loss ?? "xent";
  const statistics = options.statistics ?? "running";
  if (statistics !== "running" && statistics !== "batch") {
    throw new Error(
      `evaluate: statistics must be "running" or "batch", received ${JSON.stringify(statistics)}`,
    );
  }
  const lastBatch = options.lastBatch ?? "merge";
  validateDataset(data, "evaluate: the dataset");
  checkModelFitsData(model, data, "evaluate");
  if (numBatches(data.count, { batchSize, lastBatch }) === 0) {
    throw new Error(
      `evaluate: the dataset ${data.name}/${data.split} of ${data.count} images in batches of ` +
        `${batchSize} (lastBatch "drop") has no batch to evaluate; use lastBatch "merge" or ` +
        `"keep", or a smaller batch size`,
    );
  }
  if (statistics === "batch") {
    checkBatchesNormalizable(model, data.count, {
      batchSize,
      lastBatch,
      what: `evaluate: the dataset ${data.name}/${data.split}`,
    });
  }
  const saved = statistics === "batch"
    ? model.weights.filter((w) => !w.trainable).map((w) => ({ w, value: w.read().clone() }))
    : [];
  let correct = 0;
  let count = 0;
  let lossSum = 0;
  const predictedCounts = new Array<number>(data.numClasses).fill(0);
  const pacer = new Pacer();
  try {
    for (const batch of batches(data, { batchSize, shuffle: false, lastBatch })) {
      const [predicted, batchLoss] = tf.tidy(() => {
        const logits = model.apply(batch.xs, { training: statistics === "batch" }) as Tensor;
        return [
          tf.argMax(logits, -1),
          tf.mul(computeLoss(lossName, logits, batch.ys), batch.labels.length),
        ];
      });
      const [labels, lossValue] = await Promise.all([predicted.data(), batchLoss.data()]);
      predicted.dispose();
      batchLoss.dispose();
      lossSum += lossValue[0];
      count += labels.length;
      for (let i = 0; i < labels.length; i++) {
        predictedCounts[labels[i]]++;
        if (labels[i] === batch.labels[i]) correct++;
      }
      await pacer.tick();
    }
  } finally {
    for (const { w, value } of saved) {
      w.write(value);
      value.dispose();
    }
  }
  return {
    accuracy: correct / count,
    correct,
    count,
    loss: lossSum / count,
    predictedCounts,
  };
}
