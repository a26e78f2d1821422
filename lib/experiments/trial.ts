/**
 * One trial of a plan: train (or resume) one variant with one seed, checkpoint every epoch,
 * and write `result.json`. Idempotent: a finished trial returns its result at once.
 *
 * @module
 */
import { type BackendInfo, initBackend } from "../backend.ts";
import { type Dataset, loadDataset } from "../data/mnist.ts";
import { createModel } from "../models/create_model.ts";
import type { Normalization, NormalizationOptions } from "../norms/normalization.ts";
import { writeJsonAtomic } from "../output/atomic.ts";
import { dropCheckpointWeights, loadCheckpoint, saveCheckpoint } from "../train/checkpoint.ts";
import { evaluate } from "../train/evaluate.ts";
import {
  appendDiagnostics,
  DIAGNOSTICS_FILE,
  diagnosticsChart,
  DiagnosticsRecorder,
  parseDiagnostics,
  readDiagnostics,
  truncateDiagnostics,
} from "../train/diagnostics.ts";
import { writeSvg } from "../output/plot.ts";
import {
  createOptimizer,
  epochSteps,
  NonFiniteLossError,
  train,
  type TrainEvent,
} from "../train/loop.ts";
import {
  configDifferences,
  DEFAULTS,
  type ExperimentConfig,
  parseNormalizeInput,
} from "./config.ts";
import { type Plan, type PlanTrial, readPlan } from "./plan.ts";
import { provenance } from "./provenance.ts";
import { acquireRunLock, RunLockedError } from "./run_lock.ts";
import {
  readJsonFile,
  readRunResult,
  type RunResult,
  type RunState,
  type TrialRecord,
} from "./results_dir.ts";
import type { LayersModel } from "../tfjs_types.ts";

/**
 * Builds the model of a trial: given the normalization variant and the trial's resolved
 * config, returns a fresh, uncompiled model mapping NHWC images to logits. The built-in one
 * is {@linkcode builtinModel}; a user's own factory gets the same checkpoints, resume, outputs,
 * seeds and sweeps.
 */
export type ModelFactory = (
  normalization: Normalization,
  config: ExperimentConfig,
) => LayersModel;

/** The training and test splits a trial uses. */
export interface TrialData {
  /** Training split. */
  train: Dataset;
  /** Test split. */
  test: Dataset;
}

/** Events of a trial (and so of an experiment), for progress displays. */
export type ExperimentEvent =
  | {
    type: "run";
    variant: Normalization;
    seed: number;
    index: number;
    total: number;
    fromEpoch: number;
    trial?: string;
  }
  | { type: "train"; variant: Normalization; seed: number; event: TrainEvent; trial?: string }
  | { type: "done"; result: RunResult; trial?: string }
  | { type: "skipped"; variant: Normalization; seed: number; trial?: string }
  | { type: "diverged"; variant: Normalization; seed: number; message: string; trial?: string };

/** Options of {@linkcode runTrial}. */
export interface RunTrialOptions {
  /** The model factory. @default {builtinModel} */
  model?: ModelFactory;
  /** The data; loaded from `config.dataset` (once per process) when absent. */
  data?: TrialData;
  /** Receives progress events. */
  onEvent?: (event: ExperimentEvent) => void;
  /** Called after each epoch's checkpoint and after the result is written. */
  afterEpoch?: () => Promise<unknown> | unknown;
  /** The plan, when the caller has read it already. */
  plan?: Plan;
}

/** Options of {@linkcode runTrialPart}. */
export interface RunTrialPartOptions extends RunTrialOptions {
  /**
   * Asked after each epoch's checkpoint while epochs remain, with the epochs done: true ends
   * the call there, the trial unfinished and its lock released, for whichever process takes
   * it next to resume from that checkpoint. @default {never}
   */
  handOver?: (epochsDone: number) => Promise<boolean> | boolean;
}

/** Name of the file a failed trial leaves in its directory: `{ message, at }`. */
export const ERROR_FILE = "error.json";

