/**
 * lib/kernels/saved_tensors.ts: on wasm at first order, the tensors a gradient saves (a
 * kernel's or a custom gradient's) are kept without an `Identity` dispatch or a tape node, with
 * the same gradients (every float), no tensor left behind, and higher-order gradients unchanged.
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
    // Every saved tensor is shared without a dispatch, those of the registered kernels and
    // those of custom gradients (tfjs's loss and fused products, bnlab's BN op): a step clones
    // 33 without BN, 46 with bnlab's and 101 with tfjs's. What remains are copies the
    // gradients themselves make (tfjs's Cast gradient, bnlab's BN statistics).
    assert.ok(
      cloned.identities - lean.identities >= 30,
      `lean: ${lean.identities} Identity calls against ${cloned.identities}`,
    );
    if (normalization === "none") assert.equal(lean.identities, 0);
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

Deno.test("a custom gradient's saved tensors: no Identity at first order, the same gradients at first and second order", async () => {
  await initBackend("wasm");
  // x³ through a custom gradient that saves its input: d/dx = 3x², d²/dx² = 6x.
  const cube = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [v, save] = args as [tf.Tensor, tf.GradSaveFunc];
    save([v]);
    return {
      value: tf.mul(tf.mul(v, v), v),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.mul(dy, tf.mul(tf.square(saved[0]), 3)),
    };
  });
  const x = tf.tensor1d([0.5, -2, 3, 0.25]);
  const first = (v: tf.Tensor) => tf.grad((u: tf.Tensor) => tf.sum(cube(u) as tf.Tensor))(v);
  const run = async (lean: boolean) => {
    const before = setLeanSavedTensors(lean);
    try {
      let firstOrder: tf.Tensor | undefined;
      const profile = await tf.profile(() => {
        firstOrder = first(x);
      });
      const second = tf.grad((v: tf.Tensor) => tf.sum(first(v)))(x);
      const identities = profile.kernels.filter((k) => k.name === "Identity").length;
      return { first: await firstOrder!.data(), second: await second.data(), identities };
    } finally {
      setLeanSavedTensors(before);
    }
  };
  const lean = await run(true), cloned = await run(false);
  assert.equal(lean.identities, 0);
  assert.ok(cloned.identities >= 1, `tfjs's clone: ${cloned.identities} Identity calls`);
  assert.deepEqual(lean.first, cloned.first);
  assert.deepEqual(lean.second, cloned.second);
  assert.deepEqual([...lean.second], [3, -12, 18, 1.5]);
});
