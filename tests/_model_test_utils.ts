/**
 * Shared checks of the built-in models: loss falls on real MNIST on wasm, and wasm's full
 * gradient matches cpu's on a tiny input.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { type BackendName, initBackend } from "../lib/backend.ts";
import { loadMnist } from "../lib/data/mnist.ts";
import { createRng } from "../lib/data/random.ts";
import { crossEntropyGradients } from "./_kernel_test_utils.ts";

/**
 * Trains `build()`'s model on wasm with plain SGD for `steps` steps of `batchSize` images
 * drawn in order from the first 256 MNIST training images, and returns the mean softmax
 * cross-entropy (training mode) on the first 64 of them before and after; asserts that no
 * tensors leak from step to step.
 */
export async function lossBeforeAfter(
  build: () => tf.LayersModel,
  options: { steps: number; batchSize: number; lr: number },
): Promise<{ before: number; after: number }> {
  await initBackend("wasm");
  const data = await loadMnist({ split: "train", limit: 256 });
  const model = build();
  const optimizer = tf.train.sgd(options.lr);
  const batch = (start: number, size: number) =>
    tf.tidy(() => ({
      x: tf.tensor4d(data.images.slice(start * 784, (start + size) * 784), [size, 28, 28, 1]),
      y: tf.oneHot(tf.tensor1d(data.labels.slice(start, start + size), "int32"), 10),
    }));
  const lossOf = (x: tf.Tensor, y: tf.Tensor) => () =>
    tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar;
  const probe = batch(0, 64);
  const before = tf.tidy(() => lossOf(probe.x, probe.y)().dataSync()[0]);
  let tensors = 0;
  for (let step = 0; step < options.steps; step++) {
    const { x, y } = batch((step * options.batchSize) % 256, options.batchSize);
    tf.dispose(optimizer.minimize(lossOf(x, y), true) ?? []);
    tf.dispose([x, y]);
    // The first step creates the optimizer's state; afterwards the count stays flat.
    if (step === 0) tensors = tf.memory().numTensors;
  }
  assert.equal(tf.memory().numTensors, tensors, "tensors leak during training");
  const after = tf.tidy(() => lossOf(probe.x, probe.y)().dataSync()[0]);
  tf.dispose([probe.x, probe.y]);
  optimizer.dispose();
  model.dispose();
  return { before, after };
}

/** The gradients of every trainable weight, with the initial weights, on `backend`. */
async function gradients(
  backend: BackendName,
  build: () => tf.LayersModel,
  inputShape: [number, number, number, number],
  weights?: Float32Array[],
): Promise<{ names: string[]; weights: Float32Array[]; grads: Float32Array[] }> {
  await initBackend(backend);
  const model = build();
  if (weights) {
    const values = model.getWeights().map((w, i) => tf.tensor(weights[i], w.shape));
    model.setWeights(values);
    tf.dispose(values);
  }
  const random = createRng(11);
  const size = inputShape.reduce((a, b) => a * b, 1);
  const images = tf.tensor4d(Float32Array.from({ length: size }, () => random()), inputShape);
  const labels = tf.oneHot(
    tf.tensor1d(Array.from({ length: inputShape[0] }, (_, i) => i % 10), "int32"),
    10,
  );
  return await crossEntropyGradients(model, images, labels);
}

/**
 * Asserts that the full gradient of the mean softmax cross-entropy (training mode, random
 * images of `inputShape`) on wasm matches cpu's given wasm's initial weights: for each weight
 * tensor ‖g_wasm − g_cpu‖₂ / ‖g_cpu‖₂ ≤ `tolerance`.
 */
export async function assertGradientsMatchCpu(
  build: () => tf.LayersModel,
  inputShape: [number, number, number, number],
  tolerance = 1e-3,
): Promise<void> {
  const wasm = await gradients("wasm", build, inputShape);
  const cpu = await gradients("cpu", build, inputShape, wasm.weights);
  assert.equal(cpu.grads.length, wasm.grads.length);
  assert.ok(wasm.grads.length > 0);
  for (const [i, g] of wasm.grads.entries()) {
    let diff = 0, norm = 0;
    for (let j = 0; j < g.length; j++) {
      diff += (g[j] - cpu.grads[i][j]) ** 2;
      norm += cpu.grads[i][j] ** 2;
    }
    assert.ok(norm > 0, `${wasm.names[i]}: zero gradient`);
    const error = Math.sqrt(diff / norm);
    assert.ok(error <= tolerance, `${wasm.names[i]}: relative error ${error} > ${tolerance}`);
  }
}
