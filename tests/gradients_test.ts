/**
 * The gradients of lib/kernels/gradients.ts against the tfjs gradients they replace: `Sum`
 * and `Mean` (a broadcast instead of a product with `ones`) on cpu and wasm, and
 * `FusedBatchNorm`, `Relu` and `Sigmoid` (one native kernel each on wasm) — the same floats, compared by
 * `Object.is`, and through a whole LeNet with tfjs's BatchNormalization.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { type BackendName, initBackend } from "../lib/backend.ts";
import { GRADIENT_REPLACEMENTS, replacedGradient } from "../lib/kernels/gradients.ts";
import { FUSED_BATCH_NORM_GRAD } from "../lib/kernels/batch_norm_native.ts";
import { RELU_GRAD, SIGMOID_GRAD, SQUARE_GRAD } from "../lib/kernels/elementwise.ts";
import { LEADING_SUM_TO } from "../lib/kernels/reduce_leading.ts";
import { BROADCAST_LEADING } from "../lib/kernels/tile.ts";
import { nativeInfo } from "../lib/kernels/native_library.ts";
import { createRng } from "../lib/data/random.ts";
import { assertMemoryFlat, assertSameValues, leNetGradients } from "./_kernel_test_utils.ts";

/** Runs `body` with tfjs's own gradient for `kernelName` registered in place of ours. */
async function _withOriginal<T>(kernelName: string, body: () => Promise<T>): Promise<T> {
  const original = replacedGradient(kernelName);
  assert.ok(original !== undefined, `${kernelName}: no gradient of ours registered`);
  const ours = tf.getGradient(kernelName)!;
  tf.registerGradient(original);
  try {
    return await body();
  } finally {
    tf.registerGradient(ours);
  }
}

/** Both gradients' results of `run`, ours first. */
async function _oursAndOriginal(
  kernelName: string,
  run: () => Promise<Float32Array[]>,
): Promise<[Float32Array[], Float32Array[]]> {
  const ours = await run();
  const original = await _withOriginal(kernelName, run);
  return [ours, original];
}

/** Random floats in [−2, 2) with ±0, ±∞ and NaN mixed in when `specials`. */
function _values(size: number, seed: number, specials = false): Float32Array {
  const random = createRng(seed);
  const special = [0, -0, Infinity, -Infinity, NaN];
  return Float32Array.from(
    { length: size },
    () => specials && random() < 0.1 ? special[Math.floor(random() * 5)] : 4 * random() - 2,
  );
}

async function _read(tensors: tf.Tensor[]): Promise<Float32Array[]> {
  const values = await Promise.all(tensors.map((t) => t.data() as Promise<Float32Array>));
  tf.dispose(tensors);
  return values;
}

const _REDUCTIONS: [number[], number | number[] | undefined, boolean][] = [
  [[20, 24, 24, 20], [0, 1, 2], false], // tf.moments over LeNet's first activation
  [[4, 6, 5], [0, 2], true],
  [[4, 6, 5], -1, false],
  [[7, 3], undefined, false], // every axis
  [[3, 4], [], false], // no axis: the identity
  [[6], 0, true],
  [[3, 1000], 0, false], // a count whose float32 reciprocal is inexact: x/3 is not x·(1/3)
];

