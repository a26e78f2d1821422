/**
 * SVG charts of results, drawn by Observable Plot on linkedom's server-side DOM.
 *
 * Each function returns one standalone SVG document as a string (with the `xmlns` attribute,
 * a white background, the title, a legend and captions drawn inside the SVG), so a file written
 * with {@linkcode writeSvg} opens in a browser and embeds in Markdown; `png.ts` renders the same
 * SVG to PNG and shows both in a notebook.
 *
 * Series are coloured through an explicit scale (`plot_style.ts`): each normalization variant
 * has the same colour in every chart, and a series name is never read as a CSS colour. Series
 * whose values are identical are drawn with distinct dash patterns, and a caption says so
 * (e.g. "bnlab and tfjs overlap: identical training loss").
 *
 * Parts of the SVG carry `aria-label`s that tests and tools can query: `title`, `legend`
 * (one `<g aria-label="legend item">` per series), `caption`, `plot`, and Plot's own `line`,
 * `dot`, `rect`, `x-axis label` and `y-axis label`.
 *
 * @module
 */
import * as Plot from "@observablehq/plot";
import { parseHTML } from "linkedom";
import { writeFileAtomic } from "./atomic.ts";
import {
  colorScale,
  DASH_PATTERNS,
  dashScale,
  overlapCaption,
  overlappingSeries,
} from "./plot_style.ts";

/** Options every chart accepts. */
export interface ChartOptions {
  /**
   * Title drawn above the chart (and stored as the SVG's `<title>`); name the setting, e.g.
   * "LeNet on MNIST, batch 64, lr 0.01, relu, 10 epochs".
   * @default {no title}
   */
  title?: string;
  /** Label of the x axis. @default {the x column's name} */
  xLabel?: string;
  /** Label of the y axis. @default {the y column's name} */
  yLabel?: string;
  /** Width of the SVG in pixels. @default {640} */
  width?: number;
  /** Height of the SVG in pixels, title, legend and captions included. @default {400} */
  height?: number;
  /** Text drawn under the chart, after the captions the chart adds itself. @default {none} */
  caption?: string;
  /**
   * Series whose y values differ by at most this fraction of the y values' extent (largest −
   * smallest) at every x count as overlapping: they get distinct dashes and a caption. 0
   * accepts only identical values.
   * @default {0.005}
   */
  overlapTolerance?: number;
}

/** Options of {@linkcode lineChart}. */
export interface LineChartOptions extends ChartOptions {
  /** Column of the x values (numbers), e.g. `"step"`. */
  x: string;
  /** Column of the y values (numbers; `null` and `NaN` leave a gap), e.g. `"train_loss"`. */
  y: string;
  /** Column naming the line a row belongs to, e.g. `"variant"`. @default {one line} */
  series?: string;
  /** Logarithmic x axis (x values must be positive). @default {false} */
  logX?: boolean;
  /** Logarithmic y axis (y values must be positive). @default {false} */
  logY?: boolean;
}

/** Options of {@linkcode lossChart}. */
export interface LossChartOptions extends LineChartOptions {
  /**
   * Steps per epoch: the x values are divided by it, so a step column is drawn in epochs.
   * @default {x is drawn as given}
   */
  stepsPerEpoch?: number;
  /**
   * Weight w of the smoothed line, an exponential moving average debiased as TensorBoard's:
   * with s₀ = 0 and sₜ = w·sₜ₋₁ + (1 − w)·yₜ over a series' finite y values in x order, the
   * line shows sₜ / (1 − wᵗ). 0 draws the raw line only.
   * @default {1 − 25 / n for a series of n points (0 when n ≤ 25)}
   */
  smoothing?: number;
  /**
   * Classes of the task: a dashed reference line marks the loss of a uniform guess, ln(classes)
   * (ln 10 ≈ 2.303 for MNIST). 0 leaves it out.
   * @default {10}
   */
  classes?: number;
}

/** Options of {@linkcode dotChart} and {@linkcode sweepChart}. */
export interface DotChartOptions extends ChartOptions {
  /** Column of the x values (numbers), e.g. `"momentum"`. */
  x: string;
  /** Column of the y values (numbers), e.g. `"test_accuracy"`. */
  y: string;
  /** Column giving each dot its colour, e.g. `"variant"`. @default {one colour} */
  series?: string;
  /** Column splitting the chart into side-by-side panels, e.g. `"optimizer"`. @default {one panel} */
  facet?: string;
  /** Logarithmic x axis (x values must be positive), e.g. for learning rates. @default {false} */
  logX?: boolean;
  /**
   * Lower end of the y axis; a caption states it when it is not 0.
   * @default {Plot's nice range of the data}
   */
  yFrom?: number;
  /**
   * Column marking a run that diverged (a truthy value): it is drawn as a × at the top of the
   * panel in its series' colour, whatever its y, and a caption explains the mark.
   * @default {no column: every row is a result}
   */
  diverged?: string;
  /**
   * (sweepChart) Error bars of mean ± standard deviation (n − 1 in the denominator) at each x
   * with two or more rows.
   * @default {true}
   */
  errorBars?: boolean;
}

/** Options of {@linkcode sweepFieldsChart}. */
export interface SweepFieldsChartOptions extends Omit<DotChartOptions, "x" | "series"> {
  /**
   * The varied fields: the first is the x axis, each combination of the others one line,
   * labelled `"field=value, field=value"`.
   */
  fields: readonly string[];
}

/** Options of {@linkcode histogramChart}. */
export interface HistogramChartOptions extends ChartOptions {
  /** About how many bins (Plot rounds the edges to nice numbers). @default {40} */
  bins?: number;
  /** Bar heights as each series' share of its values, so series of different sizes compare. @default {false} */
  normalize?: boolean;
}

