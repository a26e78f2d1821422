/**
 * The experiment runner: plans the trials of a config (variants × seeds) or of a sweep
 * (points × variants × seeds), runs them with an executor, and collects the outputs.
 *
 * - {@linkcode prepareTrain} / {@linkcode prepareSweep}: check everything (config, resume
 *   compatibility, dataset), then write `config.json`/`sweep.json` and `plan.json`; nothing is
 *   written when a check fails, or with `write: false` (a dry run).
 * - {@linkcode runLocal}: the local executor, trials in this process or in N worker processes
 *   (`deno task trial DIR --index …`), each loading the data only when it has a trial to train.
 * - {@linkcode runExperiment} / {@linkcode runSweep}: all three for the API, with a user's
 *   model factory and dataset if given.
 *
 * The layout of the directory is described in `results_dir.ts`.
 *
 * @module
 */
import { initBackend } from "../backend.ts";
import { datasetCount, loadDataset } from "../data/mnist.ts";
import type { Normalization } from "../norms/normalization.ts";
import { withFileLock, writeJsonAtomic } from "../output/atomic.ts";
import { collect } from "./collect.ts";
import {
  configDifferences,
  type ExperimentConfig,
  upgradeConfig,
  validateConfig,
} from "./config.ts";
import type { SlurmFlags } from "./flags.ts";
import { buildPlan, type Plan, readPlan, trainTrials, writePlan } from "./plan.ts";
import { formatPlanPreview, previewPlan } from "./plan_preview.ts";
import { provenance } from "./provenance.ts";
import {
  type ExperimentRecord,
  type ExperimentStart,
  readJsonFile,
  readRunResult,
  type RunResult,
} from "./results_dir.ts";
import { readRunLock } from "./run_lock.ts";
import { failureSince } from "./shared_trials.ts";
import {
  type SweepDefinition,
  type SweepOutputs,
  sweepTrials,
  writeSweepOutputs,
} from "./sweeps.ts";
import { runSlurmExecutor } from "./slurm.ts";
import {
  builtinModel,
  checkBatches,
  ERROR_FILE,
  type ExperimentEvent,
  type ModelFactory,
  runTrial,
  type TrialData,
} from "./trial.ts";
import { runWorkers, workersShareCores } from "./workers.ts";

/** Options of {@linkcode runExperiment} and {@linkcode runSweep}. */
export interface RunExperimentOptions {
  /** Results directory (created if needed). */
  out: string;
  /** Receives progress events. */
  onEvent?: (event: ExperimentEvent) => void;
  /**
   * Builds each trial's model instead of the built-in `config.model`; it gets the variant
   * and the trial's config (its seed in `config.seed`). @default {builtinModel}
   */
  model?: ModelFactory;
  /**
   * Training and test data instead of loading `config.dataset` (then `dataset`, `limit`,
   * `testLimit` and `normalizeInput` do not apply; the data is used as given).
   */
  data?: TrialData;
  /**
   * Worker processes (built-in models and datasets only); bounded by the trials left and by
   * free memory ({@linkcode workerCount}). @default {1: trials run in this process}
   */
  workers?: number;
  /**
   * Rebuild the outputs after every epoch, so a long run's progress is readable while it
   * trains (they are always rebuilt at the end). @default {true}
   */
  writeOutputs?: boolean;
  /** Receives each line a worker process writes, with the worker's index. */
  onLine?: (worker: number, line: string) => void;
}

/**
 * The relative cost of a training step by variant, for sharing trials among worker processes
 * (lib/experiments/shared_trials.ts): LeNet at batch 20 on wasm with two workers side by side,
 * about what the `report` preset's trials take per epoch over no BN's (`results/report-timed`);
 * variants not timed there are taken as bnlab's. A scheduling estimate only; no result depends
 * on it.
 */
export const RELATIVE_STEP_COST: Readonly<Record<Normalization, number>> = Object.freeze({
  none: 1,
  bnlab: 1.3,
  tfjs: 1.55,
  group: 1.3,
  layer: 1.3,
  renorm: 1.3,
  ghost: 1.3,
});

