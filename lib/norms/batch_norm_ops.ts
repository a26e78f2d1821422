/**
 * Batch normalization as functions: batch moments, the normalization itself, and the training
 * form with its closed-form (analytic) gradient.
 *
 * Notation, per channel, over the m values that share a channel within a batch:
 *
 *     μ   = (1/m) Σᵢ xᵢ                      batch mean
 *     σ²  = (1/m) Σᵢ (xᵢ − μ)²               batch variance (biased: divides by m)
 *     x̂ᵢ  = (xᵢ − μ) / √(σ² + ε)             ε is added to the variance, inside the root
 *     yᵢ  = γ·x̂ᵢ + β
 *
 * and the backward pass (Ioffe & Szegedy 2015, §3; derived in the source documents):
 *
 *     ∂L/∂β = Σᵢ dyᵢ
 *     ∂L/∂γ = Σᵢ dyᵢ·x̂ᵢ
 *     ∂L/∂xᵢ = γ/√(σ² + ε) · (dyᵢ − mean(dy) − x̂ᵢ·mean(dy·x̂))
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { namedBatchNormTraining } from "./batch_norm_kernels.ts";
import type { Tensor } from "../tfjs_types.ts";

/** Options of {@linkcode normalizeBatch}. */
export interface NormalizeBatchOptions {
  /** β, added after scaling; broadcast against x. @default {none (0)} */
  offset?: Tensor;
  /** γ, multiplied after normalizing; broadcast against x. @default {none (1)} */
  scale?: Tensor;
  /** ε ≥ 0, added to the variance before the square root. @default {1e-3} */
  epsilon?: number;
}

/**
 * Computes the mean and the biased variance of `x` over `axes` (like `tf.nn.moments`):
 * μ = mean(x), σ² = mean((x − μ)²).
 *
 * @param x Input tensor.
 * @param axes Axes to reduce.
 * @param keepDims Keep reduced axes with size 1 (for broadcasting). @default {false}
 * @returns `{ mean, variance }`.
 *
 * @example Per-feature moments of a [batch, features] tensor
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { moments } from "./batch_norm_ops.ts";
 * await tf.setBackend("cpu");
 * const { mean, variance } = moments(tf.tensor2d([[1, 10], [3, 30]]), [0]);
 * console.log(await mean.array(), await variance.array()); // [ 2, 20 ] [ 1, 100 ]
 * ```
 */
export function moments(
  x: Tensor,
  axes: number[],
  keepDims = false,
): { mean: Tensor; variance: Tensor } {
  return tf.tidy(() => {
    const mean = tf.mean(x, axes, true);
    const variance = tf.mean(tf.square(tf.sub(x, mean)), axes, keepDims);
    return { mean: keepDims ? mean : tf.squeeze(mean, axes), variance };
  });
}

/**
 * Normalizes with given statistics: y = (x − mean) / √(variance + ε) · scale + offset
 * (TensorFlow's `tf.nn.batch_normalization`). All tensors broadcast against `x`.
 *
 * @param x Input.
 * @param mean μ.
 * @param variance σ².
 * @param options `offset` (β), `scale` (γ) and `epsilon` (ε).
 * @returns The normalized tensor, shaped like `x`.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { normalizeBatch } from "./batch_norm_ops.ts";
 * await tf.setBackend("cpu");
 * const y = normalizeBatch(tf.tensor1d([1, 3]), tf.scalar(2), tf.scalar(1), { epsilon: 0 });
 * console.log(await y.array()); // [ -1, 1 ]
 * ```
 */
export function normalizeBatch(
  x: Tensor,
  mean: Tensor,
  variance: Tensor,
  options: NormalizeBatchOptions = {},
): Tensor {
  const epsilon = options.epsilon ?? 1e-3;
  if (typeof epsilon !== "number" || !(epsilon >= 0) || !Number.isFinite(epsilon)) {
    throw new Error(`normalizeBatch: epsilon must be a number >= 0, received ${epsilon}`);
  }
  return tf.tidy(() => {
    let y = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, epsilon)));
    if (options.scale) y = tf.mul(y, options.scale);
    if (options.offset) y = tf.add(y, options.offset);
    return y;
  });
}

/** Options of {@linkcode batchNormTraining}. */
export interface BatchNormTrainingOptions {
  /** Axes the statistics are computed over (every axis but the channel axis). */
  axes: number[];
  /** ε, added to the variance before the square root. */
  epsilon: number;
  /** γ shaped for broadcasting against x (size-1 reduced axes), or none for γ = 1. */
  scale?: Tensor;
  /** β shaped like `scale`, or none for β = 0. */
  offset?: Tensor;
  /**
   * `analytic`: one `tf.customGrad` whose gradient is the closed form in this module's doc;
   * `autodiff`: tfjs differentiates the forward ops (mean, variance, normalization);
   * `constant-statistics`: μ and σ² are constants of the backward pass (see
   * {@linkcode BatchNormGradient}).
   * @default {"analytic"}
   */
  gradient?: BatchNormGradient;
}

