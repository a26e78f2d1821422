import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { BatchNorm, batchNorm, type BatchNormOptions } from "../lib/norms/batch_norm.ts";
import { batchNormTraining } from "../lib/norms/batch_norm_ops.ts";

Deno.test.beforeAll(async () => {
  await tf.setBackend("cpu");
});

/** Seeded normal data. */
const randn = (shape: number[], seed: number, scale = 1, shift = 0) =>
  tf.tidy(() => tf.add(tf.mul(tf.randomNormal(shape, 0, 1, "float32", seed), scale), shift));

async function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): Promise<number> {
  assert.deepEqual(a.shape, b.shape);
  assert.equal(a.dtype, b.dtype);
  const d = tf.max(tf.abs(tf.sub(a, b)));
  const v = (await d.data())[0];
  d.dispose();
  return v;
}

/** One training step through a layer: output and gradients of Σ y·w wrt x and the weights. */
function step(layer: tf.layers.Layer, x: tf.Tensor, w: tf.Tensor) {
  // Build first: variableGrads only sees variables that exist when it starts.
  if (!layer.built) tf.dispose(layer.apply(x, { training: false }) as tf.Tensor);
  const xv = tf.variable(x);
  const { value, grads } = tf.variableGrads(() =>
    tf.sum(tf.mul(layer.apply(xv, { training: true }) as tf.Tensor, w)) as tf.Scalar
  );
  const y = tf.tidy(() => layer.apply(xv, { training: false }) as tf.Tensor);
  const named = Object.fromEntries(
    Object.entries(grads).map((
      [name, g],
    ) => [name.includes("gamma") ? "gamma" : name.includes("beta") ? "beta" : "x", g]),
  );
  return { loss: value, grads: named, inference: y, xv };
}

for (
  const [label, shape] of [["dense [8, 5]", [8, 5]], ["conv NHWC [4, 6, 6, 3]", [
    4,
    6,
    6,
    3,
  ]]] as const
) {
  Deno.test(`same options as tf.layers.batchNormalization give the same outputs, gradients and running statistics (${label})`, async () => {
    // Keras convention, momentum 0.9 and ε = 1e-3 on both layers.
    const ours = batchNorm({ momentum: 0.9, epsilon: 1e-3 });
    const theirs = tf.layers.batchNormalization({ momentum: 0.9, epsilon: 1e-3 });
    for (let s = 0; s < 4; s++) {
      const x = randn([...shape], 10 + s, 3, 1);
      const w = randn([...shape], 20 + s);
      const a = step(ours, x, w);
      const b = step(theirs, x, w);
      // float32 on the same backend: differences are rounding only.
      assert.ok(await maxAbsDiff(a.loss, b.loss) < 1e-4);
      for (const key of ["x", "gamma", "beta"]) {
        assert.ok(
          await maxAbsDiff(a.grads[key], b.grads[key]) < 1e-4,
          `${key} gradient, step ${s}`,
        );
      }
      assert.ok(await maxAbsDiff(a.inference, b.inference) < 1e-4, `inference output, step ${s}`);
      const [mean, variance] = [theirs.getWeights()[2], theirs.getWeights()[3]];
      assert.ok(await maxAbsDiff((ours as BatchNorm).movingMean!.read(), mean) < 1e-5);
      assert.ok(await maxAbsDiff((ours as BatchNorm).movingVariance!.read(), variance) < 1e-4);
      tf.dispose([
        x,
        w,
        a.loss,
        b.loss,
        a.inference,
        b.inference,
        a.xv,
        b.xv,
        ...Object.values(a.grads),
        ...Object.values(b.grads),
      ]);
    }
  });
}

