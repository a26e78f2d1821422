/**
 * The studies' own charts and tables, drawn from the CSVs the runner writes (`sweep.csv` of a
 * sweep, `history.csv` and `summary.csv` of a train experiment):
 *
 * - `small-batch`: test accuracy against the batch size (log axis), one line per normalization,
 *   in two panels: running statistics and batch statistics (the training flag left on);
 * - `learning-rate`: test accuracy against the learning rate (log axis), one line per
 *   normalization and activation, diverged trials drawn as × at the top;
 * - `unbiased-variance`: test accuracy (running statistics) against the batch size, one line
 *   per running-variance estimator;
 * - `resnet`: test accuracy per epoch, one line per normalization.
 *
 * Every chart plots one dot per seed and a line through the means with ± one standard deviation.
 *
 * @module
 */
import type { Plan } from "./plan.ts";
import { readCsv } from "../output/csv.ts";
import { sweepChart, writeSvg } from "../output/plot.ts";
import { writeChart } from "../output/png.ts";

/** A row of a sweep's `sweep.csv` (the columns the study charts read). */
export type SweepCsvRow = Record<string, string | number | boolean | null>;

/**
 * `small-batch`: accuracy against batch size, one line per variant, panels for running and
 * batch statistics (a `none` trial has no batch-statistics accuracy and appears once).
 *
 * @param rows The sweep's `sweep.csv` rows.
 * @returns The SVG.
 *
 * @example
 * ```ts
 * import { smallBatchChart } from "./study_charts.ts";
 * const rows = [2, 4].map((b) => ({ batch_size: b, variant: "bnlab", test_accuracy: 0.9,
 *   test_accuracy_batch_stats: 0.8, status: "done" }));
 * console.log(smallBatchChart(rows).includes("batch statistics")); // true
 * ```
 */
export function smallBatchChart(rows: readonly SweepCsvRow[]): string {
  const points = rows.flatMap((row) => [
    {
      batch: row.batch_size,
      accuracy: _number(row.test_accuracy),
      variant: row.variant,
      statistics: "running statistics",
      diverged: row.status === "diverged",
    },
    ...(typeof row.test_accuracy_batch_stats === "number"
      ? [{
        batch: row.batch_size,
        accuracy: row.test_accuracy_batch_stats,
        variant: row.variant,
        statistics: "batch statistics",
        diverged: row.status === "diverged",
      }]
      : []),
  ]);
  return sweepChart(points, {
    x: "batch",
    y: "accuracy",
    series: "variant",
    facet: "statistics",
    logX: true,
    diverged: "diverged",
    title: "Test accuracy vs batch size (lr = base·B/32, same epochs), mean ± std over seeds",
    xLabel: "batch size",
    yLabel: "test accuracy",
    width: 900,
    height: 440,
  });
}

/**
 * `learning-rate`: accuracy against learning rate, one line per variant and activation;
 * diverged trials are drawn as × (they are results, not gaps).
 *
 * @param rows The sweep's `sweep.csv` rows.
 * @returns The SVG.
 *
 * @example
 * ```ts
 * import { learningRateChart } from "./study_charts.ts";
 * const rows = [0.1, 1].map((lr) => ({ lr, activation: "relu", variant: "none",
 *   test_accuracy: lr === 1 ? null : 0.9, status: lr === 1 ? "diverged" : "done" }));
 * console.log(learningRateChart(rows).startsWith("<svg")); // true
 * ```
 */
export function learningRateChart(rows: readonly SweepCsvRow[]): string {
  return _runningAccuracyChart(rows, {
    x: "lr",
    series: (row) => `${row.variant}, ${row.activation}`,
    title: "Test accuracy vs learning rate (LeNet/MNIST), mean ± std over seeds",
    xLabel: "learning rate",
  });
}

/** Where {@linkcode _runningAccuracyChart} reads its x and series and what it labels. */
interface _RunningAccuracyChartOptions {
  /** The sweep.csv column drawn on the log x axis. */
  x: string;
  /** The line a row belongs to. */
  series: (row: SweepCsvRow) => string;
  /** The chart's title. */
  title: string;
  /** The x axis label. */
  xLabel: string;
}

/** Test accuracy (running statistics) against a log x column, one line per series. */
function _runningAccuracyChart(
  rows: readonly SweepCsvRow[],
  options: _RunningAccuracyChartOptions,
): string {
  const points = rows.map((row) => ({
    [options.x]: row[options.x],
    accuracy: _number(row.test_accuracy),
    series: options.series(row),
    diverged: row.status === "diverged",
  }));
  return sweepChart(points, {
    x: options.x,
    y: "accuracy",
    series: "series",
    logX: true,
    diverged: "diverged",
    title: options.title,
    xLabel: options.xLabel,
    yLabel: "test accuracy (running statistics)",
    width: 720,
    height: 440,
  });
}

