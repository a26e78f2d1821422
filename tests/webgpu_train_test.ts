/**
 * Training on webgpu agrees with training on wasm.
 *
 * A tiny conv net with the layers LeNet is made of (conv 4@3×3 → BN → ReLU → max-pool 2 →
 * flatten → dense 6 → BN → ReLU → dense 10, on 8×8 images) starts from the same weights on both
 * backends and trains 4 SGD steps through the project's own `train` loop, then runs `evaluate`
 * with running and with batch statistics. The first step's loss and gradients, every step's
 * loss, the updated weights, the BN running statistics and the evaluations must agree within
 * the float32 tolerance below, with bnlab's BN (analytic gradient) and with tfjs's BN. On webgpu
 * nothing may read a GPU tensor synchronously (`dataSync` stalls the queue, and under Deno it
 * even fails: tfjs reads through an `OffscreenCanvas` Deno cannot draw on).
 *
 * Runs wherever `navigator.gpu` offers an adapter: Deno's software (fallback) adapter is enough.
 * The model is this small because the software adapter (llvmpipe) compiles each shader with
 * LLVM the first time it runs: this net's ~95 pipelines take about 7 s with an empty Mesa
 * shader cache, while LeNet-sized layers switch tfjs to its tiled matmul and conv shaders
 * (`MatMulPackedProgram`, `Conv2DMMProgram`), about 10 s each to compile there; a 16×16
 * LeNet made this test take 35 s. LeNet itself is checked on webgpu end to end by
 * `deno task train --preset smoke --backend webgpu` (docs/architecture.md, "Backends").
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { backendInfo, type BackendName, initBackend } from "../lib/backend.ts";
import { batchNorm } from "../lib/norms/batch_norm.ts";
import type { Dataset } from "../lib/data/mnist.ts";
import { createRng } from "../lib/data/random.ts";
import { evaluate, type Evaluation } from "../lib/train/evaluate.ts";
import { computeLoss } from "../lib/train/losses.ts";
import { train } from "../lib/train/loop.ts";

// Tolerance: max |webgpu − wasm| ≤ _RTOL × (largest |wasm value| of the tensor compared).
// Both backends compute in float32 (ε = 2⁻²³ ≈ 1.2e-7) but sum in different orders (XNNPACK's
// blocked kernels vs the WGSL shaders' tiles and tree reductions) and use different exp, log
// and rsqrt; a sum of n float32 terms differs by about √n·ε relative (n·ε at worst), and the
// longest sums here have n = 144 (the conv filter gradient: 4 images × 6×6 positions), so
// single ops differ by ~1e-6. BN divides by a 4-image batch's standard deviation, which can
// be small and amplifies that, and 4 SGD steps compound it. Measured on Deno's software
// adapter (llvmpipe): at most 2.5e-6 of the scale (a BN β after 4 steps), gradients ≤ 8e-7,
// losses ≤ 1e-7. 1e-4 leaves a 40× margin and still catches real faults: a BN momentum of
// 0.51 instead of 0.5 on one backend puts a running mean off by 6e-3 of its scale (60×).
const _RTOL = 1e-4;

const _SIZE = 8;
const _IMAGES = 8;
const _BATCH = 4;
const _EPOCHS = 2; // 2 steps per epoch: 4 SGD steps in all
const _LR = 0.1;

const _adapter = await navigator.gpu?.requestAdapter() ?? null;
const _why = navigator.gpu === undefined
  ? "this Deno has no navigator.gpu"
  : "navigator.gpu.requestAdapter() returned null (no WebGPU adapter, not even a software one)";
if (_adapter === null) console.warn(`webgpu_train_test: skipped, ${_why}`);

/** Which BN layer the tiny net uses. */
type Norm = "custom" | "tfjs";

/** Everything one backend produced, as plain arrays. */
interface Outcome {
  firstLoss: number;
  /** The first batch's gradients at the initial weights, in `trainableWeights` order. */
  gradients: { name: string; value: Float32Array }[];
  stepLosses: number[];
  epochLosses: number[];
  /** Every weight after training, in `model.weights` order, with its name. */
  weights: { name: string; value: Float32Array }[];
  running: Evaluation;
  batchStats: Evaluation;
}

