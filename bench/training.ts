/**
 * LeNet training speed: samples per second of SGD steps on wasm (and, for scale, cpu), where
 * a step's time goes kernel by kernel, and the kernels of lib/kernels/ that replace tfjs's
 * own against the ones they replaced.
 *
 * Run it directly to print the table (about two minutes, most of it the cpu rows):
 *
 * ```sh
 * deno run --allow-all bench/training.ts [--quick]
 * ```
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { BACKEND_NAMES, type BackendName, initBackend } from "../lib/backend.ts";
import { blasInfo } from "../lib/kernels/blas.ts";
import { nativeInfo } from "../lib/kernels/native_library.ts";
import { formatTable } from "../lib/output/table.ts";
import type { BenchRow } from "./bench_row.ts";
import type { PyTorchLeNet } from "./pytorch.ts";
import { kernelCases, kernelGflops } from "./training/kernel_cases.ts";
import { profileSteps } from "./training/profile.ts";
import {
  withFusedConvTraining,
  withOneThread,
  withoutBlas,
  withoutGatheredProducts,
  withoutNative,
  withoutOpenBlasOrder,
  withTfjsKernels,
} from "./training/switches.ts";
import {
  pairedSamplesPerSecond,
  pairedWithPyTorch,
  samplesPerSecond,
  SMALL_BATCH,
  type Timing,
  TRAINING_VARIANTS,
  type TrainingVariant,
  type Wrap,
} from "./training/trainer.ts";

export { TRAINING_VARIANTS, type TrainingVariant };

/** Options of {@linkcode benchTraining}; each has a documented default. */
export interface BenchTrainingOptions {
  /** Batch sizes timed on wasm. @default {[20, 128]} */
  batchSizes?: readonly number[];
  /** Variants timed on wasm. @default {TRAINING_VARIANTS} */
  variants?: readonly TrainingVariant[];
  /** Timed blocks per figure; a row reports their median. @default {7} */
  blocks?: number;
  /** Untimed blocks before them. @default {1} */
  warmupBlocks?: number;
  /** Samples per block: a block is ⌈samplesPerBlock / batch⌉ steps. @default {640} */
  samplesPerBlock?: number;
  /**
   * Variants timed on cpu at batch 20 (one step a block: a step takes seconds there);
   * empty for none. @default {["none"]}
   */
  cpuVariants?: readonly TrainingVariant[];
  /** Timed one-step blocks on cpu, after one untimed. @default {5} */
  cpuBlocks?: number;
  /**
   * Variants also timed at batch 20 with tfjs's own kernels in place of those of
   * lib/kernels/ that replace them (the "before" figures). @default {["none", "tfjs"]}
   */
  tfjsKernelVariants?: readonly TrainingVariant[];
  /** Steps profiled per variant at batch 20, kernel by kernel; 0 for none. @default {10} */
  profileSteps?: number;
  /** Timed calls per replaced-kernel figure, after two untimed. @default {7} */
  kernelRepeats?: number;
  /**
   * Variants also timed at batch 20 with the BLAS kernels switched off, in blocks
   * interleaved with blocks with them on; none when no BLAS is loaded.
   * @default {["none", "tfjs"]}
   */
  blasVariants?: readonly TrainingVariant[];
  /**
   * Variants also timed at batch 20 with tfjs's fused training convolution (the first layer's
   * input gradient computed, lib/kernels/fused_conv_training.ts off), in blocks interleaved
   * with blocks with it skipped. @default {["none", "custom_analytic", "tfjs"]}
   */
  unfusedConvVariants?: readonly TrainingVariant[];
  /**
   * Variants also timed at batch 20 with the native kernels switched off (JavaScript im2col,
   * col2im and MaxPoolGrad; uncut products), in blocks interleaved with blocks with them on;
   * none when they are not built. @default {["none", "custom_analytic", "tfjs"]}
   */
  nativeVariants?: readonly TrainingVariant[];
  /**
   * Variants also timed at batch 20 with products' slices on one thread, in blocks
   * interleaved with blocks on two; none when the pool has one thread.
   * @default {["none", "custom_analytic", "tfjs"]}
   */
  threadVariants?: readonly TrainingVariant[];
  /**
   * Variants also timed at batch 20 with the products on OpenBLAS itself instead of bnlab's
   * kernel with its floats, in blocks interleaved with blocks on the kernel, on the products'
   * threads and on one thread; none when the kernel is off.
   * @default {["none", "custom_analytic", "tfjs"]}
   */
  openblasOrderVariants?: readonly TrainingVariant[];
  /**
   * A running PyTorch worker (bench/pytorch.ts): each of `pytorchVariants` is then also timed
   * at batch 20 against PyTorch's LeNet (BN for every BN variant), blocks interleaved.
   */
  pytorch?: PyTorchLeNet;
  /** The variants compared with PyTorch. @default {["none", "custom_analytic", "tfjs"]} */
  pytorchVariants?: readonly TrainingVariant[];
}

