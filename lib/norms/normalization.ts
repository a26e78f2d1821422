/**
 * The normalization variants a model can place at each of its norm sites, and the one factory
 * that builds the layer for a site.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { batchNorm, type BatchNormOptions } from "./batch_norm.ts";

/**
 * A normalization variant:
 * - `none`: no layer;
 * - `bnlab`: bnlab's batch normalization ({@linkcode batchNorm});
 * - `tfjs`: tfjs's `tf.layers.batchNormalization`;
 * - `group`: group normalization (`groups` groups of channels);
 * - `layer`: layer normalization over every non-batch axis;
 * - `renorm`: bnlab's BN with Batch Renormalization;
 * - `ghost`: bnlab's BN over virtual batches of `virtualBatchSize` samples.
 */
export type Normalization = "none" | "bnlab" | "tfjs" | "group" | "layer" | "renorm" | "ghost";

/** Every variant, in the order tables list them. */
export const NORMALIZATIONS: readonly Normalization[] = [
  "none",
  "bnlab",
  "tfjs",
  "group",
  "layer",
  "renorm",
  "ghost",
];

/** Names accepted for a variant besides its own: `custom` is the old name of `bnlab`. */
export const NORMALIZATION_ALIASES: Readonly<Record<string, Normalization>> = Object.freeze({
  custom: "bnlab",
});

/**
 * The variant a name stands for (its own name or an alias).
 *
 * @param name A variant name or alias.
 * @returns The variant.
 * @throws {Error} When the name is neither a variant nor an alias.
 *
 * @example
 * ```ts
 * import { normalizationName } from "./normalization.ts";
 * console.log(normalizationName("custom")); // "bnlab"
 * ```
 */
export function normalizationName(name: string): Normalization {
  if ((NORMALIZATIONS as readonly string[]).includes(name)) return name as Normalization;
  const alias = NORMALIZATION_ALIASES[name];
  if (alias) return alias;
  throw new Error(
    `normalization must be one of ${NORMALIZATIONS.join(", ")} (or custom for bnlab), received ${
      JSON.stringify(name)
    }`,
  );
}

/** Options of every norm site's layer; each variant reads the fields that apply to it. */
export interface NormalizationOptions {
  /** Options of bnlab's BN (`bnlab`, `renorm`, `ghost`). */
  batchNorm?: BatchNormOptions;
  /** Momentum of tfjs's BN, Keras form. @default {0.99} */
  tfjsMomentum?: number;
  /** Epsilon of every variant. @default {1e-3} */
  epsilon?: number;
}

/**
 * Builds the normalization layer for one norm site, or `null` for `none`.
 *
 * @param variant The variant.
 * @param options The variants' options.
 * @returns A new layer, or `null`.
 *
 * @example
 * ```ts
 * import { normalizationLayer } from "./normalization.ts";
 * console.log(normalizationLayer("none")); // null
 * ```
 */
export function normalizationLayer(
  variant: Normalization,
  options: NormalizationOptions = {},
): tf.layers.Layer | null {
  const epsilon = options.epsilon ?? 1e-3;
  switch (variant) {
    case "none":
      return null;
    case "tfjs":
      return tf.layers.batchNormalization({ momentum: options.tfjsMomentum ?? 0.99, epsilon });
    case "bnlab":
      return batchNorm({ epsilon, ...options.batchNorm });
    default:
      throw new Error(`normalizationLayer: ${variant} is not built yet`);
  }
}