/**
 * Trains (or resumes) trial `index` of the plan in `expDir`.
 *
 * A trial whose `result.json` exists returns it at once (nothing is loaded). Otherwise the
 * data is loaded, the model built, the last checkpoint restored, and training continues to
 * the configured epochs, saving a checkpoint after every epoch; the numbers equal those of an
 * uninterrupted trial. A failure with an exception leaves `error.json` ({ message, at }) in
 * the trial directory and rethrows; a success removes it. A loss that turns NaN ends the trial
 * with status `diverged`.
 *
 * @param expDir The experiment directory (with `plan.json`).
 * @param index The trial's index in the plan.
 * @param options Model factory, data, progress.
 * @returns The trial's result.
 *
 * @example Plan a tiny experiment, run its second trial twice (the second call only reads)
 * ```ts
 * import { resolveConfig } from "./config.ts";
 * import { prepareTrain } from "./runner.ts";
 * import { runTrial } from "./trial.ts";
 * const dir = await Deno.makeTempDir();
 * const config = resolveConfig("smoke", { limit: 40, testLimit: 20, logEvery: 1 });
 * await prepareTrain(config, dir);
 * const result = await runTrial(dir, 1);
 * console.log(result.variant, (await runTrial(dir, 1)).test_accuracy === result.test_accuracy);
 * // bnlab true
 * ```
 */
export async function runTrial(
  expDir: string,
  index: number,
  options: RunTrialOptions = {},
): Promise<RunResult> {
  return (await runTrialPart(expDir, index, options))!;
}

/**
 * {@linkcode runTrial}, with a way to stop between epochs: trains trial `index` until it
 * finishes or `options.handOver` says to stop after an epoch, then releases the trial. A trial
 * resumed from where a part ended gives the numbers of one trained in a single call, so the
 * processes that share a plan's trials may pass them between them (scripts/trial.ts' `--share`).
 *
 * @param expDir The experiment directory (with `plan.json`).
 * @param index The trial's index in the plan.
 * @param options As {@linkcode runTrial}'s, and `handOver`.
 * @returns The trial's result, or `undefined` when it stopped unfinished.
 *
 * @example Two epochs, one call each
 * ```ts
 * import { resolveConfig } from "./config.ts";
 * import { prepareTrain } from "./runner.ts";
 * import { runTrialPart } from "./trial.ts";
 * const dir = await Deno.makeTempDir();
 * const config = resolveConfig("smoke", { variants: ["none"], epochs: 2, limit: 40, testLimit: 20 });
 * await prepareTrain(config, dir);
 * console.log(await runTrialPart(dir, 0, { handOver: () => true })); // undefined
 * console.log((await runTrialPart(dir, 0, { handOver: () => true }))?.epochs); // 2
 * ```
 */
export async function runTrialPart(
  expDir: string,
  index: number,
  options: RunTrialPartOptions = {},
): Promise<RunResult | undefined> {
  const plan = options.plan ?? await readPlan(expDir);
  if (!plan) throw new Error(`runTrial: ${expDir} has no plan.json`);
  const trial = plan.trials[index];
  if (!Number.isInteger(index) || !trial) {
    throw new Error(
      `runTrial: index must be an integer in [0, ${plan.trials.length - 1}], received ${index}`,
    );
  }
  const dir = `${expDir}/${trial.dir}`;
  const variant = trial.config.variants[0];
  const existing = await readRunResult(dir);
  if (existing) {
    options.onEvent?.({ type: "skipped", variant, seed: trial.config.seed, trial: trial.id });
    return existing;
  }
  await Deno.mkdir(dir, { recursive: true });
  const lock = await acquireRunLock(dir); // one owner per run: another live owner is an error
  try {
    const result = await readRunResult(dir) ?? // finished by another process meanwhile
      await _train(trial, dir, { ...options, index, total: plan.trials.length });
    await Deno.remove(`${dir}/${ERROR_FILE}`).catch(() => {});
    return result;
  } catch (error) {
    if (error instanceof RunLockedError) throw error;
    await Deno.mkdir(dir, { recursive: true });
    await writeJsonAtomic(`${dir}/${ERROR_FILE}`, {
      message: (error as Error).message,
      at: new Date().toISOString(),
    });
    throw error;
  } finally {
    await lock.release();
  }
}

