/**
 * Our runs next to the report's numbers, line by line: which setting reproduces the report.
 *
 * The report, «Batch Normalization 实验» (a lab report whose code it cites as
 * `https://github.com/junjunjun-study/pytorch BN/`), gives in its section 3.3, after epoch 20,
 * three logged batch losses and the test result of each network. Its log lines are PyTorch's
 * MNIST example's (`Train Epoch: 20 [14848/60000 (25%)] Loss: …`, printed when `(batch_idx + 1) % 30 == 0`
 * with `batch_idx * len(data)` images), and {@linkcode inferLogBatchSize} recovers the batch
 * size they imply: 512, where the report's text says 20.
 *
 * {@linkcode compareWithReport} reads finished and unfinished results directories
 * (`summary.csv`, `history.csv`, `config.json`) and gives one row per setting and variant.
 *
 * @module
 */
import { NORMALIZATION_ALIASES } from "../norms/normalization.ts";
import { readCsv } from "../output/csv.ts";
import type { HistoryRow } from "./report_files.ts";
import type { RunResult } from "./results_dir.ts";

/** What the report printed for one network after epoch 20. */
export interface ReportResult {
  /** Correct test predictions out of {@linkcode REPORT_TEST_IMAGES}. */
  testCorrect: number;
  /** "Test set: Average loss" (mean negative log-likelihood). */
  testLoss: number;
  /** The three batch losses it logged during epoch 20. */
  batchLosses: readonly number[];
}

/** Test images of MNIST, the report's denominator. */
export const REPORT_TEST_IMAGES = 10000;

/**
 * The report's epoch-20 numbers by variant: `none`, `custom` (its hand-written "ZJK_BN") and
 * `tfjs` (standing in for its PyTorch BN). Copied from section 3.3 of «Batch Normalization 实验».
 */
export const REPORT_RESULTS: Readonly<Record<"none" | "custom" | "tfjs", ReportResult>> = Object
  .freeze({
    none: { testCorrect: 1135, testLoss: 2.2999, batchLosses: [2.303385, 2.302585, 2.298289] },
    custom: { testCorrect: 9210, testLoss: 0.815, batchLosses: [0.840055, 0.836669, 0.822424] },
    tfjs: { testCorrect: 9565, testLoss: 0.4444, batchLosses: [0.457489, 0.451923, 0.471015] },
  });

/** A progress line of the report's log: images seen so far and the percentage printed. */
export interface LogPoint {
  /** The first number in brackets, e.g. 14848 in `[14848/60000 (25%)]`. */
  seen: number;
  /** The rounded percentage, e.g. 25. */
  percent: number;
}

/** The report's three progress lines of epoch 20 (identical in all three of its logs). */
export const REPORT_LOG: readonly LogPoint[] = Object.freeze([
  { seen: 14848, percent: 25 },
  { seen: 30208, percent: 50 },
  { seen: 45568, percent: 75 },
]);

/** Options of {@linkcode inferLogBatchSize}. */
export interface InferLogBatchSizeOptions {
  /** Training images per epoch. @default {60000} */
  total?: number;
  /** The example logs when `(batch_idx + 1) % every == 0`. @default {30} */
  every?: number;
}

/**
 * The batch sizes consistent with log lines of PyTorch's MNIST example, which prints
 * `batch_idx * len(data)` images and `round(100 · batch_idx / len(loader))` percent when
 * `(batch_idx + 1) % every == 0` (`len(loader)` = ⌈total / batch⌉ batches).
 *
 * @param points The log lines' counts and percentages.
 * @param options The epoch size and the logging period.
 * @returns Every batch size from 1 to `total` that produces exactly these lines, ascending.
 *
 * @example The report's log implies batch 512, not the 20 its text says
 * ```ts
 * import { inferLogBatchSize, REPORT_LOG } from "./report_comparison.ts";
 * console.log(inferLogBatchSize(REPORT_LOG)); // [ 512 ]
 * ```
 */
export function inferLogBatchSize(
  points: readonly LogPoint[],
  options: InferLogBatchSizeOptions = {},
): number[] {
  const { total = 60000, every = 30 } = options;
  if (points.length === 0) {
    throw new Error("inferLogBatchSize: needs at least one log point, received none");
  }
  for (const point of points) {
    if (!Number.isInteger(point.seen) || point.seen < 0 || point.seen > total) {
      throw new Error(
        `inferLogBatchSize: seen must be an integer in [0, ${total}], received ${point.seen}`,
      );
    }
  }
  const found: number[] = [];
  for (let batch = 1; batch <= total; batch++) {
    const batches = Math.ceil(total / batch);
    const fits = points.every(({ seen, percent }) => {
      if (seen % batch !== 0) return false;
      const index = seen / batch;
      // Python's round() rounds halves to even; no log point here lands on a half.
      return (index + 1) % every === 0 && Math.round((100 * index) / batches) === percent;
    });
    if (fits) found.push(batch);
  }
  return found;
}

