/**
 * One entry to every built-in model: `createModel(name, options)`.
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs";
import { type Activation, createLeNet, type Init } from "./lenet.ts";
import { createMlp } from "./mlp.ts";
import { createResNet20 } from "./resnet20.ts";
import type { Normalization, NormalizationOptions } from "../norms/normalization.ts";

/** A built-in model. */
export type ModelName = "lenet" | "resnet20" | "mlp";

/** Every built-in model. */
export const MODELS: readonly ModelName[] = ["lenet", "resnet20", "mlp"];

/** Options every built-in model takes (each model reads the fields that apply to it). */
export interface ModelOptions {
  /** The normalization at every norm site (a variant, or `custom` for `bnlab`). @default {"none"} */
  normalization?: Normalization | "custom";
  /** The norm layers' options. */
  normalizationOptions?: NormalizationOptions;
  /** Hidden activation. @default {"relu"} */
  activation?: Activation;
  /** Weight initialization. @default {"pytorch" (lenet, mlp), "he" (resnet20)} */
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
 * Builds a built-in model: `lenet` ({@linkcode createLeNet}), `resnet20`
 * ({@linkcode createResNet20}) or `mlp` ({@linkcode createMlp}).
 *
 * @param name The model.
 * @param options Normalization, activation, initialization, seed and shapes.
 * @returns An uncompiled model mapping NHWC images to logits.
 * @throws {Error} For an unknown model name, or an option the model rejects.
 *
 * @example
 * ```ts
 * import { createModel } from "./create_model.ts";
 * const model = createModel("mlp", { normalization: "layer", hidden: [32] });
 * console.log(model.name); // mlp_layer
 * model.dispose();
 * ```
 */
export function createModel(name: ModelName, options: ModelOptions = {}): tf.LayersModel {
  const { hidden, ...shared } = options;
  switch (name) {
    case "lenet":
      return createLeNet(shared);
    case "resnet20":
      return createResNet20(shared);
    case "mlp":
      return createMlp({ ...shared, hidden });
    default:
      throw new Error(
        `createModel: model must be one of ${MODELS.join(", ")}, received ${JSON.stringify(name)}`,
      );
  }
}
