/**
 * The wasm `Sum` and `Mean` over leading axes of lib/kernels/reduce_leading.ts: equal to the
 * float64 column sums rounded once to float32, within float tolerance of tfjs's cpu kernels,
 * and tfjs's own kernel for every case it leaves alone.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backend.ts";
import { leadingAxesCount, reduceLeadingWasm } from "../lib/kernels/reduce_leading.ts";
import { createRng } from "../lib/data/random.ts";
import {
  assertFallbackCases,
  assertMemoryFlat,
  assertRelativeClose,
  assertSameValues,
  assertWasmKernelReplaced,
  compareWithCpu,
  failingFallback,
  initRoute,
  randomInts,
  readAndDispose,
  type Route,
  uniform,
} from "./_kernel_test_utils.ts";

/** One reduction: the kernel, x's shape and dtype, the axes and keepDims. */
interface _Case {
  op: "Sum" | "Mean";
  shape: number[];
  /** null: every axis, as `tf.sum(x)` asks. */
  axis: number[] | null;
  keepDims: boolean;
  dtype?: "float32" | "int32";
}

/** Random leading-axes reductions: rank 1–5, k = 1…rank (axes shuffled, some negative). */
function _leadingCases(count: number, seed: number): _Case[] {
  const random = createRng(seed);
  const int = randomInts(random);
  return Array.from({ length: count }, (_, i): _Case => {
    const rank = int(1, 5);
    const shape = Array.from({ length: rank }, () => int(1, 9));
    const k = int(1, rank);
    const axis = Array.from({ length: k }, (_, a) => (random() < 0.3 ? a - rank : a))
      .sort(() => random() - 0.5);
    return { op: i % 2 === 0 ? "Sum" : "Mean", shape, axis, keepDims: random() < 0.5 };
  });
}

/** LeNet's BN inputs at batch 20 and 128 (NHWC statistics and the dense layer's). */
const _LENET_CASES: _Case[] = [20, 128].flatMap((b) =>
  [[b, 24, 24, 20], [b, 8, 8, 50], [b, 500]].flatMap((shape) =>
    (["Sum", "Mean"] as const).map((op) => ({
      op,
      shape,
      axis: shape.slice(0, -1).map((_, i) => i),
      keepDims: op === "Mean",
    }))
  )
);

/** Reductions over every axis (axis null), of a vector and of LeNet's first activation. */
const _ALL_AXES_CASES: _Case[] = [
  { op: "Sum", shape: [17], axis: null, keepDims: false },
  { op: "Mean", shape: [20, 24, 24, 20], axis: null, keepDims: true },
];

/** Reductions that are not over leading axes, int32 ones and empty tensors: tfjs's kernel. */
const _FALLBACK_CASES: _Case[] = [
  { op: "Sum", shape: [4, 6, 5], axis: [1, 2], keepDims: false },
  { op: "Mean", shape: [4, 6, 5], axis: [2], keepDims: true },
  { op: "Sum", shape: [4, 6, 5], axis: [0, 2], keepDims: false },
  { op: "Sum", shape: [3, 7], axis: [0], keepDims: false, dtype: "int32" },
  { op: "Mean", shape: [0, 5], axis: [0], keepDims: false },
];

/** x's values for a case: uniform in [−1, 1), or integers for int32. */
function _x(c: _Case, seed: number): tf.Tensor {
  const size = tf.util.sizeFromShape(c.shape);
  if (c.dtype === "int32") {
    const random = createRng(seed);
    return tf.tensor(
      Array.from({ length: size }, () => Math.floor(random() * 2000) - 1000),
      c.shape,
      "int32",
    );
  }
  return tf.tensor(uniform(size, createRng(seed)), c.shape, "float32");
}

/**
 * Reduces on `route`: through the engine, or (for "wasm-direct") by calling reduceLeadingWasm
 * with a fallback that fails the test.
 */
