/**
 * Group normalization (Wu & He 2018) as a tfjs layer. The C channels along `axis` are split
 * into G = min(groups, C) groups of C/G consecutive channels; for each sample and group, over
 * the m = (C/G)·(spatial size) values of that sample in the group's channels:
 *
 *     μ  = (1/m) Σᵢ xᵢ,   σ² = (1/m) Σᵢ (xᵢ − μ)²   (biased: divides by m)
 *     yᵢ = γ_c · (xᵢ − μ)/√(σ² + ε) + β_c          (ε inside the root; γ, β per channel c)
 *
 * The statistics are the sample's own: training and inference compute the same thing, there
 * are no running statistics, and a batch of one sample trains. The backward pass is the closed
 * form in lib/norms/group_norm_ops.ts (or tfjs's autodiff, the same gradient).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { checkGroupShape, groupNormalize, type GroupNormGradient } from "./group_norm_ops.ts";

/** Options of {@linkcode GroupNorm}. */
export interface GroupNormOptions {
  /**
   * Number of groups; the layer uses G = min(groups, C) for C channels, which must divide C.
   * @default {32 (Wu & He 2018)}
   */
  groups?: number;
  /** ε, added to the variance inside the square root. @default {1e-3} */
  epsilon?: number;
  /** The channel axis: γ and β are per index along it. @default {-1} */
  axis?: number;
  /** Learn β (an offset per channel). @default {true} */
  center?: boolean;
  /** Learn γ (a scale per channel). @default {true} */
  scale?: boolean;
  /** The backward pass: the closed form or tfjs's autodiff. @default {"analytic"} */
  gradient?: GroupNormGradient;
  /** Layer name. */
  name?: string;
  /** Input shape, when this is the first layer. */
  inputShape?: (number | null)[];
  /** Whether the weights train. @default {true} */
  trainable?: boolean;
}

/** Group normalization's defaults. */
export const GROUP_NORM_DEFAULTS = Object.freeze({
  groups: 32,
  epsilon: 1e-3,
  axis: -1,
  center: true,
  scale: true,
  gradient: "analytic" as GroupNormGradient,
});

/**
 * Group normalization as a tfjs layer (the module doc gives the math); see
 * {@linkcode groupNorm}.
 *
 * @example Normalize one sample of 2 positions × 4 channels in 2 groups
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { GroupNorm } from "./group_norm.ts";
 * await tf.setBackend("cpu");
 * const layer = new GroupNorm({ groups: 2 });
 * const y = layer.apply(tf.tensor3d([[[0, 0, 1, 3], [2, 2, 1, 3]]])) as tf.Tensor;
 * console.log(await y.array()); // about [[[-1, -1, -1, 1], [1, 1, -1, 1]]]
 * ```
 */
export class GroupNorm extends tf.layers.Layer {
  /** Name under which the class is registered for serialization. */
  static className = "GroupNorm";

  readonly groups: number;
  readonly epsilon: number;
  readonly axis: number;
  readonly center: boolean;
  readonly scale: boolean;
  readonly gradient: GroupNormGradient;
  /** γ (absent with `scale: false`). */
  gamma?: tf.LayerVariable;
  /** β (absent with `center: false`). */
  beta?: tf.LayerVariable;

  #channelAxis = -1;
  #effectiveGroups = 1;
  /** The prefix of error messages: the factory's name. */
  protected get where(): string {
    return "groupNorm";
  }

  /** @param options The layer's options; see {@linkcode GroupNormOptions}. */
  constructor(options: GroupNormOptions = {}) {
    super(
      { name: options.name, inputShape: options.inputShape, trainable: options.trainable } as never,
    );
    const d = GROUP_NORM_DEFAULTS;
    this.groups = options.groups ?? d.groups;
    this.epsilon = options.epsilon ?? d.epsilon;
    this.axis = options.axis ?? d.axis;
    this.center = options.center ?? d.center;
    this.scale = options.scale ?? d.scale;
    this.gradient = options.gradient ?? d.gradient;
    this.validate();
  }

  /** Rejects a bad option with a message naming it and the value received. */
  protected validate(): void {
    const fail = (what: string, received: unknown) => {
      throw new Error(`${this.where}: ${what}, received ${JSON.stringify(received)}`);
    };
    if (!Number.isInteger(this.groups) || this.groups <= 0) {
      fail("groups must be a positive integer", this.groups);
    }
    if (typeof this.epsilon !== "number" || !(this.epsilon > 0) || !Number.isFinite(this.epsilon)) {
      fail("epsilon must be a positive number", this.epsilon);
    }
    if (!Number.isInteger(this.axis) || this.axis === 0) {
      fail("axis must be a non-zero integer (0 is the batch axis)", this.axis);
    }
    if (typeof this.center !== "boolean") fail("center must be a boolean", this.center);
    if (typeof this.scale !== "boolean") fail("scale must be a boolean", this.scale);
    if (this.gradient !== "analytic" && this.gradient !== "autodiff") {
      fail('gradient must be "analytic" or "autodiff"', this.gradient);
    }
  }

  /** The number of groups the layer uses, G = min(groups, C) (known once built). */
  get effectiveGroups(): number {
    return this.#effectiveGroups;
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    // The channel count first, to cap the groups at it.
    const axis = checkGroupShape(this.where, shape, this.axis, 1);
    const channels = shape[axis] as number;
    const groups = Math.min(this.groups, channels);
    if (channels % groups !== 0) {
      throw new Error(
        `${this.where}: groups must divide the channel count ${channels}, received ${this.groups}`,
      );
    }
    this.#channelAxis = axis;
    this.#effectiveGroups = groups;
    if (this.scale) {
      this.gamma = this.addWeight("gamma", [channels], "float32", tf.initializers.ones());
    }
    if (this.center) {
      this.beta = this.addWeight("beta", [channels], "float32", tf.initializers.zeros());
    }
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape | tf.Shape[] {
    return inputShape;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    return tf.tidy(() =>
      groupNormalize(x, {
        groups: this.#effectiveGroups,
        axis: this.#channelAxis,
        epsilon: this.epsilon,
        gamma: this.gamma?.read(),
        beta: this.beta?.read(),
        gradient: this.gradient,
      })
    );
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      groups: this.groups,
      epsilon: this.epsilon,
      axis: this.axis,
      center: this.center,
      scale: this.scale,
      gradient: this.gradient,
    };
  }
}
tf.serialization.registerClass(GroupNorm);

/**
 * Creates a {@linkcode GroupNorm} layer: per sample, each group of C/G channels normalized
 * with its own mean and biased variance, then γ and β per channel.
 *
 * @param options Groups, ε, channel axis, center/scale and the gradient mode.
 * @returns The layer.
 *
 * @example Four groups over 16 channels, at batch size 1
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { groupNorm } from "./group_norm.ts";
 * await tf.setBackend("cpu");
 * const layer = groupNorm({ groups: 4 });
 * const y = layer.apply(tf.randomNormal([1, 3, 3, 16]), { training: true }) as tf.Tensor;
 * console.log(y.shape, layer.getConfig().groups); // [ 1, 3, 3, 16 ] 4
 * ```
 */
export function groupNorm(options: GroupNormOptions = {}): GroupNorm {
  return new GroupNorm(options);
}
