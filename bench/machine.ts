/**
 * The machine-limit reference: the best fp32 GFLOP/s of a large square matrix product on each
 * backend path, measured in the same run as the training figures so they can be read as a
 * fraction of it.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backend.ts";
import { setBlasEnabled } from "../lib/kernels/blas.ts";
import type { BenchRow } from "./bench_row.ts";

/** Options of {@linkcode benchMatMulLimit}. */
export interface BenchMatMulLimitOptions {
  /** Square sizes to try on wasm; the best is the limit. @default {[512, 1024]} */
  sizes?: readonly number[];
  /** Timed runs per size. @default {5} */
  repeats?: number;
}

/**
 * Measures the GFLOP/s of `n×n · n×n` products (2n³ FLOPs) on wasm and, at a small size, cpu.
 * The wasm figures are XNNPACK's: the BLAS kernels are switched off while it runs (the BLAS
 * limit is a row of bench/kernels.ts's `benchBlasKernels`).
 *
 * @param options Sizes and repeats.
 * @returns One row per backend and size, plus a `limit` row per backend (the best median).
 *
 * @example
 * ```ts ignore
 * import { benchMatMulLimit } from "./machine.ts";
 * console.table(await benchMatMulLimit({ sizes: [256], repeats: 2 }));
 * ```
 */
export async function benchMatMulLimit(options: BenchMatMulLimitOptions = {}): Promise<BenchRow[]> {
  const { sizes = [512, 1024], repeats = 5 } = options;
  const rows: BenchRow[] = [];
  // The wasm figures are XNNPACK's; bench/kernels.ts's benchBlasKernels has BLAS's.
  const wasOn = setBlasEnabled(false);
  try {
    await _measure(sizes, repeats, rows);
  } finally {
    setBlasEnabled(wasOn);
  }
  return rows;
}

async function _measure(sizes: readonly number[], repeats: number, rows: BenchRow[]) {
  for (const [backend, backendSizes] of [["wasm", sizes], ["cpu", [128]]] as const) {
    await initBackend(backend);
    let best = 0;
    for (const n of backendSizes) {
      const a = tf.randomNormal([n, n]);
      const b = tf.randomNormal([n, n]);
      const times: number[] = [];
      for (let i = 0; i < repeats + 1; i++) {
        const start = performance.now();
        const c = tf.matMul(a, b);
        await c.data();
        c.dispose();
        if (i > 0) times.push(performance.now() - start);
      }
      tf.dispose([a, b]);
      const gflops = (2 * n ** 3) / (median(times) / 1000) / 1e9;
      best = Math.max(best, gflops);
      rows.push({
        group: "machine_limit",
        name: `matmul_${n}`,
        backend,
        batch_size: n,
        metric: "gflops",
        median: gflops,
        unit: "GFLOP/s",
        runs: repeats,
      });
    }
    rows.push({
      group: "machine_limit",
      name: "matmul_best",
      backend,
      batch_size: 0,
      metric: "gflops",
      median: best,
      unit: "GFLOP/s",
      runs: repeats,
    });
  }
}

/**
 * The median of a list of numbers.
 *
 * @param values Numbers (not modified).
 * @returns Their median; NaN when empty.
 *
 * @example
 * ```ts
 * import { median } from "./machine.ts";
 * console.log(median([3, 1, 2])); // 2
 * ```
 */
export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}
