/**
 * ResNet-20 training speed and the normalizations' cost, each figure from blocks interleaved
 * round-robin in one run (so that every variant sees the same machine load):
 *
 * - {@linkcode benchResNet}: ResNet-20 (28×28×1, batch 128) samples per second on wasm
 *   without normalization and with bnlab's BN, group and layer normalization, beside
 *   Debian's PyTorch training the same network without and with BN (bench/pytorch_resnet20.py);
 * - {@linkcode benchNorms}: the training-step time of group and layer normalization, on their
 *   native kernels and as the tfjs-op reference (the kernels unregistered), over that of
 *   bnlab's BN, on LeNet at batch 20 and ResNet-20 at batch 128;
 * - {@linkcode benchResNetProfile}: where a ResNet-20 step's time goes, kernel by kernel and by
 *   kind of work.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backend.ts";
import { createLeNet } from "../lib/models/lenet.ts";
import { createResNet20 } from "../lib/models/resnet20.ts";
import { GROUP_NORM_BACKWARD, GROUP_NORM_FORWARD } from "../lib/named_kernels.ts";
import { setConv3x3Enabled } from "../lib/kernels/conv3x3.ts";
import type { Normalization } from "../lib/norms/normalization.ts";
import type { BenchRow } from "./bench_row.ts";
import { matmulLimit, modelTrainingFlopsPerSample } from "./derived.ts";
import { median } from "./machine.ts";
import type { PyTorchLeNet } from "./pytorch.ts";
import { profileTrainer } from "./training/profile.ts";
import { blockSeconds, modelTrainer, type Timing, type Trainer } from "./training/trainer.ts";

/** ResNet-20's batch size in these rows. */
export const RESNET_BATCH = 128;
/** LeNet's batch size in the norm-cost rows. */
export const LENET_BATCH = 20;
/** Groups of group normalization on LeNet (they divide its 20, 50 and 500 channels). */
export const LENET_GROUPS = 10;
/** Groups of group normalization on ResNet-20: min(32, C) of its 16, 32, 64 channels. */
export const RESNET_GROUPS = 32;

/** One contender of a round-robin: a name and a block that returns its seconds. */
export interface Contender {
  /** The row name. */
  readonly name: string;
  /** Runs one block of `timing.steps` steps and returns its seconds. */
  readonly block: () => Promise<number>;
}

/**
 * Samples per second of each contender in each round, their blocks run round-robin (the
 * starting contender rotating each round), `timing.warmupBlocks` untimed rounds first.
 *
 * @param contenders The contenders.
 * @param options The timing and the batch size.
 * @returns Samples per second by name, one value per timed round.
 *
 * @example
 * ```ts
 * import { roundRobin } from "./resnet.ts";
 *
 * const timing = { blocks: 2, warmupBlocks: 1, steps: 2 };
 * const speeds = await roundRobin([
 *   { name: "a", block: async () => 1 },
 *   { name: "b", block: async () => 2 },
 * ], { timing, batchSize: 5 });
 * console.log(speeds); // Map(2) { "a" => [ 10, 10 ], "b" => [ 5, 5 ] }
 * ```
 */
export async function roundRobin(
  contenders: readonly Contender[],
  options: { timing: Timing; batchSize: number },
): Promise<Map<string, number[]>> {
  const { timing, batchSize } = options;
  const speeds = contenders.map(() => [] as number[]);
  for (let round = 0; round < timing.warmupBlocks + timing.blocks; round++) {
    for (let k = 0; k < contenders.length; k++) {
      const i = (round + k) % contenders.length;
      const seconds = await contenders[i].block();
      if (round >= timing.warmupBlocks) speeds[i].push((timing.steps * batchSize) / seconds);
    }
  }
  return new Map(contenders.map((c, i) => [c.name, speeds[i]]));
}

/**
 * The median over rounds of a/b, each round's two figures measured side by side.
 *
 * @param a One figure per round.
 * @param b One figure per round, as many.
 * @returns The median of a[i]/b[i].
 *
 * @example
 * ```ts
 * import { medianRatio } from "./resnet.ts";
 * console.log(medianRatio([2, 9, 4], [1, 3, 1])); // 3
 * ```
 */
