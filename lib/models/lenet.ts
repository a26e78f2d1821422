/**
 * The report's LeNet-style CNN, with a choice of where normalization goes.
 *
 * Layers (input 28×28×1):
 * conv 20@5×5 → [norm] → act → max-pool 2 → conv 50@5×5 → [norm] → act → max-pool 2
 * → flatten → dense 500 → [norm] → act → dense 10 (logits; the loss applies softmax).
 *
 * With normalization, the conv/dense layer before it has no bias: BN's β (or its mean
 * subtraction) makes a bias redundant, as in the BN paper and PyTorch/Keras practice.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { batchNorm, type BatchNormOptions } from "../norms/batch_norm.ts";

/** Which normalization layer follows each conv/dense layer (but the last). */
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

/** The allowed values of each LeNet option, for validation and CLI help. */
export const NORMALIZATIONS: readonly Normalization[] = ["none", "custom", "tfjs"];
/** Allowed activations. */
export const ACTIVATIONS: readonly Activation[] = ["relu", "sigmoid", "tanh"];
/** Allowed initializations. */
export const INITS: readonly Init[] = ["glorot", "pytorch", "he"];

/** Options of {@linkcode createLeNet}. */
export interface LeNetOptions {
  /**
   * Normalization after each conv and hidden dense layer, before the activation.
   * @default {"none"}
   */
  normalization?: Normalization;
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
  /** Further options of the `custom` layer (they override `momentum` and `epsilon`). */
  batchNorm?: BatchNormOptions;
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
  _checkChoice("normalization", normalization, NORMALIZATIONS);
  _checkChoice("activation", activation, ACTIVATIONS);
  _checkChoice("init", init, INITS);
  if (!Number.isInteger(seed)) {
    throw new Error(`createLeNet: seed must be an integer, received ${seed}`);
  }

  const normalized = normalization !== "none";
  let layerIndex = 0;
  const initializers = (fanIn: number) => {
    const layerSeed = seed * 1000 + 17 * ++layerIndex;
    return _initializers(init, fanIn, layerSeed);
  };
  const model = tf.sequential({ name: `lenet_${normalization}` });
  const addBlock = (layer: tf.layers.Layer) => {
    model.add(layer);
    if (normalized) model.add(_normLayer(normalization, options));
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

function _normLayer(kind: Normalization, options: LeNetOptions): tf.layers.Layer {
  const momentum = options.momentum ?? 0.99;
  const epsilon = options.epsilon ?? 1e-3;
  if (kind === "tfjs") return tf.layers.batchNormalization({ momentum, epsilon });
  return batchNorm({ momentum, epsilon, ...options.batchNorm });
}

function _initializers(init: Init, fanIn: number, seed: number) {
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
