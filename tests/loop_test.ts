import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import type { Dataset } from "../lib/data/mnist.ts";
import { computeLoss } from "../lib/train/losses.ts";
import {
  createOptimizer,
  epochSeed,
  epochSteps,
  NonFiniteLossError,
  scheduleFactor,
  train,
} from "../lib/train/loop.ts";
import { evaluate } from "../lib/train/evaluate.ts";
import { loadCheckpoint, saveCheckpoint } from "../lib/train/checkpoint.ts";

/** A separable toy problem: class = whether the left half of a 4×4 image is brighter. */
function toyData(count: number, seed: number): Dataset {
  let state = seed + 1;
  const random = () => (state = (state * 1103515245 + 12345) % 2147483648) / 2147483648;
  const images = new Float32Array(count * 16);
  const labels = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    labels[i] = random() < 0.5 ? 0 : 1;
    for (let p = 0; p < 16; p++) {
      const left = p % 4 < 2;
      images[i * 16 + p] = random() * 0.5 + ((left === (labels[i] === 1)) ? 0.5 : 0);
    }
  }
  return { name: "toy", split: "train", images, labels, count, height: 4, width: 4, numClasses: 2 };
}

function toyModel(seed: number) {
  return tf.sequential({
    layers: [
      tf.layers.flatten({ inputShape: [4, 4, 1] }),
      tf.layers.dense({
        units: 8,
        activation: "relu",
        kernelInitializer: tf.initializers.glorotUniform({ seed }),
      }),
      tf.layers.batchNormalization(),
      tf.layers.dense({
        units: 2,
        kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }),
      }),
    ],
  });
}

Deno.test.beforeAll(async () => {
  await tf.setBackend("cpu");
});

Deno.test("computeLoss: xent of a uniform guess is ln 10; mse of a perfect one-hot is ~0", () => {
  const xent = computeLoss("xent", tf.zeros([4, 10]), tf.oneHot([0, 1, 2, 3], 10));
  assert.ok(Math.abs(xent.dataSync()[0] - Math.log(10)) < 1e-6); // the report's 2.302585
  const mse = computeLoss("mse", tf.mul(tf.oneHot([0, 1], 10), 100), tf.oneHot([0, 1], 10));
  assert.ok(mse.dataSync()[0] < 1e-12);
  tf.dispose([xent, mse]);
  assert.throws(() => computeLoss("hinge" as never, tf.zeros([1, 2]), tf.zeros([1, 2])), {
    message: 'computeLoss: loss must be one of xent, mse, received "hinge"',
  });
});

Deno.test("train learns a separable toy problem and reports per-epoch records", async () => {
  const data = toyData(256, 1);
  const model = toyModel(3);
  const events: string[] = [];
  const records = await train(model, data, {
    epochs: 5,
    batchSize: 16,
    lr: 0.1,
    logEvery: 4,
    test: toyData(128, 2),
    onEvent: (e) => events.push(e.type),
  });
  assert.equal(records.length, 5);
  assert.equal(records[4].step, 5 * 16);
  assert.equal(records[0].steps.length, 4); // steps 4, 8, 12, 16
  assert.ok(records[4].test!.accuracy > 0.9, `accuracy ${records[4].test!.accuracy}`);
  assert.ok(records[4].trainLoss < records[0].trainLoss);
  assert.equal(events[0], "start");
  assert.equal(events.filter((e) => e === "epoch").length, 5);
  model.dispose();
});

Deno.test("train keeps tf.memory().numTensors flat across epochs", async () => {
  const data = toyData(64, 1);
  const model = toyModel(3);
  const optimizer = createOptimizer("momentum", 0.05);
  await train(model, data, { epochs: 1, batchSize: 8, lr: 0.05, optimizerInstance: optimizer });
  const before = tf.memory().numTensors;
  await train(model, data, {
    epochs: 4,
    batchSize: 8,
    lr: 0.05,
    logEvery: 1,
    startEpoch: 1,
    optimizerInstance: optimizer,
    test: data,
  });
  assert.equal(tf.memory().numTensors, before);
  model.dispose();
  optimizer.dispose();
});

Deno.test("train stops with NonFiniteLossError on a NaN loss", async () => {
  const data = toyData(32, 1);
  const model = toyModel(3);
  // NaN pixels are refused up front; NaN weights make the loss NaN at the first step.
  const dense = model.layers[1];
  dense.setWeights(dense.getWeights().map((w) => tf.fill(w.shape, NaN)));
  await assert.rejects(
    () => train(model, data, { epochs: 1, batchSize: 8, lr: 0.1, logEvery: 1, seed: 0 }),
    (error: Error) =>
      error instanceof NonFiniteLossError &&
      /the loss became NaN at epoch 1, step \d/.test(error.message),
  );
  model.dispose();
});

