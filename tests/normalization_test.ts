import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { type BatchNorm, batchNorm } from "../lib/norms/batch_norm.ts";
import {
  normalizationLayer,
  normalizationName,
  NORMALIZATIONS,
} from "../lib/norms/normalization.ts";
import type { GroupNorm } from "../lib/norms/group_norm.ts";
import type { LayerNorm } from "../lib/norms/layer_norm.ts";

Deno.test.beforeAll(async () => {
  await tf.setBackend("cpu");
});

const CLASSES: Record<string, string | null> = {
  none: null,
  bnlab: "BatchNorm",
  tfjs: "BatchNormalization",
  group: "GroupNorm",
  layer: "LayerNorm",
  renorm: "BatchNorm",
  ghost: "BatchNorm",
};

Deno.test("normalizationLayer builds every variant and each runs a forward pass", () => {
  assert.deepEqual([...NORMALIZATIONS], Object.keys(CLASSES));
  const x = tf.randomNormal([4, 3, 3, 8], 2, 3, "float32", 1);
  for (const variant of NORMALIZATIONS) {
    // renorm with rMax = 1, dMax = 0 is plain BN (fresh renorm statistics would shift the mean).
    const layer = normalizationLayer(variant, {
      groups: 4,
      virtualBatchSize: 2,
      batchNorm: { renormClipping: { rMax: 1, dMax: 0 } },
    });
    assert.equal(layer?.getClassName() ?? null, CLASSES[variant], variant);
    if (!layer) continue;
    tf.dispose(layer.apply(x, { training: true }) as tf.Tensor); // builds the weights
    const before = tf.memory().numTensors;
    const y = layer.apply(x, { training: true }) as tf.Tensor;
    assert.deepEqual(y.shape, x.shape);
    // Every variant normalizes a sample set with mean 2, std 3 to about mean 0 at γ = 1, β = 0.
    const mean = tf.tidy(() => tf.mean(y).dataSync()[0]);
    assert.ok(Math.abs(mean) < 1e-4, `${variant}: mean ${mean}`);
    y.dispose();
    assert.equal(tf.memory().numTensors, before, `${variant} leaks`);
  }
  x.dispose();
});

Deno.test("normalizationLayer passes each variant its options", () => {
  const renorm = normalizationLayer("renorm", {
    epsilon: 1e-5,
    batchNorm: { renormClipping: { rMax: 2, dMax: 1, warmupSteps: 10 } },
  }) as BatchNorm;
  assert.equal(renorm.renorm, true);
  assert.equal(renorm.epsilon, 1e-5);
  assert.deepEqual(renorm.renormClipping, { rMax: 2, dMax: 1, warmupSteps: 10 });
  const ghost = normalizationLayer("ghost", { virtualBatchSize: 4 }) as BatchNorm;
  assert.equal(ghost.virtualBatchSize, 4);
  const ghost2 = normalizationLayer("ghost", { batchNorm: { virtualBatchSize: 8 } }) as BatchNorm;
  assert.equal(ghost2.virtualBatchSize, 8);
  const bn = normalizationLayer("bnlab", {
    center: false,
    batchNorm: { momentum: null },
  }) as BatchNorm;
  assert.equal(bn.center, false);
  assert.equal(bn.momentum, null);
  assert.equal(bn.renorm, false);
  const group = normalizationLayer("group", {
    groups: 8,
    epsilon: 1e-5,
    scale: false,
  }) as GroupNorm;
  assert.deepEqual([group.groups, group.epsilon, group.scale], [8, 1e-5, false]);
  assert.equal((normalizationLayer("group") as GroupNorm).groups, 32);
  const layer = normalizationLayer("layer", { epsilon: 1e-4 }) as LayerNorm;
  assert.equal(layer.epsilon, 1e-4);
  const tfjs = normalizationLayer("tfjs", { tfjsMomentum: 0.9 })!;
  assert.equal(tfjs.getConfig().momentum, 0.9);
});

