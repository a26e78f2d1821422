/**
 * bnlab's batch norm on the native kernels (lib/kernels/batch_norm_native.ts) against the
 * tfjs-op version of the same analytic op (native kernels switched off) and against the cpu
 * backend: outputs, batch statistics and gradients for x, γ and β; when the kernels are
 * used and when not; no tensor leaks; a clear error when the native kernels go missing.
 *
 * Without the built library the fused path is never taken: the comparisons then compare the
 * op version with itself and still pass (tests/native_test.ts checks the library loads where
 * scripts/setup.sh built it).
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backend.ts";
import { batchNormTraining } from "../lib/norms/batch_norm_ops.ts";
import { BATCH_NORM_BACKWARD, fusedBatchNormUsable } from "../lib/kernels/batch_norm_native.ts";
import { nativeKernels, setNativeEnabled } from "../lib/kernels/native_library.ts";
import { blasInfo, setBlasSliceThreads } from "../lib/kernels/blas.ts";
import { createRng } from "../lib/data/random.ts";
import { normInputs, relativeMaxError, uniform } from "./_kernel_test_utils.ts";

interface _Case {
  x: number[];
  scale: boolean;
  offset: boolean;
}

/** LeNet's three BN inputs at batch 20, odd shapes, and every γ/β combination. */
const _CASES: readonly _Case[] = [
  { x: [20, 24, 24, 20], scale: true, offset: true },
  { x: [20, 8, 8, 50], scale: true, offset: true },
  { x: [20, 500], scale: true, offset: true },
  { x: [3, 5, 7], scale: false, offset: true },
  { x: [7, 3], scale: true, offset: false },
  { x: [2, 3, 4, 70], scale: false, offset: false },
];

/** y, mean, variance and the gradients of sum(y·w) for x, γ, β, read back. */
async function _run(c: _Case, route: "fused" | "ops" | "cpu"): Promise<Float32Array[]> {
  await initBackend(route === "cpu" ? "cpu" : "wasm");
  const previous = setNativeEnabled(route === "fused");
  try {
    const random = createRng(c.x.reduce((a, b) => a * 31 + b, 7));
    const channels = c.x[c.x.length - 1];
    const paramShape = [...c.x.slice(0, -1).map(() => 1), channels];
    const axes = c.x.slice(0, -1).map((_, i) => i);
    const size = tf.util.sizeFromShape(c.x);
    const x = tf.tensor(uniform(size, random).map((v) => 3 * v + 1), c.x);
    const w = tf.tensor(uniform(size, random), c.x);
    const gamma = tf.tensor(uniform(channels, random).map((v) => v + 1.5), paramShape);
    const beta = tf.tensor(uniform(channels, random), paramShape);
    const expectFused = route === "fused" && nativeKernels() !== null;
    assert.equal(
      fusedBatchNormUsable(x, axes, c.scale ? gamma : undefined, c.offset ? beta : undefined),
      expectFused,
    );
    // The gradients with respect to x and to the γ and β in use.
    const f = (xs: tf.Tensor, ...params: tf.Tensor[]) => {
      const { y } = batchNormTraining(xs, {
        axes,
        epsilon: 1e-3,
        scale: c.scale ? params[0] : undefined,
        offset: c.offset ? params[c.scale ? 1 : 0] : undefined,
      });
      return tf.sum(tf.mul(y, w));
    };
    const { y, mean, variance } = batchNormTraining(x, {
      axes,
      epsilon: 1e-3,
      scale: c.scale ? gamma : undefined,
      offset: c.offset ? beta : undefined,
    });
    const grads = tf.grads(f)([x, ...(c.scale ? [gamma] : []), ...(c.offset ? [beta] : [])]);
    const out: Float32Array[] = [];
    for (const t of [y, mean, variance, ...grads]) out.push(await t.data() as Float32Array);
    tf.dispose([x, w, gamma, beta, y, mean, variance, ...grads]);
    return out;
  } finally {
    setNativeEnabled(previous);
  }
}

/** What _run returns, in order (dgamma, dbeta only for the parameters in use). */
const _NAMES = ["y", "mean", "variance", "dx", "dgamma or dbeta", "dbeta"];

