/**
 * Experiment configuration: one block of documented defaults, named presets that override a
 * few fields, and command-line style overrides. Unknown keys and bad values are rejected.
 *
 * @module
 */
import { type Activation, ACTIVATIONS, type Init, INITS } from "../models/lenet.ts";
import { type ModelName, MODELS } from "../models/create_model.ts";
import {
  type Normalization,
  NORMALIZATION_ALIASES,
  NORMALIZATIONS,
} from "../norms/normalization.ts";
import { LOSSES, type LossName } from "../train/losses.ts";
import { BATCH_NORM_GRADIENTS, type BatchNormGradient } from "../norms/batch_norm_ops.ts";
import {
  LAST_BATCH_MODES,
  type LastBatch,
  LR_SCHEDULES,
  type LrSchedule,
  type OptimizerName,
  OPTIMIZERS,
} from "../train/loop.ts";
import { parseDiagnostics } from "../train/diagnostics.ts";
import { STUDY_PRESETS } from "./studies.ts";

/** A dataset: `mnist`, `fashion-mnist`, or `idx:<dir>` (a directory with the four IDX files). */
export type DatasetSpec = "mnist" | "fashion-mnist" | `idx:${string}`;

/** Every field of an experiment, resolved. */
export interface ExperimentConfig {
  /** Name of the preset the config started from. */
  preset: string;
  /** The model: `lenet`, `resnet20` or `mlp`. */
  model: ModelName;
  /** `mnist`, `fashion-mnist`, or `idx:<dir>` (train/t10k images and labels, raw or `.gz`). */
  dataset: DatasetSpec;
  /**
   * Input standardization, x' = (x − mean_c)/std_c per channel c: `none`, `auto` (mean and
   * std of the training split as loaded), or `"mean,std"` (every channel) or
   * `"m1,…,mC,s1,…,sC"`.
   */
  normalizeInput: string;
  /** Which normalization variants to train (`custom` is read as `bnlab`). */
  variants: Normalization[];
  /** Passes over the training images. */
  epochs: number;
  /** Images per SGD step. */
  batchSize: number;
  /**
   * What happens to a final batch smaller than `batchSize`, in training and evaluation:
   * `merge` into the batch before it, `drop` it, or `keep` it as a smaller batch.
   */
  lastBatch: LastBatch;
  /** Learning rate (the peak of a schedule). */
  lr: number;
  /** `sgd` or `adam` (`momentum` in old configs is read as sgd with sgdMomentum 0.9). */
  optimizer: OptimizerName;
  /** SGD's momentum (0: plain SGD). */
  sgdMomentum: number;
  /** Nesterov momentum for SGD. */
  nesterov: boolean;
  /** L2 weight decay: wd·w added to each weight's gradient. */
  weightDecay: number;
  /** Learning-rate schedule: `constant`, `step` (×lrStepGamma every lrStepEvery epochs), `cosine`. */
  lrSchedule: LrSchedule;
  /** Epochs of linear warm-up from lr/steps to lr at the start of training. */
  warmupEpochs: number;
  /** The `step` schedule's factor. */
  lrStepGamma: number;
  /** The `step` schedule's period in epochs. */
  lrStepEvery: number;
  /** Training loss: `xent` (softmax cross-entropy) or `mse` (softmax vs one-hot). */
  loss: LossName;
  /** Hidden activation. */
  activation: Activation;
  /** Weight initialization: `pytorch` (PyTorch's default), `glorot` (tfjs's) or `he`. */
  init: Init;
  /** Hidden layer widths of `mlp`. */
  hidden: number[];
  /**
   * Running-average momentum of bnlab's BN, read in `momentumConvention`; `null` is the
   * cumulative average of every batch so far.
   */
  momentum: number | null;
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
  /** Normalization epsilon, added to the variance before the square root. */
  epsilon: number;
  /** Running variance of bnlab's BN: `biased` (÷m) or `unbiased` (÷(m−1)). */
  runningVariance: "biased" | "unbiased";
  /**
   * Backward pass of bnlab's BN: `analytic` (the true gradient), `autodiff` (the same,
   * by tfjs), or `constant-statistics` (batch statistics detached, as in a flawed hand-written
   * layer: dx = γ/√(σ²+ε)·dy).
   */
  bnGradient: BatchNormGradient;
  /** `renorm`: the bound rMax of r = σ_B/σ_running. */
  renormRMax: number;
  /** `renorm`: the bound dMax of |d| = |μ_B − μ_running|/σ_running. */
  renormDMax: number;
  /**
   * `renorm`: steps over which the bounds rise linearly from (rMax, dMax) = (1, 0), plain BN,
   * to (renormRMax, renormDMax), as Ioffe (2017) relaxes them; 0 uses the bounds from the start.
   */
  renormWarmupSteps: number;
  /** `ghost`: samples per virtual batch (must divide batchSize); `null` for `ghost` is an error. */
  virtualBatchSize: number | null;
  /** `group`: groups of channels (must divide every normalized layer's channel count). */
  groups: number;
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
  /**
   * Observational diagnostics during training: `none`, or `every=N[,probe=M]` (every N steps,
   * on the first M test images, 500 by default); written to each run's `diagnostics.csv`.
   */
  diagnostics: string;
}

