import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { batches, numBatches } from "../lib/data/batches.ts";
import type { Dataset } from "../lib/data/mnist.ts";
import { shuffledIndices } from "../lib/data/random.ts";

Deno.test.beforeAll(async () => {
  await tf.setBackend("cpu");
});

/** 45 one-pixel images whose value encodes their index, labels = index mod 3. */
const data: Dataset = {
  name: "toy",
  split: "train",
  count: 45,
  height: 1,
  width: 1,
  numClasses: 3,
  images: Float32Array.from({ length: 45 }, (_, i) => i),
  labels: Uint8Array.from({ length: 45 }, (_, i) => i % 3),
};

async function epoch(options: Parameters<typeof batches>[1]) {
  const seen: number[][] = [];
  for (const batch of batches(data, options)) {
    assert.equal(batch.xs.shape[0], batch.labels.length);
    const ids = Array.from(await batch.xs.data());
    const oneHot = await batch.ys.array();
    ids.forEach((id, i) => {
      assert.equal(batch.labels[i], id % 3);
      assert.deepEqual(oneHot[i], [0, 1, 2].map((k) => (k === id % 3 ? 1 : 0)));
    });
    seen.push(ids);
  }
  return seen;
}

Deno.test("batches: sizes, last partial batch, dropRemainder", async () => {
  assert.deepEqual((await epoch({ batchSize: 20 })).map((b) => b.length), [20, 20, 5]);
  assert.deepEqual((await epoch({ batchSize: 20, dropRemainder: true })).map((b) => b.length), [
    20,
    20,
  ]);
  assert.equal(numBatches(45, 20), 3);
  assert.equal(numBatches(45, 20, true), 2);
  assert.deepEqual((await epoch({ batchSize: 50, shuffle: false }))[0], [...Array(45).keys()]);
});

Deno.test("batches: every image once per epoch, deterministic by seed", async () => {
  const a = await epoch({ batchSize: 10, seed: 1 });
  assert.deepEqual(a.flat().sort((x, y) => x - y), [...Array(45).keys()]);
  assert.deepEqual(await epoch({ batchSize: 10, seed: 1 }), a);
  assert.notDeepEqual(await epoch({ batchSize: 10, seed: 2 }), a);
  assert.deepEqual(a.flat(), Array.from(shuffledIndices(45, 1)));
});

Deno.test("batches: memory is flat after a full epoch and after breaking early", async () => {
  const before = tf.memory().numTensors;
  await epoch({ batchSize: 7 });
  assert.equal(tf.memory().numTensors, before);
  for (const batch of batches(data, { batchSize: 7 })) {
    if (batch.index === 2) break;
  }
  assert.equal(tf.memory().numTensors, before);
  assert.throws(() => batches(data, { batchSize: 0 }).next(), {
    message: "batches: batchSize must be a positive integer, received 0",
  });
});