Deno.test({
  name: "webgpu trains like wasm: losses, gradients, weights and BN running statistics",
  ignore: _adapter === null,
  fn: async (t) => {
    const data = _dataset();
    for (const normalization of ["custom", "tfjs"] as const) {
      await t.step(`normalization ${normalization}`, async () => {
        await initBackend("wasm");
        const initial = await _initialWeights(normalization);
        const before = tf.memory().numTensors;
        const wasm = await _run("wasm", normalization, initial, data);
        const webgpu = await _run("webgpu", normalization, initial, data);
        assert.equal(tf.memory().numTensors, before, `${normalization}: tensors leaked`);
        _assertClose(`${normalization}: first-step loss`, [webgpu.firstLoss], [wasm.firstLoss]);
        for (const [i, { name, value }] of wasm.gradients.entries()) {
          _assertClose(`${normalization}: gradient of ${name}`, webgpu.gradients[i].value, value);
        }
        assert.equal(wasm.stepLosses.length, _EPOCHS * _IMAGES / _BATCH);
        _assertClose(`${normalization}: step losses`, webgpu.stepLosses, wasm.stepLosses);
        _assertClose(`${normalization}: epoch losses`, webgpu.epochLosses, wasm.epochLosses);
        assert.equal(webgpu.weights.length, wasm.weights.length);
        const names = wasm.weights.map((w) => w.name);
        assert.ok(names.some((n) => n.includes("moving_mean")), `no running mean in ${names}`);
        for (const [i, { name, value }] of wasm.weights.entries()) {
          // Every weight moved (trainable ones by SGD, running statistics by the BN updates).
          assert.ok(
            value.some((v, j) => v !== initial[i][j]),
            `${normalization}: ${name} did not change in training on wasm`,
          );
          _assertClose(`${normalization}: ${name}`, webgpu.weights[i].value, value);
        }
        for (const key of ["running", "batchStats"] as const) {
          assert.deepEqual(
            webgpu[key].predictedCounts,
            wasm[key].predictedCounts,
            `${normalization}: predictions (${key} statistics) differ`,
          );
          _assertClose(`${normalization}: ${key} eval loss`, [webgpu[key].loss], [wasm[key].loss]);
        }
      });
    }
    await initBackend("wasm"); // leave the default behind for any later test
  },
});

/** Seeded uniform images and labels 0‥9 cycling: deterministic and the same on every backend. */
function _dataset(): Dataset {
  const random = createRng(7);
  const images = new Float32Array(_IMAGES * _SIZE * _SIZE).map(() => random());
  const labels = new Uint8Array(_IMAGES).map((_, i) => i % 10);
  return {
    name: "random",
    split: "train",
    count: _IMAGES,
    height: _SIZE,
    width: _SIZE,
    numClasses: 10,
    images,
    labels,
  };
}

function _model(normalization: Norm): tf.Sequential {
  // Momentum 0.5 (Keras form), so that 4 steps move the running statistics well away from 0, 1.
  const norm = () =>
    normalization === "custom"
      ? batchNorm({ momentum: 0.5 })
      : tf.layers.batchNormalization({ momentum: 0.5 });
  const init = (seed: number) => ({ kernelInitializer: tf.initializers.glorotUniform({ seed }) });
  return tf.sequential({
    layers: [
      tf.layers.conv2d({
        inputShape: [_SIZE, _SIZE, 1],
        filters: 4,
        kernelSize: 3,
        useBias: false,
        ...init(1),
      }),
      norm(),
      tf.layers.activation({ activation: "relu" }),
      tf.layers.maxPooling2d({ poolSize: 2, strides: 2 }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 6, useBias: false, ...init(2) }),
      norm(),
      tf.layers.activation({ activation: "relu" }),
      tf.layers.dense({ units: 10, biasInitializer: "glorotUniform", ...init(3) }),
    ],
  });
}

/** The initial weights, in `model.weights` order (layer names differ between two models). */
async function _initialWeights(normalization: Norm): Promise<Float32Array[]> {
  const model = _model(normalization);
  try {
    return await Promise.all(model.weights.map((w) => w.read().data() as Promise<Float32Array>));
  } finally {
    model.dispose();
  }
}

