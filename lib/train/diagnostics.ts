/**
 * Observational diagnostics of a training run (Ioffe & Szegedy 2015, Figure 1): every N steps,
 * on a fixed probe of test images, the distribution of each normalization site's input, BN's
 * running-vs-batch statistic gap, the probe's accuracy, and the gradient norm of every weight.
 * Nothing here changes what is trained.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { Dataset } from "../data/dataset.ts";
import type { TrainObserver } from "./loop.ts";
import { appendCsvRows, readCsv, writeCsv } from "../output/csv.ts";
import { lineChart } from "../output/plot.ts";
import { sideBySide } from "../output/panels.ts";

/** A parsed `diagnostics` setting. */
export interface DiagnosticsSpec {
  /** Steps between two diagnostic points. */
  every: number;
  /** Test images in the probe (the first M). */
  probe: number;
}

/** Test images in the probe when `probe=` is not given. */
export const DEFAULT_PROBE = 500;

/**
 * Parses the `diagnostics` config field: `none`, or `every=N` with an optional `,probe=M`.
 *
 * @param value The field's text.
 * @returns `null` for `none`, else the interval and the probe size.
 * @throws {Error} Naming what was expected and what was received.
 *
 * @example
 * ```ts
 * import { parseDiagnostics } from "./diagnostics.ts";
 * console.log(parseDiagnostics("none"), parseDiagnostics("every=100,probe=1000"));
 * // null { every: 100, probe: 1000 }
 * ```
 */
export function parseDiagnostics(value: string): DiagnosticsSpec | null {
  if (value === "none") return null;
  const match = typeof value === "string" ? value.match(/^every=(\d+)(?:,probe=(\d+))?$/) : null;
  const every = match ? Number(match[1]) : NaN;
  const probe = match?.[2] === undefined ? DEFAULT_PROBE : Number(match[2]);
  if (!match || !(every >= 1) || !(probe >= 1) || every > 1e9 || probe > 1e9) {
    throw new Error(
      `config: diagnostics must be none or every=N[,probe=M] with N, M positive integers, ` +
        `received ${JSON.stringify(value)}`,
    );
  }
  return { every, probe };
}

/** Class names of the normalization layers whose input a site describes. */
export const NORMALIZATION_CLASSES: readonly string[] = [
  "BatchNorm",
  "BatchNormalization",
  "GroupNorm",
  "LayerNorm",
];

/** The percentiles recorded (Ioffe & Szegedy 2015, Figure 1). */
export const PERCENTILES: readonly number[] = [15, 50, 85];

/** Largest number of values a site's percentiles are computed from per diagnostic point. */
export const MAX_PERCENTILE_VALUES = 262_144;

/** One row of `diagnostics.csv`: one site at one diagnostic step. */
export interface DiagnosticsRow {
  /** Training step (from 1) after whose update the row was measured. */
  step: number;
  /** Epoch of that step (from 0). */
  epoch: number;
  /** Site index: the weight layers (conv, dense) in model order, from 0. */
  site: number;
  /** Name of the site's weight layer. */
  layer: string;
  /** Class of the normalization layer after it, or `none`. */
  norm: string;
  /** Channels (units) of the site. */
  channels: number;
  /** Percentiles and moments of the site's pre-normalization values over the probe. */
  input_p15: number;
  input_p50: number;
  input_p85: number;
  input_mean: number;
  input_variance: number;
  /**
   * Percentiles of unit 0's activation input (after the normalization, before the
   * nonlinearity; for `none` the layer's output) over the probe's images and positions.
   */
  unit0_p15: number;
  unit0_p50: number;
  unit0_p85: number;
  /** mean_c |μ_c − μ_running,c| / √(σ²_running,c + ε) (BN layers; else null). */
  running_mean_gap: number | null;
  /** mean_c σ²_c / σ²_running,c (BN layers; else null). */
  running_variance_ratio: number | null;
  /** ‖∇‖₂ over the weight layer's trainable weights at that step's update. */
  grad_norm: number;
  /** ‖∇‖₂ over the normalization layer's γ and β (null without any). */
  norm_grad_norm: number | null;
  /** Accuracy on the probe, inference mode (running statistics). */
  probe_accuracy: number;
}

