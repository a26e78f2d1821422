/**
 * He et al. (2016, §4.2)'s CIFAR ResNet-20, for any input size and channel count, with a
 * choice of normalization at every norm site.
 *
 * Layers (n = 3 blocks per stage, 6n + 2 = 20 weighted layers):
 *
 *     conv 3×3, 16 → [norm] → act
 *     stage 1: 3 basic blocks, 16 channels, stride 1
 *     stage 2: 3 basic blocks, 32 channels, the first with stride 2
 *     stage 3: 3 basic blocks, 64 channels, the first with stride 2
 *     global average pool → dense numClasses (logits)
 *
 * A basic block: conv 3×3 (stride s) → [norm] → act → conv 3×3 → [norm], plus the shortcut,
 * then act. The shortcut is the identity, or where the block changes the shape (entering
 * stages 2 and 3) a 1×1 projection: conv 1×1 stride 2 → [norm] (the paper's option B).
 *
 * [norm] is {@linkcode normalizationLayer}'s layer for the chosen variant; with one, the conv
 * before it has no bias. Convolutions pad `same`. At stride 2 on an even size tfjs (like
 * TensorFlow) pads the one missing row and column at the bottom/right, so output position i
 * reads input rows 2i…2i+2; PyTorch's `padding=1` pads both sides and reads rows 2i−1…2i+1.
 * The output sizes agree (28 → 14 → 7); the sampled positions are shifted by one pixel.
 * The 1×1 stride-2 projections read rows 0, 2, 4, … in both.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { type Activation, ACTIVATIONS, type Init, INITS, layerInitializers } from "./lenet.ts";
import {
  type Normalization,
  normalizationLayer,
  normalizationName,
  type NormalizationOptions,
} from "../norms/normalization.ts";

/** Options of {@linkcode createResNet20}. */
export interface ResNet20Options {
  /** The normalization at every norm site (a variant, or `custom` for `bnlab`). @default {"none"} */
  normalization?: Normalization | "custom";
  /** The norm layers' options. */
  normalizationOptions?: NormalizationOptions;
  /** The activation after each norm (and after each block's sum). @default {"relu"} */
  activation?: Activation;
  /** Weight initialization (`he`: He et al. 2015's, as the paper uses). @default {"he"} */
  init?: Init;
  /** Seed of the weight initializers; each layer derives its own. @default {0} */
  seed?: number;
  /** Input shape [height, width, channels]. @default {[28, 28, 1]} */
  inputShape?: [number, number, number];
  /** Number of classes. @default {10} */
  numClasses?: number;
}

/** Channels of the three stages. */
export const RESNET20_STAGES: readonly number[] = [16, 32, 64];
/** Basic blocks per stage. */
export const RESNET20_BLOCKS_PER_STAGE = 3;

/**
 * Builds ResNet-20 (the module doc gives the architecture).
 *
 * @param options Normalization, activation, initialization, seed and shapes.
 * @returns An uncompiled functional model mapping NHWC images to logits.
 * @throws {Error} For an unknown normalization, activation or init, a non-integer seed, or an
 * input shape that is not three positive integers.
 *
 * @example 28×28×1 input, logits of 10 classes
 * ```ts
 * import { createResNet20 } from "./resnet20.ts";
 * const model = createResNet20({ normalization: "bnlab" });
 * // 269,968 conv weights + 4 × 784 norm weights (21 sites) + 650 dense weights
 * console.log(model.countParams(), model.outputs[0].shape); // 273754 [ null, 10 ]
 * model.dispose();
 * ```
 */
