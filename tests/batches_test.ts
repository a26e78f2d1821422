import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { batches, batchSizes, numBatches } from "../lib/data/batches.ts";
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

Deno.test("batches: sizes under each lastBatch policy", async () => {
  assert.deepEqual((await epoch({ batchSize: 20 })).map((b) => b.length), [20, 25]);
  assert.deepEqual((await epoch({ batchSize: 20, lastBatch: "merge" })).map((b) => b.length), [
    20,
    25,
  ]);
  assert.deepEqual((await epoch({ batchSize: 20, lastBatch: "drop" })).map((b) => b.length), [
    20,
    20,
  ]);
  assert.deepEqual((await epoch({ batchSize: 20, lastBatch: "keep" })).map((b) => b.length), [
    20,
    20,
    5,
  ]);
  assert.equal(numBatches(45, { batchSize: 20 }), 2);
  assert.equal(numBatches(45, { batchSize: 20, lastBatch: "drop" }), 2);
  assert.equal(numBatches(45, { batchSize: 20, lastBatch: "keep" }), 3);
  assert.deepEqual((await epoch({ batchSize: 50, shuffle: false }))[0], [...Array(45).keys()]);
  // Every image once, in the shuffled order, whatever the policy keeps.
  const merged = await epoch({ batchSize: 11, seed: 3 });
  assert.deepEqual(merged.flat(), Array.from(shuffledIndices(45, 3)));
});

Deno.test("batchSizes: merge never makes a batch of one unless the set is one image", () => {
  for (let count = 1; count <= 40; count++) {
    for (let batchSize = 1; batchSize <= 12; batchSize++) {
      const merge = batchSizes(count, { batchSize });
      const keep = batchSizes(count, { batchSize, lastBatch: "keep" });
      const drop = batchSizes(count, { batchSize, lastBatch: "drop" });
      const sum = (sizes: number[]) => sizes.reduce((a, b) => a + b, 0);
      assert.equal(sum(merge), count);
      assert.equal(sum(keep), count);
      assert.equal(sum(drop), Math.floor(count / batchSize) * batchSize);
      if (batchSize > 1 && count > 1) assert.ok(!merge.includes(1), `${count}/${batchSize}`);
      if (count % batchSize === 0) {
        assert.deepEqual(merge, keep);
        assert.deepEqual(merge, drop);
      }
    }
  }
  assert.deepEqual(batchSizes(3, { batchSize: 5 }), [3]);
  assert.deepEqual(batchSizes(3, { batchSize: 5, lastBatch: "drop" }), []);
  assert.throws(() => batchSizes(3, { batchSize: 2, lastBatch: "last" as never }), {
    message: 'batches: lastBatch must be one of merge, drop, keep, received "last"',
  });
  assert.throws(() => batchSizes(3, { batchSize: 0 }), {
    message: "batches: batchSize must be a positive integer, received 0",
  });
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
