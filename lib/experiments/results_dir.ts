/**
 * The layout of a results directory and its readers.
 *
 * An experiment directory holds:
 * - `plan.json`: every trial with its resolved config and its directory ({@linkcode Plan});
 * - `config.json` (train) or `sweep.json` (sweep): the config as given, with provenance;
 * - one directory per trial (`runs/<variant>-seed<seed>/` for train,
 *   `trials/<point>/runs/<variant>-seed<seed>/` for a sweep) with `checkpoint/`,
 *   `trial.json` (its config and every process that trained it), `result.json` once finished,
 *   and `error.json` ({ message, at }) while its last attempt failed with an error;
 * - the outputs: `summary.csv`, `table.csv`, `history.csv`, `curves.svg`/`.png`,
 *   `accuracy.svg`/`.png` (train) or `sweep.csv`, `sweep_table.csv`, `sweep.svg`/`.png`
 *   (sweep), rebuilt from the trials.
 *
 * Directories whose runs name bnlab's BN by its alias `custom` (`runs/custom-seed0/`) are found by
 * {@linkcode existingRunDir} and read with `bnlab` as the variant.
 *
 * @module
 */
import type { BackendInfo } from "../backend.ts";
import { type Normalization, NORMALIZATION_ALIASES } from "../norms/normalization.ts";
import type { EpochRecord } from "../train/loop.ts";
import type { ExperimentConfig } from "./config.ts";
import type { Provenance } from "./provenance.ts";

/** One finished (or stopped) run: a row of `summary.csv`. */
export interface RunResult {
  /** Normalization variant. */
  variant: Normalization;
  /** Seed of the run. */
  seed: number;
  /** The model (`lenet` for results written before models were a field). */
  model?: string;
  /** Dataset, e.g. `mnist`. */
  dataset: string;
  /** Loss function, e.g. `xent`. */
  loss: string;
  /** Activation function, e.g. `relu`. */
  activation: string;
  /** Weight initialization scheme. */
  init: string;
  /** Optimizer, e.g. `sgd`. */
  optimizer: string;
  /** Epochs trained. */
  epochs: number;
  /** Images per training step. */
  batch_size: number;
  /** Learning rate. */
  lr: number;
  /** The BN momentum as configured (empty for `none`, `group`, `layer`). */
  momentum: number | null;
  /** The convention `momentum` is written in (empty where `momentum` is). */
  momentum_convention: string | null;
  /** Training images used. */
  train_images: number;
  /** Test images evaluated. */
  test_images: number;
  /** Test accuracy with the running statistics (inference mode), a fraction. */
  test_accuracy: number;
  /** Correct test predictions. */
  test_correct: number;
  /** Mean test loss. */
  test_loss: number;
  /**
   * Test accuracy when normalization layers use each test batch of `batch_size` images' own
   * statistics instead of the running ones (empty for `none`).
   */
  test_accuracy_batch_stats: number | null;
  /** Mean training loss of the last epoch. */
  train_loss: number;
  /** Training accuracy of the last epoch (absent from results that do not record it). */
  train_accuracy?: number | null;
  /** Share of test images predicted as the most predicted class (1.0 = a constant predictor). */
  top_class_share: number;
  /** Wall-clock seconds of the run. */
  wall_seconds: number;
  /** tfjs backend, e.g. `wasm`. */
  backend: string;
  /** `done`, or `diverged` when a NaN/infinite loss stopped the run. */
  status: "done" | "diverged";
}

/** What a run keeps in its checkpoint between epochs. */
export interface RunState {
  /** Epochs completed. */
  epochsDone: number;
  /** One record per completed epoch. */
  records: EpochRecord[];
  /** Training and evaluation wall time so far, over every sitting. */
  wallSeconds: number;
}

/** One process that ran part of an experiment: its first start, a worker, or a resume. */
export interface ExperimentStart {
  /** When the process started on the experiment (ISO 8601). */
  at: string;
  /** Versions, machine and git commit of that process. */
  provenance: Provenance;
  /** The backend it ran on (with the BLAS library, for wasm). */
  backend?: BackendInfo;
  /**
   * Wall time of its local execution, in seconds: its trials (on every worker), their
   * processes' start-up and the outputs rebuilt after each epoch; absent until it ends, and for
   * Slurm.
   */
  seconds?: number;
  /** The worker processes of that execution. */
  workers?: number;
  /** The trials that execution ran (those not finished before it). */
  trials?: number;
}

