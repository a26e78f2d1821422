/**
 * Layer normalization (Ba et al. 2016) as a tfjs layer: per sample, over the m values of every
 * non-batch axis (all channels and positions):
 *
 *     μ  = (1/m) Σᵢ xᵢ,   σ² = (1/m) Σᵢ (xᵢ − μ)²   (biased: divides by m)
 *     yᵢ = γ_c · (xᵢ − μ)/√(σ² + ε) + β_c          (ε inside the root; γ, β per channel c)
 *
 * This is group normalization with one group (PyTorch's `GroupNorm(1, C)`); Keras's
 * `LayerNormalization` with its default `axis: -1` instead takes the statistics over the last
 * axis only. No running statistics: training and inference compute the same thing, and a batch
 * of one sample trains.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { GroupNorm, type GroupNormOptions } from "./group_norm.ts";

/** Options of {@linkcode LayerNorm}: those of group normalization but `groups`. */
export type LayerNormOptions = Omit<GroupNormOptions, "groups">;

/**
 * Layer normalization as a tfjs layer (the module doc gives the math); see
 * {@linkcode layerNorm}.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { LayerNorm } from "./layer_norm.ts";
 * await tf.setBackend("cpu");
 * const y = new LayerNorm({ epsilon: 1e-3 }).apply(tf.tensor2d([[1, 3], [0, 10]])) as tf.Tensor;
 * console.log(await y.array()); // about [[-1, 1], [-1, 1]]
 * ```
 */
export class LayerNorm extends GroupNorm {
  /** Name under which the class is registered for serialization. */
  static override className = "LayerNorm";
  /** The prefix of error messages: the factory's name. */
  protected override get where(): string {
    return "layerNorm";
  }

  /** @param options The layer's options; see {@linkcode LayerNormOptions}. */
  constructor(options: LayerNormOptions = {}) {
    const { groups: _groups, ...rest } = options as GroupNormOptions;
    super({ ...rest, groups: 1 });
  }

  override getConfig(): tf.serialization.ConfigDict {
    const { groups: _groups, ...config } = super.getConfig();
    return config;
  }
}
tf.serialization.registerClass(LayerNorm);

/**
 * Creates a {@linkcode LayerNorm} layer: per sample, every non-batch value normalized with
 * the sample's mean and biased variance, then γ and β per channel.
 *
 * @param options ε, channel axis, center/scale and the gradient mode.
 * @returns The layer.
 *
 * @example Batch size 1 trains: the statistics are the sample's own
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { layerNorm } from "./layer_norm.ts";
 * await tf.setBackend("cpu");
 * const y = layerNorm().apply(tf.tensor4d([1, 2, 3, 4], [1, 2, 2, 1]), { training: true }) as tf.Tensor;
 * console.log((await y.data())[0].toFixed(3)); // -1.341 = (1 − 2.5)/√(1.25 + 0.001)
 * ```
 */
export function layerNorm(options: LayerNormOptions = {}): LayerNorm {
  return new LayerNorm(options);
}