/** One epoch's result for {@linkcode accuracyChart}; an `EpochRecord` of `train` fits. */
export interface AccuracyRecord {
  /** Epoch, from 0 (drawn from 1). */
  epoch: number;
  /** The test evaluation; records without one are left out. */
  test?: { accuracy: number } | null;
}

/** Options of {@linkcode accuracyChart}. */
export interface AccuracyChartOptions extends ChartOptions {
  /**
   * Lower end of the y axis, as a fraction (0.95 for 95%); a caption states it when not 0.
   * @default {the whole percent at or below the lowest point (or error bar), or 0 where that
   * range would span more than half the axis}
   */
  yFrom?: number;
}

/** A row of `history.csv` as {@linkcode historyLossChart} and {@linkcode historyAccuracyChart} read it. */
export interface HistoryPoint {
  /** Normalization variant (the series). */
  variant: string;
  /** Seed. */
  seed: number;
  /** Epoch, from 1. */
  epoch: number;
  /** Steps since the start of training, from 1. */
  step: number;
  /** Training loss: a sampled batch's, or the epoch's mean on an epoch-end row. */
  train_loss: number | null;
  /** Test accuracy on an epoch-end row; `null` on a sampled loss point. */
  test_accuracy: number | null;
}

/** Options of {@linkcode historyLossChart}. */
export interface HistoryLossChartOptions extends ChartOptions {
  /** See {@linkcode LossChartOptions.smoothing}. @default {as lossChart} */
  smoothing?: number;
  /** See {@linkcode LossChartOptions.classes}. @default {10} */
  classes?: number;
  /** Logarithmic y axis. @default {false} */
  logY?: boolean;
}

/** A point after validation: numbers or NaN, with its series and facet as text. */
interface _Point {
  x: number;
  y: number;
  series: string;
  facet: string;
}

/** The little of the DOM used here; linkedom provides it (Deno's types have no DOM). */
interface _Element {
  setAttribute(name: string, value: string): void;
  getAttribute(name: string): string | null;
  appendChild(child: unknown): unknown;
  readonly firstChild: unknown;
  textContent: string | null;
  readonly outerHTML: string;
}

/** The document Plot draws into. */
interface _Document {
  createElementNS(namespace: string, tag: string): _Element;
}

/** How a chart's series look, and what its legend and captions say. */
interface _Frame {
  /** Legend entries in order; `[]` or `[""]` draws no legend. */
  names: readonly string[];
  colors: ReadonlyMap<string, string>;
  dashes: ReadonlyMap<string, string>;
  swatch: "line" | "dot" | "rect";
  captions: string[];
}

const _SVG_NS = "http://www.w3.org/2000/svg";
const _FONT = "system-ui, sans-serif";
const _FONT_SIZE = 12;
const _TITLE_HEIGHT = 26;
const _LEGEND_ROW = 18;
const _CAPTION_ROW = 16;
const _SYMBOLS = ["circle", "square", "triangle", "diamond", "star", "cross"] as const;
let _document: _Document | undefined;

/**
 * Draws one line per series, e.g. training loss against step for each variant.
 *
 * Rows are sorted by x within each series; a `null` or `NaN` y leaves a gap in its line.
 * Series with identical values get distinct dash patterns and a caption naming them.
 *
 * @param rows One object per point.
 * @param options Columns, labels and axes.
 * @returns The SVG document as a string.
 * @throws If there are no rows, a column is missing, a value is not a number, or a log axis
 * gets a value ≤ 0.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { lineChart } from "./plot.ts";
 *
 * const svg = lineChart(
 *   [{ step: 1, loss: 2.3, variant: "none" }, { step: 2, loss: 1.1, variant: "none" }],
 *   { x: "step", y: "loss", series: "variant", title: "Loss" },
 * );
 * assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
 * ```
 */
export function lineChart(
  rows: readonly Record<string, unknown>[],
  options: LineChartOptions,
): string {
  const points = _points("lineChart", rows, options, { logX: options.logX, logY: options.logY });
  const frame = _frame(points, options.yLabel ?? options.y, "line", {
    ...options,
    chart: "lineChart",
  });
  points.sort((a, b) => a.x - b.x);
  return _render("lineChart", options, frame, {
    x: {
      type: options.logX ? "log" : "linear",
      ...(options.logX ? { tickFormat: "~g" } : {}),
      label: options.xLabel ?? options.x,
    },
    y: {
      type: options.logY ? "log" : "linear",
      ...(options.logY ? { tickFormat: "~g" } : {}),
      label: options.yLabel ?? options.y,
    },
    marks: frame.names.map((name) =>
      Plot.lineY(points.filter((point) => point.series === name), {
        x: "x",
        y: "y",
        stroke: frame.colors.get(name),
        strokeDasharray: frame.dashes.get(name) || undefined,
        strokeWidth: 1.5,
      })
    ),
  });
}

/**
 * Draws loss curves for reading at a glance: each series' raw values as a faint line under a
 * smoothed one (see {@linkcode LossChartOptions.smoothing}), x in epochs when `stepsPerEpoch`
 * is given, a dashed chance-level line at ln(classes), and an optional log y axis.
 *
 * @param rows One object per point.
 * @param options Columns, smoothing, chance level and axes.
 * @returns The SVG document as a string.
 * @throws As {@linkcode lineChart}, and if `stepsPerEpoch` is not a positive number,
 * `smoothing` is not in [0, 1) or `classes` is not 0 or an integer ≥ 2.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { lossChart } from "./plot.ts";
 *
 * const rows = Array.from({ length: 100 }, (_, i) => ({ step: i + 1, loss: 2.3 / (1 + i / 10) }));
 * const svg = lossChart(rows, { x: "step", y: "loss", stepsPerEpoch: 50, logY: true });
 * assert.match(svg, /chance: ln 10 ≈ 2\.303/);
 * ```
 */