/** The options with their defaults filled in, checked. */
type _Settings = Required<Omit<BenchTrainingOptions, "pytorch">> & { pytorch?: PyTorchLeNet };

/** Appends a row. */
type _Row = (
  fields: Omit<BenchRow, "median" | "batch_size"> & { batchSize: number; value: number },
) => void;

/**
 * Measures LeNet training on the wasm backend, as `lib/train/loop.ts` trains it: SGD
 * (learning rate 0.01) on the mean softmax cross-entropy, each step
 * `optimizer.minimize(() => loss(model.apply(x, { training: true })), …)`.
 *
 * A timed block runs ⌈samplesPerBlock / batch⌉ steps over four fixed random batches and
 * reads the loss once, at its end; a figure is the median over `blocks` blocks after
 * `warmupBlocks` untimed ones. The rows, by `group` and `metric`:
 *
 * - `training`: `samples_per_s` per variant and batch size on wasm, and at batch 20 on cpu
 *   (`cpu_over_wasm`: their ratio); at batch 20, `samples_per_s_tfjs_kernels` with tfjs's own
 *   kernels in place of ours, timed in blocks interleaved with blocks of ours
 *   (`samples_per_s_paired`), and `speedup_over_tfjs_kernels`, the ratio of those two; and
 *   when BLAS is loaded, `samples_per_s_blas_off` and `samples_per_s_blas_on` (blocks
 *   interleaved) and their ratio `blas_speedup`; and `samples_per_s_fused_conv` (tfjs's fused
 *   training convolution, which computes the first layer's input gradient) against
 *   `samples_per_s_unfused_conv` (lib/kernels/fused_conv_training.ts, blocks interleaved) and
 *   their ratio `unfused_conv_speedup`; the `tfjs_kernels` figures run with the fused one;
 *   when the native kernels are built, `samples_per_s_native_off` and `_native_on` and their
 *   ratio `native_speedup`; when products run on two threads, `samples_per_s_1_thread` and
 *   `samples_per_s_2_threads` and their ratio `threads_speedup`; when the products run on
 *   bnlab's kernel with OpenBLAS's floats, `samples_per_s_openblas_products` (OpenBLAS itself)
 *   and `samples_per_s_openblas_order` and their ratio `openblas_order_speedup`, and the same
 *   three on one thread (`_1_thread`); and on one thread, convolutions that write their cols
 *   matrix (`samples_per_s_cols_written_1_thread`) against products that read it from the
 *   images (`samples_per_s_cols_gathered_1_thread`) and their ratio
 *   `gathered_speedup_1_thread`;
 * - `training_profile`: per variant at batch 20 (name `variant/kernel`), `ms_per_step` and
 *   `calls_per_step` of each kernel over `profileSteps` profiled steps (a kernel's time
 *   includes the kernels it calls itself), plus `variant/all_kernels` (their sum),
 *   `variant/step` (the median unprofiled step time over three blocks of `profileSteps`
 *   steps run just before) and `variant/outside_kernels` (the difference: op dispatch,
 *   tape, JavaScript);
 * - `training_kernels`: for each replaced kernel on LeNet's shapes (name `layer_gradient`),
 *   `gflops_tfjs` and `gflops_ours` (useful FLOPs: 2·B·OH·OW·KH·KW·Cin·Cout for a
 *   convolution's dx, 2·B·in·out for a dense layer's dW or dx, per second) and
 *   `ours_over_tfjs`; ours are the wasm kernels, BLAS switched off (bench/kernels.ts's
 *   `benchBlasKernels` times the BLAS ones).
 *
 * Everything else runs with the BLAS kernels when a BLAS is loaded (`blasInfo()`). The
 * backend active before the call is active again after it.
 *
 * @param options Batch sizes, variants, blocks, cpu and profile settings.
 * @returns The rows.
 * @throws If a count is not a positive integer (`warmupBlocks`, `profileSteps` and
 *   `kernelRepeats` may be 0), or a variant is unknown.
 *
 * @example A tiny run: one variant, one block of one step, no cpu, profile or kernels
 * ```ts
 * import { benchTraining } from "./training.ts";
 *
 * const rows = await benchTraining({
 *   batchSizes: [4],
 *   variants: ["none"],
 *   blocks: 1,
 *   warmupBlocks: 0,
 *   samplesPerBlock: 4,
 *   cpuVariants: [],
 *   tfjsKernelVariants: [],
 *   blasVariants: [],
 *   unfusedConvVariants: [],
 *   nativeVariants: [],
 *   threadVariants: [],
 *   openblasOrderVariants: [],
 *   profileSteps: 0,
 *   kernelRepeats: 0,
 * });
 * console.log(rows[0].metric); // "samples_per_s"
 * ```
 */
