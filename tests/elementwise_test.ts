/**
 * The element-wise wasm kernels of lib/kernels/ that run in C: `Add`, `Sub`, `Multiply`,
 * `RealDiv`, `Relu` and `Sigmoid` against tfjs's own wasm kernels (`Sigmoid` bit for bit), `FusedBatchNorm` and the exact 2×2
 * `MaxPool` against tfjs's cpu backend, and the data-sharing `Identity` and `Cast`. The arithmetic is
 * the same, so the floats must be equal (by `Object.is`: −0 and NaN count), special values
 * included; cases the C kernels do not handle must give what tfjs's kernels give.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backend.ts";
import { binaryLayout } from "../lib/kernels/elementwise.ts";
import { isExactPool2x2 } from "../lib/kernels/max_pool.ts";
import { nativeInfo, setNativeEnabled } from "../lib/kernels/native_library.ts";
import { createRng } from "../lib/data/random.ts";
import {
  assertLeNetGradientsMatchCpu,
  assertMemoryFlat,
  assertSameValues,
  assertWasmKernelReplaced,
  memorySnapshot,
} from "./_kernel_test_utils.ts";

/** Random floats with special values mixed in: ±0, ±∞, NaN, subnormals, huge and tiny. */
function _values(size: number, seed: number): Float32Array {
  const random = createRng(seed);
  const specials = [0, -0, Infinity, -Infinity, NaN, 1e-40, -1e-40, 3e38, -3e38, 1e-30, 1, -1];
  return Float32Array.from(
    { length: size },
    () => random() < 0.15 ? specials[Math.floor(random() * specials.length)] : 8 * random() - 4,
  );
}

/** Runs `body` with tfjs's own wasm kernel `kernelName` registered in place of ours. */
async function _withOriginal<T>(kernelName: string, body: () => Promise<T>): Promise<T> {
  const original = await assertWasmKernelReplaced(kernelName);
  const ours = tf.getKernel(kernelName, "wasm")!;
  tf.unregisterKernel(kernelName, "wasm");
  tf.registerKernel(original);
  try {
    return await body();
  } finally {
    tf.unregisterKernel(kernelName, "wasm");
    tf.registerKernel(ours);
  }
}

const _BINARY: [string, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor][] = [
  ["Add", tf.add],
  ["Sub", tf.sub],
  ["Multiply", tf.mul],
  ["RealDiv", tf.div],
];

/** Operand shapes the C kernel handles: one layout each, and LeNet's. */
const _HANDLED_SHAPES: [number[], number[]][] = [
  [[20, 24, 24, 20], [20]], // a conv layer's bias add
  [[1, 1, 1, 20], [20, 24, 24, 20]], // tfjs's batch-norm gradient
  [[20, 8, 8, 50], [1, 1, 1, 50]],
  [[], [800, 500]], // SGD's scaled gradient
  [[800, 500], [800, 500]],
  [[7, 3], []],
  [[5], [2, 3, 5]],
  [[1, 6], [6]],
  [[3, 6], [1, 6]],
  [[1], [1]],
  [[4, 1], [4, 1]],
];

/** Broadcasts it leaves to tfjs's kernels. */
const _FALLBACK_SHAPES: [number[], number[]][] = [
  [[20, 10], [20, 1]], // softmax's row broadcast
  [[3, 1], [1, 4]],
  [[2, 3, 4], [3, 1]],
  [[0, 3], [3]],
];

Deno.test("Add, Sub, Multiply and RealDiv give the floats of tfjs's wasm kernels", async () => {
  await initBackend("wasm");
  assert.ok(nativeInfo().enabled, `native kernels expected, ${nativeInfo().reason}`);
  for (const [shapes, handled] of [[_HANDLED_SHAPES, true], [_FALLBACK_SHAPES, false]] as const) {
    for (const [i, [aShape, bShape]] of shapes.entries()) {
      const label = JSON.stringify([aShape, bShape]);
      assert.equal(binaryLayout(aShape, bShape) !== null, handled, label);
      const a = tf.tensor(_values(tf.util.sizeFromShape(aShape), 10 + i), aShape);
      const b = tf.tensor(_values(tf.util.sizeFromShape(bShape), 50 + i), bShape);
      for (const [name, op] of _BINARY) {
        const ours = op(a, b);
        const theirs = await _withOriginal(name, () => Promise.resolve(op(a, b)));
        assert.deepEqual(ours.shape, theirs.shape, `${name} ${label}`);
        assertSameValues(await ours.data(), await theirs.data(), `${name} ${label}`);
        tf.dispose([ours, theirs]);
      }
      tf.dispose([a, b]);
    }
  }
});

