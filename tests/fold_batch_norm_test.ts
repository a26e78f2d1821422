import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { batchNorm } from "../lib/norms/batch_norm.ts";
import { foldBatchNorm } from "../lib/norms/fold_batch_norm.ts";
import { createLeNet } from "../lib/models/lenet.ts";
import { initBackend } from "../lib/backend.ts";

// LeNet trains on wasm (the cpu backend's conv gradients take minutes).
Deno.test.beforeAll(async () => {
  await initBackend("wasm");
});

/** Trains a few steps so γ, β and the running statistics are far from their initial values. */
async function trainBriefly(model: tf.LayersModel, inputShape: number[], seed: number) {
  model.compile({ optimizer: tf.train.sgd(0.05), loss: "meanSquaredError" });
  const outputs = model.outputs[0].shape[1] as number;
  const xs = tf.add(tf.mul(tf.randomNormal([32, ...inputShape], 0, 1, "float32", seed), 2), 1);
  const ys = tf.randomNormal([32, outputs], 0, 1, "float32", seed + 1);
  await model.fit(xs, ys, { epochs: 3, batchSize: 8, verbose: 0 });
  tf.dispose([xs, ys]);
}

async function maxAbsDiff(a: tf.Tensor, b: tf.Tensor) {
  assert.deepEqual(a.shape, b.shape);
  return (await tf.max(tf.abs(tf.sub(a, b))).data())[0];
}

for (const normalization of ["custom", "tfjs"] as const) {
  Deno.test(`foldBatchNorm on LeNet with ${normalization} BN predicts the same within 1e-5`, async () => {
    const model = createLeNet({
      normalization,
      seed: 3,
      batchNorm: { runningVariance: "unbiased" },
    });
    await trainBriefly(model, [28, 28, 1], 5);
    const folded = foldBatchNorm(model);
    const kinds = folded.layers.map((l) => l.getClassName());
    assert.ok(
      !kinds.includes("BatchNorm") && !kinds.includes("BatchNormalization"),
      kinds.join(","),
    );
    assert.equal(folded.layers.length, model.layers.length - 3);
    const x = tf.randomUniform([4, 28, 28, 1], 0, 1, "float32", 7);
    const diff = await maxAbsDiff(model.predict(x) as tf.Tensor, folded.predict(x) as tf.Tensor);
    // float32 reassociation of the same affine maps: far below 1e-5 on O(1) logits.
    assert.ok(diff < 1e-5, `max |difference| ${diff}`);
  });
}

Deno.test("foldBatchNorm keeps a BN it cannot fold and copies the other layers' weights", async () => {
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ units: 4, inputShape: [3], activation: "relu" }),
      batchNorm({ center: false }),
      tf.layers.dense({ units: 2, useBias: false }),
      batchNorm({ scale: false }),
    ],
  });
  await trainBriefly(model, [3], 9);
  const folded = foldBatchNorm(model);
  assert.deepEqual(folded.layers.map((l) => l.getClassName()), ["Dense", "BatchNorm", "Dense"]);
  const x = tf.randomNormal([6, 3], 0, 1, "float32", 11);
  assert.ok(await maxAbsDiff(model.predict(x) as tf.Tensor, folded.predict(x) as tf.Tensor) < 1e-5);
});

Deno.test("foldBatchNorm rejects functional models with a clear message", () => {
  const input = tf.input({ shape: [2] });
  const model = tf.model({
    inputs: input,
    outputs: tf.layers.dense({ units: 1 }).apply(input) as tf.SymbolicTensor,
  });
  assert.throws(() => foldBatchNorm(model), {
    message:
      /^foldBatchNorm: expected a tf\.Sequential model, received \w+ \(functional models are not supported\)$/,
  });
});