export async function benchTraining(options: BenchTrainingOptions = {}): Promise<BenchRow[]> {
  const settings = _settings(options);
  const previous = tf.engine().backendName;
  const rows: BenchRow[] = [];
  const row: _Row = ({ batchSize, value, ...rest }) =>
    rows.push({
      group: rest.group,
      name: rest.name,
      backend: rest.backend,
      batch_size: batchSize,
      metric: rest.metric,
      median: value,
      unit: rest.unit,
      runs: rest.runs,
    });
  try {
    await initBackend("wasm");
    const wasmSpeed = await _wasmStage(settings, row);
    await _pairStage(settings, row);
    await _pytorchStage(settings, row);
    await _profileStage(settings, row);
    _kernelStage(settings, row);
    await _cpuStage(settings, row, wasmSpeed);
  } finally {
    if (BACKEND_NAMES.includes(previous as BackendName)) await initBackend(previous as BackendName);
  }
  return rows;
}

function _settings(options: BenchTrainingOptions): _Settings {
  const settings: _Settings = {
    batchSizes: options.batchSizes ?? [20, 128],
    variants: options.variants ?? TRAINING_VARIANTS,
    blocks: options.blocks ?? 7,
    warmupBlocks: options.warmupBlocks ?? 1,
    samplesPerBlock: options.samplesPerBlock ?? 640,
    cpuVariants: options.cpuVariants ?? ["none"],
    cpuBlocks: options.cpuBlocks ?? 5,
    tfjsKernelVariants: options.tfjsKernelVariants ?? ["none", "tfjs"],
    profileSteps: options.profileSteps ?? 10,
    kernelRepeats: options.kernelRepeats ?? 7,
    blasVariants: options.blasVariants ?? ["none", "tfjs"],
    unfusedConvVariants: options.unfusedConvVariants ?? ["none", "custom_analytic", "tfjs"],
    nativeVariants: options.nativeVariants ?? ["none", "custom_analytic", "tfjs"],
    threadVariants: options.threadVariants ?? ["none", "custom_analytic", "tfjs"],
    openblasOrderVariants: options.openblasOrderVariants ?? ["none", "custom_analytic", "tfjs"],
    pytorch: options.pytorch,
    pytorchVariants: options.pytorch === undefined
      ? []
      : options.pytorchVariants ?? ["none", "custom_analytic", "tfjs"],
  };
  _checkCount("blocks", settings.blocks, 1);
  _checkCount("warmupBlocks", settings.warmupBlocks, 0);
  _checkCount("samplesPerBlock", settings.samplesPerBlock, 1);
  _checkCount("cpuBlocks", settings.cpuBlocks, 1);
  _checkCount("profileSteps", settings.profileSteps, 0);
  _checkCount("kernelRepeats", settings.kernelRepeats, 0);
  for (const b of settings.batchSizes) _checkCount("batchSizes[i]", b, 1);
  const checked = [
    ...settings.variants,
    ...settings.cpuVariants,
    ...settings.tfjsKernelVariants,
    ...settings.blasVariants,
    ...settings.unfusedConvVariants,
    ...settings.nativeVariants,
    ...settings.threadVariants,
    ...settings.openblasOrderVariants,
    ...settings.pytorchVariants,
  ];
  for (const v of checked) {
    if (!TRAINING_VARIANTS.includes(v)) {
      throw new Error(
        `benchTraining: a variant must be one of ${TRAINING_VARIANTS.join(", ")}, received ${
          JSON.stringify(v)
        }`,
      );
    }
  }
  return settings;
}

