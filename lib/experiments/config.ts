/**
 * Experiment configuration: one block of documented defaults, named presets that override a
 * few fields, and command-line style overrides. Unknown keys and bad values are rejected.
 *
 * @module
 */
import { type Activation, ACTIVATIONS, type Init, INITS } from "../models/lenet.ts";
import { type Normalization, NORMALIZATIONS } from "../models/lenet.ts";
import { LOSSES, type LossName } from "../train/losses.ts";
import { BATCH_NORM_GRADIENTS, type BatchNormGradient } from "../norms/batch_norm_ops.ts";
import { type OptimizerName, OPTIMIZERS } from "../train/loop.ts";

/** Every field of an experiment, resolved. */
export interface ExperimentConfig {
  /** Name of the preset the config started from. */
  preset: string;
  /** `mnist` or `fashion-mnist`. */
  dataset: "mnist" | "fashion-mnist";
  /** Which normalization variants to train: `none`, `custom` (bnlab's layer), `tfjs`. */
  variants: Normalization[];
  /** Passes over the training images. */
  epochs: number;
  /** Images per SGD step. */
  batchSize: number;
  /** Learning rate. */
  lr: number;
  /** `sgd`, `momentum` (0.9) or `adam`. */
  optimizer: OptimizerName;
  /** Training loss: `xent` (softmax cross-entropy) or `mse` (softmax vs one-hot). */
  loss: LossName;
  /** Hidden activation. */
  activation: Activation;
  /** Weight initialization: `pytorch` (PyTorch's default), `glorot` (tfjs's) or `he`. */
  init: Init;
  /** Running-average momentum of the `custom` layer, read in `momentumConvention`. */
  momentum: number;
  /**
   * How `momentum` is read. Keras form: running = momentum·running + (1−momentum)·batch;
   * PyTorch form: running = (1−momentum)·running + momentum·batch.
   */
  momentumConvention: "keras" | "pytorch";
  /**
   * Momentum of the `tfjs` layer, always in the Keras form. The default 0.9 is PyTorch's
   * default 0.1 (the report's framework BN); tfjs's own default is 0.99.
   */
  tfjsMomentum: number;
  /** BN epsilon, added to the variance before the square root. */
  epsilon: number;
  /**
   * Backward pass of the `custom` layer: `analytic` (the true gradient), `autodiff` (the same,
   * by tfjs), or `constant-statistics` (batch statistics detached, as in a flawed hand-written
   * layer: dx = γ/√(σ²+ε)·dy).
   */
  bnGradient: BatchNormGradient;
  /** Training images used (the first N); `null` means all. */
  limit: number | null;
  /** Test images used (the first N); `null` means all. */
  testLimit: number | null;
  /** First seed; runs use seeds seed, seed+1, …, seed+seeds−1. */
  seed: number;
  /** Seeds per variant. */
  seeds: number;
  /** tfjs backend: `wasm`, `cpu` or `webgpu`. */
  backend: "wasm" | "cpu" | "webgpu";
  /** Read the loss back every this many steps (a point of the loss curve). */
  logEvery: number;
  /** Images per evaluation pass. */
  evalBatchSize: number;
}

/** The documented defaults every preset starts from. */
export const DEFAULTS: Readonly<ExperimentConfig> = Object.freeze({
  preset: "defaults",
  dataset: "mnist",
  variants: ["none", "custom", "tfjs"],
  epochs: 20,
  batchSize: 20,
  lr: 0.001,
  optimizer: "sgd",
  loss: "xent",
  activation: "relu",
  init: "pytorch",
  momentum: 0.1,
  momentumConvention: "pytorch",
  tfjsMomentum: 0.9,
  epsilon: 1e-5,
  bnGradient: "analytic",
  limit: null,
  testLimit: null,
  seed: 0,
  seeds: 1,
  backend: "wasm",
  logEvery: 100,
  evalBatchSize: 500,
}) as Readonly<ExperimentConfig>;

/**
 * What each field means, for `--help`: one line, with the allowed values of a choice (taken
 * from the same lists {@linkcode validateConfig} checks against).
 */
