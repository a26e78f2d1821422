/**
 * The training loop: seeded mini-batch SGD over a dataset, per-epoch evaluation, progress
 * events and a NaN guard. It knows nothing of files or terminals: it emits events, and a
 * caller-supplied hook saves checkpoints.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { batches, type LastBatch, numBatches } from "../data/batches.ts";
import { validateTrainingInputs } from "../data/validate.ts";
import type { Dataset } from "../data/mnist.ts";
import { evaluate, type Evaluation } from "./evaluate.ts";
import { computeLoss, type LossName } from "./losses.ts";

/** Optimizers the loop can build. */
export type OptimizerName = "sgd" | "momentum" | "adam";
/** Allowed optimizer names. */
export const OPTIMIZERS: readonly OptimizerName[] = ["sgd", "momentum", "adam"];

/** Options of {@linkcode train}. */
export interface TrainOptions {
  /** Total number of epochs (a resumed run counts the ones already done). */
  epochs: number;
  /** Images per step. */
  batchSize: number;
  /** Learning rate. */
  lr: number;
  /** `sgd` (plain), `momentum` (SGD with momentum 0.9) or `adam`. @default {"sgd"} */
  optimizer?: OptimizerName;
  /** Training loss. @default {"xent"} */
  loss?: LossName;
  /** Seed of the data order; epoch e's order is a function of (seed, e) alone. @default {0} */
  seed?: number;
  /** First epoch to run, for resuming; epochs before it are taken as done. @default {0} */
  startEpoch?: number;
  /** Read the loss back every this many steps (each read waits for the device). @default {50} */
  logEvery?: number;
  /** Evaluated after every epoch when given. */
  test?: Dataset;
  /** What becomes of a final partial batch, in training and evaluation. @default {"merge"} */
  lastBatch?: LastBatch;
  /** Batch size of the evaluation. @default {500} */
  evalBatchSize?: number;
  /** Optimizer whose state continues from a checkpoint; built from the options when absent. */
  optimizerInstance?: tf.Optimizer;
  /** Receives progress events. */
  onEvent?: (event: TrainEvent) => void;
  /** Called after each epoch's evaluation, before the next epoch starts (checkpoints go here). */
  onEpochEnd?: (record: EpochRecord, optimizer: tf.Optimizer) => Promise<void> | void;
}

/** A sampled point of the loss curve. */
export interface StepRecord {
  /** Epoch, from 0. */
  epoch: number;
  /** Step since the start of training, from 1. */
  step: number;
  /** The loss of that step's batch. */
  trainLoss: number;
}

/** What one epoch produced. */
export interface EpochRecord {
  /** Epoch, from 0. */
  epoch: number;
  /** Steps since the start of training at the end of this epoch. */
  step: number;
  /** Mean training loss over the epoch's batches. */
  trainLoss: number;
  /** Test evaluation (running statistics) when a test set was given. */
  test?: Evaluation;
  /** Wall time of the epoch's training and evaluation. */
  seconds: number;
  /** The loss curve points sampled during this epoch. */
  steps: StepRecord[];
}

/** Progress events emitted by {@linkcode train}. */
export type TrainEvent =
  | { type: "start"; totalSteps: number; doneSteps: number }
  | {
    type: "step";
    epoch: number;
    step: number;
    totalSteps: number;
    loss: number;
    samplesPerSecond: number;
    etaSeconds: number;
  }
  | { type: "epoch"; record: EpochRecord };

/** Raised when a training loss is NaN or infinite; the epochs before it are intact. */
export class NonFiniteLossError extends Error {
  /**
   * @param epoch Epoch of the bad step.
   * @param step Step of the bad loss.
   * @param loss The value read.
   */
  constructor(readonly epoch: number, readonly step: number, readonly loss: number) {
    super(
      `train: the loss became ${loss} at epoch ${epoch + 1}, step ${step}; stopping this run ` +
        `(its last completed epoch's checkpoint is kept). Lower the learning rate or check the input.`,
    );
    this.name = "NonFiniteLossError";
  }
}

/**
 * Builds an optimizer by name.
 *
 * @param name `sgd`, `momentum` (0.9) or `adam`.
 * @param lr Learning rate.
 * @returns A tfjs optimizer.
 *
 * @example
 * ```ts
 * import { createOptimizer } from "./loop.ts";
 * const optimizer = createOptimizer("sgd", 0.001);
 * optimizer.dispose();
 * ```
 */
export function createOptimizer(name: OptimizerName, lr: number): tf.Optimizer {
  switch (name) {
    case "sgd":
      return tf.train.sgd(lr);
    case "momentum":
      return tf.train.momentum(lr, 0.9);
    case "adam":
      return tf.train.adam(lr);
    default:
      throw new Error(
        `createOptimizer: optimizer must be one of ${OPTIMIZERS.join(", ")}, received ${
          JSON.stringify(name)
        }`,
      );
  }
}