/** The timing of the batch-20 figures. */
function _smallTiming(s: _Settings): Timing {
  return {
    blocks: s.blocks,
    warmupBlocks: s.warmupBlocks,
    steps: Math.ceil(s.samplesPerBlock / SMALL_BATCH),
  };
}

/** `samples_per_s` per variant and batch size on wasm; returns them by `variant/batch`. */
async function _wasmStage(s: _Settings, row: _Row): Promise<Map<string, number>> {
  const wasmSpeed = new Map<string, number>();
  for (const batchSize of s.batchSizes) {
    for (const variant of s.variants) {
      const steps = Math.ceil(s.samplesPerBlock / batchSize);
      const timing = { blocks: s.blocks, warmupBlocks: s.warmupBlocks, steps };
      const value = await samplesPerSecond(variant, { batchSize, timing });
      wasmSpeed.set(`${variant}/${batchSize}`, value);
      row({
        group: "training",
        name: variant,
        backend: "wasm",
        batchSize,
        metric: "samples_per_s",
        value,
        unit: "samples/s",
        runs: s.blocks,
      });
    }
  }
  return wasmSpeed;
}

/** A batch-20 wasm row of the `training` group. */
function _smallRow(s: _Settings, row: _Row, variant: string) {
  return (metric: string, value: number, unit: string) =>
    row({
      group: "training",
      name: variant,
      backend: "wasm",
      batchSize: SMALL_BATCH,
      metric,
      value,
      unit,
      runs: s.blocks,
    });
}

/** Each pair: ours against a switched-off path, in interleaved blocks at batch 20. */
async function _pairStage(s: _Settings, row: _Row): Promise<void> {
  const pairs: [readonly TrainingVariant[], Wrap, [string, string, string], Wrap?][] = [
    [s.tfjsKernelVariants, withTfjsKernels, [
      "samples_per_s_tfjs_kernels",
      "samples_per_s_paired",
      "speedup_over_tfjs_kernels",
    ]],
    [blasInfo().enabled ? s.blasVariants : [], withoutBlas, [
      "samples_per_s_blas_off",
      "samples_per_s_blas_on",
      "blas_speedup",
    ]],
    [s.unfusedConvVariants, withFusedConvTraining, [
      "samples_per_s_fused_conv",
      "samples_per_s_unfused_conv",
      "unfused_conv_speedup",
    ]],
    [nativeInfo().enabled ? s.nativeVariants : [], withoutNative, [
      "samples_per_s_native_off",
      "samples_per_s_native_on",
      "native_speedup",
    ]],
    [blasInfo().sliceThreads > 1 ? s.threadVariants : [], withOneThread, [
      "samples_per_s_1_thread",
      "samples_per_s_2_threads",
      "threads_speedup",
    ]],
    [blasInfo().openblasOrder ? s.openblasOrderVariants : [], withoutOpenBlasOrder, [
      "samples_per_s_openblas_products",
      "samples_per_s_openblas_order",
      "openblas_order_speedup",
    ]],
    [
      blasInfo().openblasOrder && blasInfo().sliceThreads > 1 ? s.openblasOrderVariants : [],
      (body) => withOneThread(() => withoutOpenBlasOrder(body)),
      [
        "samples_per_s_openblas_products_1_thread",
        "samples_per_s_openblas_order_1_thread",
        "openblas_order_speedup_1_thread",
      ],
      withOneThread,
    ],
    [
      blasInfo().openblasOrder ? s.openblasOrderVariants : [],
      (body) => withOneThread(() => withoutGatheredProducts(body)),
      [
        "samples_per_s_cols_written_1_thread",
        "samples_per_s_cols_gathered_1_thread",
        "gathered_speedup_1_thread",
      ],
      withOneThread,
    ],
  ];
  for (const [pairVariants, other, [offMetric, onMetric, ratioMetric], ours] of pairs) {
    for (const variant of pairVariants) {
      const timing = _smallTiming(s);
      const [on, off] = await pairedSamplesPerSecond(variant, {
        batchSize: SMALL_BATCH,
        timing,
        other,
        ours,
      });
      const put = _smallRow(s, row, variant);
      put(offMetric, off, "samples/s");
      put(onMetric, on, "samples/s");
      put(ratioMetric, on / off, "ratio");
    }
  }
}