export const FIELD_HELP: Readonly<Record<Exclude<keyof ExperimentConfig, "preset">, string>> =
  Object.freeze({
    dataset: "mnist | fashion-mnist",
    variants: `comma-separated, of ${NORMALIZATIONS.join(", ")} (custom: bnlab's BN)`,
    epochs: "passes over the training images",
    batchSize: "images per SGD step",
    lr: "learning rate",
    optimizer: `${OPTIMIZERS.join(" | ")} (momentum: 0.9)`,
    loss: `${LOSSES.join(" | ")} (softmax cross-entropy, or softmax vs one-hot MSE)`,
    activation: ACTIVATIONS.join(" | "),
    init: `${INITS.join(" | ")} (pytorch: PyTorch's default, glorot: tfjs's)`,
    momentum: "bnlab BN's running-average momentum, in --momentum-convention's form",
    momentumConvention: "keras (m·running + (1−m)·batch) | pytorch ((1−m)·running + m·batch)",
    tfjsMomentum: "tfjs BN's momentum, Keras form (0.9 = PyTorch's 0.1)",
    epsilon: "BN epsilon, added to the variance",
    bnGradient: `${BATCH_NORM_GRADIENTS.join(" | ")} (bnlab BN's backward pass)`,
    limit: "training images used, the first N (null: all)",
    testLimit: "test images used, the first N (null: all)",
    seed: "first seed",
    seeds: "seeds per variant (tables get mean and std)",
    backend: "wasm | cpu | webgpu",
    logEvery: "steps between points of the loss curve",
    evalBatchSize: "images per evaluation pass",
  });

/** A named preset: a short description and the fields it changes. */
export interface Preset {
  /** One line for `--help`. */
  description: string;
  /** Fields that differ from {@linkcode DEFAULTS}. */
  overrides: Partial<ExperimentConfig>;
}

/** The presets `deno task train` knows; `quick` is the default. */
export const PRESETS: Readonly<Record<string, Preset>> = Object.freeze({
  smoke: {
    description: "all variants on 2,000 images, 1 epoch (under a minute): checks the plumbing",
    overrides: { limit: 2000, testLimit: 1000, epochs: 1, batchSize: 20, lr: 0.01, logEvery: 10 },
  },
  quick: {
    description: "a real run on 10,000 images, 3 epochs, lr 0.01 (about 10-15 minutes on 2 cores)",
    overrides: { limit: 10000, epochs: 3, lr: 0.01, logEvery: 25 },
  },
  report: {
    description:
      "the report's protocol and pattern: 60k images, 20 epochs, batch 20, SGD lr 0.001, " +
      "sigmoid (no BN stays at ln 10); bnlab's BN with the report's momentum 0.1 in the Keras form, " +
      "tfjs's BN with PyTorch's default (Keras 0.9)",
    overrides: {
      epochs: 20,
      batchSize: 20,
      lr: 0.001,
      activation: "sigmoid",
      momentum: 0.1,
      momentumConvention: "keras",
      tfjsMomentum: 0.9,
    },
  },
  "report-b512": {
    description:
      "the report's protocol at the batch size its own log shows (14848 = 29·512 images at the " +
      "first logged line): 60k images, 20 epochs, batch 512, SGD lr 0.001, sigmoid; momenta as `report`",
    overrides: {
      epochs: 20,
      batchSize: 512,
      lr: 0.001,
      activation: "sigmoid",
      momentum: 0.1,
      momentumConvention: "keras",
      tfjsMomentum: 0.9,
      logEvery: 10,
    },
  },
  modern: {
    description: "the report's protocol with ReLU activations, as a modern LeNet is built, " +
      "and the same momenta as `report`",
    overrides: {
      epochs: 20,
      batchSize: 20,
      lr: 0.001,
      activation: "relu",
      momentum: 0.1,
      momentumConvention: "keras",
      tfjsMomentum: 0.9,
    },
  },
});

/** The preset used when none is named. */
export const DEFAULT_PRESET = "quick";

/**
 * Resolves a config: defaults, then a preset, then overrides, validated.
 *
 * @param preset Name of a preset in {@linkcode PRESETS}.
 * @param overrides Fields to change; unknown keys are rejected.
 * @returns A complete, validated config.
 *
 * @example
 * ```ts
 * import { resolveConfig } from "./config.ts";
 * const config = resolveConfig("smoke", { epochs: 2 });
 * console.log(config.epochs, config.limit); // 2 2000
 * ```
 */
export function resolveConfig(
  preset: string = DEFAULT_PRESET,
  overrides: Partial<ExperimentConfig> = {},
): ExperimentConfig {
  const named = PRESETS[preset];
  if (!named) {
    throw new Error(
      `config: preset must be one of ${Object.keys(PRESETS).join(", ")}, received ${
        JSON.stringify(preset)
      }`,
    );
  }
  _checkKeys(named.overrides, `preset ${preset}`);
  _checkKeys(overrides, "overrides");
  const config = { ...DEFAULTS, ...named.overrides, ...overrides, preset } as ExperimentConfig;
  validateConfig(config);
  return config;
}