/**
 * Trains a classifier with mini-batch gradient descent.
 *
 * Each step runs `model.apply(xs, { training: true })` inside `optimizer.minimize`, so BN
 * layers normalize with batch statistics and update their running statistics once per step.
 * The loss is read back only every `logEvery` steps and at epoch ends, so the device is not
 * forced to synchronize on every step.
 *
 * @param model A model mapping NHWC images to logits.
 * @param data Training images and labels.
 * @param options Epochs, batch size, learning rate and the rest.
 * @returns One record per epoch run.
 *
 * @example Train a tiny dense model for one epoch
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { train } from "./loop.ts";
 * await tf.setBackend("cpu");
 * const model = tf.sequential({
 *   layers: [tf.layers.flatten({ inputShape: [2, 2, 1] }), tf.layers.dense({ units: 2 })],
 * });
 * const data = {
 *   name: "toy", split: "train" as const, count: 4, height: 2, width: 2, numClasses: 2,
 *   images: new Float32Array(16).fill(0.5), labels: new Uint8Array([0, 1, 0, 1]),
 * };
 * const [record] = await train(model, data, { epochs: 1, batchSize: 2, lr: 0.1 });
 * console.log(record.step); // 2
 * ```
 */
export async function train(
  model: tf.LayersModel,
  data: Dataset,
  options: TrainOptions,
): Promise<EpochRecord[]> {
  const {
    epochs,
    batchSize,
    lr,
    optimizer: optimizerName = "sgd",
    loss = "xent",
    seed = 0,
    startEpoch = 0,
    logEvery = 50,
    evalBatchSize = 500,
    lastBatch = "merge",
  } = options;
  _checkPositiveInteger("epochs", epochs);
  _checkPositiveInteger("batchSize", batchSize);
  _checkPositiveInteger("logEvery", logEvery);
  if (!Number.isInteger(startEpoch) || startEpoch < 0 || startEpoch > epochs) {
    throw new Error(
      `train: startEpoch must be an integer in [0, ${epochs}], received ${startEpoch}`,
    );
  }
  if (!(lr > 0) || !Number.isFinite(lr)) {
    throw new Error(`train: lr must be a positive finite number, received ${lr}`);
  }
  validateTrainingInputs(model, data, { batchSize, lastBatch, test: options.test });
  const optimizer = options.optimizerInstance ?? createOptimizer(optimizerName, lr);
  const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const stepsPerEpoch = numBatches(data.count, { batchSize, lastBatch });
  const totalSteps = stepsPerEpoch * epochs;
  let step = stepsPerEpoch * startEpoch;
  options.onEvent?.({ type: "start", totalSteps, doneSteps: step });

  const records: EpochRecord[] = [];
  const started = performance.now();
  const firstStep = step;
  for (let epoch = startEpoch; epoch < epochs; epoch++) {
    const epochStarted = performance.now();
    const steps: StepRecord[] = [];
    let lossSum: tf.Scalar = tf.scalar(0);
    for (const batch of batches(data, { batchSize, seed: epochSeed(seed, epoch), lastBatch })) {
      step++;
      const batchLoss = optimizer.minimize(
        () => computeLoss(loss, model.apply(batch.xs, { training: true }) as tf.Tensor, batch.ys),
        true,
        variables,
      ) as tf.Scalar;
      const nextSum = tf.add(lossSum, batchLoss) as tf.Scalar;
      lossSum.dispose();
      lossSum = nextSum;
      if (step % logEvery === 0) {
        const value = (await batchLoss.data())[0];
        if (!Number.isFinite(value)) {
          batchLoss.dispose();
          lossSum.dispose();
          throw new NonFiniteLossError(epoch, step, value);
        }
        steps.push({ epoch, step, trainLoss: value });
        const seconds = (performance.now() - started) / 1000;
        const samplesPerSecond = ((step - firstStep) * batchSize) / seconds;
        options.onEvent?.({
          type: "step",
          epoch,
          step,
          totalSteps,
          loss: value,
          samplesPerSecond,
          etaSeconds: ((totalSteps - step) * batchSize) / samplesPerSecond,
        });
      }
      batchLoss.dispose();
    }
    const trainLoss = (await lossSum.data())[0] / stepsPerEpoch;
    lossSum.dispose();
    if (!Number.isFinite(trainLoss)) throw new NonFiniteLossError(epoch, step, trainLoss);
    const test = options.test
      ? await evaluate(model, options.test, { batchSize: evalBatchSize, loss, lastBatch })
      : undefined;
    const record: EpochRecord = {
      epoch,
      step,
      trainLoss,
      test,
      seconds: (performance.now() - epochStarted) / 1000,
      steps,
    };
    records.push(record);
    await options.onEpochEnd?.(record, optimizer);
    options.onEvent?.({ type: "epoch", record });
  }
  if (!options.optimizerInstance) optimizer.dispose();
  return records;
}

/**
 * The data-order seed of one epoch: a pure function of the run seed and the epoch, so a
 * resumed run sees exactly the batches an uninterrupted one would.
 *
 * @param seed The run's seed.
 * @param epoch Epoch, from 0.
 * @returns A 32-bit unsigned seed.
 *
 * @example
 * ```ts
 * import { epochSeed } from "./loop.ts";
 * console.log(epochSeed(0, 1) !== epochSeed(0, 2)); // true
 * ```
 */
export function epochSeed(seed: number, epoch: number): number {
  return (Math.imul(seed + 1, 0x9e3779b1) ^ Math.imul(epoch + 1, 0x85ebca6b)) >>> 0;
}

function _checkPositiveInteger(name: string, value: number) {
  if (!Number.isInteger(value) || value < 1) {
    throw new Error(`train: ${name} must be a positive integer, received ${value}`);
  }
}
