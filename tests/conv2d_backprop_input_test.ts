/**
 * The wasm `Conv2DBackpropInput` kernel of lib/kernels/ against tfjs's cpu kernel, the
 * independent reference (a plain JavaScript loop over the defining sum), and LeNet's full
 * gradient on wasm (with every kernel of lib/kernels/) against cpu's.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { type BackendName, initBackend } from "../lib/backend.ts";
import { conv2dBackpropInputWasm } from "../lib/kernels/conv2d_backprop_input.ts";
import { replacedWasmKernel } from "../lib/kernels/mod.ts";
import { createLeNet, type Normalization } from "../lib/models/lenet.ts";
import { createRng } from "../lib/data/random.ts";

/** One convolution whose input gradient is compared. */
interface _Case {
  x: [number, number, number, number];
  filter: [number, number, number, number];
  strides: [number, number];
  pad: tf.Conv2DBackpropInputAttrs["pad"];
  dataFormat: "NHWC" | "NCHW";
  dimRoundingMode?: "floor" | "round" | "ceil";
}

/** Relative tolerance: max|wasm − cpu| ≤ 1e-4 · max|cpu|. */
const _TOLERANCE = 1e-4;

/** The project's seeded PRNG (mulberry32): every case is reproducible from its seed. */
const _random = createRng;

function _uniform(size: number, random: () => number): Float32Array {
  return Float32Array.from({ length: size }, () => 2 * random() - 1);
}

/** Random cases: strides 1–2 per axis, valid/same, odd and non-square sizes, batch 1–8. */
function _randomCases(count: number, seed: number): _Case[] {
  const random = _random(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));
  return Array.from({ length: count }, (_, i): _Case => {
    const kh = int(1, 5), kw = int(1, 5), inChannels = int(1, 16);
    return {
      x: [int(1, 8), int(kh, 13), int(kw, 13), inChannels],
      filter: [kh, kw, inChannels, int(1, 16)],
      strides: [int(1, 2), int(1, 2)],
      pad: i % 2 === 0 ? "valid" : "same",
      dataFormat: "NHWC",
    };
  });
}

/** Cases the random draw may miss: LeNet's layers, numeric, explicit and ceil pads, one channel. */
const _FIXED_CASES: _Case[] = [
  { x: [3, 28, 28, 1], filter: [5, 5, 1, 20], strides: [1, 1], pad: "valid", dataFormat: "NHWC" },
  { x: [3, 12, 12, 20], filter: [5, 5, 20, 50], strides: [1, 1], pad: "valid", dataFormat: "NHWC" },
  { x: [2, 9, 7, 3], filter: [3, 2, 3, 4], strides: [2, 2], pad: 1, dataFormat: "NHWC" },
  { x: [2, 8, 8, 3], filter: [3, 3, 3, 4], strides: [2, 2], pad: "same", dataFormat: "NHWC" },
  { x: [1, 7, 7, 2], filter: [1, 1, 2, 3], strides: [2, 2], pad: "valid", dataFormat: "NHWC" },
  {
    x: [2, 10, 9, 3],
    filter: [3, 3, 3, 2],
    strides: [2, 2],
    pad: 1,
    dataFormat: "NHWC",
    dimRoundingMode: "ceil",
  },
  {
    x: [2, 8, 9, 2],
    filter: [3, 4, 2, 3],
    strides: [1, 2],
    pad: [[0, 0], [2, 0], [1, 3], [0, 0]],
    dataFormat: "NHWC",
  },
  // Pads wider than the filter: dy entries that meet only padding are dropped.
  {
    x: [1, 6, 6, 2],
    filter: [2, 2, 2, 3],
    strides: [1, 1],
    pad: [[0, 0], [3, 0], [0, 4], [0, 0]],
    dataFormat: "NHWC",
  },
  {
    x: [2, 7, 6, 3],
    filter: [3, 2, 3, 2],
    strides: [2, 2],
    pad: [[0, 0], [4, 1], [0, 3], [0, 0]],
    dataFormat: "NHWC",
  },
  // One input channel (the depthwise path), strided, and with one output channel too.
  { x: [4, 28, 28, 1], filter: [5, 5, 1, 20], strides: [2, 2], pad: "same", dataFormat: "NHWC" },
  { x: [2, 9, 8, 1], filter: [3, 3, 1, 1], strides: [1, 2], pad: "valid", dataFormat: "NHWC" },
];

