/**
 * lib/kernels/tfjs_batch_norm.ts: on wasm, tfjs's `BatchNormalization` layer in training runs
 * as one native kernel forward and one backward, with tfjs's floats: the output, the moving
 * averages and the gradients equal (`Object.is`) those of tfjs's own `call` on the same
 * kernels; a second order, wasm without the native kernels, a layer applied outside a model
 * and one whose input also feeds a later op take tfjs's path.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backend.ts";
import {
  fusedTfjsBatchNorm,
  setFusedTfjsBatchNorm,
  TFJS_BN_TRAINING,
  TFJS_BN_TRAINING_GRAD,
} from "../lib/kernels/tfjs_batch_norm.ts";
import { setNativeEnabled } from "../lib/kernels/native_library.ts";
import { createLeNet } from "../lib/models/lenet.ts";
import { createRng } from "../lib/data/random.ts";
import { assertMemoryFlat, assertSameValues, uniform } from "./_kernel_test_utils.ts";

/** The arguments of `tf.layers.batchNormalization`. */
type _Args = Parameters<typeof tf.layers.batchNormalization>[0];

/**
 * A model of one layer over inputs of `shape` (batch first), so that the layer sits in a graph
 * as in a network; with `skip`, its input also feeds an addition after it (y + x).
 */
function _model(layer: tf.layers.Layer, shape: number[], skip = false): tf.LayersModel {
  const input = tf.input({ shape: shape.slice(1) });
  const y = layer.apply(input) as tf.SymbolicTensor;
  const output = skip ? tf.layers.add().apply([y, input]) as tf.SymbolicTensor : y;
  return tf.model({ inputs: input, outputs: output });
}

/** Counts the calls of the wasm kernel `name` until `stop()`, which returns the count. */
function _countCalls(name: string): { stop(): number } {
  const config = tf.getKernel(name, "wasm") as { kernelFunc: tf.KernelFunc };
  const original = config.kernelFunc;
  let count = 0;
  config.kernelFunc = (args) => {
    count++;
    return original(args);
  };
  return {
    stop() {
      config.kernelFunc = original;
      return count;
    },
  };
}

/** [input shape, layer arguments, input scale]. */
const _CASES: [number[], _Args, number][] = [
  [[20, 24, 24, 20], { momentum: 0.9, epsilon: 1e-5 }, 1], // LeNet's first, as the report's
  [[20, 500], {}, 1], // a dense layer's, tfjs's defaults
  [[3, 5, 7], { momentum: 0.5, epsilon: 0.1 }, 100], // rank 3, a large scale
  [[1, 4], { epsilon: 1e-3 }, 1], // a batch of one: every variance 0
  [[6, 2, 2, 33], { momentum: 0, epsilon: 1e-8 }, 1e-3], // channels past a block of 32
];

/**
 * One recorded training call of a fresh layer on x (with random γ, β and moving averages):
 * y, the new moving averages, the gradients of Σ y·w with respect to x, γ and β, and the
 * kernel calls by name.
 */
async function _run(
  shape: number[],
  args: _Args,
  scale: number,
  fused: boolean,
  seed: number,
  skip = false,
) {
  const before = setFusedTfjsBatchNorm(fused);
  try {
    const random = createRng(seed);
    const values = uniform(tf.util.sizeFromShape(shape), random).map((v) => v * scale);
    // Ties, zeros and a constant channel among the values.
    for (let i = 0; i < values.length; i += 7) values[i] = values[i] > 0 ? 0.5 : -0;
    const channels = shape[shape.length - 1];
    for (let i = channels - 1; i < values.length; i += channels) values[i] = 2;
    const x = tf.tensor(values, shape);
    const w = tf.tensor(uniform(values.length, random), shape);
    const layer = tf.layers.batchNormalization(args);
    const model = _model(layer, shape, skip);
    layer.setWeights(
      layer.getWeights().map((v, i) =>
        tf.tensor(
          uniform(v.size, random).map((u) => i === 3 ? 0.5 + Math.abs(u) : u),
          v.shape,
        )
      ),
    );
    const xv = tf.variable(x);
    const variables = [xv, ...layer.trainableWeights.map((v) => v.read() as tf.Variable)];
    let y: tf.Tensor | undefined;
    let result: { value: tf.Scalar; grads: tf.NamedTensorMap } | undefined;
    const profile = await tf.profile(() => {
      result = tf.variableGrads(() => {
        y = tf.keep(model.apply(xv, { training: true }) as tf.Tensor);
        return tf.sum(tf.mul(y, w));
      }, variables);
    });
    const read = (t: tf.Tensor) => t.data() as Promise<Float32Array>;
    const averages = layer.getWeights().slice(2);
    const out = {
      y: await read(y!),
      movingMean: await read(averages[0]),
      movingVariance: await read(averages[1]),
      dx: await read(result!.grads[variables[0].name]),
      dGamma: await read(result!.grads[variables[1].name]),
      dBeta: await read(result!.grads[variables[2].name]),
      calls: profile.kernels.map((k) => k.name),
    };
    tf.dispose([x, xv, w, y!, result!.value, ...Object.values(result!.grads)]);
    tf.dispose(layer.getWeights());
    return out;
  } finally {
    setFusedTfjsBatchNorm(before);
  }
}

Deno.test("initBackend('wasm') turns the fused tfjs batch norm on", async () => {
  await initBackend("wasm");
  assert.equal(fusedTfjsBatchNorm(), true);
});

