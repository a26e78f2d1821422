/**
 * tfjs's `BatchNormalization` layer in training as two native kernels on wasm, with its
 * floats.
 *
 * In training, tfjs-layers 4.22's layer computes `tf.moments` (a mean, a cast, a difference,
 * a square, a second mean), `tf.batchNorm`, then each moving average as a difference, a
 * product and a difference: 15 kernel calls forward, and through its ops' gradients about 12
 * backward, six of them passes over the whole activation. {@linkcode TFJS_BN_TRAINING} runs
 * the forward pass and the moving averages in one call, {@linkcode TFJS_BN_TRAINING_GRAD} the
 * gradient in one; each rounds every value to float32 where tfjs's kernels on wasm round it
 * (`bnlab_tfjs_bn_training` in native/bnlab_kernels.c says how), so that the layer trains to
 * the same floats (tests/tfjs_batch_norm_test.ts compares outputs, moving averages and
 * gradients by `Object.is`).
 *
 * {@linkcode setFusedTfjsBatchNorm} swaps the layer class's `call` for one that takes this
 * path in training on wasm with the native kernels loaded, at first order, for the layer's
 * usual configuration (the last axis, γ and β, float32 input of rank 2 to 4) where it sits
 * once in a model and its input feeds nothing else (a convolution's or dense layer's output,
 * as in LeNet and ResNet-20: where the input also feeds a later op, tfjs's tape would add that
 * op's gradient first, in another order); otherwise, and applied outside a model, it calls
 * tfjs's. `initBackend("wasm")` turns it on.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { nativeKernels } from "./native_library.ts";
import {
  floatOffset,
  heapFloats,
  type KernelArgs,
  rowsAndChannels,
  type WasmBackend,
} from "./wasm_kernel.ts";

/**
 * The layer's training step: { x [..., C], gamma, beta, movingMean, movingVariance } →
 * [y, mean, variance, new moving mean, new moving variance], attributes { epsilon, decay }
 * (decay = 1 − momentum, as a float32).
 */
export const TFJS_BN_TRAINING = "BnlabTfjsBatchNormTraining";

/** Its gradient: { dy, x, mean, variance, gamma } → [dx, dgamma, dbeta], attribute epsilon. */
export const TFJS_BN_TRAINING_GRAD = "BnlabTfjsBatchNormTrainingGrad";

/** The attributes of {@linkcode TFJS_BN_TRAINING}. */
interface _TrainingAttrs {
  epsilon: number;
  decay: number;
}

function _training(args: KernelArgs): tf.TensorInfo[] {
  const { x, gamma, beta, movingMean, movingVariance } = args.inputs as Record<
    string,
    tf.TensorInfo
  >;
  const { epsilon, decay } = args.attrs as unknown as _TrainingAttrs;
  const native = nativeKernels();
  if (native === null) throw new Error(`${TFJS_BN_TRAINING}: the native kernels are not loaded`);
  const backend = args.backend as unknown as WasmBackend;
  const [rows, channels] = rowsAndChannels(x.shape);
  const y = backend.makeOutput(x.shape, "float32");
  const stats = [0, 1, 2, 3].map(() => backend.makeOutput([channels], "float32"));
  // Offsets first: reading an input's offset may move its data and grow the heap.
  const offsets = [x, gamma, beta, movingMean, movingVariance, y, ...stats].map((info) =>
    floatOffset(backend, info)
  ) as [number, number, number, number, number, number, number, number, number, number];
  native.bnlab_tfjs_bn_training(
    heapFloats(backend, [x, gamma, beta, movingMean, movingVariance]),
    ...offsets,
    rows,
    channels,
    epsilon,
    decay,
  );
  return [y, ...stats];
}

