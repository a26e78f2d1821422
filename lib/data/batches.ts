/**
 * Seeded, shuffled mini-batches as tensors.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { Dataset } from "./dataset.ts";
import { shuffledIndices } from "./random.ts";
import type { Tensor2D, Tensor4D } from "../tfjs_types.ts";

/** One mini-batch. Its tensors belong to the iterator: they are disposed when it advances. */
export interface Batch {
  /** Images `[b, height, width, channels]`. */
  xs: Tensor4D;
  /** One-hot labels `[b, numClasses]`, float32. */
  ys: Tensor2D;
  /** The labels as class indices. */
  labels: Uint8Array;
  /** Index of the batch within the epoch, from 0. */
  index: number;
}

/**
 * What becomes of the images left over when `batchSize` does not divide the image count:
 * - `merge`: they join the epoch's last full batch, which then holds between `batchSize` and
 *   `2·batchSize − 1` images; every image is used and no batch is smaller than `batchSize`
 *   (a set smaller than `batchSize` is one batch of all its images);
 * - `drop`: they are left out of the epoch (PyTorch's `drop_last`); with shuffling, different
 *   images are left out each epoch;
 * - `keep`: they form a last, smaller batch (as few as one image).
 *
 * When `batchSize` divides the count, the three give the same batches.
 */
export type LastBatch = "merge" | "drop" | "keep";

/** Every {@linkcode LastBatch} policy. */
export const LAST_BATCH_POLICIES: readonly LastBatch[] = ["merge", "drop", "keep"];

/** Options of {@linkcode batches}. */
export interface BatchOptions {
  /** Images per batch. */
  batchSize: number;
  /** Seed of the shuffle. @default {0} */
  seed?: number;
  /** Shuffle the order (otherwise dataset order). @default {true} */
  shuffle?: boolean;
  /** What becomes of a final partial batch. @default {"merge"} */
  lastBatch?: LastBatch;
}

/** Options of {@linkcode numBatches} and {@linkcode batchSizes}. */
export interface BatchPlanOptions {
  /** Images per batch. */
  batchSize: number;
  /** What becomes of a final partial batch. @default {"merge"} */
  lastBatch?: LastBatch;
}

/**
 * The sizes of an epoch's batches, in order.
 *
 * With `count = q·batchSize + r` (0 ≤ r < batchSize): `merge` gives q − 1 batches of
 * `batchSize` then one of `batchSize + r` (one batch of `count` when q = 0); `drop` gives q
 * batches of `batchSize`; `keep` gives q batches of `batchSize` then one of r when r > 0.
 *
 * @param count Number of images.
 * @param options Batch size and the last-batch policy.
 * @returns One size per batch (empty when `drop` leaves nothing).
 * @throws If `batchSize` is not a positive integer, `count` not a non-negative integer, or
 * `lastBatch` not a policy.
 *
 * @example
 * ```ts
 * import { batchSizes } from "./batches.ts";
 * console.log(batchSizes(45, { batchSize: 20 })); // [ 20, 25 ]
 * console.log(batchSizes(45, { batchSize: 20, lastBatch: "drop" })); // [ 20, 20 ]
 * console.log(batchSizes(45, { batchSize: 20, lastBatch: "keep" })); // [ 20, 20, 5 ]
 * ```
 */
export function batchSizes(count: number, options: BatchPlanOptions): number[] {
  const { batchSize, lastBatch = "merge" } = options;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new Error(`batches: batchSize must be a positive integer, received ${batchSize}`);
  }
  if (!Number.isInteger(count) || count < 0) {
    throw new Error(`batches: count must be a non-negative integer, received ${count}`);
  }
  if (!LAST_BATCH_POLICIES.includes(lastBatch)) {
    throw new Error(
      `batches: lastBatch must be one of ${LAST_BATCH_POLICIES.join(", ")}, received ${
        JSON.stringify(lastBatch)
      }`,
    );
  }
  const full = Math.floor(count / batchSize);
  const rest = count - full * batchSize;
  const sizes = new Array<number>(full).fill(batchSize);
  if (rest === 0 || lastBatch === "drop") return sizes;
  if (lastBatch === "keep" || full === 0) return [...sizes, rest];
  sizes[full - 1] += rest;
  return sizes;
}

/**
 * The number of batches of an epoch.
 *
 * @param count Number of images.
 * @param options Batch size and the last-batch policy.
 * @returns Batches per epoch.
 *
 * @example
 * ```ts
 * import { numBatches } from "./batches.ts";
 * console.log(numBatches(45, { batchSize: 20 }), numBatches(45, { batchSize: 20, lastBatch: "keep" })); // 2 3
 * ```
 */
export function numBatches(count: number, options: BatchPlanOptions): number {
  return batchSizes(count, options).length;
}

/**
 * Iterates over a dataset in seeded shuffled mini-batches.
 *
 * Each batch's tensors are disposed when the generator moves to the next batch or is closed
 * (`break`, `return()`), so the caller never disposes them and must not keep them. The batch
 * sizes are {@linkcode batchSizes}'s.
 *
 * @param data The dataset.
 * @param options Batch size, seed, shuffle and the last-batch policy.
 * @returns A generator of batches.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { batches } from "./batches.ts";
 * await tf.setBackend("cpu");
 * const data = { name: "toy", split: "train" as const, count: 3, height: 1, width: 1,
 *   numClasses: 2, images: new Float32Array([0, 0.5, 1]), labels: new Uint8Array([0, 1, 1]) };
 * for (const batch of batches(data, { batchSize: 2, shuffle: false, lastBatch: "keep" })) {
 *   console.log(batch.xs.shape); // [ 2, 1, 1, 1 ] then [ 1, 1, 1, 1 ]
 * }
 * ```
 */
export function* batches(data: Dataset, options: BatchOptions): Generator<Batch> {
  const { seed = 0, shuffle = true } = options;
  const sizes = batchSizes(data.count, options);
  const channels = data.channels ?? 1;
  const pixels = data.height * data.width * channels;
  const order = shuffle ? shuffledIndices(data.count, seed) : null;
  let start = 0;
  for (const [index, size] of sizes.entries()) {
    const images = new Float32Array(size * pixels);
    const labels = new Uint8Array(size);
    for (let i = 0; i < size; i++) {
      const source = order ? order[start + i] : start + i;
      images.set(data.images.subarray(source * pixels, (source + 1) * pixels), i * pixels);
      labels[i] = data.labels[source];
    }
    const xs = tf.tensor4d(images, [size, data.height, data.width, channels]);
    const ys = tf.tensor2d(_oneHot(labels, data.numClasses), [size, data.numClasses]);
    try {
      yield { xs, ys, labels, index };
    } finally {
      xs.dispose();
      ys.dispose();
    }
    start += size;
  }
}

/** One-hot rows as `tf.oneHot(labels, classes)` cast to float32 gives them, made in place. */
function _oneHot(labels: Uint8Array, classes: number): Float32Array {
  const values = new Float32Array(labels.length * classes);
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] < classes) values[i * classes + labels[i]] = 1;
  }
  return values;
}
