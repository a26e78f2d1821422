/**
 * A fully connected classifier with a choice of normalization after every hidden layer.
 *
 * Layers: flatten the NHWC image → for each width h in `hidden`: dense h → [norm] → act →
 * dense numClasses (logits). [norm] is {@linkcode normalizationLayer}'s layer for the chosen
 * variant; with one, the dense layer before it has no bias.
 *
 * Ioffe & Szegedy (2015, §4.1, Figure 1)'s MNIST network is `hidden: [100, 100, 100]` with
 * `activation: "sigmoid"`.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { type Activation, type Init, layerInitializers } from "./lenet.ts";
import type { Normalization, NormalizationOptions } from "../norms/normalization.ts";
import { normalizationLayer } from "../norms/normalization.ts";
import { checkModelOptions } from "./resnet20.ts";

/** Options of {@linkcode createMlp}. */
export interface MlpOptions {
  /** Widths of the hidden layers. @default {[100, 100, 100]} */
  hidden?: number[];
  /** The normalization after every hidden layer (a variant, or `custom` for `bnlab`). @default {"none"} */
  normalization?: Normalization | "custom";
  /** The norm layers' options. */
  normalizationOptions?: NormalizationOptions;
  /** Hidden activation. @default {"relu"} */
  activation?: Activation;
  /** Weight initialization. @default {"pytorch"} */
  init?: Init;
  /** Seed of the weight initializers; each layer derives its own. @default {0} */
  seed?: number;
  /** Input shape [height, width, channels]. @default {[28, 28, 1]} */
  inputShape?: [number, number, number];
  /** Number of classes. @default {10} */
  numClasses?: number;
}

/** The hidden widths of Ioffe & Szegedy (2015)'s Figure 1 network. */
export const MLP_DEFAULT_HIDDEN: readonly number[] = Object.freeze([100, 100, 100]);

/**
 * Builds the fully connected classifier (the module doc gives the layers).
 *
 * @param options Hidden widths, normalization, activation, initialization, seed and shapes.
 * @returns An uncompiled `tf.Sequential` mapping NHWC images to logits.
 * @throws {Error} For a hidden width that is not a positive integer, or a bad shared option.
 *
 * @example Ioffe & Szegedy's Figure 1 network with bnlab's BN
 * ```ts
 * import { createMlp } from "./mlp.ts";
 * const model = createMlp({ activation: "sigmoid", normalization: "bnlab" });
 * console.log(model.countParams()); // 784·100 + 2·100·100 + 100·10 + 10 + 3·4·100 = 100,610
 * model.dispose();
 * ```
 */
export function createMlp(options: MlpOptions = {}): tf.Sequential {
  const where = "createMlp";
  const variant = checkModelOptions(where, options);
  const hidden = options.hidden ?? [...MLP_DEFAULT_HIDDEN];
  if (!Array.isArray(hidden) || !hidden.every((h) => Number.isInteger(h) && h > 0)) {
    throw new Error(
      `${where}: hidden must be a list of positive integers, received ${JSON.stringify(hidden)}`,
    );
  }
  const activation = options.activation ?? "relu";
  const init = options.init ?? "pytorch";
  const seed = options.seed ?? 0;
  const inputShape = options.inputShape ?? [28, 28, 1];
  const numClasses = options.numClasses ?? 10;
  const model = tf.sequential({ name: `mlp_${variant}` });
  model.add(tf.layers.flatten({ inputShape }));
  let fanIn = inputShape[0] * inputShape[1] * inputShape[2];
  let layerIndex = 0;
  for (const units of hidden) {
    model.add(tf.layers.dense({
      units,
      useBias: variant === "none",
      ...layerInitializers(init, fanIn, seed * 1000 + 17 * ++layerIndex),
    }));
    const norm = normalizationLayer(variant, options.normalizationOptions);
    if (norm) model.add(norm);
    model.add(tf.layers.activation({ activation }));
    fanIn = units;
  }
  model.add(tf.layers.dense({
    units: numClasses,
    ...layerInitializers(init, fanIn, seed * 1000 + 17 * ++layerIndex),
  }));
  return model;
}