function _trainingGrad(args: KernelArgs): tf.TensorInfo[] {
  const { dy, x, mean, variance, gamma } = args.inputs as Record<string, tf.TensorInfo>;
  const { epsilon } = args.attrs as unknown as { epsilon: number };
  const native = nativeKernels();
  if (native === null) {
    throw new Error(`${TFJS_BN_TRAINING_GRAD}: the native kernels are not loaded`);
  }
  const backend = args.backend as unknown as WasmBackend;
  const [rows, channels] = rowsAndChannels(x.shape);
  const dx = backend.makeOutput(x.shape, "float32");
  const dGamma = backend.makeOutput([channels], "float32");
  const dBeta = backend.makeOutput([channels], "float32");
  // Offsets first: reading an input's offset may move its data and grow the heap.
  const offsets = [dy, x, mean, variance, gamma, dx, dGamma, dBeta].map((info) =>
    floatOffset(backend, info)
  ) as [number, number, number, number, number, number, number, number];
  native.bnlab_tfjs_bn_training_grad(
    heapFloats(backend, [dy, x, mean, variance, gamma]),
    ...offsets,
    rows,
    channels,
    epsilon,
  );
  return [dx, dGamma, dBeta];
}

/** The {@linkcode TFJS_BN_TRAINING} kernel for wasm (`initBackend("wasm")` registers it). */
export const tfjsBatchNormTrainingWasmConfig: tf.KernelConfig = {
  kernelName: TFJS_BN_TRAINING,
  backendName: "wasm",
  kernelFunc: _training as unknown as tf.KernelFunc,
};

/** The {@linkcode TFJS_BN_TRAINING_GRAD} kernel for wasm (`initBackend("wasm")` registers it). */
export const tfjsBatchNormTrainingGradWasmConfig: tf.KernelConfig = {
  kernelName: TFJS_BN_TRAINING_GRAD,
  backendName: "wasm",
  kernelFunc: _trainingGrad as unknown as tf.KernelFunc,
};

/** What this module reads of a tfjs-layers `SymbolicTensor`. */
interface _SymbolicTensor {
  id: number;
  sourceLayer?: { outboundNodes: { inputTensors: _SymbolicTensor[] }[] };
}

/** What this module reads of a tfjs `BatchNormalization` layer. */
interface _Layer {
  inboundNodes: { inputTensors: _SymbolicTensor[] }[];
  axis: number;
  momentum: number;
  epsilon: number;
  center: boolean;
  scale: boolean;
  gamma: _LayerVariable | null;
  beta: _LayerVariable | null;
  movingMean: _LayerVariable;
  movingVariance: _LayerVariable;
}

/** What this module uses of a tfjs-layers `LayerVariable`. */
interface _LayerVariable {
  read(): tf.Tensor;
  write(value: tf.Tensor): unknown;
}

type _Call = (
  this: _Layer,
  inputs: tf.Tensor | tf.Tensor[],
  kwargs: tf.serialization.ConfigDict,
) => tf.Tensor;

/** tfjs-layers' `BatchNormalization` class, from tfjs's serialization registry. */
const _layerClass = (tf.serialization.SerializationMap.getMap().classNameMap as Record<
  string,
  [{ prototype: { call: _Call } }, unknown]
>)["BatchNormalization"]?.[0];

/** tfjs's own `call`, as it was when this module loaded. */
const _tfjsCall: _Call | undefined = _layerClass?.prototype.call;

/**
 * Whether the layer sits once in a model graph and its input feeds nothing but it. tfjs's tape
 * adds the gradients that reach a tensor one at a time, the latest op's first: a consumer
 * recorded after the layer (a skip connection from the layer's input) would have its gradient
 * added before the layer's three terms, which the fused gradient adds as one.
 */
function _soleConsumer(layer: _Layer): boolean {
  if (layer.inboundNodes.length !== 1) return false;
  const inputs = layer.inboundNodes[0].inputTensors;
  if (inputs.length !== 1) return false;
  const x = inputs[0];
  let uses = 0;
  for (const node of x.sourceLayer?.outboundNodes ?? []) {
    for (const t of node.inputTensors) if (t.id === x.id) uses++;
  }
  return uses === 1;
}

/** A float32 tensor of `channels` values. */
function _perChannel(t: tf.Tensor | undefined, channels: number): boolean {
  return t !== undefined && t.dtype === "float32" && t.size === channels;
}

