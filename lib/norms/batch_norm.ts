/**
 * bnlab's batch normalization layer for tfjs, written to be read next to the equations.
 *
 * Training (`model.fit`, or `apply(x, { training: true })`), per channel over the m values that
 * share it in the batch (every axis but `axis`):
 *
 *     μ_B  = (1/m) Σ xᵢ
 *     σ²_B = (1/m) Σ (xᵢ − μ_B)²                 (biased: divides by m)
 *     yᵢ   = γ · (xᵢ − μ_B) / √(σ²_B + ε) + β     (ε inside the root)
 *
 * and the running statistics are updated once per training call:
 *
 *     Keras form   (momentumConvention "keras",   default, m = 0.99):
 *         running = momentum·running + (1 − momentum)·batch
 *     PyTorch form (momentumConvention "pytorch", PyTorch's default 0.1):
 *         running = (1 − momentum)·running + momentum·batch
 *     momentum null: the cumulative average of every batch seen so far (PyTorch's None):
 *         running = running + (batch − running)/n  after the n-th batch
 *
 * where "batch" is μ_B for the mean, and σ²_B (runningVariance "biased", Keras/tfjs) or
 * σ²_B · m/(m − 1) (runningVariance "unbiased", PyTorch) for the variance.
 * Inference (`predict`, `training: false`) uses y = γ · (x − running mean)/√(running var + ε) + β.
 *
 * Backward (gradient "analytic", the default), with x̂ = (x − μ_B)/√(σ²_B + ε) and means over
 * the same m values:
 *
 *     dx = γ/√(σ²_B + ε) · (dy − mean(dy) − x̂·mean(dy·x̂)),   dγ = Σ dy·x̂,   dβ = Σ dy
 *
 * and, with gradient "constant-statistics" (μ_B, σ²_B detached, as in a flawed hand-written
 * layer), dx = γ/√(σ²_B + ε) · dy.
 *
 * Keras momentum 0.9 is PyTorch momentum 0.1: the same update written in the two conventions.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import {
  BATCH_NORM_GRADIENTS,
  type BatchNormGradient,
  batchNormTraining,
  moments,
  normalizeBatch,
  stopGradient,
  valuesPerChannel,
} from "./batch_norm_ops.ts";
import { runningAverage } from "./batch_norm_kernels.ts";
import {
  type ConfigDict,
  LayerBase,
  type LayerVariable,
  type Shape,
  type Tensor,
} from "../tfjs_types.ts";

/**
 * Batch Renormalization's clipping (Ioffe 2017): r ∈ [1/rMax, rMax], d ∈ [−dMax, dMax], the
 * bounds constant or warmed up. With `warmupSteps` N > 0, at the t-th training call (t = 0, 1,
 * …, counted in the non-trainable weight `renorm_steps`) the bounds are
 *
 *     rMax_t = 1 + (rMax − 1)·min(t/N, 1),   dMax_t = dMax·min(t/N, 1)
 *
 * so renorm starts as plain BN (r = 1, d = 0) and relaxes linearly to the full bounds, as
 * Ioffe (2017, §4) relaxes them from rMax = 1, dMax = 0.
 */
export interface RenormClipping {
  /** Upper bound of r = σ_B/σ_running. @default {3} */
  rMax?: number;
  /** Bound of |d| = |μ_B − μ_running|/σ_running. @default {5} */
  dMax?: number;
  /** Training calls over which the bounds grow from (1, 0) to (rMax, dMax); 0 = constant. @default {0} */
  warmupSteps?: number;
}

