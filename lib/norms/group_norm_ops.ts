/**
 * Group normalization as a function, with its closed-form gradient (Wu & He 2018). Layer
 * normalization is the case of one group.
 *
 * Notation: the C channels along the channel axis are split into G groups of C/G consecutive
 * channels. For each sample n and group g, over the m = (C/G)·(spatial size) values xᵢ of that
 * sample in that group's channels (every position of every non-batch, non-channel axis):
 *
 *     μ   = (1/m) Σᵢ xᵢ
 *     σ²  = (1/m) Σᵢ (xᵢ − μ)²                 (biased: divides by m)
 *     x̂ᵢ  = (xᵢ − μ) / √(σ² + ε)               (ε inside the root)
 *     yᵢ  = γ_c · x̂ᵢ + β_c                      (γ, β per channel c)
 *
 * and the backward pass, with gᵢ = γ_c·dyᵢ and means over the same m values:
 *
 *     ∂L/∂xᵢ = 1/√(σ² + ε) · (gᵢ − mean(g) − x̂ᵢ·mean(g·x̂))
 *     ∂L/∂γ_c = Σ dy·x̂,   ∂L/∂β_c = Σ dy      (sums over every sample and position of channel c)
 *
 * The statistics are per sample: the same computation in training and inference, and defined
 * at batch size 1.
 *
 * With the analytic gradient and the channels last, a backend that registers the named kernels
 * of `group_norm_kernels.ts` runs the op as two kernels (the wasm backend's native ones sum the
 * statistics in double, in one pass: σ² = mean(x²) − μ²); these tfjs ops are the reference and
 * the fallback.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { Tensor } from "../tfjs_types.ts";
import { namedGroupNormalize } from "./group_norm_kernels.ts";

/** How {@linkcode groupNormalize}'s gradient is computed: the closed form or tfjs's autodiff. */
export type GroupNormGradient = "analytic" | "autodiff";

/** Options of {@linkcode groupNormalize}. */
export interface GroupNormalizeOptions {
  /** Number of groups G; must divide the channel count. */
  groups: number;
  /** The channel axis (not the batch axis 0). @default {-1} */
  axis?: number;
  /** ε > 0, added to the variance inside the square root. @default {1e-3} */
  epsilon?: number;
  /** γ, one value per channel ([C]). @default {none (1)} */
  gamma?: Tensor;
  /** β, one value per channel ([C]). @default {none (0)} */
  beta?: Tensor;
  /** `analytic` (one `tf.customGrad`) or `autodiff`. @default {"analytic"} */
  gradient?: GroupNormGradient;
}

/**
 * Normalizes each sample's groups of channels with their own mean and biased variance, then
 * applies per-channel γ and β: y = γ·(x − μ)/√(σ² + ε) + β (see the module doc).
 *
 * @param x Input of rank ≥ 2, batch first.
 * @param options Groups, channel axis, ε, γ, β and the gradient mode.
 * @returns y, shaped like `x`.
 * @throws {Error} When an option or the input's shape does not fit.
 *
 * @example Two groups of two channels, one position: each group becomes ±1/√(1 + ε)
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { groupNormalize } from "./group_norm_ops.ts";
 * await tf.setBackend("cpu");
 * const y = groupNormalize(tf.tensor2d([[0, 2, 5, 7]]), { groups: 2, epsilon: 1e-3 });
 * console.log(await y.array()); // about [[-1, 1, -1, 1]] (1/√1.001 = 0.9995)
 * ```
 */
export function groupNormalize(x: Tensor, options: GroupNormalizeOptions): Tensor {
  const { groups, gamma, beta } = options;
  const epsilon = options.epsilon ?? 1e-3;
  const gradient = options.gradient ?? "analytic";
  const where = "groupNormalize";
  const axis = checkGroupShape(where, x.shape, options.axis ?? -1, groups);
  if (!(epsilon > 0) || !Number.isFinite(epsilon)) {
    throw new Error(`${where}: epsilon must be a positive number, received ${epsilon}`);
  }
  if (gradient !== "analytic" && gradient !== "autodiff") {
    throw new Error(
      `${where}: gradient must be "analytic" or "autodiff", received ${JSON.stringify(gradient)}`,
    );
  }
  const channels = x.shape[axis];
  for (const [name, t] of [["gamma", gamma], ["beta", beta]] as const) {
    if (t && (t.rank !== 1 || t.shape[0] !== channels)) {
      throw new Error(
        `${where}: ${name} must have shape [${channels}], received [${t.shape.join(", ")}]`,
      );
    }
  }
  // Channels last, analytic: the named kernels when the backend has them (same closed form).
  if (gradient === "analytic" && axis === x.rank - 1) {
    const y = namedGroupNormalize(x, { groups, epsilon, gamma, beta });
    if (y !== null) return y;
  }
  return tf.tidy(() => {
    // [..., C, ...] → [..., G, C/G, ...]: each (sample, group) reduces over every other axis.
    const split = [
      ...x.shape.slice(0, axis),
      groups,
      channels / groups,
      ...x.shape.slice(axis + 1),
    ];
    const axes = split.map((_, i) => i).filter((i) => i !== 0 && i !== axis);
    const paramShape = split.map((size, i) => (i === axis || i === axis + 1 ? size : 1));
    const xs = tf.reshape(x, split);
    const g = gamma ? tf.reshape(gamma, paramShape) : undefined;
    const b = beta ? tf.reshape(beta, paramShape) : undefined;
    const y = gradient === "analytic"
      ? _analytic(xs, axes, epsilon, g, b)
      : _autodiff(xs, axes, epsilon, g, b);
    return tf.reshape(y, x.shape);
  });
}