export function medianRatio(a: readonly number[], b: readonly number[]): number {
  return median(a.map((value, i) => value / b[i]));
}

/**
 * Runs `body` with the named kernels `kernelNames` unregistered for wasm (their callers then
 * run their tfjs ops), then registers them again.
 *
 * @param kernelNames Kernel names, e.g. {@linkcode GROUP_NORM_FORWARD}.
 * @param body What to run.
 * @returns What `body` returns.
 *
 * @example
 * ```ts
 * import { withoutKernels } from "./resnet.ts";
 *
 * console.log(await withoutKernels(["NoSuchKernel"], async () => 1)); // 1
 * ```
 */
export async function withoutKernels<T>(
  kernelNames: readonly string[],
  body: () => Promise<T>,
): Promise<T> {
  const removed: tf.KernelConfig[] = [];
  try {
    for (const name of kernelNames) {
      const config = tf.getKernel(name, "wasm");
      if (config === undefined) continue;
      tf.unregisterKernel(name, "wasm");
      removed.push(config);
    }
    return await body();
  } finally {
    for (const config of removed) tf.registerKernel(config);
  }
}

/** A ResNet-20 or LeNet variant of the norm rows. */
type _Net = "resnet20" | "lenet";

/** The model of `net` with `normalization` (group normalization with the net's groups). */
function _model(net: _Net, normalization: Normalization): tf.LayersModel {
  const groups = net === "lenet" ? LENET_GROUPS : RESNET_GROUPS;
  const normalizationOptions = { groups };
  return net === "lenet"
    ? createLeNet({ normalization, seed: 1, normalizationOptions })
    : createResNet20({ normalization, seed: 1, normalizationOptions });
}

/** The row name of a normalization (`group_g32`: group normalization in 32 groups). */
function _name(net: _Net, normalization: Normalization): string {
  if (normalization !== "group") return normalization;
  return `group_g${net === "lenet" ? LENET_GROUPS : RESNET_GROUPS}`;
}

/** A contender training `net` with `normalization`; `ops`: the GN/LN kernels unregistered. */
function _contender(
  net: _Net,
  normalization: Normalization,
  options: { batchSize: number; steps: number; ops?: boolean; trainers: Trainer[] },
): Contender {
  const t = modelTrainer(_model(net, normalization), options.batchSize);
  options.trainers.push(t);
  const run = () => blockSeconds(t, options.steps);
  const name = _name(net, normalization) + (options.ops ? "_tfjs_ops" : "");
  return {
    name,
    block: options.ops ? () => withoutKernels([GROUP_NORM_FORWARD, GROUP_NORM_BACKWARD], run) : run,
  };
}

/** Options of {@linkcode benchResNet}. */
export interface BenchResNetOptions {
  /** Timed rounds. @default {7} */
  blocks?: number;
  /** Untimed rounds before them. @default {1} */
  warmupBlocks?: number;
  /** Steps per block. @default {1} */
  steps?: number;
  /** Batch size. @default {RESNET_BATCH} */
  batchSize?: number;
  /** Variants on wasm. @default {["none", "bnlab", "group", "layer"]} */
  variants?: readonly Normalization[];
  /** A running PyTorch worker of ResNet-20 (bench/pytorch.ts), timed in the same rounds. */
  pytorch?: PyTorchLeNet;
}

/**
 * ResNet-20 training on wasm (BLAS and native kernels as set up) per variant, and PyTorch's
 * without and with BN when a worker is given, all blocks round-robin. Rows (group
 * `resnet20_training`, batch 128): `samples_per_s` per variant (names as the normalization,
 * `group_g32` for group normalization in min(32, C) groups), `bnlab_im2col_conv` (bnlab's
 * BN with the direct 3×3 convolution kernels of lib/kernels/conv3x3.ts off: im2col + BLAS)
 * and `pytorch_none`, `pytorch_bn`; `over_pytorch` for `none` (over `pytorch_none`) and
 * `bnlab` (over `pytorch_bn`), and `direct_conv_speedup` for `bnlab` (over
 * `bnlab_im2col_conv`), ratios of the medians.
 *
 * @param options Timing, variants and the PyTorch worker.
 * @returns The rows.
 *
 * @example One tiny round
 * ```ts
 * import { benchResNet } from "./resnet.ts";
 *
 * const rows = await benchResNet({
 *   blocks: 1,
 *   warmupBlocks: 0,
 *   batchSize: 2,
 *   variants: ["none"],
 * });
 * console.log(rows[0].name, rows[0].metric); // none samples_per_s
 * ```
 */
