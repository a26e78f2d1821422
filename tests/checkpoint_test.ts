import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import type { Dataset } from "../lib/data/mnist.ts";
import { createLeNet } from "../lib/models/lenet.ts";
import {
  CHECKPOINT_FORMAT,
  dropCheckpointWeights,
  loadCheckpoint,
  saveCheckpoint,
} from "../lib/train/checkpoint.ts";
import { createOptimizer, OPTIMIZERS, train } from "../lib/train/loop.ts";
import { readRunRecords } from "../lib/experiments/results_dir.ts";

Deno.test.beforeAll(async () => {
  await tf.setBackend("cpu");
});

function toyData(count: number, seed: number): Dataset {
  let state = seed + 1;
  const random = () => (state = (state * 1103515245 + 12345) % 2147483648) / 2147483648;
  const images = Float32Array.from({ length: count * 16 }, random);
  const labels = Uint8Array.from({ length: count }, (_, i) => (images[i * 16] > 0.5 ? 1 : 0));
  return { name: "toy", split: "train", images, labels, count, height: 4, width: 4, numClasses: 2 };
}

function toyModel(seed: number, bn: "tfjs" | "none" = "tfjs") {
  return tf.sequential({
    layers: [
      tf.layers.flatten({ inputShape: [4, 4, 1] }),
      tf.layers.dense({ units: 6, kernelInitializer: tf.initializers.glorotUniform({ seed }) }),
      ...(bn === "tfjs" ? [tf.layers.batchNormalization()] : []),
      tf.layers.dense({
        units: 2,
        kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }),
      }),
    ],
  });
}

async function values(model: tf.LayersModel) {
  return await Promise.all(model.weights.map((w) => w.read().data()));
}

// Adam keeps accBeta1/accBeta2 outside getWeights(); restoring them from the step count
// (tfjs's setWeights) differs in the last bits from the product an uninterrupted run
// accumulates, so before they were saved the resumed weights differed from epoch 2 on.
for (const name of OPTIMIZERS) {
  Deno.test(`resume with ${name} is bitwise the uninterrupted run (save, drop everything, load)`, async () => {
    // 60 steps per epoch: enough for Adam's accumulated β powers to drift from pow(β, t).
    const data = toyData(120, 3);
    const options = { batchSize: 2, lr: 0.01, seed: 5, logEvery: 20 };
    // What tfjs's own optimizer leaves behind once disposed (momentum keeps a scalar).
    const controlBefore = tf.memory().numTensors;
    const control = toyModel(1);
    const controlOptimizer = createOptimizer(name, 0.01);
    await train(control, data, { ...options, epochs: 1, optimizerInstance: controlOptimizer });
    control.dispose();
    controlOptimizer.dispose();
    const perOptimizer = tf.memory().numTensors - controlBefore;
    const before = tf.memory().numTensors;
    const full = toyModel(1);
    const fullOptimizer = createOptimizer(name, 0.01);
    const fullRecords = await train(full, data, {
      ...options,
      epochs: 3,
      optimizerInstance: fullOptimizer,
    });
    const dir = await Deno.makeTempDir();
    const first = toyModel(1);
    const firstOptimizer = createOptimizer(name, 0.01);
    await train(first, data, {
      ...options,
      epochs: 1,
      optimizerInstance: firstOptimizer,
      onEpochEnd: (record, optimizer) =>
        saveCheckpoint(dir, { model: first, optimizer, state: record, tag: "1" }),
    });
    first.dispose();
    firstOptimizer.dispose();
    const resumed = toyModel(77);
    const resumedOptimizer = createOptimizer(name, 0.01);
    await loadCheckpoint(dir, { model: resumed, optimizer: resumedOptimizer });
    const rest = await train(resumed, data, {
      ...options,
      epochs: 3,
      startEpoch: 1,
      optimizerInstance: resumedOptimizer,
    });
    assert.deepEqual(rest.map((r) => r.steps), fullRecords.slice(1).map((r) => r.steps));
    assert.deepEqual(await values(resumed), await values(full));
    const a = await fullOptimizer.getWeights();
    const b = await resumedOptimizer.getWeights();
    assert.deepEqual(
      await Promise.all(b.map((w) => w.tensor.data())),
      await Promise.all(a.map((w) => w.tensor.data())),
    );
    tf.dispose([...a, ...b].filter((w) => w.name === "iter").map((w) => w.tensor));
    tf.dispose([full, resumed] as never);
    fullOptimizer.dispose();
    resumedOptimizer.dispose();
    await Deno.remove(dir, { recursive: true });
    assert.equal(tf.memory().numTensors, before + 3 * perOptimizer);
  });
}

Deno.test("loadCheckpoint refuses another config, naming the differing fields", async () => {
  const dir = await Deno.makeTempDir();
  const model = toyModel(1);
  const optimizer = tf.train.sgd(0.1);
  const config = { lr: 0.1, batchSize: 20, lastBatch: "merge" };
  await saveCheckpoint(dir, { model, optimizer, state: {}, tag: "1", config });
  assert.deepEqual(await loadCheckpoint(dir, { model, optimizer, config: { ...config } }), {});
  await assert.rejects(
    () => loadCheckpoint(dir, { model, optimizer, config: { lr: 0.2, batchSize: 20, epochs: 3 } }),
    {
      message: `loadCheckpoint: ${dir}/checkpoint.json was saved with a different config: ` +
        'epochs saved absent, received 3; lastBatch saved "merge", received absent; lr saved ' +
        "0.1, received 0.2; resume with the config the run started with",
    },
  );
  model.dispose();
});