/**
 * Memory set aside per worker process when bounding `--workers` by free memory: the runtime,
 * a full MNIST-sized training split and the model (an estimate, not a measurement).
 */
export const WORKER_MEMORY_BYTES = 768 * 1024 * 1024;

/**
 * Runs (or resumes) an experiment: plans variants × seeds, trains what has not finished,
 * and writes the outputs.
 *
 * Trials that already wrote `result.json` are skipped; a trial with a checkpoint continues
 * from its last completed epoch and produces exactly the numbers of an uninterrupted one.
 *
 * @param config A resolved config.
 * @param options Output directory, model factory, data, workers and event sink.
 * @returns The results of this config's trials, in variant × seed order.
 * @throws {Error} When a trial fails (after the others ran), naming each failed trial.
 *
 * @example A user's own model through the runner
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { resolveConfig } from "./config.ts";
 * import { runExperiment } from "./runner.ts";
 * const config = resolveConfig("smoke", {
 *   limit: 40, testLimit: 20, variants: ["none"], logEvery: 1,
 * });
 * const model = () =>
 *   tf.sequential({
 *     layers: [tf.layers.flatten({ inputShape: [28, 28, 1] }), tf.layers.dense({ units: 10 })],
 *   });
 * const results = await runExperiment(config, { out: await Deno.makeTempDir(), model });
 * console.log(results.length, results[0].model); // 1 custom-factory
 * ```
 */
export async function runExperiment(
  config: ExperimentConfig,
  options: RunExperimentOptions,
): Promise<RunResult[]> {
  const plan = await prepareTrain(config, options.out, {
    checkData: !options.data,
    checkModel: !options.model && !options.data,
    supplied: _supplied(options),
  });
  const mine = new Set((await trainTrials(config, options.out)).map((t) => t.id));
  await runLocal(options.out, plan, { ...options, only: mine });
  const results: RunResult[] = [];
  for (const trial of plan.trials.filter((t) => mine.has(t.id))) {
    const result = await readRunResult(`${options.out}/${trial.dir}`);
    if (result) results.push(result);
  }
  return results;
}

/**
 * Runs (or resumes) a sweep: plans every point × variant × seed, trains what has not
 * finished, and writes `sweep.csv`, `sweep_table.csv` and `sweep.svg`/`.png`.
 *
 * @param sweep The sweep (a named one from `SWEEPS`, or `gridSweep(parseGrids(…))`).
 * @param base The base config every point starts from.
 * @param options Output directory, model factory, data, workers and event sink.
 * @returns The outputs' rows.
 *
 * @example Two learning rates, no normalization, 40 images
 * ```ts
 * import { resolveConfig } from "./config.ts";
 * import { runSweep } from "./runner.ts";
 * import { gridSweep, parseGrids } from "./sweeps.ts";
 * const sweep = gridSweep(parseGrids(["lr=0.1,0.01"]));
 * const base = resolveConfig("smoke", {
 *   variants: ["none"], limit: 40, testLimit: 20, logEvery: 1,
 * });
 * const { rows } = await runSweep(sweep, base, { out: await Deno.makeTempDir() });
 * console.log(rows.map((r) => r.lr)); // [ 0.1, 0.01 ]
 * ```
 */
export async function runSweep(
  sweep: SweepDefinition,
  base: ExperimentConfig,
  options: RunExperimentOptions,
): Promise<SweepOutputs> {
  const plan = await prepareSweep(sweep, base, options.out, {
    checkData: !options.data,
    checkModel: !options.model && !options.data,
    supplied: _supplied(options),
  });
  await runLocal(options.out, plan, options);
  return await writeSweepOutputs(options.out, plan);
}

/** What a caller of runExperiment or runSweep may give in place of the config's model or data. */
export type Supplied = NonNullable<ExperimentRecord["supplied"]>[number];

/**
 * Refuses a results directory trained with a model or data given to runExperiment or runSweep,
 * for the command-line tools that would build the config's model and load its dataset
 * instead (`deno task trial`).
 *
 * @param dir The results directory.
 * @throws {Error} Naming what was supplied and how to resume.
 *
 * @example
 * ```ts
 * import { checkBuiltinParts } from "./runner.ts";
 * await checkBuiltinParts(await Deno.makeTempDir()); // no record: nothing to refuse
 * ```
 */