/** Cases the kernel leaves to tfjs's: NCHW (wasm's forward Conv2D is NHWC-only). */
const _FALLBACK_CASES: _Case[] = [
  { x: [2, 3, 9, 8], filter: [3, 3, 3, 4], strides: [2, 1], pad: "same", dataFormat: "NCHW" },
  { x: [1, 5, 6, 7], filter: [2, 3, 5, 3], strides: [1, 1], pad: "valid", dataFormat: "NCHW" },
];

interface _Result {
  shape: number[];
  dtype: tf.DataType;
  values: Float32Array;
}

function _info(c: _Case) {
  return tf.backend_util.computeConv2DInfo(
    c.x,
    c.filter,
    c.strides,
    1,
    c.pad,
    c.dimRoundingMode,
    false,
    c.dataFormat === "NHWC" ? "channelsLast" : "channelsFirst",
  );
}

function _attrs(c: _Case): tf.NamedAttrMap {
  return {
    inputShape: c.x,
    strides: c.strides,
    pad: c.pad,
    dataFormat: c.dataFormat,
    dimRoundingMode: c.dimRoundingMode,
  } as unknown as tf.NamedAttrMap;
}

/**
 * Runs the kernel on `backend` with inputs drawn from `seed`: through the engine, or (for
 * "wasm-direct") by calling conv2dBackpropInputWasm with a fallback that fails the test.
 */
async function _backpropInput(
  backend: BackendName | "wasm-direct",
  c: _Case,
  seed: number,
): Promise<_Result> {
  await initBackend(backend === "wasm-direct" ? "wasm" : backend);
  const random = _random(seed);
  const dyShape = _info(c).outShape;
  const dyValues = _uniform(tf.util.sizeFromShape(dyShape), random);
  const filterValues = _uniform(tf.util.sizeFromShape(c.filter), random);
  const dx = tf.tidy(() => {
    const dy = tf.tensor4d(dyValues, dyShape);
    const filter = tf.tensor4d(filterValues, c.filter);
    if (backend !== "wasm-direct") {
      return tf.engine().runKernel("Conv2DBackpropInput", { dy, filter }, _attrs(c)) as tf.Tensor;
    }
    const info = conv2dBackpropInputWasm(
      { inputs: { dy, filter }, backend: tf.backend(), attrs: _attrs(c) },
      () => {
        throw new Error(`the fast path should cover ${JSON.stringify(c)}`);
      },
    );
    return tf.engine().makeTensorFromTensorInfo(info);
  });
  const result = { shape: dx.shape, dtype: dx.dtype, values: await dx.data() as Float32Array };
  dx.dispose();
  return result;
}