async function _run(
  backend: BackendName,
  normalization: Norm,
  initial: Float32Array[],
  data: Dataset,
): Promise<Outcome> {
  await initBackend(backend);
  assert.equal(backendInfo().name, backend);
  const syncReads = _countGpuSyncReads();
  const model = _model(normalization);
  const setInitial = () =>
    tf.tidy(() =>
      model.setWeights(model.weights.map((w, i) => tf.tensor(initial[i], w.shape as number[])))
    );
  try {
    setInitial();
    // The gradients of the first batch at the initial weights (this also moves the running
    // statistics once, so the initial weights are set again before training).
    const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
    const { value, grads } = tf.tidy(() => {
      const xs = tf.tensor4d(data.images.subarray(0, _BATCH * _SIZE * _SIZE), [
        _BATCH,
        _SIZE,
        _SIZE,
        1,
      ]);
      const ys = tf.oneHot(tf.tensor1d(data.labels.subarray(0, _BATCH), "int32"), 10);
      return tf.variableGrads(
        () => computeLoss("xent", model.apply(xs, { training: true }) as tf.Tensor, ys),
        variables,
      );
    });
    const firstLoss = (await value.data())[0];
    const gradients = await Promise.all(
      model.trainableWeights.map(async (w, i) => ({
        name: w.originalName,
        value: await grads[variables[i].name].data() as Float32Array,
      })),
    );
    tf.dispose([value, ...Object.values(grads)]);
    setInitial();

    const stepLosses: number[] = [];
    const records = await train(model, data, {
      epochs: _EPOCHS,
      batchSize: _BATCH,
      lr: _LR,
      logEvery: 1,
      onEvent: (event) => {
        if (event.type === "step") stepLosses.push(event.loss);
      },
    });
    const weights = await Promise.all(
      model.weights.map(async (w) => ({
        name: w.originalName,
        value: await w.read().data() as Float32Array,
      })),
    );
    const running = await evaluate(model, data, { batchSize: _BATCH });
    const batchStats = await evaluate(model, data, { batchSize: _BATCH, statistics: "batch" });
    assert.equal(
      syncReads.count(),
      0,
      `expected no synchronous reads of GPU tensors on ${backend}, received ${syncReads.count()}`,
    );
    return {
      firstLoss,
      gradients,
      stepLosses,
      epochLosses: records.map((r) => r.trainLoss),
      weights,
      running,
      batchStats,
    };
  } finally {
    syncReads.restore();
    model.dispose();
  }
}

/**
 * Counts `readSync` calls for data that lives only on the GPU (webgpu's backend keeps a CPU
 * copy of small uploaded tensors, which reads cheaply): each one stalls the GPU queue. On
 * other backends there is nothing to count.
 */
function _countGpuSyncReads(): { count(): number; restore(): void } {
  type Internals = {
    readSync(dataId: object): unknown;
    tensorMap: { get(dataId: object): { values?: unknown } | undefined };
  };
  if (tf.getBackend() !== "webgpu") return { count: () => 0, restore: () => {} };
  const backend = tf.backend() as unknown as Internals;
  const original = backend.readSync;
  let count = 0;
  backend.readSync = function (dataId: object) {
    if (this.tensorMap.get(dataId)?.values == null) count++;
    return original.call(this, dataId);
  };
  return {
    count: () => count,
    restore: () => {
      backend.readSync = original;
    },
  };
}

/** |actual − expected| ≤ _RTOL · max(1e-3, max |expected|) for every element. */
function _assertClose(what: string, actual: ArrayLike<number>, expected: ArrayLike<number>) {
  assert.equal(actual.length, expected.length, `${what}: lengths differ`);
  let scale = 1e-3; // floor: a tensor of (near) zeros is compared absolutely
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]));
  let worst = 0, at = 0;
  for (let i = 0; i < expected.length; i++) {
    const diff = Math.abs(actual[i] - expected[i]);
    if (!(diff <= worst)) [worst, at] = [diff, i]; // NaN counts as the worst
  }
  if (Deno.env.get("WEBGPU_TEST_VERBOSE")) {
    console.log(`${what}: max |diff| / scale = ${(worst / scale).toExponential(2)}`);
  }
  assert.ok(
    worst <= _RTOL * scale,
    `${what}: expected webgpu within ${_RTOL} × ${scale.toPrecision(3)} of wasm, received ` +
      `${actual[at]} vs ${expected[at]} at index ${at} (|diff| ${worst.toExponential(2)})`,
  );
}