/**
 * How the training-mode backward pass is computed:
 * - `analytic`: the closed form (one `tf.customGrad`), the true gradient;
 * - `autodiff`: tfjs differentiates the forward ops, the same gradient;
 * - `constant-statistics`: μ_B and σ²_B are treated as constants, dx = γ/√(σ²_B+ε)·dy. Not the
 *   gradient of the layer: it is what a hand-written layer computes when its batch statistics
 *   are detached from the graph (computed with NumPy, `.detach()`, `.data`), the flaw Ioffe &
 *   Szegedy (2015, §2) show lets gradient descent ignore the normalization.
 */
export type BatchNormGradient = "analytic" | "autodiff" | "constant-statistics";

/** The values of {@linkcode BatchNormGradient}. */
export const BATCH_NORM_GRADIENTS: readonly BatchNormGradient[] = [
  "analytic",
  "autodiff",
  "constant-statistics",
];

/** What {@linkcode batchNormTraining} returns. */
export interface BatchNormTrainingResult {
  /** The normalized, scaled and shifted output. */
  y: Tensor;
  /** Batch mean μ, with the reduced axes kept as size 1 (not differentiated). */
  mean: Tensor;
  /** Biased batch variance σ², shaped like `mean` (not differentiated). */
  variance: Tensor;
}

/**
 * The training-mode forward pass: normalizes `x` with its own batch statistics, then applies γ
 * and β. With `gradient: "analytic"` the backward pass is the closed form
 * dx = γ/√(σ²+ε)·(dy − mean(dy) − x̂·mean(dy·x̂)), dγ = Σ dy·x̂, dβ = Σ dy.
 *
 * The returned `mean` and `variance` are for updating running statistics; gradients do not
 * flow through them (the gradient through the batch statistics is already inside dx).
 *
 * @param x Input.
 * @param options Axes, ε, γ, β and the gradient mode.
 * @returns The output and the batch statistics.
 *
 * @example The analytic and autodiff gradients agree
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { batchNormTraining } from "./batch_norm_ops.ts";
 * await tf.setBackend("cpu");
 * const x = tf.tensor2d([[1, 2], [3, 5], [4, 9]]);
 * const loss = (gradient: "analytic" | "autodiff") => (t: tf.Tensor) =>
 *   tf.sum(tf.mul(batchNormTraining(t, { axes: [0], epsilon: 1e-3, gradient }).y, tf.tensor1d([1, -2])));
 * const a = tf.grad(loss("analytic"))(x), b = tf.grad(loss("autodiff"))(x);
 * console.log((await tf.max(tf.abs(tf.sub(a, b))).data())[0] < 1e-5); // true
 * ```
 */
export function batchNormTraining(
  x: Tensor,
  options: BatchNormTrainingOptions,
): BatchNormTrainingResult {
  const { axes, epsilon, scale, offset, gradient = "analytic" } = options;
  _checkEpsilon(epsilon, "batchNormTraining");
  if (!BATCH_NORM_GRADIENTS.includes(gradient)) {
    throw new Error(
      `batchNormTraining: gradient must be one of ${BATCH_NORM_GRADIENTS.join(", ")}, received ${
        JSON.stringify(gradient)
      }`,
    );
  }
  if (gradient === "autodiff") {
    return tf.tidy(() => {
      const { mean, variance } = moments(x, axes, true);
      const y = normalizeBatch(x, mean, variance, { scale, offset, epsilon });
      return { y, mean: stopGradient(mean), variance: stopGradient(variance) };
    });
  }
  if (gradient === "constant-statistics") {
    return tf.tidy(() => {
      const stats = moments(x, axes, true);
      const mean = stopGradient(stats.mean), variance = stopGradient(stats.variance);
      return { y: normalizeBatch(x, mean, variance, { scale, offset, epsilon }), mean, variance };
    });
  }
  // The same closed forms as named kernels, where the backend registers them.
  const named = namedBatchNormTraining(x, { axes, epsilon, scale, offset });
  if (named !== null) return named;
  // The analytic op returns zero gradients for μ and σ², so they need no stop-gradient.
  const { mean, variance } = moments(x, axes, true);
  const y = _analyticBatchNorm(x, mean, variance, axes, epsilon, scale, offset);
  return { y, mean, variance };
}