/** The training-mode input the kernels take, or undefined for tfjs's path. */
function _fusableInput(layer: _Layer, inputs: tf.Tensor | tf.Tensor[]): tf.Tensor | undefined {
  const x = Array.isArray(inputs) ? (inputs.length === 1 ? inputs[0] : undefined) : inputs;
  if (
    x === undefined || !(x instanceof tf.Tensor) || x.dtype !== "float32" || x.rank < 2 ||
    x.rank > 4 || !_soleConsumer(layer) ||
    x.size === 0 || tf.getBackend() !== "wasm" || nativeKernels() === null ||
    tf.getKernel(TFJS_BN_TRAINING, "wasm") === undefined ||
    (tf.engine().state as unknown as { gradientDepth: number }).gradientDepth > 1 ||
    !layer.center || !layer.scale || layer.gamma === null || layer.beta === null
  ) return undefined;
  const axis = layer.axis < 0 ? layer.axis + x.rank : layer.axis;
  const channels = x.shape[x.rank - 1];
  const parameters = [layer.gamma, layer.beta, layer.movingMean, layer.movingVariance];
  if (axis !== x.rank - 1 || !parameters.every((p) => _perChannel(p.read(), channels))) {
    return undefined;
  }
  return x;
}

/** The layer's training step on the kernels: y, with the moving averages written. */
function _fusedTraining(layer: _Layer, x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const attrs: _TrainingAttrs = {
      epsilon: layer.epsilon,
      decay: Math.fround(1 - layer.momentum),
    };
    const moving = {
      movingMean: layer.movingMean.read(),
      movingVariance: layer.movingVariance.read(),
    };
    let averages: tf.Tensor[] = [];
    const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const save = args.pop() as tf.GradSaveFunc;
      const [xs, gamma, beta] = args as tf.Tensor[];
      const [y, mean, variance, newMean, newVariance] = tf.engine().runKernel(
        TFJS_BN_TRAINING,
        { x: xs, gamma, beta, ...moving },
        { ...attrs },
      ) as tf.Tensor[];
      save([xs, mean, variance, gamma]);
      // Out of the op's scope: the variables take them below.
      averages = [tf.keep(newMean), tf.keep(newVariance)];
      return {
        value: y,
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
          const [sx, mean, variance, gamma] = saved;
          return tf.engine().runKernel(
            TFJS_BN_TRAINING_GRAD,
            { dy, x: sx, mean, variance, gamma },
            { epsilon: attrs.epsilon },
          ) as tf.Tensor[];
        },
      };
    });
    const y = op(x, layer.gamma!.read(), layer.beta!.read());
    layer.movingMean.write(averages[0]);
    layer.movingVariance.write(averages[1]);
    tf.dispose(averages); // the variables hold their data
    return y;
  });
}

/** tfjs's `call`, with the training step on the kernels where they take it. */
const _fusedCall: _Call = function (this: _Layer, inputs, kwargs) {
  const x = kwargs?.["training"] ? _fusableInput(this, inputs) : undefined;
  return x === undefined ? _tfjsCall!.call(this, inputs, kwargs) : _fusedTraining(this, x);
};

/**
 * Turns the fused training path of tfjs's `BatchNormalization` layer on or off (see the module
 * doc).
 *
 * @param enabled True to run the layer's training step on {@linkcode TFJS_BN_TRAINING} where
 *   it can; false to restore tfjs's `call`.
 * @returns Whether it was on before.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fusedTfjsBatchNorm, setFusedTfjsBatchNorm } from "./tfjs_batch_norm.ts";
 *
 * const before = setFusedTfjsBatchNorm(false);
 * assert.equal(fusedTfjsBatchNorm(), false);
 * setFusedTfjsBatchNorm(before);
 * ```
 */
export function setFusedTfjsBatchNorm(enabled: boolean): boolean {
  if (typeof enabled !== "boolean") {
    throw new Error(`setFusedTfjsBatchNorm: enabled must be a boolean, received ${enabled}`);
  }
  const before = fusedTfjsBatchNorm();
  if (_layerClass !== undefined) _layerClass.prototype.call = enabled ? _fusedCall : _tfjsCall!;
  return before;
}

/**
 * Whether tfjs's `BatchNormalization` layer takes the fused training path now.
 *
 * @returns True after `setFusedTfjsBatchNorm(true)` (which `initBackend("wasm")` calls).
 *
 * @example
 * ```ts
 * import { fusedTfjsBatchNorm } from "./tfjs_batch_norm.ts";
 * console.log(fusedTfjsBatchNorm());
 * ```
 */
export function fusedTfjsBatchNorm(): boolean {
  return _layerClass !== undefined && _layerClass.prototype.call === _fusedCall;
}