/** The columns of `diagnostics.csv`, in order. */
export const DIAGNOSTICS_COLUMNS: readonly (keyof DiagnosticsRow)[] = [
  "step",
  "epoch",
  "site",
  "layer",
  "norm",
  "channels",
  "input_p15",
  "input_p50",
  "input_p85",
  "input_mean",
  "input_variance",
  "unit0_p15",
  "unit0_p50",
  "unit0_p85",
  "running_mean_gap",
  "running_variance_ratio",
  "grad_norm",
  "norm_grad_norm",
  "probe_accuracy",
];

/**
 * The p-th percentile of values sorted ascending, interpolated linearly between order
 * statistics (NumPy's default): with h = (n − 1)·p/100, x[⌊h⌋] + (h − ⌊h⌋)·(x[⌊h⌋+1] − x[⌊h⌋]).
 *
 * @param sorted Values sorted ascending (non-empty).
 * @param p The percentile, in [0, 100].
 * @returns The percentile; NaN for no values.
 *
 * @example
 * ```ts
 * import { percentile } from "./diagnostics.ts";
 * console.log(percentile(new Float32Array([1, 2, 3, 4]), 50)); // 2.5
 * ```
 */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (!(p >= 0 && p <= 100)) {
    throw new Error(`percentile: p must be in [0, 100], received ${p}`);
  }
  const n = sorted.length;
  if (n === 0) return NaN;
  const h = (n - 1) * p / 100;
  const low = Math.floor(h);
  const high = Math.min(low + 1, n - 1);
  return sorted[low] + (h - low) * (sorted[high] - sorted[low]);
}

interface _Site {
  layer: tf.layers.Layer;
  norm: tf.layers.Layer | null;
  gradNames: string[];
  normGradNames: string[];
  channels: number;
}

/** Options of {@linkcode DiagnosticsRecorder}. */
export interface DiagnosticsRecorderOptions {
  /** Steps between two diagnostic points. */
  every: number;
  /** The probe: its first `probe` images are used. */
  probe: Dataset;
  /** Images of the probe. @default {500} */
  probeSize?: number;
  /** Images per forward pass over the probe. @default {250} */
  chunk?: number;
}

/**
 * Records diagnostics of a model during {@linkcode train}: pass {@linkcode observer} as
 * `TrainOptions.observer`. Every `every` steps, after the update, the probe goes through the
 * model in inference mode (running statistics, no statistic updated), and each site — every
 * conv and dense layer, with the normalization layer that follows it, if any — gets a
 * {@linkcode DiagnosticsRow}: percentiles, mean and variance of the layer's output (the
 * normalization's input) pooled over images, positions and channels; percentiles of unit 0
 * after the normalization (the nonlinearity's input); BN's gap between the probe's per-channel
 * statistics and the running ones; the step's gradient norms; the probe's accuracy.
 *
 * A site's input percentiles use about {@linkcode MAX_PERCENTILE_VALUES} values: every k-th
 * value of each chunk of the probe in NHWC order, k = ⌈total/MAX⌉ for the site's total values
 * over the probe (all of them when they fit). Unit 0's percentiles use all its values. Means
 * and variances use all values, accumulated in float64 as sums of x and x²
 * (variance = E[x²] − E[x]²); the running-statistic gap uses per-channel sums the same way.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { DiagnosticsRecorder } from "./diagnostics.ts";
 * const model = tf.sequential({ layers: [
 *   tf.layers.flatten({ inputShape: [2, 2, 1] }),
 *   tf.layers.dense({ units: 3 }), tf.layers.activation({ activation: "sigmoid" }),
 *   tf.layers.dense({ units: 2 }),
 * ] });
 * const probe = { name: "toy", split: "test" as const, count: 4, height: 2, width: 2,
 *   numClasses: 2, images: new Float32Array(16).map((_, i) => i / 16),
 *   labels: new Uint8Array([0, 1, 0, 1]) };
 * const recorder = new DiagnosticsRecorder(model, { every: 1, probe });
 * await recorder.measure(1, 0);
 * console.log(recorder.rows.length, recorder.rows[0].layer.startsWith("dense")); // 2 true
 * recorder.dispose();
 * model.dispose();
 * ```
 */
