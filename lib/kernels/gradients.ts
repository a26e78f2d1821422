/**
 * Gradients that replace tfjs 4.22's registered ones where those are slow, with the same
 * floats. `initBackend` registers them (for every backend: a gradient is not per backend).
 *
 * tfjs's gradients of `Sum` and `Mean` multiply the incoming gradient by `ones(x.shape)`, a
 * tensor tfjs fills element by element in JavaScript and then uploads: with tfjs's
 * BatchNormalization on LeNet's first conv output ([20, 24, 24, 20]), `tf.moments`' two
 * `Mean`s cost two 230,400-float arrays per step, ≈15% of a step's time on wasm (V8's
 * sampling profiler: `ones` and its fill loop). Multiplying by one is exact, so broadcasting
 * the gradient (a `Tile`, a copy) gives the same values; for `Mean` the division by the count
 * runs on the small tensor before the broadcast, the same float division per element.
 *
 * On wasm the broadcast runs as one kernel (`BROADCAST_LEADING`, tile.ts) where the reduced
 * axes are the leading ones, instead of a `Reshape`, a `RealDiv` and a `Tile`; and `Add`'s
 * and `Sub`'s gradients sum an operand broadcast along leading axes (a bias, `tf.moments`'
 * mean) in one kernel (`LEADING_SUM_TO`, reduce_leading.ts), instead of a `Sum`, a `Neg`
 * for Sub's b and a `Reshape`: the same column sums, negation exact. With bnlab's native
 * kernels, four more run as one native pass each, with the floats of tfjs's op sequences
 * (tests/gradients_test.ts compares them by `Object.is`): tfjs's `FusedBatchNorm` gradient
 * (≈15 passes over the activation), ReLU's (`Step` then `Multiply`), the sigmoid's (`Sub`,
 * `Multiply`, `Multiply` from its output) and the square's (`Multiply` by 2, then by dy).
 * `BROADCAST_LEADING`, `LEADING_SUM_TO` and `SQUARE_GRAD` save 25 of the kernel calls of a
 * LeNet step with tfjs's BatchNormalization on tfjs's ops (with the native kernels, that
 * layer trains on two kernels of its own: tfjs_batch_norm.ts).
 * Elsewhere, and inside a recorded backward pass (a higher-order gradient, which needs tfjs's
 * differentiable ops), tfjs's gradients run.
 *
 * Each replacement keeps the gradient it replaced (`original`), for comparisons and tests.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { FUSED_BATCH_NORM_GRAD } from "./batch_norm_native.ts";
import { RELU_GRAD, SIGMOID_GRAD, SQUARE_GRAD } from "./elementwise.ts";
import { nativeKernels } from "./native_library.ts";
import { LEADING_SUM_TO, leadingAxesCount } from "./reduce_leading.ts";
import { BROADCAST_LEADING } from "./tile.ts";

/** A gradient config that replaces another; it keeps the one it replaced. */
export interface GradientReplacement extends tf.GradConfig {
  /** The gradient registered before, as `tf.getGradient` returned it. */
  readonly original: tf.GradConfig;
}

/** The incoming gradient reshaped to x's rank, reduced axes kept as size 1. */
function _expanded(dy: tf.Tensor, x: tf.Tensor, axes: number[]): tf.Tensor {
  const shape = x.shape.slice();
  for (const axis of axes) shape[axis] = 1;
  const expanded = tf.reshape(dy, shape);
  // tfjs multiplies by a float32 `ones`, which makes an int32 gradient float32.
  return expanded.dtype === "float32" ? expanded : tf.cast(expanded, "float32");
}

