/**
 * The training loop: seeded mini-batch SGD over a dataset, per-epoch evaluation, progress
 * events and a NaN guard. It knows nothing of files or terminals: it emits events, and a
 * caller-supplied hook saves checkpoints.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { batches, LAST_BATCH_POLICIES, type LastBatch, numBatches } from "../data/batches.ts";
import { validateTrainingInputs } from "../data/validate.ts";
import type { Dataset } from "../data/mnist.ts";
import { evaluate, type Evaluation } from "./evaluate.ts";
import { computeLoss, type LossName } from "./losses.ts";
import { SgdOptimizer } from "./sgd.ts";
import { Pacer } from "./yield.ts";
import type { LayersModel, NamedTensorMap, Optimizer, Scalar, Tensor } from "../tfjs_types.ts";

/** Optimizers the loop can build (`momentum` is SGD with momentum 0.9, an older name). */
export type OptimizerName = "sgd" | "momentum" | "adam";
/** Allowed optimizer names. */
export const OPTIMIZERS: readonly OptimizerName[] = ["sgd", "momentum", "adam"];

/**
 * What happens to a final batch smaller than the batch size: `merge` it into the batch before
 * it (one batch of up to 2·batchSize − 1 images), `drop` it, or `keep` it as a smaller batch.
 */
export type { LastBatch };
/** Allowed {@linkcode LastBatch} modes. */
export const LAST_BATCH_MODES: readonly LastBatch[] = LAST_BATCH_POLICIES;

/** Learning-rate schedules. */
export type LrSchedule = "constant" | "step" | "cosine";
/** Allowed {@linkcode LrSchedule} names. */
export const LR_SCHEDULES: readonly LrSchedule[] = ["constant", "step", "cosine"];

/** A learning-rate schedule over the steps of a run. */
export interface ScheduleOptions {
  /** The schedule. @default {"constant"} */
  schedule?: LrSchedule;
  /** Steps of linear warm-up: the factor min(1, s/warmupSteps) at step s (from 1). @default {0} */
  warmupSteps?: number;
  /** `step`: factor applied every `stepEvery` steps. @default {0.1} */
  gamma?: number;
  /** `step`: period in steps. @default {1} */
  stepEvery?: number;
  /** `cosine`: total steps of the run. @default {1} */
  totalSteps?: number;
}

/** Options of {@linkcode createOptimizer}. */
export interface OptimizerOptions {
  /** SGD's momentum (0: plain SGD). @default {0} */
  sgdMomentum?: number;
  /** Nesterov momentum (SGD with sgdMomentum > 0). @default {false} */
  nesterov?: boolean;
}

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
  optimizerInstance?: Optimizer;
  /** SGD's momentum and Nesterov flag, when the optimizer is built here. */
  optimizerOptions?: OptimizerOptions;
  /** L2 weight decay: wd·w is added to every trainable weight's gradient. @default {0} */
  weightDecay?: number;
  /**
   * Learning-rate schedule; the rate at step s is lr·schedule(s)·min(1, s/warmupSteps), set on
   * the optimizer before the step. @default {constant, no warm-up}
   */
  schedule?: ScheduleOptions;
  /** Receives progress events. */
  onEvent?: (event: TrainEvent) => void;
  /** Called before each training step with the step (from 1), e.g. to follow a schedule. */
  onStep?: (step: number) => void;
  /**
   * Observers of training (diagnostics) that do not change it: `onGradients` receives the
   * gradients of every `gradientsEvery`-th step before they are applied (the step then runs as
   * computeGradients + applyGradients, which is what `minimize` does), and `afterStep` is
   * awaited after every step's update. The tensors passed are disposed after the call.
   */
  observer?: TrainObserver;
  /** Called after each epoch's evaluation, before the next epoch starts (checkpoints go here). */
  onEpochEnd?: (record: EpochRecord, optimizer: Optimizer) => Promise<void> | void;
  /**
   * Ends training between two epochs: once it is aborted (by `onEpochEnd`, say), `train`
   * returns after the epoch that is running, with the records so far; `startEpoch` resumes it.
   */
  signal?: AbortSignal;
}