/** Ours against PyTorch's LeNet, interleaved, at batch 20. */
async function _pytorchStage(s: _Settings, row: _Row): Promise<void> {
  for (const variant of s.pytorchVariants) {
    const timing = _smallTiming(s);
    const [ours, theirs] = await pairedWithPyTorch(variant, { timing, pytorch: s.pytorch! });
    const put = _smallRow(s, row, variant);
    put("samples_per_s_pytorch", theirs, "samples/s");
    put("samples_per_s_paired_pytorch", ours, "samples/s");
    put("over_pytorch", ours / theirs, "ratio");
  }
}

/** The `training_profile` rows. */
async function _profileStage(s: _Settings, row: _Row): Promise<void> {
  if (s.profileSteps === 0) return;
  for (const variant of s.variants) {
    const { kernels, stepMs } = await profileSteps(variant, {
      batchSize: SMALL_BATCH,
      steps: s.profileSteps,
    });
    const put = (kernel: string, metric: string, value: number, unit: string) =>
      row({
        group: "training_profile",
        name: `${variant}/${kernel}`,
        backend: "wasm",
        batchSize: SMALL_BATCH,
        metric,
        value,
        unit,
        runs: s.profileSteps,
      });
    let total = 0;
    for (const [kernel, { ms, calls }] of kernels) {
      total += ms;
      put(kernel, "ms_per_step", ms, "ms");
      put(kernel, "calls_per_step", calls, "calls");
    }
    put("all_kernels", "ms_per_step", total, "ms");
    put("step", "ms_per_step", stepMs, "ms");
    put("outside_kernels", "ms_per_step", stepMs - total, "ms");
  }
}

/** The `training_kernels` rows. */
function _kernelStage(s: _Settings, row: _Row): void {
  if (s.kernelRepeats === 0) return;
  for (const batchSize of s.batchSizes) {
    for (const c of kernelCases(batchSize)) {
      const [theirs, ours] = kernelGflops(c, s.kernelRepeats);
      const put = (metric: string, value: number, unit: string) =>
        row({
          group: "training_kernels",
          name: c.name,
          backend: "wasm",
          batchSize,
          metric,
          value,
          unit,
          runs: s.kernelRepeats,
        });
      put("gflops_tfjs", theirs, "GFLOP/s");
      put("gflops_ours", ours, "GFLOP/s");
      put("ours_over_tfjs", ours / theirs, "ratio");
    }
  }
}

/** The cpu rows at batch 20, and their ratio to wasm's. */
async function _cpuStage(s: _Settings, row: _Row, wasmSpeed: Map<string, number>) {
  for (const variant of s.cpuVariants) {
    await initBackend("cpu");
    const timing = { blocks: s.cpuBlocks, warmupBlocks: 1, steps: 1 };
    const speed = await samplesPerSecond(variant, { batchSize: SMALL_BATCH, timing });
    const put = (metric: string, value: number, unit: string) =>
      row({
        group: "training",
        name: variant,
        backend: "cpu",
        batchSize: SMALL_BATCH,
        metric,
        value,
        unit,
        runs: s.cpuBlocks,
      });
    put("samples_per_s", speed, "samples/s");
    const wasm = wasmSpeed.get(`${variant}/${SMALL_BATCH}`);
    if (wasm !== undefined) put("cpu_over_wasm", speed / wasm, "ratio");
  }
}

function _checkCount(name: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) {
    throw new Error(`benchTraining: ${name} must be an integer ≥ ${min}, received ${value}`);
  }
}

if (import.meta.main) {
  const quick = Deno.args.includes("--quick");
  const rows = await benchTraining(
    quick ? { blocks: 5, cpuBlocks: 1, samplesPerBlock: 320, kernelRepeats: 3 } : {},
  );
  console.log(formatTable(rows as unknown as Record<string, unknown>[], { digits: 3 }));
}
