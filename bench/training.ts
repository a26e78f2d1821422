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
import { blasInfo, setBlasEnabled, setBlasSliceThreads } from "../lib/kernels/blas.ts";
import { nativeInfo, setNativeEnabled } from "../lib/kernels/native_library.ts";
import { setUnfusedConvTraining } from "../lib/kernels/fused_conv_training.ts";
import { replacedWasmKernel, WASM_KERNEL_REPLACEMENTS } from "../lib/kernels/mod.ts";
import { GRADIENT_REPLACEMENTS, replacedGradient } from "../lib/kernels/gradients.ts";
import type { PyTorchLeNet } from "./pytorch.ts";
import { createLeNet, type LeNetOptions } from "../lib/models/lenet.ts";
import { formatTable } from "../lib/output/table.ts";
import type { BenchRow } from "./bench_row.ts";
import { median } from "./machine.ts";

/**
 * A LeNet variant: its normalization, and for bnlab's own batch norm (`custom`) which
 * backward pass it uses.
 */
export type TrainingVariant = "none" | "tfjs" | "custom_analytic" | "custom_autodiff";

/** Every {@linkcode TrainingVariant}, in the order of the rows. */
export const TRAINING_VARIANTS: readonly TrainingVariant[] = [
  "none",
  "tfjs",
  "custom_analytic",
  "custom_autodiff",
];

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
   * A running PyTorch worker (bench/pytorch.ts): each of `pytorchVariants` is then also timed
   * at batch 20 against PyTorch's LeNet (BN for every BN variant), blocks interleaved.
   */
  pytorch?: PyTorchLeNet;
  /** The variants compared with PyTorch. @default {["none", "custom_analytic", "tfjs"]} */
  pytorchVariants?: readonly TrainingVariant[];
}

