/**
 * The TensorFlow.js types that bnlab's public signatures name, as aliases of tfjs's own: a
 * `Tensor` here is a `tf.Tensor` of `@tensorflow/tfjs` 4.22, and values of either type are
 * interchangeable. See https://js.tensorflow.org/api/4.22.0/ for their members.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type * as tfjs from "@tensorflow/tfjs";

/** A tfjs tensor (`tf.Tensor`) of any rank. */
export type Tensor = tfjs.Tensor;
/** A rank-0 tfjs tensor (`tf.Scalar`), e.g. a loss. */
export type Scalar = tfjs.Scalar;
/** A rank-2 tfjs tensor (`tf.Tensor2D`), e.g. a batch of one-hot labels `[n, classes]`. */
export type Tensor2D = tfjs.Tensor2D;
/** A rank-4 tfjs tensor (`tf.Tensor4D`), e.g. a batch of images `[n, height, width, channels]`. */
export type Tensor4D = tfjs.Tensor4D;
/** A tfjs layers model (`tf.LayersModel`). */
export type LayersModel = tfjs.LayersModel;
/** A tfjs sequential model (`tf.Sequential`), a {@linkcode LayersModel} built layer by layer. */
export type Sequential = tfjs.Sequential;
/** A tfjs optimizer (`tf.Optimizer`), e.g. `tf.train.sgd(0.01)`. */
export type Optimizer = tfjs.Optimizer;
/** Tensors by name (`tf.NamedTensorMap`), e.g. gradients by variable name. */
export type NamedTensorMap = tfjs.NamedTensorMap;
/** A tfjs layer (`tf.layers.Layer`), the base class of bnlab's normalization layers. */
export type Layer = tfjs.layers.Layer;
/** A weight of a tfjs layer (`tf.LayerVariable`), e.g. BN's γ or its running mean. */
export type LayerVariable = tfjs.LayerVariable;
/** A tensor shape in tfjs layers (`tf.Shape`): dimensions, `null` for the batch. */
export type Shape = tfjs.Shape;
/** A layer's serializable configuration (`tf.serialization.ConfigDict`). */
export type ConfigDict = tfjs.serialization.ConfigDict;
/** A weight initializer of tfjs layers, as `tf.initializers.zeros()` returns one. */
export type Initializer = ReturnType<(typeof tfjs)["initializers"]["zeros"]>;

/**
 * The tfjs layer class (`tf.layers.Layer`) that bnlab's layers extend, so that a subclass's
 * documentation names a public base.
 */
export const LayerBase: (typeof tfjs)["layers"]["Layer"] = tf.layers.Layer;
