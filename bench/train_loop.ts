/**
 * The training loop end to end: LeNet/MNIST as the `report` preset trains it (sigmoid, batch
 * 20, SGD lr 0.001, the preset's BN momenta), through `train` (lib/train/loop.ts: batch
 * slicing, the step, the loss and accuracy sums, progress reads) and `evaluate`, on the real
 * MNIST images. The rows give what the model-step rows of `training.ts` leave out: the rate
 * the train CLI reaches, the evaluation's rate, and the preset's projected wall time from them.
 *
 * Rows (group `train_loop`, backend wasm, batch 20), per variant (`none`, `bnlab`, `tfjs`),
 * medians over blocks interleaved across the variants:
 *
 * - `samples_per_s`: training images per second of one epoch of `images` through `train`;
 * - `eval_samples_per_s`: test images per second of `evaluate` (batch 500);
 * - `epoch_seconds`: a report epoch from those, 60,000/train rate + 10,000/eval rate;
 * - `training_gflops`: the training rate times LeNet's training FLOPs per image
 *   (`lenetTrainingFlopsPerSample`).
 *
 * - `samples_per_s_one_thread`, `epoch_seconds_one_thread`: the same with the matrix products'
 *   slices on one thread, as each of two `--workers` processes runs them on two cores (in blocks
 *   interleaved with the others; absent where the products run on one thread anyway);
 *
 * and, over the variants, `report_preset_one_process` and `report_preset_two_processes`
 * (`projected_wall_time`, minutes: 20 epochs each, evaluation included; two processes share the
 * variants' epochs (lib/experiments/shared_trials.ts), so they take half the total at the
 * one-thread rates, or the longest variant's time if that is more). The projection
 * leaves out what two processes cost each other (memory bandwidth, the shared cache):
 * `results/report-timed` measures the whole preset. {@linkcode trainLoopShareRows} adds each
 * variant's `fraction_of_matmul_limit` once the machine's product rate is known.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backend.ts";
import { blasSliceThreads, setBlasSliceThreads } from "../lib/kernels/blas.ts";
import { resolveConfig } from "../lib/experiments/config.ts";
import { builtinModel, loadTrialData } from "../lib/experiments/trial.ts";
import { evaluate } from "../lib/train/evaluate.ts";
import { createOptimizer, train } from "../lib/train/loop.ts";
import type { Normalization } from "../lib/norms/normalization.ts";
import type { BenchRow } from "./bench_row.ts";
import { lenetTrainingFlopsPerSample, matmulLimit } from "./derived.ts";
import { median } from "./machine.ts";

/** The group of this file's rows. */
export const TRAIN_LOOP_GROUP = "train_loop";

/** The `report` preset's variants. */
const _VARIANTS: readonly Normalization[] = ["none", "bnlab", "tfjs"];

/** Images of a report epoch: the training split and the evaluation after it. */
const _EPOCH = { train: 60000, test: 10000, epochs: 20 } as const;

/** Options of {@linkcode benchTrainLoop}; each has a documented default. */
export interface BenchTrainLoopOptions {
  /** Training images per block (one epoch through `train`). @default {4000} */
  images?: number;
  /** Test images evaluated per block. @default {2000} */
  testImages?: number;
  /** Timed blocks per variant; a row reports their median. @default {5} */
  blocks?: number;
  /** Untimed blocks per variant before them. @default {1} */
  warmupBlocks?: number;
}

/**
 * Times the `report` preset's training loop and evaluation per variant (see the module doc).
 *
 * @param options Images per block, test images, blocks.
 * @returns The rows of group `train_loop`.
 *
 * @example
 * ```ts ignore
 * import { benchTrainLoop } from "./train_loop.ts";
 * const rows = await benchTrainLoop({ images: 200, testImages: 100, blocks: 1 });
 * console.log(rows.find((r) => r.metric === "samples_per_s")!.median > 0); // true
 * ```
 */
