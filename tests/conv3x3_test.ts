/**
 * The direct 3×3 convolutions of 16 or 32 channels (lib/kernels/conv3x3.ts) against the BLAS path
 * (im2col + sgemm, the direct kernels switched off) and the cpu backend: forward (with and
 * without a fused bias and ReLU), input gradient and filter gradient, on ResNet-20's
 * first- and second-stage shapes, batch 1, odd widths and channel counts; the same floats on one thread
 * or two; which shapes they take. Without the built library the direct path is never taken.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backend.ts";
import { blasInfo, setBlasSliceThreads } from "../lib/kernels/blas.ts";
import { conv3x3Usable, setConv3x3Enabled } from "../lib/kernels/conv3x3.ts";
import { nativeKernels } from "../lib/kernels/native_library.ts";
import { createRng } from "../lib/data/random.ts";
import { createResNet20 } from "../lib/models/resnet20.ts";
import { relativeMaxError, uniform } from "./_kernel_test_utils.ts";

interface _Case {
  /**
   * x [B, H, W, Cin]; the filter [3, 3, Cin, co] (forward, filter gradient) and
   * [3, 3, co, cout] (the input gradient of a convolution from co channels to cout).
   */
  b: number;
  h: number;
  w: number;
  cin: number;
  co: number;
  cout: number;
}

const _CASES: readonly _Case[] = [
  { b: 4, h: 28, w: 28, cin: 16, co: 16, cout: 16 },
  { b: 3, h: 28, w: 28, cin: 1, co: 16, cout: 16 },
  { b: 4, h: 14, w: 14, cin: 32, co: 32, cout: 32 },
  { b: 1, h: 5, w: 7, cin: 3, co: 16, cout: 64 },
  { b: 3, h: 6, w: 9, cin: 6, co: 32, cout: 8 },
];

/** Forward, fused forward (bias, ReLU), dx and dW of one case, read back. */
async function _run(c: _Case, route: "direct" | "blas" | "cpu"): Promise<Float32Array[]> {
  await initBackend(route === "cpu" ? "cpu" : "wasm");
  const previous = setConv3x3Enabled(route === "direct");
  try {
    const random = createRng(c.b * 1000 + c.w * 10 + c.cin);
    const t = (shape: number[]) =>
      tf.tensor(uniform(tf.util.sizeFromShape(shape), random).map((v) => 2 * v - 1), shape);
    const x = t([c.b, c.h, c.w, c.cin]) as tf.Tensor4D;
    const filter = t([3, 3, c.cin, c.co]) as tf.Tensor4D;
    const bias = t([c.co]) as tf.Tensor1D;
    const dy = t([c.b, c.h, c.w, c.co]) as tf.Tensor4D;
    // The input gradient of a convolution from co channels to cout.
    const filterIn = t([3, 3, c.co, c.cout]) as tf.Tensor4D;
    const dyIn = t([c.b, c.h, c.w, c.cout]) as tf.Tensor4D;
    const outs = [
      tf.conv2d(x, filter, 1, "same"),
      tf.fused.conv2d({ x, filter, strides: 1, pad: "same", bias, activation: "relu" }),
      tf.conv2dTranspose(dyIn, filterIn, [c.b, c.h, c.w, c.co], 1, "same"),
      tf.engine().runKernel("Conv2DBackpropFilter", { x, dy }, {
        strides: 1,
        pad: "same",
        dataFormat: "NHWC",
        filterShape: [3, 3, c.cin, c.co],
      }) as tf.Tensor,
    ];
    const read: Float32Array[] = [];
    for (const o of outs) read.push(await o.data() as Float32Array);
    tf.dispose([x, filter, bias, dy, filterIn, dyIn, ...outs]);
    return read;
  } finally {
    setConv3x3Enabled(previous);
  }
}

const _NAMES = ["forward", "fused forward", "input gradient", "filter gradient"];