for (const backend of ["cpu", "wasm"] as BackendName[]) {
  Deno.test(`Sum and Mean gradients give tfjs's floats (${backend})`, async () => {
    await initBackend(backend);
    for (const [kernelName, reduce] of [[tf.Sum, tf.sum], [tf.Mean, tf.mean]] as const) {
      for (const [i, [shape, axis, keepDims]] of _REDUCTIONS.entries()) {
        const x = tf.tensor(_values(tf.util.sizeFromShape(shape), i), shape);
        const yShape = tf.tidy(() => reduce(x, axis, keepDims).shape);
        const dy = tf.tensor(_values(tf.util.sizeFromShape(yShape), 50 + i, true), yShape);
        const run = () => _read([tf.grad((t: tf.Tensor) => reduce(t, axis, keepDims))(x, dy)]);
        const profile = await tf.profile(async () => {
          const [ours, original] = await _oursAndOriginal(kernelName, run);
          assertSameValues(ours[0], original[0], `${kernelName} ${shape} axis ${axis}`);
        });
        // Leading axes (all but the `[4, 6, 5]` and `[3, 4]` cases) broadcast in one kernel.
        const broadcasts = profile.kernels.filter((k) => k.name === BROADCAST_LEADING).length;
        const leading = i !== 1 && i !== 2 && i !== 4;
        assert.equal(broadcasts, backend === "wasm" && leading ? 1 : 0, `${shape} axis ${axis}`);
        tf.dispose([x, dy]);
      }
    }
  });
}

/**
 * tf.batchNorm's five gradients (x, mean, variance, offset, scale) for x of `shape`. (tfjs
 * 4.22 cannot differentiate a batch norm without both: its engine clones or traces the
 * absent inputs.)
 */
function _batchNormGrads(
  shape: number[],
  seed: number,
  { specials = false } = {},
): () => Promise<Float32Array[]> {
  const channels = shape[shape.length - 1];
  const x = tf.tensor(_values(tf.util.sizeFromShape(shape), seed, specials), shape);
  const mean = tf.tensor1d(_values(channels, seed + 1));
  const variance = tf.abs(tf.tensor1d(_values(channels, seed + 2)));
  const gamma = tf.tensor1d(_values(channels, seed + 3));
  const beta = tf.tensor1d(_values(channels, seed + 4));
  const dy = tf.tensor(_values(x.size, seed + 5, specials), shape);
  const f = (xs: tf.Tensor, m: tf.Tensor, v: tf.Tensor, o: tf.Tensor, s: tf.Tensor) =>
    tf.batchNorm(xs, m, v, o, s, 1e-3);
  return () => _read(tf.grads(f)([x, mean, variance, beta, gamma], dy));
}

Deno.test("FusedBatchNorm's gradient in one native kernel gives tfjs's floats (wasm)", async () => {
  await initBackend("wasm");
  assert.ok(nativeInfo().enabled, "needs the native kernels: deno task build-native");
  const cases: [number[], Parameters<typeof _batchNormGrads>[2]][] = [
    [[20, 24, 24, 20], {}],
    [[3, 5, 4, 7], { specials: true }],
    [[1, 1, 1, 1], {}],
  ];
  for (const [i, [shape, options]] of cases.entries()) {
    // The native kernel must be the one that runs.
    const profile = await tf.profile(async () => {
      const [ours, original] = await _oursAndOriginal(
        tf.FusedBatchNorm,
        _batchNormGrads(shape, 10 * i, options),
      );
      for (const [k, values] of ours.entries()) {
        assertSameValues(values, original[k], `${shape} ${JSON.stringify(options)} grad ${k}`);
      }
    });
    const calls = profile.kernels.filter((k) => k.name === FUSED_BATCH_NORM_GRAD).length;
    assert.equal(calls, 1, `${shape}: ${calls} calls of ${FUSED_BATCH_NORM_GRAD}`);
  }
});

Deno.test("the native FusedBatchNorm gradient without a scale is that with scale 1", async () => {
  await initBackend("wasm");
  const shape = [3, 4, 4, 6];
  const [x, dy] = [1, 2].map((seed) => tf.tensor(_values(2 * 4 * 4 * 6 * 3 / 2, seed), shape));
  const mean = tf.tensor1d(_values(6, 3));
  const variance = tf.abs(tf.tensor1d(_values(6, 4)));
  const attrs = { varianceEpsilon: 1e-3 };
  const run = (inputs: tf.NamedTensorMap) =>
    _read(tf.engine().runKernel(FUSED_BATCH_NORM_GRAD, inputs, attrs) as tf.Tensor[]);
  const without = await run({ dy, x, mean, variance });
  const ones = tf.ones([6]);
  const withOnes = await run({ dy, x, mean, variance, scale: ones });
  for (const [k, values] of without.entries()) assertSameValues(values, withOnes[k], `${k}`);
  tf.dispose([x, dy, mean, variance, ones]);
});