/**
 * `unbiased-variance`: accuracy (running statistics) against batch size, one line per
 * running-variance estimator.
 *
 * @param rows The sweep's `sweep.csv` rows.
 * @returns The SVG.
 *
 * @example
 * ```ts
 * import { unbiasedVarianceChart } from "./study_charts.ts";
 * const rows = ["biased", "unbiased"].map((v) => ({ batch_size: 2, running_variance: v,
 *   test_accuracy: 0.9, status: "done" }));
 * console.log(unbiasedVarianceChart(rows).includes("unbiased")); // true
 * ```
 */
export function unbiasedVarianceChart(rows: readonly SweepCsvRow[]): string {
  return _runningAccuracyChart(rows, {
    x: "batch_size",
    series: (row) => `bnlab, ${row.running_variance} running variance`,
    title: "bnlab: test accuracy (running statistics) vs batch, biased vs unbiased variance",
    xLabel: "batch size",
  });
}

/**
 * `resnet` (or any train experiment): test accuracy per epoch, one line per variant, from
 * `history.csv`'s epoch-end rows.
 *
 * @param rows The experiment's `history.csv` rows.
 * @param title The chart's title.
 * @returns The SVG.
 *
 * @example
 * ```ts
 * import { epochAccuracyChart } from "./study_charts.ts";
 * const rows = [1, 2].map((epoch) => ({ epoch, variant: "group", seed: 0, test_accuracy: 0.8 }));
 * console.log(epochAccuracyChart(rows, "ResNet-20").startsWith("<svg")); // true
 * ```
 */
export function epochAccuracyChart(rows: readonly SweepCsvRow[], title: string): string {
  const points = rows
    .filter((row) => typeof row.test_accuracy === "number")
    .map((row) => ({ epoch: row.epoch, accuracy: row.test_accuracy, variant: row.variant }));
  return sweepChart(points, {
    x: "epoch",
    y: "accuracy",
    series: "variant",
    title,
    xLabel: "epoch",
    yLabel: "test accuracy (running statistics)",
    width: 720,
    height: 440,
  });
}

/** The file (without `.svg`) each study's chart is written to, by sweep or preset name. */
export const STUDY_CHART_FILES: Readonly<Record<string, string>> = Object.freeze({
  "small-batch": "small_batch",
  "learning-rate": "learning_rate",
  "unbiased-variance": "unbiased_variance",
  resnet: "resnet_epochs",
});

/**
 * Writes a study's chart (SVG and PNG) into its experiment directory: for the named sweeps
 * `small-batch`, `learning-rate` and `unbiased-variance` from `sweep.csv`, for a train
 * experiment of the `resnet` preset from `history.csv`. Other experiments, and a directory
 * without its CSV yet, get nothing.
 *
 * @param expDir The experiment directory.
 * @param plan Its plan.
 * @param options `png`: write the PNG beside the SVG (about a second). @default {png: true}
 * @returns The SVG's path, or `undefined` when nothing was written.
 *
 * @example
 * ```ts
 * import { writeStudyChart } from "./study_charts.ts";
 * console.log(await writeStudyChart("/nonexistent", { format: 1, kind: "train", created: "", trials: [] }));
 * // undefined
 * ```
 */
export async function writeStudyChart(
  expDir: string,
  plan: Plan,
  options: { png?: boolean } = {},
): Promise<string | undefined> {
  const name = plan.kind === "sweep" ? plan.sweep : plan.trials[0]?.config.preset;
  if (!name || !STUDY_CHART_FILES[name]) return undefined;
  const csv = plan.kind === "sweep" ? "sweep.csv" : "history.csv";
  let rows: SweepCsvRow[];
  try {
    rows = await readCsv(`${expDir}/${csv}`) as SweepCsvRow[];
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  if (!rows.some((r) => typeof r.test_accuracy === "number")) return undefined;
  const svg = name === "small-batch"
    ? smallBatchChart(rows)
    : name === "learning-rate"
    ? learningRateChart(rows)
    : name === "unbiased-variance"
    ? unbiasedVarianceChart(rows)
    : epochAccuracyChart(rows, "ResNet-20 on Fashion-MNIST: test accuracy per epoch");
  const path = `${expDir}/${STUDY_CHART_FILES[name]}.svg`;
  if (options.png ?? true) await writeChart(path, svg);
  else await writeSvg(path, svg);
  return path;
}

function _number(value: unknown): number {
  return typeof value === "number" ? value : NaN;
}