Deno.test("native batch norm equals the tfjs-op version and cpu: y, statistics, gradients", async () => {
  for (const c of _CASES) {
    const fused = await _run(c, "fused");
    for (const route of ["ops", "cpu"] as const) {
      const reference = await _run(c, route);
      assert.equal(fused.length, reference.length);
      for (const [i, name] of _NAMES.slice(0, fused.length).entries()) {
        const error = relativeMaxError(fused[i], reference[i]);
        assert.ok(
          error <= 1e-4,
          `${JSON.stringify(c)} ${name} vs ${route}: relative error ${error}`,
        );
      }
    }
  }
});

Deno.test("the native kernels take only channels-last float32 batch norm on wasm", async () => {
  await initBackend("wasm");
  if (nativeKernels() === null) return;
  tf.tidy(() => {
    const x = tf.zeros([4, 3, 5]);
    assert.equal(fusedBatchNormUsable(x, [0, 1]), true);
    assert.equal(fusedBatchNormUsable(x, [0]), false, "not every leading axis");
    assert.equal(fusedBatchNormUsable(x, [0, 2]), false, "channels first");
    assert.equal(fusedBatchNormUsable(tf.zeros([4, 3, 5], "int32"), [0, 1]), false);
    assert.equal(fusedBatchNormUsable(x, [0, 1], tf.ones([4])), false, "γ of another size");
    assert.equal(fusedBatchNormUsable(x, [0, 1], tf.ones([1, 1, 5]), tf.ones([5])), true);
    assert.equal(fusedBatchNormUsable(tf.zeros([5]), []), false, "rank 1");
  });
});

Deno.test("native batch norm training steps leave no tensors behind", async () => {
  await initBackend("wasm");
  const x = tf.randomNormal([8, 6, 6, 4]);
  const gamma = tf.variable(tf.ones([1, 1, 1, 4]));
  const beta = tf.variable(tf.zeros([1, 1, 1, 4]));
  const step = () =>
    tf.tidy(() => {
      const { value, grads } = tf.variableGrads(() => {
        const { y } = batchNormTraining(x, {
          axes: [0, 1, 2],
          epsilon: 1e-3,
          scale: gamma,
          offset: beta,
        });
        return tf.sum(tf.square(y));
      });
      value.dispose();
      tf.dispose(Object.values(grads));
    });
  step();
  const before = tf.memory().numTensors;
  for (let i = 0; i < 5; i++) step();
  assert.equal(tf.memory().numTensors, before);
  tf.dispose([x, gamma, beta]);
});

Deno.test("the backward kernel says so when the native kernels are off", async () => {
  await initBackend("wasm");
  if (nativeKernels() === null) return;
  const previous = setNativeEnabled(false);
  try {
    const x = tf.ones([2, 3]), stat = tf.ones([1, 3]);
    assert.throws(
      () =>
        tf.engine().runKernel(BATCH_NORM_BACKWARD, {
          dy: x,
          x,
          mean: stat,
          variance: stat,
        }, { epsilon: 1e-3 }),
      /BnlabBatchNormBackward: needs bnlab's native kernels, received none/,
    );
    tf.dispose([x, stat]);
  } finally {
    setNativeEnabled(previous);
  }
});

Deno.test("native batch norm gives the same floats on one thread or two (split calls)", async () => {
  await initBackend("wasm");
  if (blasInfo().sliceThreads < 2) return;
  // 64·16·16·16 = 262,144 values: the sums and passes run in two parts.
  const c: _Case = { x: [64, 16, 16, 16], scale: true, offset: true };
  const previous = setBlasSliceThreads(1);
  let one: Float32Array[];
  try {
    one = await _run(c, "fused");
  } finally {
    setBlasSliceThreads(previous);
  }
  setBlasSliceThreads(2);
  try {
    const two = await _run(c, "fused");
    for (const [i, name] of _NAMES.slice(0, two.length).entries()) {
      assert.deepEqual(two[i], one[i], name);
    }
    const ops = await _run(c, "ops");
    for (const [i, name] of _NAMES.slice(0, two.length).entries()) {
      const error = relativeMaxError(two[i], ops[i]);
      assert.ok(error <= 1e-4, `${name} vs ops: relative error ${error}`);
    }
  } finally {
    setBlasSliceThreads(previous);
  }
});

