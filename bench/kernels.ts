/**
 * Speed of the wasm `Conv2DBackpropFilter` kernel (lib/kernels/) on LeNet's two conv layers,
 * against the wasm `conv2d` forward pass on the same shapes and the cpu backend's kernel;
 * and of the BLAS kernels (lib/kernels/blas_kernels.ts) against the wasm ones they wrap.
 *
 * Run it directly to print the tables:
 *
 * ```sh
 * deno run --allow-all bench/kernels.ts [repeats]
 * ```
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { BACKEND_NAMES, type BackendName, initBackend } from "../lib/backend.ts";
import { blasInfo, setBlasEnabled } from "../lib/kernels/blas.ts";
import { replacedWasmKernel } from "../lib/kernels/mod.ts";
import type { BenchRow } from "./bench_row.ts";

/** Options of {@linkcode benchConv2dBackpropFilter}. */
export interface BenchConv2dBackpropFilterOptions {
  /** Timed runs per measurement; the row reports their median. @default {7} */
  repeats?: number;
  /** Untimed runs before the timed ones. @default {2} */
  warmup?: number;
  /**
   * Timed runs of the cpu backend's kernel, which has no warm-up. It is a scalar loop at
   * about 0.013 GFLOP/s here (one run of LeNet's conv2 at batch 128 takes about a minute),
   * so it is timed once by default; its rows report the runs they really had.
   * @default {1}
   */
  cpuRepeats?: number;
  /** Batch sizes to measure. @default {[20, 128]} */
  batchSizes?: readonly number[];
}

/** A conv layer of LeNet: input [H, W, Cin], filter [KH, KW, Cin, Cout], stride 1, valid. */
interface _Layer {
  name: string;
  input: [number, number, number];
  filter: [number, number, number, number];
}

/** LeNet's conv layers (conv 20@5×5 on 28×28×1, then conv 50@5×5 on the pooled 12×12×20). */
const _LENET_LAYERS: readonly _Layer[] = [
  { name: "lenet_conv1", input: [28, 28, 1], filter: [5, 5, 1, 20] },
  { name: "lenet_conv2", input: [12, 12, 20], filter: [5, 5, 20, 50] },
];

const _GROUP = "conv2d_backprop_filter";

/**
 * Measures GFLOP/s of wasm `conv2d` (forward), wasm `Conv2DBackpropFilter` and cpu
 * `Conv2DBackpropFilter` on LeNet's conv layers, plus two ratios.
 *
 * Both directions count FLOPs = 2·B·OH·OW·KH·KW·Cin·Cout. Each wasm figure is the median of
 * `repeats` timed runs after `warmup` untimed ones (cpu: `cpuRepeats` runs, no warm-up, as
 * its kernel is 1000 times slower); a run ends when `await t.data()` has
 * read its output (so the forward pass, whose output is large, pays for reading it back).
 * Per layer and batch size the rows are, by `metric`: `conv2d_forward` (wasm),
 * `backprop_filter` (wasm, then cpu), `backprop_filter_over_forward` (wasm backprop-filter
 * GFLOP/s ÷ wasm forward GFLOP/s) and `wasm_over_cpu` (wasm ÷ cpu backprop-filter GFLOP/s).
 * The wasm figures are those of the wasm kernels: the BLAS kernels are switched off while it
 * runs ({@linkcode benchBlasKernels} measures them). The backend active before the call is
 * active again after it.
 *
 * @param options Repeats, warm-up runs, cpu repeats and batch sizes.
 * @returns Five rows per layer and batch size.
 *
 * @example A quick, tiny run
 * ```ts
 * import { benchConv2dBackpropFilter } from "./kernels.ts";
 *
 * const rows = await benchConv2dBackpropFilter({ repeats: 1, warmup: 0, batchSizes: [1] });
 * console.log(rows.length); // 2 layers × 1 batch size × 5 rows = 10
 * ```
 */