/** The documented defaults every preset starts from. */
export const DEFAULTS: Readonly<ExperimentConfig> = Object.freeze({
  preset: "defaults",
  model: "lenet",
  dataset: "mnist",
  normalizeInput: "none",
  variants: ["none", "bnlab", "tfjs"],
  epochs: 20,
  batchSize: 20,
  lastBatch: "merge",
  lr: 0.001,
  optimizer: "sgd",
  sgdMomentum: 0,
  nesterov: false,
  weightDecay: 0,
  lrSchedule: "constant",
  warmupEpochs: 0,
  lrStepGamma: 0.1,
  lrStepEvery: 1,
  loss: "xent",
  activation: "relu",
  init: "pytorch",
  hidden: [100, 100, 100],
  momentum: 0.1,
  momentumConvention: "pytorch",
  tfjsMomentum: 0.9,
  epsilon: 1e-5,
  runningVariance: "biased",
  bnGradient: "analytic",
  renormRMax: 3,
  renormDMax: 5,
  renormWarmupSteps: 0,
  virtualBatchSize: null,
  groups: 2,
  limit: null,
  testLimit: null,
  seed: 0,
  seeds: 1,
  backend: "wasm",
  logEvery: 100,
  evalBatchSize: 500,
  diagnostics: "none",
}) as Readonly<ExperimentConfig>;

/**
 * The value a field had before it existed, for configs saved without it: a results directory
 * written then resumes with the settings it was trained with.
 */
export const LEGACY_DEFAULTS: Readonly<Partial<ExperimentConfig>> = Object.freeze({
  lastBatch: "keep",
});

/** Largest accepted value of each integer field (a typo such as 1e308 is an error). */
export const INTEGER_LIMITS: Readonly<Record<string, number>> = Object.freeze({
  epochs: 100_000,
  batchSize: 1_000_000,
  seeds: 10_000,
  seed: 2 ** 31 - 1,
  logEvery: 1_000_000_000,
  evalBatchSize: 1_000_000,
  limit: 1_000_000_000,
  testLimit: 1_000_000_000,
  warmupEpochs: 100_000,
  lrStepEvery: 100_000,
  virtualBatchSize: 1_000_000,
  renormWarmupSteps: 1_000_000_000,
  groups: 100_000,
  hidden: 1_000_000,
});

/**
 * What each field means, for `--help`: one line, with the allowed values of a choice (taken
 * from the same lists {@linkcode validateConfig} checks against).
 */