export async function checkBuiltinParts(dir: string): Promise<void> {
  for (const file of ["config.json", "sweep.json"]) {
    const record = await readJsonFile<{ supplied?: Supplied[] }>(`${dir}/${file}`);
    if (record) _checkRecorded(`${dir}/${file}`, await _recordedSupplied(dir, record.supplied), []);
  }
}

/**
 * What a directory was trained with, and which parts that covers: its record's `supplied`
 * (every part), or where the record lacks it, what its finished trials say of the model only
 * (`model: "custom-factory"` in a result.json for a model factory, a built-in model's name for
 * none; no result says whether data was given); undefined when nothing tells.
 */
async function _recordedSupplied(
  dir: string,
  recorded: readonly Supplied[] | undefined,
): Promise<{ parts: readonly Supplied[]; covers: readonly Supplied[] } | undefined> {
  if (recorded !== undefined) return { parts: recorded, covers: ["model", "data"] };
  let builtin = false;
  for (const trial of (await readPlan(dir))?.trials ?? []) {
    const model = (await readRunResult(`${dir}/${trial.dir}`).catch(() => undefined))?.model;
    if (model === "custom-factory") return { parts: ["model"], covers: ["model"] };
    if (model !== undefined) builtin = true;
  }
  return builtin ? { parts: [], covers: ["model"] } : undefined;
}

function _supplied(options: RunExperimentOptions): Supplied[] {
  return [...(options.model ? ["model" as const] : []), ...(options.data ? ["data" as const] : [])];
}

/** {@linkcode checkSupplied} over the parts a record covers. */
function _checkRecorded(
  path: string,
  recorded: { parts: readonly Supplied[]; covers: readonly Supplied[] } | undefined,
  given: readonly Supplied[],
): void {
  if (recorded === undefined) return;
  checkSupplied(path, recorded.parts, given.filter((part) => recorded.covers.includes(part)));
}

/**
 * Refuses to continue a directory with other supplied parts than it was trained with: a model
 * or data given to runExperiment the first time and not now (the CLI resuming it would train
 * the config's model, or load its dataset, in their place), or the other way round. Nothing
 * is refused where `recorded` is undefined (nothing tells what the directory was trained with).
 *
 * @param path The record's file, for the message.
 * @param recorded What the directory was trained with, if known.
 * @param given What this start gives.
 * @throws {Error} When they differ, saying how to resume.
 *
 * @example
 * ```ts
 * import { checkSupplied } from "./runner.ts";
 * checkSupplied("x/config.json", ["model"], ["model"]); // the same: no error
 * ```
 */
export function checkSupplied(
  path: string,
  recorded: readonly Supplied[] | undefined,
  given: readonly Supplied[],
): void {
  if (recorded === undefined) return;
  const [before, now] = [[...recorded].sort(), [...given].sort()];
  if (before.join() === now.join()) return;
  const describe = (list: readonly Supplied[]) =>
    list.length === 0
      ? "the config's own model and dataset"
      : list.map((s) => s === "model" ? "a model factory (`model`)" : "data (`data`)").join(
        " and ",
      ) + " given to runExperiment or runSweep";
  throw new Error(
    `${path} was trained with ${describe(before)}, and this start has ${describe(now)}: ` +
      (before.length
        ? "resume it by calling runExperiment or runSweep with the same again (the CLI would " +
          "build the config's model and load its dataset in their place)"
        : "use another results directory, so that one table holds one model and dataset"),
  );
}