export async function benchResNet(options: BenchResNetOptions = {}): Promise<BenchRow[]> {
  const batchSize = options.batchSize ?? RESNET_BATCH;
  const timing: Timing = {
    blocks: options.blocks ?? 7,
    warmupBlocks: options.warmupBlocks ?? 1,
    steps: options.steps ?? 1,
  };
  const variants = options.variants ?? ["none", "bnlab", "group", "layer"];
  await initBackend("wasm");
  const trainers: Trainer[] = [];
  try {
    const contenders = variants.map((v) =>
      _contender("resnet20", v, { batchSize, steps: timing.steps, trainers })
    );
    if (variants.includes("bnlab")) {
      // bnlab's BN with the 3×3 convolutions on im2col + BLAS instead of the direct kernels.
      const base = _contender("resnet20", "bnlab", { batchSize, steps: timing.steps, trainers });
      contenders.push({
        name: "bnlab_im2col_conv",
        block: async () => {
          const previous = setConv3x3Enabled(false);
          try {
            return await base.block();
          } finally {
            setConv3x3Enabled(previous);
          }
        },
      });
    }
    const pytorch = options.pytorch;
    if (pytorch !== undefined) {
      for (const variant of ["none", "bn"] as const) {
        contenders.push({
          name: `pytorch_${variant}`,
          block: () => pytorch.block(variant, batchSize, timing.steps),
        });
      }
    }
    const speeds = await roundRobin(contenders, { timing, batchSize });
    const ratio = (a: string, b: string) => medianRatio(speeds.get(a)!, speeds.get(b)!);
    const rows: BenchRow[] = [];
    const put = (name: string, metric: string, median: number, unit: string) =>
      rows.push({
        group: RESNET_TRAINING_GROUP,
        name,
        backend: name.startsWith("pytorch") ? "pytorch_cpu" : "wasm",
        batch_size: batchSize,
        metric,
        median,
        unit,
        runs: timing.blocks,
      });
    for (const [name, speed] of speeds) put(name, "samples_per_s", median(speed), "samples/s");
    for (const [ours, theirs] of [["none", "pytorch_none"], ["bnlab", "pytorch_bn"]]) {
      if (speeds.has(ours) && speeds.has(theirs)) {
        put(ours, "over_pytorch", ratio(ours, theirs), "ratio");
      }
    }
    if (speeds.has("bnlab_im2col_conv")) {
      put("bnlab", "direct_conv_speedup", ratio("bnlab", "bnlab_im2col_conv"), "ratio");
    }
    return rows;
  } finally {
    for (const t of trainers) t.dispose();
  }
}

/** The row group of {@linkcode benchResNet}. */
export const RESNET_TRAINING_GROUP = "resnet20_training";

/**
 * FLOPs of one ResNet-20 training sample (28×28×1, 10 classes), counted from the model's
 * convolutions and dense layer by `modelTrainingFlopsPerSample`.
 *
 * @returns FLOPs per sample.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { resnet20TrainingFlopsPerSample } from "./resnet.ts";
 *
 * await tf.setBackend("cpu");
 * console.log(resnet20TrainingFlopsPerSample()); // 185905920
 * ```
 */
export function resnet20TrainingFlopsPerSample(): number {
  const model = createResNet20();
  try {
    return modelTrainingFlopsPerSample(model);
  } finally {
    model.dispose();
  }
}