/**
 * The part of a trial's config its checkpoint is checked against: every field that changes
 * what is trained (not where it is logged or how it is split over processes).
 */
function _checkpointConfig(config: Readonly<ExperimentConfig>): Record<string, unknown> {
  const { logEvery: _l, preset: _p, diagnostics: _d, ...rest } = config;
  return rest;
}

/**
 * The built-in model of a trial: `createModel(config.model, …)` with the config's
 * normalization options, activation, initialization, seed, input shape and classes.
 *
 * @param normalization The variant.
 * @param config The trial's config.
 * @param data Shapes: height, width, channels and class count (MNIST's when absent).
 * @returns The model.
 *
 * @example
 * ```ts
 * import { resolveConfig } from "./config.ts";
 * import { builtinModel } from "./trial.ts";
 * const model = builtinModel("bnlab", resolveConfig("smoke"));
 * console.log(model.outputs[0].shape); // [ null, 10 ]
 * model.dispose();
 * ```
 */
export function builtinModel(
  normalization: Normalization,
  config: ExperimentConfig,
  data?: Pick<Dataset, "height" | "width" | "channels" | "numClasses">,
): LayersModel {
  const normalizationOptions: NormalizationOptions & { groups?: number } = {
    tfjsMomentum: config.tfjsMomentum,
    epsilon: config.epsilon,
    groups: config.groups,
    batchNorm: {
      momentum: config.momentum,
      momentumConvention: config.momentumConvention,
      epsilon: config.epsilon,
      gradient: config.bnGradient,
      ...(config.runningVariance !== "biased" ? { runningVariance: config.runningVariance } : {}),
      ...(normalization === "renorm"
        ? {
          renorm: true,
          renormClipping: {
            rMax: config.renormRMax,
            dMax: config.renormDMax,
            warmupSteps: config.renormWarmupSteps,
          },
        }
        : {}),
      ...(normalization === "ghost" ? { virtualBatchSize: config.virtualBatchSize } : {}),
    },
  };
  return createModel(config.model, {
    normalization,
    normalizationOptions,
    activation: config.activation,
    init: config.init,
    seed: config.seed,
    hidden: config.hidden,
    inputShape: data ? [data.height, data.width, data.channels ?? 1] : undefined,
    numClasses: data?.numClasses,
  });
}

const _dataCache = new Map<string, Promise<TrialData>>();

/**
 * Loads (once per process and per dataset, limits and input standardization) the splits a
 * config names, standardized per channel as `normalizeInput` says: x' = (x − mean_c)/std_c,
 * with `auto` taking the mean and the population standard deviation of the training split.
 *
 * @param config A resolved config.
 * @returns The training and test splits.
 *
 * @example
 * ```ts
 * import { resolveConfig } from "./config.ts";
 * import { loadTrialData } from "./trial.ts";
 * const data = await loadTrialData(resolveConfig("smoke", { limit: 10, testLimit: 5 }));
 * console.log(data.train.count, data.test.count); // 10 5
 * ```
 */
export function loadTrialData(config: ExperimentConfig): Promise<TrialData> {
  const key = JSON.stringify([
    config.dataset,
    config.limit,
    config.testLimit,
    config.normalizeInput,
  ]);
  if (!_dataCache.has(key)) {
    const loading = _loadData(config);
    loading.catch(() => _dataCache.delete(key));
    _dataCache.set(key, loading);
  }
  return _dataCache.get(key)!;
}

