/**
 * The timed unit of the training benchmark: a LeNet variant trained by SGD on four fixed
 * random batches, blocks of steps timed alone or interleaved with another's.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../../lib/backend.ts";
import { createLeNet, type LeNetOptions } from "../../lib/models/lenet.ts";
import { createOptimizer } from "../../lib/train/loop.ts";
import { computeLoss } from "../../lib/train/losses.ts";
import { median } from "../machine.ts";
import type { PyTorchLeNet } from "../pytorch.ts";

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

/** The batch size of the cpu, tfjs-kernel and profile rows. */
export const SMALL_BATCH = 20;

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
export interface Trainer {
  /** One SGD step; the loss when `returnCost`. */
  step(returnCost: boolean): tf.Scalar | null;
  /** Disposes the model, the optimizer and the batches. */
  dispose(): void;
}

/**
 * A {@linkcode Trainer} of `variant` at `batchSize`, on the active backend.
 *
 * @param variant The LeNet variant.
 * @param batchSize Samples per step.
 * @returns The trainer (the caller disposes it).
 *
 * @example
 * ```ts
 * import { blockSeconds, trainer } from "./trainer.ts";
 *
 * const t = trainer("none", 2);
 * console.log((await blockSeconds(t, 1)) > 0); // true
 * t.dispose();
 * ```
 */
export function trainer(variant: TrainingVariant, batchSize: number): Trainer {
  return modelTrainer(_model(variant), batchSize);
}

/**
 * A {@linkcode Trainer} of any model of 28×28×1 images and 10 classes at `batchSize`, on the
 * active backend: plain SGD as the training runs build it (`createOptimizer`, learning rate 0.01) on the mean softmax cross-entropy over four fixed
 * random batches. The trainer owns the model (its `dispose` disposes it).
 *
 * @param model The model.
 * @param batchSize Samples per step.
 * @returns The trainer (the caller disposes it).
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { blockSeconds, modelTrainer } from "./trainer.ts";
 *
 * const model = tf.sequential({
 *   layers: [tf.layers.flatten({ inputShape: [28, 28, 1] }), tf.layers.dense({ units: 10 })],
 * });
 * const t = modelTrainer(model, 2);
 * console.log((await blockSeconds(t, 1)) > 0); // true
 * t.dispose();
 * ```
 */
export function modelTrainer(model: tf.LayersModel, batchSize: number): Trainer {
  // The training runs' plain SGD (lib/train/sgd.ts: the update as one native kernel).
  const optimizer = createOptimizer("sgd", 0.01);
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
        return computeLoss("xent", logits, ys);
      }, returnCost);
    },
    dispose() {
      for (const { xs, ys } of batches) tf.dispose([xs, ys]);
      optimizer.dispose();
      model.dispose();
    },
  };
}

/**
 * Runs `steps` steps and reads the last loss.
 *
 * @param trainer The trainer.
 * @param steps Steps to run (at least 1).
 * @returns The seconds they took.
 *
 * @example
 * ```ts
 * import { blockSeconds, trainer } from "./trainer.ts";
 *
 * const t = trainer("tfjs", 2);
 * console.log((await blockSeconds(t, 2)) > 0); // true
 * t.dispose();
 * ```
 */
export async function blockSeconds(trainer: Trainer, steps: number): Promise<number> {
  const start = performance.now();
  for (let i = 0; i < steps - 1; i++) trainer.step(false);
  const cost = trainer.step(true)!;
  await cost.data();
  const seconds = (performance.now() - start) / 1000;
  cost.dispose();
  return seconds;
}

/**
 * The median samples per second of `variant` over timed blocks, on the active backend.
 *
 * @param variant The LeNet variant.
 * @param options The batch size and the timing.
 * @returns Samples per second.
 *
 * @example
 * ```ts
 * import { samplesPerSecond } from "./trainer.ts";
 *
 * const speed = await samplesPerSecond("none", {
 *   batchSize: 2,
 *   timing: { blocks: 1, warmupBlocks: 0, steps: 1 },
 * });
 * console.log(speed > 0); // true
 * ```
 */
export async function samplesPerSecond(
  variant: TrainingVariant,
  options: { batchSize: number; timing: Timing },
): Promise<number> {
  const { batchSize, timing } = options;
  const t = trainer(variant, batchSize);
  try {
    const speeds: number[] = [];
    for (let i = 0; i < timing.warmupBlocks + timing.blocks; i++) {
      const seconds = await blockSeconds(t, timing.steps);
      if (i >= timing.warmupBlocks) speeds.push((timing.steps * batchSize) / seconds);
    }
    return median(speeds);
  } finally {
    t.dispose();
  }
}

