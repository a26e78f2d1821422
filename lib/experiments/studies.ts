/**
 * The studies of the source documents' claims, as named presets (`deno task train --preset P`)
 * and named sweeps (`deno task sweep NAME --preset NAME`). Each is a configuration of the
 * general runner: the scale each answer rests on is stated in its description and here.
 *
 * - `small-batch` (sweep and preset): LeNet/MNIST, batch 2, 4, 8, 16, 32, 64, 128 ×
 *   {none, bnlab, group (10 groups), renorm, ghost (virtual batch 4, at batch ≥ 8 only)},
 *   3 seeds, the same 3 epochs over the first 2,000 training images (1,000 test images) at
 *   every batch size, lr = 0.05·B/32 ({@linkcode linearLr}): 2 × 4 + 5 × 5 = 33 (batch, variant)
 *   pairs × 3 seeds = 99 trials.
 * - `learning-rate` (sweep and preset): LeNet/MNIST, lr ∈ {0.001, 0.003, 0.01, 0.03, 0.1,
 *   0.3, 1} × activation {relu, sigmoid} × {none, bnlab}, batch 32, 2 epochs over 4,000
 *   images, 3 seeds: 84 trials; a trial whose loss turns NaN has status `diverged`.
 * - `unbiased-variance` (sweep and preset): bnlab, batch 2, 4, 8 × running variance {biased,
 *   unbiased}, the scale and lr rule of `small-batch`, 3 seeds (paired: the same seeds give
 *   the same initial weights and data order in both arms): 18 trials.
 * - `figure1` (preset): Ioffe & Szegedy (2015)'s Figure 1 network, 3 × 100 sigmoid MLP on
 *   MNIST, batch 60, none vs bnlab, 10 epochs (10,000 steps; the paper ran 50,000), SGD lr 0.5,
 *   diagnostics every 100 steps on a probe of 1,000 test images: 6 trials.
 * - `resnet` (preset): ResNet-20 on Fashion-MNIST (CIFAR-10 is not available on this machine),
 *   none, bnlab, tfjs, group (8 groups), 4 epochs over the first 1,500 training images
 *   (1,000 test images), batch 32, SGD lr 0.02 with momentum 0.9, 2 seeds: 8 trials.
 * - `report-normalized` and `report-example-optimizer` (presets): the `report` preset with
 *   PyTorch's MNIST example's input standardization (0.1307, 0.3081), or with its optimizer
 *   (SGD momentum 0.5 at lr 0.01).
 *
 * @module
 */

/**
 * Config fields a study sets (a key of `ExperimentConfig` each; config.ts checks keys and
 * values when a preset or sweep point is resolved). This module imports nothing from the
 * config and sweep modules, which register its tables.
 */
export type StudyOverrides = Readonly<Record<string, unknown>>;

/** A study's preset, registered into `PRESETS` (config.ts's `Preset`). */
export interface StudyPreset {
  /** One line for `--help`. */
  description: string;
  /** The fields it changes. */
  overrides: StudyOverrides;
}

/** One point of a study's sweep (sweeps.ts's `SweepTrial`). */
export interface StudyPoint {
  /** Directory-safe identifier, unique within the sweep. */
  id: string;
  /** The fields the point sets. */
  overrides: StudyOverrides & {
    batchSize?: number;
    lr?: number;
    variants?: readonly string[];
    virtualBatchSize?: number | null;
  };
}

/** A study's named sweep, registered into `SWEEPS` (sweeps.ts's `SweepDefinition`). */
export interface StudySweep {
  /** Name used on the command line. */
  name: string;
  /** One line for `--help`. */
  description: string;
  /** Fields the sweep sets at every point (config keys). */
  fields: readonly string[];
  /** The points over a base config (its `lr` is the rate at batch 32 where a point links them). */
  trials: (base: { lr: number }) => StudyPoint[];
}

/** Batch sizes of the `small-batch` study. */
export const SMALL_BATCH_SIZES: readonly number[] = [2, 4, 8, 16, 32, 64, 128];

/** The batch size at which the `small-batch` and `unbiased-variance` presets' lr applies. */
export const LR_REFERENCE_BATCH = 32;

/** The smallest batch at which `small-batch` trains `ghost` (two virtual batches of 4). */
export const GHOST_MIN_BATCH = 8;

/** Samples per virtual batch of `ghost` in the `small-batch` study. */
export const GHOST_VIRTUAL_BATCH = 4;

