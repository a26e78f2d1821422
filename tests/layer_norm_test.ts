import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { type GroupNorm, groupNorm } from "../lib/norms/group_norm.ts";
import { LayerNorm, layerNorm } from "../lib/norms/layer_norm.ts";
import { createRng } from "../lib/data/random.ts";

Deno.test.beforeAll(async () => {
  await tf.setBackend("cpu");
});

Deno.test("layerNorm matches hand-computed values over every non-batch axis", async () => {
  // Sample 0 holds {1, 2, 3, 4}: μ = 2.5, σ² = 1.25. Sample 1 holds {0, 0, 0, 4}: μ = 1, σ² = 3.
  const x = tf.tensor4d([1, 2, 3, 4, 0, 0, 0, 4], [2, 2, 1, 2]);
  const layer = layerNorm({ epsilon: 1e-3 });
  layer.apply(x);
  layer.gamma!.write(tf.tensor1d([1, 2]));
  layer.beta!.write(tf.tensor1d([0, 1]));
  const y = await (layer.apply(x, { training: true }) as tf.Tensor).data();
  const a = Math.sqrt(1.25 + 1e-3), b = Math.sqrt(3 + 1e-3);
  const expected = [
    -1.5 / a,
    2 * (-0.5 / a) + 1,
    0.5 / a,
    2 * (1.5 / a) + 1,
    -1 / b,
    2 * (-1 / b) + 1,
    -1 / b,
    2 * (3 / b) + 1,
  ];
  for (let i = 0; i < 8; i++) {
    assert.ok(Math.abs(y[i] - expected[i]) < 1e-6, `${i}: ${y[i]} vs ${expected[i]}`);
  }
  const inference = await (layer.apply(x, { training: false }) as tf.Tensor).data();
  assert.deepEqual(inference, y);
});

Deno.test("layerNorm equals groupNorm with one group, gradients included", async () => {
  const rng = createRng(2);
  const x = tf.tensor4d(Float32Array.from({ length: 2 * 3 * 3 * 4 }, () => rng() * 4 - 1), [
    2,
    3,
    3,
    4,
  ]);
  const ln = layerNorm(), gn = groupNorm({ groups: 1 });
  const loss = (layer: GroupNorm) => (t: tf.Tensor) =>
    tf.sum(
      tf.mul(
        layer.apply(t, { training: true }) as tf.Tensor,
        tf.linspace(-1, 2, 72).reshape([2, 3, 3, 4]),
      ),
    );
  const a = tf.grad(loss(ln))(x), b = tf.grad(loss(gn))(x);
  assert.ok((await tf.max(tf.abs(tf.sub(a, b))).data())[0] < 1e-6);
  // The analytic gradient sums to zero over each sample (the mean subtraction).
  const sums = await tf.sum(a, [1, 2, 3]).data();
  for (const s of sums) assert.ok(Math.abs(s) < 1e-4);
  // ... and matches autodiff.
  const auto = tf.grad(loss(layerNorm({ gradient: "autodiff" })))(x);
  assert.ok((await tf.max(tf.abs(tf.sub(a, auto))).data())[0] < 1e-5);
});

Deno.test("layerNorm trains at batch size 1 without leaking tensors", async () => {
  const model = tf.sequential({
    layers: [
      tf.layers.dense({
        inputShape: [5],
        units: 6,
        useBias: false,
        kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
      }),
      layerNorm(),
      tf.layers.activation({ activation: "tanh" }),
      tf.layers.dense({ units: 2, kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
    ],
  });
  model.compile({
    optimizer: tf.train.sgd(0.1),
    loss: (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.losses.softmaxCrossEntropy(yTrue, yPred),
  });
  const x = tf.tensor2d([[1, -2, 0.5, 3, -1]]), y = tf.tensor2d([[0, 1]]);
  const p = () => tf.tidy(() => tf.softmax(model.predict(x) as tf.Tensor).dataSync()[1]);
  const before = p();
  await model.trainOnBatch(x, y);
  const tensors = tf.memory().numTensors;
  for (let i = 0; i < 5; i++) await model.trainOnBatch(x, y);
  assert.equal(tf.memory().numTensors, tensors);
  assert.ok(p() > before);
  tf.dispose([x, y]);
  model.dispose();
});

Deno.test("layerNorm's config round-trips and has no groups", () => {
  const layer = layerNorm({ epsilon: 1e-5, center: false });
  const config = layer.getConfig();
  assert.equal("groups" in config, false);
  const [cls, fromConfig] = tf.serialization.SerializationMap.getMap().classNameMap.LayerNorm;
  const copy = fromConfig(cls as never, config) as LayerNorm;
  assert.ok(copy instanceof LayerNorm);
  assert.deepEqual(copy.getConfig(), { ...config, name: copy.name });
  assert.equal(copy.epsilon, 1e-5);
});

Deno.test("layerNorm rejects each bad option with its message", () => {
  const cases: [() => unknown, string][] = [
    [() => layerNorm({ epsilon: 0 }), "layerNorm: epsilon must be a positive number, received 0"],
    [
      () => layerNorm({ axis: 0 }),
      "layerNorm: axis must be a non-zero integer (0 is the batch axis), received 0",
    ],
    [
      () => layerNorm({ scale: "no" as never }),
      'layerNorm: scale must be a boolean, received "no"',
    ],
    [
      () => layerNorm().apply(tf.zeros([3])),
      "layerNorm: input must have rank >= 2 ([batch, features] or NHWC), received shape [3]",
    ],
  ];
  for (const [build, message] of cases) assert.throws(build, { message });
});
