/**
 * lib/kernels/fused_conv_training.ts: on wasm, a recorded linear `tf.fused.conv2d` runs as
 * `tf.conv2d` + `tf.add`, so a LeNet step computes one `Conv2DBackpropInput` instead of two,
 * with the same loss and gradients; everything else still goes to tfjs's fused op.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backend.ts";
import { setUnfusedConvTraining, unfusedConvTraining } from "../lib/kernels/fused_conv_training.ts";
import { type Activation, createLeNet, type Normalization } from "../lib/models/lenet.ts";
import { createRng } from "../lib/data/random.ts";
import { assertRelativeClose, uniform } from "./_kernel_test_utils.ts";

/** One training step's loss and gradients (by weight position), and its kernel calls by name. */
async function _step(
  normalization: Normalization,
  activation: Activation,
  unfused: boolean,
): Promise<{ loss: number; grads: Map<string, Float32Array>; calls: Map<string, number> }> {
  const before = setUnfusedConvTraining(unfused);
  try {
    const model = createLeNet({ normalization, activation, seed: 7 });
    const xs = tf.tensor4d(uniform(4 * 28 * 28, createRng(3)), [4, 28, 28, 1]);
    const ys = tf.oneHot(tf.tensor1d([3, 1, 4, 1], "int32"), 10);
    const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
    let result: { value: tf.Scalar; grads: tf.NamedTensorMap } | undefined;
    const profile = await tf.profile(() => {
      result = tf.variableGrads(
        () => tf.losses.softmaxCrossEntropy(ys, model.apply(xs, { training: true }) as tf.Tensor),
        variables,
      );
    });
    const calls = new Map<string, number>();
    for (const k of profile.kernels) calls.set(k.name, (calls.get(k.name) ?? 0) + 1);
    // Keyed by position: each model numbers its layers' names afresh.
    const grads = new Map<string, Float32Array>();
    for (const [i, v] of variables.entries()) {
      grads.set(`weight ${i} ${v.shape}`, await result!.grads[v.name].data() as Float32Array);
    }
    const loss = (await result!.value.data())[0];
    tf.dispose([xs, ys, result!.value, ...Object.values(result!.grads)]);
    model.dispose();
    return { loss, grads, calls };
  } finally {
    setUnfusedConvTraining(before);
  }
}

Deno.test("initBackend('wasm') turns the unfused training convolution on", async () => {
  await initBackend("wasm");
  assert.equal(unfusedConvTraining(), true);
});

for (const normalization of ["none", "custom", "tfjs"] as const) {
  for (const activation of ["relu", "sigmoid"] as const) {
    Deno.test(`LeNet (${normalization}, ${activation}): one Conv2DBackpropInput, same gradients`, async () => {
      await initBackend("wasm");
      const fused = await _step(normalization, activation, false);
      const unfused = await _step(normalization, activation, true);
      assert.equal(fused.calls.get("Conv2DBackpropInput"), 2);
      assert.equal(unfused.calls.get("Conv2DBackpropInput"), 1);
      assert.equal(unfused.calls.get("Conv2DBackpropFilter"), 2);
      assert.ok(Math.abs(unfused.loss - fused.loss) <= 1e-6 * Math.abs(fused.loss));
      assert.deepEqual([...unfused.grads.keys()].sort(), [...fused.grads.keys()].sort());
      for (const [name, g] of fused.grads) assertRelativeClose(unfused.grads.get(name)!, g, name);
    });
  }
}

Deno.test("inference, non-linear activations and other backends keep tfjs's fused op", async () => {
  const x = tf.tensor4d(uniform(2 * 6 * 6 * 2, createRng(5)), [2, 6, 6, 2]);
  const filter = tf.tensor4d(uniform(3 * 3 * 2 * 4, createRng(6)), [3, 3, 2, 4]);
  const bias = tf.tensor1d([0.1, -0.2, 0.3, 0]);
  const kernels = async (f: () => tf.Tensor) => {
    const profile = await tf.profile(() => {
      f().dispose();
    });
    return profile.kernels.map((k) => k.name);
  };
  const conv = (activation: tf.fused.Activation) => () =>
    tf.fused.conv2d({ x, filter, strides: 1, pad: "valid", bias, activation });
  const recorded = (activation: tf.fused.Activation) => () =>
    tf.grad((t: tf.Tensor) =>
      tf.fused.conv2d({ x: t as tf.Tensor4D, filter, strides: 1, pad: "valid", bias, activation })
        .sum()
    )(x);
  await initBackend("wasm");
  assert.ok((await kernels(conv("linear"))).includes("FusedConv2D"), "inference stays fused");
  assert.ok(!(await kernels(recorded("linear"))).includes("FusedConv2D"), "recorded: unfused");
  assert.ok((await kernels(recorded("relu"))).includes("Conv2D"), "relu: tfjs's unfused path");
  await initBackend("cpu");
  assert.ok((await kernels(recorded("linear"))).includes("FusedConv2D"), "cpu stays fused");
  await initBackend("wasm");
  tf.dispose([x, filter, bias]);
});

Deno.test("setUnfusedConvTraining switches and rejects non-booleans", async () => {
  await initBackend("wasm");
  assert.equal(setUnfusedConvTraining(false), true);
  assert.equal(unfusedConvTraining(), false);
  assert.equal(setUnfusedConvTraining(true), false);
  assert.throws(() => setUnfusedConvTraining(1 as unknown as boolean), {
    message: "setUnfusedConvTraining: enabled must be a boolean, received 1",
  });
});
