/**
 * The wasm `Conv2DBackpropFilter` kernel of lib/kernels/ against tfjs's cpu kernel, which is
 * the independent reference (a plain JavaScript loop over the defining sum).
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { type BackendName, initBackend } from "../lib/backend.ts";
import { createLeNet, type Normalization } from "../lib/models/lenet.ts";
import { createRng } from "../lib/data/random.ts";

/** One convolution whose filter gradient is compared. */
interface _Case {
  x: [number, number, number, number];
  filter: [number, number, number, number];
  strides: [number, number];
  pad: tf.Conv2DBackpropFilterAttrs["pad"];
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

/** 32 random cases: strides 1–2 per axis, valid/same, odd and non-square sizes. */
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

/** Cases the random draw may miss: LeNet's two layers, numeric and explicit pads, NCHW. */
const _FIXED_CASES: _Case[] = [
  { x: [3, 28, 28, 1], filter: [5, 5, 1, 20], strides: [1, 1], pad: "valid", dataFormat: "NHWC" },
  { x: [3, 12, 12, 20], filter: [5, 5, 20, 50], strides: [1, 1], pad: "valid", dataFormat: "NHWC" },
  { x: [2, 9, 7, 3], filter: [3, 2, 3, 4], strides: [2, 2], pad: 1, dataFormat: "NHWC" },
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
  { x: [2, 3, 9, 8], filter: [3, 3, 3, 4], strides: [2, 1], pad: "same", dataFormat: "NCHW" },
  { x: [1, 5, 6, 7], filter: [2, 3, 5, 3], strides: [1, 1], pad: "valid", dataFormat: "NCHW" },
];

interface _Result {
  shape: number[];
  dtype: tf.DataType;
  values: Float32Array;
}

/** Runs the kernel on `backend` with inputs drawn from `seed`. */
async function _backpropFilter(backend: BackendName, c: _Case, seed: number): Promise<_Result> {
  await initBackend(backend);
  const info = tf.backend_util.computeConv2DInfo(
    c.x,
    c.filter,
    c.strides,
    1,
    c.pad,
    c.dimRoundingMode,
    false,
    c.dataFormat === "NHWC" ? "channelsLast" : "channelsFirst",
  );
  const random = _random(seed);
  const xValues = _uniform(tf.util.sizeFromShape(c.x), random);
  const dyValues = _uniform(tf.util.sizeFromShape(info.outShape), random);
  const dw = tf.tidy(() =>
    tf.engine().runKernel("Conv2DBackpropFilter", {
      x: tf.tensor4d(xValues, c.x),
      dy: tf.tensor4d(dyValues, info.outShape),
    }, {
      strides: c.strides,
      pad: c.pad,
      dataFormat: c.dataFormat,
      dimRoundingMode: c.dimRoundingMode,
      filterShape: c.filter,
    } as unknown as tf.NamedAttrMap) as tf.Tensor
  );
  const result = { shape: dw.shape, dtype: dw.dtype, values: await dw.data() as Float32Array };
  dw.dispose();
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

Deno.test("wasm Conv2DBackpropFilter matches cpu on 39 shapes", async () => {
  const cases = [..._randomCases(32, 20240601), ..._FIXED_CASES];
  for (const [i, c] of cases.entries()) {
    const label = JSON.stringify(c);
    const expected = await _backpropFilter("cpu", c, 1000 + i);
    const actual = await _backpropFilter("wasm", c, 1000 + i);
    assert.deepEqual(actual.shape, c.filter, label);
    assert.deepEqual(actual.shape, expected.shape, label);
    assert.equal(actual.dtype, "float32", label);
    const error = _relativeMaxError(actual.values, expected.values);
    assert.ok(error <= _TOLERANCE, `${label}: relative error ${error} > ${_TOLERANCE}`);
  }
});

Deno.test("wasm Conv2DBackpropFilter rejects a dy whose shape does not match", async () => {
  await initBackend("wasm");
  const x = tf.zeros([1, 5, 5, 1]);
  const dy = tf.zeros([1, 3, 3, 1]);
  assert.throws(
    () =>
      tf.engine().runKernel("Conv2DBackpropFilter", { x, dy }, {
        strides: 1,
        pad: "valid",
        dataFormat: "NHWC",
        filterShape: [2, 2, 1, 1],
      }),
    {
      message: "Conv2DBackpropFilter (wasm): dy must have the convolution's output shape " +
        "[1,4,4,1] for x [1,5,5,1] and filter [2,2,1,1], received [1,3,3,1]",
    },
  );
  tf.dispose([x, dy]);
});

Deno.test("wasm Conv2DBackpropFilter rejects int32 inputs", async () => {
  await initBackend("wasm");
  const x = tf.zeros([1, 3, 3, 1], "int32");
  const dy = tf.zeros([1, 2, 2, 1]);
  assert.throws(
    () =>
      tf.engine().runKernel("Conv2DBackpropFilter", { x, dy }, {
        strides: 1,
        pad: "valid",
        dataFormat: "NHWC",
        filterShape: [2, 2, 1, 1],
      }),
    {
      message:
        "Conv2DBackpropFilter (wasm): x and dy must be float32, received x int32 and dy float32",
    },
  );
  tf.dispose([x, dy]);
});

Deno.test("wasm Conv2DBackpropFilter of an empty batch is zeros", async () => {
  await initBackend("wasm");
  const x = tf.zeros([0, 4, 4, 2]);
  const dy = tf.zeros([0, 3, 3, 5]);
  const dw = tf.engine().runKernel("Conv2DBackpropFilter", { x, dy }, {
    strides: 1,
    pad: "valid",
    dataFormat: "NHWC",
    filterShape: [2, 2, 2, 5],
  }) as tf.Tensor;
  assert.deepEqual(dw.shape, [2, 2, 2, 5]);
  assert.deepEqual([...await dw.data()], new Array(40).fill(0));
  tf.dispose([x, dy, dw]);
});

/** Gradients of Σ r ⊙ conv2d(x, w) with respect to x and w, on `backend`. */
async function _convGradients(backend: BackendName, seed: number): Promise<Float32Array[]> {
  await initBackend(backend);
  const random = _random(seed);
  const grads = tf.tidy(() => {
    const x = tf.tensor4d(_uniform(4 * 11 * 10 * 3, random), [4, 11, 10, 3]);
    const w = tf.tensor4d(_uniform(3 * 3 * 3 * 6, random), [3, 3, 3, 6]);
    const r = tf.tensor4d(_uniform(4 * 6 * 5 * 6, random), [4, 6, 5, 6]);
    const f = (x: tf.Tensor, w: tf.Tensor) =>
      tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 2, "same").mul(r).sum();
    return tf.grads(f)([x, w]);
  });
  const values = await Promise.all(grads.map((g) => g.data() as Promise<Float32Array>));
  tf.dispose(grads);
  return values;
}

Deno.test("tf.grads of conv2d on wasm equals cpu's (dx and dw)", async () => {
  const expected = await _convGradients("cpu", 7);
  const actual = await _convGradients("wasm", 7);
  for (const [i, name] of ["dx", "dw"].entries()) {
    const error = _relativeMaxError(actual[i], expected[i]);
    assert.ok(error <= _TOLERANCE, `${name}: relative error ${error} > ${_TOLERANCE}`);
  }
});

Deno.test("wasm Conv2DBackpropFilter keeps tensors, bytes and backend buffers flat", async () => {
  await initBackend("wasm");
  const x = tf.randomUniform([8, 12, 12, 20], -1, 1, "float32", 1) as tf.Tensor4D;
  const w = tf.randomUniform([5, 5, 20, 50], -1, 1, "float32", 2) as tf.Tensor4D;
  const dy = tf.randomUniform([8, 8, 8, 50], -1, 1, "float32", 3) as tf.Tensor4D;
  const attrs = { strides: 1, pad: "valid", dataFormat: "NHWC", filterShape: [5, 5, 20, 50] };
  const step = async () => {
    const direct = tf.engine().runKernel("Conv2DBackpropFilter", { x, dy }, attrs) as tf.Tensor;
    const loss = (w: tf.Tensor) => tf.conv2d(x, w as tf.Tensor4D, 1, "valid").mul(dy).sum();
    const viaGrad = tf.grad(loss)(w);
    await Promise.all([direct.data(), viaGrad.data()]);
    tf.dispose([direct, viaGrad]);
  };
  await step(); // warm-up: tfjs caches a few scalars on first use
  const before = _memory();
  for (let i = 0; i < 20; i++) await step();
  assert.deepEqual(_memory(), before);
  tf.dispose([x, w, dy]);
});

/**
 * Gradients of the mean softmax cross-entropy of LeNet on 8 random images, with respect to
 * every trainable weight, on `backend`; `weights` (when given) replace the initial ones.
 */
async function _leNetGradients(
  backend: BackendName,
  normalization: Normalization,
  weights?: Float32Array[],
): Promise<{ names: string[]; weights: Float32Array[]; grads: Float32Array[] }> {
  await initBackend(backend);
  const model = createLeNet({ normalization, seed: 5 });
  if (weights) {
    const values = model.getWeights().map((w, i) => tf.tensor(weights[i], w.shape));
    model.setWeights(values);
    tf.dispose(values);
  }
  const random = _random(11);
  const images = tf.tensor4d(_uniform(8 * 28 * 28, random).map((v) => (v + 1) / 2), [8, 28, 28, 1]);
  const labels = tf.oneHot(tf.tensor1d([0, 1, 2, 3, 4, 5, 6, 7], "int32"), 10);
  const trainable = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const { value, grads } = tf.variableGrads(
    () =>
      tf.losses.softmaxCrossEntropy(
        labels,
        model.apply(images, { training: true }) as tf.Tensor,
      ) as tf.Scalar,
    trainable,
  );
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

for (const normalization of ["none", "custom"] as const) {
  Deno.test(`LeNet's full gradient (${normalization} BN) on wasm equals cpu's within 1e-3 per weight tensor`, async () => {
    const wasm = await _leNetGradients("wasm", normalization);
    const cpu = await _leNetGradients("cpu", normalization, wasm.weights);
    assert.equal(cpu.grads.length, wasm.grads.length);
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