async function _loadData(config: ExperimentConfig): Promise<TrialData> {
  const [train, test] = await Promise.all([
    loadDataset(config.dataset, { split: "train", limit: config.limit ?? undefined }),
    loadDataset(config.dataset, { split: "test", limit: config.testLimit ?? undefined }),
  ]);
  const spec = parseNormalizeInput(config.normalizeInput);
  if (spec === null) return { train, test };
  const channels = train.channels ?? 1;
  let mean: number[];
  let std: number[];
  if (spec === "auto") {
    ({ mean, std } = channelStatistics(train));
  } else {
    const broadcast = (values: number[]) =>
      values.length === 1 ? new Array(channels).fill(values[0]) : values;
    [mean, std] = [broadcast(spec.mean), broadcast(spec.std)];
    if (mean.length !== channels) {
      throw new Error(
        `normalizeInput: ${config.dataset} has ${channels} channels, received ${spec.mean.length} ` +
          `means and ${spec.std.length} standard deviations`,
      );
    }
  }
  return { train: _standardize(train, mean, std), test: _standardize(test, mean, std) };
}

/**
 * The mean and population standard deviation of each channel of a dataset's images.
 *
 * @param data The dataset.
 * @returns One mean and one standard deviation per channel.
 *
 * @example
 * ```ts
 * import { channelStatistics } from "./trial.ts";
 * const data = { name: "toy", split: "train" as const, count: 2, height: 1, width: 1,
 *   numClasses: 2, images: new Float32Array([0, 1]), labels: new Uint8Array([0, 1]) };
 * console.log(channelStatistics(data)); // { mean: [ 0.5 ], std: [ 0.5 ] }
 * ```
 */
export function channelStatistics(data: Dataset): { mean: number[]; std: number[] } {
  const channels = data.channels ?? 1;
  const sum = new Float64Array(channels);
  const squares = new Float64Array(channels);
  for (let i = 0; i < data.images.length; i++) {
    const x = data.images[i];
    sum[i % channels] += x;
    squares[i % channels] += x * x;
  }
  const n = data.images.length / channels;
  const mean = Array.from(sum, (s) => s / n);
  const std = Array.from(squares, (q, c) => Math.sqrt(Math.max(0, q / n - mean[c] ** 2)));
  if (std.some((s) => !(s > 0))) {
    throw new Error(
      `normalizeInput auto: a channel of ${data.name} is constant (std ${std.join(", ")})`,
    );
  }
  return { mean, std };
}

function _standardize(data: Dataset, mean: number[], std: number[]): Dataset {
  const channels = data.channels ?? 1;
  const images = new Float32Array(data.images.length);
  for (let i = 0; i < images.length; i++) {
    const c = i % channels;
    images[i] = (data.images[i] - mean[c]) / std[c];
  }
  return { ...data, images };
}

/** Variants whose training-mode output depends on the other samples of the batch. */
const _BATCH_STATISTICS: readonly Normalization[] = ["bnlab", "tfjs", "renorm", "ghost"];

/**
 * Checks, before any training, that no batch of a trial would hold a single image where a
 * normalization needs batch statistics (training batches, and the test batches of the
 * batch-statistics evaluation), and that the data is not empty.
 *
 * @param config The trial's config.
 * @param counts Training and test images.
 * @throws {Error} Naming the batch, the counts and the ways out.
 *
 * @example
 * ```ts
 * import { resolveConfig } from "./config.ts";
 * import { checkBatches } from "./trial.ts";
 * const config = resolveConfig("smoke", { variants: ["bnlab"], batchSize: 9, lastBatch: "keep" });
 * try { checkBatches(config, { train: 19, test: 20 }); } catch (e) { console.log((e as Error).message.slice(0, 40)); }
 * // bnlab-seed0: lastBatch keep leaves a tra
 * ```
 */
export function checkBatches(
  config: ExperimentConfig,
  counts: { train: number; test: number },
): void {
  const variant = config.variants[0];
  const name = `${variant}-seed${config.seed}`;
  if (counts.train < 1 || counts.test < 1) {
    throw new Error(
      `${name}: the dataset is empty (training images ${counts.train}, test images ${counts.test})`,
    );
  }
  if (!_BATCH_STATISTICS.includes(variant)) return;
  for (const [split, count] of [["training", counts.train], ["test", counts.test]] as const) {
    const smallest = _smallestBatch(count, config.batchSize, config.lastBatch);
    if (smallest === 1) {
      throw new Error(
        `${name}: lastBatch ${config.lastBatch} leaves a ${split} batch of 1 image (${count} ` +
          `images, batch size ${config.batchSize}); ${variant} normalizes with batch ` +
          `statistics and needs at least 2 per batch: change --batch-size, --limit/--test-limit` +
          (config.lastBatch === "merge" ? "" : " or use --last-batch merge"),
      );
    }
  }
}

