/**
 * The report's LeNet-style CNN, with a choice of where normalization goes.
 *
 * Layers (input 28×28×1):
 * conv 20@5×5 → [norm] → act → max-pool 2 → conv 50@5×5 → [norm] → act → max-pool 2
 * → flatten → dense 500 → [norm] → act → dense 10 (logits; the loss applies softmax).
 *
 * [norm] is {@linkcode normalizationLayer}'s layer for the chosen variant (any of
 * `Normalization`, or `custom` for `bnlab`). With normalization, the conv/dense layer before it
 * has no bias: the norm's β (or its mean subtraction) makes a bias redundant, as in the BN
 * paper and PyTorch/Keras practice.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { BatchNormOptions } from "../norms/batch_norm.ts";
import {
  type Normalization as NormalizationVariant,
  normalizationLayer,
  normalizationName,
  type NormalizationOptions,
} from "../norms/normalization.ts";

/**
 * The normalizations the experiment runner trains LeNet with (`custom` is bnlab's BN); every
 * variant of lib/norms/normalization.ts is accepted by {@linkcode createLeNet}.
 */
export type Normalization = "none" | "custom" | "tfjs";
/** The hidden activation. */
export type Activation = "relu" | "sigmoid" | "tanh";
/**
 * Weight initialization scheme.
 *
 * - `glorot`: tfjs/Keras default, kernel Glorot-uniform, bias zero.
 * - `pytorch`: PyTorch's default for `nn.Conv2d`/`nn.Linear`, kernel and bias
 *   U(−1/√fanIn, 1/√fanIn) (kaiming-uniform with a = √5).
 * - `he`: He-normal kernel (truncated), bias zero.
 */
export type Init = "glorot" | "pytorch" | "he";

/** The runner's LeNet normalizations, for validation and CLI help. */
export const NORMALIZATIONS: readonly Normalization[] = ["none", "custom", "tfjs"];
/** A tfjs weight initializer. */
export type Initializer = ReturnType<typeof tf.initializers.zeros>;

/** Allowed activations. */
export const ACTIVATIONS: readonly Activation[] = ["relu", "sigmoid", "tanh"];
/** Allowed initializations. */
export const INITS: readonly Init[] = ["glorot", "pytorch", "he"];

/** Options of {@linkcode createLeNet}. */
export interface LeNetOptions {
  /**
   * Normalization after each conv and hidden dense layer, before the activation: a variant of
   * lib/norms/normalization.ts, or `custom` (the same as `bnlab`).
   * @default {"none"}
   */
  normalization?: NormalizationVariant | "custom";
  /** Hidden activation. @default {"relu"} */
  activation?: Activation;
  /** Weight initialization. @default {"pytorch"} */
  init?: Init;
  /** Seed of the weight initializers; each layer derives its own. @default {0} */
  seed?: number;
  /**
   * BN momentum in the Keras form: running = momentum·running + (1−momentum)·batch.
   * Used by both the `tfjs` and the `custom` layers. @default {0.99}
   */
  momentum?: number;
  /** BN epsilon, added to the variance before the square root. @default {1e-3} */
  epsilon?: number;
  /** Further options of bnlab's BN (`bnlab`, `renorm`, `ghost`; they override `momentum` and `epsilon`). */
  batchNorm?: BatchNormOptions;
  /** Options of the other variants (`groups`, `virtualBatchSize`, `center`, `scale`, …). */
  normalizationOptions?: NormalizationOptions;
  /** Input image shape [height, width, channels]. @default {[28, 28, 1]} */
  inputShape?: [number, number, number];
  /** Number of classes. @default {10} */
  numClasses?: number;
}

/**
 * Builds the report's CNN.
 *
 * @param options Normalization, activation, initialization and seed.
 * @returns An uncompiled `tf.Sequential` that maps NHWC images to logits.
 *
 * @example Build the model with tfjs's batch normalization
 * ```ts
 * import { createLeNet } from "./lenet.ts";
 * const model = createLeNet({ normalization: "tfjs", seed: 1 });
 * console.log(model.countParams()); // 431,080 less 570 biases plus 4 × 570 BN weights
 * model.dispose();
 * ```
 */