/** max|a − b| / max|b| over all elements. */
function _relativeMaxError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let error = 0, scale = 0;
  for (let i = 0; i < expected.length; i++) {
    error = Math.max(error, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  return scale === 0 ? error : error / scale;
}

/** The engine's tensor counts and the backend's own count of live buffers (wasm heap ids). */
function _memory() {
  const { numTensors, numBytes, numDataBuffers } = tf.memory();
  return { numTensors, numBytes, numDataBuffers, backendDataIds: tf.backend().numDataIds() };
}

Deno.test("wasm Conv2DBackpropInput matches cpu on 43 shapes, without its fallback", async () => {
  const cases = [..._randomCases(32, 20240607), ..._FIXED_CASES];
  for (const [i, c] of cases.entries()) {
    const label = JSON.stringify(c);
    const expected = await _backpropInput("cpu", c, 2000 + i);
    for (const backend of ["wasm", "wasm-direct"] as const) {
      const actual = await _backpropInput(backend, c, 2000 + i);
      assert.deepEqual(actual.shape, c.x, label);
      assert.deepEqual(actual.shape, expected.shape, label);
      assert.equal(actual.dtype, "float32", label);
      const error = _relativeMaxError(actual.values, expected.values);
      assert.ok(
        error <= _TOLERANCE,
        `${backend} ${label}: relative error ${error} > ${_TOLERANCE}`,
      );
    }
  }
});

Deno.test("wasm Conv2DBackpropInput hands NCHW to tfjs's kernel", async () => {
  for (const [i, c] of _FALLBACK_CASES.entries()) {
    const label = JSON.stringify(c);
    const expected = await _backpropInput("cpu", c, 3000 + i);
    const actual = await _backpropInput("wasm", c, 3000 + i);
    assert.deepEqual(actual.shape, expected.shape, label);
    const error = _relativeMaxError(actual.values, expected.values);
    assert.ok(error <= _TOLERANCE, `${label}: relative error ${error} > ${_TOLERANCE}`);
    await assert.rejects(() => _backpropInput("wasm-direct", c, 3000 + i), {
      message: `the fast path should cover ${label}`,
    });
  }
});

Deno.test("wasm Conv2DBackpropInput replaced tfjs's kernel and keeps it", async () => {
  await initBackend("wasm");
  const original = replacedWasmKernel("Conv2DBackpropInput");
  assert.ok(original !== undefined);
  assert.equal(original.kernelName, "Conv2DBackpropInput");
  assert.notEqual(tf.getKernel("Conv2DBackpropInput", "wasm")?.kernelFunc, original.kernelFunc);
});

Deno.test("wasm Conv2DBackpropInput rejects a dy whose shape does not match", async () => {
  await initBackend("wasm");
  const dy = tf.zeros([1, 3, 3, 1]);
  const filter = tf.zeros([2, 2, 1, 1]);
  assert.throws(
    () =>
      tf.engine().runKernel("Conv2DBackpropInput", { dy, filter }, {
        inputShape: [1, 5, 5, 1],
        strides: 1,
        pad: "valid",
        dataFormat: "NHWC",
      }),
    {
      message: "Conv2DBackpropInput (wasm): dy must have the convolution's output shape " +
        "[1,4,4,1] for input [1,5,5,1] and filter [2,2,1,1], received [1,3,3,1]",
    },
  );
  tf.dispose([dy, filter]);
});

Deno.test("wasm conv2dTranspose (the same kernel) matches cpu", async () => {
  const run = async (backend: BackendName) => {
    await initBackend(backend);
    const random = _random(5);
    const y = tf.tidy(() => {
      const x = tf.tensor4d(_uniform(2 * 4 * 5 * 6, random), [2, 4, 5, 6]);
      const w = tf.tensor4d(_uniform(3 * 3 * 3 * 6, random), [3, 3, 3, 6]);
      return tf.conv2dTranspose(x, w, [2, 8, 10, 3], 2, "same");
    });
    const values = await y.data();
    y.dispose();
    return values;
  };
  const error = _relativeMaxError(await run("wasm"), await run("cpu"));
  assert.ok(error <= _TOLERANCE, `relative error ${error} > ${_TOLERANCE}`);
});

Deno.test("wasm Conv2DBackpropInput keeps tensors, bytes and backend buffers flat", async () => {
  await initBackend("wasm");
  const x = tf.randomUniform([8, 12, 12, 20], -1, 1, "float32", 1) as tf.Tensor4D;
  const w = tf.randomUniform([5, 5, 20, 50], -1, 1, "float32", 2) as tf.Tensor4D;
  const dy = tf.randomUniform([8, 8, 8, 50], -1, 1, "float32", 3) as tf.Tensor4D;
  const dy2 = tf.randomUniform([8, 4, 4, 50], -1, 1, "float32", 4) as tf.Tensor4D;
  const w1 = tf.randomUniform([5, 5, 1, 20], -1, 1, "float32", 5) as tf.Tensor4D;
  const dy1 = tf.randomUniform([8, 24, 24, 20], -1, 1, "float32", 6) as tf.Tensor4D;
  const attrs = { inputShape: [8, 12, 12, 20], strides: 1, pad: "valid", dataFormat: "NHWC" };
  const step = async () => {
    const direct = tf.engine().runKernel("Conv2DBackpropInput", { dy, filter: w }, attrs);
    const strided = tf.engine().runKernel("Conv2DBackpropInput", { dy: dy2, filter: w }, {
      ...attrs,
      strides: 2,
    });
    const oneChannel = tf.engine().runKernel("Conv2DBackpropInput", { dy: dy1, filter: w1 }, {
      ...attrs,
      inputShape: [8, 28, 28, 1],
    });
    const loss = (x: tf.Tensor) => tf.conv2d(x as tf.Tensor4D, w, 1, "valid").mul(dy).sum();
    const viaGrad = tf.grad(loss)(x);
    const outputs = [direct, strided, oneChannel, viaGrad] as tf.Tensor[];
    await Promise.all(outputs.map((t) => t.data()));
    tf.dispose(outputs);
  };
  await step(); // warm-up: tfjs caches a few scalars on first use
  const before = _memory();
  for (let i = 0; i < 20; i++) await step();
  assert.deepEqual(_memory(), before);
  tf.dispose([x, w, dy, dy2, w1, dy1]);
});

/**
 * Gradients of the mean softmax cross-entropy of LeNet (lib/models/lenet.ts) in training mode
 * on 8 random images, with respect to every trainable weight, on `backend`; `weights` (when
 * given) replace the initial ones.
 */
async function _leNetGradients(
  backend: BackendName,
  normalization: Normalization,
  weights?: Float32Array[],
): Promise<{ names: string[]; weights: Float32Array[]; grads: Float32Array[] }> {
  await initBackend(backend);
  const model = createLeNet({ normalization, seed: 3 });
  if (weights) {
    const values = model.getWeights().map((w, i) => tf.tensor(weights[i], w.shape));
    model.setWeights(values);
    tf.dispose(values);
  }
  const random = _random(11);
  const images = tf.tensor4d(_uniform(8 * 28 * 28, random).map((v) => (v + 1) / 2), [8, 28, 28, 1]);
  const labels = tf.oneHot(tf.tensor1d([0, 1, 2, 3, 4, 5, 6, 7], "int32"), 10);
  const trainable = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const { value, grads } = tf.variableGrads(() => {
    const logits = model.apply(images, { training: true }) as tf.Tensor;
    return tf.losses.softmaxCrossEntropy(labels, logits) as tf.Scalar;
  }, trainable);
  const names = trainable.map((v) => v.name);
  const result = {
    names,
    weights: await Promise.all(model.getWeights().map((w) => w.data() as Promise<Float32Array>)),
    grads: await Promise.all(names.map((n) => grads[n].data() as Promise<Float32Array>)),
  };
  tf.dispose([value, images, labels, ...Object.values(grads)]);
  model.dispose();
  return result;
}

for (const normalization of ["none", "tfjs", "custom"] as const) {
  Deno.test(`LeNet (${normalization}) full gradient on wasm equals cpu's within 1e-3`, async () => {
    const wasm = await _leNetGradients("wasm", normalization);
    const cpu = await _leNetGradients("cpu", normalization, wasm.weights);
    assert.deepEqual(cpu.names.length, wasm.names.length);
    for (const [i, g] of wasm.grads.entries()) {
      // Relative L2 error ‖g_wasm − g_cpu‖₂ / ‖g_cpu‖₂ of one weight tensor.
      let diff = 0, norm = 0;
      for (let j = 0; j < g.length; j++) {
        diff += (g[j] - cpu.grads[i][j]) ** 2;
        norm += cpu.grads[i][j] ** 2;
      }
      const error = Math.sqrt(diff / norm);
      assert.ok(error <= 1e-3, `${wasm.names[i]}: relative error ${error} > 1e-3`);
    }
  });
}

Deno.test("a LeNet SGD step on wasm keeps tensors, bytes and backend buffers flat", async () => {
  await initBackend("wasm");
  const model = createLeNet({ normalization: "tfjs", seed: 4 });
  const optimizer = tf.train.sgd(0.01);
  const images = tf.randomUniform([16, 28, 28, 1], 0, 1, "float32", 5);
  const labels = tf.oneHot(tf.tensor1d([...Array(16).keys()].map((i) => i % 10), "int32"), 10);
  const step = async () => {
    const loss = optimizer.minimize(() => {
      const logits = model.apply(images, { training: true }) as tf.Tensor;
      return tf.losses.softmaxCrossEntropy(labels, logits) as tf.Scalar;
    }, true)!;
    await loss.data();
    loss.dispose();
  };
  await step(); // warm-up: the optimizer creates its state and tfjs caches scalars
  const before = _memory();
  for (let i = 0; i < 5; i++) await step();
  assert.deepEqual(_memory(), before);
  tf.dispose([images, labels]);
  optimizer.dispose();
  model.dispose();
});