export class DiagnosticsRecorder {
  /** Rows measured so far (and not yet taken by {@linkcode takeRows}). */
  rows: DiagnosticsRow[] = [];
  /** Steps between two diagnostic points. */
  readonly every: number;
  #model: tf.LayersModel;
  #probeModel: tf.LayersModel;
  #sites: _Site[];
  #probe: Dataset;
  #probeSize: number;
  #chunk: number;
  #gradNorms = new Map<number, tf.Tensor1D>();
  #outputIndex: number[];

  /**
   * @param model The model being trained.
   * @param options Interval, probe and chunk size.
   */
  constructor(model: tf.LayersModel, options: DiagnosticsRecorderOptions) {
    if (!Number.isInteger(options.every) || options.every < 1) {
      throw new Error(
        `DiagnosticsRecorder: every must be a positive integer, received ${options.every}`,
      );
    }
    this.every = options.every;
    this.#model = model;
    this.#probe = options.probe;
    this.#probeSize = Math.min(options.probeSize ?? DEFAULT_PROBE, options.probe.count);
    this.#chunk = options.chunk ?? 250;
    if (this.#probeSize < 1) {
      throw new Error("DiagnosticsRecorder: the probe needs at least 1 image, received 0");
    }
    this.#sites = _sites(model);
    // The probe model's outputs are unique tensors; #outputIndex maps [logits, site 0's input,
    // site 0's output, …] to them (a site without a norm, or the logits layer, repeats one).
    const outputs: tf.SymbolicTensor[] = [];
    const index = (tensor: tf.SymbolicTensor) => {
      const at = outputs.indexOf(tensor);
      return at >= 0 ? at : outputs.push(tensor) - 1;
    };
    this.#outputIndex = [index(model.outputs[0])];
    for (const site of this.#sites) {
      this.#outputIndex.push(index(site.layer.output as tf.SymbolicTensor));
      this.#outputIndex.push(index((site.norm ?? site.layer).output as tf.SymbolicTensor));
    }
    this.#probeModel = tf.model({ inputs: model.inputs, outputs });
  }

  /** The observer to pass as `TrainOptions.observer`. */
  get observer(): TrainObserver {
    return {
      gradientsEvery: this.every,
      onGradients: (step, grads) => this.recordGradients(step, grads),
      afterStep: async (step, epoch) => {
        if (step % this.every === 0) await this.measure(step, epoch);
      },
    };
  }

  /**
   * Keeps the gradient norms of a step's gradients (the tensors are not changed or disposed).
   *
   * @param step The step.
   * @param grads Gradients by variable name.
   */
  recordGradients(step: number, grads: tf.NamedTensorMap): void {
    const norms = tf.tidy(() => {
      const norm = (all: string[]) => {
        const names = all.filter((n) => grads[n]);
        return names.length === 0
          ? tf.scalar(NaN)
          : tf.sqrt(tf.addN(names.map((n) => tf.sum(tf.square(grads[n])))));
      };
      return tf.stack(
        this.#sites.flatMap((site) => [norm(site.gradNames), norm(site.normGradNames)]),
      ) as tf.Tensor1D;
    });
    this.#gradNorms.get(step)?.dispose();
    this.#gradNorms.set(step, norms);
  }