export async function benchTrainLoop(options: BenchTrainLoopOptions = {}): Promise<BenchRow[]> {
  const { images = 4000, testImages = 2000, blocks = 5, warmupBlocks = 1 } = options;
  await initBackend("wasm");
  const config = resolveConfig("report", { limit: images, testLimit: testImages });
  const { train: data, test } = await loadTrialData(config);
  const runs = _VARIANTS.map((variant) => ({
    variant,
    model: builtinModel(variant, config, data),
    optimizer: createOptimizer(config.optimizer, config.lr),
    train: [] as number[],
    eval: [] as number[],
    trainOneThread: [] as number[],
    evalOneThread: [] as number[],
  }));
  const threads = blasSliceThreads();
  for (let block = 0; block < warmupBlocks + blocks; block++) {
    for (const run of runs) {
      for (const sliceThreads of threads > 1 ? [threads, 1] : [threads]) {
        const previous = setBlasSliceThreads(sliceThreads);
        let started: number, trained: number, evaluated: number;
        try {
          started = performance.now();
          await train(run.model, data, {
            epochs: 1,
            batchSize: config.batchSize,
            lr: config.lr,
            seed: block,
            logEvery: config.logEvery,
            optimizerInstance: run.optimizer,
          });
          trained = performance.now();
          await evaluate(run.model, test, { batchSize: config.evalBatchSize });
          evaluated = performance.now();
        } finally {
          setBlasSliceThreads(previous);
        }
        if (block < warmupBlocks) continue;
        const oneThread = sliceThreads === 1;
        (oneThread ? run.trainOneThread : run.train).push(
          (data.count * 1000) / (trained - started),
        );
        (oneThread ? run.evalOneThread : run.eval).push(
          (test.count * 1000) / (evaluated - trained),
        );
      }
    }
  }
  const rows: BenchRow[] = [];
  const row = (name: string, metric: string, value: number, unit: string): BenchRow => ({
    group: TRAIN_LOOP_GROUP,
    name,
    backend: "wasm",
    batch_size: config.batchSize,
    metric,
    median: value,
    unit,
    runs: blocks,
  });
  const seconds: number[] = [];
  const secondsOneThread: number[] = [];
  const epochOf = (trainRate: number, evalRate: number) =>
    _EPOCH.train / trainRate + _EPOCH.test / evalRate;
  for (const run of runs) {
    const trainRate = median(run.train);
    const evalRate = median(run.eval);
    const epoch = epochOf(trainRate, evalRate);
    seconds.push(epoch * _EPOCH.epochs);
    rows.push(
      row(run.variant, "samples_per_s", trainRate, "samples/s"),
      row(run.variant, "eval_samples_per_s", evalRate, "samples/s"),
      row(run.variant, "epoch_seconds", epoch, "s"),
      row(
        run.variant,
        "training_gflops",
        (trainRate * lenetTrainingFlopsPerSample()) / 1e9,
        "GFLOP/s",
      ),
    );
    if (run.trainOneThread.length > 0) {
      const oneThread = median(run.trainOneThread);
      const epochOneThread = epochOf(oneThread, median(run.evalOneThread));
      secondsOneThread.push(epochOneThread * _EPOCH.epochs);
      rows.push(
        row(run.variant, "samples_per_s_one_thread", oneThread, "samples/s"),
        row(run.variant, "epoch_seconds_one_thread", epochOneThread, "s"),
      );
    }
    run.model.dispose();
    run.optimizer.dispose();
  }
  // Two `--workers` processes get one thread each and share the variants' epochs: half the
  // total, unless one variant alone takes longer.
  const perProcess = secondsOneThread.length === seconds.length ? secondsOneThread : seconds;
  const total = seconds.reduce((a, b) => a + b, 0);
  const shared = Math.max(...perProcess, perProcess.reduce((a, b) => a + b, 0) / 2);
  rows.push(
    row("report_preset_one_process", "projected_wall_time", total / 60, "min"),
    row("report_preset_two_processes", "projected_wall_time", shared / 60, "min"),
  );
  tf.disposeVariables();
  return rows;
}

/**
 * Each variant's share of the machine's product rate: its `training_gflops` over the best
 * matrix-product rate among `rows` (`matmulLimit`), as `fraction_of_matmul_limit` rows.
 *
 * @param rows Rows of one results table: this file's and the product rates (possibly kept
 *   from an earlier run by `--only`).
 * @returns The share rows (none without a product rate).
 *
 * @example
 * ```ts
 * import { trainLoopShareRows } from "./train_loop.ts";
 * console.log(trainLoopShareRows([]).length); // 0
 * ```
 */
export function trainLoopShareRows(rows: readonly BenchRow[]): BenchRow[] {
  const best = matmulLimit(rows, "wasm");
  if (best === undefined) return [];
  return rows
    .filter((r) => r.group === TRAIN_LOOP_GROUP && r.metric === "training_gflops")
    .map((r) => ({
      ...r,
      metric: "fraction_of_matmul_limit",
      median: r.median / best.median,
      unit: "ratio",
    }));
}

if (import.meta.main) {
  const rows = await benchTrainLoop(
    Deno.args.includes("--quick") ? { images: 400, testImages: 200, blocks: 1 } : {},
  );
  for (const r of rows) console.log(`${r.name} ${r.metric} ${r.median.toPrecision(5)} ${r.unit}`);
}