/** Options of {@linkcode BatchNorm}; each has a documented default. */
export interface BatchNormOptions {
  /** The channel axis: statistics are per index along it. @default {-1} */
  axis?: number;
  /**
   * Running-average momentum, read in `momentumConvention`; `null` = cumulative average.
   * @default {0.99 (Keras form)}
   */
  momentum?: number | null;
  /**
   * `keras`: running = m·running + (1−m)·batch; `pytorch`: running = (1−m)·running + m·batch.
   * @default {"keras"}
   */
  momentumConvention?: "keras" | "pytorch";
  /** ε, added to the variance inside the square root. @default {1e-3} */
  epsilon?: number;
  /** Learn β (an offset). @default {true} */
  center?: boolean;
  /** Learn γ (a scale). @default {true} */
  scale?: boolean;
  /** Store the running variance `biased` (÷m, Keras/tfjs) or `unbiased` (÷(m−1), PyTorch). @default {"biased"} */
  runningVariance?: "biased" | "unbiased";
  /**
   * `analytic`: the closed-form backward pass; `autodiff`: tfjs differentiates (the same
   * gradient); `constant-statistics`: backpropagates as if μ_B and σ²_B were constants, the
   * flaw of a hand-written layer whose statistics are detached (see `BatchNormGradient`).
   * @default {"analytic"}
   */
  gradient?: BatchNormGradient;
  /** Batch Renormalization (Ioffe 2017). @default {false} */
  renorm?: boolean;
  /** Clipping of r and d for renorm. @default {{ rMax: 3, dMax: 5, warmupSteps: 0 }} */
  renormClipping?: RenormClipping;
  /** Keras-form momentum of the statistics renorm corrects towards. @default {0.99} */
  renormMomentum?: number;
  /**
   * Ghost batch norm: split each batch into virtual batches of this size, each normalized with
   * its own statistics; the running statistics are updated with their average (as Keras does).
   * @default {null (off)}
   */
  virtualBatchSize?: number | null;
  /** Initial γ. @default {"ones"} */
  gammaInitializer?: "ones" | "zeros";
  /** Initial β. @default {"zeros"} */
  betaInitializer?: "ones" | "zeros";
  /** Layer name. */
  name?: string;
  /** Input shape, when this is the first layer. */
  inputShape?: (number | null)[];
  /** Whether the weights train. @default {true} */
  trainable?: boolean;
}

/** The defaults of every option (Keras's, except where noted in {@linkcode BatchNormOptions}). */
export const BATCH_NORM_DEFAULTS: Readonly<{
  axis: number;
  momentum: number | null;
  momentumConvention: "keras" | "pytorch";
  epsilon: number;
  center: boolean;
  scale: boolean;
  runningVariance: "biased" | "unbiased";
  gradient: BatchNormGradient;
  renorm: boolean;
  renormClipping: Readonly<Required<RenormClipping>>;
  renormMomentum: number;
  virtualBatchSize: number | null;
  gammaInitializer: "ones" | "zeros";
  betaInitializer: "ones" | "zeros";
}> = Object.freeze({
  axis: -1,
  momentum: 0.99 as number | null,
  momentumConvention: "keras" as "keras" | "pytorch",
  epsilon: 1e-3,
  center: true,
  scale: true,
  runningVariance: "biased" as "biased" | "unbiased",
  gradient: "analytic" as BatchNormGradient,
  renorm: false,
  renormClipping: Object.freeze({ rMax: 3, dMax: 5, warmupSteps: 0 }),
  renormMomentum: 0.99,
  virtualBatchSize: null as number | null,
  gammaInitializer: "ones" as "ones" | "zeros",
  betaInitializer: "zeros" as "ones" | "zeros",
});

/**
 * Batch normalization as a tfjs layer, with both momentum conventions, biased or unbiased
 * running variance, an analytic or autodiff backward pass, renorm and ghost batches.
 *
 * @example Normalize a batch in training mode and read the updated running mean
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { BatchNorm } from "./batch_norm.ts";
 * await tf.setBackend("cpu");
 * const layer = new BatchNorm({ momentum: 0.1, momentumConvention: "pytorch" });
 * const y = layer.apply(tf.tensor2d([[1, 10], [3, 30]]), { training: true }) as tf.Tensor;
 * console.log(await layer.movingMean!.read().array()); // [ 0.2, 2 ] = 0.9·0 + 0.1·[2, 20]
 * console.log(await y.array()); // about [[-1, -1], [1, 1]]
 * ```
 */
export class BatchNorm extends LayerBase {
  /** Name under which the class is registered for serialization. */
  static className = "BatchNorm";

