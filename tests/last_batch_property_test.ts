import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backend.ts";
import type { Dataset } from "../lib/data/mnist.ts";
import { createLeNet } from "../lib/models/lenet.ts";
import { evaluate } from "../lib/train/evaluate.ts";
import { train } from "../lib/train/loop.ts";

Deno.test.beforeAll(async () => {
  await initBackend("wasm");
});

/** Random 16×16 images (the smallest LeNet input) with 10 classes. */
function randomData(count: number, seed: number, split: "train" | "test"): Dataset {
  let state = seed + 7;
  const random = () => (state = (state * 1103515245 + 12345) % 2147483648) / 2147483648;
  const images = Float32Array.from({ length: count * 256 }, random);
  const labels = Uint8Array.from({ length: count }, () => Math.floor(random() * 10));
  return { name: "random", split, images, labels, count, height: 16, width: 16, numClasses: 10 };
}

const VARIANTS = ["none", "custom", "tfjs"] as const;
const LIMITS = [[13, 11], [25, 7], [37, 9]] as const;

// Before lastBatch, a remainder of one image (e.g. 13 images in batches of 12, or 25 in 3s, or a
// batch-statistics evaluation of 7 test images in 2s, 3s or 6s) crashed the custom BN after
// training, and tfjs's BN trained on one-image batches.
Deno.test("every batch size 1..12 × odd limits × variant trains to the end or fails up front", async () => {
  const before = tf.memory().numTensors;
  for (const [trainCount, testCount] of LIMITS) {
    const trainData = randomData(trainCount, trainCount, "train");
    const testData = randomData(testCount, testCount, "test");
    for (let batchSize = 1; batchSize <= 12; batchSize++) {
      for (const variant of VARIANTS) {
        const label = `${variant}, ${trainCount}/${testCount} images, batch ${batchSize}`;
        const model = createLeNet({ normalization: variant, inputShape: [16, 16, 1], seed: 1 });
        let epochs = 0;
        try {
          const options = { batchSize, loss: "xent" as const };
          if (variant !== "none") {
            // The runner's final evaluation, checked before any training as the runner does.
            await evaluate(model, testData, { ...options, statistics: "batch" });
          }
          const records = await train(model, trainData, {
            ...options,
            epochs: 1,
            lr: 0.01,
            test: testData,
            evalBatchSize: batchSize,
            onEpochEnd: () => void epochs++,
          });
          assert.equal(records.length, 1, label);
          assert.ok(Number.isFinite(records[0].trainLoss), label);
          assert.equal(records[0].test?.count, testCount, label);
          if (variant !== "none") {
            const batchStats = await evaluate(model, testData, { ...options, statistics: "batch" });
            assert.equal(batchStats.count, testCount, label);
            assert.ok(Number.isFinite(batchStats.loss), label);
          }
        } catch (error) {
          // The only refusal merge leaves: BN with batches of one image, before any epoch.
          assert.equal(epochs, 0, label);
          assert.equal(batchSize, 1, `${label}: ${(error as Error).message}`);
          assert.notEqual(variant, "none", label);
          // Only the BN after the dense layer sees one value per channel; the conv BNs do not.
          const denseBn = model.layers.filter((l) => /BatchNorm/.test(l.getClassName())).at(-1)!;
          assert.match(
            (error as Error).message,
            new RegExp(
              "^(evaluate|train): the (dataset|training set) random/(test|train) of \\d+ images in " +
                'batches of 1 \\(lastBatch "merge"\\) has a batch of 1 image, which ' +
                `${denseBn.name} \\(one value per channel and image\\) cannot normalize with ` +
                "batch statistics; use a batch size of at least 2$",
            ),
            label,
          );
        } finally {
          model.dispose();
        }
      }
    }
  }
  assert.equal(tf.memory().numTensors, before);
});

Deno.test("lastBatch keep with a remainder of one is refused before training with BN, allowed without", async () => {
  const data = randomData(13, 1, "train");
  for (const variant of VARIANTS) {
    const model = createLeNet({ normalization: variant, inputShape: [16, 16, 1] });
    const run = () => train(model, data, { epochs: 1, batchSize: 6, lr: 0.01, lastBatch: "keep" });
    if (variant === "none") {
      assert.equal((await run())[0].step, 3);
    } else {
      await assert.rejects(run, {
        message: new RegExp(
          '^train: the training set random/train of 13 images in batches of 6 \\(lastBatch "keep"\\) ' +
            "has a batch of 1 image, which \\w+ \\(one value per channel and image\\) cannot " +
            'normalize with batch statistics; use lastBatch "merge" \\(the default\\) or "drop", or ' +
            "another batch size$",
        ),
      });
    }
    model.dispose();
  }
});

Deno.test("lastBatch drop and merge give the step counts they document", async () => {
  const data = randomData(13, 2, "train");
  const model = createLeNet({ normalization: "custom", inputShape: [16, 16, 1] });
  const drop = await train(model, data, { epochs: 1, batchSize: 6, lr: 0.01, lastBatch: "drop" });
  const merge = await train(model, data, { epochs: 1, batchSize: 6, lr: 0.01 });
  assert.equal(drop[0].step, 2);
  assert.equal(merge[0].step, 2);
  const evaluation = await evaluate(model, data, { batchSize: 6, lastBatch: "drop" });
  assert.equal(evaluation.count, 12);
  await assert.rejects(() => evaluate(model, data, { batchSize: 20, lastBatch: "drop" }), {
    message:
      'evaluate: the dataset random/train of 13 images in batches of 20 (lastBatch "drop") ' +
      'has no batch to evaluate; use lastBatch "merge" or "keep", or a smaller batch size',
  });
  await assert.rejects(
    () => train(model, data, { epochs: 1, batchSize: 20, lr: 0.01, lastBatch: "drop" }),
    {
      message:
        'train: the training set random/train of 13 images in batches of 20 (lastBatch "drop") ' +
        'has no batch to run: fewer images than one batch; use lastBatch "merge" or "keep", or a ' +
        "smaller batch size",
    },
  );
  model.dispose();
});

Deno.test("BN layers after convolutions normalize a batch of one image: no refusal", async () => {
  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({ filters: 2, kernelSize: 3, inputShape: [4, 4, 1] }),
      tf.layers.batchNormalization(),
      tf.layers.flatten(),
      tf.layers.dense({ units: 10 }),
    ],
  });
  const data = { ...randomData(3, 1, "train"), height: 4, width: 4, images: new Float32Array(48) };
  assert.equal((await train(model, data, { epochs: 1, batchSize: 1, lr: 0.01 }))[0].step, 3);
  model.dispose();
});