export async function benchConv2dBackpropFilter(
  options: BenchConv2dBackpropFilterOptions = {},
): Promise<BenchRow[]> {
  const repeats = options.repeats ?? 7;
  const warmup = options.warmup ?? 2;
  const cpuRepeats = options.cpuRepeats ?? 1;
  const batchSizes = options.batchSizes ?? [20, 128];
  _checkCount("repeats", repeats, 1);
  _checkCount("warmup", warmup, 0);
  _checkCount("cpuRepeats", cpuRepeats, 1);
  for (const b of batchSizes) _checkCount("batchSizes[i]", b, 1);

  const previous = tf.engine().backendName;
  const rows: BenchRow[] = [];
  // These rows are the wasm kernels' figures; benchBlasKernels has the BLAS ones.
  const wasOn = setBlasEnabled(false);
  try {
    for (const layer of _LENET_LAYERS) {
      for (const batchSize of batchSizes) {
        const row = (backend: string, metric: string, median: number, unit: string, runs: number) =>
          rows.push({
            group: _GROUP,
            name: layer.name,
            backend,
            batch_size: batchSize,
            metric,
            median,
            unit,
            runs,
          });
        const timing = { repeats, warmup };
        const forward = await _gflops("wasm", layer, batchSize, "forward", timing);
        const wasm = await _gflops("wasm", layer, batchSize, "backprop_filter", timing);
        const cpuTiming = { repeats: cpuRepeats, warmup: 0 };
        const cpu = await _gflops("cpu", layer, batchSize, "backprop_filter", cpuTiming);
        row("wasm", "conv2d_forward", forward, "GFLOP/s", repeats);
        row("wasm", "backprop_filter", wasm, "GFLOP/s", repeats);
        row("cpu", "backprop_filter", cpu, "GFLOP/s", cpuRepeats);
        row("wasm", "backprop_filter_over_forward", wasm / forward, "ratio", repeats);
        row("wasm", "wasm_over_cpu", wasm / cpu, "ratio", cpuRepeats);
      }
    }
  } finally {
    setBlasEnabled(wasOn);
    if (BACKEND_NAMES.includes(previous as BackendName)) await initBackend(previous as BackendName);
  }
  return rows;
}

/** Median GFLOP/s of one direction of one layer on one backend. */
async function _gflops(
  backend: BackendName,
  layer: _Layer,
  batchSize: number,
  direction: "forward" | "backprop_filter",
  timing: { repeats: number; warmup: number },
): Promise<number> {
  await initBackend(backend);
  const [kh, kw, cin, cout] = layer.filter;
  const [oh, ow] = [layer.input[0] - kh + 1, layer.input[1] - kw + 1];
  const flops = 2 * batchSize * oh * ow * kh * kw * cin * cout;
  const x = tf.randomUniform([batchSize, ...layer.input], -1, 1, "float32", 1) as tf.Tensor4D;
  const w = tf.randomUniform(layer.filter, -1, 1, "float32", 2) as tf.Tensor4D;
  const dy = tf.randomUniform([batchSize, oh, ow, cout], -1, 1, "float32", 3) as tf.Tensor4D;
  const run = direction === "forward"
    ? () => tf.conv2d(x, w, 1, "valid")
    : () =>
      tf.engine().runKernel(tf.Conv2DBackpropFilter, { x, dy }, {
        strides: 1,
        pad: "valid",
        dataFormat: "NHWC",
        filterShape: layer.filter,
      }) as tf.Tensor;
  const seconds: number[] = [];
  try {
    for (let i = 0; i < timing.warmup + timing.repeats; i++) {
      const start = performance.now();
      const out = run();
      await out.data();
      const elapsed = (performance.now() - start) / 1000;
      out.dispose();
      if (i >= timing.warmup) seconds.push(elapsed);
    }
  } finally {
    tf.dispose([x, w, dy]);
  }
  return flops / _median(seconds) / 1e9;
}

function _median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function _checkCount(name: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) {
    throw new Error(
      `benchConv2dBackpropFilter: ${name} must be an integer ≥ ${min}, received ${value}`,
    );
  }
}