/**
 * Validates a group normalization's input shape, channel axis and group count.
 *
 * @param where The name errors start with.
 * @param shape The input shape (batch first; the batch size may be unknown).
 * @param axis The channel axis, negative from the end.
 * @param groups The number of groups.
 * @returns The channel axis as a non-negative index.
 * @throws {Error} When the rank is below 2, the axis is the batch axis or out of range, the
 * channel count is unknown, or `groups` is not a positive integer dividing it.
 *
 * @example
 * ```ts
 * import { checkGroupShape } from "./group_norm_ops.ts";
 * console.log(checkGroupShape("groupNorm", [null, 8, 8, 16], -1, 4)); // 3
 * ```
 */
export function checkGroupShape(
  where: string,
  shape: readonly (number | null)[],
  axis: number,
  groups: number,
): number {
  const rank = shape.length;
  const text = `[${shape.map((s) => s ?? "null").join(", ")}]`;
  if (rank < 2) {
    throw new Error(
      `${where}: input must have rank >= 2 ([batch, features] or NHWC), received shape ${text}`,
    );
  }
  const positive = axis < 0 ? rank + axis : axis;
  if (!Number.isInteger(axis) || positive <= 0 || positive >= rank) {
    throw new Error(
      `${where}: axis must be in [${-rank + 1}, ${rank - 1}] and not the batch axis for input ` +
        `shape ${text}, received ${axis}`,
    );
  }
  const channels = shape[positive];
  if (channels === null || channels === undefined) {
    throw new Error(`${where}: the channel axis ${axis} of ${text} must be known`);
  }
  if (!Number.isInteger(groups) || groups <= 0) {
    throw new Error(`${where}: groups must be a positive integer, received ${groups}`);
  }
  if (channels % groups !== 0) {
    throw new Error(
      `${where}: groups must divide the channel count ${channels}, received ${groups}`,
    );
  }
  return positive;
}

function _autodiff(xs: Tensor, axes: number[], epsilon: number, g?: Tensor, b?: Tensor) {
  const mean = tf.mean(xs, axes, true);
  const variance = tf.mean(tf.square(tf.sub(xs, mean)), axes, true);
  let y = tf.mul(tf.sub(xs, mean), tf.rsqrt(tf.add(variance, epsilon)));
  if (g) y = tf.mul(y, g);
  if (b) y = tf.add(y, b);
  return y;
}

function _analytic(xs: Tensor, axes: number[], epsilon: number, g?: Tensor, b?: Tensor) {
  const inputs = [xs, ...(g ? [g] : []), ...(b ? [b] : [])];
  const op = tf.customGrad((...args: (Tensor | tf.GradSaveFunc)[]) => {
    const save = args.pop() as tf.GradSaveFunc;
    const [x, ...rest] = args as Tensor[];
    const gamma = g ? rest[0] : undefined;
    const beta = b ? rest[g ? 1 : 0] : undefined;
    const mean = tf.mean(x, axes, true);
    const invStd = tf.rsqrt(tf.add(tf.mean(tf.square(tf.sub(x, mean)), axes, true), epsilon));
    const xHat = tf.mul(tf.sub(x, mean), invStd);
    let value = gamma ? tf.mul(xHat, gamma) : xHat;
    if (beta) value = tf.add(value, beta);
    save([xHat, invStd, ...(gamma ? [gamma] : [])]);
    return {
      value,
      gradFunc: (dy: Tensor, saved: Tensor[]) => {
        const [savedXHat, savedInvStd, savedGamma] = saved;
        const gy = savedGamma ? tf.mul(dy, savedGamma) : dy;
        const centered = tf.sub(
          tf.sub(gy, tf.mean(gy, axes, true)),
          tf.mul(savedXHat, tf.mean(tf.mul(gy, savedXHat), axes, true)),
        );
        const grads = [tf.mul(centered, savedInvStd)];
        // γ and β broadcast over every axis but the group and within-group channel axes.
        const paramShape = (g ?? b)?.shape ?? [];
        const paramAxes = paramShape.map((_, i) => i).filter((i) => paramShape[i] === 1);
        if (savedGamma) grads.push(tf.sum(tf.mul(dy, savedXHat), paramAxes, true));
        if (beta) grads.push(tf.sum(dy, paramAxes, true));
        return grads;
      },
    };
  });
  return op(...inputs);
}