/**
 * What the ResNet-20 rates mean against the machine: for each `samples_per_s` row of
 * {@linkcode benchResNet} (ours and PyTorch's, on the same cores), `training_gflops` (the rate
 * times `flopsPerSample`) and `fraction_of_matmul_limit` (that over the best matrix-product
 * rate among `rows`, `matmulLimit`: OpenBLAS's large square sgemm when it ran).
 *
 * @param rows Rows of one results table (possibly kept from an earlier run by `--only`).
 * @param flopsPerSample FLOPs of one training sample ({@linkcode resnet20TrainingFlopsPerSample}).
 * @returns The rows (none without a product rate).
 *
 * @example
 * ```ts
 * import { resnetShareRows } from "./resnet.ts";
 * console.log(resnetShareRows([], 1e8).length); // 0
 * ```
 */
export function resnetShareRows(rows: readonly BenchRow[], flopsPerSample: number): BenchRow[] {
  const best = matmulLimit(rows, "wasm");
  if (best === undefined) return [];
  return rows
    .filter((r) => r.group === RESNET_TRAINING_GROUP && r.metric === "samples_per_s")
    .flatMap((r) => {
      const gflops = (r.median * flopsPerSample) / 1e9;
      return [
        { ...r, metric: "training_gflops", median: gflops, unit: "GFLOP/s" },
        { ...r, metric: "fraction_of_matmul_limit", median: gflops / best.median, unit: "ratio" },
      ];
    });
}

/** Options of {@linkcode benchNorms}. */
export interface BenchNormsOptions {
  /** Timed rounds. @default {7} */
  blocks?: number;
  /** Untimed rounds before them. @default {1} */
  warmupBlocks?: number;
  /** Samples per LeNet block (⌈/ 20⌉ steps). @default {640} */
  lenetSamplesPerBlock?: number;
  /** Steps per ResNet-20 block. @default {1} */
  resnetSteps?: number;
  /** The networks. @default {["lenet", "resnet20"]} */
  nets?: readonly _Net[];
  /** ResNet-20's batch size. @default {RESNET_BATCH} */
  resnetBatch?: number;
}

/**
 * The training-step cost of group and layer normalization relative to bnlab's BN: per
 * network, blocks of `bnlab`, `group_g*`, `layer` (native kernels) and `group_g*_tfjs_ops`,
 * `layer_tfjs_ops` (the same ops with the kernels unregistered: the reference) round-robin.
 * Rows (group `norm_cost`, name `net/variant`): `samples_per_s` (the median over rounds), and
 * for every variant but `bnlab` `step_time_over_bnlab` (the median over rounds of bnlab's
 * samples/s over the variant's in the same round: a step's time over BN's).
 *
 * @param options Timing and networks.
 * @returns The rows.
 *
 * @example
 * ```ts
 * import { benchNorms } from "./resnet.ts";
 *
 * const rows = await benchNorms({
 *   blocks: 1,
 *   warmupBlocks: 0,
 *   lenetSamplesPerBlock: 20,
 *   nets: ["lenet"],
 * });
 * console.log(rows.some((r) => r.metric === "step_time_over_bnlab")); // true
 * ```
 */
export async function benchNorms(options: BenchNormsOptions = {}): Promise<BenchRow[]> {
  const blocks = options.blocks ?? 7;
  const warmupBlocks = options.warmupBlocks ?? 1;
  const rows: BenchRow[] = [];
  await initBackend("wasm");
  for (const net of options.nets ?? ["lenet", "resnet20"]) {
    const batchSize = net === "lenet" ? LENET_BATCH : options.resnetBatch ?? RESNET_BATCH;
    const steps = net === "lenet"
      ? Math.ceil((options.lenetSamplesPerBlock ?? 640) / LENET_BATCH)
      : options.resnetSteps ?? 1;
    const timing: Timing = { blocks, warmupBlocks, steps };
    const trainers: Trainer[] = [];
    try {
      const contenders = [
        _contender(net, "bnlab", { batchSize, steps, trainers }),
        _contender(net, "group", { batchSize, steps, trainers }),
        _contender(net, "layer", { batchSize, steps, trainers }),
        _contender(net, "group", { batchSize, steps, trainers, ops: true }),
        _contender(net, "layer", { batchSize, steps, trainers, ops: true }),
      ];
      const speeds = await roundRobin(contenders, { timing, batchSize });
      const bn = speeds.get("bnlab")!;
      const put = (name: string, metric: string, median: number, unit: string) =>
        rows.push({
          group: "norm_cost",
          name: `${net}/${name}`,
          backend: "wasm",
          batch_size: batchSize,
          metric,
          median,
          unit,
          runs: blocks,
        });
      for (const [name, speed] of speeds) {
        put(name, "samples_per_s", median(speed), "samples/s");
        if (name !== "bnlab") put(name, "step_time_over_bnlab", medianRatio(bn, speed), "ratio");
      }
    } finally {
      for (const t of trainers) t.dispose();
    }
  }
  return rows;
}