/** Formats rows as an aligned text table. */
function _table(rows: BenchRow[]): string {
  const header = ["name", "batch", "backend", "metric", "median", "unit"];
  const body = rows.map((r) => [
    r.name,
    String(r.batch_size),
    r.backend,
    r.metric,
    r.median.toFixed(r.unit === "ratio" ? 2 : 3),
    r.unit,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((cells) => cells[i].length)));
  return [header, ...body].map((cells) => cells.map((c, i) => c.padEnd(widths[i])).join("  "))
    .join("\n");
}

/** Options of {@linkcode benchBlasKernels}. */
export interface BenchBlasKernelsOptions {
  /** Timed calls per path and case; a row reports their median. @default {15} */
  repeats?: number;
  /** Untimed calls per path before them. @default {3} */
  warmup?: number;
  /** Batch sizes of LeNet's products. @default {[20, 128]} */
  batchSizes?: readonly number[];
  /** Sizes n of the square n×n·n×n products (the machine limit). @default {[1024]} */
  squareSizes?: readonly number[];
}

/** One kernel call measured on both paths. */
interface _BlasCase {
  name: string;
  kernelName: string;
  flops: number;
  inputs: () => Record<string, tf.Tensor>;
  attrs: Record<string, unknown>;
}

/**
 * Measures GFLOP/s of the BLAS kernels and of the wasm kernels they wrap (lib/kernels/'s
 * replacements, or tfjs's own), on the wasm backend: LeNet's products at each batch size
 * (per conv layer the forward `Conv2D`, `Conv2DBackpropFilter` and `Conv2DBackpropInput`;
 * per dense layer the forward product, dW = xᵀ·dy and dx = dy·Wᵀ) and square products.
 *
 * Each case runs its kernel function synchronously (a wasm kernel's output is complete when
 * it returns), alternating BLAS on and off call by call so that both paths see the same load;
 * FLOPs are the useful ones (2·B·OH·OW·KH·KW·Cin·Cout for a convolution, 2·M·N·K for a
 * product). Rows, group `blas_kernels`, per case: `gflops_wasm`, `gflops_blas` and
 * `blas_over_wasm` (their ratio), backend `wasm`. Without BLAS ({@linkcode blasInfo} says
 * why) it returns no rows. The backend active before the call is active again after it, and
 * so is the BLAS switch.
 *
 * @param options Repeats, warm-up calls, batch sizes and square sizes.
 * @returns Three rows per case.
 *
 * @example A quick, tiny run
 * ```ts
 * import { benchBlasKernels } from "./kernels.ts";
 *
 * const rows = await benchBlasKernels({
 *   repeats: 1,
 *   warmup: 0,
 *   batchSizes: [1],
 *   squareSizes: [64],
 * });
 * console.log(rows.length); // 13 cases × 3 rows with BLAS, 0 without
 * ```
 */
export async function benchBlasKernels(options: BenchBlasKernelsOptions = {}): Promise<BenchRow[]> {
  const repeats = options.repeats ?? 15;
  const warmup = options.warmup ?? 3;
  const batchSizes = options.batchSizes ?? [20, 128];
  const squareSizes = options.squareSizes ?? [1024];
  _checkCount("repeats", repeats, 1);
  _checkCount("warmup", warmup, 0);
  for (const b of batchSizes) _checkCount("batchSizes[i]", b, 1);
  for (const n of squareSizes) _checkCount("squareSizes[i]", n, 1);
  const previous = tf.engine().backendName;
  await initBackend("wasm");
  const wasOn = setBlasEnabled(true);
  const rows: BenchRow[] = [];
  try {
    if (!blasInfo().enabled) return rows;
    const cases: [number, _BlasCase][] = [];
    for (const b of batchSizes) for (const c of _blasCases(b)) cases.push([b, c]);
    for (const n of squareSizes) {
      cases.push([n, {
        name: `matmul_${n}`,
        kernelName: "BatchMatMul",
        flops: 2 * n ** 3,
        inputs: () => ({
          a: tf.randomUniform([n, n], -1, 1, "float32", 1),
          b: tf.randomUniform([n, n], -1, 1, "float32", 2),
        }),
        attrs: { transposeA: false, transposeB: false },
      }]);
    }
    for (const [batchSize, c] of cases) {
      const [wasm, blas] = _pairedGflops(c, repeats, warmup);
      const row = (metric: string, median: number, unit: string) =>
        rows.push({
          group: "blas_kernels",
          name: c.name,
          backend: "wasm",
          batch_size: batchSize,
          metric,
          median,
          unit,
          runs: repeats,
        });
      row("gflops_wasm", wasm, "GFLOP/s");
      row("gflops_blas", blas, "GFLOP/s");
      row("blas_over_wasm", blas / wasm, "ratio");
    }
  } finally {
    setBlasEnabled(wasOn);
    if (BACKEND_NAMES.includes(previous as BackendName)) await initBackend(previous as BackendName);
  }
  return rows;
}