/**
 * The native kernels' closed forms in single precision, with each channel's sums in double in
 * row order (JavaScript numbers are doubles; `Math.fround` rounds each float operation as C's
 * float arithmetic does): y, the statistics and the three gradients of sum(y·dy).
 */
function _closedForm(
  x: Float32Array,
  dy: Float32Array,
  gamma: Float32Array,
  beta: Float32Array,
  epsilon: number,
): Float32Array[] {
  const f = Math.fround, channels = gamma.length, rows = x.length / channels;
  const out = [x.length, channels, channels, x.length, channels, channels]
    .map((n) => new Float32Array(n));
  const [y, mean, variance, dx, dgamma, dbeta] = out;
  for (let c = 0; c < channels; c++) {
    let sum = 0, squares = 0, sumDy = 0, sumDyXhat = 0;
    for (let r = 0; r < rows; r++) sum += x[r * channels + c];
    mean[c] = f(sum / rows);
    for (let r = 0; r < rows; r++) squares += (x[r * channels + c] - mean[c]) ** 2;
    variance[c] = f(squares / rows);
    const inv = f(1 / f(Math.sqrt(f(variance[c] + f(epsilon)))));
    const xHat = (i: number) => f(f(x[i] - mean[c]) * inv);
    for (let r = 0; r < rows; r++) {
      const i = r * channels + c;
      y[i] = f(f(xHat(i) * gamma[c]) + beta[c]);
      sumDy += dy[i];
      sumDyXhat += dy[i] * xHat(i);
    }
    const dyMean = f(sumDy / rows), dyXhatMean = f(sumDyXhat / rows), factor = f(gamma[c] * inv);
    for (let r = 0; r < rows; r++) {
      const i = r * channels + c;
      dx[i] = f(f(f(dy[i] - dyMean) - f(xHat(i) * dyXhatMean)) * factor);
    }
    dgamma[c] = f(sumDyXhat);
    dbeta[c] = f(sumDy);
  }
  return out;
}

Deno.test("native batch norm rounds as its closed form, each channel's sums in row order", async () => {
  await initBackend("wasm");
  if (nativeKernels() === null) return;
  // ResNet-20's widths (blocks of 16, 32, 64 channels), LeNet's, odd tails, and a split call.
  const shapes = [[8, 7, 7, 16], [4, 5, 5, 32], [2, 3, 3, 64], [20, 50], [6, 3], [3, 2, 77]];
  if (blasInfo().sliceThreads >= 2) shapes.push([64, 16, 16, 16]);
  const random = createRng(17);
  for (const shape of shapes) {
    const axes = shape.slice(0, -1).map((_, i) => i);
    const { xs, dys, gammas, betas } = normInputs(shape, random);
    const [x, dy] = [tf.tensor(xs, shape), tf.tensor(dys, shape)];
    const [gamma, beta] = [tf.tensor(gammas), tf.tensor(betas)];
    const run = (xv: tf.Tensor, g: tf.Tensor, b: tf.Tensor) =>
      batchNormTraining(xv, { axes, epsilon: 1e-3, scale: g, offset: b });
    const { y, mean, variance } = run(x, gamma, beta);
    const grads = tf.grads((xv, g, b) => tf.sum(tf.mul(run(xv, g, b).y, dy)))([x, gamma, beta]);
    const got = [y, mean, variance, ...grads].map((t) => t.dataSync() as Float32Array);
    const want = _closedForm(xs, dys, gammas, betas, 1e-3);
    for (const [i, name] of ["y", "mean", "variance", "dx", "dgamma", "dbeta"].entries()) {
      assert.deepEqual(got[i], want[i], `${JSON.stringify(shape)} ${name}`);
    }
    tf.dispose([x, dy, gamma, beta, y, mean, variance, ...grads]);
  }
});