Deno.test("direct 3×3 convolutions equal the BLAS path and cpu within float32 rounding", async () => {
  for (const c of _CASES) {
    const direct = await _run(c, "direct");
    for (const route of ["blas", "cpu"] as const) {
      const reference = await _run(c, route);
      for (const [i, name] of _NAMES.entries()) {
        const error = relativeMaxError(direct[i], reference[i]);
        assert.ok(error <= 1e-5, `${JSON.stringify(c)} ${name} vs ${route}: ${error}`);
      }
    }
  }
});

Deno.test("direct 3×3 convolutions give the same floats on one thread or two", async () => {
  await initBackend("wasm");
  if (blasInfo().sliceThreads < 2) return;
  const c = _CASES[0];
  const previous = setBlasSliceThreads(1);
  let one: Float32Array[];
  try {
    one = await _run(c, "direct");
  } finally {
    setBlasSliceThreads(previous);
  }
  setBlasSliceThreads(2);
  try {
    const two = await _run(c, "direct");
    for (const [i, name] of _NAMES.entries()) {
      assert.deepEqual(two[i], one[i], name);
    }
  } finally {
    setBlasSliceThreads(previous);
  }
});

Deno.test("the direct kernels take 3×3, stride 1, same padding, 16 or 32 channels", async () => {
  await initBackend("wasm");
  const info = (x: number[], f: number[], stride: number, pad: "same" | "valid") =>
    tf.backend_util.computeConv2DInfo(
      x as [number, number, number, number],
      f as [number, number, number, number],
      stride,
      1,
      pad,
    );
  const on = nativeKernels() !== null;
  assert.equal(conv3x3Usable(info([2, 8, 8, 4], [3, 3, 4, 16], 1, "same"), "forward"), on);
  assert.equal(conv3x3Usable(info([2, 8, 8, 16], [3, 3, 16, 64], 1, "same"), "input"), on);
  assert.equal(conv3x3Usable(info([2, 8, 8, 32], [3, 3, 32, 32], 1, "same"), "forward"), on);
  assert.equal(conv3x3Usable(info([2, 8, 8, 16], [3, 3, 16, 64], 1, "same"), "forward"), false);
  assert.equal(conv3x3Usable(info([2, 8, 8, 64], [3, 3, 64, 16], 1, "same"), "input"), false);
  assert.equal(conv3x3Usable(info([2, 8, 8, 4], [3, 3, 4, 16], 2, "same"), "forward"), false);
  assert.equal(conv3x3Usable(info([2, 8, 8, 4], [3, 3, 4, 16], 1, "valid"), "forward"), false);
  assert.equal(conv3x3Usable(info([2, 8, 8, 4], [5, 5, 4, 16], 1, "same"), "forward"), false);
  const previous = setConv3x3Enabled(false);
  assert.equal(conv3x3Usable(info([2, 8, 8, 4], [3, 3, 4, 16], 1, "same"), "forward"), false);
  setConv3x3Enabled(previous);
});

Deno.test("ResNet-20 trains to the same losses with the direct kernels, within float32 noise", async () => {
  await initBackend("wasm");
  const losses = async (direct: boolean) => {
    const previous = setConv3x3Enabled(direct);
    const model = createResNet20({ normalization: "bnlab", seed: 3, inputShape: [8, 8, 1] });
    const optimizer = tf.train.sgd(0.05);
    const x = tf.randomUniform([4, 8, 8, 1], 0, 1, "float32", 11);
    const y = tf.oneHot(tf.tensor1d([1, 3, 5, 7], "int32"), 10);
    try {
      const out: number[] = [];
      for (let step = 0; step < 4; step++) {
        const loss = optimizer.minimize(
          () => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor),
          true,
        )!;
        out.push((await loss.data())[0]);
        loss.dispose();
      }
      return out;
    } finally {
      setConv3x3Enabled(previous);
      tf.dispose([x, y]);
      optimizer.dispose();
      model.dispose();
    }
  };
  const direct = await losses(true);
  const blas = await losses(false);
  for (const [i, loss] of direct.entries()) {
    assert.ok(
      Math.abs(loss - blas[i]) <= 1e-5 * Math.abs(blas[i]),
      `step ${i}: ${loss} vs ${blas[i]}`,
    );
  }
  assert.ok(direct[3] < direct[0], `the loss falls: ${direct}`);
});