export function createResNet20(options: ResNet20Options = {}): tf.LayersModel {
  const where = "createResNet20";
  const variant = checkModelOptions(where, options);
  const activation = options.activation ?? "relu";
  const init = options.init ?? "he";
  const seed = options.seed ?? 0;
  const inputShape = options.inputShape ?? [28, 28, 1];
  const numClasses = options.numClasses ?? 10;
  const normalized = variant !== "none";
  let layerIndex = 0;
  const conv = (x: tf.SymbolicTensor, filters: number, kernelSize: number, strides: number) => {
    const fanIn = kernelSize * kernelSize * (x.shape[3] as number);
    return tf.layers.conv2d({
      filters,
      kernelSize,
      strides,
      padding: "same",
      useBias: !normalized,
      ...layerInitializers(init, fanIn, seed * 1000 + 17 * ++layerIndex),
    }).apply(x) as tf.SymbolicTensor;
  };
  const norm = (x: tf.SymbolicTensor) => {
    const layer = normalizationLayer(variant, options.normalizationOptions);
    return layer ? layer.apply(x) as tf.SymbolicTensor : x;
  };
  const act = (x: tf.SymbolicTensor) =>
    tf.layers.activation({ activation }).apply(x) as tf.SymbolicTensor;

  const input = tf.input({ shape: inputShape });
  let x = act(norm(conv(input, RESNET20_STAGES[0], 3, 1)));
  for (const [stage, filters] of RESNET20_STAGES.entries()) {
    for (let block = 0; block < RESNET20_BLOCKS_PER_STAGE; block++) {
      const strides = stage > 0 && block === 0 ? 2 : 1;
      const project = strides !== 1 || x.shape[3] !== filters;
      let y = act(norm(conv(x, filters, 3, strides)));
      y = norm(conv(y, filters, 3, 1));
      const shortcut = project ? norm(conv(x, filters, 1, strides)) : x;
      x = act(tf.layers.add().apply([y, shortcut]) as tf.SymbolicTensor);
    }
  }
  const pooled = tf.layers.globalAveragePooling2d({}).apply(x) as tf.SymbolicTensor;
  const logits = tf.layers.dense({
    units: numClasses,
    ...layerInitializers(init, RESNET20_STAGES[2], seed * 1000 + 17 * ++layerIndex),
  }).apply(pooled) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: logits, name: `resnet20_${variant}` });
}

/**
 * Validates the options every built-in model shares and resolves the normalization's name.
 *
 * @param where The name errors start with.
 * @param options Normalization, activation, init, seed, input shape and class count.
 * @returns The normalization variant (`custom` resolved to `bnlab`).
 * @throws {Error} Naming the option, what it accepts and what it received.
 *
 * @example
 * ```ts
 * import { checkModelOptions } from "./resnet20.ts";
 * console.log(checkModelOptions("createMlp", { normalization: "custom" })); // bnlab
 * ```
 */
export function checkModelOptions(
  where: string,
  options: Omit<ResNet20Options, "normalizationOptions">,
): Normalization {
  let variant: Normalization;
  try {
    variant = normalizationName(options.normalization ?? "none");
  } catch (error) {
    throw new Error(`${where}: ${(error as Error).message}`);
  }
  const choice = (name: string, value: unknown, allowed: readonly string[]) => {
    if (value !== undefined && !allowed.includes(value as string)) {
      throw new Error(
        `${where}: ${name} must be one of ${allowed.join(", ")}, received ${JSON.stringify(value)}`,
      );
    }
  };
  choice("activation", options.activation, ACTIVATIONS);
  choice("init", options.init, INITS);
  if (options.seed !== undefined && !Number.isInteger(options.seed)) {
    throw new Error(`${where}: seed must be an integer, received ${options.seed}`);
  }
  const shape = options.inputShape;
  if (
    shape !== undefined &&
    !(Array.isArray(shape) && shape.length === 3 &&
      shape.every((s) => Number.isInteger(s) && s > 0))
  ) {
    throw new Error(
      `${where}: inputShape must be [height, width, channels] of positive integers, received ${
        JSON.stringify(shape)
      }`,
    );
  }
  const classes = options.numClasses;
  if (classes !== undefined && !(Number.isInteger(classes) && classes >= 2)) {
    throw new Error(`${where}: numClasses must be an integer >= 2, received ${classes}`);
  }
  return variant;
}