  /** The channel axis, as given (negative counts from the end). */
  readonly axis: number;
  /** The running-average momentum in `momentumConvention`'s form; `null`: cumulative average. */
  readonly momentum: number | null;
  /** How `momentum` is read: Keras (weight of the old value) or PyTorch (weight of the batch). */
  readonly momentumConvention: "keras" | "pytorch";
  /** ε added to the variance before the square root. */
  readonly epsilon: number;
  /** Whether β is learned. */
  readonly center: boolean;
  /** Whether γ is learned. */
  readonly scale: boolean;
  /** Whether the running variance averages the biased (÷m) or unbiased (÷(m − 1)) batch variance. */
  readonly runningVariance: "biased" | "unbiased";
  /** How the backward pass is computed. */
  readonly gradient: BatchNormGradient;
  /** Whether batch renormalization is on. */
  readonly renorm: boolean;
  /** Renorm's bounds on r and d and its warm-up. */
  readonly renormClipping: Required<RenormClipping>;
  /** Momentum (Keras form) of renorm's mean and standard deviation. */
  readonly renormMomentum: number;
  /** Ghost-batch size: statistics over sub-batches of this many examples; `null`: the whole batch. */
  readonly virtualBatchSize: number | null;
  /** Initial value of γ. */
  readonly gammaInitializer: "ones" | "zeros";
  /** Initial value of β. */
  readonly betaInitializer: "ones" | "zeros";

  /** γ (absent with `scale: false`). */
  gamma?: LayerVariable;
  /** β (absent with `center: false`). */
  beta?: LayerVariable;
  /** Running mean. */
  movingMean?: LayerVariable;
  /** Running variance (biased or unbiased, see `runningVariance`). */
  movingVariance?: LayerVariable;
  /** Number of training batches seen (used by the cumulative average). */
  batchesSeen?: LayerVariable;
  /** Renorm's mean and standard deviation, updated with `renormMomentum`. */
  renormMean?: LayerVariable;
  /** Renorm's running standard deviation. */
  renormStddev?: LayerVariable;
  /** Renorm's count of training calls, for the warm-up (only with `warmupSteps` > 0). */
  renormSteps?: LayerVariable;

  #channelAxis = -1;

  /**
   * Creates the layer; its weights are made on first use (`build`).
   *
   * @param options The layer's options; see {@linkcode BatchNormOptions}.
   */
  constructor(options: BatchNormOptions = {}) {
    super(
      { name: options.name, inputShape: options.inputShape, trainable: options.trainable } as never,
    );
    const d = BATCH_NORM_DEFAULTS;
    this.supportsMasking = true;
    this.axis = options.axis ?? d.axis;
    this.momentum = options.momentum === undefined ? d.momentum : options.momentum;
    this.momentumConvention = options.momentumConvention ?? d.momentumConvention;
    this.epsilon = options.epsilon ?? d.epsilon;
    this.center = options.center ?? d.center;
    this.scale = options.scale ?? d.scale;
    this.runningVariance = options.runningVariance ?? d.runningVariance;
    this.gradient = options.gradient ?? d.gradient;
    this.renorm = options.renorm ?? d.renorm;
    this.renormClipping = { ...d.renormClipping, ...options.renormClipping };
    this.renormMomentum = options.renormMomentum ?? d.renormMomentum;
    this.virtualBatchSize = options.virtualBatchSize ?? d.virtualBatchSize;
    this.gammaInitializer = options.gammaInitializer ?? d.gammaInitializer;
    this.betaInitializer = options.betaInitializer ?? d.betaInitializer;
    _validate(this);
  }

