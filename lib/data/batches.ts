/**
 * Seeded, shuffled mini-batches as tensors.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { Dataset } from "./mnist.ts";
import { shuffledIndices } from "./random.ts";

/** One mini-batch. Its tensors belong to the iterator: they are disposed when it advances. */
export interface Batch {
  /** Images `[b, height, width, channels]`. */
  xs: tf.Tensor4D;
  /** One-hot labels `[b, numClasses]`, float32. */
  ys: tf.Tensor2D;
  /** The labels as class indices. */
  labels: Uint8Array;
  /** Index of the batch within the epoch, from 0. */
  index: number;
}

/** Options of {@linkcode batches}. */
export interface BatchOptions {
  /** Images per batch. */
  batchSize: number;
  /** Seed of the shuffle. @default {0} */
  seed?: number;
  /** Shuffle the order (otherwise dataset order). @default {true} */
  shuffle?: boolean;
  /** Drop a last batch smaller than `batchSize`. @default {false} */
  dropRemainder?: boolean;
}

/**
 * The number of batches of an epoch.
 *
 * @param count Number of images.
 * @param batchSize Images per batch.
 * @param dropRemainder Whether a smaller last batch is dropped.
 * @returns Batches per epoch.
 *
 * @example
 * ```ts
 * import { numBatches } from "./batches.ts";
 * console.log(numBatches(45, 20, false), numBatches(45, 20, true)); // 3 2
 * ```
 */
export function numBatches(count: number, batchSize: number, dropRemainder = false): number {
  return dropRemainder ? Math.floor(count / batchSize) : Math.ceil(count / batchSize);
}

/**
 * Iterates over a dataset in seeded shuffled mini-batches.
 *
 * Each batch's tensors are disposed when the generator moves to the next batch or is closed
 * (`break`, `return()`), so the caller never disposes them and must not keep them.
 *
 * @param data The dataset.
 * @param options Batch size, seed, shuffle and remainder handling.
 * @returns A generator of batches.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { batches } from "./batches.ts";
 * await tf.setBackend("cpu");
 * const data = { name: "toy", split: "train" as const, count: 3, height: 1, width: 1,
 *   numClasses: 2, images: new Float32Array([0, 0.5, 1]), labels: new Uint8Array([0, 1, 1]) };
 * for (const batch of batches(data, { batchSize: 2, shuffle: false })) {
 *   console.log(batch.xs.shape); // [ 2, 1, 1, 1 ] then [ 1, 1, 1, 1 ]
 * }
 * ```
 */
export function* batches(data: Dataset, options: BatchOptions): Generator<Batch> {
  const { batchSize, seed = 0, shuffle = true, dropRemainder = false } = options;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new Error(`batches: batchSize must be a positive integer, received ${batchSize}`);
  }
  const channels = data.channels ?? 1;
  const pixels = data.height * data.width * channels;
  const order = shuffle ? shuffledIndices(data.count, seed) : null;
  const total = numBatches(data.count, batchSize, dropRemainder);
  for (let index = 0; index < total; index++) {
    const start = index * batchSize;
    const size = Math.min(batchSize, data.count - start);
    const images = new Float32Array(size * pixels);
    const labels = new Uint8Array(size);
    for (let i = 0; i < size; i++) {
      const source = order ? order[start + i] : start + i;
      images.set(data.images.subarray(source * pixels, (source + 1) * pixels), i * pixels);
      labels[i] = data.labels[source];
    }
    const xs = tf.tensor4d(images, [size, data.height, data.width, channels]);
    const ys = tf.tidy(() =>
      tf.oneHot(tf.tensor1d(labels, "int32"), data.numClasses).toFloat() as tf.Tensor2D
    );
    try {
      yield { xs, ys, labels, index };
    } finally {
      xs.dispose();
      ys.dispose();
    }
  }
}
