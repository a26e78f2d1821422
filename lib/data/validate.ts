/**
 * Dataset validation, at load and at the API boundary of training and evaluation: a bad label,
 * a short array, a non-finite pixel, an image size the model does not take, or a batch that a
 * batch normalization layer cannot normalize is reported up front, naming what, where and the
 * value, instead of surfacing as a tfjs shape error, a silent wrong result or a crash after
 * the last epoch.
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs";
import { batchSizes, type LastBatch } from "./batches.ts";
import type { Dataset } from "./dataset.ts";

/** Options of {@linkcode validateLabels}. */
export interface ValidateLabelsOptions {
  /** Number of classes; every label must be below it. */
  numClasses: number;
  /** Where the labels come from (a file path), shown in errors. */
  source: string;
}

/**
 * Checks that every label is a class index below `numClasses`.
 *
 * @param labels The labels.
 * @param options The class count and the labels' source.
 * @throws On the first label ≥ `numClasses`, naming the source, index and value.
 *
 * @example
 * ```ts
 * import { validateLabels } from "./validate.ts";
 * validateLabels(new Uint8Array([0, 9]), { numClasses: 10, source: "labels.idx" });
 * try {
 *   validateLabels(new Uint8Array([0, 12]), { numClasses: 10, source: "labels.idx" });
 * } catch (error) {
 *   console.log((error as Error).message);
 *   // labels.idx: label 1 is 12; expected a class index in [0, 9] (10 classes)
 * }
 * ```
 */
export function validateLabels(labels: ArrayLike<number>, options: ValidateLabelsOptions): void {
  const { numClasses, source } = options;
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i];
    if (!(Number.isInteger(label) && label >= 0 && label < numClasses)) {
      throw new Error(
        `${source}: label ${i} is ${label}; expected a class index in [0, ${
          numClasses - 1
        }] (${numClasses} classes)`,
      );
    }
  }
}

/**
 * Checks a dataset's own consistency: a positive integer count, height, width and class count;
 * image and label arrays holding at least `count` images; every label a class index; every pixel
 * finite.
 *
 * @param data The dataset.
 * @param what What the dataset is to the caller, at the start of errors (e.g. "train: the training set").
 * @throws Naming the field, or the image index, pixel and value.
 *
 * @example
 * ```ts
 * import { validateDataset } from "./validate.ts";
 * const data = { name: "toy", split: "test" as const, count: 2, height: 1, width: 1,
 *   numClasses: 2, images: new Float32Array([0, NaN]), labels: new Uint8Array([0, 1]) };
 * try {
 *   validateDataset(data, "evaluate: the dataset");
 * } catch (error) {
 *   console.log((error as Error).message);
 *   // evaluate: the dataset toy/test has pixel 0 of image 1 equal to NaN; expected finite values
 * }
 * ```
 */
export function validateDataset(data: Dataset, what: string): void {
  const where = `${what} ${data.name}/${data.split}`;
  if (data.count === 0) throw new Error(`${where} is empty (count 0); expected at least 1 image`);
  for (const key of ["count", "height", "width", "numClasses"] as const) {
    const value = data[key];
    if (!Number.isInteger(value) || value < 1) {
      throw new Error(`${where} has ${key} ${value}; expected a positive integer`);
    }
  }
  const pixels = data.height * data.width;
  if (!(data.images?.length >= data.count * pixels)) {
    throw new Error(
      `${where} has ${data.images?.length} pixel values, fewer than count × height × width = ` +
        `${data.count} × ${data.height} × ${data.width} = ${data.count * pixels}`,
    );
  }
  if (!(data.labels?.length >= data.count)) {
    throw new Error(
      `${where} has ${data.labels?.length} labels, fewer than its count ${data.count}`,
    );
  }
  validateLabels(data.labels.subarray(0, data.count), {
    numClasses: data.numClasses,
    source: where,
  });
  const images = data.images;
  const end = data.count * pixels;
  for (let i = 0; i < end; i++) {
    if (!Number.isFinite(images[i])) {
      throw new Error(
        `${where} has pixel ${i % pixels} of image ${Math.floor(i / pixels)} equal to ${
          images[i]
        }; expected finite values`,
      );
    }
  }
}