Deno.test("analytic gradient = autodiff gradient = central finite differences", async () => {
  const x = randn([6, 3], 1, 2, 0.5);
  const w = randn([6, 3], 2);
  const gamma = tf.tensor2d([[1.5, -0.7, 0.3]]);
  const beta = tf.tensor2d([[0.1, 0.2, -0.3]]);
  const loss =
    (gradient: "analytic" | "autodiff") => (xs: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
      const { y } = batchNormTraining(xs, {
        axes: [0],
        epsilon: 1e-3,
        scale: g,
        offset: b,
        gradient,
      });
      return tf.sum(tf.mul(y, w)) as tf.Scalar;
    };
  const analytic = tf.grads(loss("analytic"))([x, gamma, beta]);
  const autodiff = tf.grads(loss("autodiff"))([x, gamma, beta]);
  for (let i = 0; i < 3; i++) {
    // Two float32 computations of the same quantity: rounding-level agreement.
    assert.ok(await maxAbsDiff(analytic[i], autodiff[i]) < 1e-4, `input ${i}`);
  }
  // Central differences in float32 with h = 1e-2: truncation O(h^2) plus rounding about
  // 1e-7·|L|/h; 2e-3 absolute covers both for this O(1) loss.
  const h = 1e-2;
  const inputs = [x, gamma, beta];
  for (let which = 0; which < 3; which++) {
    const base = await inputs[which].data();
    const fd: number[] = [];
    for (let k = 0; k < base.length; k++) {
      const at = (delta: number) => {
        const values = Float32Array.from(base);
        values[k] += delta;
        const args = inputs.map((t, i) => (i === which ? tf.tensor(values, t.shape) : t));
        return loss("analytic")(args[0], args[1], args[2]).dataSync()[0];
      };
      fd.push((at(h) - at(-h)) / (2 * h));
    }
    const got = Array.from(await analytic[which].data());
    const worst = Math.max(...got.map((g, k) => Math.abs(g - fd[k])));
    assert.ok(worst < 2e-3, `input ${which}: max |analytic − finite difference| = ${worst}`);
  }
  // The same gradients through the layer on conv input, both modes.
  const convX = randn([3, 4, 4, 2], 3, 2);
  const convW = randn([3, 4, 4, 2], 4);
  const viaLayer = (["analytic", "autodiff"] as const).map((gradient) =>
    step(batchNorm({ gradient }), convX, convW)
  );
  for (const key of ["x", "gamma", "beta"]) {
    assert.ok(await maxAbsDiff(viaLayer[0].grads[key], viaLayer[1].grads[key]) < 1e-4, key);
  }
});

Deno.test("constant-statistics: dx = γ/√(σ²+ε)·dy, the true dx minus the statistics' terms", async () => {
  const x = randn([6, 3], 1, 2, 0.5);
  const w = randn([6, 3], 2); // dy of Σ y·w
  const gamma = tf.tensor2d([[1.5, -0.7, 0.3]]);
  const beta = tf.tensor2d([[0.1, 0.2, -0.3]]);
  const epsilon = 1e-3;
  const loss =
    (gradient: "analytic" | "constant-statistics") => (xs: tf.Tensor, g: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.mul(
        batchNormTraining(xs, { axes: [0], epsilon, scale: g, offset: b, gradient }).y,
        w,
      )) as tf.Scalar;
  const [dx, dGamma, dBeta] = tf.grads(loss("constant-statistics"))([x, gamma, beta]);
  const [trueDx, trueDGamma, trueDBeta] = tf.grads(loss("analytic"))([x, gamma, beta]);
  // Written out independently: σ² biased over the batch axis, ε inside the root.
  const { mean, variance } = tf.moments(x, 0, true);
  const invStd = tf.rsqrt(tf.add(variance, epsilon));
  assert.ok(await maxAbsDiff(dx, tf.mul(tf.mul(gamma, invStd), w)) < 1e-5);
  // dγ and dβ do not depend on how dx is formed: the same as the true gradient's.
  assert.ok(await maxAbsDiff(dGamma, trueDGamma) < 1e-5);
  assert.ok(await maxAbsDiff(dBeta, trueDBeta) < 1e-5);
  // The true dx subtracts mean(dy) and x̂·mean(dy·x̂); with a generic dy that is not zero.
  assert.ok(await maxAbsDiff(dx, trueDx) > 1e-2);
  // The forward pass is the same.
  const [a, b] = (["analytic", "constant-statistics"] as const).map((gradient) =>
    batchNormTraining(x, { axes: [0], epsilon, scale: gamma, offset: beta, gradient }).y
  );
  assert.ok(await maxAbsDiff(a, b) < 1e-6);
  // Through the layer on conv input: what the layer's option selects.
  const convX = randn([3, 4, 4, 2], 3, 2);
  const convW = randn([3, 4, 4, 2], 4);
  const layer = batchNorm({ gradient: "constant-statistics", epsilon });
  const { grads } = step(layer, convX, convW);
  const convInvStd = tf.rsqrt(tf.add(tf.moments(convX, [0, 1, 2], true).variance, epsilon));
  assert.ok(await maxAbsDiff(grads.x, tf.mul(convInvStd, convW)) < 1e-5); // γ starts at 1
  tf.dispose([mean, variance, invStd, a, b]);
});