/** The contents of `config.json`. */
export interface ExperimentRecord {
  config: ExperimentConfig;
  /** The provenance of the first start; `starts` has every start's. */
  provenance: Provenance;
  /** The backend of the first start. */
  backend?: BackendInfo;
  started: string;
  /** Every process that started the experiment, oldest first. */
  starts?: ExperimentStart[];
  /** What `scripts/mark_provenance.ts` found wrong with the record (kept on resume). */
  provenanceNote?: string;
  /**
   * What runExperiment's caller gave in place of the config's model or dataset (`model`,
   * `data`); empty when the config's own were used, absent where not recorded (the trials'
   * results then tell: lib/experiments/runner.ts).
   */
  supplied?: ("model" | "data")[];
}

/** The contents of a trial's `trial.json`: its config and every process that trained it. */
export interface TrialRecord {
  /** The trial's id in the plan. */
  id: string;
  /** The resolved config it trains with (one variant, one seed). */
  config: ExperimentConfig;
  /** Every process that trained it, oldest first. */
  starts: ExperimentStart[];
}

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
 * import { runDir } from "./results_dir.ts";
 * console.log(runDir("results/x", "tfjs", 2)); // "results/x/runs/tfjs-seed2"
 * ```
 */
export function runDir(out: string, variant: Normalization, seed: number): string {
  return `${out}/runs/${variant}-seed${seed}`;
}

/**
 * The directory a run has on disk: {@linkcode runDir}, or the directory of the same run
 * written under an old variant name (`runs/custom-seed0` for `bnlab`) when only that exists.
 *
 * @param out Results directory.
 * @param variant Normalization variant.
 * @param seed Seed.
 * @returns The path.
 *
 * @example
 * ```ts
 * import { existingRunDir } from "./results_dir.ts";
 * console.log(await existingRunDir("/nonexistent", "bnlab", 0)); // "/nonexistent/runs/bnlab-seed0"
 * ```
 */
export async function existingRunDir(
  out: string,
  variant: Normalization,
  seed: number,
): Promise<string> {
  const current = runDir(out, variant, seed);
  if (await pathExists(current)) return current;
  for (const [alias, name] of Object.entries(NORMALIZATION_ALIASES)) {
    if (name !== variant) continue;
    const old = `${out}/runs/${alias}-seed${seed}`;
    if (await pathExists(old)) return old;
  }
  return current;
}

/**
 * Reads a finished run's result, or `undefined` if it has not finished. An old variant name
 * is read as today's (`custom` → `bnlab`).
 *
 * @param dir The run's directory.
 * @returns The result.
 * @throws {Error} Naming the file when `result.json` is not valid JSON.
 *
 * @example
 * ```ts
 * import { readRunResult } from "./results_dir.ts";
 * console.log(await readRunResult("/nonexistent")); // undefined
 * ```
 */
export async function readRunResult(dir: string): Promise<RunResult | undefined> {
  const result = await readJsonFile<RunResult>(`${dir}/result.json`);
  if (result && NORMALIZATION_ALIASES[result.variant]) {
    result.variant = NORMALIZATION_ALIASES[result.variant];
  }
  return result;
}

/**
 * Reads a run's per-epoch records from its last checkpoint.
 *
 * @param dir The run's directory.
 * @returns The records; empty when the run has not completed an epoch.
 *
 * @example
 * ```ts
 * import { readRunRecords } from "./results_dir.ts";
 * console.log((await readRunRecords("/nonexistent")).length); // 0
 * ```
 */
export async function readRunRecords(dir: string): Promise<EpochRecord[]> {
  const manifest = await readJsonFile<{ state: RunState }>(`${dir}/checkpoint/checkpoint.json`);
  return manifest?.state?.records ?? [];
}

/**
 * Reads a JSON file, or `undefined` when it does not exist.
 *
 * @param path The file.
 * @returns The parsed value.
 * @throws {Error} Naming the file when it exists but is not valid JSON.
 *
 * @example
 * ```ts
 * import { readJsonFile } from "./results_dir.ts";
 * console.log(await readJsonFile("/nonexistent.json")); // undefined
 * ```
 */
export async function readJsonFile<T>(path: string): Promise<T | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw new Error(`cannot read ${path}: ${(error as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new Error(
      `${path} is not valid JSON (${(error as Error).message}); delete or repair it to go on`,
    );
  }
}

/**
 * Whether a file or directory exists at `path` (any other error of `stat` is thrown).
 *
 * @param path The path.
 * @returns True when it exists.
 *
 * @example
 * ```ts
 * import { pathExists } from "./results_dir.ts";
 * console.log(await pathExists("/nonexistent/result.json")); // false
 * ```
 */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}