export const FIELD_HELP: Readonly<Record<Exclude<keyof ExperimentConfig, "preset">, string>> =
  Object.freeze({
    model: MODELS.join(" | "),
    dataset: "mnist | fashion-mnist | idx:DIR (the four IDX files, raw or .gz)",
    normalizeInput: "none | auto (training split's mean,std) | mean,std | m1,…,mC,s1,…,sC",
    variants: `comma-separated, of ${NORMALIZATIONS.join(", ")} (custom = bnlab)`,
    epochs: "passes over the training images",
    batchSize: "images per SGD step",
    lastBatch: `${LAST_BATCH_MODES.join(" | ")} (a last batch smaller than --batch-size)`,
    lr: "learning rate (a schedule's peak)",
    optimizer: `${OPTIMIZERS.filter((o) => o !== "momentum").join(" | ")}`,
    sgdMomentum: "SGD's momentum, in [0, 1)",
    nesterov: "Nesterov momentum (needs --sgd-momentum > 0)",
    weightDecay: "L2 weight decay added to each gradient (wd·w)",
    lrSchedule: `${LR_SCHEDULES.join(" | ")}`,
    warmupEpochs: "epochs of linear learning-rate warm-up",
    lrStepGamma: "step schedule: factor, in (0, 1]",
    lrStepEvery: "step schedule: epochs between steps",
    loss: `${LOSSES.join(" | ")} (softmax cross-entropy, or softmax vs one-hot MSE)`,
    activation: ACTIVATIONS.join(" | "),
    init: `${INITS.join(" | ")} (pytorch: PyTorch's default, glorot: tfjs's)`,
    hidden: "mlp: comma-separated hidden layer widths",
    momentum: "bnlab BN's running-average momentum, in --momentum-convention's form; " +
      "none = cumulative average",
    momentumConvention: "keras (m·running + (1−m)·batch) | pytorch ((1−m)·running + m·batch)",
    tfjsMomentum: "tfjs BN's momentum, Keras form (0.9 = PyTorch's 0.1)",
    epsilon: "normalization epsilon, added to the variance",
    runningVariance: "biased | unbiased (bnlab BN's running variance)",
    bnGradient: `${BATCH_NORM_GRADIENTS.join(" | ")} (bnlab BN's backward pass)`,
    renormRMax: "renorm: rMax >= 1",
    renormDMax: "renorm: dMax >= 0",
    renormWarmupSteps: "renorm: steps raising rMax from 1 and dMax from 0 to their bounds",
    virtualBatchSize: "ghost: samples per virtual batch, dividing --batch-size (none: off)",
    groups: "group: channel groups per layer",
    limit: "training images used, the first N (none: all)",
    testLimit: "test images used, the first N (none: all)",
    seed: "first seed",
    seeds: "seeds per variant (tables get mean and std)",
    backend: "wasm | cpu | webgpu",
    logEvery: "steps between points of the loss curve",
    evalBatchSize: "images per evaluation pass",
    diagnostics: "none | every=N[,probe=M]: percentiles, statistics and gradient norms " +
      "every N steps (diagnostics.csv)",
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
    description: "the default variants on 2,000 images, 1 epoch: checks the plumbing",
    overrides: { limit: 2000, testLimit: 1000, epochs: 1, batchSize: 20, lr: 0.01, logEvery: 10 },
  },
  quick: {
    description: "a real run on 10,000 images, 3 epochs, lr 0.01",
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
  ...(STUDY_PRESETS as Readonly<Record<string, Preset>>),
});

/** The preset used when none is named. */
export const DEFAULT_PRESET = "quick";

/**
 * Resolves a config: defaults, then a preset, then overrides, validated. The aliases `custom`
 * (a variant) and `momentum` (an optimizer) are read under their canonical names.
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
  const config = _canonical({ ...DEFAULTS, ...named.overrides, ...overrides, preset });
  validateConfig(config);
  return config;
}

/**
 * Reads a config saved by any version: fields it lacks get the value they had before they
 * existed ({@linkcode LEGACY_DEFAULTS}, else {@linkcode DEFAULTS}), `custom` becomes `bnlab`,
 * and the optimizer `momentum` becomes `sgd` with `sgdMomentum` 0.9. Validated.
 *
 * @param saved A config as stored in `config.json`, `sweep.json` or `plan.json`.
 * @returns The config in today's terms.
 *
 * @example
 * ```ts
 * import { upgradeConfig } from "./config.ts";
 * const config = upgradeConfig({ preset: "smoke", variants: ["custom"], optimizer: "momentum" });
 * console.log(config.variants, config.optimizer, config.sgdMomentum, config.lastBatch);
 * // [ "bnlab" ] sgd 0.9 keep
 * ```
 */
export function upgradeConfig(saved: Record<string, unknown>): ExperimentConfig {
  if (typeof saved !== "object" || saved === null || Array.isArray(saved)) {
    throw new Error(`config: expected a JSON object, received ${JSON.stringify(saved)}`);
  }
  _checkKeys(saved, "saved config");
  const config = _canonical({ ...DEFAULTS, ...LEGACY_DEFAULTS, ...saved } as ExperimentConfig);
  validateConfig(config);
  return config;
}

