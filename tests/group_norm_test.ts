import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { GroupNorm, groupNorm } from "../lib/norms/group_norm.ts";
import { groupNormalize } from "../lib/norms/group_norm_ops.ts";
import { LayerNorm, layerNorm } from "../lib/norms/layer_norm.ts";
import { createRng } from "../lib/data/random.ts";

Deno.test.beforeAll(async () => {
  await tf.setBackend("cpu");
});

/** Group norm in float64, written from the module doc's equations (NHWC-like, channels last). */
function reference(
  x: Float64Array,
  shape: number[],
  groups: number,
  epsilon: number,
  gamma: number[],
  beta: number[],
): Float64Array {
  const channels = shape[shape.length - 1];
  const perSample = x.length / shape[0];
  const positions = perSample / channels;
  const size = channels / groups;
  const y = new Float64Array(x.length);
  for (let n = 0; n < shape[0]; n++) {
    for (let g = 0; g < groups; g++) {
      const idx: number[] = [];
      for (let p = 0; p < positions; p++) {
        for (let c = g * size; c < (g + 1) * size; c++) idx.push(n * perSample + p * channels + c);
      }
      const m = idx.length;
      const mean = idx.reduce((s, i) => s + x[i], 0) / m;
      const variance = idx.reduce((s, i) => s + (x[i] - mean) ** 2, 0) / m;
      for (const i of idx) {
        const c = i % channels;
        y[i] = gamma[c] * (x[i] - mean) / Math.sqrt(variance + epsilon) + beta[c];
      }
    }
  }
  return y;
}

function randomValues(n: number, seed: number, scale = 3): Float64Array {
  const rng = createRng(seed);
  return Float64Array.from({ length: n }, () => (rng() - 0.5) * 2 * scale + 1);
}

async function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): Promise<number> {
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return await Promise.resolve(max);
}

Deno.test("groupNorm matches hand-computed values", async () => {
  // One sample, 2 positions × 4 channels, 2 groups. Group 0 holds {0, 0, 2, 2}: μ = 1, σ² = 1.
  // Group 1 holds {1, 3, 1, 3}: μ = 2, σ² = 1. So x̂ = ±1/√(1 + ε); then γ = [1, 2, 3, 4], β = 0.5.
  const layer = groupNorm({ groups: 2, epsilon: 1e-3 });
  const x = tf.tensor3d([[[0, 0, 1, 3], [2, 2, 1, 3]]]);
  layer.apply(x); // builds
  layer.gamma!.write(tf.tensor1d([1, 2, 3, 4]));
  layer.beta!.write(tf.fill([4], 0.5));
  const y = await (layer.apply(x) as tf.Tensor).data();
  const s = 1 / Math.sqrt(1.001);
  const expected = [
    -s + 0.5,
    -2 * s + 0.5,
    -3 * s + 0.5,
    4 * s + 0.5,
    s + 0.5,
    2 * s + 0.5,
    -3 * s + 0.5,
    4 * s + 0.5,
  ];
  assert.ok(await maxAbsDiff(y, expected) < 1e-6, `${y} vs ${expected}`);
});

Deno.test("groupNorm matches the float64 reference on NHWC, and training equals inference", async () => {
  const shape = [3, 2, 3, 6];
  const xs = randomValues(3 * 2 * 3 * 6, 5);
  const gamma = [0.5, 1, 1.5, -1, 2, 0.25], beta = [0, 1, -1, 0.5, 2, -2];
  const layer = groupNorm({ groups: 3, epsilon: 1e-3 });
  const x = tf.tensor4d(Float32Array.from(xs), shape as [number, number, number, number]);
  layer.apply(x);
  layer.gamma!.write(tf.tensor1d(gamma));
  layer.beta!.write(tf.tensor1d(beta));
  const train = await (layer.apply(x, { training: true }) as tf.Tensor).data();
  const infer = await (layer.apply(x, { training: false }) as tf.Tensor).data();
  const expected = reference(Float64Array.from(x.dataSync()), shape, 3, 1e-3, gamma, beta);
  assert.ok(await maxAbsDiff(train, expected) < 2e-5);
  assert.deepEqual(train, infer);
});

Deno.test("groupNorm caps groups at the channel count and takes another channel axis", async () => {
  const capped = groupNorm({ groups: 32 });
  capped.apply(tf.zeros([2, 4, 4, 16]));
  assert.equal(capped.effectiveGroups, 16);
  // NCHW with axis 1 equals NHWC with axis -1 after transposing.
  const xs = tf.tensor4d(Float32Array.from(randomValues(2 * 4 * 3 * 3, 9)), [2, 4, 3, 3]);
  const nchw = groupNormalize(xs, { groups: 2, axis: 1 });
  const nhwc = groupNormalize(tf.transpose(xs, [0, 2, 3, 1]), { groups: 2 });
  assert.ok(
    await maxAbsDiff(await tf.transpose(nchw, [0, 2, 3, 1]).data(), await nhwc.data()) < 1e-6,
  );
});