export function lossChart(
  rows: readonly Record<string, unknown>[],
  options: LossChartOptions,
): string {
  const what = "lossChart";
  const { stepsPerEpoch, classes = 10 } = options;
  if (stepsPerEpoch !== undefined && !(Number.isFinite(stepsPerEpoch) && stepsPerEpoch > 0)) {
    throw new Error(`${what}: stepsPerEpoch must be a positive number, received ${stepsPerEpoch}`);
  }
  if (
    options.smoothing !== undefined &&
    !(Number.isFinite(options.smoothing) && options.smoothing >= 0 && options.smoothing < 1)
  ) {
    throw new Error(`${what}: smoothing must be in [0, 1), received ${options.smoothing}`);
  }
  if (classes !== 0 && !(Number.isInteger(classes) && classes >= 2)) {
    throw new Error(`${what}: classes must be 0 or an integer ≥ 2, received ${classes}`);
  }
  const points = _points(what, rows, options, { logX: options.logX, logY: options.logY });
  if (stepsPerEpoch !== undefined) { for (const point of points) point.x /= stepsPerEpoch; }
  const yLabel = options.yLabel ?? options.y;
  const frame = _frame(points, yLabel, "line", { ...options, chart: what });
  points.sort((a, b) => a.x - b.x);
  const marks: Plot.Markish[] = [];
  for (const name of frame.names) {
    const raw = points.filter((point) => point.series === name);
    const finite = raw.filter((point) => Number.isFinite(point.y)).length;
    const weight = options.smoothing ?? (finite <= 25 ? 0 : 1 - 25 / finite);
    const stroke = frame.colors.get(name);
    const strokeDasharray = frame.dashes.get(name) || undefined;
    if (weight > 0) {
      marks.push(Plot.lineY(raw, { x: "x", y: "y", stroke, strokeOpacity: 0.2, strokeWidth: 1 }));
      marks.push(
        Plot.lineY(_ema(raw, weight), { x: "x", y: "y", stroke, strokeDasharray, strokeWidth: 2 }),
      );
    } else {
      marks.push(Plot.lineY(raw, { x: "x", y: "y", stroke, strokeDasharray, strokeWidth: 1.5 }));
    }
  }
  if (classes > 0) {
    const chance = Math.log(classes);
    marks.push(Plot.ruleY([chance], { stroke: "#555", strokeDasharray: "5,4", strokeWidth: 1 }));
    marks.push(Plot.text([chance], {
      y: (d: number) => d,
      frameAnchor: "right",
      textAnchor: "end",
      dy: -7,
      dx: -4,
      fill: "#444",
      text: () => `chance: ln ${classes} ≈ ${chance.toFixed(3)}`,
    }));
  }
  const smoothed = options.smoothing === undefined || options.smoothing > 0;
  if (smoothed && points.length > 25 * Math.max(frame.names.length, 1)) {
    frame.captions.push("faint: raw values; bold: exponential moving average");
  }
  return _render(what, options, frame, {
    x: {
      type: options.logX ? "log" : "linear",
      ...(options.logX ? { tickFormat: "~g" } : {}),
      label: options.xLabel ?? (stepsPerEpoch === undefined ? options.x : "epoch"),
    },
    y: {
      type: options.logY ? "log" : "linear",
      ...(options.logY ? { tickFormat: "~g" } : {}),
      label: yLabel,
    },
    marks,
  });
}

/**
 * Draws the training loss of `history.csv` rows: one curve per variant (per variant and seed
 * when a variant has several seeds), x in epochs (steps per epoch read from the rows of epoch
 * 1), through {@linkcode lossChart}. Sampled batch losses draw the curve; epoch means stand in
 * when none was sampled.
 *
 * @param history The rows.
 * @param options Title, smoothing, chance level and axes.
 * @returns The SVG document as a string.
 * @throws If there are no rows, or as {@linkcode lossChart}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { historyLossChart } from "./plot.ts";
 *
 * const history = [1, 2].flatMap((epoch) => [
 *   { variant: "bnlab", seed: 0, epoch, step: epoch * 10 - 5, train_loss: 2 / epoch, test_accuracy: null },
 *   { variant: "bnlab", seed: 0, epoch, step: epoch * 10, train_loss: 1.8 / epoch, test_accuracy: 0.9 },
 * ]);
 * assert.match(historyLossChart(history, { title: "LeNet" }), /epoch/);
 * ```
 */
export function historyLossChart(
  history: readonly HistoryPoint[],
  options: HistoryLossChartOptions = {},
): string {
  if (history.length === 0) throw new Error("historyLossChart: nothing to plot; received no rows");
  const seeds = _seedCounts(history);
  const sampled = history.filter((row) => row.test_accuracy === null);
  const rows = (sampled.length ? sampled : history).map((row) => ({
    epoch: row.step,
    train_loss: row.train_loss,
    series: (seeds.get(row.variant) ?? 0) > 1 ? `${row.variant} (seed ${row.seed})` : row.variant,
  }));
  const first = history.filter((row) => row.epoch === 1).map((row) => row.step);
  return lossChart(rows, {
    ...options,
    x: "epoch",
    y: "train_loss",
    series: "series",
    stepsPerEpoch: first.length ? Math.max(...first) : undefined,
    yLabel: options.yLabel ?? "training loss",
  });
}