/** The batch size of the cpu, tfjs-kernel and profile rows. */
const _SMALL_BATCH = 20;

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
 *   `samples_per_s_2_threads` and their ratio `threads_speedup`;
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
 *   profileSteps: 0,
 *   kernelRepeats: 0,
 * });
 * console.log(rows[0].metric); // "samples_per_s"
 * ```
 */
export async function benchTraining(options: BenchTrainingOptions = {}): Promise<BenchRow[]> {
  const batchSizes = options.batchSizes ?? [20, 128];
  const variants = options.variants ?? TRAINING_VARIANTS;
  const blocks = options.blocks ?? 7;
  const warmupBlocks = options.warmupBlocks ?? 1;
  const samplesPerBlock = options.samplesPerBlock ?? 640;
  const cpuVariants = options.cpuVariants ?? ["none"];
  const cpuBlocks = options.cpuBlocks ?? 5;
  const tfjsKernelVariants = options.tfjsKernelVariants ?? ["none", "tfjs"];
  const profileSteps = options.profileSteps ?? 10;
  const kernelRepeats = options.kernelRepeats ?? 7;
  const blasVariants = options.blasVariants ?? ["none", "tfjs"];
  const unfusedConvVariants = options.unfusedConvVariants ?? ["none", "custom_analytic", "tfjs"];
  const nativeVariants = options.nativeVariants ?? ["none", "custom_analytic", "tfjs"];
  const threadVariants = options.threadVariants ?? ["none", "custom_analytic", "tfjs"];
  const pytorchVariants = options.pytorch === undefined
    ? []
    : options.pytorchVariants ?? ["none", "custom_analytic", "tfjs"];
  _checkCount("blocks", blocks, 1);
  _checkCount("warmupBlocks", warmupBlocks, 0);
  _checkCount("samplesPerBlock", samplesPerBlock, 1);
  _checkCount("cpuBlocks", cpuBlocks, 1);
  _checkCount("profileSteps", profileSteps, 0);
  _checkCount("kernelRepeats", kernelRepeats, 0);
  for (const b of batchSizes) _checkCount("batchSizes[i]", b, 1);
  const checked = [
    ...variants,
    ...cpuVariants,
    ...tfjsKernelVariants,
    ...blasVariants,
    ...unfusedConvVariants,
    ...nativeVariants,
    ...threadVariants,
    ...pytorchVariants,
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

  const previous = tf.engine().backendName;
  const rows: BenchRow[] = [];
  const row = (
    group: string,
    name: string,
    backend: string,
    batchSize: number,
    metric: string,
    value: number,
    unit: string,
    runs: number,
  ) =>
    rows.push({ group, name, backend, batch_size: batchSize, metric, median: value, unit, runs });
  try {
    await initBackend("wasm");
    const wasmSpeed = new Map<string, number>();
    for (const batchSize of batchSizes) {
      for (const variant of variants) {
        const timing = { blocks, warmupBlocks, steps: Math.ceil(samplesPerBlock / batchSize) };
        const speed = await _samplesPerSecond(variant, batchSize, timing);
        wasmSpeed.set(`${variant}/${batchSize}`, speed);
        row("training", variant, "wasm", batchSize, "samples_per_s", speed, "samples/s", blocks);
      }
    }
    // Each pair: ours against a switched-off path, in interleaved blocks at batch 20.
    const pairs: [readonly TrainingVariant[], _Wrap, [string, string, string]][] = [
      [tfjsKernelVariants, _withTfjsKernels, [
        "samples_per_s_tfjs_kernels",
        "samples_per_s_paired",
        "speedup_over_tfjs_kernels",
      ]],
      [blasInfo().enabled ? blasVariants : [], _withoutBlas, [
        "samples_per_s_blas_off",
        "samples_per_s_blas_on",
        "blas_speedup",
      ]],
      [unfusedConvVariants, _withFusedConvTraining, [
        "samples_per_s_fused_conv",
        "samples_per_s_unfused_conv",
        "unfused_conv_speedup",
      ]],
      [nativeInfo().enabled ? nativeVariants : [], _withoutNative, [
        "samples_per_s_native_off",
        "samples_per_s_native_on",
        "native_speedup",
      ]],
      [blasInfo().sliceThreads > 1 ? threadVariants : [], _withOneThread, [
        "samples_per_s_1_thread",
        "samples_per_s_2_threads",
        "threads_speedup",
      ]],
    ];
    for (const [pairVariants, wrap, [offMetric, onMetric, ratioMetric]] of pairs) {
      for (const variant of pairVariants) {
        const timing = { blocks, warmupBlocks, steps: Math.ceil(samplesPerBlock / _SMALL_BATCH) };
        const [on, off] = await _pairedSamplesPerSecond(variant, _SMALL_BATCH, timing, wrap);
        const put = (metric: string, value: number, unit: string) =>
          row("training", variant, "wasm", _SMALL_BATCH, metric, value, unit, blocks);
        put(offMetric, off, "samples/s");
        put(onMetric, on, "samples/s");
        put(ratioMetric, on / off, "ratio");
      }
    }
    for (const variant of pytorchVariants) {
      const timing = { blocks, warmupBlocks, steps: Math.ceil(samplesPerBlock / _SMALL_BATCH) };
      const [ours, theirs] = await _pairedWithPyTorch(variant, timing, options.pytorch!);
      const put = (metric: string, value: number, unit: string) =>
        row("training", variant, "wasm", _SMALL_BATCH, metric, value, unit, blocks);
      put("samples_per_s_pytorch", theirs, "samples/s");
      put("samples_per_s_paired_pytorch", ours, "samples/s");
      put("over_pytorch", ours / theirs, "ratio");
    }
    if (profileSteps > 0) {
      for (const variant of variants) {
        const { kernels, stepMs } = await _profile(variant, _SMALL_BATCH, profileSteps);
        const put = (kernel: string, metric: string, value: number, unit: string) =>
          row(
            "training_profile",
            `${variant}/${kernel}`,
            "wasm",
            _SMALL_BATCH,
            metric,
            value,
            unit,
            profileSteps,
          );
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
    if (kernelRepeats > 0) {
      for (const batchSize of batchSizes) {
        for (const c of _kernelCases(batchSize)) {
          const [theirs, ours] = _kernelGflops(c, kernelRepeats);
          const put = (metric: string, value: number, unit: string) =>
            row("training_kernels", c.name, "wasm", batchSize, metric, value, unit, kernelRepeats);
          put("gflops_tfjs", theirs, "GFLOP/s");
          put("gflops_ours", ours, "GFLOP/s");
          put("ours_over_tfjs", ours / theirs, "ratio");
        }
      }
    }
    if (cpuVariants.length > 0) {
      for (const variant of cpuVariants) {
        await initBackend("cpu");
        const timing = { blocks: cpuBlocks, warmupBlocks: 1, steps: 1 };
        const speed = await _samplesPerSecond(variant, _SMALL_BATCH, timing);
        row(
          "training",
          variant,
          "cpu",
          _SMALL_BATCH,
          "samples_per_s",
          speed,
          "samples/s",
          cpuBlocks,
        );
        const wasm = wasmSpeed.get(`${variant}/${_SMALL_BATCH}`);
        if (wasm !== undefined) {
          row(
            "training",
            variant,
            "cpu",
            _SMALL_BATCH,
            "cpu_over_wasm",
            speed / wasm,
            "ratio",
            cpuBlocks,
          );
        }
      }
    }
  } finally {
    if (BACKEND_NAMES.includes(previous as BackendName)) await initBackend(previous as BackendName);
  }
  return rows;
}

/** The LeNet of `variant`. */
function _model(variant: TrainingVariant): tf.Sequential {
  const options: LeNetOptions = { seed: 1 };
  if (variant === "none" || variant === "tfjs") {
    return createLeNet({ ...options, normalization: variant });
  }
  const gradient = variant === "custom_analytic" ? "analytic" : "autodiff";
  return createLeNet({ ...options, normalization: "custom", batchNorm: { gradient } });
}

/** A model, its optimizer, and four fixed random batches, on the active backend. */
interface _Trainer {
  step(returnCost: boolean): tf.Scalar | null;
  dispose(): void;
}

function _trainer(variant: TrainingVariant, batchSize: number): _Trainer {
  const model = _model(variant);
  const optimizer = tf.train.sgd(0.01);
  const batches = Array.from({ length: 4 }, (_, i) => ({
    xs: tf.randomUniform([batchSize, 28, 28, 1], 0, 1, "float32", 100 + i),
    ys: tf.tidy(() =>
      tf.oneHot(tf.randomUniform([batchSize], 0, 10, "int32", 200 + i) as tf.Tensor1D, 10)
    ),
  }));
  let next = 0;
  return {
    step(returnCost) {
      const { xs, ys } = batches[next++ % batches.length];
      return optimizer.minimize(() => {
        const logits = model.apply(xs, { training: true }) as tf.Tensor;
        return tf.losses.softmaxCrossEntropy(ys, logits) as tf.Scalar;
      }, returnCost);
    },
    dispose() {
      for (const { xs, ys } of batches) tf.dispose([xs, ys]);
      optimizer.dispose();
      model.dispose();
    },
  };
}

/** Runs `steps` steps and reads the last loss; returns the seconds it took. */
async function _block(trainer: _Trainer, steps: number): Promise<number> {
  const start = performance.now();
  for (let i = 0; i < steps - 1; i++) trainer.step(false);
  const cost = trainer.step(true)!;
  await cost.data();
  const seconds = (performance.now() - start) / 1000;
  cost.dispose();
  return seconds;
}

/** The median samples per second of `variant` over timed blocks, on the active backend. */
async function _samplesPerSecond(
  variant: TrainingVariant,
  batchSize: number,
  timing: { blocks: number; warmupBlocks: number; steps: number },
): Promise<number> {
  const trainer = _trainer(variant, batchSize);
  try {
    const speeds: number[] = [];
    for (let i = 0; i < timing.warmupBlocks + timing.blocks; i++) {
      const seconds = await _block(trainer, timing.steps);
      if (i >= timing.warmupBlocks) speeds.push((timing.steps * batchSize) / seconds);
    }
    return median(speeds);
  } finally {
    trainer.dispose();
  }
}

/**
 * The median samples per second of `variant` on wasm as set up, and inside `other` (with
 * tfjs's kernels, or without BLAS), their timed blocks interleaved (so that both see the same
 * load on a shared machine).
 */
/** Runs a timed body with one of our speed-ups switched off (tfjs's kernels, no BLAS, …). */
type _Wrap = (body: () => Promise<number>) => Promise<number>;

async function _pairedSamplesPerSecond(
  variant: TrainingVariant,
  batchSize: number,
  timing: { blocks: number; warmupBlocks: number; steps: number },
  other: _Wrap,
): Promise<[number, number]> {
  await initBackend("wasm");
  const ours = _trainer(variant, batchSize);
  const theirs = _trainer(variant, batchSize);
  try {
    return await _interleaved(
      () => _block(ours, timing.steps),
      () => other(() => _block(theirs, timing.steps)),
      timing,
      batchSize,
    );
  } finally {
    ours.dispose();
    theirs.dispose();
  }
}

/**
 * Median samples per second of two timed blocks (each returning its seconds) run alternately,
 * `timing.warmupBlocks` untimed pairs first.
 */
async function _interleaved(
  ours: () => Promise<number>,
  theirs: () => Promise<number>,
  timing: { blocks: number; warmupBlocks: number; steps: number },
  batchSize: number,
): Promise<[number, number]> {
  const speeds: [number[], number[]] = [[], []];
  for (let i = 0; i < timing.warmupBlocks + timing.blocks; i++) {
    const oursSeconds = await ours();
    const theirSeconds = await theirs();
    if (i < timing.warmupBlocks) continue;
    speeds[0].push((timing.steps * batchSize) / oursSeconds);
    speeds[1].push((timing.steps * batchSize) / theirSeconds);
  }
  return [median(speeds[0]), median(speeds[1])];
}

/**
 * The median samples per second of `variant` on wasm at batch 20 and of PyTorch's LeNet (with
 * BN for the BN variants), their timed blocks interleaved.
 */
async function _pairedWithPyTorch(
  variant: TrainingVariant,
  timing: { blocks: number; warmupBlocks: number; steps: number },
  pytorch: PyTorchLeNet,
): Promise<[number, number]> {
  await initBackend("wasm");
  const ours = _trainer(variant, _SMALL_BATCH);
  const theirVariant = variant === "none" ? "none" : "bn";
  try {
    return await _interleaved(
      () => _block(ours, timing.steps),
      () => pytorch.block(theirVariant, _SMALL_BATCH, timing.steps),
      timing,
      _SMALL_BATCH,
    );
  } finally {
    ours.dispose();
  }
}

/**
 * Milliseconds and calls per step of each kernel over `steps` profiled wasm steps, and the
 * median wall time of a step over three unprofiled blocks of `steps` steps run just before.
 */
async function _profile(
  variant: TrainingVariant,
  batchSize: number,
  steps: number,
): Promise<{ kernels: Map<string, { ms: number; calls: number }>; stepMs: number }> {
  await initBackend("wasm");
  const trainer = _trainer(variant, batchSize);
  try {
    await _block(trainer, 2); // warm-up
    const blockSeconds = [];
    for (let i = 0; i < 3; i++) blockSeconds.push(await _block(trainer, steps));
    const stepMs = (1000 * median(blockSeconds)) / steps;
    const info = await tf.profile(() => {
      for (let i = 0; i < steps - 1; i++) trainer.step(false);
      return trainer.step(true)!;
    });
    (info.result as tf.Tensor).dispose();
    const byKernel = new Map<string, { ms: number; calls: number }>();
    for (const kernel of info.kernels) {
      // tf.profile also lists ops with a custom gradient (`fusedConv2d__op`): they are not
      // kernels, and their time is that of the kernels they run, listed too.
      if (tf.getKernel(kernel.name, "wasm") === undefined) continue;
      const entry = byKernel.get(kernel.name) ?? { ms: 0, calls: 0 };
      entry.ms += (kernel.kernelTimeMs as number) / steps;
      entry.calls += 1 / steps;
      byKernel.set(kernel.name, entry);
    }
    return { kernels: new Map([...byKernel].sort((a, b) => b[1].ms - a[1].ms)), stepMs };
  } finally {
    trainer.dispose();
  }
}

/**
 * Runs `body` with tfjs's own wasm kernels and gradients registered in place of the
 * lib/kernels/ ones that replaced them, then puts ours back.
 */
async function _withTfjsKernels<T>(body: () => Promise<T>): Promise<T> {
  await initBackend("wasm");
  const swapped: tf.KernelConfig[] = [];
  const gradients = GRADIENT_REPLACEMENTS.map(([name]) => tf.getGradient(name)!);
  const unfused = setUnfusedConvTraining(false);
  try {
    for (const [name] of GRADIENT_REPLACEMENTS) {
      const original = replacedGradient(name);
      if (original !== undefined) tf.registerGradient(original);
    }
    for (const [kernelName] of WASM_KERNEL_REPLACEMENTS) {
      const original = replacedWasmKernel(kernelName);
      const ours = tf.getKernel(kernelName, "wasm");
      if (original === undefined || ours === undefined) continue;
      tf.unregisterKernel(kernelName, "wasm");
      tf.registerKernel(original);
      swapped.push(ours);
    }
    return await body();
  } finally {
    for (const ours of swapped) {
      tf.unregisterKernel(ours.kernelName, "wasm");
      tf.registerKernel(ours);
    }
    gradients.forEach((config) => tf.registerGradient(config));
    setUnfusedConvTraining(unfused);
  }
}

/** Runs `body` with the BLAS kernels switched off, then restores the switch. */
async function _withFusedConvTraining<T>(body: () => Promise<T>): Promise<T> {
  const wasOn = setUnfusedConvTraining(false);
  try {
    return await body();
  } finally {
    setUnfusedConvTraining(wasOn);
  }
}

async function _withoutNative<T>(body: () => Promise<T>): Promise<T> {
  const wasOn = setNativeEnabled(false);
  try {
    return await body();
  } finally {
    setNativeEnabled(wasOn);
  }
}

async function _withOneThread<T>(body: () => Promise<T>): Promise<T> {
  const previous = setBlasSliceThreads(1);
  try {
    return await body();
  } finally {
    setBlasSliceThreads(previous);
  }
}

async function _withoutBlas<T>(body: () => Promise<T>): Promise<T> {
  const wasOn = setBlasEnabled(false);
  try {
    return await body();
  } finally {
    setBlasEnabled(wasOn);
  }
}

/** One replaced-kernel call on LeNet's shapes. */
interface _KernelCase {
  name: string;
  kernelName: string;
  flops: number;
  /** Makes the inputs, as tensors (the caller disposes them). */
  inputs: () => Record<string, tf.Tensor>;
  attrs: Record<string, unknown>;
}

function _kernelCases(batchSize: number): _KernelCase[] {
  const b = batchSize;
  const random = (shape: number[], seed: number) => () =>
    tf.randomUniform(shape, -1, 1, "float32", seed);
  const convDx = (name: string, input: number[], filter: number[], out: number[]): _KernelCase => ({
    name,
    kernelName: "Conv2DBackpropInput",
    flops: 2 * b * out[0] * out[1] * filter[0] * filter[1] * filter[2] * filter[3],
    inputs: () => ({ dy: random([b, ...out], 1)(), filter: random(filter, 2)() }),
    attrs: { inputShape: [b, ...input], strides: 1, pad: "valid", dataFormat: "NHWC" },
  });
  const dense = (
    name: string,
    a: number[],
    bShape: number[],
    flops: number,
    transposeA: boolean,
  ) => ({
    name,
    kernelName: "BatchMatMul",
    flops,
    inputs: () => ({ a: random(a, 3)(), b: random(bShape, 4)() }),
    attrs: { transposeA, transposeB: !transposeA },
  });
  return [
    convDx("conv1_dx", [28, 28, 1], [5, 5, 1, 20], [24, 24, 20]),
    convDx("conv2_dx", [12, 12, 20], [5, 5, 20, 50], [8, 8, 50]),
    // dW = xᵀ·dy and dx = dy·Wᵀ of dense 800→500 and 500→10.
    dense("dense1_dw", [b, 800], [b, 500], 2 * b * 800 * 500, true),
    dense("dense1_dx", [b, 500], [800, 500], 2 * b * 800 * 500, false),
    dense("dense2_dw", [b, 500], [b, 10], 2 * b * 500 * 10, true),
    dense("dense2_dx", [b, 10], [500, 10], 2 * b * 500 * 10, false),
  ];
}

/** GFLOP/s of tfjs's kernel and of ours on one case: [theirs, ours]. */
function _kernelGflops(c: _KernelCase, repeats: number): [number, number] {
  const backend = tf.backend() as tf.KernelBackend & { disposeData(id: tf.DataId): boolean };
  const original = replacedWasmKernel(c.kernelName);
  const ours = tf.getKernel(c.kernelName, "wasm");
  if (original === undefined || ours === undefined) {
    throw new Error(`benchTraining: needs ${c.kernelName} replaced on wasm, received none`);
  }
  const inputs = c.inputs();
  const wasOn = setBlasEnabled(false);
  try {
    const gflops = (kernel: tf.KernelConfig) => {
      const seconds: number[] = [];
      for (let i = 0; i < repeats + 2; i++) {
        const start = performance.now();
        // wasm kernels are synchronous: the output is complete when the call returns.
        const out = kernel.kernelFunc({
          inputs,
          backend,
          attrs: c.attrs as tf.NamedAttrMap,
        }) as tf.TensorInfo;
        const elapsed = (performance.now() - start) / 1000;
        backend.disposeData(out.dataId);
        if (i >= 2) seconds.push(elapsed);
      }
      return c.flops / median(seconds) / 1e9;
    };
    return [gflops(original), gflops(ours)];
  } finally {
    setBlasEnabled(wasOn);
    tf.dispose(Object.values(inputs));
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