Deno.test("train validates its options", async () => {
  const model = toyModel(3);
  const data = toyData(8, 1);
  await assert.rejects(() => train(model, data, { epochs: 0, batchSize: 8, lr: 0.1 }), {
    message: "train: epochs must be a positive integer, received 0",
  });
  await assert.rejects(() => train(model, data, { epochs: 1, batchSize: 8, lr: 0 }), {
    message: "train: lr must be a positive finite number, received 0",
  });
  assert.throws(() => createOptimizer("rmsprop" as never, 0.1), {
    message: 'createOptimizer: optimizer must be one of sgd, momentum, adam, received "rmsprop"',
  });
  model.dispose();
});

Deno.test("a run resumed from a checkpoint gives exactly the uninterrupted numbers", async () => {
  const data = toyData(96, 5);
  const options = { batchSize: 8, lr: 0.05, logEvery: 3, test: toyData(32, 6), seed: 7 };
  const full = toyModel(11);
  const fullOptimizer = createOptimizer("momentum", 0.05);
  const fullRecords = await train(full, data, {
    ...options,
    epochs: 3,
    optimizerInstance: fullOptimizer,
  });

  const dir = await Deno.makeTempDir();
  const first = toyModel(11);
  const firstOptimizer = createOptimizer("momentum", 0.05);
  await train(first, data, {
    ...options,
    epochs: 1,
    optimizerInstance: firstOptimizer,
    onEpochEnd: (record, optimizer) =>
      saveCheckpoint(dir, { model: first, optimizer, state: record, tag: "1" }),
  });
  const resumed = toyModel(99); // different init: everything must come from the checkpoint
  const resumedOptimizer = createOptimizer("momentum", 0.05);
  const state = await loadCheckpoint<{ epoch: number }>(dir, {
    model: resumed,
    optimizer: resumedOptimizer,
  });
  assert.equal(state?.epoch, 0);
  const rest = await train(resumed, data, {
    ...options,
    epochs: 3,
    startEpoch: 1,
    optimizerInstance: resumedOptimizer,
  });
  assert.deepEqual(
    rest.map((r) => [r.trainLoss, r.test?.loss, r.steps]),
    fullRecords.slice(1).map((r) => [r.trainLoss, r.test?.loss, r.steps]),
  );
  const a = await Promise.all(full.weights.map((w) => w.read().data()));
  const b = await Promise.all(resumed.weights.map((w) => w.read().data()));
  assert.deepEqual(b, a);
  tf.dispose([full, first, resumed] as never);
});

Deno.test("loadCheckpoint rejects a checkpoint of another architecture", async () => {
  const dir = await Deno.makeTempDir();
  const model = toyModel(1);
  await saveCheckpoint(dir, { model, optimizer: tf.train.sgd(0.1), state: {}, tag: "1" });
  const other = tf.sequential({ layers: [tf.layers.dense({ units: 3, inputShape: [5] })] });
  await assert.rejects(
    () => loadCheckpoint(dir, { model: other, optimizer: tf.train.sgd(0.1) }),
    /was saved from a model whose layer 0 is Flatten, but the model's is Dense/,
  );
  await Deno.writeFile(`${dir}/weights-1.bin`, new Uint8Array(10));
  await assert.rejects(
    () => loadCheckpoint(dir, { model, optimizer: tf.train.sgd(0.1) }),
    /has 10 bytes, expected/,
  );
});

Deno.test("evaluate with batch statistics leaves running statistics untouched", async () => {
  const data = toyData(64, 1);
  const model = toyModel(3);
  await train(model, data, { epochs: 1, batchSize: 8, lr: 0.1 });
  const before = await Promise.all(model.weights.map((w) => w.read().data()));
  const batchStats = await evaluate(model, data, { statistics: "batch", batchSize: 16 });
  const running = await evaluate(model, data, { statistics: "running" });
  const after = await Promise.all(model.weights.map((w) => w.read().data()));
  assert.deepEqual(after, before);
  assert.equal(batchStats.count, 64);
  assert.equal(running.predictedCounts.reduce((a, b) => a + b), 64);
  await assert.rejects(() => evaluate(model, data, { statistics: "moving" as never }), {
    message: 'evaluate: statistics must be "running" or "batch", received "moving"',
  });
  model.dispose();
});