/**
 * Draws test accuracy per epoch, one line per series; where a series has several records for
 * an epoch (seeds), the line goes through their mean with error bars of ± one standard
 * deviation (n − 1 in the denominator). The y axis is in percent and starts at `yFrom`, stated
 * in a caption.
 *
 * @param records Each series' epoch records (several runs' records may be concatenated).
 * @param options Title, axis start and size.
 * @returns The SVG document as a string.
 * @throws If no record has a finite test accuracy, or `yFrom` is not in [0, 1).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { accuracyChart } from "./plot.ts";
 *
 * const svg = accuracyChart({
 *   bnlab: [{ epoch: 0, test: { accuracy: 0.97 } }, { epoch: 1, test: { accuracy: 0.98 } }],
 *   none: [{ epoch: 0, test: { accuracy: 0.95 } }, { epoch: 1, test: { accuracy: 0.97 } }],
 * });
 * assert.match(svg, /y axis starts at 95%, not 0/);
 * ```
 */
export function accuracyChart(
  records: Readonly<Record<string, readonly AccuracyRecord[]>>,
  options: AccuracyChartOptions = {},
): string {
  const what = "accuracyChart";
  if (options.yFrom !== undefined && !(options.yFrom >= 0 && options.yFrom < 1)) {
    throw new Error(`${what}: yFrom must be a fraction in [0, 1), received ${options.yFrom}`);
  }
  const stats: { x: number; y: number; lo: number; hi: number; n: number; series: string }[] = [];
  for (const [series, list] of Object.entries(records)) {
    const byEpoch = new Map<number, number[]>();
    for (const record of list) {
      const accuracy = record.test?.accuracy;
      if (typeof accuracy !== "number" || !Number.isFinite(accuracy)) continue;
      const values = byEpoch.get(record.epoch + 1) ?? [];
      values.push(accuracy * 100);
      byEpoch.set(record.epoch + 1, values);
    }
    for (const [x, values] of [...byEpoch].sort((a, b) => a[0] - b[0])) {
      const { mean, std } = _meanStd(values);
      stats.push({ x, y: mean, lo: mean - std, hi: mean + std, n: values.length, series });
    }
  }
  if (stats.length === 0) {
    throw new Error(
      `${what}: nothing to plot; no record of ${
        Object.keys(records).join(", ") || "(no series)"
      } has a finite test accuracy`,
    );
  }
  const yLabel = options.yLabel ?? "test accuracy (%)";
  const points = stats.map(({ x, y, series }) => ({ x, y, series, facet: "" }));
  const frame = _frame(points, yLabel, "line", { ...options, chart: what });
  const lowest = Math.min(...stats.map((s) => (s.n > 1 ? s.lo : s.y)));
  const highest = Math.max(...stats.map((s) => (s.n > 1 ? s.hi : s.y)));
  let from = options.yFrom !== undefined ? options.yFrom * 100 : Math.floor(lowest);
  const to = Math.min(100, Math.max(Math.ceil(highest), from + 1));
  // A range that spans most of the scale anyway starts at 0.
  if (options.yFrom === undefined && to - from > to / 2) from = 0;
  if (from >= to) from = to - 1;
  if (from > 0) {
    frame.captions.push(
      `y axis starts at ${_percent(from)}%, not 0` +
        (stats.some((s) => s.n > 1) ? "; bars: mean ± one standard deviation over seeds" : ""),
    );
  }
  const marks: Plot.Markish[] = [];
  for (const name of frame.names) {
    const mine = stats.filter((s) => s.series === name);
    const stroke = frame.colors.get(name);
    const strokeDasharray = frame.dashes.get(name) || undefined;
    marks.push(Plot.lineY(mine, { x: "x", y: "y", stroke, strokeDasharray, strokeWidth: 2 }));
    marks.push(Plot.dot(mine, { x: "x", y: "y", fill: stroke, r: 3 }));
    const spread = mine.filter((s) => s.n > 1);
    if (spread.length) marks.push(Plot.ruleX(spread, { x: "x", y1: "lo", y2: "hi", stroke }));
  }
  return _render(what, options, frame, {
    x: { label: options.xLabel ?? "epoch", tickFormat: "d", ticks: _integerTicks(stats) },
    y: { label: yLabel, domain: [from, to], clamp: true },
    marks,
  });
}

/**
 * Draws test accuracy per epoch from `history.csv` rows (their epoch-end rows), one line per
 * variant through the mean over seeds, through {@linkcode accuracyChart}.
 *
 * @param history The rows.
 * @param options Title, axis start and size.
 * @returns The SVG document as a string.
 * @throws As {@linkcode accuracyChart}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { historyAccuracyChart } from "./plot.ts";
 *
 * const svg = historyAccuracyChart([
 *   { variant: "tfjs", seed: 0, epoch: 1, step: 10, train_loss: 1, test_accuracy: 0.9 },
 *   { variant: "tfjs", seed: 1, epoch: 1, step: 10, train_loss: 1, test_accuracy: 0.92 },
 * ], { yFrom: 0.8 });
 * assert.match(svg, /y axis starts at 80%/);
 * ```
 */
export function historyAccuracyChart(
  history: readonly HistoryPoint[],
  options: AccuracyChartOptions = {},
): string {
  const records: Record<string, AccuracyRecord[]> = {};
  for (const row of history) {
    if (row.test_accuracy === null) continue;
    (records[row.variant] ??= []).push({
      epoch: row.epoch - 1,
      test: { accuracy: row.test_accuracy },
    });
  }
  return accuracyChart(records, options);
}

/**
 * Draws one dot per row, coloured by series and split into panels by facet; e.g. test accuracy
 * of every seed against BN momentum. Series with identical values get distinct symbols.
 *
 * @param rows One object per point.
 * @param options Columns, labels and axes.
 * @returns The SVG document as a string.
 * @throws If there are no rows, a column is missing, a value is not a number, or the log axis
 * gets a value ≤ 0.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { dotChart } from "./plot.ts";
 *
 * const svg = dotChart([{ momentum: 0.9, acc: 0.98 }, { momentum: 0.99, acc: 0.97 }], {
 *   x: "momentum",
 *   y: "acc",
 * });
 * assert.equal(svg.match(/<circle/g)?.length, 2);
 * ```
 */