Deno.test("training-mode output has per-channel mean 0 and variance 1 before γ/β", async () => {
  const layer = batchNorm({ center: false, scale: false, epsilon: 1e-5 });
  const x = randn([16, 5, 5, 4], 3, 4, -2);
  const y = layer.apply(x, { training: true }) as tf.Tensor;
  const mean = await tf.mean(y, [0, 1, 2]).data();
  const variance = await tf.moments(y, [0, 1, 2]).variance.data();
  for (let c = 0; c < 4; c++) {
    assert.ok(Math.abs(mean[c]) < 1e-5, `mean ${mean[c]}`);
    // σ²/(σ² + ε) with σ² ≈ 16 and ε = 1e-5: 1 − 6e-7, within float32 rounding.
    assert.ok(Math.abs(variance[c] - 1) < 1e-4, `variance ${variance[c]}`);
  }
});

Deno.test("momentum 0 (Keras form) makes inference equal training on that batch", async () => {
  const layer = batchNorm({ momentum: 0, epsilon: 1e-3 });
  const x = randn([10, 7], 4, 2, 3);
  const training = layer.apply(x, { training: true }) as tf.Tensor;
  const inference = layer.apply(x, { training: false }) as tf.Tensor;
  assert.ok(await maxAbsDiff(training, inference) < 1e-5);
});

Deno.test("scaling the previous layer's weights by α leaves the output unchanged and scales their gradient by 1/α", async () => {
  const alpha = 10;
  const x = randn([12, 6], 5);
  const weights = randn([6, 4], 6);
  const target = randn([12, 4], 7);
  const run = (scale: number) => {
    const w = tf.variable(tf.mul(weights, scale));
    const layer = batchNorm({ epsilon: 1e-8 });
    layer.build([null, 4]);
    let out: tf.Tensor | undefined;
    const { grads } = tf.variableGrads(() => {
      out = tf.keep(layer.apply(tf.matMul(x, w), { training: true }) as tf.Tensor);
      return tf.sum(tf.mul(out, target)) as tf.Scalar;
    }, [w]);
    return { y: out!, grad: grads[w.name] };
  };
  const a = run(1);
  const b = run(alpha);
  // ε = 1e-8 ≪ σ², so BN(αWx) = BN(Wx) up to float32 rounding.
  assert.ok(await maxAbsDiff(a.y, b.y) < 1e-4);
  assert.ok(await maxAbsDiff(a.grad, tf.mul(b.grad, alpha)) < 1e-4);
});

