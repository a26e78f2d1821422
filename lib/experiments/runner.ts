/**
 * The experiment runner: trains every variant × seed of a config, checkpoints each epoch,
 * resumes where a run stopped, and writes the results directory.
 *
 * Layout of the output directory:
 * - `config.json`: the resolved config, versions, machine and backend;
 * - `runs/<variant>-seed<seed>/`: the run's checkpoint, and `result.json` once it finished;
 * - `summary.csv`, `history.csv`, `curves.svg`: rebuilt from `runs/` after every run.
 *
 * @module
 */
import { type BackendInfo, initBackend } from "../backend.ts";
import { type Dataset, loadDataset } from "../data/mnist.ts";
import { createLeNet, type Normalization } from "../models/lenet.ts";
import { withFileLock, writeJsonAtomic } from "../output/atomic.ts";
import { dropCheckpointWeights, loadCheckpoint, saveCheckpoint } from "../train/checkpoint.ts";
import { checkBatchesNormalizable } from "../data/validate.ts";
import { acquireRunLock } from "./run_lock.ts";
import { evaluate } from "../train/evaluate.ts";
import { createOptimizer, type EpochRecord, NonFiniteLossError, train } from "../train/loop.ts";
import type { TrainEvent } from "../train/loop.ts";
import { DEFAULTS, type ExperimentConfig, validateConfig } from "./config.ts";
import { type Provenance, provenance } from "./provenance.ts";
import { writeExperimentReport } from "./report_files.ts";
import { assignParts } from "./workers.ts";

/** One finished (or stopped) run: a row of `summary.csv`. */
export interface RunResult {
  variant: Normalization;
  seed: number;
  dataset: string;
  loss: string;
  activation: string;
  init: string;
  optimizer: string;
  epochs: number;
  batch_size: number;
  lr: number;
  /** The BN momentum as configured (empty for `none`). */
  momentum: number | null;
  /** The convention `momentum` is written in (empty for `none`). */
  momentum_convention: string | null;
  train_images: number;
  test_images: number;
  test_accuracy: number;
  test_correct: number;
  test_loss: number;
  /**
   * Test accuracy when BN layers normalize each test batch of `batch_size` images with its own
   * statistics instead of the running ones (empty for `none`).
   */
  test_accuracy_batch_stats: number | null;
  train_loss: number;
  /** Share of test images predicted as the most predicted class (1.0 = a constant predictor). */
  top_class_share: number;
  wall_seconds: number;
  backend: string;
  /** `done`, or `diverged` when a NaN/infinite loss stopped the run. */
  status: "done" | "diverged";
}

/** What a run keeps in its checkpoint between epochs. */
interface RunState {
  epochsDone: number;
  records: EpochRecord[];
  wallSeconds: number;
}

/** Events of {@linkcode runExperiment}, for progress displays. */
export type ExperimentEvent =
  | {
    type: "run";
    variant: Normalization;
    seed: number;
    index: number;
    total: number;
    fromEpoch: number;
  }
  | { type: "train"; variant: Normalization; seed: number; event: TrainEvent }
  | { type: "done"; result: RunResult }
  | { type: "skipped"; variant: Normalization; seed: number }
  | { type: "diverged"; variant: Normalization; seed: number; message: string };

/** Options of {@linkcode runExperiment}. */
export interface RunExperimentOptions {
  /** Results directory (created if needed). */
  out: string;
  /** Receives progress events. */
  onEvent?: (event: ExperimentEvent) => void;
  /**
   * Run only this worker's share of {@linkcode runPlan}: the runs `assignParts` gives to
   * `part` of `of`, weighted by {@linkcode RELATIVE_STEP_COST}.
   */
  part?: { part: number; of: number };
  /**
   * Rebuild summary.csv, table.csv, history.csv and curves.svg after every epoch, so a long
   * run's progress is readable while it trains. @default {true}
   */
  writeReport?: boolean;
}

/** One process that ran part of an experiment: its first start, a worker, or a resume. */
export interface ExperimentStart {
  /** When the process started on the experiment (ISO 8601). */
  at: string;
  /** Versions, machine and git commit of that process. */
  provenance: Provenance;
  /** The backend it ran on (with the BLAS library, for wasm). */
  backend: BackendInfo;
}

/** The contents of `config.json`. */
export interface ExperimentRecord {
  config: ExperimentConfig;
  /** The provenance of the first start; `starts` has every start's. */
  provenance: Provenance;
  /** The backend of the first start. */
  backend: BackendInfo;
  started: string;
  /**
   * Every process that ran part of the experiment, oldest first, so a resumed run says which
   * code and kernels produced which epochs (epochs are in each run's `history.csv`). Worker
   * processes that start at the same moment may record one start less (last write wins).
   * Records written before this field existed lack it.
   */
  starts?: ExperimentStart[];
}