  /**
   * Creates the weights for the input's channel count.
   *
   * @param inputShape The input's shape.
   */
  override build(inputShape: Shape | Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as Shape;
    const rank = shape.length;
    if (rank < 2) {
      throw new Error(
        `BatchNorm: input must have rank >= 2 ([batch, features] or NHWC), received shape ${
          _shape(shape)
        }`,
      );
    }
    const axis = this.axis < 0 ? rank + this.axis : this.axis;
    if (axis <= 0 || axis >= rank) {
      throw new Error(
        `BatchNorm: axis must be in [${-rank + 1}, ${rank - 1}] and not the batch axis for input ` +
          `shape ${_shape(shape)}, received ${this.axis}`,
      );
    }
    const channels = shape[axis];
    if (channels === null || channels === undefined) {
      throw new Error(`BatchNorm: the channel axis ${this.axis} of ${_shape(shape)} must be known`);
    }
    this.#channelAxis = axis;
    const init = (name: "ones" | "zeros") =>
      name === "ones" ? tf.initializers.ones() : tf.initializers.zeros();
    if (this.scale) {
      this.gamma = this.addWeight("gamma", [channels], "float32", init(this.gammaInitializer));
    }
    if (this.center) {
      this.beta = this.addWeight("beta", [channels], "float32", init(this.betaInitializer));
    }
    // Non-trainable state: float32, no regularizer.
    const state = (name: string, shape: number[], initial: "ones" | "zeros") =>
      this.addWeight(name, shape, "float32", init(initial), undefined, false);
    this.movingMean = state("moving_mean", [channels], "zeros");
    this.movingVariance = state("moving_variance", [channels], "ones");
    if (this.momentum === null) this.batchesSeen = state("batches_seen", [], "zeros");
    if (this.renorm) {
      this.renormMean = state("renorm_mean", [channels], "zeros");
      this.renormStddev = state("renorm_stddev", [channels], "ones");
      if (this.renormClipping.warmupSteps > 0) {
        this.renormSteps = state("renorm_steps", [], "zeros");
      }
    }
    this.built = true;
  }

  /**
   * The output's shape: the input's.
   *
   * @param inputShape The input's shape.
   * @returns The same shape.
   */
  override computeOutputShape(inputShape: Shape | Shape[]): Shape | Shape[] {
    return inputShape;
  }

  /**
   * Normalizes a batch: with its own statistics (and updating the running ones) when
   * `kwargs.training` is true, with the running statistics otherwise.
   *
   * @param inputs The input tensor.
   * @param kwargs `training`: whether the layer is in training mode.
   * @returns The normalized tensor.
   */
  override call(inputs: Tensor | Tensor[], kwargs: { training?: boolean }): Tensor {
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    const training = kwargs?.training ?? false;
    return tf.tidy(() => (training ? this.#training(x) : this.#inference(x)));
  }

  #inference(x: Tensor): Tensor {
    const shape = this.#broadcastShape(x.rank);
    return normalizeBatch(
      x,
      this.movingMean!.read().reshape(shape),
      this.movingVariance!.read().reshape(shape),
      {
        epsilon: this.epsilon,
        scale: this.gamma?.read().reshape(shape),
        offset: this.beta?.read().reshape(shape),
      },
    );
  }

  #training(input: Tensor): Tensor {
    const axis = this.#channelAxis;
    let x = input;
    let axes = input.shape.map((_, i) => i).filter((i) => i !== axis);
    let shape = this.#broadcastShape(input.rank);
    const batch = input.shape[0];
    const ghost = this.virtualBatchSize !== null && this.virtualBatchSize !== batch;
    if (ghost) {
      const v = this.virtualBatchSize!;
      if (batch % v !== 0) {
        throw new Error(
          `BatchNorm: virtualBatchSize ${v} must divide the batch size, received a batch of ${batch}`,
        );
      }
      // [B, ...] → [B/v, v, ...]: each virtual batch gets its own statistics.
      x = tf.reshape(input, [batch / v, v, ...input.shape.slice(1)]);
      axes = x.shape.map((_, i) => i).filter((i) => i !== 0 && i !== axis + 1);
      shape = [1, ...shape];
    }
    const m = valuesPerChannel(x.shape, axes);
    if (m <= 1) {
      throw new Error(
        `BatchNorm: expected more than 1 value per channel when training, received input of shape ${
          _shape(input.shape)
        }`,
      );
    }
    const gamma = this.gamma?.read(), beta = this.beta?.read();
    // γ and β are [C]: they broadcast along a last channel axis as they are, and are reshaped
    // to broadcast along another.
    const last = axis === input.rank - 1;
    let scale = last ? gamma : gamma?.reshape(shape);
    let offset = last ? beta : beta?.reshape(shape);
    let renormUpdate: (() => void) | undefined;
    if (this.renorm) {
      // r and d are constants of the gradient (Ioffe 2017, Algorithm 1).
      const stats = moments(x, axes, true);
      const sigma = tf.sqrt(tf.add(stats.variance, this.epsilon));
      const runningMean = this.renormMean!.read().reshape(shape);
      const runningStd = this.renormStddev!.read().reshape(shape);
      const { rMin, rMax, dMax } = this.#renormBounds();
      const ratio = tf.div(sigma, runningStd);
      const r = stopGradient(tf.minimum(tf.maximum(ratio, rMin), rMax));
      const shift = tf.div(tf.sub(stats.mean, runningMean), runningStd);
      const d = stopGradient(tf.minimum(tf.maximum(shift, tf.neg(dMax)), dMax));
      // γ·(x̂·r + d) + β = (γr)·x̂ + (γd + β): renorm is BN with an adjusted scale and offset.
      const gamma = scale ?? tf.onesLike(r);
      offset = offset ? tf.add(tf.mul(gamma, d), offset) : tf.mul(gamma, d);
      scale = tf.mul(gamma, r);
      renormUpdate = () => {
        const batchMean = _average(stats.mean, ghost);
        const batchStd = _average(sigma, ghost);
        _keras(this.renormMean!, batchMean, this.renormMomentum);
        _keras(this.renormStddev!, batchStd, this.renormMomentum);
        this.renormSteps?.write(tf.add(this.renormSteps.read(), 1));
      };
    }
    const { y, mean, variance } = batchNormTraining(x, {
      axes,
      epsilon: this.epsilon,
      scale,
      offset,
      gradient: this.gradient,
    });
    this.#updateRunning(_average(mean, ghost), _average(variance, ghost), m);
    renormUpdate?.();
    return ghost ? tf.reshape(y, input.shape) : y;
  }