/** Options of {@linkcode prepareTrain} and {@linkcode prepareSweep}. */
export interface PrepareOptions {
  /** Check that the dataset loads before writing anything. @default {true} */
  checkData?: boolean;
  /**
   * What the caller gives in place of the config's model or dataset (runExperiment's and
   * runSweep's `model` and `data`), recorded in `config.json`/`sweep.json`; a directory must be
   * resumed with the same, since the CLI would build the config's model and load its dataset
   * in their place. @default {[]}
   */
  supplied?: readonly Supplied[];
  /** Build each distinct built-in model once (and dispose it) before writing anything. @default {checkData} */
  checkModel?: boolean;
  /**
   * Write `config.json`/`sweep.json` and `plan.json`; false runs every check and returns the
   * plan, writing nothing (a dry run). @default {true}
   */
  write?: boolean;
}

/**
 * Checks a train experiment and writes its `config.json` and `plan.json`. A directory that
 * holds an experiment already must have the same settings (variants and seeds may be added;
 * a directory from before `plan.json` existed gets one, finding its runs by their old names).
 * Every check runs before anything is written.
 *
 * @param config A resolved config.
 * @param out The experiment directory.
 * @param options Whether to check the dataset, and whether to write.
 * @returns The plan (written unless `write` is false).
 *
 * @example
 * ```ts
 * import { resolveConfig } from "./config.ts";
 * import { prepareTrain } from "./runner.ts";
 * const plan = await prepareTrain(resolveConfig("smoke", { backend: "cpu" }), await Deno.makeTempDir());
 * console.log(plan.kind, plan.trials.length); // train 3
 * ```
 */
export async function prepareTrain(
  config: ExperimentConfig,
  out: string,
  options: PrepareOptions = {},
): Promise<Plan> {
  validateConfig(config);
  const path = `${out}/config.json`;
  const previous = await readJsonFile<ExperimentRecord>(path);
  let saved: ExperimentConfig | undefined;
  if (previous) {
    saved = upgradeConfig(previous.config as unknown as Record<string, unknown>);
    const { variants: _a, seeds: _b, ...before } = saved;
    const { variants: _c, seeds: _d, ...now } = config;
    const diff = configDifferences(before as ExperimentConfig, now as ExperimentConfig);
    if (diff.length) {
      throw new Error(
        `${path} was written with a different config; resume with the same settings (only ` +
          `variants and seeds may change). Differences (saved → given): ${diff.join("; ")}`,
      );
    }
    _checkRecorded(path, await _recordedSupplied(out, previous.supplied), options.supplied ?? []);
  }
  const plan = buildPlan("train", await trainTrials(config, out), await readPlan(out));
  if (options.checkData ?? true) await _checkPlanData(plan, options.checkModel ?? true);
  if (options.write === false) return plan;
  let pending = false;
  for (const trial of plan.trials) {
    if (!(await readRunResult(`${out}/${trial.dir}`))) pending = true;
  }
  // A directory whose trials all finished is only read: nothing is rewritten.
  if (previous && !pending && JSON.stringify(await readPlan(out)) === JSON.stringify(plan)) {
    return plan;
  }
  const backend = await initBackend(config.backend);
  const start: ExperimentStart = {
    at: new Date().toISOString(),
    provenance: provenance(),
    backend,
  };
  const record: ExperimentRecord = {
    config: saved
      ? {
        ...config,
        variants: [...new Set([...saved.variants, ...config.variants])],
        seeds: Math.max(saved.seeds, config.seeds),
      }
      : config,
    provenance: previous?.provenance ?? start.provenance,
    backend: previous?.backend ?? backend,
    started: previous?.started ?? start.at,
    starts: [...(previous?.starts ?? []), start],
    ...(previous?.provenanceNote ? { provenanceNote: previous.provenanceNote } : {}),
    supplied: [...(options.supplied ?? [])],
  };
  await Deno.mkdir(out, { recursive: true });
  await _writeRecord(path, record, start);
  await writePlan(out, plan);
  _planStarts.set(plan, start.at);
  return plan;
}

/** The contents of `sweep.json`. */
export interface SweepRecord {
  /** The named sweep, or `grid`. */
  sweep: string;
  /** `--grid` specs of a grid sweep, as given. */
  grids?: string[];
  /** The base config. */
  config: ExperimentConfig;
  /** The points. */
  trials: { id: string; overrides: Partial<ExperimentConfig> }[];
  /** Provenance of the first start. */
  provenance: ReturnType<typeof provenance>;
  /** When the sweep was first started. */
  started: string;
  /** Every process that started or resumed the sweep, oldest first. */
  starts?: ExperimentStart[];
  /** What `scripts/mark_provenance.ts` found wrong with the record (kept on resume). */
  provenanceNote?: string;
  /** What the caller gave in place of the config's model or dataset ({@linkcode Supplied}). */
  supplied?: Supplied[];
}