/** The loss L = Σ y·w for fixed random weights w, in float64 from the reference. */
function referenceLoss(
  xs: Float64Array,
  shape: number[],
  gamma: number[],
  beta: number[],
  w: Float64Array,
) {
  const y = reference(xs, shape, 2, 1e-3, gamma, beta);
  return y.reduce((s, v, i) => s + v * w[i], 0);
}

Deno.test("groupNorm's analytic gradient matches autodiff and float64 central differences", async () => {
  // Tolerances: analytic vs autodiff, both float32, agree to 1e-5 absolute; against the float64
  // central differences (h = 1e-5 on the float64 reference, truncation error O(h²) ≈ 1e-10) the
  // float32 gradients agree to 1e-4 absolute (gradient entries are of order 1).
  const shape = [2, 3, 4];
  const xs = randomValues(24, 3);
  const w = randomValues(24, 4, 1);
  const gamma = [1.5, -0.5, 2, 0.75], beta = [0.1, 0.2, 0.3, 0.4];
  const grads = (gradient: "analytic" | "autodiff") =>
    tf.tidy(() => {
      const f = (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) =>
        tf.sum(
          tf.mul(
            groupNormalize(x, { groups: 2, gamma: g, beta: b, gradient }),
            tf.tensor3d(Float32Array.from(w), [2, 3, 4]),
          ),
        );
      return tf.grads(f as never)([
        tf.tensor3d(Float32Array.from(xs), [2, 3, 4]),
        tf.tensor1d(gamma),
        tf.tensor1d(beta),
      ]).map((t) => t.dataSync());
    });
  const analytic = grads("analytic"), autodiff = grads("autodiff");
  for (let k = 0; k < 3; k++) {
    assert.ok(await maxAbsDiff(analytic[k], autodiff[k]) < 1e-5, `input ${k}`);
  }
  const h = 1e-5;
  const numeric = (values: Float64Array | number[], set: (v: Float64Array | number[]) => number) =>
    Array.from(values, (_, i) => {
      const plus = Float64Array.from(values), minus = Float64Array.from(values);
      plus[i] += h;
      minus[i] -= h;
      return (set(plus) - set(minus)) / (2 * h);
    });
  const x32 = Float64Array.from(Float32Array.from(xs));
  const dx = numeric(x32, (v) => referenceLoss(v as Float64Array, shape, gamma, beta, w));
  const dGamma = numeric(gamma, (v) => referenceLoss(x32, shape, Array.from(v), beta, w));
  const dBeta = numeric(beta, (v) => referenceLoss(x32, shape, gamma, Array.from(v), w));
  assert.ok(await maxAbsDiff(analytic[0], dx) < 1e-4, "dx");
  assert.ok(await maxAbsDiff(analytic[1], dGamma) < 1e-4, "dγ");
  assert.ok(await maxAbsDiff(analytic[2], dBeta) < 1e-4, "dβ");
});

Deno.test("groupNorm trains at batch size 1 (where BN cannot) without leaking tensors", async () => {
  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({
        inputShape: [6, 6, 1],
        filters: 8,
        kernelSize: 3,
        useBias: false,
        kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
      }),
      groupNorm({ groups: 4 }),
      tf.layers.activation({ activation: "relu" }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 2, kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
    ],
  });
  model.compile({
    optimizer: tf.train.sgd(0.1),
    loss: (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.losses.softmaxCrossEntropy(yTrue, yPred),
  });
  const x = tf.tensor4d(Float32Array.from(randomValues(36, 7)), [1, 6, 6, 1]);
  const y = tf.tensor2d([[1, 0]]);
  const logits = () => tf.tidy(() => tf.softmax(model.predict(x) as tf.Tensor).dataSync()[0]);
  const before = logits();
  await model.trainOnBatch(x, y); // warm-up: creates the optimizer's slots
  const tensors = tf.memory().numTensors;
  for (let i = 0; i < 5; i++) await model.trainOnBatch(x, y);
  assert.equal(tf.memory().numTensors, tensors);
  assert.ok(logits() > before, "training on one sample raises its class's probability");
  tf.dispose([x, y]);
  model.dispose();
});

Deno.test("groupNorm's config round-trips through serialization", () => {
  const layer = groupNorm({
    groups: 4,
    epsilon: 1e-5,
    axis: 1,
    center: false,
    scale: true,
    gradient: "autodiff",
  });
  const config = layer.getConfig();
  const copy = tf.serialization.SerializationMap.getMap().classNameMap.GroupNorm[1](
    tf.serialization.SerializationMap.getMap().classNameMap.GroupNorm[0] as never,
    config,
  ) as GroupNorm;
  assert.deepEqual(
    { ...copy.getConfig(), name: config.name },
    config,
  );
  assert.equal(copy.groups, 4);
  assert.equal(copy.center, false);
});