export function dotChart(
  rows: readonly Record<string, unknown>[],
  options: DotChartOptions,
): string {
  return _dots("dotChart", rows, options, false);
}

/**
 * Draws a sweep: one faint dot per row (e.g. per seed) and, per series, a line through the mean
 * y at each x with error bars of ± one standard deviation (n − 1 in the denominator) where an
 * x has two or more rows; e.g. test accuracy against BN momentum for each variant. Rows marked
 * by the `diverged` column are drawn as a × at the top of the panel.
 *
 * @param rows One object per point.
 * @param options Columns, labels and axes.
 * @returns The SVG document as a string.
 * @throws If there are no rows, a column is missing, a value is not a number, or the log axis
 * gets a value ≤ 0.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sweepChart } from "./plot.ts";
 *
 * const svg = sweepChart(
 *   [
 *     { m: 0.9, acc: 0.97, variant: "custom" },
 *     { m: 0.9, acc: 0.99, variant: "custom" },
 *     { m: 0.99, acc: 0.96, variant: "custom" },
 *   ],
 *   { x: "m", y: "acc", series: "variant" },
 * );
 * assert.equal(svg.match(/<circle/g)?.length, 3);
 * ```
 */
export function sweepChart(
  rows: readonly Record<string, unknown>[],
  options: DotChartOptions,
): string {
  return _dots("sweepChart", rows, options, true);
}

/**
 * Draws a sweep over several fields: the metric against the first varied field, one line per
 * combination of the others (mean ± standard deviation over seeds), through
 * {@linkcode sweepChart}.
 *
 * @param rows One object per run.
 * @param options The varied fields, the metric column and the axes.
 * @returns The SVG document as a string.
 * @throws If `fields` is empty, a row lacks a field, or as {@linkcode sweepChart}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sweepFieldsChart } from "./plot.ts";
 *
 * const rows = [0.01, 0.1].flatMap((lr) =>
 *   [32, 64].map((batch) => ({ lr, batch, acc: 0.9 + lr }))
 * );
 * const svg = sweepFieldsChart(rows, { fields: ["lr", "batch"], y: "acc", logX: true });
 * assert.match(svg, /batch=32/);
 * ```
 */
export function sweepFieldsChart(
  rows: readonly Record<string, unknown>[],
  options: SweepFieldsChartOptions,
): string {
  const { fields } = options;
  if (fields.length === 0) {
    throw new Error("sweepFieldsChart: fields must name at least one column, received []");
  }
  const rest = fields.slice(1);
  const labelled = rows.map((row, index) => {
    for (const field of fields) {
      if (!(field in row)) {
        throw new Error(
          `sweepFieldsChart: row ${index} has no field "${field}"; its columns are ${
            Object.keys(row).join(", ")
          }`,
        );
      }
    }
    return { ...row, __series: rest.map((field) => `${field}=${row[field]}`).join(", ") };
  });
  return sweepChart(labelled, {
    ...options,
    x: fields[0],
    series: rest.length ? "__series" : undefined,
  });
}

/**
 * Draws overlaid histograms, one per series; e.g. a layer's activations with and without BN.
 *
 * All series share the same bins. Bars are translucent and not stacked, so overlaps show.
 * Values that are not finite numbers are left out.
 *
 * @param values The values of each series, by series name.
 * @param options Bins, normalization and labels.
 * @returns The SVG document as a string.
 * @throws If there are no series or no finite values at all, or `bins` is not a positive integer.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { histogramChart } from "./plot.ts";
 *
 * const svg = histogramChart({ "with BN": [0, 0.1, -0.2], "without BN": [3, 5, 4] }, { bins: 5 });
 * assert.equal(svg.match(/aria-label="legend item"/g)?.length, 2);
 * ```
 */
export function histogramChart(
  values: Readonly<Record<string, ArrayLike<number>>>,
  options: HistogramChartOptions = {},
): string {
  const names = Object.keys(values);
  const bins = options.bins ?? 40;
  if (!Number.isInteger(bins) || bins < 1) {
    throw new Error(`histogramChart: bins must be a positive integer, received ${bins}`);
  }
  if (names.length === 0) {
    throw new Error("histogramChart: nothing to plot; received no series (an empty object)");
  }
  const data: { value: number; series: string; weight: number }[] = [];
  for (const name of names) {
    const finite = Array.from(values[name]).filter(Number.isFinite);
    const weight = options.normalize ? 1 / finite.length : 1;
    for (const value of finite) data.push({ value, series: name, weight });
  }
  if (data.length === 0) {
    throw new Error(
      `histogramChart: nothing to plot; series ${names.join(", ")} hold no finite values`,
    );
  }
  const colors = colorScale(names);
  const thresholds = _binEdges(data.map((d) => d.value), bins);
  const frame: _Frame = {
    names: names.length === 1 ? [names[0] || " "] : names,
    colors,
    dashes: new Map(),
    swatch: "rect",
    captions: [],
  };
  return _render("histogramChart", options, frame, {
    x: { label: options.xLabel ?? "value" },
    y: { label: options.yLabel ?? (options.normalize ? "share of values" : "count") },
    marks: [
      // One mark per series, all on the same bin edges; fills come from the colour scale.
      ...names.map((name) =>
        Plot.rectY(
          data.filter((d) => d.series === name),
          // Summing y2 (not y) draws bars from zero instead of stacking the series.
          Plot.binX({ y2: "sum" }, {
            x: "value",
            y2: "weight",
            fill: colors.get(name),
            fillOpacity: 0.5,
            thresholds,
          } as Plot.BinXInputs<Plot.RectYOptions>),
        )
      ),
      Plot.ruleY([0]),
    ],
  });
}

