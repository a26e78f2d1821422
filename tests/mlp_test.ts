import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { createMlp } from "../lib/models/mlp.ts";
import { assertGradientsMatchCpu, lossBeforeAfter } from "./_model_test_utils.ts";

Deno.test("createMlp builds Ioffe & Szegedy's Figure 1 network", async () => {
  await tf.setBackend("cpu");
  const plain = createMlp({ activation: "sigmoid" });
  // 784·100 + 100 + 2·(100·100 + 100) + 100·10 + 10
  assert.equal(plain.countParams(), 78500 + 2 * 10100 + 1010);
  assert.deepEqual(
    plain.layers.map((l) => l.getClassName()),
    ["Flatten", "Dense", "Activation", "Dense", "Activation", "Dense", "Activation", "Dense"],
  );
  plain.dispose();
  const bn = createMlp({ normalization: "custom", hidden: [20, 30], inputShape: [4, 4, 2] });
  assert.equal(bn.name, "mlp_bnlab");
  // The dense layers before a norm drop their bias; each BN adds γ, β, mean, variance.
  assert.equal(bn.countParams(), 32 * 20 + 20 * 30 + 30 * 10 + 10 + 4 * 50);
  const y = bn.predict(tf.zeros([3, 4, 4, 2])) as tf.Tensor;
  assert.deepEqual(y.shape, [3, 10]);
  y.dispose();
  bn.dispose();
});

Deno.test("createMlp rejects bad options with their messages", () => {
  const cases: [Parameters<typeof createMlp>[0], string][] = [
    [{ hidden: [10, 0] }, "createMlp: hidden must be a list of positive integers, received [10,0]"],
    [
      { activation: "gelu" as never },
      'createMlp: activation must be one of relu, sigmoid, tanh, received "gelu"',
    ],
    [
      { normalization: "batch" as never },
      'createMlp: normalization must be one of none, bnlab, tfjs, group, layer, renorm, ghost (or custom for bnlab), received "batch"',
    ],
    [
      { init: "xavier" as never },
      'createMlp: init must be one of glorot, pytorch, he, received "xavier"',
    ],
    [{ seed: 1.5 }, "createMlp: seed must be an integer, received 1.5"],
    [
      { inputShape: [28, 28] as never },
      "createMlp: inputShape must be [height, width, channels] of positive integers, received [28,28]",
    ],
    [{ numClasses: 1 }, "createMlp: numClasses must be an integer >= 2, received 1"],
  ];
  for (const [options, message] of cases) assert.throws(() => createMlp(options), { message });
});

// Without BN the sigmoid network barely moves in 20 steps (Ioffe & Szegedy's Figure 1 point),
// so the plain network is checked with ReLU.
for (
  const [normalization, activation, lr] of [
    ["none", "relu", 0.5],
    ["bnlab", "sigmoid", 0.2],
    ["group", "relu", 0.1],
  ] as const
) {
  Deno.test(`createMlp (${normalization}, ${activation}) lowers the loss on 256 MNIST images on wasm`, async () => {
    const { before, after } = await lossBeforeAfter(
      () => createMlp({ normalization, activation, seed: 1, normalizationOptions: { groups: 10 } }),
      { steps: 20, batchSize: 32, lr },
    );
    assert.ok(after < 0.8 * before, `loss ${before} → ${after}`);
  });
}

for (const normalization of ["layer", "group", "bnlab"] as const) {
  Deno.test(`createMlp's wasm gradients match cpu's (2 images 12×12, ${normalization}; relative L2 ≤ 1e-3)`, async () => {
    await assertGradientsMatchCpu(
      () =>
        createMlp({
          normalization,
          hidden: [16, 16],
          inputShape: [12, 12, 1],
          seed: 2,
          normalizationOptions: { groups: 4 },
        }),
      [2, 12, 12, 1],
    );
  });
}