Deno.test("binary ops leave int32 to tfjs's kernels and check their inputs", async () => {
  await initBackend("wasm");
  const a = tf.tensor2d([[1, -2], [3, 4]], [2, 2], "int32");
  const b = tf.tensor1d([5, 7], "int32");
  assert.deepEqual(await tf.add(a, b).array(), [[6, 5], [8, 11]]);
  assert.deepEqual(await tf.mul(a, b).array(), [[5, -14], [15, 28]]);
  const kernel = tf.getKernel("Add", "wasm")!;
  assert.throws(
    () => kernel.kernelFunc({ inputs: { x: a }, backend: tf.backend(), attrs: {} }),
    { message: "Add (wasm): inputs must be { a, b }, received { x }" },
  );
  tf.dispose([a, b]);
});

Deno.test("binary ops keep memory flat", async () => {
  await initBackend("wasm");
  const x = tf.randomNormal([20, 24, 24, 20]);
  const bias = tf.randomNormal([20]);
  await assertMemoryFlat(() => [tf.add(x, bias), tf.mul(2, x), tf.div(x, bias)], 5);
  tf.dispose([x, bias]);
});

/** FusedBatchNorm cases: x's shape, the parameters' shape, which are given, and ε. */
const _BATCH_NORM_CASES = [
  { x: [20, 24, 24, 20], param: [20], scale: true, offset: true, epsilon: 1e-3 },
  { x: [20, 8, 8, 50], param: [50], scale: true, offset: true, epsilon: 1e-5 },
  { x: [20, 500], param: [500], scale: false, offset: true, epsilon: 1e-3 },
  { x: [4, 3, 6], param: [1, 1, 6], scale: true, offset: false, epsilon: 0.1 },
  { x: [5, 7], param: [1], scale: false, offset: false, epsilon: 1e-3 },
  { x: [9], param: [9], scale: true, offset: true, epsilon: 0 },
] as const;

Deno.test("FusedBatchNorm gives the floats of tfjs's cpu kernel", async () => {
  for (const [i, c] of _BATCH_NORM_CASES.entries()) {
    const label = JSON.stringify(c);
    const size = tf.util.sizeFromShape([...c.param]);
    const run = async (backend: "cpu" | "wasm") => {
      await initBackend(backend);
      const random = createRng(100 + i);
      const param = (lo: number, hi: number) =>
        tf.tensor(Float32Array.from({ length: size }, () => lo + (hi - lo) * random()), [
          ...c.param,
        ]);
      const x = tf.tensor(_values(tf.util.sizeFromShape([...c.x]), 200 + i), [...c.x]);
      const [mean, variance] = [param(-1, 1), param(0.01, 3)];
      const scale = c.scale ? param(-2, 2) : undefined;
      const offset = c.offset ? param(-1, 1) : undefined;
      const y = tf.batchNorm(x, mean, variance, offset, scale, c.epsilon);
      const values = await y.data();
      tf.dispose([x, mean, variance, scale!, offset!, y].filter((t) => t !== undefined));
      return values;
    };
    const expected = await run("cpu");
    const actual = await run("wasm");
    assertSameValues(actual, expected, label);
  }
  // A parameter of another length goes to tfjs's kernel.
  await initBackend("wasm");
  const y = tf.batchNorm(
    tf.ones([2, 4]),
    tf.zeros([2, 4]),
    tf.ones([2, 4]),
    undefined,
    undefined,
    0,
  );
  assert.deepEqual(await y.array(), [[1, 1, 1, 1], [1, 1, 1, 1]]);
});