/** Aliases to today's names: variants `custom` → `bnlab`, optimizer `momentum` → sgd + 0.9. */
function _canonical(config: ExperimentConfig): ExperimentConfig {
  const out = { ...config };
  if (Array.isArray(out.variants)) {
    out.variants = out.variants.map((v) =>
      typeof v === "string" && NORMALIZATION_ALIASES[v] ? NORMALIZATION_ALIASES[v] : v
    );
  }
  if (out.optimizer === "momentum") {
    out.optimizer = "sgd";
    out.sgdMomentum = 0.9;
  }
  return out;
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
  for (const key of Object.keys(DEFAULTS)) {
    if (!(key in config)) throw new Error(`config: missing field ${key}`);
  }
  _oneOf("model", config.model, MODELS);
  if (
    typeof config.dataset !== "string" ||
    !(config.dataset === "mnist" || config.dataset === "fashion-mnist" ||
      /^idx:.+/.test(config.dataset))
  ) {
    throw new Error(
      `config: dataset must be mnist, fashion-mnist or idx:<dir>, received ${
        JSON.stringify(config.dataset)
      }`,
    );
  }
  parseNormalizeInput(config.normalizeInput);
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
  for (
    const key of [
      "epochs",
      "batchSize",
      "seeds",
      "logEvery",
      "evalBatchSize",
      "lrStepEvery",
      "groups",
    ] as const
  ) _integer(key, config[key], 1);
  _integer("seed", config.seed, 0);
  _integer("warmupEpochs", config.warmupEpochs, 0);
  _integer("renormWarmupSteps", config.renormWarmupSteps, 0);
  if (config.limit !== null) _integer("limit", config.limit, 1);
  if (config.testLimit !== null) _integer("testLimit", config.testLimit, 1);
  if (config.virtualBatchSize !== null) _integer("virtualBatchSize", config.virtualBatchSize, 1);
  if (!Array.isArray(config.hidden) || config.hidden.length === 0) {
    throw new Error(
      `config: hidden must be a non-empty list of positive integers, received ${
        JSON.stringify(config.hidden)
      }`,
    );
  }
  for (const width of config.hidden) _integer("hidden", width, 1);
  _positiveNumber("lr", config.lr);
  _positiveNumber("epsilon", config.epsilon);
  _oneOf("lastBatch", config.lastBatch, LAST_BATCH_MODES);
  _oneOf("optimizer", config.optimizer, OPTIMIZERS.filter((o) => o !== "momentum"));
  _oneOf("lrSchedule", config.lrSchedule, LR_SCHEDULES);
  _oneOf("loss", config.loss, LOSSES);
  _oneOf("activation", config.activation, ACTIVATIONS);
  _oneOf("init", config.init, INITS);
  _oneOf("momentumConvention", config.momentumConvention, ["keras", "pytorch"]);
  _oneOf("runningVariance", config.runningVariance, ["biased", "unbiased"]);
  _oneOf("backend", config.backend, ["wasm", "cpu", "webgpu"]);
  _oneOf("bnGradient", config.bnGradient, BATCH_NORM_GRADIENTS);
  parseDiagnostics(config.diagnostics);
  if (typeof config.nesterov !== "boolean") {
    throw new Error(`config: nesterov must be true or false, received ${config.nesterov}`);
  }
  _range("sgdMomentum", config.sgdMomentum, 0, 1, "[0, 1)", true);
  if (config.nesterov && !(config.sgdMomentum > 0)) {
    throw new Error(
      `config: nesterov needs sgdMomentum > 0 with optimizer sgd, received sgdMomentum ${config.sgdMomentum}`,
    );
  }
  _range("weightDecay", config.weightDecay, 0, 1, "[0, 1]");
  _range("lrStepGamma", config.lrStepGamma, 0, 1, "(0, 1]", false, true);
  if (config.warmupEpochs > config.epochs) {
    throw new Error(
      `config: warmupEpochs must be at most epochs (${config.epochs}), received ${config.warmupEpochs}`,
    );
  }
  if (config.momentum !== null) _range("momentum", config.momentum, 0, 1, "[0, 1] or null");
  _range("tfjsMomentum", config.tfjsMomentum, 0, 1, "[0, 1]");
  if (
    typeof config.renormRMax !== "number" || !(config.renormRMax >= 1) ||
    !isFinite(config.renormRMax)
  ) {
    throw new Error(
      `config: renormRMax must be a finite number >= 1, received ${config.renormRMax}`,
    );
  }
  if (
    typeof config.renormDMax !== "number" || !(config.renormDMax >= 0) ||
    !isFinite(config.renormDMax)
  ) {
    throw new Error(
      `config: renormDMax must be a finite number >= 0, received ${config.renormDMax}`,
    );
  }
  if (config.variants.includes("ghost")) {
    if (config.virtualBatchSize === null) {
      throw new Error("config: variant ghost needs virtualBatchSize, received none");
    }
    if (config.batchSize % config.virtualBatchSize !== 0) {
      throw new Error(
        `config: virtualBatchSize must divide batchSize ${config.batchSize}, received ${config.virtualBatchSize}`,
      );
    }
  }
}