/** Learning rates of the `learning-rate` study (a log grid, about ×3 apart). */
export const STUDY_LEARNING_RATES: readonly number[] = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1];

/** Batch sizes of the `unbiased-variance` study. */
export const UNBIASED_BATCH_SIZES: readonly number[] = [2, 4, 8];

/**
 * The linear scaling rule: the learning rate at batch size B for a base rate at the
 * reference batch, lr(B) = baseLr·B/referenceBatch (Goyal et al. 2017), rounded to 12
 * significant digits so that 0.05·2/32 prints as 0.003125.
 *
 * @param baseLr The learning rate at the reference batch size.
 * @param batchSize The batch size B.
 * @param options `referenceBatch`: the batch size at which `baseLr` applies. @default {32}
 * @returns baseLr·B/referenceBatch.
 *
 * @example
 * ```ts
 * import { linearLr } from "./studies.ts";
 * console.log(linearLr(0.05, 2), linearLr(0.05, 128)); // 0.003125 0.2
 * console.log(linearLr(0.1, 8, { referenceBatch: 16 })); // 0.05
 * ```
 */
export function linearLr(
  baseLr: number,
  batchSize: number,
  options: { referenceBatch?: number } = {},
): number {
  const referenceBatch = options.referenceBatch ?? LR_REFERENCE_BATCH;
  if (!(baseLr > 0) || !Number.isFinite(baseLr)) {
    throw new Error(`linearLr: baseLr must be a positive finite number, received ${baseLr}`);
  }
  for (const [name, value] of [["batchSize", batchSize], ["referenceBatch", referenceBatch]]) {
    if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
      throw new Error(`linearLr: ${name} must be a positive integer, received ${value}`);
    }
  }
  return Number((baseLr * batchSize / referenceBatch).toPrecision(12));
}

/**
 * The points of the `small-batch` sweep over a base config: one per batch size B, training
 * none, bnlab, group, renorm and (where B ≥ 8) ghost with virtual batches of 4, at
 * lr = base.lr·B/32 — the base config's lr is the rate at batch 32.
 *
 * @param baseLr The base config's lr (the rate at batch 32).
 * @returns One point per batch size, ids `batch-2`, `batch-4`, ….
 *
 * @example
 * ```ts
 * import { smallBatchPoints } from "./studies.ts";
 * const points = smallBatchPoints(0.05);
 * console.log(points[0].overrides.lr, points[0].overrides.variants?.length); // 0.003125 4
 * console.log(points[2].overrides.virtualBatchSize, points[2].overrides.variants?.at(-1)); // 4 ghost
 * ```
 */
export function smallBatchPoints(baseLr: number): StudyPoint[] {
  return SMALL_BATCH_SIZES.map((batchSize) => {
    const ghost = batchSize >= GHOST_MIN_BATCH;
    return {
      id: `batch-${batchSize}`,
      overrides: {
        batchSize,
        lr: linearLr(baseLr, batchSize),
        variants: ghost
          ? ["none", "bnlab", "group", "renorm", "ghost"]
          : ["none", "bnlab", "group", "renorm"],
        virtualBatchSize: ghost ? GHOST_VIRTUAL_BATCH : null,
      },
    };
  });
}

/** The scale shared by the LeNet small-batch studies: 2,000 images, 3 epochs. */
const _SMALL_SCALE = {
  model: "lenet",
  dataset: "mnist",
  activation: "relu",
  limit: 2000,
  testLimit: 1000,
  epochs: 3,
  lr: 0.05,
  seeds: 3,
  logEvery: 50,
} as const;