export function createLeNet(options: LeNetOptions = {}): tf.Sequential {
  const normalization = options.normalization ?? "none";
  const activation = options.activation ?? "relu";
  const init = options.init ?? "pytorch";
  const seed = options.seed ?? 0;
  const inputShape = options.inputShape ?? [28, 28, 1];
  const numClasses = options.numClasses ?? 10;
  let variant: NormalizationVariant;
  try {
    variant = normalizationName(normalization);
  } catch (error) {
    throw new Error(`createLeNet: ${(error as Error).message}`);
  }
  _checkChoice("activation", activation, ACTIVATIONS);
  _checkChoice("init", init, INITS);
  if (!Number.isInteger(seed)) {
    throw new Error(`createLeNet: seed must be an integer, received ${seed}`);
  }

  const normalized = variant !== "none";
  let layerIndex = 0;
  const initializers = (fanIn: number) => {
    const layerSeed = seed * 1000 + 17 * ++layerIndex;
    return layerInitializers(init, fanIn, layerSeed);
  };
  const model = tf.sequential({ name: `lenet_${normalization}` });
  const addBlock = (layer: tf.layers.Layer) => {
    model.add(layer);
    if (normalized) model.add(_normLayer(variant, options));
    model.add(tf.layers.activation({ activation }));
  };

  addBlock(tf.layers.conv2d({
    inputShape,
    filters: 20,
    kernelSize: 5,
    useBias: !normalized,
    ...initializers(5 * 5 * inputShape[2]),
  }));
  model.add(tf.layers.maxPooling2d({ poolSize: 2, strides: 2 }));
  addBlock(tf.layers.conv2d({
    filters: 50,
    kernelSize: 5,
    useBias: !normalized,
    ...initializers(5 * 5 * 20),
  }));
  model.add(tf.layers.maxPooling2d({ poolSize: 2, strides: 2 }));
  model.add(tf.layers.flatten());
  const flat = ((inputShape[0] - 4) / 2 - 4) / 2 * (((inputShape[1] - 4) / 2 - 4) / 2) * 50;
  addBlock(tf.layers.dense({ units: 500, useBias: !normalized, ...initializers(flat) }));
  model.add(tf.layers.dense({ units: numClasses, ...initializers(500) }));
  return model;
}

function _normLayer(variant: NormalizationVariant, options: LeNetOptions): tf.layers.Layer {
  // LeNet's own momentum and epsilon, when given, override the shared options' for both BNs.
  const shared = options.normalizationOptions ?? {};
  const momentum = options.momentum;
  return normalizationLayer(variant, {
    ...shared,
    tfjsMomentum: momentum ?? shared.tfjsMomentum,
    epsilon: options.epsilon ?? shared.epsilon,
    batchNorm: {
      ...(momentum === undefined ? {} : { momentum }),
      ...shared.batchNorm,
      ...options.batchNorm,
    },
  })!;
}

/**
 * The kernel and bias initializers of one conv or dense layer.
 *
 * @param init The scheme (see {@linkcode Init}).
 * @param fanIn The layer's inputs per output (kernel height · width · input channels for a conv).
 * @param seed The layer's seed (the bias uses seed + 1 under `pytorch`).
 * @returns `{ kernelInitializer, biasInitializer }` for a tfjs conv or dense layer.
 *
 * @example
 * ```ts
 * import { layerInitializers } from "./lenet.ts";
 * const { kernelInitializer } = layerInitializers("pytorch", 25, 17);
 * console.log(kernelInitializer.getClassName()); // RandomUniform
 * ```
 */
export function layerInitializers(
  init: Init,
  fanIn: number,
  seed: number,
): { kernelInitializer: Initializer; biasInitializer: Initializer } {
  switch (init) {
    case "glorot":
      return {
        kernelInitializer: tf.initializers.glorotUniform({ seed }),
        biasInitializer: tf.initializers.zeros(),
      };
    case "he":
      return {
        kernelInitializer: tf.initializers.heNormal({ seed }),
        biasInitializer: tf.initializers.zeros(),
      };
    case "pytorch": {
      // kaiming_uniform(a=√5) gives bound √(6/((1+a²)·fanIn)) = 1/√fanIn; the bias uses the same.
      const bound = 1 / Math.sqrt(fanIn);
      return {
        kernelInitializer: tf.initializers.randomUniform({
          minval: -bound,
          maxval: bound,
          seed,
        }),
        biasInitializer: tf.initializers.randomUniform({
          minval: -bound,
          maxval: bound,
          seed: seed + 1,
        }),
      };
    }
  }
}

function _checkChoice<T extends string>(name: string, value: T, allowed: readonly T[]) {
  if (!allowed.includes(value)) {
    throw new Error(
      `createLeNet: ${name} must be one of ${allowed.join(", ")}, received ${
        JSON.stringify(value)
      }`,
    );
  }
}