function _reduction(kernelName: string, original: tf.GradConfig): GradientReplacement {
  const mean = kernelName === tf.Mean;
  return {
    kernelName,
    inputsToSave: ["x"],
    gradFunc: (dy, saved, attrs) => {
      const [x] = saved;
      const axes = tf.util.parseAxisParam((attrs as { axis: number | number[] }).axis, x.shape);
      const count = axes.reduce((n, axis) => n * x.shape[axis], 1);
      const derX = () => {
        if (_broadcastLeadingUsable(dy as tf.Tensor, x, axes)) {
          const broadcast = { shape: x.shape, divisor: mean ? count : 1 };
          return tf.engine().runKernel(
            BROADCAST_LEADING,
            { x: dy as tf.Tensor },
            broadcast,
          ) as tf.Tensor;
        }
        const expanded = _expanded(dy as tf.Tensor, x, axes);
        return tf.broadcastTo(mean ? tf.div(expanded, count) : expanded, x.shape);
      };
      return { x: derX };
    },
    original,
  };
}

/**
 * Whether the gradient of a sum or mean of x over `axes` can run as one
 * {@linkcode BROADCAST_LEADING} kernel: on wasm outside a recorded backward pass, a float32
 * gradient, and the axes leading ones of a non-empty x.
 */
function _broadcastLeadingUsable(dy: tf.Tensor, x: tf.Tensor, axes: number[]): boolean {
  return _kernelUsable(BROADCAST_LEADING) && dy.dtype === "float32" && x.size > 0 &&
    axes.length > 0 && leadingAxesCount(axes, x.rank) === axes.length;
}

/**
 * Whether the wasm kernel `kernelName` can run in a gradient: on wasm, the kernel registered,
 * and outside a recorded backward pass (a higher-order gradient needs tfjs's differentiable
 * ops).
 */
function _kernelUsable(kernelName: string): boolean {
  return tf.getBackend() === "wasm" && tf.engine().state.gradientDepth === 0 &&
    tf.getKernel(kernelName, "wasm") !== undefined;
}

/**
 * Whether the native gradient kernel `kernelName` can run: on wasm with the native kernels on,
 * the kernel registered, and outside a recorded backward pass (a higher-order gradient needs
 * tfjs's differentiable ops).
 */
function _nativeGradUsable(kernelName: string): boolean {
  return nativeKernels() !== null && _kernelUsable(kernelName);
}

/**
 * Whether tfjs's `FusedBatchNorm` gradient can run as one native kernel: on wasm with the
 * native kernels, outside a recorded backward pass (a higher-order gradient needs tfjs's
 * differentiable ops), for the case tfjs's gradient itself handles — x of rank 4 (channels
 * last) in float32, mean and variance (and scale, when given) one value per channel.
 */
function _fusedGradUsable(x: tf.Tensor, stats: (tf.Tensor | undefined)[]): boolean {
  if (!_nativeGradUsable(FUSED_BATCH_NORM_GRAD)) return false;
  const channels = x.shape[3];
  return x.rank === 4 && x.dtype === "float32" && x.size > 0 &&
    stats.every((t) => t == null || (t.rank === 1 && t.size === channels && t.dtype === "float32"));
}

function _fusedBatchNorm(original: tf.GradConfig): GradientReplacement {
  return {
    kernelName: tf.FusedBatchNorm,
    inputsToSave: ["x", "mean", "variance", "scale"],
    gradFunc: (dy, saved, attrs) => {
      const [x, mean, variance, scale] = saved;
      if (!_fusedGradUsable(x, [mean, variance, scale])) {
        return original.gradFunc(dy, saved, attrs);
      }
      const inputs: tf.NamedTensorMap = { dy: dy as tf.Tensor, x, mean, variance };
      if (scale != null) inputs.scale = scale;
      const [dx, dMean, dVariance, dScale, dOffset] = tf.engine().runKernel(
        FUSED_BATCH_NORM_GRAD,
        inputs,
        attrs as tf.NamedAttrMap,
      ) as tf.Tensor[];
      return {
        x: () => dx,
        mean: () => dMean,
        variance: () => dVariance,
        scale: () => dScale,
        offset: () => dOffset,
      };
    },
    original,
  };
}

/**
 * An element-wise op's gradient as one native kernel `gradKernel` of { dy, x } (the saved
 * input) or { dy, y } (the saved output), where float32 and usable; else tfjs's.
 */