/**
 * Runs (or resumes) an experiment.
 *
 * Runs that already wrote `result.json` are skipped; a run with a checkpoint continues from
 * its last completed epoch and produces exactly the numbers of an uninterrupted run.
 *
 * @param config A resolved config.
 * @param options Output directory and event sink.
 * @returns The results of all runs, in variant × seed order.
 *
 * @example A one-epoch run on 40 images with the cpu backend
 * ```ts ignore
 * import { resolveConfig } from "./config.ts";
 * import { runExperiment } from "./runner.ts";
 * const config = resolveConfig("smoke", { limit: 40, testLimit: 40, variants: ["none"] });
 * const results = await runExperiment(config, { out: await Deno.makeTempDir() });
 * console.log(results.length); // 1
 * ```
 */
export async function runExperiment(
  config: ExperimentConfig,
  options: RunExperimentOptions,
): Promise<RunResult[]> {
  validateConfig(config);
  const { out } = options;
  const backend = await initBackend(config.backend);
  await Deno.mkdir(`${out}/runs`, { recursive: true });

  const fullPlan = runPlan(config);
  const parts = options.part
    ? assignParts(fullPlan.map((r) => RELATIVE_STEP_COST[r.variant]), options.part.of)
    : undefined;
  const plan = fullPlan.filter((_, i) => !parts || parts[i] === options.part!.part);
  // A process that only loads finished runs checks the config but records no start.
  const finished = await Promise.all(
    plan.map((r) => readRunResult(runDir(out, r.variant, r.seed))),
  );
  await _writeOrCheckConfig(out, config, backend, finished.some((r) => r === undefined));
  const [trainData, testData] = await Promise.all([
    loadDataset(config.dataset, { split: "train", limit: config.limit ?? undefined }),
    loadDataset(config.dataset, { split: "test", limit: config.testLimit ?? undefined }),
  ]);
  const results: RunResult[] = [];
  for (const [index, { variant, seed }] of plan.entries()) {
    const dir = runDir(out, variant, seed);
    const existing = finished[index];
    if (existing) {
      options.onEvent?.({ type: "skipped", variant, seed });
      results.push(existing);
      continue;
    }
    const lock = await acquireRunLock(dir); // one owner per run: another live owner is an error
    let result: RunResult;
    try {
      result = await readRunResult(dir) ?? // finished by another process meanwhile
        await _runOne(config, backend, { variant, seed, dir, trainData, testData }, {
          index,
          total: plan.length,
          onEvent: options.onEvent,
          afterEpoch: (options.writeReport ?? true) ? () => writeExperimentReport(out) : undefined,
        });
    } finally {
      await lock.release();
    }
    results.push(result);
    if (options.writeReport ?? true) await writeExperimentReport(out);
  }
  return results;
}

/**
 * The (variant, seed) pairs of a config, in the order they run.
 *
 * @param config A resolved config.
 * @returns One entry per run.
 *
 * @example
 * ```ts
 * import { resolveConfig } from "./config.ts";
 * import { runPlan } from "./runner.ts";
 * console.log(runPlan(resolveConfig("smoke", { seeds: 2 })).length); // 6
 * ```
 */
export function runPlan(config: ExperimentConfig): { variant: Normalization; seed: number }[] {
  return config.variants.flatMap((variant) =>
    Array.from({ length: config.seeds }, (_, i) => ({ variant, seed: config.seed + i }))
  );
}

/**
 * The relative cost of a training step by variant, for splitting runs over worker processes
 * (`--workers`): LeNet at batch 20 on wasm, samples/s of no BN over that of each variant
 * (`bench/results.csv`, rounded). A scheduling estimate only; no result depends on it.
 */
export const RELATIVE_STEP_COST: Readonly<Record<Normalization, number>> = Object.freeze({
  none: 1,
  custom: 1.6,
  tfjs: 1.8,
});

/**
 * The directory of one run inside a results directory.
 *
 * @param out Results directory.
 * @param variant Normalization variant.
 * @param seed Seed.
 * @returns The path.
 *
 * @example
 * ```ts
 * import { runDir } from "./runner.ts";
 * console.log(runDir("results/x", "tfjs", 2)); // "results/x/runs/tfjs-seed2"
 * ```
 */
export function runDir(out: string, variant: Normalization, seed: number): string {
  return `${out}/runs/${variant}-seed${seed}`;
}

/**
 * Reads a finished run's result, or `undefined` if it has not finished.
 *
 * @param dir The run's directory.
 * @returns The result.
 *
 * @example
 * ```ts
 * import { readRunResult } from "./runner.ts";
 * console.log(await readRunResult("/nonexistent")); // undefined
 * ```
 */