/**
 * Checks a sweep and writes its `sweep.json` and `plan.json`; a directory that holds a sweep
 * already must hold the same sweep and base config (seeds may be added). Every check runs
 * before anything is written.
 *
 * @param sweep The sweep.
 * @param base The base config.
 * @param out The sweep directory.
 * @param options Whether to check the dataset and whether to write; the `--grid` specs to
 *   record.
 * @returns The plan (written unless `write` is false).
 *
 * @example
 * ```ts
 * import { resolveConfig } from "./config.ts";
 * import { prepareSweep } from "./runner.ts";
 * import { SWEEPS } from "./sweeps.ts";
 * const plan = await prepareSweep(SWEEPS.momentum, resolveConfig("smoke"), await Deno.makeTempDir());
 * console.log(plan.kind, plan.sweep, plan.trials.length); // sweep momentum 10
 * ```
 */
export async function prepareSweep(
  sweep: SweepDefinition,
  base: ExperimentConfig,
  out: string,
  options: PrepareOptions & { grids?: string[] } = {},
): Promise<Plan> {
  validateConfig(base);
  const path = `${out}/sweep.json`;
  const previous = await readJsonFile<SweepRecord>(path);
  if (previous) {
    if (previous.sweep !== sweep.name) {
      throw new Error(`${path} holds the ${previous.sweep} sweep, not ${sweep.name}`);
    }
    const { seeds: _a, ...before } = upgradeConfig(
      previous.config as unknown as Record<string, unknown>,
    );
    const { seeds: _b, ...now } = base;
    const diff = configDifferences(before as ExperimentConfig, now as ExperimentConfig);
    if (JSON.stringify(previous.grids ?? []) !== JSON.stringify(options.grids ?? [])) {
      diff.push(
        `grid: ${JSON.stringify(previous.grids ?? [])} → ${JSON.stringify(options.grids ?? [])}`,
      );
    }
    if (diff.length) {
      throw new Error(
        `${path} was written with a different sweep config; resume with the same settings ` +
          `(only seeds may change). Differences (saved → given): ${diff.join("; ")}`,
      );
    }
    _checkRecorded(path, await _recordedSupplied(out, previous.supplied), options.supplied ?? []);
  }
  const plan = buildPlan(
    "sweep",
    await sweepTrials(sweep, base, out),
    await readPlan(out),
    sweep.name === "grid" ? undefined : sweep.name,
  );
  if (options.checkData ?? true) await _checkPlanData(plan, options.checkModel ?? true);
  if (options.write === false) return plan;
  const start: ExperimentStart = { at: new Date().toISOString(), provenance: provenance() };
  const record: SweepRecord = {
    sweep: sweep.name,
    ...(options.grids?.length ? { grids: options.grids } : {}),
    config: previous ? { ...base, seeds: Math.max(previous.config.seeds, base.seeds) } : base,
    trials: sweep.trials(base),
    provenance: previous?.provenance ?? start.provenance,
    started: previous?.started ?? start.at,
    starts: [...(previous?.starts ?? []), start],
    ...(previous?.provenanceNote ? { provenanceNote: previous.provenanceNote } : {}),
    supplied: [...(options.supplied ?? [])],
  };
  await Deno.mkdir(out, { recursive: true });
  await _writeRecord(path, record, start);
  await writePlan(out, plan);
  _planStarts.set(plan, start.at);
  return plan;
}