Deno.test("PyTorch momentum 0.1 and Keras momentum 0.9 give identical running statistics", async () => {
  const pytorch = batchNorm({ momentum: 0.1, momentumConvention: "pytorch" });
  const keras = batchNorm({ momentum: 0.9, momentumConvention: "keras" });
  for (let s = 0; s < 5; s++) {
    const x = randn([8, 3], 30 + s, 2, s);
    pytorch.apply(x, { training: true });
    keras.apply(x, { training: true });
  }
  assert.ok(await maxAbsDiff(pytorch.movingMean!.read(), keras.movingMean!.read()) < 1e-6);
  assert.ok(await maxAbsDiff(pytorch.movingVariance!.read(), keras.movingVariance!.read()) < 1e-6);
  // And the report's hand-written layer (Keras form 0.1) is a different average entirely.
  const report = batchNorm({ momentum: 0.1, momentumConvention: "keras" });
  for (let s = 0; s < 5; s++) report.apply(randn([8, 3], 30 + s, 2, s), { training: true });
  assert.ok(await maxAbsDiff(report.movingMean!.read(), keras.movingMean!.read()) > 0.1);
});

Deno.test("unbiased running variance equals biased · m/(m−1); momentum null is the plain mean of batches", async () => {
  const x = randn([5, 2, 2, 3], 8, 2); // m = 5·2·2 = 20 values per channel
  const biased = batchNorm({ momentum: 0 });
  const unbiased = batchNorm({ momentum: 0, runningVariance: "unbiased" });
  biased.apply(x, { training: true });
  unbiased.apply(x, { training: true });
  assert.ok(
    await maxAbsDiff(
      unbiased.movingVariance!.read(),
      tf.mul(biased.movingVariance!.read(), 20 / 19),
    ) < 1e-5,
  );

  const cumulative = batchNorm({ momentum: null });
  const batches = [0, 1, 2].map((s) => randn([6, 3], 40 + s, 1 + s, 2 * s));
  for (const b of batches) cumulative.apply(b, { training: true });
  const expectedMean = tf.mean(tf.stack(batches.map((b) => tf.mean(b, 0))), 0);
  const expectedVariance = tf.mean(tf.stack(batches.map((b) => tf.moments(b, 0).variance)), 0);
  assert.ok(await maxAbsDiff(cumulative.movingMean!.read(), expectedMean) < 1e-5);
  assert.ok(await maxAbsDiff(cumulative.movingVariance!.read(), expectedVariance) < 1e-5);
});

Deno.test("renorm with rMax = 1, dMax = 0 equals plain BN; r and d are clipped otherwise", async () => {
  const x = randn([32, 4], 9, 4, 6);
  const w = randn([32, 4], 10);
  const plain = step(batchNorm({}), x, w);
  const renorm = step(batchNorm({ renorm: true, renormClipping: { rMax: 1, dMax: 0 } }), x, w);
  assert.ok(await maxAbsDiff(plain.loss, renorm.loss) < 1e-4);
  for (const key of ["x", "gamma", "beta"]) {
    const diff = await maxAbsDiff(plain.grads[key], renorm.grads[key]);
    assert.ok(diff < 1e-4, `${key}: ${diff}`);
  }

  // Fresh renorm statistics are μ = 0, σ = 1; with x of std ≈ 4 and mean ≈ 6,
  // r = σ_B/1 clips to rMax = 1.5 and d = μ_B/1 clips to dMax = 0.5.
  const layer = batchNorm({
    renorm: true,
    renormClipping: { rMax: 1.5, dMax: 0.5 },
    epsilon: 1e-3,
  });
  const y = layer.apply(x, { training: true }) as tf.Tensor;
  const { mean, variance } = tf.moments(x, 0);
  const xHat = tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, 1e-3)));
  const clipped = await maxAbsDiff(y, tf.add(tf.mul(xHat, 1.5), 0.5));
  assert.ok(clipped < 1e-5, `clipped renorm differs by ${clipped}`);
});

