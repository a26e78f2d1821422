import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { createResNet20 } from "../lib/models/resnet20.ts";
import { assertGradientsMatchCpu, lossBeforeAfter } from "./_model_test_utils.ts";

// Weights worked out by hand: convs 3·3·1·16 (stem), stage 1: 6 convs 3·3·16·16; stage 2:
// 3·3·16·32 + 5 convs 3·3·32·32 + projection 16·32; stage 3: 3·3·32·64 + 5·3·3·64·64 +
// projection 32·64; dense 64·10 + 10.
const CONVS = 144 + 6 * 2304 + (4608 + 5 * 9216 + 512) + (18432 + 5 * 36864 + 2048);
const NORM_CHANNELS = 16 + 6 * 16 + 6 * 32 + 32 + 6 * 64 + 64; // 21 norm sites
const DENSE = 64 * 10 + 10;

Deno.test("createResNet20 builds He et al.'s CIFAR ResNet-20 for 28×28×1", async () => {
  await tf.setBackend("cpu");
  const plain = createResNet20();
  // Without normalization every conv keeps its bias.
  assert.equal(plain.countParams(), CONVS + NORM_CHANNELS + DENSE);
  const convs = plain.layers.filter((l) => l.getClassName() === "Conv2D");
  assert.equal(convs.length, 21); // the stem, 18 block convs, 2 projections
  assert.deepEqual(plain.outputs[0].shape, [null, 10]);
  const shapes = convs.map((l) => JSON.stringify((l.outputShape as number[]).slice(1)));
  assert.equal(shapes.filter((s) => s === "[28,28,16]").length, 7);
  assert.equal(shapes.filter((s) => s === "[14,14,32]").length, 7);
  assert.equal(shapes.filter((s) => s === "[7,7,64]").length, 7);
  plain.dispose();
  const bn = createResNet20({ normalization: "bnlab" });
  assert.equal(bn.name, "resnet20_bnlab");
  // With normalization the convs drop their biases and each of 21 norm sites adds 4·C weights.
  assert.equal(bn.countParams(), CONVS + 4 * NORM_CHANNELS + DENSE);
  assert.equal(bn.layers.filter((l) => l.getClassName() === "BatchNorm").length, 21);
  assert.equal(bn.layers.filter((l) => l.getClassName() === "Add").length, 9);
  bn.dispose();
});

Deno.test("createResNet20 takes any input size and channel count", async () => {
  await tf.setBackend("cpu");
  const model = createResNet20({ normalization: "group", inputShape: [13, 9, 3], numClasses: 4 });
  const y = model.predict(tf.zeros([2, 13, 9, 3])) as tf.Tensor;
  assert.deepEqual(y.shape, [2, 4]);
  y.dispose();
  model.dispose();
});

Deno.test("createResNet20 rejects bad options with their messages", () => {
  assert.throws(() => createResNet20({ normalization: "bn" as never }), {
    message:
      'createResNet20: normalization must be one of none, bnlab, tfjs, group, layer, renorm, ghost (or custom for bnlab), received "bn"',
  });
  assert.throws(() => createResNet20({ inputShape: [28, 0, 1] }), {
    message:
      "createResNet20: inputShape must be [height, width, channels] of positive integers, received [28,0,1]",
  });
  assert.throws(
    () => createResNet20({ normalization: "group", normalizationOptions: { groups: 5 } }),
    {
      message: "groupNorm: groups must divide the channel count 16, received 5",
    },
  );
});

for (const normalization of ["bnlab", "group"] as const) {
  Deno.test(`createResNet20 (${normalization}) lowers the loss on MNIST on wasm (batch 16)`, async () => {
    const { before, after } = await lossBeforeAfter(
      () => createResNet20({ normalization, seed: 1 }),
      { steps: 8, batchSize: 16, lr: 0.05 },
    );
    assert.ok(after < 0.8 * before, `loss ${before} → ${after}`);
  });
}

Deno.test("createResNet20's wasm gradients match cpu's (2 images 8×8, bnlab; relative L2 ≤ 1e-3)", async () => {
  await assertGradientsMatchCpu(
    () => createResNet20({ normalization: "bnlab", inputShape: [8, 8, 1], seed: 3 }),
    [2, 8, 8, 1],
  );
});
