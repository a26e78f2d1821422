/**
 * Real training on real MNIST with the wasm backend: the foundation's end-to-end check.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backend.ts";
import { loadMnist } from "../lib/data/mnist.ts";
import { createLeNet } from "../lib/models/lenet.ts";
import { train } from "../lib/train/loop.ts";

Deno.test("LeNet with tfjs BN trained on 4,000 MNIST images on wasm exceeds 90% held-out accuracy", async () => {
  const backend = await initBackend("wasm");
  assert.equal(backend.name, "wasm");
  const trainData = await loadMnist({ split: "train", limit: 4000 });
  const testData = await loadMnist({ split: "test", limit: 2000 });
  const model = createLeNet({ normalization: "tfjs", seed: 1 });
  // SGD with a BN-friendly learning rate; two passes over 4,000 images.
  const records = await train(model, trainData, {
    epochs: 2,
    batchSize: 32,
    lr: 0.05,
    optimizer: "momentum",
    seed: 1,
    test: testData,
  });
  const accuracy = records.at(-1)!.test!.accuracy;
  console.log(`held-out accuracy ${(accuracy * 100).toFixed(2)}% on ${testData.count} images`);
  assert.ok(accuracy > 0.9, `accuracy ${accuracy}`);
  model.dispose();
});

Deno.test("tf.memory().numTensors stays flat across LeNet training steps on wasm", async () => {
  await initBackend("wasm");
  const data = await loadMnist({ split: "train", limit: 200 });
  for (const normalization of ["none", "tfjs", "custom"] as const) {
    const model = createLeNet({ normalization, seed: 2 });
    const optimizer = tf.train.sgd(0.01);
    await train(model, data, { epochs: 1, batchSize: 20, lr: 0.01, optimizerInstance: optimizer });
    const before = tf.memory().numTensors;
    await train(model, data, {
      epochs: 3,
      startEpoch: 1,
      batchSize: 20,
      lr: 0.01,
      optimizerInstance: optimizer,
      logEvery: 1,
    });
    assert.equal(tf.memory().numTensors, before, normalization);
    model.dispose();
    optimizer.dispose();
  }
});