Deno.test("tfjs's BatchNormalization in training: one kernel each way, tfjs's floats", async () => {
  await initBackend("wasm");
  for (const [i, [shape, args, scale]] of _CASES.entries()) {
    const ours = await _run(shape, args, scale, true, 40 + i);
    const theirs = await _run(shape, args, scale, false, 40 + i);
    const label = `[${shape}] ${JSON.stringify(args)}`;
    for (const key of ["y", "movingMean", "movingVariance", "dx", "dGamma", "dBeta"] as const) {
      assertSameValues(ours[key], theirs[key], `${label}: ${key}`);
    }
    const count = (calls: string[], name: string) => calls.filter((n) => n === name).length;
    assert.equal(count(ours.calls, TFJS_BN_TRAINING), 1, label);
    assert.equal(count(ours.calls, TFJS_BN_TRAINING_GRAD), 1, label);
    assert.equal(count(theirs.calls, TFJS_BN_TRAINING), 0, label);
    assert.ok(ours.calls.length < theirs.calls.length / 2, `${label}: ${ours.calls}`);
  }
});

Deno.test("tfjs's BatchNormalization: tfjs's path where the input also feeds a later op", async () => {
  await initBackend("wasm");
  const shape = [6, 4, 4, 5];
  const ours = await _run(shape, {}, 1, true, 61, true);
  const theirs = await _run(shape, {}, 1, false, 61, true);
  for (const key of ["y", "movingMean", "movingVariance", "dx", "dGamma", "dBeta"] as const) {
    assertSameValues(ours[key], theirs[key], key);
  }
  assert.equal(ours.calls.filter((n) => n === TFJS_BN_TRAINING).length, 0);
});

Deno.test("tfjs's BatchNormalization: LeNet trains to the same weights fused or not", async () => {
  await initBackend("wasm");
  const train = (fused: boolean) => {
    const before = setFusedTfjsBatchNorm(fused);
    try {
      const model = createLeNet({ normalization: "tfjs", activation: "sigmoid", seed: 5 });
      const optimizer = tf.train.sgd(0.1);
      const random = createRng(9);
      let fusedCalls = 0;
      for (let step = 0; step < 3; step++) {
        const xs = tf.tensor4d(uniform(8 * 28 * 28, random), [8, 28, 28, 1]);
        const ys = tf.oneHot(tf.tensor1d([0, 1, 2, 3, 4, 5, 6, 7], "int32"), 10);
        const spy = _countCalls(TFJS_BN_TRAINING);
        try {
          optimizer.minimize(() =>
            tf.losses.softmaxCrossEntropy(ys, model.apply(xs, { training: true }) as tf.Tensor)
          );
        } finally {
          fusedCalls += spy.stop();
        }
        tf.dispose([xs, ys]);
      }
      // All three BN layers, every step, when fused.
      assert.equal(fusedCalls, fused ? 9 : 0);
      const weights = model.getWeights().map((w) => w.dataSync() as Float32Array);
      model.dispose();
      optimizer.dispose();
      return weights;
    } finally {
      setFusedTfjsBatchNorm(before);
    }
  };
  const ours = train(true);
  const theirs = train(false);
  assert.equal(ours.length, theirs.length);
  // Kernels, biases, γ, β and the moving averages of all three BN layers.
  for (const [i, w] of ours.entries()) assertSameValues(w, theirs[i], `weight ${i}`);
});

Deno.test("tfjs's BatchNormalization: tfjs's path for a second order, without the native kernels, or outside a model", async () => {
  await initBackend("wasm");
  const x = tf.tensor2d(uniform(8 * 3, createRng(2)), [8, 3]);
  const calls = async (layer: tf.layers.Layer, order: 1 | 2, inModel = true) => {
    const net = inModel ? _model(layer, x.shape) : layer;
    const f = (xs: tf.Tensor) => tf.sum(tf.square(net.apply(xs, { training: true }) as tf.Tensor));
    const profile = await tf.profile(() => {
      const g = order === 1 ? tf.grad(f)(x) : tf.grad((xs: tf.Tensor) => tf.sum(tf.grad(f)(xs)))(x);
      assert.ok(g.dataSync().every(Number.isFinite));
    });
    return profile.kernels.filter((k) => k.name === TFJS_BN_TRAINING).length;
  };
  assert.equal(await calls(tf.layers.batchNormalization({}), 1), 1);
  assert.equal(await calls(tf.layers.batchNormalization({}), 2), 0, "second order");
  assert.equal(await calls(tf.layers.batchNormalization({}), 1, false), 0, "outside a model");
  // (tfjs 4.22's layer cannot train without γ or β: it reads them unconditionally.)
  const native = setNativeEnabled(false);
  try {
    assert.equal(await calls(tf.layers.batchNormalization({}), 1), 0, "without native kernels");
  } finally {
    setNativeEnabled(native);
  }
  x.dispose();
});

Deno.test("tfjs's BatchNormalization: the fused training step keeps memory flat", async () => {
  await initBackend("wasm");
  const model = _model(tf.layers.batchNormalization({}), [10, 6]);
  const x = tf.tensor2d(uniform(60, createRng(4)), [10, 6]);
  const step = () => [
    tf.grad((xs: tf.Tensor) => tf.sum(model.apply(xs, { training: true }) as tf.Tensor))(x),
  ];
  const spy = _countCalls(TFJS_BN_TRAINING);
  try {
    await assertMemoryFlat(step, 5);
  } finally {
    assert.ok(spy.stop() > 0, "the fused kernel ran");
  }
  x.dispose();
});