/**
 * Parses the `normalizeInput` field.
 *
 * @param value `none`, `auto`, `"mean,std"` or `"m1,…,mC,s1,…,sC"`.
 * @returns `null` for none, `"auto"`, or the means and standard deviations.
 *
 * @example
 * ```ts
 * import { parseNormalizeInput } from "./config.ts";
 * console.log(parseNormalizeInput("0.1307,0.3081")); // { mean: [ 0.1307 ], std: [ 0.3081 ] }
 * ```
 */
export function parseNormalizeInput(
  value: string,
): null | "auto" | { mean: number[]; std: number[] } {
  if (value === "none") return null;
  if (value === "auto") return "auto";
  const numbers = typeof value === "string" ? value.split(",").map((s) => s.trim()) : [];
  const parsed = numbers.map((s) => (s === "" ? NaN : Number(s)));
  const half = parsed.length / 2;
  if (
    parsed.length < 2 || parsed.length % 2 !== 0 || parsed.some((x) => !Number.isFinite(x)) ||
    parsed.slice(half).some((s) => !(s > 0))
  ) {
    throw new Error(
      `config: normalizeInput must be none, auto, "mean,std" or "m1,…,mC,s1,…,sC" with every ` +
        `std > 0, received ${JSON.stringify(value)}`,
    );
  }
  return { mean: parsed.slice(0, half), std: parsed.slice(half) };
}

/**
 * bnlab BN's momentum converted to the Keras form (the weight kept on the old value); `null`
 * (the cumulative average) stays `null`.
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
export function kerasMomentum(config: ExperimentConfig): number | null {
  if (config.momentum === null) return null;
  return config.momentumConvention === "keras" ? config.momentum : 1 - config.momentum;
}

/**
 * The fields in which two configs differ, for messages.
 *
 * @param a A config.
 * @param b Another config.
 * @returns `field: a → b` for each differing field.
 *
 * @example
 * ```ts
 * import { configDifferences, DEFAULTS } from "./config.ts";
 * console.log(configDifferences(DEFAULTS, { ...DEFAULTS, epochs: 3 })); // [ "epochs: 20 → 3" ]
 * ```
 */
export function configDifferences(
  a: Readonly<ExperimentConfig>,
  b: Readonly<ExperimentConfig>,
): string[] {
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
  const av = a as unknown as Record<string, unknown>;
  const bv = b as unknown as Record<string, unknown>;
  return keys
    .filter((k) => JSON.stringify(av[k]) !== JSON.stringify(bv[k]))
    .map((k) => `${k}: ${JSON.stringify(av[k])} → ${JSON.stringify(bv[k])}`);
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

function _integer(name: string, value: unknown, min: number) {
  const max = INTEGER_LIMITS[name] ?? Number.MAX_SAFE_INTEGER;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new Error(
      `config: ${name} must be an integer in [${min}, ${max}], received ${value}`,
    );
  }
}

function _positiveNumber(name: string, value: unknown) {
  if (typeof value !== "number" || !(value > 0) || !Number.isFinite(value)) {
    throw new Error(`config: ${name} must be a positive finite number, received ${value}`);
  }
}

function _range(
  name: string,
  value: unknown,
  low: number,
  high: number,
  shown: string,
  openHigh = false,
  openLow = false,
) {
  const ok = typeof value === "number" && (openLow ? value > low : value >= low) &&
    (openHigh ? value < high : value <= high);
  if (!ok) throw new Error(`config: ${name} must be a number in ${shown}, received ${value}`);
}