  #updateRunning(batchMean: Tensor, batchVariance: Tensor, m: number) {
    const factor = this.runningVariance === "unbiased" ? m / (m - 1) : null;
    if (this.momentum === null) {
      const variance = factor === null ? batchVariance : tf.mul(batchVariance, factor);
      const n = tf.add(this.batchesSeen!.read(), 1);
      this.batchesSeen!.write(n);
      const step = (running: LayerVariable, value: Tensor) => {
        const old = running.read();
        running.write(tf.add(old, tf.div(tf.sub(tf.reshape(value, old.shape), old), n)));
      };
      step(this.movingMean!, batchMean);
      step(this.movingVariance!, variance);
      return;
    }
    const keep = this.momentumConvention === "keras" ? this.momentum : 1 - this.momentum;
    _keras(this.movingMean!, batchMean, keep);
    _keras(this.movingVariance!, batchVariance, keep, factor);
  }

  /** rMax and dMax of this training call: constant, or warmed up (see {@linkcode RenormClipping}). */
  #renormBounds(): { rMin: Tensor; rMax: Tensor; dMax: Tensor } {
    const { rMax, dMax, warmupSteps } = this.renormClipping;
    if (!this.renormSteps) {
      return { rMin: tf.scalar(1 / rMax), rMax: tf.scalar(rMax), dMax: tf.scalar(dMax) };
    }
    const fraction = tf.minimum(tf.div(this.renormSteps.read(), warmupSteps), 1);
    const rMaxNow = tf.add(1, tf.mul(rMax - 1, fraction));
    return { rMin: tf.div(1, rMaxNow), rMax: rMaxNow, dMax: tf.mul(dMax, fraction) };
  }

  #broadcastShape(rank: number): number[] {
    const shape = new Array<number>(rank).fill(1);
    shape[this.#channelAxis] = -1;
    return shape;
  }

  /**
   * The layer's options, for serialization.
   *
   * @returns The options by name.
   */
  override getConfig(): ConfigDict {
    return {
      ...super.getConfig(),
      axis: this.axis,
      momentum: this.momentum,
      momentumConvention: this.momentumConvention,
      epsilon: this.epsilon,
      center: this.center,
      scale: this.scale,
      runningVariance: this.runningVariance,
      gradient: this.gradient,
      renorm: this.renorm,
      // warmupSteps only when set, so constant clipping serializes as { rMax, dMax }.
      renormClipping: this.renormClipping.warmupSteps > 0
        ? { ...this.renormClipping }
        : { rMax: this.renormClipping.rMax, dMax: this.renormClipping.dMax },
      renormMomentum: this.renormMomentum,
      virtualBatchSize: this.virtualBatchSize,
      gammaInitializer: this.gammaInitializer,
      betaInitializer: this.betaInitializer,
    };
  }
}
tf.serialization.registerClass(BatchNorm);