/** Observers of {@linkcode train} that read but do not change the training. */
export interface TrainObserver {
  /** Steps between two calls of `onGradients` (steps s with s % gradientsEvery = 0). */
  gradientsEvery: number;
  /** Receives the step (from 1) and the raw gradients by variable name, before the update. */
  onGradients: (step: number, grads: NamedTensorMap) => void;
  /** Awaited after every step's update, with the step (from 1) and the epoch (from 0). */
  afterStep?: (step: number, epoch: number) => Promise<void> | void;
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
  /**
   * Fraction of the epoch's training images classified correctly by the forward pass that
   * trained on them (batch statistics, weights before each step's update).
   */
  trainAccuracy?: number;
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
   * Creates the error with the step that produced the non-finite loss.
   *
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
 * @param name `sgd` (with `sgdMomentum`, `nesterov`; plain SGD is {@linkcode SgdOptimizer}),
 *   `momentum` (SGD, 0.9) or `adam`.
 * @param lr Learning rate.
 * @param options SGD's momentum and Nesterov flag.
 * @returns A tfjs optimizer.
 *
 * @example
 * ```ts
 * import { createOptimizer } from "./loop.ts";
 * const optimizer = createOptimizer("sgd", 0.001, { sgdMomentum: 0.9, nesterov: true });
 * optimizer.dispose();
 * ```
 */
export function createOptimizer(
  name: OptimizerName,
  lr: number,
  options: OptimizerOptions = {},
): Optimizer {
  const { sgdMomentum = 0, nesterov = false } = options;
  if (!(sgdMomentum >= 0 && sgdMomentum < 1)) {
    throw new Error(`createOptimizer: sgdMomentum must be in [0, 1), received ${sgdMomentum}`);
  }
  if (nesterov && !(sgdMomentum > 0) && name === "sgd") {
    throw new Error(`createOptimizer: nesterov needs sgdMomentum > 0, received ${sgdMomentum}`);
  }
  switch (name) {
    case "sgd":
      return sgdMomentum > 0 ? tf.train.momentum(lr, sgdMomentum, nesterov) : new SgdOptimizer(lr);
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
 * The factor a schedule applies to the learning rate at a step.
 *
 * - `constant`: 1; `step`: gamma^⌊(s−1)/stepEvery⌋; `cosine`: ½(1 + cos(π·(s−1)/totalSteps));
 * - times the warm-up factor min(1, s/warmupSteps) when warmupSteps > 0.
 *
 * @param step The step, from 1.
 * @param options The schedule.
 * @returns The factor.
 *
 * @example
 * ```ts
 * import { scheduleFactor } from "./loop.ts";
 * console.log(scheduleFactor(3, { schedule: "step", gamma: 0.5, stepEvery: 2 })); // 0.5
 * console.log(scheduleFactor(1, { warmupSteps: 4 })); // 0.25
 * ```
 */
export function scheduleFactor(step: number, options: ScheduleOptions = {}): number {
  const { schedule = "constant", warmupSteps = 0, gamma = 0.1, stepEvery = 1, totalSteps = 1 } =
    options;
  let factor = 1;
  if (schedule === "step") factor = gamma ** Math.floor((step - 1) / stepEvery);
  else if (schedule === "cosine") {
    factor = 0.5 * (1 + Math.cos((Math.PI * (step - 1)) / totalSteps));
  }
  if (warmupSteps > 0) factor *= Math.min(1, step / warmupSteps);
  return factor;
}

/**
 * Trains a classifier with mini-batch gradient descent.
 *
 * Each step runs `model.apply(xs, { training: true })` inside `optimizer.minimize`, so BN
 * layers normalize with batch statistics and update their running statistics once per step.
 * The loss is read back only every `logEvery` steps and at epoch ends, so the device is not
 * forced to synchronize on every step. Between steps the loop gives the event loop a turn every
 * `YIELD_EVERY_MS` of wall time (lib/train/yield.ts), so that timers and signal listeners run
 * during an epoch.
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
  model: LayersModel,
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
  const weightDecay = options.weightDecay ?? 0;
  if (!(weightDecay >= 0) || !Number.isFinite(weightDecay)) {
    throw new Error(`train: weightDecay must be a finite number >= 0, received ${weightDecay}`);
  }
  const optimizer = options.optimizerInstance ??
    createOptimizer(optimizerName, lr, options.optimizerOptions);
  const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const stepsPerEpoch = numBatches(data.count, { batchSize, lastBatch });
  const scheduled = options.schedule &&
    ((options.schedule.schedule ?? "constant") !== "constant" ||
      (options.schedule.warmupSteps ?? 0) > 0);
  const totalSteps = stepsPerEpoch * epochs;
  let step = stepsPerEpoch * startEpoch;
  options.onEvent?.({ type: "start", totalSteps, doneSteps: step });

  const records: EpochRecord[] = [];
  // Steps are synchronous: give the event loop a turn (timers, signals) between two of them,
  // at most every YIELD_EVERY_MS.
  const pacer = new Pacer();
  const started = performance.now();
  const firstStep = step;
  for (let epoch = startEpoch; epoch < epochs && !options.signal?.aborted; epoch++) {
    const epochStarted = performance.now();
    const steps: StepRecord[] = [];
    let lossSum: Scalar = tf.scalar(0);
    // The classes predicted at each step since they were last counted, with the batch's labels;
    // they are read and compared where the loop reads the loss anyway.
    const predictions = new _Predictions();
    let seen = 0;
    let batchCount = 0;
    for (const batch of batches(data, { batchSize, seed: epochSeed(seed, epoch), lastBatch })) {
      step++;
      batchCount++;
      seen += batch.labels.length;
      if (scheduled) _setLearningRate(optimizer, lr * scheduleFactor(step, options.schedule));
      options.onStep?.(step);
      let logits: Tensor | undefined;
      const objective = () => {
        // Kept past the step, so that the accuracy's ops stay off the gradient tape.
        logits = tf.keep(model.apply(batch.xs, { training: true }) as Tensor);
        return computeLoss(loss, logits, batch.ys);
      };
      const observer = options.observer && step % options.observer.gradientsEvery === 0
        ? options.observer
        : undefined;
      let batchLoss: Scalar;
      try {
        batchLoss = weightDecay > 0 || observer
          ? _minimizeWithDecay(optimizer, objective, variables, weightDecay, observer, step)
          : optimizer.minimize(objective, true, variables) as Scalar;
        predictions.add(tf.argMax(logits!, -1), batch.labels);
      } finally {
        logits?.dispose();
      }
      const nextSum = tf.add(lossSum, batchLoss) as Scalar;
      lossSum.dispose();
      lossSum = nextSum;
      if (step % logEvery === 0) {
        const value = (await batchLoss.data())[0];
        if (!Number.isFinite(value)) {
          batchLoss.dispose();
          lossSum.dispose();
          predictions.dispose();
          throw new NonFiniteLossError(epoch, step, value);
        }
        await predictions.count();
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
      await options.observer?.afterStep?.(step, epoch);
      await pacer.tick();
    }
    const trainLoss = (await lossSum.data())[0] / batchCount;
    const trainAccuracy = (await predictions.count()) / seen;
    lossSum.dispose();
    if (!Number.isFinite(trainLoss)) throw new NonFiniteLossError(epoch, step, trainLoss);
    const evalOptions = { batchSize: evalBatchSize, loss, lastBatch };
    const test = options.test ? await evaluate(model, options.test, evalOptions) : undefined;
    const record: EpochRecord = {
      epoch,
      step,
      trainLoss,
      trainAccuracy,
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

/**
 * Training steps per epoch: ⌈count/batchSize⌉ (`keep`), ⌊count/batchSize⌋ (`drop`), or
 * max(1, ⌊count/batchSize⌋) (`merge`).
 *
 * @param count Training images.
 * @param batchSize Images per batch.
 * @param lastBatch What happens to a smaller last batch.
 * @returns Steps per epoch.
 *
 * @example
 * ```ts
 * import { epochSteps } from "./loop.ts";
 * console.log(epochSteps(45, 20, "keep"), epochSteps(45, 20, "merge")); // 3 2
 * ```
 */
export function epochSteps(count: number, batchSize: number, lastBatch: LastBatch): number {
  return numBatches(count, { batchSize, lastBatch });
}

/**
 * The classes a training step predicted (argMax of its logits), kept as tensors until
 * {@linkcode _Predictions.count} reads them all in one transfer and compares them with the
 * labels in JavaScript: one kernel per step instead of a comparison, a cast, a sum and a
 * running add.
 */
class _Predictions {
  #pending: Tensor[] = [];
  #labels: Uint8Array[] = [];
  #correct = 0;

  /** Keeps a step's predicted classes (owned from now on) and its batch's labels. */
  add(predicted: Tensor, labels: Uint8Array): void {
    this.#pending.push(predicted);
    this.#labels.push(labels);
  }

  /** Reads the kept predictions; returns how many of every step's were correct. */
  async count(): Promise<number> {
    if (this.#pending.length === 0) return this.#correct;
    const all = this.#pending.length === 1 ? this.#pending[0] : tf.concat(this.#pending);
    let values: ArrayLike<number>;
    try {
      values = await all.data();
    } finally {
      if (all !== this.#pending[0]) all.dispose();
      this.dispose();
    }
    let i = 0;
    for (const labels of this.#labels) {
      for (const label of labels) if (values[i++] === label) this.#correct++;
    }
    this.#labels = [];
    return this.#correct;
  }

  /** Disposes the predictions not yet read. */
  dispose(): void {
    tf.dispose(this.#pending);
    this.#pending = [];
  }
}

function _setLearningRate(optimizer: Optimizer, lr: number) {
  const o = optimizer as unknown as {
    learningRate: number;
    setLearningRate?: (lr: number) => void;
  };
  if (o.learningRate === lr) return;
  if (o.setLearningRate) o.setLearningRate(lr);
  else o.learningRate = lr;
}

/**
 * One step as `optimizer.minimize` takes it (computeGradients, then applyGradients in the
 * variables' order), with L2 weight decay when wd > 0 (the gradient of each weight w gets wd·w
 * added) and the raw gradients shown to an observer first.
 */
function _minimizeWithDecay(
  optimizer: Optimizer,
  objective: () => Scalar,
  variables: tf.Variable[],
  weightDecay: number,
  observer?: TrainObserver,
  step = 0,
): Scalar {
  const { value, grads } = optimizer.computeGradients(objective, variables);
  observer?.onGradients(step, grads);
  const decayed = variables.map((v) => ({
    name: v.name,
    tensor: weightDecay > 0
      ? tf.tidy(() => tf.add(grads[v.name], tf.mul(v, weightDecay)))
      : grads[v.name],
  }));
  optimizer.applyGradients(decayed);
  tf.dispose(grads);
  if (weightDecay > 0) tf.dispose(decayed.map((g) => g.tensor));
  return value;
}

function _checkPositiveInteger(name: string, value: number) {
  if (!Number.isInteger(value) || value < 1) {
    throw new Error(`train: ${name} must be a positive integer, received ${value}`);
  }
}