/** A row of {@linkcode compareWithReport}: one variant of one setting, next to the report. */
export interface ComparisonRow {
  /** The results directory's name, e.g. `report-b512`. */
  setting: string;
  /** Activation function of the setting. */
  activation: string;
  /** Images per training step. */
  batch_size: number;
  /** Learning rate. */
  lr: number;
  /** Loss function. */
  loss: string;
  /** Normalization variant (`custom` read as `bnlab`). */
  variant: string;
  /** Epochs finished so far, of `epochs`. */
  epochs_done: number;
  /** Epochs the setting trains. */
  epochs: number;
  /** `done`, `diverged`, or `unfinished` for a run that has not finished all its epochs. */
  status: string;
  /** Test accuracy with running statistics after the last finished epoch. */
  test_accuracy: number | null;
  /** With each test batch's own statistics (finished BN runs only). */
  test_accuracy_batch_stats: number | null;
  /** Mean test loss after the last finished epoch. */
  test_loss: number | null;
  /** Mean training loss of the last finished epoch. */
  train_loss: number | null;
  /** Share of the most predicted class (finished runs only; 1 = constant predictor). */
  top_class_share: number | null;
  /** The report's epoch-20 test accuracy of the variant, a fraction. */
  report_test_accuracy: number | null;
  /** The report's epoch-20 test loss of the variant. */
  report_test_loss: number | null;
  /** Mean of the report's three logged batch losses in epoch 20. */
  report_train_loss: number | null;
}

/**
 * Compares results directories of `deno task train` with the report: one row per setting and
 * variant (seed 0 of each), from `summary.csv` for finished runs and from the last epoch of
 * `history.csv` for runs still going.
 *
 * @param dirs Results directories; a directory without `config.json` is an error.
 * @returns The rows, in the order of `dirs` and of each config's variants; a variant without a
 *   finished epoch has none.
 *
 * @example
 * ```ts
 * import { compareWithReport } from "./report_comparison.ts";
 * const out = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${out}/config.json`, JSON.stringify({
 *   config: { variants: ["none"], activation: "relu", batchSize: 512, lr: 0.001, loss: "xent", epochs: 20 },
 * }));
 * await Deno.writeTextFile(
 *   `${out}/history.csv`,
 *   "variant,seed,epoch,step,train_loss,test_accuracy,test_loss\nnone,0,1,118,2.3,0.1135,2.29\n",
 * );
 * const [row] = await compareWithReport([out]);
 * console.log(row.status, row.epochs_done, row.report_test_accuracy); // unfinished 1 0.1135
 * ```
 */
export async function compareWithReport(dirs: readonly string[]): Promise<ComparisonRow[]> {
  const rows: ComparisonRow[] = [];
  for (const dir of dirs) {
    let config: Record<string, unknown>;
    try {
      config = JSON.parse(await Deno.readTextFile(`${dir}/config.json`)).config;
    } catch (error) {
      throw new Error(
        `compareWithReport: expected a results directory with config.json, received ${dir} ` +
          `(${(error as Error).message})`,
        { cause: error },
      );
    }
    // Rows that name bnlab's BN by its alias `custom` compare under `bnlab`.
    const rename = <R extends { variant: string }>(rows: R[]) =>
      rows.map((r) => ({ ...r, variant: NORMALIZATION_ALIASES[r.variant] ?? r.variant }));
    const summary = rename(await _readOptional<RunResult>(`${dir}/summary.csv`));
    const history = rename(await _readOptional<HistoryRow>(`${dir}/history.csv`));
    const setting = dir.replace(/\/+$/, "").split("/").pop() ?? dir;
    const variants = (config.variants as string[]).map((v) => NORMALIZATION_ALIASES[v] ?? v);
    for (const variant of variants) {
      const done = summary.find((r) => r.variant === variant && r.seed === 0);
      const epochs = history.filter((r) =>
        r.variant === variant && r.seed === 0 && r.test_accuracy !== null
      );
      // A variant with no finished epoch yet (or never run, as in a `--variants` resume) has
      // nothing to compare.
      if (done === undefined && epochs.length === 0) continue;
      const last = epochs.at(-1);
      // The report's hand-written layer ("custom") is what bnlab's BN reproduces.
      const reference = REPORT_RESULTS[
        (variant === "bnlab" ? "custom" : variant) as keyof typeof REPORT_RESULTS
      ];
      rows.push({
        setting,
        activation: String(config.activation),
        batch_size: Number(config.batchSize),
        lr: Number(config.lr),
        loss: String(config.loss),
        variant,
        epochs_done: epochs.length,
        epochs: Number(config.epochs),
        status: done?.status ?? "unfinished",
        test_accuracy: done?.test_accuracy ?? last?.test_accuracy ?? null,
        test_accuracy_batch_stats: done?.test_accuracy_batch_stats ?? null,
        test_loss: done?.test_loss ?? last?.test_loss ?? null,
        train_loss: done?.train_loss ?? last?.train_loss ?? null,
        top_class_share: done?.top_class_share ?? null,
        report_test_accuracy: reference ? reference.testCorrect / REPORT_TEST_IMAGES : null,
        report_test_loss: reference?.testLoss ?? null,
        report_train_loss: reference
          ? reference.batchLosses.reduce((a, b) => a + b, 0) / reference.batchLosses.length
          : null,
      });
    }
  }
  return rows;
}

async function _readOptional<T>(path: string): Promise<T[]> {
  try {
    return await readCsv(path) as unknown as T[];
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
}