function _smallestBatch(count: number, batchSize: number, lastBatch: string): number {
  if (count < batchSize) return lastBatch === "drop" ? 0 : count;
  const remainder = count % batchSize;
  if (remainder === 0 || lastBatch === "drop") return batchSize;
  return lastBatch === "keep" ? remainder : batchSize;
}

async function _train(
  trial: PlanTrial,
  dir: string,
  options: RunTrialPartOptions & { index: number; total: number },
): Promise<RunResult | undefined> {
  const { config } = trial;
  const variant = config.variants[0];
  const seed = config.seed;
  const backend = await initBackend(config.backend);
  await _recordStart(dir, trial, backend);
  const data = options.data ?? await loadTrialData(config);
  const { train: trainData, test: testData } = data;
  checkBatches(config, { train: trainData.count, test: testData.count });
  const model = options.model
    ? options.model(variant, config)
    : builtinModel(variant, config, trainData);
  const optimizer = createOptimizer(config.optimizer, config.lr, {
    sgdMomentum: config.sgdMomentum,
    nesterov: config.nesterov,
  });
  const checkpointDir = `${dir}/checkpoint`;
  let state: RunState;
  try {
    state = await loadCheckpoint<RunState>(checkpointDir, {
      model,
      optimizer,
      config: _checkpointConfig(config),
      savedDefaults: _checkpointConfig(DEFAULTS),
    }) ??
      { epochsDone: 0, records: [], wallSeconds: 0 };
  } catch (error) {
    model.dispose();
    optimizer.dispose();
    throw error;
  }
  const onEvent = options.onEvent;
  onEvent?.({
    type: "run",
    variant,
    seed,
    index: options.index,
    total: options.total,
    fromEpoch: state.epochsDone,
    trial: trial.id,
  });
  const diagnostics = parseDiagnostics(config.diagnostics);
  const diagnosticsPath = `${dir}/${DIAGNOSTICS_FILE}`;
  const recorder = diagnostics
    ? new DiagnosticsRecorder(model, {
      every: diagnostics.every,
      probe: testData,
      probeSize: diagnostics.probe,
    })
    : undefined;
  if (recorder) await truncateDiagnostics(diagnosticsPath, state.epochsDone);
  const stepsPerEpoch = epochSteps(trainData.count, config.batchSize, config.lastBatch);
  let status: RunResult["status"] = "done";
  let batchStats: number | null = null;
  let segmentStart = performance.now();
  const handedOver = new AbortController();
  try {
    await train(model, trainData, {
      epochs: config.epochs,
      batchSize: config.batchSize,
      lr: config.lr,
      loss: config.loss,
      seed,
      startEpoch: state.epochsDone,
      logEvery: config.logEvery,
      test: testData,
      evalBatchSize: config.evalBatchSize,
      optimizerInstance: optimizer,
      weightDecay: config.weightDecay,
      lastBatch: config.lastBatch,
      schedule: {
        schedule: config.lrSchedule,
        warmupSteps: config.warmupEpochs * stepsPerEpoch,
        gamma: config.lrStepGamma,
        stepEvery: config.lrStepEvery * stepsPerEpoch,
        totalSteps: config.epochs * stepsPerEpoch,
      },
      onEvent: (event) => onEvent?.({ type: "train", variant, seed, event, trial: trial.id }),
      observer: recorder?.observer,
      onEpochEnd: async (record) => {
        if (recorder) await appendDiagnostics(diagnosticsPath, recorder.takeRows());
        const now = performance.now();
        state.wallSeconds += (now - segmentStart) / 1000;
        segmentStart = now;
        state.epochsDone = record.epoch + 1;
        state.records.push(record);
        await saveCheckpoint(checkpointDir, {
          model,
          optimizer,
          state,
          tag: String(state.epochsDone),
          config: _checkpointConfig(config),
        });
        await options.afterEpoch?.();
        if (state.epochsDone < config.epochs && await options.handOver?.(state.epochsDone)) {
          handedOver.abort();
        }
      },
      signal: handedOver.signal,
    });
    if (variant !== "none" && !handedOver.signal.aborted) {
      const evaluateOptions = {
        batchSize: config.batchSize,
        loss: config.loss,
        statistics: "batch" as const,
        lastBatch: config.lastBatch,
      };
      batchStats = (await evaluate(model, testData, evaluateOptions)).accuracy;
    }
  } catch (error) {
    if (!(error instanceof NonFiniteLossError)) throw error;
    status = "diverged";
    state.wallSeconds += (performance.now() - segmentStart) / 1000;
    onEvent?.({ type: "diverged", variant, seed, message: error.message, trial: trial.id });
  } finally {
    if (recorder) {
      await appendDiagnostics(diagnosticsPath, recorder.takeRows());
      recorder.dispose();
    }
    model.dispose();
    optimizer.dispose();
  }
  if (handedOver.signal.aborted) return undefined;
  if (recorder) {
    const rows = await readDiagnostics(diagnosticsPath);
    if (rows.length) {
      await writeSvg(
        `${dir}/diagnostics.svg`,
        diagnosticsChart(rows, `Normalization inputs over training: ${trial.id}`),
      );
    }
  }

  const last = state.records.at(-1);
  const counts = last?.test?.predictedCounts ?? [];
  const bn = variant === "bnlab" || variant === "renorm" || variant === "ghost";
  const result: RunResult = {
    variant,
    seed,
    dataset: config.dataset,
    loss: config.loss,
    activation: config.activation,
    init: config.init,
    optimizer: config.optimizer,
    epochs: state.epochsDone,
    batch_size: config.batchSize,
    lr: config.lr,
    momentum: variant === "tfjs" ? config.tfjsMomentum : bn ? config.momentum : null,
    momentum_convention: variant === "tfjs" ? "keras" : bn ? config.momentumConvention : null,
    train_images: trainData.count,
    test_images: testData.count,
    test_accuracy: last?.test?.accuracy ?? NaN,
    test_correct: last?.test?.correct ?? NaN,
    test_loss: last?.test?.loss ?? NaN,
    test_accuracy_batch_stats: batchStats,
    train_loss: last?.trainLoss ?? NaN,
    top_class_share: counts.length ? Math.max(...counts) / testData.count : NaN,
    wall_seconds: Math.round(state.wallSeconds * 100) / 100,
    backend: backend.name,
    status,
    model: options.model ? "custom-factory" : config.model,
    train_accuracy: last?.trainAccuracy ?? null,
  };
  await writeJsonAtomic(`${dir}/result.json`, result);
  // A finished run keeps its records (checkpoint.json), not its weights; a diverged one keeps
  // its last good checkpoint.
  if (status === "done") await dropCheckpointWeights(checkpointDir);
  onEvent?.({ type: "done", result, trial: trial.id });
  await options.afterEpoch?.();
  return result;
}

/** Checks `trial.json` against the trial's config (a resume under another is refused). */
async function _recordStart(dir: string, trial: PlanTrial, backend: BackendInfo) {
  const path = `${dir}/trial.json`;
  const previous = await readJsonFile<TrialRecord>(path);
  if (previous) {
    const diff = configDifferences(
      { ...trial.config, ...previous.config, variants: previous.config.variants },
      trial.config,
    );
    if (diff.length) {
      throw new Error(
        `${path}: the trial was trained with another config; differences (saved → planned): ${
          diff.join("; ")
        }`,
      );
    }
  }
  await Deno.mkdir(dir, { recursive: true });
  const record: TrialRecord = {
    id: trial.id,
    config: trial.config,
    starts: [...(previous?.starts ?? []), {
      at: new Date().toISOString(),
      provenance: provenance(),
      backend,
    }],
  };
  await writeJsonAtomic(path, record);
}