Deno.test("ghost batch norm: virtualBatchSize = batch is plain BN; smaller normalizes each virtual batch", async () => {
  const x = randn([8, 3], 11, 2, 1);
  const plain = batchNorm({}).apply(x, { training: true }) as tf.Tensor;
  const same = batchNorm({ virtualBatchSize: 8 }).apply(x, { training: true }) as tf.Tensor;
  assert.ok(await maxAbsDiff(plain, same) < 1e-6);
  const ghostLayer = batchNorm({ virtualBatchSize: 4, momentum: 0 });
  const ghost = ghostLayer.apply(x, { training: true }) as tf.Tensor;
  for (const half of [0, 1]) {
    const part = tf.slice(x, [4 * half, 0], [4, 3]);
    const alone = batchNorm({}).apply(part, { training: true }) as tf.Tensor;
    assert.ok(await maxAbsDiff(tf.slice(ghost, [4 * half, 0], [4, 3]), alone) < 1e-6);
  }
  // Running statistics take the average of the virtual batches' statistics (as Keras does).
  const halves = [0, 1].map((h) => tf.moments(tf.slice(x, [4 * h, 0], [4, 3]), 0));
  assert.ok(
    await maxAbsDiff(
      ghostLayer.movingMean!.read(),
      tf.div(tf.add(halves[0].mean, halves[1].mean), 2),
    ) < 1e-6,
  );
  assert.ok(
    await maxAbsDiff(
      ghostLayer.movingVariance!.read(),
      tf.div(tf.add(halves[0].variance, halves[1].variance), 2),
    ) < 1e-6,
  );
  // Gradients flow through ghost batches too.
  const g = step(batchNorm({ virtualBatchSize: 2 }), x, randn([8, 3], 12));
  assert.deepEqual(g.grads.gamma.shape, [3]);
});

for (
  const options of [{ center: false }, { scale: false }, {
    center: false,
    scale: false,
  }] as BatchNormOptions[]
) {
  Deno.test(`a model with ${JSON.stringify(options)} trains (tfjs's own layer crashes, issue 2868)`, async () => {
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ units: 4, inputShape: [3] }),
        batchNorm(options),
        tf.layers.dense({ units: 1 }),
      ],
    });
    const names = model.layers[1].weights.map((w) => w.originalName.split("/").pop());
    assert.equal(names.includes("gamma"), options.scale !== false);
    assert.equal(names.includes("beta"), options.center !== false);
    model.compile({ optimizer: tf.train.sgd(0.1), loss: "meanSquaredError" });
    const history = await model.fit(randn([32, 3], 13), randn([32, 1], 14), {
      epochs: 3,
      batchSize: 8,
      verbose: 0,
    });
    assert.ok(history.history.loss.every((l) => Number.isFinite(l as number)));
    model.dispose();
  });
}

Deno.test("rejected options and shapes say what was received and what is allowed", () => {
  const cases: [BatchNormOptions, string][] = [
    [{ momentum: 1.5 }, "BatchNorm: momentum must be in [0, 1] or null, received 1.5"],
    [
      { momentumConvention: "tf" as never },
      'BatchNorm: momentumConvention must be "keras" or "pytorch", received "tf"',
    ],
    [{ epsilon: 0 }, "BatchNorm: epsilon must be a positive number, received 0"],
    [
      { runningVariance: "sample" as never },
      'BatchNorm: runningVariance must be "biased" or "unbiased", received "sample"',
    ],
    [
      { gradient: "numeric" as never },
      'BatchNorm: gradient must be one of analytic, autodiff, constant-statistics, received "numeric"',
    ],
    [
      { virtualBatchSize: 1 },
      "BatchNorm: virtualBatchSize must be an integer > 1 or null, received 1",
    ],
    [
      { renormClipping: { rMax: 0.5 } },
      "BatchNorm: renormClipping.rMax must be a number >= 1, received 0.5",
    ],
    [{ renormMomentum: 2 }, "BatchNorm: renormMomentum must be in [0, 1], received 2"],
    [{ axis: 1.5 }, "BatchNorm: axis must be an integer, received 1.5"],
  ];
  for (const [options, message] of cases) assert.throws(() => batchNorm(options), { message });
  assert.throws(() => batchNorm({ axis: 3 }).apply(tf.zeros([2, 4])), {
    message:
      "BatchNorm: axis must be in [-1, 1] and not the batch axis for input shape [2, 4], received 3",
  });
  assert.throws(() => batchNorm().apply(tf.zeros([4])), {
    message: "BatchNorm: input must have rank >= 2 ([batch, features] or NHWC), received shape [4]",
  });
  assert.throws(() => batchNorm().apply(tf.zeros([1, 4]), { training: true }), {
    message:
      "BatchNorm: expected more than 1 value per channel when training, received input of shape [1, 4]",
  });
  assert.throws(
    () => batchNorm({ virtualBatchSize: 4 }).apply(tf.zeros([6, 4]), { training: true }),
    {
      message: "BatchNorm: virtualBatchSize 4 must divide the batch size, received a batch of 6",
    },
  );
  // One image per batch is fine for conv input: m = H·W values per channel.
  batchNorm().apply(tf.randomNormal([1, 3, 3, 2]), { training: true });
});

