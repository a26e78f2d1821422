/**
 * SVG charts of results, drawn by Observable Plot on linkedom's server-side DOM.
 *
 * Each function returns one standalone SVG document as a string (with the `xmlns` attribute,
 * a white background, the title and a legend drawn inside the SVG), so a file written with
 * {@linkcode writeSvg} opens in a browser and embeds in Markdown, and a notebook shows it
 * with `Deno.jupyter.display({ "image/svg+xml": svg }, { raw: true })`.
 *
 * Parts of the SVG carry `aria-label`s that tests and tools can query: `title`, `legend`
 * (one `<g aria-label="legend item">` per series), `plot`, and Plot's own `line`, `dot`,
 * `rect`, `x-axis label` and `y-axis label`.
 *
 * @module
 */
import * as Plot from "@observablehq/plot";
import { parseHTML } from "linkedom";
import { writeFileAtomic } from "./atomic.ts";

/** Options every chart accepts. */
export interface ChartOptions {
  /** Title drawn above the chart (and stored as the SVG's `<title>`). @default {no title} */
  title?: string;
  /** Label of the x axis. @default {the x column's name} */
  xLabel?: string;
  /** Label of the y axis. @default {the y column's name} */
  yLabel?: string;
  /** Width of the SVG in pixels. @default {640} */
  width?: number;
  /** Height of the SVG in pixels, title and legend included. @default {400} */
  height?: number;
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

/** Options of {@linkcode dotChart} and {@linkcode sweepChart}. */
export interface DotChartOptions extends ChartOptions {
  /** Column of the x values (numbers), e.g. `"momentum"`. */
  x: string;
  /** Column of the y values (numbers), e.g. `"test_accuracy"`. */
  y: string;
  /** Column giving each dot its color, e.g. `"variant"`. @default {one color} */
  series?: string;
  /** Column splitting the chart into side-by-side panels, e.g. `"optimizer"`. @default {one panel} */
  facet?: string;
  /** Logarithmic x axis (x values must be positive). @default {false} */
  logX?: boolean;
}

/** Options of {@linkcode histogramChart}. */
export interface HistogramChartOptions extends ChartOptions {
  /** About how many bins (Plot rounds the edges to nice numbers). @default {40} */
  bins?: number;
  /** Bar heights as each series' share of its values, so series of different sizes compare. @default {false} */
  normalize?: boolean;
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

/** What Plot returns: its SVG, decorated with the scales it used. */
interface _PlotElement extends _Element {
  scale(name: "color"): { apply(value: unknown): unknown } | undefined;
}

const _SVG_NS = "http://www.w3.org/2000/svg";
const _FONT = "system-ui, sans-serif";
const _TITLE_HEIGHT = 24;
const _LEGEND_ROW = 16;
let _document: _Document | undefined;

/**
 * Draws one line per series, e.g. training loss against step for each variant.
 *
 * Rows are sorted by x within each series; a `null` or `NaN` y leaves a gap in its line.
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
  const series = _seriesOf(points);
  points.sort((a, b) => a.x - b.x);
  const stroke = options.series === undefined ? undefined : "series";
  return _render("lineChart", options, series, {
    x: { type: options.logX ? "log" : "linear", label: options.xLabel ?? options.x },
    y: { type: options.logY ? "log" : "linear", label: options.yLabel ?? options.y },
    marks: [Plot.lineY(points, { x: "x", y: "y", stroke, z: "series" })],
  });
}

/**
 * Draws one dot per row, colored by series and split into panels by facet; e.g. test accuracy
 * of every seed against BN momentum.
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
 * Draws a sweep: one dot per row (e.g. per seed) and, per series, a line through the mean y
 * at each x; e.g. test accuracy against BN momentum for each variant.
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
  return _render("histogramChart", options, names, {
    x: { label: options.xLabel ?? "value" },
    y: { label: options.yLabel ?? (options.normalize ? "share of values" : "count") },
    marks: [
      Plot.rectY(
        data,
        // Summing y2 (not y) draws bars from zero instead of stacking the series.
        Plot.binX({ y2: "sum" }, {
          x: "value",
          y2: "weight",
          fill: "series",
          fillOpacity: 0.5,
          thresholds: bins,
        } as Plot.BinXInputs<Plot.RectYOptions>),
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
  meanLine: boolean,
): string {
  const points = _points(what, rows, options, { logX: options.logX });
  const series = _seriesOf(points);
  points.sort((a, b) => a.x - b.x);
  const color = options.series === undefined ? undefined : "series";
  const fx = options.facet === undefined ? undefined : "facet";
  const marks = [Plot.dot(points, { x: "x", y: "y", stroke: color, fx })];
  if (meanLine) {
    marks.push(
      Plot.lineY(
        points,
        Plot.groupX({ y: "mean" }, { x: "x", y: "y", stroke: color, z: "series", fx }),
      ),
    );
  }
  return _render(what, options, series, {
    x: { type: options.logX ? "log" : "linear", label: options.xLabel ?? options.x },
    y: { label: options.yLabel ?? options.y },
    fx: fx ? { label: options.facet } : undefined,
    marks,
  });
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
 * the title and a legend: Plot itself would return an HTML `<figure>` for those.
 */
function _render(
  what: string,
  options: ChartOptions,
  series: readonly string[],
  plotOptions: Plot.PlotOptions,
): string {
  const width = options.width ?? 640;
  const height = options.height ?? 400;
  for (const [name, value] of [["width", width], ["height", height]] as const) {
    if (!Number.isFinite(value) || value < 100) {
      throw new Error(`${what}: ${name} must be a number of pixels ≥ 100, received ${value}`);
    }
  }
  const legend = series.length > 1 || (series.length === 1 && series[0] !== "");
  const document = _dom();
  const titleHeight = options.title ? _TITLE_HEIGHT : 0;
  const items = legend ? _legendLayout(series, width) : [];
  const legendHeight = items.length ? items[items.length - 1].y + _LEGEND_ROW + 4 : 0;
  const plotHeight = Math.max(height - titleHeight - legendHeight, 60);
  const figure = Plot.plot({
    ...plotOptions,
    document: document as unknown as Plot.PlotOptions["document"],
    width,
    height: plotHeight,
    grid: true,
    color: legend ? { type: "categorical", domain: series } : undefined,
  }) as unknown as _PlotElement;

  const svg = document.createElementNS(_SVG_NS, "svg");
  const attributes = {
    xmlns: _SVG_NS,
    width: String(width),
    height: String(titleHeight + legendHeight + plotHeight),
    viewBox: `0 0 ${width} ${titleHeight + legendHeight + plotHeight}`,
    "font-family": _FONT,
    "font-size": "10",
  };
  for (const [name, value] of Object.entries(attributes)) svg.setAttribute(name, value);
  if (options.title) _append(document, svg, "title", {}, options.title);
  _append(document, svg, "rect", { width: "100%", height: "100%", fill: "white" });
  if (options.title) {
    _append(document, svg, "text", {
      "aria-label": "title",
      x: String(width / 2),
      y: "17",
      "text-anchor": "middle",
      "font-size": "14",
      "font-weight": "bold",
    }, options.title);
  }
  if (items.length) {
    const color = figure.scale("color");
    const group = _append(document, svg, "g", {
      "aria-label": "legend",
      transform: `translate(0,${titleHeight})`,
    });
    for (const item of items) {
      const entry = _append(document, group, "g", {
        "aria-label": "legend item",
        transform: `translate(${item.x},${item.y})`,
      });
      _append(document, entry, "rect", {
        width: "10",
        height: "10",
        y: "3",
        fill: String(color?.apply(item.name) ?? "currentColor"),
      });
      _append(document, entry, "text", { x: "14", y: "12" }, item.name);
    }
  }
  const plot = _append(document, svg, "g", {
    "aria-label": "plot",
    transform: `translate(0,${titleHeight + legendHeight})`,
  });
  for (const name of ["class", "fill", "font-family", "font-size", "text-anchor"]) {
    const value = figure.getAttribute(name);
    if (value !== null) plot.setAttribute(name, value);
  }
  while (figure.firstChild) plot.appendChild(figure.firstChild);
  return svg.outerHTML;
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
    const itemWidth = 14 + 6 * [...name].length + 16;
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
