/**
 * The normalization variants a model can place at each of its norm sites, and the one factory
 * that builds the layer for a site.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { batchNorm, type BatchNormOptions } from "./batch_norm.ts";
import { GROUP_NORM_DEFAULTS, groupNorm } from "./group_norm.ts";
import { layerNorm } from "./layer_norm.ts";
import type { Layer } from "../tfjs_types.ts";

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

/**
 * Names accepted for a variant besides its own: `custom`, an alias of `bnlab` that saved
 * configs and results may carry.
 */
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
  /**
   * Options of bnlab's BN (`bnlab`, `renorm`, `ghost`); they override the shared fields below
   * (renorm's rMax, dMax and warm-up are `batchNorm.renormClipping`).
   */
  batchNorm?: BatchNormOptions;
  /** Momentum of tfjs's BN, Keras form. @default {0.99} */
  tfjsMomentum?: number;
  /** Epsilon of every variant. @default {1e-3} */
  epsilon?: number;
  /** Learn β, for every variant with one (all but `none`). @default {true} */
  center?: boolean;
  /** Learn γ, for every variant with one (all but `none`). @default {true} */
  scale?: boolean;
  /**
   * Groups of `group`: a site with C channels uses min(groups, C), which must divide C.
   * @default {32}
   */
  groups?: number;
  /** Virtual batch size of `ghost` (required for it; it must divide the batch size). */
  virtualBatchSize?: number;
}

/**
 * Builds the normalization layer for one norm site, or `null` for `none`:
 * - `bnlab`: `batchNorm({ epsilon, center, scale, ...batchNorm })`;
 * - `renorm`: the same with `renorm: true`;
 * - `ghost`: the same with `virtualBatchSize` (this option, else `batchNorm.virtualBatchSize`);
 * - `tfjs`: `tf.layers.batchNormalization({ momentum: tfjsMomentum, epsilon, center, scale })`;
 * - `group`: `groupNorm({ groups, epsilon, center, scale })`;
 * - `layer`: `layerNorm({ epsilon, center, scale })`.
 *
 * @param variant The variant.
 * @param options The variants' options.
 * @returns A new layer, or `null`.
 * @throws {Error} For an unknown variant, or `ghost` without a virtual batch size.
 *
 * @example
 * ```ts
 * import { normalizationLayer } from "./normalization.ts";
 * console.log(normalizationLayer("none")); // null
 * console.log(normalizationLayer("group", { groups: 8 })!.getClassName()); // GroupNorm
 * ```
 */
export function normalizationLayer(
  variant: Normalization,
  options: NormalizationOptions = {},
): Layer | null {
  const epsilon = options.epsilon ?? 1e-3;
  const shared = {
    epsilon,
    ...(options.center === undefined ? {} : { center: options.center }),
    ...(options.scale === undefined ? {} : { scale: options.scale }),
  };
  switch (variant) {
    case "none":
      return null;
    case "tfjs":
      return tf.layers.batchNormalization({ momentum: options.tfjsMomentum ?? 0.99, ...shared });
    case "bnlab":
      return batchNorm({ ...shared, ...options.batchNorm });
    case "renorm":
      return batchNorm({ ...shared, ...options.batchNorm, renorm: true });
    case "ghost": {
      const virtualBatchSize = options.virtualBatchSize ?? options.batchNorm?.virtualBatchSize;
      if (virtualBatchSize === undefined || virtualBatchSize === null) {
        throw new Error(
          "normalizationLayer: ghost needs virtualBatchSize (an integer > 1 dividing the batch " +
            `size), received ${virtualBatchSize}`,
        );
      }
      return batchNorm({ ...shared, ...options.batchNorm, virtualBatchSize });
    }
    case "group":
      return groupNorm({ ...shared, groups: options.groups ?? GROUP_NORM_DEFAULTS.groups });
    case "layer":
      return layerNorm(shared);
    default:
      throw new Error(
        `normalizationLayer: variant must be one of ${NORMALIZATIONS.join(", ")}, received ${
          JSON.stringify(variant)
        }`,
      );
  }
}