/** The kind of work of each kernel in {@linkcode benchResNetProfile}'s summary. */
const _KINDS: Readonly<Record<string, string>> = {
  Conv2D: "conv_forward",
  FusedConv2D: "conv_forward",
  Conv2DBackpropInput: "conv_input_gradient",
  Conv2DBackpropFilter: "conv_filter_gradient",
  BnlabBatchNormMoments: "norms",
  BnlabBatchNormForward: "norms",
  BnlabBatchNormBackward: "norms",
  BnlabRunningAverage: "norms",
  BnlabGroupNormForward: "norms",
  BnlabGroupNormBackward: "norms",
  FusedBatchNorm: "norms",
  BnlabFusedBatchNormGrad: "norms",
};

/**
 * Where a ResNet-20 training step's time goes (`tf.profile` over `steps` steps), per
 * variant: rows (group `resnet20_profile`, name `variant/kernel`) of `ms_per_step` and
 * `calls_per_step` per kernel; `ms_per_step` and `share_of_kernels` by kind of work
 * (`variant/kind:…`: conv forward, input gradient, filter gradient, norms, everything else as
 * `elementwise_other`); `variant/all_kernels`, `variant/step` (the unprofiled step) and
 * `variant/kind:outside_kernels` (their difference: tfjs dispatch, tape and JavaScript; the
 * profiled kernels run slower than unprofiled ones on a loaded machine, so it can come out
 * negative).
 *
 * @param options Variants, steps and batch size.
 * @returns The rows.
 *
 * @example
 * ```ts ignore
 * import { benchResNetProfile } from "./resnet.ts";
 * console.log(await benchResNetProfile({ variants: ["bnlab"], steps: 2 }));
 * ```
 */
export async function benchResNetProfile(
  options: { variants?: readonly Normalization[]; steps?: number; batchSize?: number } = {},
): Promise<BenchRow[]> {
  const steps = options.steps ?? 3;
  const batchSize = options.batchSize ?? RESNET_BATCH;
  const rows: BenchRow[] = [];
  await initBackend("wasm");
  for (const variant of options.variants ?? ["none", "bnlab"]) {
    const { kernels, stepMs } = await profileTrainer(
      () => modelTrainer(_model("resnet20", variant), batchSize),
      { steps },
    );
    const put = (name: string, metric: string, median: number, unit: string) =>
      rows.push({
        group: "resnet20_profile",
        name: `${_name("resnet20", variant)}/${name}`,
        backend: "wasm",
        batch_size: batchSize,
        metric,
        median,
        unit,
        runs: steps,
      });
    const kinds = new Map<string, number>();
    let total = 0;
    for (const [kernel, { ms, calls }] of kernels) {
      total += ms;
      put(kernel, "ms_per_step", ms, "ms");
      put(kernel, "calls_per_step", calls, "calls");
      const kind = _KINDS[kernel] ?? "elementwise_other";
      kinds.set(kind, (kinds.get(kind) ?? 0) + ms);
    }
    for (const [kind, ms] of kinds) {
      put(`kind:${kind}`, "ms_per_step", ms, "ms");
      put(`kind:${kind}`, "share_of_kernels", ms / total, "ratio");
    }
    put("all_kernels", "ms_per_step", total, "ms");
    put("kind:outside_kernels", "ms_per_step", stepMs - total, "ms");
    put("step", "ms_per_step", stepMs, "ms");
  }
  return rows;
}