/** The studies' presets, registered into `PRESETS` by config.ts. */
export const STUDY_PRESETS: Readonly<Record<string, StudyPreset>> = Object.freeze({
  "small-batch": {
    description: "LeNet/MNIST, 2,000 images × 3 epochs, 1,000 test images, relu, 3 seeds, " +
      "lr 0.05 at batch 32 (the small-batch sweep scales it linearly with the batch), 10 groups",
    overrides: { ..._SMALL_SCALE, groups: 10, variants: ["none", "bnlab", "group", "renorm"] },
  },
  "learning-rate": {
    description:
      "LeNet/MNIST, 4,000 images × 2 epochs, 1,000 test images, batch 32, none and bnlab, " +
      "3 seeds (the learning-rate sweep sets lr and activation)",
    overrides: {
      model: "lenet",
      dataset: "mnist",
      limit: 4000,
      testLimit: 1000,
      epochs: 2,
      batchSize: 32,
      lr: 0.01,
      variants: ["none", "bnlab"],
      seeds: 3,
      logEvery: 25,
    },
  },
  "unbiased-variance": {
    description: "bnlab on LeNet/MNIST at the small-batch scale (2,000 images × 3 epochs), " +
      "3 seeds, lr 0.05 at batch 32 (the unbiased-variance sweep sets batch, lr and variance)",
    overrides: { ..._SMALL_SCALE, variants: ["bnlab"] },
  },
  figure1: {
    description: "Ioffe & Szegedy 2015 Figure 1: MLP 3×100 sigmoid on MNIST, batch 60, none " +
      "vs bnlab, 10 epochs (10,000 steps), SGD lr 0.5, 3 seeds, diagnostics every 100 steps",
    overrides: {
      model: "mlp",
      dataset: "mnist",
      hidden: [100, 100, 100],
      activation: "sigmoid",
      batchSize: 60,
      epochs: 10,
      lr: 0.5,
      variants: ["none", "bnlab"],
      seeds: 3,
      logEvery: 100,
      diagnostics: "every=100,probe=1000",
    },
  },
  resnet: {
    description: "ResNet-20 on Fashion-MNIST (CIFAR-10 is not available here), 1,500 images × " +
      "4 epochs, 1,000 test images, batch 32, SGD lr 0.02 momentum 0.9, none/bnlab/tfjs/group " +
      "(8 groups), 2 seeds",
    overrides: {
      model: "resnet20",
      dataset: "fashion-mnist",
      limit: 1500,
      testLimit: 1000,
      epochs: 4,
      batchSize: 32,
      lr: 0.02,
      sgdMomentum: 0.9,
      activation: "relu",
      variants: ["none", "bnlab", "tfjs", "group"],
      groups: 8,
      seeds: 2,
      logEvery: 10,
    },
  },
  "report-normalized": {
    description: "the report preset with PyTorch's MNIST example's input standardization " +
      "(x − 0.1307)/0.3081",
    overrides: {
      epochs: 20,
      batchSize: 20,
      lr: 0.001,
      activation: "sigmoid",
      momentum: 0.1,
      momentumConvention: "keras",
      tfjsMomentum: 0.9,
      normalizeInput: "0.1307,0.3081",
    },
  },
  "report-example-optimizer": {
    description: "the report preset with PyTorch's MNIST example's optimizer: SGD momentum 0.5 " +
      "at lr 0.01",
    overrides: {
      epochs: 20,
      batchSize: 20,
      lr: 0.01,
      sgdMomentum: 0.5,
      activation: "sigmoid",
      momentum: 0.1,
      momentumConvention: "keras",
      tfjsMomentum: 0.9,
    },
  },
});

/** The studies' named sweeps, registered into `SWEEPS` by sweeps.ts. */
export const STUDY_SWEEPS: Readonly<Record<string, StudySweep>> = Object.freeze({
  "small-batch": {
    name: "small-batch",
    description: "batch 2…128 × none/bnlab/group/renorm/ghost, lr = base lr·B/32 " +
      "(with --preset small-batch: 99 trials)",
    fields: ["batchSize", "lr", "variants", "virtualBatchSize"],
    trials: (base) => smallBatchPoints(base.lr),
  },
  "learning-rate": {
    name: "learning-rate",
    description: "lr 0.001…1 (7 values) × activation relu/sigmoid " +
      "(with --preset learning-rate: 84 trials)",
    fields: ["lr", "activation"],
    trials: () =>
      STUDY_LEARNING_RATES.flatMap((lr) =>
        (["relu", "sigmoid"] as const).map((activation) => ({
          id: `lr-${lr}_${activation}`,
          overrides: { lr, activation },
        }))
      ),
  },
  "unbiased-variance": {
    name: "unbiased-variance",
    description: "batch 2/4/8 × running variance biased/unbiased, lr = base lr·B/32 " +
      "(with --preset unbiased-variance: 18 trials)",
    fields: ["batchSize", "lr", "runningVariance"],
    trials: (base) =>
      UNBIASED_BATCH_SIZES.flatMap((batchSize) =>
        (["biased", "unbiased"] as const).map((runningVariance) => ({
          id: `batch-${batchSize}_${runningVariance}`,
          overrides: { batchSize, lr: linearLr(base.lr, batchSize), runningVariance },
        }))
      ),
  },
});