/**
 * Writes an SVG string to a file atomically.
 *
 * @param path File to write, usually ending in `.svg`; parent directories are created.
 * @param svg The SVG, as the chart functions return it.
 * @throws If `svg` does not start with an `<svg` element, or the write fails.
 *
 * @example
 * ```ts
 * import { lineChart, writeSvg } from "./plot.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await writeSvg(`${dir}/loss.svg`, lineChart([{ step: 0, loss: 1 }], { x: "step", y: "loss" }));
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeSvg(path: string, svg: string): Promise<void> {
  if (!/^\s*(?:<\?xml[^>]*\?>\s*)?<svg[\s>]/.test(svg)) {
    throw new Error(
      `writeSvg: expected an SVG document for ${path}, received text starting ` +
        `${JSON.stringify(svg.slice(0, 40))}`,
    );
  }
  await writeFileAtomic(path, svg.endsWith("\n") ? svg : svg + "\n");
}

function _dots(
  what: string,
  rows: readonly Record<string, unknown>[],
  options: DotChartOptions,
  sweep: boolean,
): string {
  const diverged = options.diverged;
  const failed = diverged === undefined ? [] : rows.filter((row) => Boolean(row[diverged]));
  const kept = diverged === undefined ? rows : rows.filter((row) => !row[diverged]);
  const all = _points(what, kept.length ? kept : rows, options, { logX: options.logX });
  const order = kept.length ? all : [];
  const points = [...order].sort((a, b) => a.x - b.x);
  const failedPoints = failed.length
    ? _points(what, failed.map((row) => ({ ...row, [options.y]: 0 })), options, {
      logX: options.logX,
    })
    : [];
  const means = _means(points);
  const yLabel = options.yLabel ?? options.y;
  const frame = _frame(sweep ? means : points, yLabel, sweep ? "line" : "dot", {
    order: [...order, ...failedPoints],
    overlapTolerance: options.overlapTolerance,
    chart: what,
  });
  const fx = options.facet === undefined ? undefined : "facet";
  const marks: Plot.Markish[] = [];
  frame.names.forEach((name) => {
    const stroke = frame.colors.get(name);
    const mine = points.filter((point) => point.series === name);
    if (sweep) {
      const bars = means.filter((m) => m.series === name);
      marks.push(Plot.dot(mine, { x: "x", y: "y", fill: stroke, fillOpacity: 0.35, r: 2.5, fx }));
      marks.push(Plot.lineY(bars, {
        x: "x",
        y: "y",
        stroke,
        strokeDasharray: frame.dashes.get(name) || undefined,
        strokeWidth: 2,
        fx,
      }));
      const spread = bars.filter((m) => m.n > 1);
      if (options.errorBars !== false && spread.length) {
        marks.push(Plot.ruleX(spread, { x: "x", y1: "lo", y2: "hi", stroke, fx }));
      }
    } else {
      const symbol = _SYMBOLS[_dashRank(frame, name) % _SYMBOLS.length];
      marks.push(Plot.dot(mine, { x: "x", y: "y", stroke, symbol, fx }));
    }
    const lost = failedPoints.filter((point) => point.series === name);
    if (lost.length) {
      marks.push(Plot.dot(lost, {
        x: "x",
        frameAnchor: "top",
        dy: 8,
        symbol: "times",
        r: 6,
        stroke,
        strokeWidth: 2.5,
        fx,
      }));
    }
  });
  if (failedPoints.length) {
    frame.captions.push(
      `× at the top: ${failedPoints.length} run${
        failedPoints.length === 1 ? "" : "s"
      } diverged (no result)`,
    );
  }
  if (options.yFrom !== undefined && options.yFrom !== 0) {
    frame.captions.push(`y axis starts at ${options.yFrom}, not 0`);
  }
  if (sweep && options.errorBars !== false && means.some((m) => m.n > 1)) {
    frame.captions.push("lines: mean over seeds; bars: ± one standard deviation; dots: each run");
  }
  const top = Math.max(
    ...points.map((p) => p.y).filter(Number.isFinite),
    ...means.map((m) => m.hi),
  );
  return _render(what, options, frame, {
    x: {
      type: options.logX ? "log" : "linear",
      ...(options.logX ? { tickFormat: "~g" } : {}),
      label: options.xLabel ?? options.x,
    },
    y: {
      label: yLabel,
      ...(options.yFrom !== undefined && Number.isFinite(top)
        ? { domain: [options.yFrom, Math.max(top, options.yFrom + 1e-9)], nice: true }
        : {}),
    },
    fx: fx ? { label: options.facet } : undefined,
    marks,
  });
}

/** The rank a series takes among those of its colour or overlap group (its dash's index). */
function _dashRank(frame: _Frame, name: string): number {
  const dash = frame.dashes.get(name) ?? "";
  return Math.max(0, DASH_PATTERNS.indexOf(dash));
}

/** Mean and standard deviation (n − 1; 0 for one value) of each series' y per facet and x. */
function _means(
  points: readonly _Point[],
): (_Point & { lo: number; hi: number; n: number })[] {
  const groups = new Map<string, _Point[]>();
  for (const point of points) {
    if (!Number.isFinite(point.x) || !Number.isFinite(point.y)) continue;
    const key = JSON.stringify([point.series, point.facet, point.x]);
    const list = groups.get(key) ?? [];
    list.push(point);
    groups.set(key, list);
  }
  return [...groups.values()].map((list) => {
    const { mean, std } = _meanStd(list.map((point) => point.y));
    return { ...list[0], y: mean, lo: mean - std, hi: mean + std, n: list.length };
  }).sort((a, b) => a.x - b.x);
}

function _meanStd(values: readonly number[]): { mean: number; std: number } {
  const mean = values.reduce((sum, value) => sum + value, 0) / values.length;
  const variance = values.length > 1
    ? values.reduce((sum, value) => sum + (value - mean) ** 2, 0) / (values.length - 1)
    : 0;
  return { mean, std: Math.sqrt(variance) };
}