/**
 * Creates a {@linkcode BatchNorm} layer.
 *
 * @param options The layer's options.
 * @returns The layer.
 *
 * @example PyTorch's BatchNorm defaults
 * ```ts
 * import { batchNorm } from "./batch_norm.ts";
 * const layer = batchNorm({ momentum: 0.1, momentumConvention: "pytorch", epsilon: 1e-5,
 *   runningVariance: "unbiased" });
 * console.log(layer.getConfig().momentum); // 0.1
 * ```
 */
export function batchNorm(options: BatchNormOptions = {}): BatchNorm {
  return new BatchNorm(options);
}

/**
 * running ← keep·running + (1 − keep)·value (the Keras form), value·factor when a factor is
 * given: a named kernel where the backend registers one, else tfjs ops (batch_norm_kernels.ts).
 */
function _keras(
  running: LayerVariable,
  value: Tensor,
  keep: number,
  factor: number | null = null,
) {
  running.write(runningAverage(running.read(), value, { keep, factor }));
}

/**
 * Per-channel statistics (one value per channel, in any shape); ghost batches' statistics are
 * averaged (axis 0).
 */
function _average(stat: Tensor, ghost: boolean): Tensor {
  return ghost ? tf.reshape(tf.mean(stat, 0), [-1]) : stat;
}

function _validate(layer: BatchNorm) {
  const fail = (what: string, received: unknown) => {
    // JSON.stringify would print NaN and ±Infinity as null.
    const shown = typeof received === "number" ? String(received) : JSON.stringify(received);
    throw new Error(`BatchNorm: ${what}, received ${shown}`);
  };
  if (!Number.isInteger(layer.axis)) fail("axis must be an integer", layer.axis);
  if (layer.momentum !== null && !(layer.momentum >= 0 && layer.momentum <= 1)) {
    fail("momentum must be in [0, 1] or null", layer.momentum);
  }
  if (!["keras", "pytorch"].includes(layer.momentumConvention)) {
    fail('momentumConvention must be "keras" or "pytorch"', layer.momentumConvention);
  }
  if (!(layer.epsilon > 0) || !Number.isFinite(layer.epsilon)) {
    fail("epsilon must be a positive number", layer.epsilon);
  }
  if (typeof layer.center !== "boolean") fail("center must be a boolean", layer.center);
  if (typeof layer.scale !== "boolean") fail("scale must be a boolean", layer.scale);
  if (!["biased", "unbiased"].includes(layer.runningVariance)) {
    fail('runningVariance must be "biased" or "unbiased"', layer.runningVariance);
  }
  if (!BATCH_NORM_GRADIENTS.includes(layer.gradient)) {
    fail(`gradient must be one of ${BATCH_NORM_GRADIENTS.join(", ")}`, layer.gradient);
  }
  const { rMax, dMax, warmupSteps } = layer.renormClipping;
  if (!(rMax >= 1) || !Number.isFinite(rMax)) {
    fail("renormClipping.rMax must be a number >= 1", rMax);
  }
  if (!(dMax >= 0) || !Number.isFinite(dMax)) {
    fail("renormClipping.dMax must be a number >= 0", dMax);
  }
  if (!Number.isInteger(warmupSteps) || warmupSteps < 0) {
    fail("renormClipping.warmupSteps must be an integer >= 0", warmupSteps);
  }
  if (!(layer.renormMomentum >= 0 && layer.renormMomentum <= 1)) {
    fail("renormMomentum must be in [0, 1]", layer.renormMomentum);
  }
  const v = layer.virtualBatchSize;
  if (v !== null && !(Number.isInteger(v) && v > 1)) {
    fail("virtualBatchSize must be an integer > 1 or null", v);
  }
  for (const key of ["gammaInitializer", "betaInitializer"] as const) {
    if (!["ones", "zeros"].includes(layer[key])) {
      fail(`${key} must be "ones" or "zeros"`, layer[key]);
    }
  }
}

function _shape(shape: readonly (number | null)[]): string {
  return `[${shape.map((s) => s ?? "null").join(", ")}]`;
}