/**
 * y = γ·x̂ + β with x̂ = (x − μ)/√(σ² + ε), as one op whose gradient is written out.
 * μ and σ² are inputs computed from x by the caller; their gradient slots return zeros because
 * the full dependence of y on x through them is folded into dx.
 */
function _analyticBatchNorm(
  x: Tensor,
  mean: Tensor,
  variance: Tensor,
  axes: number[],
  epsilon: number,
  scale?: Tensor,
  offset?: Tensor,
): Tensor {
  const inputs: Tensor[] = [x, mean, variance];
  if (scale) inputs.push(scale);
  if (offset) inputs.push(offset);
  const op = tf.customGrad((...args: (Tensor | tf.GradSaveFunc)[]) => {
    const save = args.pop() as tf.GradSaveFunc;
    const [xs, mu, sigma2, ...rest] = args as Tensor[];
    const gamma = scale ? rest[0] : undefined;
    const beta = offset ? rest[scale ? 1 : 0] : undefined;
    const invStd = tf.rsqrt(tf.add(sigma2, epsilon));
    const xHat = tf.mul(tf.sub(xs, mu), invStd);
    let value = gamma ? tf.mul(xHat, gamma) : xHat;
    if (beta) value = tf.add(value, beta);
    save([xHat, invStd, ...(gamma ? [gamma] : [])]);
    return {
      value,
      gradFunc: (dy: Tensor, saved: Tensor[]) => {
        const [savedXHat, savedInvStd, savedGamma] = saved;
        const dyMean = tf.mean(dy, axes, true);
        const dyXHatMean = tf.mean(tf.mul(dy, savedXHat), axes, true);
        const centered = tf.sub(tf.sub(dy, dyMean), tf.mul(savedXHat, dyXHatMean));
        const factor = savedGamma ? tf.mul(savedGamma, savedInvStd) : savedInvStd;
        const grads: Tensor[] = [
          tf.mul(centered, factor),
          tf.zerosLike(mu),
          tf.zerosLike(sigma2),
        ];
        const count = tf.scalar(_countOver(dy.shape, axes));
        if (savedGamma) grads.push(_sumTo(tf.mul(dyXHatMean, count), savedGamma.shape));
        if (beta) grads.push(_sumTo(tf.mul(dyMean, count), beta.shape));
        return grads;
      },
    };
  });
  return op(...inputs);
}

/**
 * The identity whose gradient is zero (TensorFlow's `tf.stop_gradient`, which tfjs lacks).
 *
 * @param x Any tensor.
 * @returns A copy of `x` that gradients do not flow through.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { stopGradient } from "./batch_norm_ops.ts";
 * await tf.setBackend("cpu");
 * const g = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(stopGradient(x), x)))(tf.tensor1d([3]));
 * console.log(await g.array()); // [ 3 ]
 * ```
 */
export function stopGradient<T extends Tensor>(x: T): T {
  return _stopGradient(x) as T;
}

const _stopGradient = tf.customGrad((...args: (Tensor | tf.GradSaveFunc)[]) => ({
  value: tf.clone(args[0] as Tensor),
  gradFunc: (dy: Tensor) => tf.zerosLike(dy),
}));

/**
 * The number of values per channel: the product of the sizes of the reduced axes.
 *
 * @param shape Input shape.
 * @param axes Reduced axes.
 * @returns m.
 *
 * @example
 * ```ts
 * import { valuesPerChannel } from "./batch_norm_ops.ts";
 * console.log(valuesPerChannel([20, 24, 24, 8], [0, 1, 2])); // 11520
 * ```
 */
export function valuesPerChannel(shape: readonly number[], axes: readonly number[]): number {
  return _countOver(shape, axes);
}

/**
 * Sums a gradient over the axes along which its parameter was broadcast (ghost batches, or a
 * [C] parameter against [..., C]) and gives it the parameter's shape.
 */
function _sumTo(grad: Tensor, shape: number[]): Tensor {
  const axes = tf.backend_util.getReductionAxes(shape, grad.shape);
  const summed = axes.length ? tf.sum(grad, axes, true) : grad;
  return tf.util.arraysEqual(summed.shape, shape) ? summed : tf.reshape(summed, shape);
}

function _countOver(shape: readonly number[], axes: readonly number[]): number {
  return axes.reduce((n, axis) => n * shape[axis], 1);
}

function _checkEpsilon(epsilon: number, where: string) {
  if (typeof epsilon !== "number" || !(epsilon > 0) || !Number.isFinite(epsilon)) {
    throw new Error(`${where}: epsilon must be a positive number, received ${epsilon}`);
  }
}
