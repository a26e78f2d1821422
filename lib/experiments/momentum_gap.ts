/**
 * Whether the BN momentum explains the report's gap between its hand-written BN (92%) and
 * PyTorch's (96%): bnlab's BN with the report's momentum next to tfjs's BN with PyTorch's, read
 * from committed results directories, and the same question asked of a momentum sweep.
 *
 * @module
 */
import { readCsv } from "../output/csv.ts";
import { REPORT_RESULTS, REPORT_TEST_IMAGES } from "./report_comparison.ts";
import type { SweepRow } from "./sweeps.ts";

/** One setting's comparison of bnlab's BN (the report's momentum) with tfjs's BN. */
export interface MomentumGapRow {
  /** The results directory's name, e.g. `report-b512`. */
  setting: string;
  /** Epochs both variants finished (seed 0). */
  epochs: number;
  /** Largest difference of the two variants' epoch-mean training losses over those epochs. */
  maxTrainLossGap: number;
  /** tfjs's minus bnlab's final test accuracy with running statistics, in percentage points. */
  runningGapPoints: number;
  /** tfjs's minus bnlab's final test accuracy with batch statistics, in percentage points. */
  batchGapPoints: number;
}

/** The report's gap, PyTorch's BN minus its hand-written BN, in percentage points. */
export const REPORT_GAP_POINTS: number =
  (100 * (REPORT_RESULTS.tfjs.testCorrect - REPORT_RESULTS.custom.testCorrect)) /
  REPORT_TEST_IMAGES;

/**
 * Compares bnlab's BN with tfjs's BN (seed 0) in each results directory: the largest per-epoch
 * difference of their mean training losses, and their final accuracy gaps with running and
 * with batch statistics. Runs named `custom` are read as `bnlab`.
 *
 * @param dirs Train results directories holding both variants (`history.csv`, `summary.csv`).
 * @returns One row per directory, in order.
 * @throws If a directory lacks one of the two variants.
 *
 * @example
 * ```ts ignore
 * import { momentumGaps } from "./momentum_gap.ts";
 * console.log(await momentumGaps(["results/report"]));
 * ```
 */
export async function momentumGaps(dirs: readonly string[]): Promise<MomentumGapRow[]> {
  const rows: MomentumGapRow[] = [];
  for (const dir of dirs) {
    const name = (v: unknown) => (v === "custom" ? "bnlab" : String(v));
    const history = (await readCsv(`${dir}/history.csv`))
      .filter((r) => r.test_accuracy !== null && r.seed === 0);
    const loss = (variant: string) =>
      new Map(
        history.filter((r) => name(r.variant) === variant).map((r) => [r.epoch, r.train_loss]),
      );
    const [bnlab, tfjs] = [loss("bnlab"), loss("tfjs")];
    const gaps = [...bnlab].filter(([epoch]) => tfjs.has(epoch))
      .map(([epoch, value]) => Math.abs((value as number) - (tfjs.get(epoch) as number)));
    const summary = await readCsv(`${dir}/summary.csv`);
    const final = (variant: string) => {
      const row = summary.find((r) => name(r.variant) === variant && r.seed === 0);
      if (!row) {
        throw new Error(
          `momentumGaps: expected a ${variant} run of seed 0 in ${dir}/summary.csv, received ` +
            `variants ${[...new Set(summary.map((r) => r.variant))].join(", ")}`,
        );
      }
      return row as Record<string, number>;
    };
    const [b, t] = [final("bnlab"), final("tfjs")];
    rows.push({
      setting: dir.split("/").filter(Boolean).pop() ?? dir,
      epochs: gaps.length,
      maxTrainLossGap: gaps.length ? Math.max(...gaps) : NaN,
      runningGapPoints: 100 * (t.test_accuracy - b.test_accuracy),
      batchGapPoints: 100 * (t.test_accuracy_batch_stats - b.test_accuracy_batch_stats),
    });
  }
  return rows;
}

/**
 * The answer to "does the momentum explain 92% vs 96%?" in words, from {@linkcode momentumGaps}'
 * rows: "No: …" when no setting's running-statistics gap reaches half the report's, "Yes: …"
 * otherwise.
 *
 * @param rows The settings compared.
 * @returns One paragraph with the numbers.
 * @throws If `rows` is empty.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { momentumGapConclusion } from "./momentum_gap.ts";
 *
 * const text = momentumGapConclusion([
 *   { setting: "report", epochs: 20, maxTrainLossGap: 0.001, runningGapPoints: 0.2, batchGapPoints: 0.1 },
 * ]);
 * assert.match(text, /^No: /);
 * ```
 */