Deno.test("FusedBatchNorm's gradient leaves other cases to tfjs's", async () => {
  await initBackend("wasm");
  // A second-order gradient records the backward pass: tfjs's differentiable ops run.
  const x = tf.tensor4d(_values(2 * 3 * 3 * 4, 3), [2, 3, 3, 4]);
  const m = tf.tensor1d([0.5, -1, 0, 2]);
  const v = tf.tensor1d([1, 2, 0.5, 3]);
  const o = tf.tensor1d([0, 1, -1, 2]);
  const s = tf.tensor1d([1, 0.5, 2, -1]);
  const inner = (t: tf.Tensor) =>
    tf.sum(tf.square(tf.grad((u: tf.Tensor) => tf.sum(tf.square(tf.batchNorm(u, m, v, o, s))))(t)));
  const run = () => _read([tf.grad(inner)(x)]);
  const profile = await tf.profile(async () => {
    const [ours, original] = await _oursAndOriginal(tf.FusedBatchNorm, run);
    assertSameValues(ours[0], original[0], "second-order gradient");
  });
  // Once, in the outer backward pass; the inner one (recorded) ran tfjs's ops, which the
  // outer pass differentiates (the native kernel has no gradient).
  assert.equal(profile.kernels.filter((k) => k.name === FUSED_BATCH_NORM_GRAD).length, 1);
  // On cpu, tfjs's gradient.
  await initBackend("cpu");
  const [ours, original] = await _oursAndOriginal(
    tf.FusedBatchNorm,
    _batchNormGrads([2, 3, 3, 5], 7),
  );
  for (const [k, values] of ours.entries()) assertSameValues(values, original[k], `cpu ${k}`);
  tf.dispose([x, m, v, o, s]);
});

Deno.test("LeNet with tfjs's BatchNormalization: the same gradient as with tfjs's gradients", async () => {
  await initBackend("wasm");
  const ours = await leNetGradients("wasm", "tfjs", 5);
  const names = GRADIENT_REPLACEMENTS.map(([name]) => name);
  const originals = names.map((name) => replacedGradient(name)!);
  const saved = names.map((name) => tf.getGradient(name)!);
  originals.forEach((config) => tf.registerGradient(config));
  let theirs;
  try {
    theirs = await leNetGradients("wasm", "tfjs", 5);
  } finally {
    saved.forEach((config) => tf.registerGradient(config));
  }
  assert.equal(ours.grads.length, theirs.grads.length);
  for (const [i, g] of ours.grads.entries()) assertSameValues(g, theirs.grads[i], ours.names[i]);
});

Deno.test("the native FusedBatchNorm gradient keeps memory flat", async () => {
  await initBackend("wasm");
  const x = tf.tensor4d(_values(2 * 4 * 4 * 3, 1), [2, 4, 4, 3]);
  const [m, v, s, o] = [1, 2, 3, 4].map((k) => tf.tensor1d(_values(3, k).map(Math.abs)));
  const f = (t: tf.Tensor, gamma: tf.Tensor) => tf.batchNorm(t, m, v, o, gamma);
  await assertMemoryFlat(() => tf.grads(f)([x, s]), 3);
  tf.dispose([x, m, v, s, o]);
});