  /**
   * Measures every site on the probe after step `step` and appends the rows.
   *
   * @param step The step just taken.
   * @param epoch Its epoch.
   */
  async measure(step: number, epoch: number): Promise<void> {
    const sites = this.#sites.length;
    const n = this.#probeSize;
    const pixels = this.#probe.height * this.#probe.width * (this.#probe.channels ?? 1);
    const acc = this.#sites.map((site) => ({
      sum: 0,
      squares: 0,
      count: 0,
      channelSum: new Float64Array(site.channels),
      channelSquares: new Float64Array(site.channels),
      samples: [] as Float32Array[],
      unit0: [] as Float32Array[],
    }));
    let correct = 0;
    for (let start = 0; start < n; start += this.#chunk) {
      const size = Math.min(this.#chunk, n - start);
      const outs = tf.tidy((): tf.Tensor[] => {
        const xs = tf.tensor(
          this.#probe.images.subarray(start * pixels, (start + size) * pixels),
          [size, this.#probe.height, this.#probe.width, this.#probe.channels ?? 1],
        );
        const ys = this.#probeModel.apply(xs, { training: false });
        const list = (Array.isArray(ys) ? ys : [ys]) as tf.Tensor[];
        return this.#outputIndex.map((i) => list[i]);
      });
      const argMax = tf.argMax(outs[0], -1);
      const predicted = await argMax.data();
      argMax.dispose();
      for (let i = 0; i < size; i++) {
        if (predicted[i] === this.#probe.labels[start + i]) correct++;
      }
      for (let s = 0; s < sites; s++) {
        const input = outs[1 + 2 * s];
        const output = outs[2 + 2 * s];
        const a = acc[s];
        const values = await input.data() as Float32Array;
        const channels = this.#sites[s].channels;
        for (let i = 0; i < values.length; i++) {
          const x = values[i];
          a.sum += x;
          a.squares += x * x;
          a.channelSum[i % channels] += x;
          a.channelSquares[i % channels] += x * x;
        }
        a.count += values.length;
        const total = values.length / size * n;
        const stride = Math.ceil(total / MAX_PERCENTILE_VALUES);
        a.samples.push(stride === 1 ? values.slice() : _strided(values, stride, 0));
        const after = await output.data() as Float32Array;
        a.unit0.push(_strided(after, channels, 0));
      }
      tf.dispose([...new Set(outs)]);
    }
    const norms = this.#gradNorms.get(step);
    const gradValues = norms ? await norms.data() : undefined;
    norms?.dispose();
    this.#gradNorms.delete(step);
    for (let s = 0; s < sites; s++) {
      const site = this.#sites[s];
      const a = acc[s];
      const samples = _concat(a.samples).sort();
      const unit0 = _concat(a.unit0).sort();
      const mean = a.sum / a.count;
      const gap = await _runningGap(site, a.channelSum, a.channelSquares, a.count / site.channels);
      this.rows.push({
        step,
        epoch,
        site: s,
        layer: site.layer.name,
        norm: site.norm ? site.norm.getClassName() : "none",
        channels: site.channels,
        input_p15: percentile(samples, 15),
        input_p50: percentile(samples, 50),
        input_p85: percentile(samples, 85),
        input_mean: mean,
        input_variance: Math.max(0, a.squares / a.count - mean * mean),
        unit0_p15: percentile(unit0, 15),
        unit0_p50: percentile(unit0, 50),
        unit0_p85: percentile(unit0, 85),
        running_mean_gap: gap?.meanGap ?? null,
        running_variance_ratio: gap?.varianceRatio ?? null,
        grad_norm: gradValues ? gradValues[2 * s] : NaN,
        norm_grad_norm: gradValues && site.normGradNames.length ? gradValues[2 * s + 1] : null,
        probe_accuracy: correct / n,
      });
    }
  }

  /**
   * Returns the rows measured since the last call and forgets them.
   *
   * @returns The rows.
   */
  takeRows(): DiagnosticsRow[] {
    const rows = this.rows;
    this.rows = [];
    return rows;
  }

  /** Frees the kept gradient norms (the probe model shares the model's weights). */
  dispose(): void {
    for (const norms of this.#gradNorms.values()) norms.dispose();
    this.#gradNorms.clear();
  }

  /** The model observed. */
  get model(): tf.LayersModel {
    return this.#model;
  }
}

function _sites(model: tf.LayersModel): _Site[] {
  const names = (layer: tf.layers.Layer) =>
    layer.trainableWeights.map((w) => (w.read() as tf.Variable).name);
  const sites: _Site[] = [];
  for (const layer of model.layers) {
    const cls = layer.getClassName();
    if (cls !== "Conv2D" && cls !== "Dense") continue;
    const next = layer.outboundNodes.map((node) => node.outboundLayer as tf.layers.Layer);
    const norm = next.find((l) => NORMALIZATION_CLASSES.includes(l.getClassName())) ?? null;
    const shape = (layer.output as tf.SymbolicTensor).shape;
    sites.push({
      layer,
      norm,
      gradNames: names(layer),
      normGradNames: norm ? names(norm) : [],
      channels: shape[shape.length - 1] as number,
    });
  }
  if (sites.length === 0) {
    throw new Error(
      `DiagnosticsRecorder: the model has no Conv2D or Dense layer to observe, received layers ${
        model.layers.map((l) => l.getClassName()).join(", ")
      }`,
    );
  }
  return sites;
}

async function _runningGap(
  site: _Site,
  channelSum: Float64Array,
  channelSquares: Float64Array,
  perChannel: number,
): Promise<{ meanGap: number; varianceRatio: number } | null> {
  const norm = site.norm as unknown as {
    movingMean?: tf.LayerVariable;
    movingVariance?: tf.LayerVariable;
    epsilon?: number;
  } | null;
  if (!norm?.movingMean || !norm.movingVariance) return null;
  const runningMean = await norm.movingMean.read().data();
  const runningVariance = await norm.movingVariance.read().data();
  const epsilon = norm.epsilon ?? 0;
  let meanGap = 0;
  let ratio = 0;
  const c = channelSum.length;
  for (let i = 0; i < c; i++) {
    const mean = channelSum[i] / perChannel;
    const variance = Math.max(0, channelSquares[i] / perChannel - mean * mean);
    meanGap += Math.abs(mean - runningMean[i]) / Math.sqrt(runningVariance[i] + epsilon);
    ratio += variance / runningVariance[i];
  }
  return { meanGap: meanGap / c, varianceRatio: ratio / c };
}

function _strided(values: Float32Array, stride: number, offset: number): Float32Array {
  const out = new Float32Array(Math.ceil((values.length - offset) / stride));
  for (let i = 0, j = offset; j < values.length; i++, j += stride) out[i] = values[j];
  return out;
}

function _concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** The file a run's diagnostics are written to, in its directory. */
export const DIAGNOSTICS_FILE = "diagnostics.csv";

/**
 * Appends rows to a run's `diagnostics.csv` (created with its header when absent).
 *
 * @param path The CSV file.
 * @param rows The rows.
 *
 * @example
 * ```ts
 * import { appendDiagnostics, readDiagnostics } from "./diagnostics.ts";
 * const path = `${await Deno.makeTempDir()}/diagnostics.csv`;
 * await appendDiagnostics(path, []);
 * console.log(await readDiagnostics(path)); // []
 * ```
 */
export async function appendDiagnostics(
  path: string,
  rows: readonly DiagnosticsRow[],
): Promise<void> {
  const exists = await Deno.stat(path).then(() => true, () => false);
  if (!exists) {
    await Deno.writeTextFile(path, `${DIAGNOSTICS_COLUMNS.join(",")}\n`);
  }
  if (rows.length) {
    await appendCsvRows(path, rows as unknown as Record<string, unknown>[], {
      columns: [...DIAGNOSTICS_COLUMNS],
    });
  }
}

/**
 * Reads a run's `diagnostics.csv`; an absent file reads as no rows.
 *
 * @param path The CSV file.
 * @returns The rows, numbers as numbers.
 *
 * @example
 * ```ts
 * import { readDiagnostics } from "./diagnostics.ts";
 * console.log(await readDiagnostics("/nonexistent/diagnostics.csv")); // []
 * ```
 */
export async function readDiagnostics(path: string): Promise<DiagnosticsRow[]> {
  try {
    return (await readCsv(path)) as unknown as DiagnosticsRow[];
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
}

/**
 * Keeps only the rows of epochs before `epoch` in a run's `diagnostics.csv`, so a run resumed
 * from the checkpoint of epoch `epoch` writes each step once.
 *
 * @param path The CSV file (nothing happens when it is absent).
 * @param epoch The first epoch to drop.
 *
 * @example
 * ```ts
 * import { appendDiagnostics, readDiagnostics, truncateDiagnostics } from "./diagnostics.ts";
 * const path = `${await Deno.makeTempDir()}/diagnostics.csv`;
 * await appendDiagnostics(path, []);
 * await truncateDiagnostics(path, 0);
 * console.log((await readDiagnostics(path)).length); // 0
 * ```
 */
export async function truncateDiagnostics(path: string, epoch: number): Promise<void> {
  const rows = await readDiagnostics(path);
  if (!rows.length && !(await Deno.stat(path).then(() => true, () => false))) return;
  await writeCsv(
    path,
    rows.filter((r) => r.epoch < epoch) as unknown as Record<string, unknown>[],
    {
      columns: [...DIAGNOSTICS_COLUMNS],
    },
  );
}

/**
 * The chart of one run's diagnostics, three panels side by side: (a) the median of each site's
 * normalization input against the step, one line per site; (b) each site's gradient norm
 * (log axis); (c) for BN sites, the running-statistic gap mean_c |μ_c − μ_running,c|/σ_running,c,
 * or without any, the 15th/50th/85th percentiles of unit 0's activation input at the last
 * hidden site (Ioffe & Szegedy 2015, Figure 1).
 *
 * @param rows The run's rows.
 * @param title The chart's title. @default {"Diagnostics over training"}
 * @returns The SVG.
 * @throws {Error} When there are no rows.
 *
 * @example
 * ```ts
 * import { diagnosticsChart } from "./diagnostics.ts";
 * const row = { step: 1, site: 0, layer: "dense", input_p50: 0, grad_norm: 1,
 *   running_mean_gap: null, unit0_p15: -1, unit0_p50: 0, unit0_p85: 1 };
 * console.log(diagnosticsChart([row, { ...row, step: 2 }] as never).startsWith("<svg")); // true
 * ```
 */
export function diagnosticsChart(
  rows: readonly DiagnosticsRow[],
  title = "Diagnostics over training",
): string {
  if (rows.length === 0) throw new Error("diagnosticsChart: expected rows, received none");
  const site = (row: DiagnosticsRow) => `site ${row.site} (${row.norm})`;
  const sites = [...new Set(rows.map((r) => r.site))].sort((a, b) => a - b);
  // Taller panels for more legend rows (two sites per row).
  const height = Math.max(440, 320 + 22 * Math.ceil(sites.length / 2));
  const common = { x: "step", series: "series", xLabel: "training step", width: 460, height };
  const gaps = rows.filter((r) => typeof r.running_mean_gap === "number");
  const lastHidden = sites.length > 1 ? sites[sites.length - 2] : sites[0];
  const grads = rows.filter((r) => typeof r.grad_norm === "number" && r.grad_norm > 0);
  const panels = [
    lineChart(rows.map((r) => ({ step: r.step, value: r.input_p50, series: site(r) })), {
      ...common,
      y: "value",
      title: "(a) median of each normalization input",
      yLabel: "input median (probe)",
    }),
    grads.length
      ? lineChart(grads.map((r) => ({ step: r.step, value: r.grad_norm, series: site(r) })), {
        ...common,
        y: "value",
        logY: true,
        title: "(b) gradient norm per layer",
        yLabel: "‖∇ weights‖₂",
      })
      : lineChart([{ step: rows[0].step, value: 0, series: "no gradients recorded" }], {
        ...common,
        y: "value",
        title: "(b) gradient norm per layer",
      }),
    gaps.length
      ? lineChart(
        gaps.map((r) => ({ step: r.step, value: r.running_mean_gap, series: site(r) })),
        {
          ...common,
          y: "value",
          title: "(c) BN: running vs probe mean, in running σ",
          yLabel: "mean_c |μ − μ_running| / σ_running",
        },
      )
      : lineChart(
        rows.filter((r) => r.site === lastHidden).flatMap((r) =>
          PERCENTILES.map((p) => ({
            step: r.step,
            value: r[`unit0_p${p}` as "unit0_p15"],
            series: `site ${r.site} unit 0, ${p}th`,
          }))
        ),
        {
          ...common,
          y: "value",
          title: "(c) last hidden unit's activation input",
          yLabel: "15th, 50th, 85th percentiles",
        },
      ),
  ];
  return sideBySide(panels, { title });
}
