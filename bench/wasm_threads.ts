/**
 * What wasm threads buy: LeNet training samples/s and a large matmul's GFLOP/s with 1 and
 * with 2 XNNPACK threads (`initBackend("wasm", { threads })`).
 *
 * tfjs starts wasm once per process, so each thread count is timed in a process of its own;
 * the processes alternate, round after round, so that each count sees the same load on a
 * shared machine, and the ratios are taken within the run.
 *
 * ```sh
 * deno run --allow-all bench/wasm_threads.ts [--quick]
 * ```
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import process from "node:process";
import { backendInfo, initBackend } from "../lib/backend.ts";
import { setBlasEnabled } from "../lib/kernels/blas.ts";
import { createLeNet, type Normalization } from "../lib/models/lenet.ts";
import { formatTable } from "../lib/output/table.ts";
import type { BenchRow } from "./bench_row.ts";
import { median } from "./machine.ts";

/**
 * Options of {@linkcode benchWasmThreads}; each has a documented default.
 *
 * @example A quick run
 * ```ts
 * import type { BenchWasmThreadsOptions } from "./wasm_threads.ts";
 *
 * const quick: BenchWasmThreadsOptions = { rounds: 1, blocks: 2, samplesPerBlock: 320 };
 * console.log(quick.rounds);
 * ```
 */
export interface BenchWasmThreadsOptions {
  /** Thread counts compared; the first is the baseline of the ratios. @default {[1, 2]} */
  threadCounts?: readonly number[];
  /** LeNet batch sizes. @default {[20, 128]} */
  batchSizes?: readonly number[];
  /** LeNet normalizations ("none", "tfjs" or "custom"). @default {["none", "tfjs"]} */
  variants?: readonly Normalization[];
  /** Rounds: each runs one process per thread count. @default {3} */
  rounds?: number;
  /** Timed blocks per figure in a process, after one untimed. @default {3} */
  blocks?: number;
  /** Samples per block: a block is ⌈samplesPerBlock / batch⌉ SGD steps. @default {640} */
  samplesPerBlock?: number;
  /** The side of the square matmul timed (BLAS switched off: XNNPACK's). @default {1024} */
  matmulSize?: number;
  /** Timed matmuls per process, after one untimed. @default {5} */
  matmulRepeats?: number;
}

/** What one process measured, by `metric|name|batch size`: each the median of its blocks. */
type _ChildResult = Record<string, number>;

/** The unit of each metric of a child. */
const _UNITS: Record<string, string> = {
  gflops: "GFLOP/s",
  samples_per_s: "samples/s",
  cpu_us_per_sample: "µs/sample",
};

/**
 * Times LeNet SGD steps (as bench/training.ts does: four fixed random batches, the loss read
 * at the end of each block) and an `n×n · n×n` matmul, per thread count, and returns rows of
 * group `wasm_threads`: `samples_per_s_<t>t`, `cpu_us_per_sample_<t>t` (the process's CPU
 * time, all threads, per sample: what two trainings side by side compete for) and
 * `gflops_<t>t`, each the median over rounds of a process's median; `<metric>_<t>t_over_<first>t`
 * (their ratios); and `load_1min` (the load average before and after, `Deno.loadavg()`).
 *
 * @param options Thread counts, batch sizes, variants, rounds and sizes.
 * @returns The rows.
 * @throws If a thread count cannot be had, or a child process fails.
 *
 * @example
 * ```ts ignore
 * import { benchWasmThreads } from "./wasm_threads.ts";
 *
 * const rows = await benchWasmThreads({ batchSizes: [20], variants: ["none"], rounds: 1 });
 * console.log(rows.find((r) => r.metric === "samples_per_s_2t_over_1t")?.median);
 * ```
 */
export async function benchWasmThreads(
  options: BenchWasmThreadsOptions = {},
): Promise<BenchRow[]> {
  const threadCounts = options.threadCounts ?? [1, 2];
  const rounds = options.rounds ?? 3;
  const child = {
    batchSizes: options.batchSizes ?? [20, 128],
    variants: options.variants ?? ["none", "tfjs"],
    blocks: options.blocks ?? 3,
    samplesPerBlock: options.samplesPerBlock ?? 640,
    matmulSize: options.matmulSize ?? 1024,
    matmulRepeats: options.matmulRepeats ?? 5,
  };
  const rows: BenchRow[] = [];
  const loadBefore = Deno.loadavg()[0];
  const figures = new Map<number, Map<string, number[]>>(threadCounts.map((t) => [t, new Map()]));
  for (let round = 0; round < rounds; round++) {
    for (const threads of threadCounts) {
      const result = await _runChild(threads, child);
      for (const [key, value] of Object.entries(result)) {
        const values = figures.get(threads)!.get(key) ?? [];
        values.push(value);
        figures.get(threads)!.set(key, values);
      }
    }
  }
  const base = threadCounts[0];
  for (const threads of threadCounts) {
    for (const [key, values] of figures.get(threads)!) {
      const [metric, name, batch] = key.split("|");
      const value = median(values);
      rows.push({
        group: "wasm_threads",
        name,
        backend: "wasm",
        batch_size: Number(batch),
        metric: `${metric}_${threads}t`,
        median: value,
        unit: _UNITS[metric],
        runs: rounds,
      });
      if (threads !== base) {
        rows.push({
          group: "wasm_threads",
          name,
          backend: "wasm",
          batch_size: Number(batch),
          metric: `${metric}_${threads}t_over_${base}t`,
          median: value / median(figures.get(base)!.get(key)!),
          unit: "ratio",
          runs: rounds,
        });
      }
    }
  }
  for (const [metric, value] of [["before", loadBefore], ["after", Deno.loadavg()[0]]] as const) {
    rows.push({
      group: "wasm_threads",
      name: "load_1min",
      backend: "machine",
      batch_size: 0,
      metric,
      median: value,
      unit: "load",
      runs: 1,
    });
  }
  return rows;
}