/** The debiased exponential moving average of a series' finite values (see `smoothing`). */
function _ema(points: readonly _Point[], weight: number): _Point[] {
  let state = 0;
  let t = 0;
  const out: _Point[] = [];
  for (const point of points) {
    if (!Number.isFinite(point.y)) continue;
    t++;
    state = weight * state + (1 - weight) * point.y;
    out.push({ ...point, y: state / (1 - weight ** t) });
  }
  return out;
}

/** Colours, dashes and overlap captions of the series in `points` (legend order: `order`'s). */
function _frame(
  points: readonly _Point[],
  what: string,
  swatch: _Frame["swatch"],
  options: { chart: string; order?: readonly _Point[]; overlapTolerance?: number },
): _Frame {
  const { order = points, overlapTolerance = 0.005 } = options;
  if (!(overlapTolerance >= 0)) {
    throw new Error(
      `${options.chart}: overlapTolerance must be a fraction ≥ 0 of the y extent, received ${overlapTolerance}`,
    );
  }
  const names = _seriesOf(order);
  const values = new Map<string, Map<string, Map<number, number>>>();
  for (const point of points) {
    if (!Number.isFinite(point.x)) continue;
    let facets = values.get(point.series);
    if (!facets) values.set(point.series, facets = new Map());
    let ys = facets.get(point.facet);
    if (!ys) facets.set(point.facet, ys = new Map());
    ys.set(point.x, point.y);
  }
  let lo = Infinity;
  let hi = -Infinity;
  for (const point of points) {
    if (point.y < lo) lo = point.y;
    if (point.y > hi) hi = point.y;
  }
  const tolerance = hi > lo ? overlapTolerance * (hi - lo) : 0;
  const groups = names.length > 1 ? overlappingSeries(values, tolerance) : [];
  const colors = colorScale(names);
  return {
    names,
    colors,
    dashes: dashScale(colors, groups.map((group) => group.names)),
    swatch,
    captions: groups.map((group) => overlapCaption(group.names, what, group.maxDifference)),
  };
}

/** About `bins` bins' edges at round numbers (1, 2 or 5 times a power of ten apart). */
function _binEdges(values: readonly number[], bins: number): number[] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const value of values) {
    if (value < lo) lo = value;
    if (value > hi) hi = value;
  }
  if (lo === hi) return [lo - 0.5, lo + 0.5];
  const raw = (hi - lo) / bins;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = power * ([1, 2, 5, 10].find((k) => k * power >= raw) ?? 10);
  const edges: number[] = [];
  const first = Math.floor(lo / step);
  const last = Math.floor(hi / step) + 1;
  for (let k = first; k <= last; k++) edges.push(Number((k * step).toPrecision(12)));
  return edges;
}

function _integerTicks(points: readonly { x: number }[]): number[] | undefined {
  const xs = [...new Set(points.map((point) => point.x))].sort((a, b) => a - b);
  return xs.length <= 12 ? xs : undefined;
}

