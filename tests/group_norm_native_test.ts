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
import { normInputs, relativeMaxError, uniform } from "./_kernel_test_utils.ts";

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

/**
 * The native kernels' closed form for x of [n, s, c] in G groups, in single precision with the
 * sums in double (JavaScript numbers; `Math.fround` rounds each float operation as C's float
 * arithmetic does): per sample, each channel's sums in position order, then the group's over its
 * channels in order; dγ and dβ summed per half of the samples (the split the kernels make for
 * calls of 16384 values or more), then the halves added. Returns y, dx, dγ, dβ for the gradient of
 * sum(y·dy).
 */
function _closedForm(
  x: Float32Array,
  dy: Float32Array,
  gamma: Float32Array,
  beta: Float32Array,
  shape: { n: number; groups: number; epsilon: number },
): Float32Array[] {
  const f = Math.fround, { n, groups, epsilon } = shape;
  const c = gamma.length, s = x.length / n / c, per = c / groups, m = s * per;
  const [y, dx] = [new Float32Array(x.length), new Float32Array(x.length)];
  const halves = n >= 2 && x.length >= 16384 ? [n >> 1, n] : [n];
  const dgamma = new Float64Array(c), dbeta = new Float64Array(c);
  let partGamma = new Float64Array(c), partBeta = new Float64Array(c);
  for (let b = 0; b < n; b++) {
    const at = (p: number, ch: number) => (b * s + p) * c + ch;
    const channelSums = (a: (i: number) => number, w: (i: number) => number) => {
      const sums = new Float64Array(c), products = new Float64Array(c);
      for (let ch = 0; ch < c; ch++) {
        for (let p = 0; p < s; p++) {
          sums[ch] += a(at(p, ch));
          products[ch] += a(at(p, ch)) * w(at(p, ch));
        }
      }
      return [sums, products];
    };
    const [sx, sxx] = channelSums((i) => x[i], (i) => x[i]);
    const mean = new Float32Array(c), inv = new Float32Array(c);
    for (let k = 0; k < groups; k++) {
      let a = 0, q = 0;
      for (let j = 0; j < per; j++) [a, q] = [a + sx[k * per + j], q + sxx[k * per + j]];
      const mu = a / m, variance = Math.max(q / m - mu * mu, 0);
      mean.fill(f(mu), k * per, (k + 1) * per);
      inv.fill(f(1 / Math.sqrt(variance + epsilon)), k * per, (k + 1) * per);
    }
    const xHat = (i: number) => f(f(x[i] - mean[i % c]) * inv[i % c]);
    for (let p = 0; p < s; p++) {
      for (let ch = 0; ch < c; ch++) y[at(p, ch)] = f(f(xHat(at(p, ch)) * gamma[ch]) + beta[ch]);
    }
    const [sdy, sdyx] = channelSums((i) => dy[i], xHat);
    const gy = new Float32Array(c), gyx = new Float32Array(c);
    for (let k = 0; k < groups; k++) {
      let a = 0, q = 0;
      for (let j = 0; j < per; j++) {
        const ch = k * per + j;
        [a, q] = [a + gamma[ch] * sdy[ch], q + gamma[ch] * sdyx[ch]];
      }
      gy.fill(f(a / m), k * per, (k + 1) * per);
      gyx.fill(f(q / m), k * per, (k + 1) * per);
    }
    for (let p = 0; p < s; p++) {
      for (let ch = 0; ch < c; ch++) {
        const i = at(p, ch);
        dx[i] = f(f(f(f(dy[i] * gamma[ch]) - gy[ch]) - f(xHat(i) * gyx[ch])) * inv[ch]);
      }
    }
    for (let ch = 0; ch < c; ch++) {
      [partBeta[ch], partGamma[ch]] = [partBeta[ch] + sdy[ch], partGamma[ch] + sdyx[ch]];
    }
    if (halves.includes(b + 1)) {
      for (let ch = 0; ch < c; ch++) {
        [dbeta[ch], dgamma[ch]] = [dbeta[ch] + partBeta[ch], dgamma[ch] + partGamma[ch]];
      }
      [partGamma, partBeta] = [new Float64Array(c), new Float64Array(c)];
    }
  }
  return [y, dx, Float32Array.from(dgamma), Float32Array.from(dbeta)];
}

Deno.test("native group norm rounds as its closed form, each channel's sums in position order", async () => {
  await initBackend("wasm");
  if (nativeKernels() === null) return;
  // ResNet-20's widths (16, 32, 64 channels), layer norm (one group), odd tails, a split call.
  const cases: [number[], number][] = [
    [[8, 7, 7, 16], 16],
    [[4, 5, 5, 32], 8],
    [[2, 3, 3, 64], 32],
    [[5, 6, 6, 16], 1],
    [[6, 20], 10],
    [[3, 2, 77], 7],
    [[16, 8, 8, 16], 4],
  ];
  const random = createRng(23);
  for (const [shape, groups] of cases) {
    const { xs, dys, gammas, betas } = normInputs(shape, random);
    const [x, dy] = [tf.tensor(xs, shape), tf.tensor(dys, shape)];
    const [gamma, beta] = [tf.tensor(gammas), tf.tensor(betas)];
    const run = (xv: tf.Tensor, g: tf.Tensor, b: tf.Tensor) =>
      groupNormalize(xv, { groups, epsilon: 1e-3, gamma: g, beta: b });
    const y = run(x, gamma, beta);
    const grads = tf.grads((xv, g, b) => tf.sum(tf.mul(run(xv, g, b), dy)))([x, gamma, beta]);
    const got = [y, ...grads].map((t) => t.dataSync() as Float32Array);
    const want = _closedForm(xs, dys, gammas, betas, { n: shape[0], groups, epsilon: 1e-3 });
    for (const [i, name] of ["y", "dx", "dgamma", "dbeta"].entries()) {
      assert.deepEqual(got[i], want[i], `${JSON.stringify(shape)} groups ${groups}: ${name}`);
    }
    tf.dispose([x, dy, gamma, beta, y, ...grads]);
  }
});