Deno.test("groupNorm rejects each bad option with its message", () => {
  const cases: [() => unknown, string][] = [
    [() => groupNorm({ groups: 0 }), "groupNorm: groups must be a positive integer, received 0"],
    [
      () => groupNorm({ groups: 2.5 }),
      "groupNorm: groups must be a positive integer, received 2.5",
    ],
    [() => groupNorm({ epsilon: 0 }), "groupNorm: epsilon must be a positive number, received 0"],
    [() => groupNorm({ epsilon: -1 }), "groupNorm: epsilon must be a positive number, received -1"],
    [
      () => groupNorm({ axis: 0 }),
      "groupNorm: axis must be a non-zero integer (0 is the batch axis), received 0",
    ],
    [
      () => groupNorm({ center: "yes" as never }),
      'groupNorm: center must be a boolean, received "yes"',
    ],
    [() => groupNorm({ scale: 1 as never }), "groupNorm: scale must be a boolean, received 1"],
    [
      () => groupNorm({ gradient: "x" as never }),
      'groupNorm: gradient must be "analytic" or "autodiff", received "x"',
    ],
    [
      () => groupNorm({ groups: 5 }).apply(tf.zeros([1, 2, 2, 16])),
      "groupNorm: groups must divide the channel count 16, received 5",
    ],
    [
      () => groupNorm({ groups: 32 }).apply(tf.zeros([1, 50])),
      "groupNorm: groups must divide the channel count 50, received 32",
    ],
    [
      () => groupNorm().apply(tf.zeros([4])),
      "groupNorm: input must have rank >= 2 ([batch, features] or NHWC), received shape [4]",
    ],
    [
      () => groupNorm({ axis: 3 }).apply(tf.zeros([1, 2, 3])),
      "groupNorm: axis must be in [-2, 2] and not the batch axis for input shape [1, 2, 3], received 3",
    ],
    [
      () => groupNormalize(tf.zeros([1, 4]), { groups: 2, gamma: tf.ones([3]) }),
      "groupNormalize: gamma must have shape [4], received [3]",
    ],
    [
      () => groupNormalize(tf.zeros([1, 4]), { groups: 3 }),
      "groupNormalize: groups must divide the channel count 4, received 3",
    ],
    [
      () => groupNormalize(tf.zeros([1, 4]), { groups: 2, epsilon: 0 }),
      "groupNormalize: epsilon must be a positive number, received 0",
    ],
  ];
  for (const [build, message] of cases) assert.throws(build, { message });
});

/** Saves `model` to memory and loads it back. */
async function roundTrip(model: tf.LayersModel): Promise<tf.LayersModel> {
  let saved: tf.io.ModelArtifacts | undefined;
  await model.save(tf.io.withSaveHandler((artifacts) => {
    saved = artifacts;
    return Promise.resolve({
      modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: "JSON" },
    });
  }));
  return await tf.loadLayersModel(tf.io.fromMemory(saved!));
}

Deno.test("models with groupNorm and layerNorm save and load with identical outputs", async () => {
  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [5, 5, 2], filters: 6, kernelSize: 3, useBias: false }),
      groupNorm({ groups: 3, epsilon: 1e-5, center: false }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 4 }),
      layerNorm({ epsilon: 1e-4 }),
    ],
  });
  model.compile({ optimizer: tf.train.sgd(0.5), loss: "meanSquaredError" });
  const x = tf.tensor4d(Float32Array.from(randomValues(8 * 50, 12)), [8, 5, 5, 2]);
  await model.fit(x, tf.randomNormal([8, 4], 0, 1, "float32", 13), { epochs: 2, verbose: 0 });
  const loaded = await roundTrip(model);
  const a = await (model.predict(x) as tf.Tensor).data();
  const b = await (loaded.predict(x) as tf.Tensor).data();
  assert.deepEqual(a, b);
  assert.ok(loaded.layers[1] instanceof GroupNorm);
  assert.ok(loaded.layers[4] instanceof LayerNorm);
  assert.deepEqual(
    [(loaded.layers[1] as GroupNorm).groups, (loaded.layers[1] as GroupNorm).epsilon],
    [3, 1e-5],
  );
  assert.equal((loaded.layers[1] as GroupNorm).beta, undefined);
  // Trained γ differs from its initial ones, so the comparison above covers loaded weights.
  assert.ok((await (loaded.layers[1] as GroupNorm).gamma!.read().data()).some((g) => g !== 1));
  model.dispose();
  loaded.dispose();
});