function _percent(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

function _seedCounts(history: readonly HistoryPoint[]): Map<string, number> {
  const seeds = new Map<string, Set<number>>();
  for (const row of history) {
    const set = seeds.get(row.variant) ?? new Set();
    set.add(row.seed);
    seeds.set(row.variant, set);
  }
  return new Map([...seeds].map(([variant, set]) => [variant, set.size]));
}

/** Validates the rows and turns them into points; throws messages naming the function. */
function _points(
  what: string,
  rows: readonly Record<string, unknown>[],
  options: { x: string; y: string; series?: string; facet?: string },
  log: { logX?: boolean; logY?: boolean },
): _Point[] {
  if (rows.length === 0) throw new Error(`${what}: nothing to plot; received no rows`);
  const columns: [string, string | undefined][] = [
    ["x", options.x],
    ["y", options.y],
    ["series", options.series],
    ["facet", options.facet],
  ];
  const points = rows.map((row, index) => {
    for (const [role, column] of columns) {
      if (column !== undefined && !(column in row)) {
        throw new Error(
          `${what}: row ${index} has no column "${column}" (the ${role} column); ` +
            `its columns are ${Object.keys(row).join(", ")}`,
        );
      }
    }
    return {
      x: _number(what, row[options.x], options.x, index, log.logX),
      y: _number(what, row[options.y], options.y, index, log.logY),
      series: options.series === undefined ? "" : String(row[options.series]),
      facet: options.facet === undefined ? "" : String(row[options.facet]),
    };
  });
  if (!points.some((point) => Number.isFinite(point.x) && Number.isFinite(point.y))) {
    throw new Error(
      `${what}: nothing to plot; no row has finite numbers in both "${options.x}" and "${options.y}"`,
    );
  }
  return points;
}

function _number(
  what: string,
  value: unknown,
  column: string,
  index: number,
  log: boolean | undefined,
): number {
  if (value === null || value === undefined) return NaN;
  if (typeof value !== "number") {
    throw new Error(
      `${what}: column "${column}" must hold numbers, received ${
        JSON.stringify(value)
      } in row ${index}`,
    );
  }
  if (log && value <= 0) {
    throw new Error(
      `${what}: a log axis needs positive values, received ${value} in column "${column}", ` +
        `row ${index}; filter such rows out or use a linear axis`,
    );
  }
  // Infinity would stretch the axis to nothing; as NaN it leaves a gap, like a missing value.
  return Number.isFinite(value) ? value : NaN;
}

/**
 * Draws the marks with Plot, then wraps Plot's SVG in a standalone one with a background,
 * the title, a legend and captions: Plot itself would return an HTML `<figure>` for those.
 */
function _render(
  what: string,
  options: ChartOptions,
  frame: _Frame,
  plotOptions: Plot.PlotOptions,
): string {
  const width = options.width ?? 640;
  const height = options.height ?? 400;
  for (const [name, value] of [["width", width], ["height", height]] as const) {
    if (!Number.isFinite(value) || value < 100) {
      throw new Error(`${what}: ${name} must be a number of pixels ≥ 100, received ${value}`);
    }
  }
  const { names } = frame;
  const legend = names.length > 1 || (names.length === 1 && names[0] !== "");
  const document = _dom();
  const titleHeight = options.title ? _TITLE_HEIGHT : 0;
  const items = legend ? _legendLayout(names, width) : [];
  const legendHeight = items.length ? items[items.length - 1].y + _LEGEND_ROW + 4 : 0;
  const captions = [...frame.captions, ...(options.caption ? [options.caption] : [])]
    .flatMap((caption) => _wrap(caption, width - 20));
  const captionHeight = captions.length ? captions.length * _CAPTION_ROW + 8 : 0;
  const plotHeight = Math.max(height - titleHeight - legendHeight - captionHeight, 60);
  const figure = Plot.plot({
    marginLeft: 60,
    marginRight: 28,
    marginBottom: 40,
    marginTop: plotOptions.fx ? 30 : 22,
    ...plotOptions,
    document: document as unknown as Plot.PlotOptions["document"],
    width,
    height: plotHeight,
    grid: true,
    style: { fontSize: `${_FONT_SIZE}px` },
  }) as unknown as _Element;

  const total = titleHeight + legendHeight + plotHeight + captionHeight;
  const svg = document.createElementNS(_SVG_NS, "svg");
  const attributes = {
    xmlns: _SVG_NS,
    width: String(width),
    height: String(total),
    viewBox: `0 0 ${width} ${total}`,
    "font-family": _FONT,
    "font-size": String(_FONT_SIZE),
  };
  for (const [name, value] of Object.entries(attributes)) svg.setAttribute(name, value);
  if (options.title) _append(document, svg, "title", {}, options.title);
  _append(document, svg, "rect", { width: "100%", height: "100%", fill: "white" });
  if (options.title) {
    _append(document, svg, "text", {
      "aria-label": "title",
      x: String(width / 2),
      y: "19",
      "text-anchor": "middle",
      "font-size": "15",
      "font-weight": "bold",
    }, options.title);
  }
  if (items.length) {
    const group = _append(document, svg, "g", {
      "aria-label": "legend",
      transform: `translate(0,${titleHeight})`,
    });
    for (const item of items) {
      const entry = _append(document, group, "g", {
        "aria-label": "legend item",
        transform: `translate(${item.x},${item.y})`,
      });
      const color = frame.colors.get(item.name) ?? "#000000";
      if (frame.swatch === "line") {
        const dash = frame.dashes.get(item.name);
        _append(document, entry, "line", {
          x1: "0",
          x2: "22",
          y1: "9",
          y2: "9",
          stroke: color,
          "stroke-width": "3",
          ...(dash ? { "stroke-dasharray": dash } : {}),
        });
      } else if (frame.swatch === "dot") {
        _append(document, entry, "circle", {
          cx: "11",
          cy: "9",
          r: "4.5",
          fill: "none",
          stroke: color,
          "stroke-width": "2",
        });
      } else {
        _append(document, entry, "rect", {
          x: "6",
          width: "12",
          height: "12",
          y: "3",
          fill: color,
        });
      }
      _append(document, entry, "text", { x: "28", y: "13" }, item.name);
    }
  }
  const plot = _append(document, svg, "g", {
    "aria-label": "plot",
    transform: `translate(0,${titleHeight + legendHeight})`,
  });
  for (const name of ["class", "fill", "font-family", "text-anchor"]) {
    const value = figure.getAttribute(name);
    if (value !== null) plot.setAttribute(name, value);
  }
  plot.setAttribute("font-size", String(_FONT_SIZE));
  while (figure.firstChild) plot.appendChild(figure.firstChild);
  captions.forEach((caption, i) => {
    _append(document, svg, "text", {
      "aria-label": "caption",
      x: "10",
      y: String(titleHeight + legendHeight + plotHeight + 4 + (i + 1) * _CAPTION_ROW - 4),
      fill: "#333",
    }, caption);
  });
  return svg.outerHTML;
}

/** Splits a caption into lines of at most about `width` pixels. */
function _wrap(text: string, width: number): string[] {
  const perLine = Math.max(20, Math.floor(width / (_FONT_SIZE * 0.6)));
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line && line.length + 1 + word.length > perLine) {
      lines.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) lines.push(line);
  return lines;
}

/** The series names in order of first appearance (the legend's order). */
function _seriesOf(points: readonly _Point[]): string[] {
  return [...new Set(points.map((point) => point.series))];
}

/** Places legend swatches left to right, wrapping at the chart's width. */
function _legendLayout(
  names: readonly string[],
  width: number,
): { name: string; x: number; y: number }[] {
  const items: { name: string; x: number; y: number }[] = [];
  let x = 40;
  let y = 2;
  for (const name of names) {
    const itemWidth = 28 + Math.ceil(_FONT_SIZE * 0.62 * [...name].length) + 18;
    if (x + itemWidth > width && x > 40) {
      x = 40;
      y += _LEGEND_ROW;
    }
    items.push({ name, x, y });
    x += itemWidth;
  }
  return items;
}

function _append(
  document: _Document,
  parent: _Element,
  tag: string,
  attributes: Record<string, string>,
  text?: string,
): _Element {
  const element = document.createElementNS(_SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  if (text !== undefined) element.textContent = text;
  parent.appendChild(element);
  return element;
}

function _dom(): _Document {
  if (_document) return _document;
  const window = parseHTML("<!DOCTYPE html><html><body></body></html>") as unknown as {
    document: _Document;
  };
  _document = window.document;
  return _document;
}
