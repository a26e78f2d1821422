/**
 * Sweeps: a base experiment config varied over a list of trials. The momentum sweep trains
 * bnlab's BN layer over running-average momenta in both conventions and reports test accuracy
 * with the running statistics (inference mode) and with batch statistics.
 *
 * Each trial is a complete experiment directory under `trials/<id>/`, so it checkpoints and
 * resumes like `deno task train`; `sweep.csv` and `sweep.svg` are rebuilt from the trials.
 *
 * @module
 */
import { writeCsv } from "../output/csv.ts";
import { sweepChart, writeSvg } from "../output/plot.ts";
import { type ExperimentConfig, validateConfig } from "./config.ts";
import { readRunResult, runDir, runExperiment, type RunExperimentOptions } from "./runner.ts";
import type { RunResult } from "./runner.ts";
import { assignParts } from "./workers.ts";

/** One point of a sweep: an id and the config fields it changes. */
export interface SweepTrial {
  /** Directory-safe identifier, unique within the sweep. */
  id: string;
  /** Fields that differ from the base config. */
  overrides: Partial<ExperimentConfig>;
}

/** A named sweep. */
export interface SweepDefinition {
  /** Name used on the command line, e.g. `momentum`. */
  name: string;
  /** One line for `--help`. */
  description: string;
  /** The trials of a base config. */
  trials: (base: ExperimentConfig) => SweepTrial[];
}

/**
 * Momentum values of the momentum sweep, each run in both conventions. 0.1 is the report's
 * hand-written layer in the Keras form and PyTorch's default in the PyTorch form; 0.99 is
 * Keras's and tfjs's default.
 */
export const SWEEP_MOMENTA: readonly number[] = [0.01, 0.1, 0.5, 0.9, 0.99];

/** The sweeps `deno task sweep` knows. */
export const SWEEPS: Readonly<Record<string, SweepDefinition>> = Object.freeze({
  momentum: {
    name: "momentum",
    description: "bnlab's BN over running-average momenta in the Keras and PyTorch conventions",
    trials: () =>
      (["keras", "pytorch"] as const).flatMap((convention) =>
        SWEEP_MOMENTA.map((momentum) => ({
          id: `${convention}-${momentum}`,
          overrides: { variants: ["custom" as const], momentum, momentumConvention: convention },
        }))
      ),
  },
});

/** A row of `sweep.csv`. */
export interface SweepRow {
  trial: string;
  seed: number;
  momentum: number;
  momentum_convention: string;
  /** The same momentum in the Keras form: the weight kept on the old running value. */
  keras_momentum: number;
  test_accuracy_running: number;
  test_accuracy_batch: number | null;
  test_loss_running: number;
  train_loss: number;
  epochs: number;
  wall_seconds: number;
  backend: string;
  status: string;
}

/** Options of {@linkcode runSweep}. */
export interface RunSweepOptions {
  /** Sweep directory. */
  out: string;
  /** Run only this worker's share of the trials (`assignParts`, equal costs: i % of === part). */
  part?: { part: number; of: number };
  /** Receives each trial's progress events. */
  onEvent?: (
    trial: SweepTrial,
    event: Parameters<NonNullable<RunExperimentOptions["onEvent"]>>[0],
  ) => void;
}

/**
 * Runs (or resumes) the trials of a sweep; finished trials are skipped.
 *
 * @param sweep The sweep definition.
 * @param base The base config every trial starts from.
 * @param options Output directory, the share of trials to run, progress.
 * @returns The trials run by this call.
 *
 * @example
 * ```ts ignore
 * import { resolveConfig } from "./config.ts";
 * import { runSweep, SWEEPS } from "./sweeps.ts";
 * await runSweep(SWEEPS.momentum, resolveConfig("smoke"), { out: await Deno.makeTempDir() });
 * ```
 */
