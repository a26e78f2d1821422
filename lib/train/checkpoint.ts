/**
 * Checkpoints: a model's weights (trainable and running statistics), the optimizer's whole state
 * and a JSON state of the caller's, written so that a crash never leaves a half-written
 * checkpoint, and verified on load so that a corrupted or mismatched one is refused.
 *
 * Layout of a checkpoint directory:
 * - `weights-<tag>.bin`: every model weight, then every optimizer weight (`getWeights()`), then
 *   the optimizer's variables that `getWeights()` leaves out (Adam's `accBeta1`, `accBeta2`),
 *   float32 little-endian, in the order listed by the manifest;
 * - `checkpoint.json`: the manifest (names, shapes, the weights file and its SHA-256, the model's
 *   layer classes, the optimizer's class, the run's config) and the caller's state, written last
 *   and atomically, so it only ever names a complete weights file. It carries the SHA-256 of its
 *   own other fields.
 *
 * A finished run keeps only the manifest ({@linkcode dropCheckpointWeights}): its state (the
 * per-epoch records) stays readable, its weights are gone.
 *
 * Format 1 checkpoints (no checksums, layer classes, optimizer class, extra optimizer variables
 * or config) still load: nothing is verified beyond shapes and byte count, and Adam's
 * `accBeta1`/`accBeta2` are recomputed from the step count as tfjs does, which is not
 * bit-for-bit the product an uninterrupted run accumulates.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { writeFileAtomic, writeJsonAtomic } from "../output/atomic.ts";

/** Version of the manifest format written. */
export const CHECKPOINT_FORMAT = 2;
/** The oldest manifest format that loads (see the module doc for what it lacks). */
export const CHECKPOINT_LEGACY_FORMAT = 1;
const _MANIFEST = "checkpoint.json";

/** A config: any JSON object, compared field by field on load. */
export type CheckpointConfig = Record<string, unknown>;

/** The manifest stored in `checkpoint.json`. */
export interface CheckpointManifest<S> {
  /** {@linkcode CHECKPOINT_FORMAT} at write time. */
  format: number;
  /** File name of the weights, relative to the directory; `null` once the weights are dropped. */
  weightsFile: string | null;
  /** SHA-256 (hex) of each data file, by name. Format 2. */
  sha256?: Record<string, string>;
  /** Class names of the model's layers, in order (tells BN variants apart). Format 2. */
  layers?: string[];
  /** Class name of the optimizer (`SGD`, `Momentum`, `Adam`, …). Format 2. */
  optimizerClass?: string;
  /** Model weights in file order. */
  model: { name: string; shape: number[] }[];
  /** Optimizer weights (`getWeights()`) in file order. */
  optimizer: { name: string; shape: number[] }[];
  /** Optimizer variables outside `getWeights()`, by property name, in file order. Format 2. */
  optimizerExtras?: { name: string; shape: number[] }[];
  /** The run's resolved config, when the caller gave one. Format 2. */
  config?: CheckpointConfig;
  /** The caller's state (epoch, history, …). */
  state: S;
  /** SHA-256 (hex) of `JSON.stringify` of the other fields. Format 2. */
  manifestSha256?: string;
}

/** Options of {@linkcode saveCheckpoint}. */
export interface SaveCheckpointOptions<S> {
  /** Model whose weights are saved. */
  model: tf.LayersModel;
  /** Optimizer whose state is saved. */
  optimizer: tf.Optimizer;
  /** JSON-serializable state of the caller's. */
  state: S;
  /** Distinguishes successive weight files, e.g. the epoch. */
  tag: string;
  /** The run's resolved config, checked by {@linkcode loadCheckpoint}. @default {none} */
  config?: CheckpointConfig;
}

