/**
 * Group and layer normalization on the native kernels (lib/kernels/group_norm_native.ts)
 * against the tfjs-op version of the same analytic op (native kernels switched off) and
 * against the cpu backend: y and the gradients for x, γ and β, on LeNet's and ResNet-20's
 * shapes, odd shapes and batch 1; when the kernels are used and when not; no tensor leaks; a
 * clear error when the native kernels go missing.
 *
 * Without the built library the native path is never taken: the comparisons then compare the
 * op version with itself and still pass (tests/native_test.ts checks the library loads where
 * scripts/setup.sh built it).
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backend.ts";
import { groupNormalize } from "../lib/norms/group_norm_ops.ts";
import { groupNorm } from "../lib/norms/group_norm.ts";
import { layerNorm } from "../lib/norms/layer_norm.ts";
import { GROUP_NORM_BACKWARD, groupNormUsable } from "../lib/kernels/group_norm_native.ts";
import { nativeKernels, setNativeEnabled } from "../lib/kernels/native_library.ts";
import { blasInfo, setBlasSliceThreads } from "../lib/kernels/blas.ts";
import { acceptsKernel, GROUP_NORM_FORWARD } from "../lib/named_kernels.ts";
import { createRng } from "../lib/data/random.ts";
import { relativeMaxError, uniform } from "./_kernel_test_utils.ts";

interface _Case {
  x: number[];
  groups: number;
  gamma: boolean;
  beta: boolean;
}

/**
 * LeNet's norm sites at batch 20 (10 groups), ResNet-20's at batch 8 (group norm's 16, 32,
 * 32 groups; layer norm: 1), batch 1, odd shapes and every γ/β combination.
 */
const _CASES: readonly _Case[] = [
  { x: [20, 24, 24, 20], groups: 10, gamma: true, beta: true },
  { x: [20, 8, 8, 50], groups: 10, gamma: true, beta: true },
  { x: [20, 500], groups: 10, gamma: true, beta: true },
  { x: [8, 28, 28, 16], groups: 16, gamma: true, beta: true },
  { x: [8, 14, 14, 32], groups: 32, gamma: true, beta: true },
  { x: [8, 7, 7, 64], groups: 32, gamma: true, beta: true },
  { x: [8, 28, 28, 16], groups: 1, gamma: true, beta: true },
  { x: [8, 7, 7, 64], groups: 1, gamma: true, beta: true },
  { x: [1, 5, 5, 12], groups: 3, gamma: true, beta: true },
  { x: [1, 6], groups: 1, gamma: true, beta: true },
  { x: [3, 5, 7], groups: 7, gamma: false, beta: true },
  { x: [7, 3, 6], groups: 2, gamma: true, beta: false },
  { x: [2, 3, 4, 70], groups: 5, gamma: false, beta: false },
];

/** y and the gradients of sum(y·w) for x, γ, β, read back. */
async function _run(c: _Case, route: "native" | "ops" | "cpu"): Promise<Float32Array[]> {
  await initBackend(route === "cpu" ? "cpu" : "wasm");
  const previous = setNativeEnabled(route === "native");
  try {
    const random = createRng(c.x.reduce((a, b) => a * 31 + b, 7 + c.groups));
    const channels = c.x[c.x.length - 1];
    const size = tf.util.sizeFromShape(c.x);
    const x = tf.tensor(uniform(size, random).map((v) => 3 * v + 1), c.x);
    const w = tf.tensor(uniform(size, random), c.x);
    const gamma = tf.tensor(uniform(channels, random).map((v) => v + 1.5), [channels]);
    const beta = tf.tensor(uniform(channels, random), [channels]);
    const expectNative = route === "native" && nativeKernels() !== null;
    const used = (params: tf.Tensor[]) => ({
      groups: c.groups,
      epsilon: 1e-3,
      gamma: c.gamma ? params[0] : undefined,
      beta: c.beta ? params[c.gamma ? 1 : 0] : undefined,
    });
    const params = [...(c.gamma ? [gamma] : []), ...(c.beta ? [beta] : [])];
    const options = used(params);
    assert.equal(
      groupNormUsable(x, { groups: c.groups, scale: options.gamma, offset: options.beta }),
      expectNative,
    );
    const inputs: tf.NamedTensorMap = { x };
    if (options.gamma) inputs.scale = options.gamma;
    if (options.beta) inputs.offset = options.beta;
    const attrs = { groups: c.groups, epsilon: 1e-3 };
    assert.equal(acceptsKernel(GROUP_NORM_FORWARD, { inputs, attrs }), expectNative);
    const f = (xs: tf.Tensor, ...ps: tf.Tensor[]) =>
      tf.sum(tf.mul(groupNormalize(xs, used(ps)), w));
    const y = groupNormalize(x, options);
    const grads = tf.grads(f)([x, ...params]);
    const out: Float32Array[] = [];
    for (const t of [y, ...grads]) out.push(await t.data() as Float32Array);
    tf.dispose([x, w, gamma, beta, y, ...grads]);
    return out;
  } finally {
    setNativeEnabled(previous);
  }
}

/** What _run returns, in order (dγ, dβ only for the parameters in use). */
const _NAMES = ["y", "dx", "dgamma or dbeta", "dbeta"];