export async function runSweep(
  sweep: SweepDefinition,
  base: ExperimentConfig,
  options: RunSweepOptions,
): Promise<SweepTrial[]> {
  const trials = sweep.trials(base);
  // Trials cost alike, so the split deals them out in turn.
  const parts = options.part ? assignParts(trials.map(() => 1), options.part.of) : undefined;
  const mine = trials.filter((_, i) => !parts || parts[i] === options.part!.part);
  for (const trial of mine) {
    const config = { ...base, ...trial.overrides };
    validateConfig(config);
    await runExperiment(config, {
      out: `${options.out}/trials/${trial.id}`,
      onEvent: (event) => options.onEvent?.(trial, event),
    });
  }
  return mine;
}

/**
 * Rebuilds `sweep.csv` and `sweep.svg` from the finished trials of a sweep directory.
 *
 * @param sweep The sweep definition.
 * @param base The base config (to list the trials).
 * @param out Sweep directory.
 * @returns The rows written, in trial order.
 *
 * @example
 * ```ts
 * import { resolveConfig } from "./config.ts";
 * import { SWEEPS, writeSweepReport } from "./sweeps.ts";
 * const rows = await writeSweepReport(SWEEPS.momentum, resolveConfig("smoke"), await Deno.makeTempDir());
 * console.log(rows.length); // 0: no trial has finished
 * ```
 */
export async function writeSweepReport(
  sweep: SweepDefinition,
  base: ExperimentConfig,
  out: string,
): Promise<SweepRow[]> {
  const rows: SweepRow[] = [];
  for (const trial of sweep.trials(base)) {
    const config = { ...base, ...trial.overrides };
    for (let i = 0; i < config.seeds; i++) {
      const seed = config.seed + i;
      const result = await readRunResult(runDir(`${out}/trials/${trial.id}`, "custom", seed));
      if (result) rows.push(sweepRow(trial, config, result));
    }
  }
  if (rows.length === 0) return rows;
  await writeCsv(`${out}/sweep.csv`, rows as unknown as Record<string, number | string | null>[]);
  const points = rows.flatMap((row) => [
    {
      momentum: row.keras_momentum,
      accuracy: row.test_accuracy_running,
      series: `running statistics (${row.momentum_convention} trials)`,
    },
    ...(row.test_accuracy_batch === null ? [] : [{
      momentum: row.keras_momentum,
      accuracy: row.test_accuracy_batch,
      series: `batch statistics (${row.momentum_convention} trials)`,
    }]),
  ]);
  await writeSvg(
    `${out}/sweep.svg`,
    sweepChart(points, {
      x: "momentum",
      y: "accuracy",
      series: "series",
      title: "Test accuracy vs BN momentum (twin trials overlap)",
      xLabel: "momentum, Keras form (PyTorch's m is 1 − this)",
      yLabel: "test accuracy",
    }),
  );
  return rows;
}

/**
 * Turns a trial's run result into a sweep row.
 *
 * @param trial The trial.
 * @param config The trial's resolved config.
 * @param result Its run result.
 * @returns The row.
 *
 * @example
 * ```ts ignore
 * // see writeSweepReport
 * ```
 */
export function sweepRow(trial: SweepTrial, config: ExperimentConfig, result: RunResult): SweepRow {
  return {
    trial: trial.id,
    seed: result.seed,
    momentum: config.momentum,
    momentum_convention: config.momentumConvention,
    // Rounded so that 1 − 0.9 prints as 0.1.
    keras_momentum: Math.round(
      (config.momentumConvention === "keras" ? config.momentum : 1 - config.momentum) * 1e9,
    ) / 1e9,
    test_accuracy_running: result.test_accuracy,
    test_accuracy_batch: result.test_accuracy_batch_stats,
    test_loss_running: result.test_loss,
    train_loss: result.train_loss,
    epochs: result.epochs,
    wall_seconds: result.wall_seconds,
    backend: result.backend,
    status: result.status,
  };
}
