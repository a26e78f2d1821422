/**
 * The wasm `Conv2DBackpropInput` kernel of lib/kernels/ against tfjs's cpu kernel, the
 * independent reference (a plain JavaScript loop over the defining sum), and LeNet's full
 * gradient on wasm (with every kernel of lib/kernels/) against cpu's.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { type BackendName, initBackend } from "../lib/backend.ts";
import { conv2dBackpropInputWasm } from "../lib/kernels/conv2d_backprop_input.ts";
import { createLeNet } from "../lib/models/lenet.ts";
import { createRng } from "../lib/data/random.ts";
import {
  assertFallbackCases,
  assertLeNetGradientsMatchCpu,
  assertMemoryFlat,
  assertRelativeClose,
  assertWasmKernelReplaced,
  compareWithCpu,
  CONV_CEIL_AND_EXPLICIT_PAD_CASES,
  CONV_LENET_CASES,
  CONV_NCHW_CASES,
  CONV_NUMERIC_PAD_CASE,
  type ConvCase,
  convInfo,
  failingFallback,
  initRoute,
  randomConvCases,
  readAndDispose,
  uniform,
} from "./_kernel_test_utils.ts";

/** Cases the random draw may miss: LeNet's layers, numeric, explicit and ceil pads, one channel. */
const _FIXED_CASES: ConvCase[] = [
  ...CONV_LENET_CASES,
  CONV_NUMERIC_PAD_CASE,
  { x: [2, 8, 8, 3], filter: [3, 3, 3, 4], strides: [2, 2], pad: "same", dataFormat: "NHWC" },
  { x: [1, 7, 7, 2], filter: [1, 1, 2, 3], strides: [2, 2], pad: "valid", dataFormat: "NHWC" },
  ...CONV_CEIL_AND_EXPLICIT_PAD_CASES,
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
const _FALLBACK_CASES: readonly ConvCase[] = CONV_NCHW_CASES;

function _attrs(c: ConvCase): tf.NamedAttrMap {
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
async function _backpropInput(backend: BackendName | "wasm-direct", c: ConvCase, seed: number) {
  await initRoute(backend);
  const random = createRng(seed);
  const dyShape = convInfo(c).outShape;
  const dyValues = uniform(tf.util.sizeFromShape(dyShape), random);
  const filterValues = uniform(tf.util.sizeFromShape(c.filter), random);
  const dx = tf.tidy(() => {
    const dy = tf.tensor4d(dyValues, dyShape);
    const filter = tf.tensor4d(filterValues, c.filter);
    if (backend !== "wasm-direct") {
      return tf.engine().runKernel("Conv2DBackpropInput", { dy, filter }, _attrs(c)) as tf.Tensor;
    }
    const info = conv2dBackpropInputWasm(
      { inputs: { dy, filter }, backend: tf.backend(), attrs: _attrs(c) },
      failingFallback(c),
    );
    return tf.engine().makeTensorFromTensorInfo(info);
  });
  return await readAndDispose(dx);
}

Deno.test("wasm Conv2DBackpropInput matches cpu on 43 shapes, without its fallback", async () => {
  const cases = [...randomConvCases(32, 20240607), ..._FIXED_CASES];
  const routes = ["wasm", "wasm-direct"] as const;
  await compareWithCpu(cases, 2000, routes, _backpropInput, (actual, expected, c, label, route) => {
    assert.deepEqual(actual.shape, c.x, label);
    assert.deepEqual(actual.shape, expected.shape, label);
    assert.equal(actual.dtype, "float32", label);
    assertRelativeClose(actual.values, expected.values, `${route} ${label}`);
  });
});

Deno.test("wasm Conv2DBackpropInput hands NCHW to tfjs's kernel", async () => {
  await assertFallbackCases(_FALLBACK_CASES, 3000, "cpu", _backpropInput, assertRelativeClose);
});

Deno.test("wasm Conv2DBackpropInput replaced tfjs's kernel and keeps it", async () => {
  const original = await assertWasmKernelReplaced("Conv2DBackpropInput");
  assert.equal(original.kernelName, "Conv2DBackpropInput");
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
    const random = createRng(5);
    const y = tf.tidy(() => {
      const x = tf.tensor4d(uniform(2 * 4 * 5 * 6, random), [2, 4, 5, 6]);
      const w = tf.tensor4d(uniform(3 * 3 * 3 * 6, random), [3, 3, 3, 6]);
      return tf.conv2dTranspose(x, w, [2, 8, 10, 3], 2, "same");
    });
    const values = await y.data();
    y.dispose();
    return values;
  };
  assertRelativeClose(await run("wasm"), await run("cpu"));
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
  await assertMemoryFlat(() => {
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
    return [direct, strided, oneChannel, viaGrad] as tf.Tensor[];
  }, 20);
  tf.dispose([x, w, dy, dy2, w1, dy1]);
});

for (const normalization of ["none", "tfjs", "custom"] as const) {
  Deno.test(
    `LeNet (${normalization}) full gradient on wasm equals cpu's within 1e-3`,
    () => assertLeNetGradientsMatchCpu(normalization, 3),
  );
}

Deno.test("a LeNet SGD step on wasm keeps tensors, bytes and backend buffers flat", async () => {
  await initBackend("wasm");
  const model = createLeNet({ normalization: "tfjs", seed: 4 });
  const optimizer = tf.train.sgd(0.01);
  const images = tf.randomUniform([16, 28, 28, 1], 0, 1, "float32", 5);
  const labels = tf.oneHot(tf.tensor1d([...Array(16).keys()].map((i) => i % 10), "int32"), 10);
  // The warm-up step also creates the optimizer's state.
  await assertMemoryFlat(() => {
    const loss = optimizer.minimize(() => {
      const logits = model.apply(images, { training: true }) as tf.Tensor;
      return tf.losses.softmaxCrossEntropy(labels, logits) as tf.Scalar;
    }, true)!;
    return [loss];
  }, 5);
  tf.dispose([images, labels]);
  optimizer.dispose();
  model.dispose();
});