Deno.test("native group norm equals the tfjs-op version and cpu: y, dx, dγ, dβ", async () => {
  for (const c of _CASES) {
    const native = await _run(c, "native");
    for (const route of ["ops", "cpu"] as const) {
      const reference = await _run(c, route);
      assert.equal(native.length, reference.length);
      for (const [i, name] of _NAMES.slice(0, native.length).entries()) {
        const error = relativeMaxError(native[i], reference[i]);
        assert.ok(
          error <= 1e-4,
          `${JSON.stringify(c)} ${name} vs ${route}: relative error ${error}`,
        );
      }
    }
  }
});

Deno.test("native group norm: an offset mean keeps float32 accuracy (double sums)", async () => {
  // Values 1000 ± 1: one-pass float32 sums of x² would lose the variance entirely.
  const c: _Case = { x: [2, 9, 9, 8], groups: 4, gamma: true, beta: true };
  await initBackend("wasm");
  const read = async (native: boolean) => {
    const previous = setNativeEnabled(native);
    try {
      return await tf.tidy(() => {
        const random = createRng(3);
        const size = tf.util.sizeFromShape(c.x);
        const x = tf.tensor(uniform(size, random).map((v) => 1000 + v), c.x);
        return groupNormalize(x, { groups: c.groups, epsilon: 1e-5 });
      }).data();
    } finally {
      setNativeEnabled(previous);
    }
  };
  const native = await read(true);
  const ops = await read(false);
  // The ops' own float32 mean carries ~1e-4 of relative error at this offset.
  assert.ok(
    relativeMaxError(native, ops) <= 2e-3,
    `relative error ${relativeMaxError(native, ops)}`,
  );
  let sum = 0, squares = 0;
  for (const v of native) {
    sum += v;
    squares += v * v;
  }
  assert.ok(Math.abs(sum / native.length) < 1e-3, `mean ${sum / native.length}`);
  assert.ok(Math.abs(squares / native.length - 1) < 1e-2, `variance ${squares / native.length}`);
});

Deno.test("the native kernels take only channels-last float32 group norm on wasm", async () => {
  await initBackend("wasm");
  if (nativeKernels() === null) return;
  tf.tidy(() => {
    const x = tf.zeros([4, 3, 6]);
    assert.equal(groupNormUsable(x, { groups: 3 }), true);
    assert.equal(groupNormUsable(x, { groups: 4 }), false, "groups not dividing C");
    assert.equal(groupNormUsable(x, { groups: 0 }), false, "no groups");
    assert.equal(groupNormUsable(tf.zeros([4, 3, 6], "int32"), { groups: 1 }), false);
    assert.equal(groupNormUsable(x, { groups: 1, scale: tf.ones([3]) }), false, "γ size");
    assert.equal(groupNormUsable(x, { groups: 2, scale: tf.ones([6]) }), true);
    assert.equal(groupNormUsable(tf.zeros([6]), { groups: 1 }), false, "rank 1");
    assert.equal(groupNormUsable(tf.zeros([0, 6]), { groups: 1 }), false, "empty");
  });
  setNativeEnabled(false);
  try {
    assert.equal(groupNormUsable(tf.zeros([4, 6]), { groups: 2 }), false, "native off");
  } finally {
    setNativeEnabled(true);
  }
});

Deno.test("group and layer norm layers train and infer on the native kernels without leaking", async () => {
  await initBackend("wasm");
  for (const layer of [groupNorm({ groups: 2 }), layerNorm()]) {
    const x = tf.randomNormal([8, 6, 6, 4], 0, 1, "float32", 5);
    layer.apply(x);
    const step = () =>
      tf.tidy(() => {
        const { value, grads } = tf.variableGrads(() =>
          tf.sum(tf.square(layer.apply(x, { training: true }) as tf.Tensor))
        );
        value.dispose();
        assert.equal(Object.keys(grads).length, 2);
        tf.dispose(Object.values(grads));
      });
    step();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) step();
    assert.equal(tf.memory().numTensors, before);
    // Inference (no tape): the saved statistics are not kept either.
    for (let i = 0; i < 3; i++) (layer.apply(x) as tf.Tensor).dispose();
    assert.equal(tf.memory().numTensors, before);
    tf.dispose(x);
    layer.dispose();
  }
});

Deno.test("the backward kernel says so when the native kernels are off", async () => {
  await initBackend("wasm");
  if (nativeKernels() === null) return;
  const previous = setNativeEnabled(false);
  try {
    const x = tf.ones([2, 3]), stat = tf.ones([2, 1]);
    assert.throws(
      () =>
        tf.engine().runKernel(GROUP_NORM_BACKWARD, {
          dy: x,
          x,
          mean: stat,
          invStd: stat,
        }, { groups: 1 }),
      /BnlabGroupNormBackward: needs bnlab's native kernels, received none/,
    );
    tf.dispose([x, stat]);
  } finally {
    setNativeEnabled(previous);
  }
});

Deno.test("native group norm gives the same floats on one thread or two", async () => {
  await initBackend("wasm");
  if (blasInfo().sliceThreads < 2) return;
  // 8·28·28·16 values: split into two halves of the samples.
  const c: _Case = { x: [8, 28, 28, 16], groups: 4, gamma: true, beta: true };
  const previous = setBlasSliceThreads(1);
  let one: Float32Array[];
  try {
    one = await _run(c, "native");
  } finally {
    setBlasSliceThreads(previous);
  }
  setBlasSliceThreads(2);
  try {
    const two = await _run(c, "native");
    for (const [i, name] of _NAMES.slice(0, two.length).entries()) {
      assert.deepEqual(two[i], one[i], name);
    }
  } finally {
    setBlasSliceThreads(previous);
  }
});
