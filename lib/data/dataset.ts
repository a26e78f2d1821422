/**
 * The in-memory form of an image classification split that every loader returns and every
 * model, batcher and validator takes.
 *
 * @module
 */

/** A split of an image classification dataset, in memory. */
export interface Dataset {
  /** `mnist`, `fashion-mnist`, or any name for a hand-made set. */
  name: string;
  /** Which split. */
  split: "train" | "test";
  /** `count × height × width × channels` values (pixels scaled to [0, 1]), row-major (NHWC). */
  images: Float32Array;
  /** One class index per image. */
  labels: Uint8Array;
  /** Number of images. */
  count: number;
  /** Image height. */
  height: number;
  /** Image width. */
  width: number;
  /** Channels per pixel (the last axis of `images`). @default {1} */
  channels?: number;
  /** Number of classes. */
  numClasses: number;
}
