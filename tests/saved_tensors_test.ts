/**
 * lib/kernels/saved_tensors.ts: on wasm at first order, the tensors a gradient saves are kept
 * without an `Identity` dispatch or a tape node, with the same gradients (every float), no
 * tensor left behind, and higher-order gradients unchanged.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backend.ts";
import { setLeanSavedTensors } from "../lib/kernels/saved_tensors.ts";
import { createLeNet, type Normalization } from "../lib/models/lenet.ts";
import { createRng } from "../lib/data/random.ts";
import { uniform } from "./_kernel_test_utils.ts";

/** One LeNet gradient (by weight position), its `Identity` calls and the tensors it left. */
async function _gradient(
  normalization: Normalization,
  lean: boolean,
): Promise<{ grads: Float32Array[]; identities: number; leftover: number }> {
  const before = setLeanSavedTensors(lean);
  try {
    const model = createLeNet({ normalization, activation: "sigmoid", seed: 7 });
    const xs = tf.tensor4d(uniform(4 * 28 * 28, createRng(3)), [4, 28, 28, 1]);
    const ys = tf.oneHot(tf.tensor1d([3, 1, 4, 1], "int32"), 10);
    const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
    const tensors = tf.memory().numTensors;
    let result: { value: tf.Scalar; grads: tf.NamedTensorMap } | undefined;
    const profile = await tf.profile(() => {
      result = tf.variableGrads(
        () => tf.losses.softmaxCrossEntropy(ys, model.apply(xs, { training: true }) as tf.Tensor),
        variables,
      );
    });
    const grads = await Promise.all(
      variables.map((v) => result!.grads[v.name].data() as Promise<Float32Array>),
    );
    tf.dispose([result!.value, ...Object.values(result!.grads)]);
    const leftover = tf.memory().numTensors - tensors;
    tf.dispose([xs, ys]);
    model.dispose();
    const identities = profile.kernels.filter((k) => k.name === "Identity").length;
    return { grads, identities, leftover };
  } finally {
    setLeanSavedTensors(before);
  }
}

Deno.test("initBackend('wasm') turns the lean saved tensors on", async () => {
  await initBackend("wasm");
  const previous = setLeanSavedTensors(true);
  assert.equal(previous, true);
});

for (const normalization of ["none", "custom", "tfjs"] as const) {
  Deno.test(`LeNet (${normalization}): saved tensors without Identity, same gradient`, async () => {
    await initBackend("wasm");
    const cloned = await _gradient(normalization, false);
    const lean = await _gradient(normalization, true);
    // The step's registered kernels save 15 or more tensors (19 with bnlab's BN, 23 without
    // BN, 89 with tfjs's); custom-gradient functions, as tfjs's loss and fused products and
    // bnlab's BN op, still clone theirs.
    assert.ok(
      cloned.identities - lean.identities >= 15,
      `lean: ${lean.identities} Identity calls against ${cloned.identities}`,
    );
    assert.equal(lean.leftover, 0);
    assert.equal(cloned.leftover, 0);
    for (const [i, g] of lean.grads.entries()) {
      const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);
      assert.deepEqual(bits(g), bits(cloned.grads[i]), `weight ${i}`);
    }
  });
}

Deno.test("second-order gradients are the same with lean saved tensors", async () => {
  await initBackend("wasm");
  const x = tf.tensor1d([0.5, -2, 3, 0.25]);
  // d²/dx² of Σ sigmoid(x)·x² through saved inputs and outputs of Sigmoid and Multiply.
  const f = (v: tf.Tensor) => tf.sum(tf.mul(tf.sigmoid(v), tf.square(v)));
  const second = async (lean: boolean) => {
    const before = setLeanSavedTensors(lean);
    try {
      return await tf.grad((v: tf.Tensor) => tf.sum(tf.grad(f)(v)))(x).data();
    } finally {
      setLeanSavedTensors(before);
    }
  };
  const lean = await second(true), cloned = await second(false);
  assert.deepEqual(lean, cloned);
  // And against the cpu backend's, within float32 rounding.
  await tf.setBackend("cpu");
  try {
    const cpu = await tf.grad((v: tf.Tensor) => tf.sum(tf.grad(f)(v)))(x).data();
    for (const [i, value] of cpu.entries()) assert.ok(Math.abs(value - lean[i]) < 1e-5);
  } finally {
    await initBackend("wasm");
  }
});
