/**
 * Builds an experiment's tables and plot from its trials: `summary.csv` (one row
 * per variant × seed), `table.csv` (mean and standard deviation per variant), `history.csv`
 * (the loss curves and per-epoch test results), `curves.svg` and `curves.png` (training loss in
 * epochs, smoothed over raw, with the chance level ln 10) and `accuracy.svg` and `accuracy.png`
 * (test accuracy per epoch), each titled with the setting ({@linkcode settingTitle}).
 *
 * Everything is derived from the run files, so the tables are rebuilt identically after a
 * resume, and a merge of runs made in several sittings needs no extra step.
 *
 * @module
 */
import { writeCsv } from "../output/csv.ts";
import { historyAccuracyChart, historyLossChart } from "../output/plot.ts";
import { writeChart } from "../output/png.ts";
import { summarize } from "../output/table.ts";
import type { EpochRecord } from "../train/loop.ts";
import type { ExperimentConfig } from "./config.ts";
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
  /** Normalization variant. */
  variant: string;
  /** Seed of the run. */
  seed: number;
  /** Epoch, counted from 1 as in the report's logs. */
  epoch: number;
  /** Steps since the start of training, from 1. */
  step: number;
  /** Training loss: a sampled batch's, or the epoch's mean on an epoch-end row. */
  train_loss: number;
  /** Test accuracy (epoch-end rows only), a fraction. */
  test_accuracy: number | null;
  /** Test loss (epoch-end rows only). */
  test_loss: number | null;
  /** Training accuracy of the epoch (epoch-end rows only). */
  train_accuracy: number | null;
}

/** What {@linkcode writeExperimentOutputs} found and wrote. */
export interface ExperimentOutputs {
  /** The finished trials' results: the rows of `summary.csv`. */
  results: RunResult[];
  /** The rows of `history.csv`. */
  history: HistoryRow[];
  /** The rows of `table.csv` (mean and standard deviation per variant); `[]` when none finished. */
  table: Record<string, unknown>[];
  /** The setting as the charts' titles name it ({@linkcode settingTitle}). */
  setting: string;
}

const _MODEL_NAMES: Readonly<Record<string, string>> = {
  lenet: "LeNet",
  resnet20: "ResNet-20",
  mlp: "MLP",
};
const _DATASET_NAMES: Readonly<Record<string, string>> = {
  mnist: "MNIST",
  "fashion-mnist": "Fashion-MNIST",
};

/**
 * The setting of an experiment as a chart title: model, dataset, batch size, learning rate,
 * activation and epochs.
 *
 * @param config The experiment's config (any of its trials': they share these fields).
 * @param varied Config fields that differ between the trials (a sweep's), left out of the title.
 * @returns E.g. `"LeNet on MNIST, batch 64, lr 0.01, sigmoid, 10 epochs"`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveConfig } from "./config.ts";
 * import { settingTitle } from "./report_files.ts";
 *
 * const title = settingTitle(resolveConfig("smoke", { batchSize: 32, lr: 0.1, epochs: 1 }));
 * assert.match(title, /^LeNet on MNIST, batch 32, lr 0\.1, \w+, 1 epoch$/);
 * ```
 */
export function settingTitle(
  config: Pick<
    ExperimentConfig,
    "model" | "dataset" | "batchSize" | "lr" | "activation" | "epochs"
  >,
  varied: readonly string[] = [],
): string {
  const parts = [
    varied.includes("model") ? "" : _MODEL_NAMES[config.model] ?? config.model,
    varied.includes("dataset") ? "" : `on ${_DATASET_NAMES[config.dataset] ?? config.dataset}`,
  ].filter(Boolean).join(" ");
  return [
    parts,
    varied.includes("batchSize") ? "" : `batch ${config.batchSize}`,
    varied.includes("lr") ? "" : `lr ${config.lr}`,
    varied.includes("activation") ? "" : config.activation,
    varied.includes("epochs") ? "" : `${config.epochs} epoch${config.epochs === 1 ? "" : "s"}`,
  ].filter(Boolean).join(", ");
}

/**
 * Rebuilds `summary.csv`, `table.csv`, `history.csv`, `curves.svg`/`.png` and
 * `accuracy.svg`/`.png` (when an epoch has a test accuracy) of a train experiment
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
  const { results, history, table, setting } = await _experimentOutputs(out, plan);
  await writeCsv(`${out}/summary.csv`, results as unknown as Record<string, unknown>[], {
    columns: [...SUMMARY_COLUMNS],
  });
  await writeCsv(`${out}/history.csv`, history as unknown as Record<string, unknown>[], {
    columns: [...HISTORY_COLUMNS],
  });
  if (table.length) await writeCsv(`${out}/table.csv`, table);
  if (history.length) {
    await writeChart(
      `${out}/curves.svg`,
      historyLossChart(history, { title: `Training loss: ${setting}`, width: 760 }),
    );
    if (history.some((row) => row.test_accuracy !== null && Number.isFinite(row.test_accuracy))) {
      await writeChart(
        `${out}/accuracy.svg`,
        historyAccuracyChart(history, {
          title: `Test accuracy per epoch: ${setting}`,
          width: 760,
        }),
      );
    }
  }
  return { results, history, table, setting };
}

/**
 * Reads what {@linkcode writeExperimentOutputs} would write (the results, history and table of
 * the finished trials) and writes nothing: for directories that must stay as committed.
 *
 * @param out Experiment directory with `plan.json` (or, written before it existed, `config.json`).
 * @returns The rows, and the setting as the charts' titles name it.
 * @throws If the directory has neither `plan.json` nor `config.json`.
 *
 * @example
 * ```ts
 * import { resolveConfig } from "./config.ts";
 * import { buildPlan, trainTrials, writePlan } from "./plan.ts";
 * import { readExperimentOutputs } from "./report_files.ts";
 * const out = await Deno.makeTempDir();
 * await writePlan(out, buildPlan("train", await trainTrials(resolveConfig("smoke"), out)));
 * console.log((await readExperimentOutputs(out)).setting); // "LeNet on MNIST, batch …"
 * ```
 */
export async function readExperimentOutputs(
  out: string,
): Promise<ExperimentOutputs> {
  const plan = await readPlan(out) ?? await legacyTrainPlan(out);
  if (!plan) {
    throw new Error(`readExperimentOutputs: ${out} has neither plan.json nor config.json`);
  }
  return await _experimentOutputs(out, plan);
}

async function _experimentOutputs(
  out: string,
  plan: Plan,
): Promise<ExperimentOutputs> {
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
  return { results, history, table, setting: settingTitle(plan.trials[0].config) };
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
