/**
 * Skips the input gradient of a network's first convolution on wasm.
 *
 * tfjs's layers API runs every `conv2d` layer through `tf.fused.conv2d`. While gradients are
 * recorded, that op stays fused when its activation is linear (as before a BN layer, or with a
 * separate activation layer) and then takes its gradient from one `tf.customGrad` function
 * that computes the input gradient (`Conv2DBackpropInput`) and the filter gradient together,
 * whether or not anything needs the input's. For the first layer nothing does: its input is
 * the data. The unfused ops give each input a gradient of its own that tfjs computes only
 * when the tape leads to a variable through it, so the first layer's is never run.
 *
 * {@linkcode setUnfusedConvTraining} swaps `tf.fused.conv2d` for a function that, while
 * gradients are recorded on wasm and the activation is linear, runs tfjs's own unfused
 * composition (`tf.conv2d`, then `tf.add` of the bias) — what tfjs itself does for non-linear
 * activations — and otherwise calls tfjs's. Values and gradients are those of the fused op
 * (`tests/fused_conv_training_test.ts` compares them); a LeNet step at batch 20 loses one of
 * its two `Conv2DBackpropInput` calls (≈2–10% of the step, `bench/training.ts`).
 * `initBackend("wasm")` turns it on.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";

/** The arguments of `tf.fused.conv2d` this module reads. */
interface _FusedConv2dArgs {
  x: tf.Tensor3D | tf.Tensor4D | tf.TensorLike;
  filter: tf.Tensor4D | tf.TensorLike;
  strides: [number, number] | number;
  pad: "valid" | "same" | number | tf.backend_util.ExplicitPadding;
  dataFormat?: "NHWC" | "NCHW";
  dilations?: [number, number] | number;
  dimRoundingMode?: "floor" | "round" | "ceil";
  bias?: tf.Tensor | tf.TensorLike;
  activation?: tf.fused.Activation;
}

type _FusedConv2d = (args: _FusedConv2dArgs) => tf.Tensor;

/** `tf.fused`, whose `conv2d` property tfjs's layers look up at every call. */
const _fused = tf.fused as unknown as { conv2d: _FusedConv2d };

/** tfjs's own `tf.fused.conv2d`, as it was when this module loaded. */
const _tfjsConv2d: _FusedConv2d = _fused.conv2d;

/** `tf.fused.conv2d` with the first layer's input gradient left to the tape. */
const _unfusedInTraining: _FusedConv2d = (args) => {
  const activation = args.activation ?? "linear";
  const recording = (tf.engine().state as unknown as { gradientDepth: number }).gradientDepth > 0;
  if (!recording || activation !== "linear" || tf.getBackend() !== "wasm") return _tfjsConv2d(args);
  const y = tf.conv2d(
    args.x as tf.Tensor4D,
    args.filter,
    args.strides,
    args.pad,
    args.dataFormat ?? "NHWC",
    args.dilations ?? [1, 1],
    args.dimRoundingMode,
  );
  return args.bias == null ? y : tf.add(y, args.bias);
};

/**
 * Turns the unfused training path of `tf.fused.conv2d` on or off (see the module doc).
 *
 * @param enabled True to route recorded linear fused convolutions on wasm through
 *   `tf.conv2d` + `tf.add`; false to restore tfjs's `tf.fused.conv2d`.
 * @returns Whether it was on before.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { setUnfusedConvTraining, unfusedConvTraining } from "./fused_conv_training.ts";
 *
 * const before = setUnfusedConvTraining(false);
 * assert.equal(unfusedConvTraining(), false);
 * setUnfusedConvTraining(before);
 * ```
 */
export function setUnfusedConvTraining(enabled: boolean): boolean {
  if (typeof enabled !== "boolean") {
    throw new Error(`setUnfusedConvTraining: enabled must be a boolean, received ${enabled}`);
  }
  const before = unfusedConvTraining();
  _fused.conv2d = enabled ? _unfusedInTraining : _tfjsConv2d;
  return before;
}

/**
 * Whether `tf.fused.conv2d` takes the unfused training path now.
 *
 * @returns True after `setUnfusedConvTraining(true)` (which `initBackend("wasm")` calls).
 *
 * @example
 * ```ts
 * import { unfusedConvTraining } from "./fused_conv_training.ts";
 * console.log(unfusedConvTraining());
 * ```
 */
export function unfusedConvTraining(): boolean {
  return _fused.conv2d === _unfusedInTraining;
}
