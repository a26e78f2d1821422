/**
 * The row every benchmark of bench/ returns, so that results from different benchmarks
 * share one table (and one CSV).
 *
 * @module
 */

/**
 * One measured figure: the median of `runs` timed runs of one thing on one backend.
 *
 * @example
 * ```ts
 * import type { BenchRow } from "./bench_row.ts";
 *
 * const row: BenchRow = {
 *   group: "conv2d_backprop_filter",
 *   name: "lenet_conv1",
 *   backend: "wasm",
 *   batch_size: 20,
 *   metric: "backprop_filter",
 *   median: 5.3,
 *   unit: "GFLOP/s",
 *   runs: 7,
 * };
 * console.log(row.median);
 * ```
 */
export interface BenchRow {
  /** The benchmark the row comes from, e.g. `"conv2d_backprop_filter"`. */
  group: string;
  /** What was measured within the group, e.g. a layer: `"lenet_conv1"`. */
  name: string;
  /** The tfjs backend it ran on (`"wasm"`, `"cpu"`, `"webgpu"`). */
  backend: string;
  /** The batch size of the inputs. */
  batch_size: number;
  /** Which quantity `median` is, e.g. `"backprop_filter"` or `"backprop_filter_over_forward"`. */
  metric: string;
  /** The median over `runs` timed runs (for a ratio, the ratio of two medians). */
  median: number;
  /** The unit of `median`, e.g. `"GFLOP/s"` or `"ratio"`. */
  unit: string;
  /** How many timed runs the median is over (warm-up runs not counted). */
  runs: number;
}