Deno.test("initBackend registers the gradients once, keeping tfjs's", async () => {
  await initBackend("wasm");
  for (const [name] of GRADIENT_REPLACEMENTS) {
    const original = replacedGradient(name);
    assert.ok(original !== undefined, name);
    assert.equal(replacedGradient(name), original);
    assert.equal((original as { original?: unknown }).original, undefined, `${name} wrapped twice`);
  }
  await initBackend("cpu");
  for (const [name] of GRADIENT_REPLACEMENTS) {
    assert.equal((replacedGradient(name) as { original?: unknown }).original, undefined);
  }
});

Deno.test("Relu's gradient in one native kernel gives tfjs's floats (wasm)", async () => {
  await initBackend("wasm");
  const shape = [20, 24, 24, 20];
  const x = tf.tensor(_values(tf.util.sizeFromShape(shape), 21, true), shape);
  const dy = tf.tensor(_values(x.size, 22, true), shape);
  const run = () => _read([tf.grad((t: tf.Tensor) => tf.relu(t))(x, dy)]);
  const profile = await tf.profile(async () => {
    const [ours, original] = await _oursAndOriginal(tf.Relu, run);
    assertSameValues(ours[0], original[0], "relu gradient");
  });
  assert.equal(profile.kernels.filter((k) => k.name === RELU_GRAD).length, 1);
  // int32 inputs take tfjs's gradient.
  const ints = tf.tensor1d([-2, 0, 3], "int32");
  const [ours, original] = await _oursAndOriginal(
    tf.Relu,
    () => _read([tf.grad((t: tf.Tensor) => tf.relu(t))(ints, tf.tensor1d([1, 2, 3]))]),
  );
  assertSameValues(ours[0], original[0], "int32");
  tf.dispose([x, dy, ints]);
});

Deno.test("Sigmoid's gradient in one native kernel gives tfjs's floats (wasm)", async () => {
  await initBackend("wasm");
  const shape = [20, 24, 24, 20];
  // Pre-activations in [−2, 2) with ±0, ±∞ and NaN, and incoming gradients alike.
  const x = tf.tensor(_values(tf.util.sizeFromShape(shape), 23, true), shape);
  const dy = tf.tensor(_values(x.size, 24, true), shape);
  const run = () => _read([tf.grad((t: tf.Tensor) => tf.sigmoid(t))(x, dy)]);
  const profile = await tf.profile(async () => {
    const [ours, original] = await _oursAndOriginal(tf.Sigmoid, run);
    assertSameValues(ours[0], original[0], "sigmoid gradient");
  });
  assert.equal(profile.kernels.filter((k) => k.name === SIGMOID_GRAD).length, 1);
  tf.dispose([x, dy]);
});

Deno.test("the native Sigmoid gradient keeps memory flat", async () => {
  await initBackend("wasm");
  const x = tf.tensor2d(_values(6 * 5, 25), [6, 5]);
  await assertMemoryFlat(() => [tf.grad((t: tf.Tensor) => tf.sigmoid(t))(x)], 3);
  x.dispose();
});

Deno.test("Square's gradient in one native kernel gives tfjs's floats (wasm)", async () => {
  await initBackend("wasm");
  const shape = [20, 24, 24, 20];
  const x = tf.tensor(_values(tf.util.sizeFromShape(shape), 31, true), shape);
  const dy = tf.tensor(_values(x.size, 32, true), shape);
  // Values whose double overflows float32: x·2 is ∞ in both.
  const big = tf.tensor1d([3e38, -3e38, 1.5e38, 1e-45]);
  const run = (t: tf.Tensor, g?: tf.Tensor) => () =>
    _read([tf.grad((u: tf.Tensor) => tf.square(u))(t, g)]);
  for (const [name, t, g] of [["random", x, dy], ["large", big, undefined]] as const) {
    const profile = await tf.profile(async () => {
      const [ours, original] = await _oursAndOriginal(tf.Square, run(t, g));
      assertSameValues(ours[0], original[0], `square gradient, ${name}`);
    });
    assert.equal(profile.kernels.filter((k) => k.name === SQUARE_GRAD).length, 1, name);
  }
  // int32 inputs take tfjs's gradient.
  const ints = tf.tensor1d([-2, 0, 3], "int32");
  const [ours, original] = await _oursAndOriginal(tf.Square, run(ints, tf.tensor1d([1, 2, 3])));
  assertSameValues(ours[0], original[0], "int32");
  await assertMemoryFlat(() => [tf.grad((u: tf.Tensor) => tf.square(u))(big)], 3);
  tf.dispose([x, dy, big, ints]);
});