Deno.test("normalizationName resolves custom; the errors name what was expected", () => {
  assert.equal(normalizationName("custom"), "bnlab");
  assert.equal(normalizationName("group"), "group");
  assert.throws(() => normalizationName("batch"), {
    message:
      'normalization must be one of none, bnlab, tfjs, group, layer, renorm, ghost (or custom for bnlab), received "batch"',
  });
  assert.throws(() => normalizationLayer("ghost"), {
    message:
      "normalizationLayer: ghost needs virtualBatchSize (an integer > 1 dividing the batch size), received undefined",
  });
  assert.throws(() => normalizationLayer("batch" as never), {
    message:
      'normalizationLayer: variant must be one of none, bnlab, tfjs, group, layer, renorm, ghost, received "batch"',
  });
  assert.throws(() => batchNorm({ renorm: true, renormClipping: { warmupSteps: -1 } }), {
    message: "BatchNorm: renormClipping.warmupSteps must be an integer >= 0, received -1",
  });
  assert.throws(() => batchNorm({ renorm: true, renormClipping: { warmupSteps: 1.5 } }), {
    message: "BatchNorm: renormClipping.warmupSteps must be an integer >= 0, received 1.5",
  });
});

/** y of one training call of `layer` on x, and the layer's renorm step counter after it. */
async function renormStep(layer: BatchNorm, x: tf.Tensor) {
  const y = await (layer.apply(x, { training: true }) as tf.Tensor).data();
  return { y, steps: layer.renormSteps ? (await layer.renormSteps.read().data())[0] : null };
}

Deno.test("renorm's warm-up relaxes rMax from 1 and dMax from 0 linearly over warmupSteps", async () => {
  // One channel, x = [10, 14]: μ_B = 12, σ_B = √(4 + ε). The renorm statistics stay at their
  // initial μ = 0, σ = 1 with renormMomentum 1, so r = σ_B/1 ≈ 2 and d = 12 are always clipped:
  // y = x̂·r_t + d_t with r_t = rMax_t = 1 + (3 − 1)·t/4 and d_t = dMax_t = 0.5·t/4, x̂ = ∓√(4/(4+ε)).
  const x = tf.tensor2d([[10], [14]]);
  const warm = batchNorm({
    renorm: true,
    renormMomentum: 1,
    renormClipping: { rMax: 3, dMax: 0.5, warmupSteps: 4 },
  });
  const eps = 1e-3, xHat = 2 / Math.sqrt(4 + eps);
  for (let t = 0; t < 7; t++) {
    const { y, steps } = await renormStep(warm, x);
    const fraction = Math.min(t / 4, 1);
    const r = Math.min(1 + 2 * fraction, Math.sqrt(4 + eps)), d = 0.5 * fraction;
    assert.ok(Math.abs(y[0] - (-xHat * r + d)) < 1e-5, `step ${t}: ${y[0]} vs ${-xHat * r + d}`);
    assert.ok(Math.abs(y[1] - (xHat * r + d)) < 1e-5, `step ${t}: ${y[1]}`);
    assert.equal(steps, t + 1);
  }
  // Constant bounds: no counter, r and d at their bounds from the first call.
  const constant = batchNorm({
    renorm: true,
    renormMomentum: 1,
    renormClipping: { rMax: 1.5, dMax: 0.5 },
  });
  const { y, steps } = await renormStep(constant, x);
  assert.equal(steps, null);
  assert.ok(Math.abs(y[0] - (-xHat * 1.5 + 0.5)) < 1e-5);
  assert.equal(constant.getWeights().length, warm.getWeights().length - 1);
  // The counter is a non-trainable weight: it is saved with the model and restored.
  assert.ok(warm.nonTrainableWeights.some((w) => w.originalName.endsWith("renorm_steps")));
  assert.equal(
    warm.getConfig().renormClipping &&
      (warm.getConfig().renormClipping as { warmupSteps: number }).warmupSteps,
    4,
  );
  x.dispose();
});

Deno.test("renorm with warm-up does not leak tensors", () => {
  const layer = batchNorm({ renorm: true, renormClipping: { warmupSteps: 3 } });
  const x = tf.randomNormal([4, 2, 2, 3], 0, 1, "float32", 3);
  tf.dispose(layer.apply(x, { training: true }) as tf.Tensor);
  const before = tf.memory().numTensors;
  for (let i = 0; i < 3; i++) tf.dispose(layer.apply(x, { training: true }) as tf.Tensor);
  assert.equal(tf.memory().numTensors, before);
  x.dispose();
});