/**
 * Saves a checkpoint.
 *
 * @param dir Directory of the checkpoint (created if needed).
 * @param options Model, optimizer, state, tag and config.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { loadCheckpoint, saveCheckpoint } from "./checkpoint.ts";
 * await tf.setBackend("cpu");
 * const model = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [2] })] });
 * const optimizer = tf.train.sgd(0.1);
 * const dir = await Deno.makeTempDir();
 * await saveCheckpoint(dir, { model, optimizer, state: { epoch: 1 }, tag: "1", config: { lr: 0.1 } });
 * const state = await loadCheckpoint<{ epoch: number }>(dir, { model, optimizer, config: { lr: 0.1 } });
 * console.log(state?.epoch); // 1
 * ```
 */
export async function saveCheckpoint<S>(
  dir: string,
  options: SaveCheckpointOptions<S>,
): Promise<void> {
  const { model, optimizer, state, tag, config } = options;
  await Deno.mkdir(dir, { recursive: true });
  const optimizerWeights = await optimizer.getWeights();
  const extras = _optimizerExtras(optimizer, optimizerWeights.map((w) => w.tensor));
  const modelValues = await Promise.all(model.weights.map((w) => w.read().data()));
  const optimizerValues = await Promise.all(optimizerWeights.map((w) => w.tensor.data()));
  const extraValues = await Promise.all(extras.map(([, v]) => v.data()));
  // getWeights() returns a fresh "iter" scalar next to the optimizer's own variables.
  tf.dispose(optimizerWeights.filter((w) => w.name === "iter").map((w) => w.tensor));
  const values = [...modelValues, ...optimizerValues, ...extraValues];
  const total = values.reduce((sum, v) => sum + v.length, 0);
  const buffer = new Float32Array(total);
  let offset = 0;
  for (const v of values) {
    buffer.set(v as Float32Array, offset);
    offset += v.length;
  }
  const bytes = new Uint8Array(buffer.buffer);
  const weightsFile = `weights-${tag}.bin`;
  await writeFileAtomic(`${dir}/${weightsFile}`, bytes);
  const previous = await _readManifest<S>(dir);
  const body: CheckpointManifest<S> = {
    format: CHECKPOINT_FORMAT,
    weightsFile,
    sha256: { [weightsFile]: await _sha256(bytes) },
    layers: model.layers.map((l) => l.getClassName()),
    optimizerClass: optimizer.getClassName(),
    model: model.weights.map((w) => ({ name: w.originalName, shape: w.shape as number[] })),
    optimizer: optimizerWeights.map((w) => ({ name: w.name, shape: w.tensor.shape })),
    optimizerExtras: extras.map(([name, v]) => ({ name, shape: v.shape })),
    ...(config === undefined ? {} : { config }),
    state,
  };
  await _writeManifest(dir, body);
  if (previous?.weightsFile && previous.weightsFile !== weightsFile) {
    await Deno.remove(`${dir}/${previous.weightsFile}`).catch(() => {});
  }
}

/** Options of {@linkcode loadCheckpoint}. */
export interface LoadCheckpointOptions {
  /** Model whose weights are overwritten; its layer classes must match the checkpoint's. */
  model: tf.LayersModel;
  /** Optimizer whose state is overwritten; of the checkpoint's class. */
  optimizer: tf.Optimizer;
  /**
   * The config the caller runs with; a checkpoint saved with a different one is refused,
   * naming the differing fields. A checkpoint saved without a config is not checked.
   * @default {not checked}
   */
  config?: CheckpointConfig;
  /**
   * Values of config fields that a checkpoint saved before the field existed ran with: a field
   * absent from the saved config is compared as this value.
   * @default {none: an absent field differs}
   */
  savedDefaults?: CheckpointConfig;
}

/**
 * Loads a checkpoint into a model of the same architecture and an optimizer of the same kind,
 * after checking the manifest's and the weights file's SHA-256, the layer classes (another BN
 * variant is refused), the optimizer class and the config.
 *
 * @param dir Directory of the checkpoint.
 * @param options Model, optimizer and the expected config.
 * @returns The caller's state, or `undefined` when the directory holds no checkpoint.
 * @throws On a corrupted file (naming it), a mismatch (naming what differs), or a checkpoint
 * whose weights were dropped.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { loadCheckpoint } from "./checkpoint.ts";
 * await tf.setBackend("cpu");
 * const model = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [2] })] });
 * const optimizer = tf.train.sgd(0.1);
 * console.log(await loadCheckpoint(await Deno.makeTempDir(), { model, optimizer })); // undefined
 * ```
 */
