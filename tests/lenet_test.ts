import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { createLeNet } from "../lib/models/lenet.ts";

Deno.test.beforeAll(async () => {
  await tf.setBackend("cpu");
});

// Parameter counts worked out by hand from the architecture:
// conv1 5·5·1·20 (+20 bias), conv2 5·5·20·50 (+50), dense 800·500 (+500), dense 500·10 + 10.
const WEIGHTS_NO_BN = 500 + 20 + 25000 + 50 + 400000 + 500 + 5000 + 10; // 431,080
// With BN the conv/dense before it drops its bias and each BN adds γ, β, mean, variance.
const WEIGHTS_BN = WEIGHTS_NO_BN - 20 - 50 - 500 + 4 * (20 + 50 + 500);

Deno.test("createLeNet builds the report's architecture", () => {
  const model = createLeNet();
  assert.equal(model.countParams(), WEIGHTS_NO_BN);
  const shapes = model.layers.map((l) => JSON.stringify(l.outputShape));
  assert.deepEqual(shapes, [
    "[null,24,24,20]",
    "[null,24,24,20]",
    "[null,12,12,20]",
    "[null,8,8,50]",
    "[null,8,8,50]",
    "[null,4,4,50]",
    "[null,800]",
    "[null,500]",
    "[null,500]",
    "[null,10]",
  ]);
  model.dispose();
});

for (const normalization of ["tfjs", "custom"] as const) {
  Deno.test(`createLeNet with ${normalization} BN puts BN before each hidden activation`, () => {
    const model = createLeNet({ normalization });
    assert.equal(model.countParams(), WEIGHTS_BN);
    const kinds = model.layers.map((l) => l.getClassName());
    const bnName = normalization === "tfjs" ? "BatchNormalization" : kinds[1];
    assert.deepEqual(kinds.filter((k) => k === bnName).length, 3);
    assert.equal(kinds[1], bnName);
    assert.equal(kinds[2], "Activation");
    const logits = model.predict(tf.zeros([2, 28, 28, 1])) as tf.Tensor;
    assert.deepEqual(logits.shape, [2, 10]);
    logits.dispose();
    model.dispose();
  });
}

Deno.test("createLeNet is deterministic by seed and differs across seeds", () => {
  const weights = (seed: number) => {
    const model = createLeNet({ seed });
    const values = model.getWeights().map((w) => Array.from(w.dataSync().slice(0, 8)));
    model.dispose();
    return values;
  };
  assert.deepEqual(weights(3), weights(3));
  assert.notDeepEqual(weights(3), weights(4));
});

Deno.test("createLeNet's pytorch init draws from U(-1/sqrt(fanIn), 1/sqrt(fanIn))", () => {
  const model = createLeNet({ init: "pytorch" });
  const kernel = Array.from(model.layers[3].getWeights()[0].dataSync()); // conv2: fanIn = 5·5·20
  const bound = 1 / Math.sqrt(500);
  const max = kernel.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  assert.ok(max <= bound && max > 0.95 * bound, `max |w| ${max}, bound ${bound}`);
  model.dispose();
});

Deno.test("createLeNet rejects bad options", () => {
  assert.throws(() => createLeNet({ normalization: "batch" as never }), {
    message:
      'createLeNet: normalization must be one of none, bnlab, tfjs, group, layer, renorm, ghost (or custom for bnlab), received "batch"',
  });
  assert.throws(() => createLeNet({ activation: "gelu" as never }), {
    message: 'createLeNet: activation must be one of relu, sigmoid, tanh, received "gelu"',
  });
  assert.throws(() => createLeNet({ seed: 0.5 }), {
    message: "createLeNet: seed must be an integer, received 0.5",
  });
});
