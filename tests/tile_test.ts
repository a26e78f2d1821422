/**
 * The wasm `Tile` kernel of lib/kernels/ against tfjs's cpu kernel: a copy, so equal
 * element for element (by `Object.is`, so −0 and NaN count), on broadcast tilings it handles
 * and on others it leaves to tfjs's kernel.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { type BackendName, initBackend } from "../lib/backend.ts";
import { isBroadcastTiling, tileWasm } from "../lib/kernels/tile.ts";
import { createRng } from "../lib/data/random.ts";
import {
  assertFallbackCases,
  assertMemoryFlat,
  assertSameValues,
  assertWasmKernelReplaced,
  compareWithCpu,
  failingFallback,
  initRoute,
  randomInts,
  readAndDispose,
} from "./_kernel_test_utils.ts";

/** One tiling: x's shape, the repetitions and the dtype. */
interface _Case {
  shape: number[];
  reps: number[];
  dtype: "float32" | "int32" | "bool";
}

/** Random broadcast tilings (rank 1–6, each axis size 1 or repeated once) of each dtype. */
function _broadcastCases(count: number, seed: number): _Case[] {
  const random = createRng(seed);
  const int = randomInts(random);
  const dtypes = ["float32", "int32", "bool"] as const;
  return Array.from({ length: count }, (_, i): _Case => {
    const rank = int(1, 6);
    const shape: number[] = [], reps: number[] = [];
    for (let k = 0; k < rank; k++) {
      const broadcast = random() < 0.5;
      shape.push(broadcast ? 1 : int(1, 6));
      reps.push(broadcast ? int(1, 7) : 1);
    }
    return { shape, reps, dtype: dtypes[i % 3] };
  });
}

/** The batch-norm gradient's tilings of 1/σ in LeNet, and edge cases. */
const _FIXED_CASES: _Case[] = [
  { shape: [1, 1, 1, 20], reps: [20, 24, 24, 1], dtype: "float32" },
  { shape: [1, 1, 1, 50], reps: [20, 8, 8, 1], dtype: "float32" },
  { shape: [1, 500], reps: [20, 1], dtype: "float32" },
  { shape: [7], reps: [1], dtype: "int32" },
  { shape: [1], reps: [1000], dtype: "float32" },
  { shape: [3, 1, 4], reps: [1, 129, 1], dtype: "int32" },
];

/** Tilings that are not broadcasts, and scalars: tfjs's kernel runs them. */
const _FALLBACK_CASES: _Case[] = [
  { shape: [2, 3], reps: [2, 1], dtype: "float32" },
  { shape: [2, 3], reps: [3, 2], dtype: "int32" },
  { shape: [1, 2, 1], reps: [2, 3, 2], dtype: "float32" },
  { shape: [4], reps: [3], dtype: "bool" },
  { shape: [], reps: [], dtype: "float32" },
  { shape: [0, 1], reps: [1, 3], dtype: "float32" },
];

/** x's values: random, with −0, NaN, ±∞ among the floats. */
function _values(c: _Case, seed: number): number[] {
  const random = createRng(seed);
  const specials = [-0, NaN, Infinity, -Infinity];
  return Array.from({ length: tf.util.sizeFromShape(c.shape) }, (_, i) => {
    if (c.dtype === "bool") return random() < 0.5 ? 1 : 0;
    if (c.dtype === "int32") return Math.floor((random() - 0.5) * 2 ** 31);
    return i % 5 === 4 ? specials[i % 4] : 2 * random() - 1;
  });
}

/**
 * Tiles on `backend`: through the engine, or (for "wasm-direct") by calling tileWasm with a
 * fallback that fails the test.
 */
async function _tile(backend: BackendName | "wasm-direct", c: _Case, seed: number) {
  await initRoute(backend);
  const x = tf.tensor(_values(c, seed), c.shape, c.dtype);
  let y: tf.Tensor;
  if (backend === "wasm-direct") {
    const info = tileWasm(
      { inputs: { x }, backend: tf.backend(), attrs: { reps: c.reps } },
      failingFallback(c),
    );
    y = tf.engine().makeTensorFromTensorInfo(info);
  } else {
    y = tf.engine().runKernel("Tile", { x }, { reps: c.reps }) as tf.Tensor;
  }
  const result = await readAndDispose<tf.TypedArray>(y);
  x.dispose();
  return result;
}

Deno.test("wasm Tile equals cpu exactly on 36 broadcast tilings, without its fallback", async () => {
  const cases = [..._broadcastCases(30, 20241124), ..._FIXED_CASES];
  for (const c of cases) assert.ok(isBroadcastTiling(c.shape, c.reps), JSON.stringify(c));
  const routes = ["wasm", "wasm-direct"] as const;
  await compareWithCpu(cases, 100, routes, _tile, (actual, expected, c, label, route) => {
    assert.deepEqual(actual.shape, c.shape.map((n, k) => n * c.reps[k]), label);
    assert.deepEqual(actual.shape, expected.shape, label);
    assert.equal(actual.dtype, c.dtype, label);
    assertSameValues(actual.values, expected.values, `${route} ${label}`);
  });
});

Deno.test("wasm Tile hands other tilings to tfjs's kernel, which equals cpu", async () => {
  await assertFallbackCases(_FALLBACK_CASES, 200, "cpu", _tile, assertSameValues);
});

Deno.test("wasm Tile replaced tfjs's kernel and keeps it", async () => {
  await assertWasmKernelReplaced("Tile");
});

Deno.test("wasm Tile rejects reps that do not match x's rank", async () => {
  await initBackend("wasm");
  const x = tf.zeros([1, 3]);
  assert.throws(() => tf.engine().runKernel("Tile", { x }, { reps: [2] }), {
    message: "Tile (wasm): reps must have one entry per axis of x [1,3], received [2]",
  });
  x.dispose();
});

Deno.test("wasm Tile keeps tensors, bytes and backend buffers flat", async () => {
  await initBackend("wasm");
  const scale = tf.randomUniform([1, 1, 1, 20], 0.5, 2, "float32", 1);
  const counts = tf.tensor2d([[1, 2, 3]], [1, 3], "int32");
  await assertMemoryFlat(() => [
    tf.tile(scale, [8, 24, 24, 1]),
    tf.tile(counts, [5, 1]),
    tf.tile(counts, [2, 2]), // the fallback
    tf.grad((x: tf.Tensor) => tf.tile(x, [8, 24, 24, 1]).square().sum())(scale),
  ], 20);
  tf.dispose([scale, counts]);
});