/**
 * Checks that a config's dataset can be read and holds the images `limit` and `testLimit` ask
 * for: its test split, with a shape and class count, and of the training split the header of
 * an installed dataset (`mnist`, `fashion-mnist`) or the whole of a user's IDX directory
 * (`idx:`), whose training files may be truncated, swapped or hold a label out of range.
 *
 * @param config A config.
 * @returns The training and test images the config uses.
 * @throws {Error} Naming the dataset and what failed.
 *
 * @example
 * ```ts
 * import { resolveConfig } from "./config.ts";
 * import { checkDataset } from "./runner.ts";
 * await checkDataset(resolveConfig("smoke")); // no error
 * ```
 */
export async function checkDataset(
  config: ExperimentConfig,
): Promise<{ train: number; test: number }> {
  try {
    const test = await loadDataset(config.dataset, { split: "test" });
    if (config.testLimit !== null && config.testLimit > test.count) {
      throw new Error(`testLimit ${config.testLimit} is more than the ${test.count} test images`);
    }
    const trainCount = config.dataset.startsWith("idx:")
      ? (await loadDataset(config.dataset, { split: "train" })).count
      : await datasetCount(config.dataset, "train");
    if (config.limit !== null && config.limit > trainCount) {
      throw new Error(`limit ${config.limit} is more than the ${trainCount} training images`);
    }
    return { train: config.limit ?? trainCount, test: config.testLimit ?? test.count };
  } catch (error) {
    throw new Error(`dataset ${config.dataset}: ${(error as Error).message}`);
  }
}

/**
 * Checks the data of every trial of a plan (see checkDataset and checkBatches), and builds
 * each distinct built-in model once on the data's shape, so that a model that cannot be
 * built (an unknown option, groups that do not divide a layer, images too small) fails here.
 */
async function _checkPlanData(plan: Plan, checkModel: boolean): Promise<void> {
  const built = new Set<string>();
  const counts = new Map<string, { train: number; test: number }>();
  for (const trial of plan.trials) {
    const { dataset, limit, testLimit } = trial.config;
    const data = JSON.stringify([dataset, limit, testLimit]);
    if (!counts.has(data)) counts.set(data, await checkDataset(trial.config));
    checkBatches(trial.config, counts.get(data)!);
    if (!checkModel) continue;
    const { seed: _s, seeds: _n, ...shape } = trial.config;
    const key = JSON.stringify(shape);
    if (built.has(key)) continue;
    built.add(key);
    await initBackend(trial.config.backend);
    const test = await loadDataset(trial.config.dataset, { split: "test", limit: 1 });
    try {
      builtinModel(trial.config.variants[0], trial.config, test).dispose();
    } catch (error) {
      throw new Error(`${trial.id}: cannot build the model: ${(error as Error).message}`);
    }
  }
}

/**
 * How many worker processes to start: the request, bounded by the trials left to run and
 * by the available memory over {@linkcode WORKER_MEMORY_BYTES}; at least 1.
 *
 * @param requested `--workers`.
 * @param pending Trials without a result.
 * @param availableBytes Free memory. @default {Deno.systemMemoryInfo().available}
 * @returns The number of processes.
 *
 * @example
 * ```ts
 * import { workerCount, WORKER_MEMORY_BYTES } from "./runner.ts";
 * console.log(workerCount(100, 3, 64 * WORKER_MEMORY_BYTES)); // 3
 * console.log(workerCount(8, 10, 2 * WORKER_MEMORY_BYTES)); // 2
 * ```
 */
export function workerCount(
  requested: number,
  pending: number,
  availableBytes?: number,
): number {
  if (Math.min(requested, pending) <= 1) return 1;
  const available = availableBytes ?? Deno.systemMemoryInfo().available;
  const byMemory = Math.floor(available / WORKER_MEMORY_BYTES);
  return Math.max(1, Math.min(requested, pending, byMemory));
}

/** Options of {@linkcode runLocal}. */
export interface RunLocalOptions extends Omit<RunExperimentOptions, "out"> {
  /** Run only the trials with these ids. @default {all} */
  only?: Set<string>;
}