async function _runChild(threads: number, options: object): Promise<_ChildResult> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      new URL(import.meta.url).pathname,
      "--child",
      String(threads),
      JSON.stringify(options),
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (output.code !== 0) {
    throw new Error(
      `benchWasmThreads: expected the ${threads}-thread process to exit 0, received ${output.code}:\n` +
        new TextDecoder().decode(output.stderr),
    );
  }
  return JSON.parse(new TextDecoder().decode(output.stdout));
}

/** The child: one thread count, every figure. */
async function _child(
  threads: number,
  options: Required<
    Omit<
      BenchWasmThreadsOptions,
      "threadCounts" | "rounds"
    >
  >,
): Promise<_ChildResult> {
  await initBackend("wasm", { threads });
  if (backendInfo().threads !== threads) throw new Error("unreachable: initBackend checks it");
  const result: _ChildResult = {};
  const n = options.matmulSize;
  const wasOn = setBlasEnabled(false);
  try {
    const [a, b] = [tf.randomNormal([n, n], 0, 1, "float32", 1), tf.randomNormal([n, n])];
    const gflops: number[] = [];
    for (let i = 0; i <= options.matmulRepeats; i++) {
      const start = performance.now();
      const c = tf.matMul(a, b);
      await c.data();
      const ms = performance.now() - start;
      c.dispose();
      if (i > 0) gflops.push((2 * n ** 3) / ms / 1e6);
    }
    tf.dispose([a, b]);
    result[`gflops|matmul_${n}|${n}`] = median(gflops);
  } finally {
    setBlasEnabled(wasOn);
  }
  for (const batchSize of options.batchSizes) {
    for (const variant of options.variants) {
      const steps = Math.ceil(options.samplesPerBlock / batchSize);
      const [speed, cpu] = await _samplesPerSecond(variant, batchSize, steps, options.blocks);
      result[`samples_per_s|${variant}|${batchSize}`] = speed;
      result[`cpu_us_per_sample|${variant}|${batchSize}`] = cpu;
    }
  }
  return result;
}

/** The median samples/s and CPU µs per sample (all threads) over the timed blocks. */
async function _samplesPerSecond(
  normalization: Normalization,
  batchSize: number,
  steps: number,
  blocks: number,
): Promise<[number, number]> {
  const model = createLeNet({ seed: 1, normalization });
  const optimizer = tf.train.sgd(0.01);
  const batches = Array.from({ length: 4 }, (_, i) => ({
    xs: tf.randomUniform([batchSize, 28, 28, 1], 0, 1, "float32", 100 + i),
    ys: tf.tidy(() =>
      tf.oneHot(tf.randomUniform([batchSize], 0, 10, "int32", 200 + i) as tf.Tensor1D, 10)
    ),
  }));
  let next = 0;
  const step = (returnCost: boolean) => {
    const { xs, ys } = batches[next++ % batches.length];
    return optimizer.minimize(() => {
      const logits = model.apply(xs, { training: true }) as tf.Tensor;
      return tf.losses.softmaxCrossEntropy(ys, logits) as tf.Scalar;
    }, returnCost);
  };
  const speeds: number[] = [];
  const cpus: number[] = [];
  for (let block = 0; block <= blocks; block++) {
    const cpuStart = process.cpuUsage();
    const start = performance.now();
    for (let i = 0; i < steps - 1; i++) step(false);
    const cost = step(true)!;
    await cost.data();
    const seconds = (performance.now() - start) / 1000;
    const cpu = process.cpuUsage(cpuStart);
    cost.dispose();
    if (block > 0) {
      speeds.push((steps * batchSize) / seconds);
      cpus.push((cpu.user + cpu.system) / (steps * batchSize));
    }
  }
  for (const { xs, ys } of batches) tf.dispose([xs, ys]);
  optimizer.dispose();
  model.dispose();
  return [median(speeds), median(cpus)];
}

if (import.meta.main) {
  if (Deno.args[0] === "--child") {
    console.log(JSON.stringify(await _child(Number(Deno.args[1]), JSON.parse(Deno.args[2]))));
  } else {
    const quick = Deno.args.includes("--quick");
    const rows = await benchWasmThreads(
      quick ? { rounds: 1, blocks: 2, samplesPerBlock: 320, matmulRepeats: 3 } : {},
    );
    console.log(formatTable(rows as unknown as Record<string, unknown>[], { digits: 3 }));
  }
}