Deno.test("epochSeed differs across epochs and seeds", () => {
  const seeds = new Set<number>();
  for (let s = 0; s < 5; s++) for (let e = 0; e < 20; e++) seeds.add(epochSeed(s, e));
  assert.equal(seeds.size, 100);
});

Deno.test("scheduleFactor: constant, step, cosine and linear warm-up", () => {
  assert.equal(scheduleFactor(7), 1);
  assert.deepEqual(
    [1, 2, 3, 4, 5].map((s) => scheduleFactor(s, { schedule: "step", gamma: 0.5, stepEvery: 2 })),
    [1, 1, 0.5, 0.5, 0.25],
  );
  assert.equal(scheduleFactor(1, { schedule: "cosine", totalSteps: 10 }), 1);
  assert.ok(Math.abs(scheduleFactor(6, { schedule: "cosine", totalSteps: 10 }) - 0.5) < 1e-12);
  assert.deepEqual([1, 2, 4, 8].map((s) => scheduleFactor(s, { warmupSteps: 4 })), [
    0.25,
    0.5,
    1,
    1,
  ]);
  assert.equal(epochSteps(45, 20, "keep"), 3);
  assert.equal(epochSteps(45, 20, "drop"), 2);
  assert.equal(epochSteps(45, 20, "merge"), 2);
  assert.equal(epochSteps(5, 20, "merge"), 1);
});

Deno.test("optimizers, weight decay and schedules each change training; training accuracy is recorded", async () => {
  const data = toyData(64, 2);
  const run = async (options: Partial<Parameters<typeof train>[2]>) => {
    const model = toyModel(5);
    const [record] = await train(model, data, { epochs: 1, batchSize: 8, lr: 0.05, ...options });
    const weights = await Promise.all(model.weights.map((w) => w.read().data()));
    model.dispose();
    return { record, weights: weights.map((w) => Array.from(w)) };
  };
  const plain = await run({});
  assert.ok(plain.record.trainAccuracy! >= 0 && plain.record.trainAccuracy! <= 1);
  // The accuracy is of the forward passes that trained: 64 images, a multiple of 1/64.
  assert.equal(Math.round(plain.record.trainAccuracy! * 64), plain.record.trainAccuracy! * 64);
  const variants = [
    await run({ optimizerOptions: { sgdMomentum: 0.9 } }),
    await run({ optimizerOptions: { sgdMomentum: 0.9, nesterov: true } }),
    await run({ optimizer: "adam" }),
    await run({ weightDecay: 0.1 }),
    await run({ schedule: { schedule: "cosine", totalSteps: 8 } }),
    await run({ schedule: { warmupSteps: 8 } }),
  ];
  for (const [i, v] of variants.entries()) {
    assert.notDeepEqual(v.weights, plain.weights, `variant ${i}`);
  }
  assert.notDeepEqual(variants[0].weights, variants[1].weights); // Nesterov differs
  // A constant schedule is the plain run, float for float.
  assert.deepEqual((await run({ schedule: { schedule: "constant" } })).weights, plain.weights);
  assert.throws(() => createOptimizer("sgd", 0.1, { nesterov: true }), {
    message: "createOptimizer: nesterov needs sgdMomentum > 0, received 0",
  });
  await assert.rejects(() => run({ weightDecay: -1 }), {
    message: "train: weightDecay must be a finite number >= 0, received -1",
  });
  await assert.rejects(() => run({ batchSize: 100, lastBatch: "drop" }), {
    message:
      'train: the training set toy/train of 64 images in batches of 100 (lastBatch "drop") ' +
      'has no batch to run: fewer images than one batch; use lastBatch "merge" or "keep", or a ' +
      "smaller batch size",
  });
});

Deno.test("train with weight decay, a schedule and momentum keeps tf.memory().numTensors flat", async () => {
  const data = toyData(32, 3);
  const model = toyModel(1);
  const optimizer = createOptimizer("sgd", 0.05, { sgdMomentum: 0.9 });
  const options = {
    epochs: 1,
    batchSize: 8,
    lr: 0.05,
    weightDecay: 0.01,
    schedule: { schedule: "step" as const, stepEvery: 2 },
    optimizerInstance: optimizer,
  };
  await train(model, data, options); // creates the optimizer's slots
  const before = tf.memory().numTensors;
  await train(model, data, options);
  assert.equal(tf.memory().numTensors, before);
  model.dispose();
  optimizer.dispose();
});