/** [a's shape, b's shape, how many operands are broadcast along leading axes only]. */
const _BROADCASTS: [number[], number[], number][] = [
  [[20, 24, 24, 20], [20], 1], // a conv layer's bias
  [[20, 24, 24, 20], [1, 1, 1, 20], 1], // tf.moments' x − μ
  [[4, 6, 5], [6, 5], 1],
  [[5], [3, 5], 1], // a broadcast
  [[1, 5], [3, 1], 1], // both broadcast: a along the leading axis, b along a trailing one
  [[20, 10], [20, 1], 0], // a trailing axis: tfjs's gradient
  [[4, 3], [4, 3], 0], // no broadcast
  [[4, 3], [], 1], // a scalar: every axis
];

for (const [kernelName, op] of [[tf.Add, tf.add], [tf.Sub, tf.sub]] as const) {
  Deno.test(`${kernelName}'s gradient sums broadcast operands in one kernel, with tfjs's floats (wasm)`, async () => {
    await initBackend("wasm");
    for (const [i, [aShape, bShape, leading]] of _BROADCASTS.entries()) {
      const a = tf.tensor(_values(tf.util.sizeFromShape(aShape), 40 + i), aShape);
      const b = tf.tensor(_values(tf.util.sizeFromShape(bShape), 60 + i), bShape);
      const yShape = tf.tidy(() => op(a, b).shape);
      const dy = tf.tensor(_values(tf.util.sizeFromShape(yShape), 80 + i, true), yShape);
      const run = () => _read(tf.grads((u: tf.Tensor, v: tf.Tensor) => op(u, v))([a, b], dy));
      const profile = await tf.profile(async () => {
        const [ours, original] = await _oursAndOriginal(kernelName, run);
        assertSameValues(ours[0], original[0], `${aShape} ${op.name} ${bShape}: da`);
        assertSameValues(ours[1], original[1], `${aShape} ${op.name} ${bShape}: db`);
      });
      const sums = profile.kernels.filter((k) => k.name === LEADING_SUM_TO).length;
      assert.equal(sums, leading, `${aShape}, ${bShape}: ${sums} calls of ${LEADING_SUM_TO}`);
      tf.dispose([a, b, dy]);
    }
  });
}

Deno.test("Add's and Sub's gradients leave a recorded backward pass to tfjs's ops", async () => {
  await initBackend("wasm");
  const x = tf.tensor4d(_values(2 * 3 * 3 * 4, 5), [2, 3, 3, 4]);
  const bias = tf.tensor1d([0.5, -1, 0, 2]);
  // d/dx Σ (d/dx Σ (x − b)²)² through a broadcast Sub and Add, each gradient recorded once.
  const inner = (t: tf.Tensor) =>
    tf.sum(
      tf.square(tf.add(tf.grad((u: tf.Tensor) => tf.sum(tf.square(tf.sub(u, bias))))(t), bias)),
    );
  const run = () => _read([tf.grad(inner)(x)]);
  const names = [tf.Add, tf.Sub, tf.Square, tf.Sum];
  const ours = await run();
  const saved = names.map((name) => tf.getGradient(name)!);
  names.forEach((name) => tf.registerGradient(replacedGradient(name)!));
  try {
    assertSameValues(ours[0], (await run())[0], "second-order gradient");
  } finally {
    saved.forEach((config) => tf.registerGradient(config));
  }
  tf.dispose([x, bias]);
});