/**
 * Checks that a model takes a dataset's images and predicts its classes: the model's input is
 * `[batch, height, width, 1]` and its output has `numClasses` logits.
 *
 * @param model A model mapping NHWC images to logits.
 * @param data The dataset.
 * @param what The caller, at the start of errors (e.g. "train").
 * @throws Naming the expected and received shapes.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { checkModelFitsData } from "./validate.ts";
 * const model = tf.sequential({
 *   layers: [tf.layers.flatten({ inputShape: [2, 2, 1] }), tf.layers.dense({ units: 2 })],
 * });
 * const data = { name: "toy", split: "test" as const, count: 1, height: 3, width: 3,
 *   numClasses: 2, images: new Float32Array(9), labels: new Uint8Array([0]) };
 * try {
 *   checkModelFitsData(model, data, "evaluate");
 * } catch (error) {
 *   console.log((error as Error).message);
 *   // evaluate: the model takes images of [height, width, channels] = [2, 2, 1], received toy/test with [3, 3, 1]
 * }
 * model.dispose();
 * ```
 */
export function checkModelFitsData(model: tf.LayersModel, data: Dataset, what: string): void {
  const input = model.inputs[0]?.shape;
  if (input && input.length === 4) {
    const expected = input.slice(1);
    const received = [data.height, data.width, data.channels ?? 1];
    if (expected.some((d, i) => d !== null && d !== received[i])) {
      throw new Error(
        `${what}: the model takes images of [height, width, channels] = [${
          expected.map((d) => d ?? "any").join(", ")
        }], received ${data.name}/${data.split} with [${received.join(", ")}]`,
      );
    }
  }
  const output = model.outputs[0]?.shape;
  const classes = output?.at(-1);
  if (output && output.length === 2 && classes !== null && classes !== data.numClasses) {
    throw new Error(
      `${what}: the model outputs ${classes} logits, received ${data.name}/${data.split} with ` +
        `${data.numClasses} classes`,
    );
  }
}

/** Options of {@linkcode checkBatchesNormalizable}. */
export interface CheckBatchesOptions {
  /** Images per batch. */
  batchSize: number;
  /** What becomes of a final partial batch. @default {"merge"} */
  lastBatch?: LastBatch;
  /** The caller and the set, at the start of errors (e.g. "train: the training set"). */
  what: string;
}

/**
 * Checks, before any work, that every batch of an epoch can be normalized with batch statistics
 * by every batch normalization layer of a model (bnlab's `BatchNorm` and tfjs's
 * `BatchNormalization`): a layer whose input has one value per channel and image (after a dense
 * layer) cannot normalize a batch of one image, and a ghost batch layer needs batches that are
 * a multiple of its `virtualBatchSize`. Call it where BN layers run in training mode: training,
 * and evaluation with batch statistics.
 *
 * @param model The model.
 * @param count Images in the set.
 * @param options Batch size, last-batch policy and the set's name for errors.
 * @throws Naming the layer, the batch size met and the ways out.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { checkBatchesNormalizable } from "./validate.ts";
 * const model = tf.sequential({ layers: [
 *   tf.layers.dense({ units: 2, inputShape: [3] }), tf.layers.batchNormalization(),
 * ] });
 * checkBatchesNormalizable(model, 21, { batchSize: 10, what: "train: the training set" });
 * try {
 *   checkBatchesNormalizable(model, 21, { batchSize: 10, lastBatch: "keep", what: "train: the training set" });
 * } catch (error) {
 *   console.log((error as Error).message.split(";")[0]);
 *   // train: the training set of 21 images in batches of 10 (lastBatch "keep") has a batch of 1 image
 * }
 * model.dispose();
 * ```
 */
export function checkBatchesNormalizable(
  model: tf.LayersModel,
  count: number,
  options: CheckBatchesOptions,
): void {
  const { batchSize, lastBatch = "merge", what } = options;
  const sizes = [...new Set(batchSizes(count, { batchSize, lastBatch }))];
  const plan = `${what} of ${count} images in batches of ${batchSize} (lastBatch "${lastBatch}")`;
  if (sizes.length === 0) {
    throw new Error(
      `${plan} has no batch to run: fewer images than one batch; use lastBatch "merge" or ` +
        `"keep", or a smaller batch size`,
    );
  }
  for (const layer of _batchNormLayers(model)) {
    const perImage = _valuesPerChannelPerImage(layer);
    if (perImage === 1 && sizes.includes(1)) {
      const way = batchSize === 1
        ? "use a batch size of at least 2"
        : `use lastBatch "merge" (the default) or "drop", or another batch size`;
      throw new Error(
        `${plan} has a batch of 1 image, which ${layer.name} (one value per channel and image) ` +
          `cannot normalize with batch statistics; ${way}`,
      );
    }
    const v = (layer as unknown as { virtualBatchSize?: number | null }).virtualBatchSize;
    if (typeof v === "number") {
      const bad = sizes.find((b) => b !== v && b % v !== 0);
      if (bad !== undefined) {
        throw new Error(
          `${plan} has a batch of ${bad} images, not a multiple of ${layer.name}'s ` +
            `virtualBatchSize ${v}; use a batch size and lastBatch that give multiples of ${v}`,
        );
      }
    }
  }
}