Deno.test("Relu gives the floats of tfjs's wasm kernel; int32 goes to tfjs's", async () => {
  await initBackend("wasm");
  const x = tf.tensor(_values(20 * 24 * 24 * 20, 31), [20, 24, 24, 20]);
  const ints = tf.tensor1d([-3, 0, 5], "int32");
  const run = async () => [await tf.relu(x).data(), await tf.relu(ints).data()];
  const ours = await run();
  const theirs = await _withOriginal("Relu", run);
  assertSameValues(ours[0], theirs[0], "float32");
  assert.deepEqual(Array.from(ours[1]), [0, 0, 5]);
  tf.dispose([x, ints]);
});

/**
 * Compares the native `Sigmoid` with tfjs's wasm kernel bit for bit on float32 inputs given
 * by their bit patterns: `count` patterns from `start` in steps of `stride` (modulo 2^32).
 * Returns how many differ.
 */
async function _sigmoidMismatches(start: number, count: number, stride: number): Promise<number> {
  const bits = Uint32Array.from({ length: count }, (_, i) => (start + i * stride) >>> 0);
  const x = tf.tensor1d(new Float32Array(bits.buffer));
  const run = async () => {
    const y = tf.sigmoid(x);
    const values = await y.data() as Float32Array;
    y.dispose();
    return [new Uint32Array(values.buffer, values.byteOffset, values.length)];
  };
  const [ours] = await run();
  const [theirs] = await _withOriginal("Sigmoid", run);
  x.dispose();
  let differ = 0;
  for (let i = 0; i < count; i++) if (ours[i] !== theirs[i]) differ++;
  return differ;
}

Deno.test("Sigmoid gives tfjs's wasm kernel's bits", async () => {
  await initBackend("wasm");
  // Every 4093rd float32 bit pattern: every exponent of both signs, NaN and ±∞.
  assert.equal(await _sigmoidMismatches(0, Math.ceil(2 ** 32 / 4093), 4093), 0);
  // Every float near where the result rounds to 0.5's neighbours, near ±1, and near the
  // kernel's cutoff −87.34 (below it tfjs's result is 0).
  for (const center of [0x33c00000, 0xb3000000, 0x34000000, 0x3f800000, 0xbf800000, 0xc2aeac4f]) {
    assert.equal(await _sigmoidMismatches(center - (1 << 17), 1 << 18, 1), 0, center.toString(16));
  }
});

Deno.test({
  name: "Sigmoid gives tfjs's wasm kernel's bits on every float32 input (BNLAB_TEST_EVERY_FLOAT=1)",
  ignore: Deno.env.get("BNLAB_TEST_EVERY_FLOAT") !== "1",
  fn: async () => {
    await initBackend("wasm");
    const chunk = 1 << 22;
    let differ = 0;
    for (let start = 0; start < 2 ** 32; start += chunk) {
      differ += await _sigmoidMismatches(start, chunk, 1);
    }
    assert.equal(differ, 0);
  },
});

Deno.test("MaxPool on exact 2×2 pools gives the floats of tfjs's cpu kernel", async () => {
  const shapes: [number, number, number, number][] = [
    [20, 24, 24, 20],
    [20, 8, 8, 50],
    [3, 6, 4, 9],
    [1, 2, 2, 1],
  ];
  for (const [i, shape] of shapes.entries()) {
    const info = tf.backend_util.computePool2DInfo(
      shape,
      2,
      2,
      1,
      "valid",
    );
    assert.ok(isExactPool2x2(info));
    const run = async (backend: "cpu" | "wasm") => {
      await initBackend(backend);
      // Few distinct values, so windows hold ties, NaN and −∞ together.
      const random = createRng(300 + i);
      const pool = [-Infinity, NaN, -0, 0, 1, 2, -3];
      const x = tf.tensor(
        Float32Array.from(
          { length: tf.util.sizeFromShape(shape) },
          () => pool[Math.floor(random() * pool.length)],
        ),
        shape,
      ) as tf.Tensor4D;
      const y = tf.maxPool(x, 2, 2, "valid");
      const values = await y.data();
      tf.dispose([x, y]);
      return values;
    };
    assertSameValues(await run("wasm"), await run("cpu"), JSON.stringify(shape));
  }
  // Pools that do not tile exactly go to tfjs's kernel.
  await initBackend("wasm");
  const x = tf.tensor4d([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 3, 3, 1]);
  assert.deepEqual(Array.from(await tf.maxPool(x, 2, 2, "same").data()), [5, 6, 8, 9]);
  assert.deepEqual(Array.from(await tf.maxPool(x, 3, 1, "valid").data()), [9]);
  x.dispose();
});

