/**
 * One entry to every built-in model: `createModel(name, options)`.
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs";
import { type Activation, createLeNet, type Init } from "./lenet.ts";
import type { Normalization, NormalizationOptions } from "../norms/normalization.ts";

/** A built-in model. */
export type ModelName = "lenet" | "resnet20" | "mlp";

/** Every built-in model. */
export const MODELS: readonly ModelName[] = ["lenet", "resnet20", "mlp"];

/** Options every built-in model takes. */
export interface ModelOptions {
  /** The normalization at every norm site. @default {"none"} */
  normalization?: Normalization;
  /** The norm layers' options. */
  normalizationOptions?: NormalizationOptions;
  /** Hidden activation. @default {"relu"} */
  activation?: Activation;
  /** Weight initialization. @default {"pytorch"} */
  init?: Init;
  /** Seed of the weight initializers. @default {0} */
  seed?: number;
  /** Input shape [height, width, channels]. @default {[28, 28, 1]} */
  inputShape?: [number, number, number];
  /** Number of classes. @default {10} */
  numClasses?: number;
  /** Hidden layer widths of `mlp`. @default {[100, 100, 100]} */
  hidden?: number[];
}

/**
 * Builds a built-in model.
 *
 * @param name The model.
 * @param options Normalization, activation, initialization, seed and shapes.
 * @returns An uncompiled model mapping NHWC images to logits.
 *
 * @example
 * ```ts
 * import { createModel } from "./create_model.ts";
 * const model = createModel("lenet", { normalization: "none" });
 * model.dispose();
 * ```
 */
export function createModel(name: ModelName, options: ModelOptions = {}): tf.LayersModel {
  switch (name) {
    case "lenet":
      return createLeNet({
        normalization: options.normalization === "bnlab" ? "custom" : options.normalization as
          | "none"
          | "tfjs"
          | undefined,
        activation: options.activation,
        init: options.init,
        seed: options.seed,
        inputShape: options.inputShape,
        numClasses: options.numClasses,
        momentum: options.normalizationOptions?.tfjsMomentum,
        epsilon: options.normalizationOptions?.epsilon,
        batchNorm: options.normalizationOptions?.batchNorm,
      });
    default:
      throw new Error(`createModel: ${name} is not built yet`);
  }
}