function _batchNormLayers(model: tf.LayersModel): tf.layers.Layer[] {
  const found: tf.layers.Layer[] = [];
  const visit = (layers: tf.layers.Layer[]) => {
    for (const layer of layers) {
      const name = layer.getClassName();
      if (name === "BatchNorm" || name === "BatchNormalization") found.push(layer);
      const inner = (layer as unknown as { layers?: tf.layers.Layer[] }).layers;
      if (Array.isArray(inner)) visit(inner);
    }
  };
  visit(model.layers);
  return found;
}

/** Values per channel that one image gives a layer: its input size over its channel count. */
function _valuesPerChannelPerImage(layer: tf.layers.Layer): number | undefined {
  const node = (layer as unknown as { inboundNodes?: { inputShapes: unknown }[] }).inboundNodes
    ?.[0];
  let shape = node?.inputShapes as unknown[] | undefined;
  if (Array.isArray(shape?.[0])) shape = shape[0] as unknown[]; // one input: [[batch, ...]]
  if (!Array.isArray(shape) || shape.some((d, i) => i > 0 && typeof d !== "number")) {
    return undefined;
  }
  const rawAxis = layer.getConfig().axis as number | number[] | undefined;
  const axisValue = Array.isArray(rawAxis) ? rawAxis[0] : rawAxis ?? -1;
  const axis = axisValue < 0 ? shape.length + axisValue : axisValue;
  let product = 1;
  for (let i = 1; i < shape.length; i++) if (i !== axis) product *= shape[i] as number;
  return product;
}

/** Options of {@linkcode validateTrainingInputs}. */
export interface ValidateTrainingInputsOptions {
  /** Images per training batch. */
  batchSize: number;
  /** What becomes of a final partial batch. @default {"merge"} */
  lastBatch?: LastBatch;
  /** The evaluation set, when one is given. */
  test?: Dataset;
}

/**
 * Everything `train` checks before its first step: both datasets consistent
 * ({@linkcode validateDataset}), the model taking their images ({@linkcode checkModelFitsData}),
 * and every training batch normalizable ({@linkcode checkBatchesNormalizable}).
 *
 * @param model The model to train.
 * @param data The training set.
 * @param options Batch size, last-batch policy and the evaluation set.
 * @throws The first problem found, naming the set and the value.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { validateTrainingInputs } from "./validate.ts";
 * const model = tf.sequential({
 *   layers: [tf.layers.flatten({ inputShape: [1, 1, 1] }), tf.layers.dense({ units: 2 })],
 * });
 * const data = { name: "toy", split: "train" as const, count: 0, height: 1, width: 1,
 *   numClasses: 2, images: new Float32Array(0), labels: new Uint8Array(0) };
 * try {
 *   validateTrainingInputs(model, data, { batchSize: 2 });
 * } catch (error) {
 *   console.log((error as Error).message);
 *   // train: the training set toy/train is empty (count 0); expected at least 1 image
 * }
 * model.dispose();
 * ```
 */
export function validateTrainingInputs(
  model: tf.LayersModel,
  data: Dataset,
  options: ValidateTrainingInputsOptions,
): void {
  const { batchSize, lastBatch = "merge", test } = options;
  validateDataset(data, "train: the training set");
  checkModelFitsData(model, data, "train");
  if (test) {
    validateDataset(test, "train: the test set");
    checkModelFitsData(model, test, "train");
  }
  checkBatchesNormalizable(model, data.count, {
    batchSize,
    lastBatch,
    what: `train: the training set ${data.name}/${data.split}`,
  });
}