/**
 * The local executor: runs the plan's unfinished trials, in this process or in worker
 * processes, then writes the outputs ({@linkcode collect}). A failing trial does not stop
 * the others; the failures are reported together at the end.
 *
 * @param expDir The experiment directory.
 * @param plan Its plan.
 * @param options Workers, model factory, data, events.
 * @throws {Error} Naming each failed trial and its `error.json`.
 *
 * @example
 * ```ts
 * import { resolveConfig } from "./config.ts";
 * import { readRunResult } from "./results_dir.ts";
 * import { prepareTrain, runLocal } from "./runner.ts";
 * const dir = await Deno.makeTempDir();
 * const config = resolveConfig("smoke", {
 *   variants: ["none"], limit: 40, testLimit: 20, logEvery: 1,
 * });
 * const plan = await prepareTrain(config, dir);
 * await runLocal(dir, plan, { workers: 1 });
 * console.log((await readRunResult(`${dir}/${plan.trials[0].dir}`))?.epochs); // 1
 * ```
 */
export async function runLocal(
  expDir: string,
  plan: Plan,
  options: RunLocalOptions = {},
): Promise<void> {
  const started = performance.now();
  const since = Date.now();
  const pending: Plan["trials"] = [];
  for (const trial of plan.trials) {
    if (options.only && !options.only.has(trial.id)) continue;
    if (await readRunResult(`${expDir}/${trial.dir}`)) {
      const variant = trial.config.variants[0];
      options.onEvent?.({ type: "skipped", variant, seed: trial.config.seed, trial: trial.id });
    } else pending.push(trial);
  }
  const workers = workerCount(options.workers ?? 1, pending.length);
  const failures: string[] = [];
  if (workers > 1) {
    if (options.model || options.data) {
      throw new Error(
        "runLocal: a model factory or a dataset object cannot cross into worker processes; " +
          "use workers: 1",
      );
    }
    // The workers share the trials (lib/experiments/shared_trials.ts): each takes the one
    // with the most training left, and in the last stretch hands it back between epochs when
    // another falls behind.
    let workersFailed: string | undefined;
    try {
      await runWorkers({
        script: new URL("../../scripts/trial.ts", import.meta.url),
        args: [
          expDir,
          "--collect",
          "--quiet",
          "--index",
          pending.map((t) => t.index).join(","),
          ...(workersShareCores() ? ["--share-cores"] : []),
        ],
        argsFor: (i) => ["--share", `${i}/${workers}`, "--since", String(since)],
        workers,
        onLine: options.onLine,
      });
    } catch (error) {
      workersFailed = (error as Error).message;
    }
    // Every trial the workers were given: finished, failed in this execution (its error.json
    // written since), or left unfinished (held by another process, or its worker died).
    for (const trial of pending) {
      const dir = `${expDir}/${trial.dir}`;
      try {
        if (await readRunResult(dir)) continue;
      } catch (error) {
        failures.push(`${trial.id}: ${(error as Error).message}`);
        continue;
      }
      const error = await failureSince(dir, since).catch(() => undefined);
      if (error) {
        failures.push(`${trial.id}: ${error.message} (${dir}/${ERROR_FILE})`);
        continue;
      }
      const owner = await readRunLock(dir);
      failures.push(
        `${trial.id}: unfinished${
          owner ? `, held by process ${owner.pid} on ${owner.host} (${dir}/run.lock)` : ""
        }`,
      );
    }
    if (workersFailed !== undefined && failures.length === 0) failures.push(workersFailed);
  } else {
    const writeOutputs = options.writeOutputs ?? true;
    for (const trial of pending) {
      try {
        await runTrial(expDir, trial.index, {
          plan,
          model: options.model,
          data: options.data,
          onEvent: options.onEvent,
          afterEpoch: writeOutputs ? () => collect(expDir) : undefined,
        });
      } catch (error) {
        failures.push(
          `${trial.id}: ${(error as Error).message} (${expDir}/${trial.dir}/error.json)`,
        );
      }
    }
  }
  await collect(expDir);
  if (pending.length) {
    await _recordSitting(expDir, plan, { workers, trials: pending.length, started });
  }
  if (failures.length) {
    throw new Error(
      `${failures.length === 1 ? "a trial" : "trials"} failed; the others finished and ` +
        `rerunning the same command resumes: ${failures.join("; ")}`,
    );
  }
}