Deno.test("a corrupted weights file or manifest of the right size is refused, naming the file", async () => {
  const dir = await Deno.makeTempDir();
  const model = toyModel(1);
  const optimizer = tf.train.sgd(0.1);
  await saveCheckpoint(dir, { model, optimizer, state: { epoch: 1 }, tag: "1" });
  const path = `${dir}/weights-1.bin`;
  const bytes = await Deno.readFile(path);
  bytes[5] ^= 1;
  await Deno.writeFile(path, bytes);
  await assert.rejects(() => loadCheckpoint(dir, { model, optimizer }), {
    message: new RegExp(
      `^loadCheckpoint: ${path} is corrupted: its SHA-256 is [0-9a-f]{64}, ` +
        `${dir}/checkpoint.json records [0-9a-f]{64}$`,
    ),
  });
  await saveCheckpoint(dir, { model, optimizer, state: { epoch: 1 }, tag: "2" });
  const manifest = await Deno.readTextFile(`${dir}/checkpoint.json`);
  await Deno.writeTextFile(`${dir}/checkpoint.json`, manifest.replace('"epoch": 1', '"epoch": 7'));
  await assert.rejects(() => loadCheckpoint(dir, { model, optimizer }), {
    message: new RegExp(`^loadCheckpoint: ${dir}/checkpoint.json is corrupted: the SHA-256`),
  });
  await Deno.writeTextFile(`${dir}/checkpoint.json`, manifest.slice(0, 40));
  await assert.rejects(() => loadCheckpoint(dir, { model, optimizer }), {
    message: new RegExp(`^loadCheckpoint: ${dir}/checkpoint.json is corrupted: `),
  });
  model.dispose();
});

Deno.test("loadCheckpoint refuses another BN variant and another optimizer", async () => {
  const dir = await Deno.makeTempDir();
  const custom = createLeNet({ normalization: "custom", inputShape: [16, 16, 1] });
  const tfjs = createLeNet({ normalization: "tfjs", inputShape: [16, 16, 1] });
  // Same weight shapes: only the layer classes tell the variants apart.
  assert.deepEqual(custom.weights.map((w) => w.shape), tfjs.weights.map((w) => w.shape));
  await saveCheckpoint(dir, {
    model: custom,
    optimizer: tf.train.sgd(0.1),
    state: {},
    tag: "1",
  });
  await assert.rejects(() => loadCheckpoint(dir, { model: tfjs, optimizer: tf.train.sgd(0.1) }), {
    message: new RegExp(
      `^loadCheckpoint: ${dir}/checkpoint.json was saved from a model whose layer 1 is ` +
        "BatchNorm, but the model's is BatchNormalization \\(another normalization variant",
    ),
  });
  const adam = tf.train.adam(0.1);
  await assert.rejects(() => loadCheckpoint(dir, { model: custom, optimizer: adam }), {
    message: `loadCheckpoint: ${dir}/checkpoint.json holds the state of a SGD optimizer, ` +
      "received a Adam optimizer",
  });
  adam.dispose();
  tf.dispose([custom, tfjs] as never);
});

Deno.test("a format 1 checkpoint (no checksums, no config) still loads", async () => {
  const dir = await Deno.makeTempDir();
  const model = toyModel(4, "none");
  const weights = await values(model);
  const floats = new Float32Array(weights.reduce((n, w) => n + w.length, 0));
  let offset = 0;
  for (const w of weights) (floats.set(w as Float32Array, offset), offset += w.length);
  await Deno.writeFile(`${dir}/weights-2.bin`, new Uint8Array(floats.buffer));
  await Deno.writeTextFile(
    `${dir}/checkpoint.json`,
    JSON.stringify({
      format: 1,
      weightsFile: "weights-2.bin",
      model: model.weights.map((w) => ({ name: w.originalName, shape: w.shape })),
      optimizer: [],
      state: { epochsDone: 2, records: [] },
    }),
  );
  const other = toyModel(9, "none");
  const state = await loadCheckpoint(dir, {
    model: other,
    optimizer: tf.train.sgd(0.1),
    config: { lr: 0.1 },
  });
  assert.deepEqual(state, { epochsDone: 2, records: [] });
  assert.deepEqual(await values(other), weights);
  assert.equal(CHECKPOINT_FORMAT, 2);
  tf.dispose([model, other] as never);
});

Deno.test("dropCheckpointWeights keeps the records a finished run's readers need", async () => {
  const out = await Deno.makeTempDir();
  const dir = `${out}/checkpoint`;
  const model = toyModel(1);
  const optimizer = tf.train.adam(0.1);
  const state = { epochsDone: 1, records: [{ epoch: 0, trainLoss: 0.5 }], wallSeconds: 1 };
  await saveCheckpoint(dir, { model, optimizer, state, tag: "1" });
  await Deno.writeFile(`${dir}/.weights-2.bin.abcd1234.tmp`, new Uint8Array(4));
  await dropCheckpointWeights(dir);
  assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["checkpoint.json"]);
  assert.deepEqual(await readRunRecords(out), state.records);
  await assert.rejects(() => loadCheckpoint(dir, { model, optimizer }), {
    message: `loadCheckpoint: ${dir}/checkpoint.json belongs to a finished run whose weights ` +
      "were removed; expected a checkpoint with a weights file",
  });
  await dropCheckpointWeights(dir); // idempotent
  await dropCheckpointWeights(`${out}/none`); // no checkpoint: nothing to do
  model.dispose();
  optimizer.dispose();
});
