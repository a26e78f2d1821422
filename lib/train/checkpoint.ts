/**
 * Checkpoints: a model's weights (trainable and running statistics), the optimizer's state and
 * a JSON state of the caller's, written so that a crash never leaves a half-written checkpoint.
 *
 * Layout of a checkpoint directory:
 * - `weights-<tag>.bin`: every model weight then every optimizer weight, float32 little-endian,
 *   in the order listed by the manifest;
 * - `checkpoint.json`: the manifest (names, shapes, the weights file) and the caller's state,
 *   written last and atomically, so it only ever names a complete weights file.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { writeFileAtomic, writeJsonAtomic } from "../output/atomic.ts";

/** Version of the manifest format. */
export const CHECKPOINT_FORMAT = 1;
const _MANIFEST = "checkpoint.json";

/** The manifest stored in `checkpoint.json`. */
export interface CheckpointManifest<S> {
  /** {@linkcode CHECKPOINT_FORMAT} at write time. */
  format: number;
  /** File name of the weights, relative to the directory. */
  weightsFile: string;
  /** Model weights in file order. */
  model: { name: string; shape: number[] }[];
  /** Optimizer weights in file order. */
  optimizer: { name: string; shape: number[] }[];
  /** The caller's state (epoch, history, …). */
  state: S;
}

/**
 * Saves a checkpoint.
 *
 * @param dir Directory of the checkpoint (created if needed).
 * @param model Model whose weights are saved.
 * @param optimizer Optimizer whose state is saved (SGD has none).
 * @param state JSON-serializable state of the caller's.
 * @param tag Distinguishes successive weight files, e.g. the epoch.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { loadCheckpoint, saveCheckpoint } from "./checkpoint.ts";
 * await tf.setBackend("cpu");
 * const model = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [2] })] });
 * const optimizer = tf.train.sgd(0.1);
 * const dir = await Deno.makeTempDir();
 * await saveCheckpoint(dir, model, optimizer, { epoch: 1 }, "1");
 * const state = await loadCheckpoint<{ epoch: number }>(dir, model, optimizer);
 * console.log(state?.epoch); // 1
 * ```
 */
export async function saveCheckpoint<S>(
  dir: string,
  model: tf.LayersModel,
  optimizer: tf.Optimizer,
  state: S,
  tag: string,
): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const optimizerWeights = await optimizer.getWeights();
  const modelValues = await Promise.all(model.weights.map((w) => w.read().data()));
  const optimizerValues = await Promise.all(optimizerWeights.map((w) => w.tensor.data()));
  // getWeights() returns a fresh "iter" scalar next to the optimizer's own variables.
  tf.dispose(optimizerWeights.filter((w) => w.name === "iter").map((w) => w.tensor));
  const values = [...modelValues, ...optimizerValues];
  const total = values.reduce((sum, v) => sum + v.length, 0);
  const buffer = new Float32Array(total);
  let offset = 0;
  for (const v of values) {
    buffer.set(v as Float32Array, offset);
    offset += v.length;
  }
  const weightsFile = `weights-${tag}.bin`;
  await writeFileAtomic(`${dir}/${weightsFile}`, new Uint8Array(buffer.buffer));
  const previous = await _readManifest<S>(dir);
  const manifest: CheckpointManifest<S> = {
    format: CHECKPOINT_FORMAT,
    weightsFile,
    model: model.weights.map((w) => ({ name: w.originalName, shape: w.shape as number[] })),
    optimizer: optimizerWeights.map((w) => ({ name: w.name, shape: w.tensor.shape })),
    state,
  };
  await writeJsonAtomic(`${dir}/${_MANIFEST}`, manifest);
  if (previous && previous.weightsFile !== weightsFile) {
    await Deno.remove(`${dir}/${previous.weightsFile}`).catch(() => {});
  }
}

/**
 * Loads a checkpoint into a model of the same architecture and an optimizer of the same kind.
 *
 * @param dir Directory of the checkpoint.
 * @param model Model whose weights are overwritten.
 * @param optimizer Optimizer whose state is overwritten.
 * @returns The caller's state, or `undefined` when the directory holds no checkpoint.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { loadCheckpoint } from "./checkpoint.ts";
 * await tf.setBackend("cpu");
 * const model = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [2] })] });
 * console.log(await loadCheckpoint(await Deno.makeTempDir(), model, tf.train.sgd(0.1))); // undefined
 * ```
 */
export async function loadCheckpoint<S>(
  dir: string,
  model: tf.LayersModel,
  optimizer: tf.Optimizer,
): Promise<S | undefined> {
  const manifest = await _readManifest<S>(dir);
  if (!manifest) return undefined;
  if (manifest.format !== CHECKPOINT_FORMAT) {
    throw new Error(
      `loadCheckpoint: ${dir}/${_MANIFEST} has format ${manifest.format}, expected ${CHECKPOINT_FORMAT}`,
    );
  }
  const weights = model.weights;
  const shapes = weights.map((w) => JSON.stringify(w.shape));
  const saved = manifest.model.map((w) => JSON.stringify(w.shape));
  if (JSON.stringify(shapes) !== JSON.stringify(saved)) {
    throw new Error(
      `loadCheckpoint: ${dir} holds weights of shapes [${saved.join(", ")}], ` +
        `but the model has [${shapes.join(", ")}]`,
    );
  }
  const path = `${dir}/${manifest.weightsFile}`;
  const bytes = await Deno.readFile(path);
  const all = [...manifest.model, ...manifest.optimizer];
  const expected = all.reduce((sum, w) => sum + _size(w.shape), 0) * 4;
  if (bytes.byteLength !== expected) {
    throw new Error(
      `loadCheckpoint: ${path} has ${bytes.byteLength} bytes, expected ${expected}`,
    );
  }
  const floats = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  let offset = 0;
  const take = (shape: number[]) => {
    const size = _size(shape);
    const t = tf.tensor(floats.slice(offset, offset + size), shape);
    offset += size;
    return t;
  };
  const modelTensors = manifest.model.map((w) => take(w.shape));
  model.setWeights(modelTensors);
  tf.dispose(modelTensors);
  if (manifest.optimizer.length > 0) {
    const optimizerTensors = manifest.optimizer.map((w) => ({
      name: w.name,
      tensor: take(w.shape),
    }));
    await optimizer.setWeights(optimizerTensors);
  }
  return manifest.state;
}

async function _readManifest<S>(dir: string): Promise<CheckpointManifest<S> | undefined> {
  try {
    return JSON.parse(await Deno.readTextFile(`${dir}/${_MANIFEST}`));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw new Error(`loadCheckpoint: cannot read ${dir}/${_MANIFEST}: ${(error as Error).message}`);
  }
}

function _size(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}