/** LeNet's BLAS-replaced kernel calls at one batch size. */
function _blasCases(b: number): _BlasCase[] {
  const random = (shape: number[], seed: number) => tf.randomUniform(shape, -1, 1, "float32", seed);
  const cases: _BlasCase[] = [];
  for (const layer of _LENET_LAYERS) {
    const [kh, kw, cin, cout] = layer.filter;
    const [oh, ow] = [layer.input[0] - kh + 1, layer.input[1] - kw + 1];
    const flops = 2 * b * oh * ow * kh * kw * cin * cout;
    const conv = { strides: 1, pad: "valid", dataFormat: "NHWC" };
    cases.push(
      {
        name: `${layer.name}_forward`,
        kernelName: "Conv2D",
        flops,
        inputs: () => ({ x: random([b, ...layer.input], 1), filter: random(layer.filter, 2) }),
        attrs: { ...conv, dilations: 1 },
      },
      {
        name: `${layer.name}_dw`,
        kernelName: "Conv2DBackpropFilter",
        flops,
        inputs: () => ({ x: random([b, ...layer.input], 1), dy: random([b, oh, ow, cout], 3) }),
        attrs: { ...conv, filterShape: layer.filter },
      },
      {
        name: `${layer.name}_dx`,
        kernelName: "Conv2DBackpropInput",
        flops,
        inputs: () => ({ dy: random([b, oh, ow, cout], 3), filter: random(layer.filter, 2) }),
        attrs: { ...conv, inputShape: [b, ...layer.input] },
      },
    );
  }
  for (const [name, inSize, outSize] of [["lenet_dense1", 800, 500], ["lenet_dense2", 500, 10]]) {
    const [i, o] = [inSize as number, outSize as number];
    const flops = 2 * b * i * o;
    const product = (suffix: string, a: number[], bShape: number[], tA: boolean, tB: boolean) => ({
      name: `${name}_${suffix}`,
      kernelName: "BatchMatMul",
      flops,
      inputs: () => ({ a: random(a, 4), b: random(bShape, 5) }),
      attrs: { transposeA: tA, transposeB: tB },
    });
    cases.push(
      product("forward", [b, i], [i, o], false, false),
      product("dw", [b, i], [b, o], true, false),
      product("dx", [b, o], [i, o], false, true),
    );
  }
  return cases;
}

/** Median GFLOP/s of one case with BLAS off and on, calls alternating: [wasm, blas]. */
function _pairedGflops(c: _BlasCase, repeats: number, warmup: number): [number, number] {
  const backend = tf.backend() as tf.KernelBackend & { disposeData(id: tf.DataId): boolean };
  const kernel = tf.getKernel(c.kernelName, "wasm");
  if (kernel === undefined) {
    throw new Error(`benchBlasKernels: needs the wasm kernel ${c.kernelName}, received none`);
  }
  const inputs = c.inputs();
  const seconds: [number[], number[]] = [[], []];
  try {
    for (let i = 0; i < warmup + repeats; i++) {
      for (const path of [0, 1]) {
        setBlasEnabled(path === 1);
        const start = performance.now();
        const out = kernel.kernelFunc({
          inputs,
          backend,
          attrs: c.attrs as tf.NamedAttrMap,
        }) as tf.TensorInfo;
        const elapsed = (performance.now() - start) / 1000;
        backend.disposeData(out.dataId);
        if (i >= warmup) seconds[path].push(elapsed);
      }
    }
  } finally {
    tf.dispose(Object.values(inputs));
  }
  return [c.flops / _median(seconds[0]) / 1e9, c.flops / _median(seconds[1]) / 1e9];
}