/** Runs a timed body with one of our speed-ups switched off (tfjs's kernels, no BLAS, …). */
export type Wrap = (body: () => Promise<number>) => Promise<number>;

/** How many blocks are timed, after how many untimed ones, of how many steps each. */
export interface Timing {
  /** Timed blocks. */
  blocks: number;
  /** Untimed blocks before them. */
  warmupBlocks: number;
  /** Steps per block. */
  steps: number;
}

/**
 * The median samples per second of `variant` on wasm as set up, and inside `other` (with
 * tfjs's kernels, or without BLAS), their timed blocks interleaved (so that both see the same
 * load on a shared machine).
 *
 * @param variant The LeNet variant.
 * @param options The batch size, the timing, the wrapper that switches a speed-up off
 *   (`other`), and one that both sides run in (`ours`; for the pair's off side, `other`
 *   includes it).
 * @returns [ours, inside `other`], samples per second.
 *
 * @example
 * ```ts
 * import { pairedSamplesPerSecond } from "./trainer.ts";
 *
 * const timing = { blocks: 1, warmupBlocks: 0, steps: 1 };
 * const [ours, other] = await pairedSamplesPerSecond("none", {
 *   batchSize: 2,
 *   timing,
 *   other: (body) => body(),
 * });
 * console.log(ours > 0 && other > 0); // true
 * ```
 */
export async function pairedSamplesPerSecond(
  variant: TrainingVariant,
  options: { batchSize: number; timing: Timing; other: Wrap; ours?: Wrap },
): Promise<[number, number]> {
  const { batchSize, timing, other, ours: wrap = (body) => body() } = options;
  await initBackend("wasm");
  const ours = trainer(variant, batchSize);
  const theirs = trainer(variant, batchSize);
  try {
    return await interleaved([
      () => wrap(() => blockSeconds(ours, timing.steps)),
      () => other(() => blockSeconds(theirs, timing.steps)),
    ], { timing, batchSize });
  } finally {
    ours.dispose();
    theirs.dispose();
  }
}

/**
 * Median samples per second of two timed blocks (each returning its seconds) run alternately,
 * `timing.warmupBlocks` untimed pairs first.
 *
 * @param blocks [ours, theirs]: each runs one block and returns its seconds.
 * @param options The timing and the batch size.
 * @returns [ours, theirs], samples per second.
 *
 * @example
 * ```ts
 * import { interleaved } from "./trainer.ts";
 *
 * const timing = { blocks: 3, warmupBlocks: 1, steps: 2 };
 * const speeds = await interleaved([async () => 1, async () => 2], { timing, batchSize: 5 });
 * console.log(speeds); // [ 10, 5 ]
 * ```
 */
export async function interleaved(
  blocks: readonly [() => Promise<number>, () => Promise<number>],
  options: { timing: Timing; batchSize: number },
): Promise<[number, number]> {
  const [ours, theirs] = blocks;
  const { timing, batchSize } = options;
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
 *
 * @param variant The LeNet variant.
 * @param options The timing and a running PyTorch worker (bench/pytorch.ts).
 * @returns [ours, PyTorch's], samples per second.
 *
 * @example
 * ```ts ignore
 * import { startPyTorch } from "../pytorch.ts";
 * import { pairedWithPyTorch } from "./trainer.ts";
 *
 * const pytorch = await startPyTorch();
 * const timing = { blocks: 3, warmupBlocks: 1, steps: 32 };
 * console.log(await pairedWithPyTorch("tfjs", { timing, pytorch }));
 * ```
 */
export async function pairedWithPyTorch(
  variant: TrainingVariant,
  options: { timing: Timing; pytorch: PyTorchLeNet },
): Promise<[number, number]> {
  const { timing, pytorch } = options;
  await initBackend("wasm");
  const ours = trainer(variant, SMALL_BATCH);
  const theirVariant = variant === "none" ? "none" : "bn";
  try {
    return await interleaved([
      () => blockSeconds(ours, timing.steps),
      () => pytorch.block(theirVariant, SMALL_BATCH, timing.steps),
    ], { timing, batchSize: SMALL_BATCH });
  } finally {
    ours.dispose();
  }
}