/**
 * Checks every field of a config, throwing an error that names the field, what was
 * received and what is allowed.
 *
 * @param config The config to check.
 *
 * @example
 * ```ts
 * import { DEFAULTS, validateConfig } from "./config.ts";
 * validateConfig({ ...DEFAULTS }); // no error
 * ```
 */
export function validateConfig(config: ExperimentConfig): void {
  _checkKeys(config, "config");
  _oneOf("dataset", config.dataset, ["mnist", "fashion-mnist"]);
  if (!Array.isArray(config.variants) || config.variants.length === 0) {
    throw new Error(
      `config: variants must be a non-empty list of ${NORMALIZATIONS.join(", ")}, received ${
        JSON.stringify(config.variants)
      }`,
    );
  }
  for (const variant of config.variants) _oneOf("variants", variant, NORMALIZATIONS);
  if (new Set(config.variants).size !== config.variants.length) {
    throw new Error(`config: variants must not repeat, received ${config.variants.join(",")}`);
  }
  _positiveInteger("epochs", config.epochs);
  _positiveInteger("batchSize", config.batchSize);
  _positiveInteger("seeds", config.seeds);
  _positiveInteger("logEvery", config.logEvery);
  _positiveInteger("evalBatchSize", config.evalBatchSize);
  if (!Number.isInteger(config.seed) || config.seed < 0) {
    throw new Error(`config: seed must be a non-negative integer, received ${config.seed}`);
  }
  if (config.limit !== null) _positiveInteger("limit", config.limit);
  if (config.testLimit !== null) _positiveInteger("testLimit", config.testLimit);
  _positiveNumber("lr", config.lr);
  _positiveNumber("epsilon", config.epsilon);
  _oneOf("optimizer", config.optimizer, OPTIMIZERS);
  _oneOf("loss", config.loss, LOSSES);
  _oneOf("activation", config.activation, ACTIVATIONS);
  _oneOf("init", config.init, INITS);
  _oneOf("momentumConvention", config.momentumConvention, ["keras", "pytorch"]);
  _oneOf("backend", config.backend, ["wasm", "cpu", "webgpu"]);
  _oneOf("bnGradient", config.bnGradient, BATCH_NORM_GRADIENTS);
  for (const key of ["momentum", "tfjsMomentum"] as const) {
    const value = config[key];
    if (typeof value !== "number" || !(value >= 0 && value <= 1)) {
      throw new Error(`config: ${key} must be a number in [0, 1], received ${value}`);
    }
  }
}

/**
 * The custom layer's momentum converted to the Keras form (the weight kept on the old value).
 *
 * @param config A resolved config.
 * @returns momentum in the Keras form.
 *
 * @example PyTorch's default 0.1 is Keras's 0.9
 * ```ts
 * import { DEFAULTS, kerasMomentum } from "./config.ts";
 * console.log(kerasMomentum({ ...DEFAULTS, momentum: 0.1, momentumConvention: "pytorch" })); // 0.9
 * ```
 */
export function kerasMomentum(config: ExperimentConfig): number {
  return config.momentumConvention === "keras" ? config.momentum : 1 - config.momentum;
}

function _checkKeys(object: object, where: string) {
  const allowed = Object.keys(DEFAULTS);
  for (const key of Object.keys(object)) {
    if (!allowed.includes(key)) {
      throw new Error(
        `config: unknown key ${JSON.stringify(key)} in ${where}; allowed keys: ${
          allowed.join(", ")
        }`,
      );
    }
  }
}

function _oneOf(name: string, value: unknown, allowed: readonly string[]) {
  if (typeof value !== "string" || !allowed.includes(value)) {
    throw new Error(
      `config: ${name} must be one of ${allowed.join(", ")}, received ${JSON.stringify(value)}`,
    );
  }
}

function _positiveInteger(name: string, value: unknown) {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
    throw new Error(`config: ${name} must be a positive integer, received ${value}`);
  }
}

function _positiveNumber(name: string, value: unknown) {
  if (typeof value !== "number" || !(value > 0) || !Number.isFinite(value)) {
    throw new Error(`config: ${name} must be a positive number, received ${value}`);
  }
}
