/**
 * Builds an experiment's tables and plot from its trials: `summary.csv` (one row
 * per variant × seed), `table.csv` (mean and standard deviation per variant), `history.csv`
 * (the loss curves and per-epoch test results) and `curves.svg`.
 *
 * Everything is derived from the run files, so the tables are rebuilt identically after a
 * resume, and a merge of runs made in several sittings needs no extra step.
 *
 * @module
 */
import { writeCsv } from "../output/csv.ts";
import { lineChart, writeSvg } from "../output/plot.ts";
import { summarize } from "../output/table.ts";
import type { EpochRecord } from "../train/loop.ts";
import { legacyTrainPlan, type Plan, readPlan } from "./plan.ts";
import { readRunRecords, readRunResult, type RunResult } from "./results_dir.ts";

/** Columns of `summary.csv`, in order. */
export const SUMMARY_COLUMNS = [
  "variant",
  "seed",
  "dataset",
  "loss",
  "activation",
  "init",
  "optimizer",
  "epochs",
  "batch_size",
  "lr",
  "momentum",
  "momentum_convention",
  "train_images",
  "test_images",
  "test_accuracy",
  "test_correct",
  "test_loss",
  "test_accuracy_batch_stats",
  "train_loss",
  "top_class_share",
  "wall_seconds",
  "backend",
  "status",
  "model",
  "train_accuracy",
] as const;

/** Columns of `history.csv`, in order. */
export const HISTORY_COLUMNS = [
  "variant",
  "seed",
  "epoch",
  "step",
  "train_loss",
  "test_accuracy",
  "test_loss",
  "train_accuracy",
] as const;

/** A row of `history.csv`: a loss-curve point, or an epoch end with test results. */
export interface HistoryRow {
  variant: string;
  seed: number;
  /** Epoch, counted from 1 as in the report's logs. */
  epoch: number;
  step: number;
  train_loss: number;
  test_accuracy: number | null;
  test_loss: number | null;
  /** Training accuracy of the epoch (epoch-end rows only). */
  train_accuracy: number | null;
}

/** What {@linkcode writeExperimentOutputs} found and wrote. */
export interface ExperimentOutputs {
  results: RunResult[];
  history: HistoryRow[];
  table: Record<string, unknown>[];
}

/**
 * Rebuilds `summary.csv`, `table.csv`, `history.csv` and `curves.svg` of a train experiment
 * from whatever trials of its plan finished (history also from unfinished trials' checkpoints).
 * A directory written before `plan.json` existed is read through its `config.json`.
 *
 * @param out Experiment directory with `plan.json`.
 * @param plan The plan, when the caller has read it.
 * @returns The rows written.
 *
 * @example
 * ```ts
 * import { resolveConfig } from "./config.ts";
 * import { buildPlan, trainTrials, writePlan } from "./plan.ts";
 * import { writeExperimentOutputs } from "./report_files.ts";
 * const out = await Deno.makeTempDir();
 * await writePlan(out, buildPlan("train", await trainTrials(resolveConfig("smoke"), out)));
 * console.log((await writeExperimentOutputs(out)).results.length); // 0
 * ```
 */
export async function writeExperimentOutputs(
  out: string,
  plan?: Plan,
): Promise<ExperimentOutputs> {
  plan ??= await readPlan(out) ?? await legacyTrainPlan(out);
  if (!plan) {
    throw new Error(`writeExperimentOutputs: ${out} has neither plan.json nor config.json`);
  }
  const results: RunResult[] = [];
  const history: HistoryRow[] = [];
  for (const trial of plan.trials) {
    const dir = `${out}/${trial.dir}`;
    const result = await readRunResult(dir);
    if (result) results.push(result);
    const variant = trial.config.variants[0];
    history.push(...historyRows(variant, trial.config.seed, await readRunRecords(dir)));
  }
  // JSON stores NaN as null (`none` has no batch-statistics accuracy; a diverged run has no
  // test accuracy); summarize() takes NaN for "no value".
  const tableValues = [
    "test_accuracy",
    "test_accuracy_batch_stats",
    "test_loss",
    "train_loss",
    "wall_seconds",
  ] as const;
  const table = results.length
    ? summarize(
      results.map((r) => ({
        ...r,
        ...Object.fromEntries(tableValues.map((key) => [key, r[key] ?? NaN])),
      })),
      { groupBy: ["variant"], values: [...tableValues] },
    )
    : [];
  await writeCsv(`${out}/summary.csv`, results as unknown as Record<string, unknown>[], {
    columns: [...SUMMARY_COLUMNS],
  });
  await writeCsv(`${out}/history.csv`, history as unknown as Record<string, unknown>[], {
    columns: [...HISTORY_COLUMNS],
  });
  if (table.length) await writeCsv(`${out}/table.csv`, table);
  // The sampled batch losses draw the curve; epoch means stand in when none was sampled.
  const sampled = history.filter((row) => row.test_accuracy === null);
  const points = (sampled.length ? sampled : history).map((row) => ({
    ...row,
    run: `${row.variant} (seed ${row.seed})`,
  }));
  if (points.length) {
    await writeSvg(
      `${out}/curves.svg`,
      lineChart(points, {
        x: "step",
        y: "train_loss",
        series: "run",
        title: "Training loss",
        xLabel: "step",
        yLabel: "training loss",
      }),
    );
  }
  return { results, history, table };
}

/**
 * Flattens a run's epoch records into `history.csv` rows: its sampled loss points, then one
 * row per epoch end carrying the epoch's mean loss and test results.
 *
 * @param variant Normalization variant.
 * @param seed Seed.
 * @param records The run's epoch records.
 * @returns Rows in step order.
 *
 * @example
 * ```ts
 * import { historyRows } from "./report_files.ts";
 * const rows = historyRows("none", 0, [
 *   { epoch: 0, step: 10, trainLoss: 1, seconds: 1, steps: [{ epoch: 0, step: 5, trainLoss: 2 }] },
 * ]);
 * console.log(rows.length); // 2
 * ```
 */
export function historyRows(variant: string, seed: number, records: EpochRecord[]): HistoryRow[] {
  return records.flatMap((record) => [
    ...record.steps.map((point) => ({
      variant,
      seed,
      epoch: point.epoch + 1,
      step: point.step,
      train_loss: point.trainLoss,
      test_accuracy: null,
      test_loss: null,
      train_accuracy: null,
    })),
    {
      variant,
      seed,
      epoch: record.epoch + 1,
      step: record.step,
      train_loss: record.trainLoss,
      test_accuracy: record.test?.accuracy ?? null,
      test_loss: record.test?.loss ?? null,
      train_accuracy: record.trainAccuracy ?? null,
    },
  ]);
}