Deno.test("Identity and Cast to the same dtype share data, and free it with the last tensor", async () => {
  await initBackend("wasm");
  const before = memorySnapshot();
  const x = tf.tensor1d([1, -0, NaN]);
  const clone = tf.clone(x);
  const cast = tf.cast(x, "float32");
  assert.equal(clone.dataId, x.dataId);
  assert.equal(cast.dataId, x.dataId);
  const floats = tf.tensor1d([1.7, -2.2]);
  const ints = tf.cast(floats, "int32");
  assert.deepEqual(Array.from(await ints.data()), [1, -2]);
  tf.dispose([floats, ints]);
  x.dispose();
  assertSameValues(await clone.data(), new Float32Array([1, -0, NaN]), "clone");
  clone.dispose();
  assertSameValues(await cast.data(), new Float32Array([1, -0, NaN]), "cast");
  cast.dispose();
  assert.deepEqual(memorySnapshot(), before);
  // A variable assigned after a clone was taken: the clone keeps the old values.
  const v = tf.variable(tf.tensor1d([1, 2]));
  const saved = tf.clone(v);
  v.assign(tf.tensor1d([5, 6]));
  assert.deepEqual(Array.from(await saved.data()), [1, 2]);
  assert.deepEqual(Array.from(await v.data()), [5, 6]);
  tf.dispose([v, saved]);
  const strings = tf.tensor1d(["a", "b"]);
  const copy = tf.clone(strings);
  assert.deepEqual(await copy.array(), ["a", "b"]);
  tf.dispose([strings, copy]);
});

Deno.test("LeNet's gradients on wasm with these kernels match cpu's", async () => {
  await assertLeNetGradientsMatchCpu("none", 3);
  await assertLeNetGradientsMatchCpu("tfjs", 4);
});

Deno.test("with the native kernels off, tfjs's kernels run and give the same floats", async () => {
  await initBackend("wasm");
  const x = tf.tensor(_values(2 * 4 * 4 * 3, 7), [2, 4, 4, 3]) as tf.Tensor4D;
  const c = tf.tensor1d([0.5, -2, 3]);
  const v = tf.tensor1d([1, 0.25, 4]);
  // Pooled without NaN: tfjs's XNNPACK pooling may take a NaN the cpu rule skips.
  const y = tf.tensor4d(Float32Array.from({ length: 96 }, (_, i) => Math.sin(i)), [2, 4, 4, 3]);
  const run = () => [
    tf.add(x, c),
    tf.div(c, x),
    tf.mul(-0.1, x),
    tf.batchNorm(x, c, v, c, v, 1e-3),
    tf.maxPool(y, 2, 2, "valid"),
    tf.sum(x, [0, 1, 2]),
  ];
  const on = run();
  const previous = setNativeEnabled(false);
  let off: tf.Tensor[];
  try {
    off = run();
  } finally {
    setNativeEnabled(previous);
  }
  for (const [i, t] of on.entries()) {
    // tfjs's wasm FusedBatchNorm rounds differently: compare it within float tolerance.
    if (i === 3) {
      const [a, b] = [await t.data(), await off[i].data()];
      for (let j = 0; j < a.length; j++) {
        if (Number.isFinite(b[j])) assert.ok(Math.abs(a[j] - b[j]) <= 1e-5 * Math.abs(b[j]) + 1e-6);
      }
      continue;
    }
    assertSameValues(await t.data(), await off[i].data(), `output ${i}`);
  }
  tf.dispose([x, c, v, y, ...on, ...off]);
});