export function momentumGapConclusion(rows: readonly MomentumGapRow[]): string {
  if (rows.length === 0) throw new Error("momentumGapConclusion: expected rows, received none");
  const largest = Math.max(...rows.map((r) => Math.abs(r.runningGapPoints)));
  const loss = Math.max(...rows.map((r) => r.maxTrainLossGap));
  const batch = Math.max(...rows.map((r) => Math.abs(r.batchGapPoints)));
  const answer = largest < REPORT_GAP_POINTS / 2 ? "No" : "Yes";
  return `${answer}: over ${rows.length} setting${rows.length === 1 ? "" : "s"} ` +
    `(${rows.map((r) => r.setting).join(", ")}; seed 0 of each), bnlab's BN with the ` +
    `report's momentum and ` +
    `tfjs's BN with PyTorch's train alike (epoch-mean training losses within ` +
    `${loss.toExponential(1)}) and end at most ${largest.toFixed(2)} percentage points apart ` +
    `with running statistics (${batch.toFixed(2)} with batch statistics), against the ` +
    `report's ${REPORT_GAP_POINTS.toFixed(2)} points (${_pct(REPORT_RESULTS.custom.testCorrect)} ` +
    `vs ${_pct(REPORT_RESULTS.tfjs.testCorrect)}).`;
}

/**
 * The same answer from a momentum sweep's rows: how far the running-statistics accuracy moves
 * over the momenta, what batch statistics give, and whether the training loss depends on it.
 *
 * @param rows The rows of `sweep.csv` of the `momentum` sweep.
 * @returns One paragraph with the numbers, starting "No: " or "Yes: ".
 * @throws If no row has a finite running-statistics accuracy.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sweepMomentumConclusion } from "./momentum_gap.ts";
 * import type { SweepRow } from "./sweeps.ts";
 *
 * const row = (momentum: number, accuracy: number) =>
 *   ({ seed: 0, keras_momentum: momentum, test_accuracy_running: accuracy,
 *     test_accuracy_batch: 0.97, train_loss: 0.1 }) as SweepRow;
 * const text = sweepMomentumConclusion([row(0.1, 0.975), row(0.9, 0.98)]);
 * assert.match(text, /^No: .*\(seed 0\).*With one seed/);
 * ```
 */
export function sweepMomentumConclusion(rows: readonly SweepRow[]): string {
  const finite = rows.filter((r) => Number.isFinite(r.test_accuracy_running));
  if (finite.length === 0) {
    throw new Error(
      `sweepMomentumConclusion: expected rows with a finite running-statistics accuracy, ` +
        `received ${rows.length} row${rows.length === 1 ? "" : "s"} without one`,
    );
  }
  const seeds = [...new Set(finite.map((r) => r.seed))];
  // Each momentum's accuracy is its mean over the seeds (and over the two conventions, which
  // give the same floats), so that seeds do not spread the range.
  const means = [...Map.groupBy(finite, (r) => r.keras_momentum)].map(([momentum, group]) => ({
    momentum,
    accuracy: group.reduce((sum, r) => sum + r.test_accuracy_running, 0) / group.length,
  }));
  const best = means.reduce((a, b) => (b.accuracy > a.accuracy ? b : a));
  const worst = means.reduce((a, b) => (b.accuracy < a.accuracy ? b : a));
  const spread = 100 * (best.accuracy - worst.accuracy);
  const batch = [...new Set(finite.map((r) => r.test_accuracy_batch))];
  const sameLoss = seeds.every((seed) =>
    new Set(finite.filter((r) => r.seed === seed).map((r) => r.train_loss)).size === 1
  );
  const at = (m: number) => means.find((r) => r.momentum === m);
  const [report, pytorch] = [at(0.1), at(0.9)];
  const pair = report && pytorch
    ? ` The report's momentum (Keras form 0.1) gives ${_pct(report.accuracy)}, ` +
      `PyTorch's default (Keras form 0.9) ${_pct(pytorch.accuracy)}.`
    : "";
  const over = seeds.length === 1
    ? `seed ${seeds[0]}`
    : `the mean over ${seeds.length} seeds (${seeds.join(", ")})`;
  const oneSeed = seeds.length === 1
    ? " With one seed, how far these accuracies move from seed to seed is not measured: a " +
      "sweep with --seeds 3 or more gives it."
    : "";
  return `${spread < REPORT_GAP_POINTS / 2 ? "No" : "Yes"}: over Keras-form momenta ` +
    `${Math.min(...means.map((r) => r.momentum ?? NaN))}–` +
    `${Math.max(...means.map((r) => r.momentum ?? NaN))} the accuracy with running ` +
    `statistics (${over}) ranges from ${_pct(worst.accuracy)} (momentum ` +
    `${worst.momentum}) to ${_pct(best.accuracy)} (momentum ` +
    `${best.momentum}), ${spread.toFixed(2)} percentage points, against the report's ` +
    `${REPORT_GAP_POINTS.toFixed(2)}.${pair} ` +
    (batch.length === 1 && batch[0] !== null
      ? `With batch statistics every momentum gives ${_pct(batch[0])}`
      : `With batch statistics the accuracy varies`) +
    `, and the training loss is ${sameLoss ? "identical for every momentum" : "not identical"}${
      seeds.length === 1 ? "" : " within each seed"
    }` +
    ` (the momentum only feeds the running statistics).${oneSeed}`;
}

/** A fraction (or, above 1, a count of the report's test images) as a percentage. */
function _pct(value: number): string {
  return `${(value > 1 ? (100 * value) / REPORT_TEST_IMAGES : 100 * value).toFixed(2)}%`;
}