export async function loadCheckpoint<S>(
  dir: string,
  options: LoadCheckpointOptions,
): Promise<S | undefined> {
  const { model, optimizer, config, savedDefaults } = options;
  const manifest = await _readManifest<S>(dir);
  if (!manifest) return undefined;
  const where = `${dir}/${_MANIFEST}`;
  if (manifest.format !== CHECKPOINT_FORMAT && manifest.format !== CHECKPOINT_LEGACY_FORMAT) {
    throw new Error(
      `loadCheckpoint: ${where} has format ${manifest.format}, expected ${CHECKPOINT_LEGACY_FORMAT} ` +
        `or ${CHECKPOINT_FORMAT}`,
    );
  }
  if (manifest.format === CHECKPOINT_FORMAT) {
    const { manifestSha256, ...body } = manifest;
    const actual = await _sha256(new TextEncoder().encode(JSON.stringify(body)));
    if (actual !== manifestSha256) {
      throw new Error(
        `loadCheckpoint: ${where} is corrupted: the SHA-256 of its fields is ${actual}, it ` +
          `records ${manifestSha256}`,
      );
    }
  }
  if (manifest.weightsFile === null) {
    throw new Error(
      `loadCheckpoint: ${where} belongs to a finished run whose weights were removed; ` +
        `expected a checkpoint with a weights file`,
    );
  }
  if (manifest.layers) {
    const layers = model.layers.map((l) => l.getClassName());
    if (JSON.stringify(layers) !== JSON.stringify(manifest.layers)) {
      const i = layers.findIndex((name, k) => name !== manifest.layers![k]);
      const at = i < 0 ? layers.length : i;
      throw new Error(
        `loadCheckpoint: ${where} was saved from a model whose layer ${at} is ` +
          `${manifest.layers[at] ?? "absent"}, but the model's is ${layers[at] ?? "absent"} ` +
          `(another normalization variant or architecture); layers saved: ` +
          `[${manifest.layers.join(", ")}], received [${layers.join(", ")}]`,
      );
    }
  }
  if (manifest.optimizerClass && manifest.optimizerClass !== optimizer.getClassName()) {
    throw new Error(
      `loadCheckpoint: ${where} holds the state of a ${manifest.optimizerClass} optimizer, ` +
        `received a ${optimizer.getClassName()} optimizer`,
    );
  }
  if (config && manifest.config) {
    _checkConfig(where, { ...savedDefaults, ...manifest.config }, config);
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
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (error) {
    throw new Error(`loadCheckpoint: cannot read ${path}: ${(error as Error).message}`);
  }
  const extras = manifest.optimizerExtras ?? [];
  const all = [...manifest.model, ...manifest.optimizer, ...extras];
  const expected = all.reduce((sum, w) => sum + _size(w.shape), 0) * 4;
  if (bytes.byteLength !== expected) {
    throw new Error(
      `loadCheckpoint: ${path} has ${bytes.byteLength} bytes, expected ${expected}`,
    );
  }
  const recorded = manifest.sha256?.[manifest.weightsFile];
  if (manifest.format === CHECKPOINT_FORMAT) {
    const actual = await _sha256(bytes);
    if (actual !== recorded) {
      throw new Error(
        `loadCheckpoint: ${path} is corrupted: its SHA-256 is ${actual}, ${where} records ` +
          `${recorded}`,
      );
    }
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
  const optimizerTensors = manifest.optimizer.map((w) => ({ name: w.name, tensor: take(w.shape) }));
  if (optimizerTensors.length > 0) await optimizer.setWeights(optimizerTensors);
  tf.dispose(optimizerTensors.map((w) => w.tensor));
  const own = new Map(_optimizerExtras(optimizer, []));
  for (const { name, shape } of extras) {
    const target = own.get(name);
    const value = take(shape);
    if (!target || JSON.stringify(target.shape) !== JSON.stringify(shape)) {
      value.dispose();
      throw new Error(
        `loadCheckpoint: ${where} holds optimizer variable ${name} of shape [${shape}], ` +
          `which the ${optimizer.getClassName()} optimizer does not have`,
      );
    }
    target.assign(value);
    value.dispose();
  }
  return manifest.state;
}

/**
 * Removes a checkpoint's weights, keeping its manifest (the caller's state, e.g. a run's
 * per-epoch records) readable; for a run that has finished and will not resume. The manifest
 * then names no weights file, and {@linkcode loadCheckpoint} refuses it.
 *
 * @param dir Directory of the checkpoint; nothing happens when it holds none.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { dropCheckpointWeights, saveCheckpoint } from "./checkpoint.ts";
 * await tf.setBackend("cpu");
 * const model = tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [2] })] });
 * const dir = await Deno.makeTempDir();
 * await saveCheckpoint(dir, { model, optimizer: tf.train.sgd(0.1), state: { epoch: 1 }, tag: "1" });
 * await dropCheckpointWeights(dir);
 * console.log([...Deno.readDirSync(dir)].map((e) => e.name)); // [ "checkpoint.json" ]
 * ```
 */
export async function dropCheckpointWeights(dir: string): Promise<void> {
  const manifest = await _readManifest<unknown>(dir);
  if (!manifest) return;
  if (manifest.weightsFile !== null) {
    const { manifestSha256: _, ...body } = manifest;
    await _writeManifest(dir, {
      ...body,
      format: CHECKPOINT_FORMAT,
      weightsFile: null,
      sha256: {},
    });
  }
  for await (const entry of Deno.readDir(dir)) {
    if (/^weights-.*\.bin$|^\.weights-.*\.tmp$/.test(entry.name)) {
      await Deno.remove(`${dir}/${entry.name}`).catch(() => {});
    }
  }
}

async function _writeManifest<S>(dir: string, manifest: CheckpointManifest<S>): Promise<void> {
  const { manifestSha256: _, ...body } = manifest;
  const manifestSha256 = await _sha256(new TextEncoder().encode(JSON.stringify(body)));
  await writeJsonAtomic(`${dir}/${_MANIFEST}`, { ...body, manifestSha256 });
}

/** Names the fields where `saved` and `received` differ, or passes. */
function _checkConfig(where: string, saved: CheckpointConfig, received: CheckpointConfig) {
  const keys = [...new Set([...Object.keys(saved), ...Object.keys(received)])].sort();
  const show = (v: unknown) => v === undefined ? "absent" : JSON.stringify(v);
  const differing = keys.filter((k) => JSON.stringify(saved[k]) !== JSON.stringify(received[k]));
  if (differing.length > 0) {
    throw new Error(
      `loadCheckpoint: ${where} was saved with a different config: ` +
        differing.map((k) => `${k} saved ${show(saved[k])}, received ${show(received[k])}`)
          .join("; ") +
        `; resume with the config the run started with`,
    );
  }
}

/** The optimizer's own variables that `getWeights()` leaves out, sorted by property name. */
function _optimizerExtras(optimizer: tf.Optimizer, listed: tf.Tensor[]): [string, tf.Variable][] {
  const ids = new Set(listed.map((t) => t.id));
  return Object.entries(optimizer as unknown as Record<string, unknown>)
    .filter((entry): entry is [string, tf.Variable] =>
      entry[1] instanceof tf.Variable && !ids.has(entry[1].id)
    )
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

async function _sha256(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as BufferSource);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function _readManifest<S>(dir: string): Promise<CheckpointManifest<S> | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(`${dir}/${_MANIFEST}`);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw new Error(`loadCheckpoint: cannot read ${dir}/${_MANIFEST}: ${(error as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new Error(
      `loadCheckpoint: ${dir}/${_MANIFEST} is corrupted: ${(error as Error).message}`,
    );
  }
}

function _size(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}