export async function readRunResult(dir: string): Promise<RunResult | undefined> {
  try {
    return JSON.parse(await Deno.readTextFile(`${dir}/result.json`));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/**
 * Reads a run's per-epoch records (from its result or its last checkpoint).
 *
 * @param dir The run's directory.
 * @returns The records; empty when the run has not completed an epoch.
 *
 * @example
 * ```ts
 * import { readRunRecords } from "./runner.ts";
 * console.log((await readRunRecords("/nonexistent")).length); // 0
 * ```
 */
export async function readRunRecords(dir: string): Promise<EpochRecord[]> {
  try {
    const manifest = JSON.parse(await Deno.readTextFile(`${dir}/checkpoint/checkpoint.json`));
    return (manifest.state as RunState).records;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
}

async function _runOne(
  config: ExperimentConfig,
  backend: BackendInfo,
  run: { variant: Normalization; seed: number; dir: string; trainData: Dataset; testData: Dataset },
  progress: {
    index: number;
    total: number;
    onEvent?: (event: ExperimentEvent) => void;
    afterEpoch?: () => Promise<unknown>;
  },
): Promise<RunResult> {
  const { variant, seed, dir, trainData, testData } = run;
  const model = createLeNet({
    normalization: variant,
    activation: config.activation,
    init: config.init,
    seed,
    momentum: variant === "tfjs" ? config.tfjsMomentum : undefined,
    epsilon: config.epsilon,
    batchNorm: {
      momentum: config.momentum,
      momentumConvention: config.momentumConvention,
      epsilon: config.epsilon,
      gradient: config.bnGradient,
    },
  });
  const optimizer = createOptimizer(config.optimizer, config.lr);
  const checkpointDir = `${dir}/checkpoint`;
  const runConfig = { ...config, variants: [variant], seeds: 1, seed }; // this run's own config
  if (variant !== "none") {
    // The final batch-statistics evaluation must not fail after all the training.
    checkBatchesNormalizable(model, testData.count, {
      batchSize: config.batchSize,
      what: "runExperiment: the batch-statistics evaluation of the test set",
    });
  }
  const state: RunState = await loadCheckpoint<RunState>(checkpointDir, {
    model,
    optimizer,
    config: runConfig,
  }) ??
    { epochsDone: 0, records: [], wallSeconds: 0 };
  progress.onEvent?.({
    type: "run",
    variant,
    seed,
    index: progress.index,
    total: progress.total,
    fromEpoch: state.epochsDone,
  });

  let status: RunResult["status"] = "done";
  let batchStats: number | null = null;
  let segmentStart = performance.now();
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
      onEvent: (event) => progress.onEvent?.({ type: "train", variant, seed, event }),
      onEpochEnd: async (record) => {
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
          config: runConfig,
        });
        await progress.afterEpoch?.();
      },
    });
    if (variant !== "none") {
      const evaluation = await evaluate(model, testData, {
        batchSize: config.batchSize,
        loss: config.loss,
        statistics: "batch",
      });
      batchStats = evaluation.accuracy;
    }
  } catch (error) {
    if (!(error instanceof NonFiniteLossError)) throw error;
    status = "diverged";
    state.wallSeconds += (performance.now() - segmentStart) / 1000;
    progress.onEvent?.({ type: "diverged", variant, seed, message: error.message });
  } finally {
    model.dispose();
    optimizer.dispose();
  }

  const last = state.records.at(-1);
  const counts = last?.test?.predictedCounts ?? [];
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
    momentum: variant === "none"
      ? null
      : variant === "tfjs"
      ? config.tfjsMomentum
      : config.momentum,
    momentum_convention: variant === "none"
      ? null
      : variant === "tfjs"
      ? "keras"
      : config.momentumConvention,
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
  };
  await writeJsonAtomic(`${dir}/result.json`, result);
  // A finished run keeps its records, not its weights; a diverged one keeps its last good epoch.
  if (status === "done") await dropCheckpointWeights(checkpointDir);
  progress.onEvent?.({ type: "done", result });
  return result;
}

/** Checks config.json against `config` and records this start; worker processes take turns. */
function _writeOrCheckConfig(
  out: string,
  config: ExperimentConfig,
  backend: BackendInfo,
  training: boolean,
): Promise<void> {
  const path = `${out}/config.json`;
  return withFileLock(path, () => _updateConfig(path, config, backend, training));
}

async function _updateConfig(
  path: string,
  config: ExperimentConfig,
  backend: BackendInfo,
  training: boolean,
) {
  let previous: ExperimentRecord | undefined;
  try {
    previous = JSON.parse(await Deno.readTextFile(path));
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  if (previous) {
    // A field added to the config after the run started held its default then.
    const { variants: _a, seeds: _b, ...before } = { ...DEFAULTS, ...previous.config };
    const { variants: _c, seeds: _d, ...now } = config;
    if (JSON.stringify(before) !== JSON.stringify(now)) {
      throw new Error(
        `runExperiment: ${path} was written with a different config; resume with the same ` +
          `settings (only variants and seeds may change). Saved: ${JSON.stringify(before)}; ` +
          `received: ${JSON.stringify(now)}`,
      );
    }
  }
  if (previous && !training) return;
  const now: ExperimentStart = { at: new Date().toISOString(), provenance: provenance(), backend };
  const record: ExperimentRecord = {
    config: previous
      ? {
        ...config,
        variants: [...new Set([...previous.config.variants, ...config.variants])],
        seeds: Math.max(previous.config.seeds, config.seeds),
      }
      : config,
    provenance: previous?.provenance ?? now.provenance,
    backend: previous?.backend ?? backend,
    started: previous?.started ?? now.at,
    starts: [...(previous?.starts ?? []), now],
  };
  await writeJsonAtomic(path, record);
}