Deno.test("no tensor leaks across repeated training calls and model.fit", async () => {
  for (const gradient of ["analytic", "autodiff"] as const) {
    const layer = batchNorm({ gradient, renorm: true });
    const x = randn([8, 4, 4, 3], 15);
    const w = randn([8, 4, 4, 3], 16);
    const once = () => {
      const r = step(layer, x, w);
      tf.dispose([r.loss, r.inference, r.xv, ...Object.values(r.grads)]);
    };
    once();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) once();
    assert.equal(tf.memory().numTensors, before, gradient);
  }
  const model = tf.sequential({
    layers: [tf.layers.dense({ units: 4, inputShape: [3] }), batchNorm({ momentum: null })],
  });
  model.compile({ optimizer: "sgd", loss: "meanSquaredError" });
  const [xs, ys] = [randn([16, 3], 17), randn([16, 4], 18)];
  await model.fit(xs, ys, { epochs: 1, batchSize: 4, verbose: 0 });
  const before = tf.memory().numTensors;
  await model.fit(xs, ys, { epochs: 2, batchSize: 4, verbose: 0 });
  assert.equal(tf.memory().numTensors, before);
});

Deno.test("a model with the layer saves and loads with identical outputs; getConfig round-trips", async () => {
  const options: BatchNormOptions = {
    momentum: 0.1,
    momentumConvention: "pytorch",
    epsilon: 1e-5,
    runningVariance: "unbiased",
    gradient: "autodiff",
    renorm: true,
    renormClipping: { rMax: 2, dMax: 1 },
    renormMomentum: 0.9,
    virtualBatchSize: 4,
    center: false,
  };
  const model = tf.sequential({
    layers: [tf.layers.dense({ units: 3, inputShape: [2] }), batchNorm(options)],
  });
  model.compile({ optimizer: "sgd", loss: "meanSquaredError" });
  await model.fit(randn([16, 2], 19), randn([16, 3], 20), { epochs: 2, batchSize: 8, verbose: 0 });
  let saved: tf.io.ModelArtifacts | undefined;
  await model.save(tf.io.withSaveHandler((artifacts) => {
    saved = artifacts;
    return Promise.resolve({
      modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: "JSON" },
    });
  }));
  const loaded = await tf.loadLayersModel(tf.io.fromMemory(saved!));
  const x = randn([5, 2], 21);
  assert.equal(await maxAbsDiff(model.predict(x) as tf.Tensor, loaded.predict(x) as tf.Tensor), 0);
  const config = loaded.layers[1].getConfig();
  for (const [key, value] of Object.entries(options)) assert.deepEqual(config[key], value, key);
  assert.ok(loaded.layers[1] instanceof BatchNorm);
});