async function _reduce(route: Route, c: _Case, seed: number) {
  await initRoute(route);
  const x = _x(c, seed);
  // tfjs passes axis null for "every axis" although NamedAttrMap has no null.
  const attrs = { axis: c.axis, keepDims: c.keepDims } as unknown as tf.NamedAttrMap;
  let y: tf.Tensor;
  if (route === "wasm-direct") {
    const info = reduceLeadingWasm(
      c.op,
      { inputs: { x }, backend: tf.backend(), attrs },
      failingFallback(c),
    );
    y = tf.engine().makeTensorFromTensorInfo(info);
  } else {
    y = tf.engine().runKernel(c.op, { x }, attrs) as tf.Tensor;
  }
  const result = await readAndDispose<tf.TypedArray>(y);
  x.dispose();
  return result;
}

/** The kernel's exact result: column sums in float64 in row order, scaled, rounded once. */
function _expected(c: _Case, seed: number): Float32Array {
  const values = uniform(tf.util.sizeFromShape(c.shape), createRng(seed));
  const axis = c.axis ?? c.shape.map((_, a) => a);
  const rows = axis.map((a) => c.shape.at(a)!).reduce((p, n) => p * n, 1);
  const columns = values.length / rows;
  return Float32Array.from({ length: columns }, (_, j) => {
    let sum = 0;
    for (let i = 0; i < rows; i++) sum += values[i * columns + j];
    return sum * (c.op === "Mean" ? 1 / rows : 1);
  });
}

Deno.test("leadingAxesCount finds leading blocks and rejects the rest", () => {
  assert.equal(leadingAxesCount(0, 3), 1);
  assert.equal(leadingAxesCount([2, 0, 1], 3), 3);
  assert.equal(leadingAxesCount([-3, -2], 3), 2);
  assert.equal(leadingAxesCount([], 3), 0);
  assert.equal(leadingAxesCount([1], 3), 0);
  assert.equal(leadingAxesCount([0, 0], 3), 0);
  assert.equal(leadingAxesCount([0, 2], 3), 0);
  assert.equal(leadingAxesCount(null, 3), 3);
  assert.equal(leadingAxesCount(null, 0), 0);
});

Deno.test("wasm Sum/Mean over leading axes: 54 cases, float64 sums rounded once, close to cpu", async () => {
  const cases = [..._leadingCases(40, 20261201), ..._LENET_CASES, ..._ALL_AXES_CASES];
  for (const c of cases) assert.ok(leadingAxesCount(c.axis, c.shape.length) > 0, JSON.stringify(c));
  const routes = ["wasm", "wasm-direct"] as const;
  await compareWithCpu(cases, 300, routes, _reduce, (actual, expected, _c, label, route) => {
    assert.deepEqual(actual.shape, expected.shape, label);
    assert.equal(actual.dtype, "float32", label);
    assertRelativeClose(actual.values, expected.values, `${route} ${label}`);
  });
  for (const [i, c] of cases.entries()) {
    const actual = await _reduce("wasm", c, 300 + i);
    assertSameValues(actual.values, _expected(c, 300 + i), JSON.stringify(c));
  }
});

Deno.test("wasm Sum/Mean hand other reductions to tfjs's kernels, which equal cpu", async () => {
  await assertFallbackCases(_FALLBACK_CASES, 400, "cpu", _reduce, assertRelativeClose);
});

Deno.test("wasm Sum and Mean replaced tfjs's kernels and keep them", async () => {
  await assertWasmKernelReplaced("Sum");
  await assertWasmKernelReplaced("Mean");
});

Deno.test("wasm Sum rejects inputs without x", async () => {
  await initBackend("wasm");
  assert.throws(
    () =>
      reduceLeadingWasm(
        "Sum",
        { inputs: {}, backend: tf.backend(), attrs: {} },
        failingFallback({}),
      ),
    { message: "Sum (wasm): inputs must be { x }, received {  }" },
  );
});

Deno.test("wasm Sum/Mean keep tensors, bytes and backend buffers flat", async () => {
  await initBackend("wasm");
  const x = tf.randomNormal([8, 24, 24, 20], 0, 1, "float32", 1);
  await assertMemoryFlat(() => [
    tf.sum(x, [0, 1, 2]),
    tf.mean(x, [0, 1, 2], true),
    tf.sum(x, [1, 2]), // the fallback
    tf.sum(x),
    tf.grad((t: tf.Tensor) => tf.moments(t, [0, 1, 2]).variance.sum())(x),
  ], 20);
  x.dispose();
});
