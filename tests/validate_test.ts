import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import type { Dataset } from "../lib/data/mnist.ts";
import { createLeNet } from "../lib/models/lenet.ts";
import { batchNorm } from "../lib/norms/batch_norm.ts";
import { foldBatchNorm } from "../lib/norms/fold_batch_norm.ts";
import { evaluate } from "../lib/train/evaluate.ts";
import { train } from "../lib/train/loop.ts";

Deno.test.beforeAll(async () => {
  await tf.setBackend("cpu");
});

function toy(count: number, overrides: Partial<Dataset> = {}): Dataset {
  return {
    name: "toy",
    split: "train",
    count,
    height: 2,
    width: 2,
    numClasses: 2,
    images: Float32Array.from({ length: count * 4 }, (_, i) => (i % 7) / 7),
    labels: Uint8Array.from({ length: count }, (_, i) => i % 2),
    ...overrides,
  };
}

function model() {
  return tf.sequential({
    layers: [tf.layers.flatten({ inputShape: [2, 2, 1] }), tf.layers.dense({ units: 2 })],
  });
}

const OPTIONS = { epochs: 1, batchSize: 4, lr: 0.1 };

// Each of these trained silently, or failed in tfjs, or reported accuracy 0.1, before the
// datasets were validated at the API boundary.
Deno.test("train and evaluate refuse inconsistent datasets, naming what and where", async () => {
  const m = model();
  const before = tf.memory().numTensors;
  const cases: [Dataset, string][] = [
    [
      toy(8, { labels: new Uint8Array(5) }),
      "train: the training set toy/train has 5 labels, fewer than its count 8",
    ],
    [
      toy(8, { images: new Float32Array(20) }),
      "train: the training set toy/train has 20 pixel values, fewer than count × height × width " +
      "= 8 × 2 × 2 = 32",
    ],
    [
      toy(8, { labels: Uint8Array.from([0, 1, 0, 2, 0, 1, 0, 1]) }),
      "train: the training set toy/train: label 3 is 2; expected a class index in [0, 1] (2 classes)",
    ],
    [
      toy(0),
      "train: the training set toy/train is empty (count 0); expected at least 1 image",
    ],
    [
      toy(8, { images: new Float32Array(32).fill(0.5).fill(Infinity, 9, 10) }),
      "train: the training set toy/train has pixel 1 of image 2 equal to Infinity; expected " +
      "finite values",
    ],
    [
      toy(8, { height: 3, images: new Float32Array(48) }),
      "train: the model takes images of [height, width, channels] = [2, 2, 1], received " +
      "toy/train with [3, 2, 1]",
    ],
    [
      toy(8, { numClasses: 3 }),
      "train: the model outputs 2 logits, received toy/train with 3 classes",
    ],
  ];
  for (const [data, message] of cases) {
    await assert.rejects(() => train(m, data, OPTIONS), { message });
  }
  const nanTest = toy(6, { split: "test", images: new Float32Array(24).fill(NaN) });
  await assert.rejects(() => evaluate(m, nanTest), {
    message: "evaluate: the dataset toy/test has pixel 0 of image 0 equal to NaN; expected " +
      "finite values",
  });
  await assert.rejects(() => train(m, toy(8), { ...OPTIONS, test: nanTest }), {
    message: "train: the test set toy/test has pixel 0 of image 0 equal to NaN; expected " +
      "finite values",
  });
  assert.equal(tf.memory().numTensors, before);
  m.dispose();
});

Deno.test("a valid dataset with longer arrays than its count still trains", async () => {
  const m = model();
  const data = toy(8, { images: new Float32Array(40).fill(0.25), labels: new Uint8Array(10) });
  assert.equal((await train(m, data, OPTIONS))[0].step, 2);
  m.dispose();
});

Deno.test("batchNorm names NaN and Infinity as received (not null)", () => {
  assert.throws(() => batchNorm({ momentum: NaN }), {
    message: "BatchNorm: momentum must be in [0, 1] or null, received NaN",
  });
  assert.throws(() => batchNorm({ epsilon: Infinity }), {
    message: "BatchNorm: epsilon must be a positive number, received Infinity",
  });
  assert.throws(() => batchNorm({ momentumConvention: "torch" as never }), {
    message: 'BatchNorm: momentumConvention must be "keras" or "pytorch", received "torch"',
  });
});

Deno.test("foldBatchNorm keeps a BN first layer (nothing to fold into) and predicts the same", () => {
  for (const first of [batchNorm, tf.layers.batchNormalization]) {
    const original = tf.sequential({
      layers: [
        first({ inputShape: [4] } as never),
        tf.layers.dense({
          units: 3,
          kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
        }),
        batchNorm(),
      ],
    });
    const folded = foldBatchNorm(original);
    assert.deepEqual(folded.layers.map((l) => l.getClassName()), [
      original.layers[0].getClassName(),
      "Dense",
    ]);
    const x = tf.tensor2d([[1, 2, 3, 4], [0, -1, 0.5, 2]]);
    const a = original.predict(x) as tf.Tensor;
    const b = folded.predict(x) as tf.Tensor;
    assert.ok(tf.max(tf.abs(tf.sub(a, b))).dataSync()[0] < 1e-5);
    tf.dispose([x, a, b, original, folded] as never);
  }
});

Deno.test("a wrong image size given to LeNet in evaluate says what it expected", async () => {
  const lenet = createLeNet({ normalization: "custom" });
  const data = toy(4, { height: 16, width: 16, numClasses: 10, images: new Float32Array(1024) });
  await assert.rejects(() => evaluate(lenet, data), {
    message: "evaluate: the model takes images of [height, width, channels] = [28, 28, 1], " +
      "received toy/train with [16, 16, 1]",
  });
  lenet.dispose();
});