function _elementwise(
  kernelName: string,
  gradKernel: string,
  saved: "x" | "y",
  original: tf.GradConfig,
): GradientReplacement {
  return {
    kernelName,
    ...(saved === "x" ? { inputsToSave: ["x"] } : { outputsToSave: [true] }),
    gradFunc: (dy, tensors, attrs) => {
      const [t] = tensors;
      if (
        t.dtype !== "float32" || (dy as tf.Tensor).dtype !== "float32" ||
        !_nativeGradUsable(gradKernel)
      ) {
        return original.gradFunc(dy, tensors, attrs);
      }
      const inputs = { dy: dy as tf.Tensor, [saved]: t };
      return { x: () => tf.engine().runKernel(gradKernel, inputs) as tf.Tensor };
    },
    original,
  };
}

/**
 * `Add`'s or `Sub`'s gradient: tfjs's, except that an operand broadcast along leading axes
 * (a bias, a per-channel mean) gets its gradient, the incoming one summed over those axes
 * (negated for `Sub`'s b), from one {@linkcode LEADING_SUM_TO} kernel on wasm.
 */
function _broadcastBinary(
  kernelName: string,
  signB: 1 | -1,
  original: tf.GradConfig,
): GradientReplacement {
  return {
    kernelName,
    inputsToSave: ["a", "b"],
    gradFunc: (dy, saved, attrs) => {
      const grads = original.gradFunc(dy, saved, attrs);
      const [a, b] = saved;
      for (const [name, operand, sign] of [["a", a, 1], ["b", b, signB]] as const) {
        if (_leadingSumUsable(dy as tf.Tensor, operand)) {
          grads[name] = () =>
            tf.engine().runKernel(LEADING_SUM_TO, { x: dy as tf.Tensor }, {
              shape: operand.shape,
              sign,
            }) as tf.Tensor;
        }
      }
      return grads;
    },
    original,
  };
}

/**
 * Whether the gradient of `operand`, broadcast to dy's shape, can be one
 * {@linkcode LEADING_SUM_TO} kernel: on wasm outside a recorded backward pass, float32, and
 * broadcast along dy's leading axes only.
 */
function _leadingSumUsable(dy: tf.Tensor, operand: tf.Tensor): boolean {
  if (dy.dtype !== "float32" || dy.size === 0 || operand.size === dy.size) return false;
  const axes = tf.backend_util.getReductionAxes(operand.shape, dy.shape);
  return axes.length > 0 && leadingAxesCount(axes, dy.rank) === axes.length &&
    _kernelUsable(LEADING_SUM_TO);
}

/**
 * How to replace gradients, by kernel name: each entry makes the replacing config from the
 * one registered. `installKernels` (`mod.ts`) applies them, for every backend.
 */
export const GRADIENT_REPLACEMENTS: ReadonlyArray<
  readonly [string, (original: tf.GradConfig) => GradientReplacement]
> = [
  [tf.Sum, (original) => _reduction(tf.Sum, original)],
  [tf.Mean, (original) => _reduction(tf.Mean, original)],
  [tf.Add, (original) => _broadcastBinary(tf.Add, 1, original)],
  [tf.Sub, (original) => _broadcastBinary(tf.Sub, -1, original)],
  [tf.Square, (original) => _elementwise(tf.Square, SQUARE_GRAD, "x", original)],
  [tf.FusedBatchNorm, _fusedBatchNorm],
  [tf.Relu, (original) => _elementwise(tf.Relu, RELU_GRAD, "x", original)],
  [tf.Sigmoid, (original) => _elementwise(tf.Sigmoid, SIGMOID_GRAD, "y", original)],
];

/**
 * The tfjs gradient that one of ours replaced, for comparisons; undefined when `kernelName`'s
 * gradient has not been replaced.
 *
 * @param kernelName A kernel name, e.g. `"Mean"`.
 * @returns The replaced gradient's config, or undefined.
 */
export function replacedGradient(kernelName: string): tf.GradConfig | undefined {
  return (tf.getGradient(kernelName) as Partial<GradientReplacement> | undefined)?.original;
}
