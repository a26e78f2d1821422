import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { createModel, MODELS } from "../lib/models/create_model.ts";
import { createLeNet } from "../lib/models/lenet.ts";
import { loadCheckpoint, saveCheckpoint } from "../lib/train/checkpoint.ts";
import { loadMnist } from "../lib/data/mnist.ts";
import { NORMALIZATIONS } from "../lib/norms/normalization.ts";

Deno.test.beforeAll(async () => {
  await tf.setBackend("cpu");
});

Deno.test("createModel builds every model with every normalization", () => {
  // LeNet's two 5×5 convs and pools need 16×16; the others take 8×8.
  for (const name of MODELS) {
    const size = name === "lenet" ? 16 : 8;
    const x = tf.zeros([4, size, size, 1]);
    for (const normalization of NORMALIZATIONS) {
      const model = createModel(name, {
        normalization,
        inputShape: [size, size, 1],
        hidden: [20],
        normalizationOptions: { groups: 2, virtualBatchSize: 2 },
      });
      assert.equal(model.name, `${name}_${normalization}`);
      const y = model.apply(x, { training: true }) as tf.Tensor;
      assert.deepEqual(y.shape, [4, 10], `${name} ${normalization}`);
      y.dispose();
      model.dispose();
    }
    x.dispose();
  }
});

Deno.test("createModel's lenet is createLeNet, float for float, with custom or bnlab", async () => {
  const a = createModel("lenet", { normalization: "bnlab", seed: 3, activation: "sigmoid" });
  const b = createLeNet({ normalization: "custom", seed: 3, activation: "sigmoid" });
  assert.deepEqual(a.layers.map((l) => l.getClassName()), b.layers.map((l) => l.getClassName()));
  const wa = a.getWeights(), wb = b.getWeights();
  assert.equal(wa.length, wb.length);
  for (let i = 0; i < wa.length; i++) assert.deepEqual(await wa[i].data(), await wb[i].data());
  a.dispose();
  b.dispose();
  const mlp = createModel("mlp", { hidden: [7, 5] });
  assert.equal(mlp.countParams(), 784 * 7 + 7 + 7 * 5 + 5 + 5 * 10 + 10);
  mlp.dispose();
});

Deno.test("a LeNet checkpoint saved with the custom variant loads into createModel's lenet", async () => {
  const dir = await Deno.makeTempDir();
  const saved = createLeNet({ normalization: "custom", seed: 5, activation: "sigmoid" });
  await saveCheckpoint(dir, {
    model: saved,
    optimizer: tf.train.sgd(0.001),
    state: { epochsDone: 20 },
    tag: "20",
  });
  const model = createModel("lenet", { normalization: "bnlab", activation: "sigmoid" });
  const state = await loadCheckpoint<{ epochsDone: number }>(dir, {
    model,
    optimizer: tf.train.sgd(0.001),
  });
  assert.equal(state?.epochsDone, 20);
  const test = await loadMnist({ split: "test", limit: 100 });
  const [a, b] = [saved, model].map((m) =>
    tf.tidy(() => (m.predict(tf.tensor4d(test.images, [100, 28, 28, 1])) as tf.Tensor).dataSync())
  );
  assert.deepEqual(b, a);
  saved.dispose();
  model.dispose();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("createModel passes each model's norm sites the same options", () => {
  for (const name of MODELS) {
    const momenta = (normalization: "bnlab" | "tfjs") => {
      const model = createModel(name, {
        normalization,
        normalizationOptions: { tfjsMomentum: 0.9, epsilon: 1e-5, batchNorm: { momentum: 0.5 } },
      });
      const norms = model.layers.filter((l) => l.getClassName().startsWith("BatchNorm"));
      const configs = norms.map((l) => l.getConfig());
      model.dispose();
      assert.ok(configs.length >= 3);
      return [...new Set(configs.map((c) => `${c.momentum} ${c.epsilon}`))];
    };
    assert.deepEqual(momenta("bnlab"), ["0.5 0.00001"], name);
    assert.deepEqual(momenta("tfjs"), ["0.9 0.00001"], name);
  }
});

Deno.test("createModel rejects an unknown model", () => {
  assert.throws(() => createModel("vgg" as never), {
    message: 'createModel: model must be one of lenet, resnet20, mlp, received "vgg"',
  });
  assert.throws(() => createModel("lenet", { normalization: "batch" as never }), {
    message:
      'createLeNet: normalization must be one of none, bnlab, tfjs, group, layer, renorm, ghost (or custom for bnlab), received "batch"',
  });
});