/** The start each plan prepared in this process added to its record (its `at`). */
const _planStarts = new WeakMap<Plan, string>();

/** Options of the record files' lock: a few file operations, never held long. */
const _RECORD_LOCK = { timeoutMs: 10000, staleMs: 5000 };

/**
 * Writes an experiment's or a sweep's record with `start` appended to the starts on disk
 * (under the record's lock, so that processes preparing the same directory keep each other's).
 */
async function _writeRecord(
  path: string,
  record: { starts?: ExperimentStart[] },
  start: ExperimentStart,
): Promise<void> {
  await withFileLock(path, async () => {
    const current = await readJsonFile<{ starts?: ExperimentStart[] }>(path);
    const starts = current?.starts ?? record.starts?.slice(0, -1) ?? [];
    await writeJsonAtomic(path, { ...record, starts: [...starts, start] });
  }, _RECORD_LOCK);
}

/**
 * Notes on the start `plan`'s prepare added to its record (`config.json`, or `sweep.json` for
 * a sweep) how long this local execution took (its trials, with their workers' start-up and
 * the outputs rebuilt after each epoch), on how many worker processes, and how many trials it
 * ran; nothing for a plan not prepared in this process.
 */
async function _recordSitting(
  expDir: string,
  plan: Plan,
  sitting: { workers: number; trials: number; started: number },
) {
  const at = _planStarts.get(plan);
  if (at === undefined) return;
  const path = `${expDir}/${plan.kind === "sweep" ? "sweep.json" : "config.json"}`;
  await withFileLock(path, async () => {
    const record = await readJsonFile<{ starts?: ExperimentStart[] }>(path);
    const start = record?.starts?.find((s) => s.at === at);
    if (!record || !start) return;
    start.seconds = Math.round((performance.now() - sitting.started) / 10) / 100;
    start.workers = sitting.workers;
    start.trials = sitting.trials;
    await writeJsonAtomic(path, record);
  }, _RECORD_LOCK);
}

/** Options of {@linkcode executePlan}. */
export interface ExecutePlanOptions extends RunLocalOptions {
  /** Where the trials run. @default {"local"} */
  executor?: "local" | "slurm";
  /** The Slurm executor's options. */
  slurm?: SlurmFlags;
  /**
   * Start nothing: the local executor prints what it would do ({@linkcode previewPlan}) and
   * writes nothing (prepare the plan with `write: false` to keep the directory untouched);
   * the Slurm executor prints its batch scripts instead of submitting them. @default {false}
   */
  dryRun?: boolean;
}

/**
 * Hands a plan to an executor: `local` ({@linkcode runLocal}) or `slurm` (one job array
 * of the plan's unfinished trials and a collect job, through `lib/experiments/slurm.ts`'s
 * `runSlurmExecutor`). With `dryRun`, each prints what it would do instead.
 *
 * @param expDir The experiment directory.
 * @param plan Its plan.
 * @param options The executor, its options, `dryRun`, and the local executor's options.
 *
 * @example
 * ```ts
 * import { resolveConfig } from "./config.ts";
 * import { executePlan, prepareTrain } from "./runner.ts";
 * const dir = await Deno.makeTempDir();
 * const config = resolveConfig("smoke", {
 *   variants: ["none"], limit: 40, testLimit: 20, logEvery: 1,
 * });
 * await executePlan(dir, await prepareTrain(config, dir), { executor: "local" });
 * console.log((await Deno.stat(`${dir}/summary.csv`)).isFile); // true
 * ```
 */
export async function executePlan(
  expDir: string,
  plan: Plan,
  options: ExecutePlanOptions,
): Promise<void> {
  const { executor = "local", dryRun = false, only } = options;
  if (executor === "local" && dryRun) {
    console.log(formatPlanPreview(expDir, await previewPlan(expDir, plan, only)));
  } else if (executor === "local") {
    await runLocal(expDir, plan, options);
  } else {
    const { cpus, ...slurm } = options.slurm ?? {};
    await runSlurmExecutor(expDir, { ...slurm, cpusPerTask: cpus, dryRun, only });
  }
}
