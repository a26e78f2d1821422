/**
 * The wasm `Conv2DBackpropFilter` kernel of lib/kernels/ against tfjs's cpu kernel, which is
 * the independent reference (a plain JavaScript loop over the defining sum).
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { type BackendName, initBackend } from "../lib/backend.ts";
import { createRng } from "../lib/data/random.ts";
import {
  assertLeNetGradientsMatchCpu,
  assertMemoryFlat,
  assertRelativeClose,
  compareWithCpu,
  CONV_CEIL_AND_EXPLICIT_PAD_CASES,
  CONV_LENET_CASES,
  CONV_NCHW_CASES,
  CONV_NUMERIC_PAD_CASE,
  type ConvCase,
  convInfo,
  randomConvCases,
  readAndDispose,
  uniform,
} from "./_kernel_test_utils.ts";

/** Cases the random draw may miss: LeNet's two layers, numeric and explicit pads, NCHW. */
const _FIXED_CASES: ConvCase[] = [
  ...CONV_LENET_CASES,
  CONV_NUMERIC_PAD_CASE,
  ...CONV_CEIL_AND_EXPLICIT_PAD_CASES,
  ...CONV_NCHW_CASES,
];

/** Runs the kernel on `backend` with inputs drawn from `seed`. */
async function _backpropFilter(backend: BackendName, c: ConvCase, seed: number) {
  await initBackend(backend);
  const info = convInfo(c);
  const random = createRng(seed);
  const xValues = uniform(tf.util.sizeFromShape(c.x), random);
  const dyValues = uniform(tf.util.sizeFromShape(info.outShape), random);
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
  return await readAndDispose(dw);
}

Deno.test("wasm Conv2DBackpropFilter matches cpu on 39 shapes", async () => {
  const cases = [...randomConvCases(32, 20240601), ..._FIXED_CASES];
  await compareWithCpu(cases, 1000, ["wasm"], _backpropFilter, (actual, expected, c, label) => {
    assert.deepEqual(actual.shape, c.filter, label);
    assert.deepEqual(actual.shape, expected.shape, label);
    assert.equal(actual.dtype, "float32", label);
    assertRelativeClose(actual.values, expected.values, label);
  });
});

/** The kernel of x and dy for a 2×2 filter of one channel in and out, stride 1, valid. */
function _backpropFilter2x2(x: tf.Tensor, dy: tf.Tensor) {
  return tf.engine().runKernel("Conv2DBackpropFilter", { x, dy }, {
    strides: 1,
    pad: "valid",
    dataFormat: "NHWC",
    filterShape: [2, 2, 1, 1],
  });
}

Deno.test("wasm Conv2DBackpropFilter rejects a dy whose shape does not match", async () => {
  await initBackend("wasm");
  const x = tf.zeros([1, 5, 5, 1]);
  const dy = tf.zeros([1, 3, 3, 1]);
  assert.throws(
    () => _backpropFilter2x2(x, dy),
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
    () => _backpropFilter2x2(x, dy),
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
  const random = createRng(seed);
  const grads = tf.tidy(() => {
    const x = tf.tensor4d(uniform(4 * 11 * 10 * 3, random), [4, 11, 10, 3]);
    const w = tf.tensor4d(uniform(3 * 3 * 3 * 6, random), [3, 3, 3, 6]);
    const r = tf.tensor4d(uniform(4 * 6 * 5 * 6, random), [4, 6, 5, 6]);
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
    assertRelativeClose(actual[i], expected[i], name);
  }
});

Deno.test("wasm Conv2DBackpropFilter keeps tensors, bytes and backend buffers flat", async () => {
  await initBackend("wasm");
  const x = tf.randomUniform([8, 12, 12, 20], -1, 1, "float32", 1) as tf.Tensor4D;
  const w = tf.randomUniform([5, 5, 20, 50], -1, 1, "float32", 2) as tf.Tensor4D;
  const dy = tf.randomUniform([8, 8, 8, 50], -1, 1, "float32", 3) as tf.Tensor4D;
  const attrs = { strides: 1, pad: "valid", dataFormat: "NHWC", filterShape: [5, 5, 20, 50] };
  await assertMemoryFlat(() => {
    const direct = tf.engine().runKernel("Conv2DBackpropFilter", { x, dy }, attrs) as tf.Tensor;
    const loss = (w: tf.Tensor) => tf.conv2d(x, w as tf.Tensor4D, 1, "valid").mul(dy).sum();
    return [direct, tf.grad(loss)(w)];
  }, 20);
  tf.dispose([x, w, dy]);
});

for (const normalization of ["none", "custom"] as const) {
  Deno.test(
    `LeNet's full gradient (${normalization} BN) on wasm equals cpu's within 1e-3 per weight tensor`,
    () => assertLeNetGradientsMatchCpu(normalization, 5),
  );
}