if (import.meta.main) {
  const repeats = Deno.args[0] === undefined ? undefined : Number(Deno.args[0]);
  console.log(_table(await benchConv2dBackpropFilter({ repeats })));
  console.log(`\nBLAS: ${JSON.stringify(blasInfo())}`);
  console.log(_table(await benchBlasKernels({ repeats })));
}

/** Options of {@linkcode benchReduceLeading}. */
export interface BenchReduceLeadingOptions {
  /** Timed calls per kernel and case; a row reports their median. @default {31} */
  repeats?: number;
  /** Untimed calls first. @default {5} */
  warmup?: number;
}

/**
 * Times wasm's `Sum` and `Mean` over the leading axes of LeNet's BN inputs (NHWC activations
 * of conv 1, conv 2 and dense 1, at batch 20 and 128): tfjs's kernel (called directly, as
 * `replacedWasmKernel` keeps it) against lib/kernels/reduce_leading.ts's (through the engine,
 * so it carries the engine's overhead and tfjs's does not), alternating call by call.
 *
 * @param options Repeats and warm-up.
 * @returns Per shape and kernel: `us_tfjs`, `us_ours` (µs a call) and `speedup` (their ratio).
 *
 * @example
 * ```ts ignore
 * import { benchReduceLeading } from "./kernels.ts";
 * console.table(await benchReduceLeading({ repeats: 5 }));
 * ```
 */
export async function benchReduceLeading(
  options: BenchReduceLeadingOptions = {},
): Promise<BenchRow[]> {
  const { repeats = 31, warmup = 5 } = options;
  _checkCount("repeats", repeats, 1);
  _checkCount("warmup", warmup, 0);
  await initBackend("wasm");
  const rows: BenchRow[] = [];
  for (const batch of [20, 128]) {
    const shapes = [[batch, 24, 24, 20], [batch, 8, 8, 50], [batch, 500]];
    for (const shape of shapes) {
      const x = tf.randomNormal(shape);
      const attrs = { axis: shape.slice(0, -1).map((_, i) => i), keepDims: true };
      for (const kernelName of [tf.Sum, tf.Mean]) {
        const original = replacedWasmKernel(kernelName);
        if (original === undefined) {
          throw new Error(`benchReduceLeading: ${kernelName} not replaced`);
        }
        const theirs = () => {
          const info = original.kernelFunc({ inputs: { x }, backend: tf.backend(), attrs });
          tf.backend().disposeData((info as tf.TensorInfo).dataId);
        };
        const ours = () => (tf.engine().runKernel(kernelName, { x }, attrs) as tf.Tensor).dispose();
        const seconds: [number[], number[]] = [[], []];
        for (let i = 0; i < warmup + repeats; i++) {
          for (const [k, f] of [theirs, ours].entries()) {
            const start = performance.now();
            f();
            if (i >= warmup) seconds[k].push((performance.now() - start) / 1000);
          }
        }
        const [us, usOurs] = seconds.map((s) => 1e6 * _median(s));
        const name = `${kernelName.toLowerCase()}_${shape.join("x")}`;
        const row = (metric: string, median: number, unit: string): BenchRow => ({
          group: "reduce_leading",
          name,
          backend: "wasm",
          batch_size: batch,
          metric,
          median,
          unit,
          runs: repeats,
        });
        rows.push(row("us_tfjs", us, "µs"), row("us_ours", usOurs, "µs"));
        rows.push(row("speedup", us / usOurs, "ratio"));
      }
      x.dispose();
    }
  }
  return rows;
}
