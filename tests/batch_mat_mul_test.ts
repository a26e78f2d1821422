/**
 * The wasm `BatchMatMul` and `_FusedMatMul` wrappers of lib/kernels/ against tfjs's cpu
 * kernels (plain JavaScript loops), and a check that every product they hand to tfjs's wasm
 * kernel is one it runs in XNNPACK: untransposed, with a batch of one.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { type BackendName, initBackend } from "../lib/backend.ts";
import { batchMatMulWasm, fusedMatMulWasm } from "../lib/kernels/batch_mat_mul.ts";
import { replacedWasmKernel } from "../lib/kernels/mod.ts";
import { createRng } from "../lib/data/random.ts";
import {
  assertMemoryFlat,
  assertRelativeClose,
  assertWasmKernelReplaced,
  compareWithCpu,
  initRoute,
  randomInts,
  readAndDispose,
  uniform,
} from "./_kernel_test_utils.ts";

/** One product op(a)·op(b). */
interface _Case {
  a: number[];
  b: number[];
  transposeA: boolean;
  transposeB: boolean;
}

/** The shapes of a [...batch, M, K] (or [..., K, M]) for op(a) = [M, K]. */
function _shape(batch: number[], rows: number, cols: number, transposed: boolean): number[] {
  return [...batch, ...(transposed ? [cols, rows] : [rows, cols])];
}

/**
 * Random products over every flag pair and batch layout: unbatched (rank 2 and rank 3 with a
 * batch of 1), batched a and unbatched b (rank 3 and 4), the reverse, both batched, and
 * broadcast leading dimensions; sizes 1–40 with some LeNet-like ones.
 */
function _randomCases(seed: number): _Case[] {
  const int = randomInts(createRng(seed));
  const layouts: [number[], number[]][] = [
    [[], []],
    [[1], [1]],
    [[3], []],
    [[3], [1]],
    [[2, 3], [1, 1]],
    [[], [4]],
    [[1], [2]],
    [[3], [3]],
    [[2, 1], [1, 3]],
  ];
  const cases: _Case[] = [];
  for (const [batchA, batchB] of layouts) {
    for (
      const [transposeA, transposeB] of [[false, false], [true, false], [false, true], [true, true]]
    ) {
      const m = int(1, 40), k = int(1, 40), n = int(1, 40);
      cases.push({
        a: _shape(batchA, m, k, transposeA),
        b: _shape(batchB, k, n, transposeB),
        transposeA,
        transposeB,
      });
    }
  }
  return cases;
}

/** LeNet's dense products at batch 20: forward, dx and dW of 800→500 and 500→10. */
const _LENET_CASES: _Case[] = [
  { a: [20, 800], b: [800, 500], transposeA: false, transposeB: false },
  { a: [20, 500], b: [800, 500], transposeA: false, transposeB: true },
  { a: [20, 800], b: [20, 500], transposeA: true, transposeB: false },
  { a: [20, 10], b: [500, 10], transposeA: false, transposeB: true },
  { a: [20, 500], b: [20, 10], transposeA: true, transposeB: false },
];

/** One product handed to tfjs's wasm kernel, as the spy saw it. */
interface _Call {
  a: number[];
  b: number[];
  transposeA: boolean;
  transposeB: boolean;
}

/** Wraps tfjs's wasm kernel `kernelName`, recording what it is asked to multiply. */
function _spy(kernelName: string): { kernel: tf.KernelFunc; calls: _Call[] } {
  const original = replacedWasmKernel(kernelName);
  if (original === undefined) throw new Error(`${kernelName} is not replaced on wasm`);
  const calls: _Call[] = [];
  const kernel: tf.KernelFunc = (args) => {
    const { a, b } = args.inputs;
    const attrs = args.attrs as unknown as { transposeA: boolean; transposeB: boolean };
    calls.push({
      a: a!.shape,
      b: b!.shape,
      transposeA: attrs.transposeA,
      transposeB: attrs.transposeB,
    });
    return original.kernelFunc(args);
  };
  return { kernel, calls };
}

/** Whether tfjs's wasm kernel runs this product in XNNPACK. */
function _fast(call: _Call): boolean {
  const batch = (shape: number[]) => tf.util.sizeFromShape(shape.slice(0, -2));
  return !call.transposeA && !call.transposeB && batch(call.a) === 1 && batch(call.b) === 1;
}

/**
 * op(a)·op(b) on `backend` with inputs drawn from `seed`: through tf.matMul, or ("wasm-spy")
 * through batchMatMulWasm with a spy on tfjs's kernel, whose calls are returned too.
 */
async function _matMul(
  backend: BackendName | "wasm-spy",
  c: _Case,
  seed: number,
) {
  await initRoute(backend);
  const random = createRng(seed);
  const aValues = uniform(tf.util.sizeFromShape(c.a), random);
  const bValues = uniform(tf.util.sizeFromShape(c.b), random);
  const spy = backend === "wasm-spy" ? _spy("BatchMatMul") : undefined;
  const out = tf.tidy(() => {
    const a = tf.tensor(aValues, c.a);
    const b = tf.tensor(bValues, c.b);
    if (spy === undefined) return tf.matMul(a, b, c.transposeA, c.transposeB);
    const info = batchMatMulWasm({
      inputs: { a, b },
      backend: tf.backend(),
      attrs: { transposeA: c.transposeA, transposeB: c.transposeB },
    }, spy.kernel);
    return tf.engine().makeTensorFromTensorInfo(info);
  });
  return { ...await readAndDispose(out), calls: spy?.calls ?? [] };
}

Deno.test("wasm BatchMatMul matches cpu on 41 products, all flags and batch layouts", async () => {
  const cases = [..._randomCases(20240608), ..._LENET_CASES];
  const routes = ["wasm", "wasm-spy"] as const;
  await compareWithCpu(cases, 4000, routes, _matMul, (actual, expected, _c, label, route) => {
    assert.deepEqual(actual.shape, expected.shape, `${route} ${label}`);
    assertRelativeClose(actual.values, expected.values, `${route} ${label}`);
  });
});

Deno.test("wasm BatchMatMul hands tfjs's kernel only XNNPACK products, but for two batches", async () => {
  for (const [i, c] of [..._randomCases(20240609), ..._LENET_CASES].entries()) {
    const { calls } = await _matMul("wasm-spy", c, 5000 + i);
    assert.equal(calls.length, 1, JSON.stringify(c));
    const batch = (shape: number[]) => tf.util.sizeFromShape(shape.slice(0, -2));
    const bothBatched = batch(c.a) > 1 && batch(c.b) > 1;
    assert.equal(
      _fast(calls[0]),
      !bothBatched,
      `${JSON.stringify(c)} → ${JSON.stringify(calls[0])}`,
    );
  }
});

Deno.test("wasm BatchMatMul computes dx = dy·Wᵀ transposed, moving dy, not W", async () => {
  const { calls } = await _matMul("wasm-spy", _LENET_CASES[1], 1);
  assert.deepEqual(calls, [
    { a: [1, 800, 500], b: [1, 500, 20], transposeA: false, transposeB: false },
  ]);
});

Deno.test("wasm BatchMatMul replaced tfjs's kernels and keeps them", async () => {
  for (const name of ["BatchMatMul", "_FusedMatMul"]) await assertWasmKernelReplaced(name, name);
});

/** A fused product with bias and activation (prelu: with random weights [N]). */
interface _FusedCase extends _Case {
  bias: number[] | null;
  activation: "linear" | "relu" | "relu6" | "elu" | "sigmoid" | "leakyrelu" | "prelu";
}

/**
 * Fused products: each flag pair, one-element and absent biases, batched a, batched b (which
 * take the unfused path), and K > 48, where tfjs's own loop adds the bias once per block.
 */
const _FUSED_CASES: _FusedCase[] = [
  { a: [5, 7], b: [5, 9], transposeA: true, transposeB: false, bias: [9], activation: "relu" },
  { a: [5, 7], b: [9, 7], transposeA: false, transposeB: true, bias: [9], activation: "linear" },
  { a: [7, 5], b: [9, 7], transposeA: true, transposeB: true, bias: [1], activation: "relu6" },
  { a: [4, 5], b: [5, 9], transposeA: false, transposeB: false, bias: [1], activation: "linear" },
  { a: [3, 6, 5], b: [5, 4], transposeA: false, transposeB: false, bias: [4], activation: "relu" },
  { a: [3, 5, 6], b: [4, 5], transposeA: true, transposeB: true, bias: null, activation: "elu" },
  { a: [6, 5], b: [3, 5, 4], transposeA: false, transposeB: false, bias: [4], activation: "relu" },
  { a: [6, 5], b: [2, 5, 4], transposeA: false, transposeB: false, bias: [1], activation: "prelu" },
  {
    a: [2, 6, 60],
    b: [2, 7, 60],
    transposeA: false,
    transposeB: true,
    bias: [7],
    activation: "leakyrelu",
  },
  { a: [60, 4], b: [60, 8], transposeA: true, transposeB: false, bias: [8], activation: "prelu" },
  {
    a: [20, 40],
    b: [20, 30],
    transposeA: true,
    transposeB: false,
    bias: [30],
    activation: "sigmoid",
  },
];

/** fused.matMul on `backend` with inputs drawn from `seed`. */
async function _fusedMatMul(backend: BackendName, c: _FusedCase, seed: number) {
  await initBackend(backend);
  const random = createRng(seed);
  const aValues = uniform(tf.util.sizeFromShape(c.a), random);
  const bValues = uniform(tf.util.sizeFromShape(c.b), random);
  const biasValues = c.bias && uniform(tf.util.sizeFromShape(c.bias), random);
  const n = c.transposeB ? c.b[c.b.length - 2] : c.b[c.b.length - 1];
  const preluValues = uniform(n, random);
  const out = tf.tidy(() =>
    tf.fused.matMul({
      a: tf.tensor(aValues, c.a),
      b: tf.tensor(bValues, c.b),
      transposeA: c.transposeA,
      transposeB: c.transposeB,
      bias: biasValues ? tf.tensor(biasValues, c.bias!) : undefined,
      activation: c.activation,
      preluActivationWeights: c.activation === "prelu" ? tf.tensor1d(preluValues) : undefined,
      leakyreluAlpha: 0.1,
    })
  );
  return await readAndDispose(out);
}

Deno.test("wasm _FusedMatMul matches cpu on 11 products: flags, biases, activations, batches", async () => {
  await compareWithCpu(
    _FUSED_CASES,
    6000,
    ["wasm"],
    _fusedMatMul,
    (actual, expected, _c, label) => {
      assert.deepEqual(actual.shape, expected.shape, label);
      assertRelativeClose(actual.values, expected.values, label);
    },
  );
});

Deno.test("wasm _FusedMatMul hands tfjs's kernel an untransposed, unbatched product", async () => {
  await initBackend("wasm");
  const spy = _spy("_FusedMatMul");
  const a = tf.ones([2, 6, 5]);
  const b = tf.ones([1, 4, 5]);
  const bias = tf.ones([4]);
  const info = fusedMatMulWasm({
    inputs: { a, b, bias },
    backend: tf.backend(),
    attrs: { transposeA: false, transposeB: true, activation: "relu", leakyreluAlpha: 0.2 },
  }, spy.kernel);
  const out = tf.engine().makeTensorFromTensorInfo(info);
  assert.deepEqual(out.shape, [2, 6, 4]);
  assert.deepEqual([...await out.data()], new Array(48).fill(6));
  assert.deepEqual(spy.calls, [{
    a: [1, 12, 5],
    b: [1, 5, 4],
    transposeA: false,
    transposeB: false,
  }]);
  tf.dispose([a, b, bias, out]);
});

Deno.test("wasm BatchMatMul rejects mismatched inner dimensions", async () => {
  await initBackend("wasm");
  const a = tf.zeros([3, 4]);
  const b = tf.zeros([3, 5]);
  assert.throws(() =>
    tf.engine().runKernel("BatchMatMul", { a, b }, {
      transposeA: false,
      transposeB: false,
    })
  );
  assert.throws(
    () => tf.engine().runKernel("BatchMatMul", { a, b }, { transposeA: false, transposeB: true }),
    {
      message: "matMul (wasm): inner dimensions must match, received a [3,4] (transposeA false) " +
        "and b [3,5] (transposeB true)",
    },
  );
  tf.dispose([a, b]);
});

Deno.test("wasm BatchMatMul keeps tensors, bytes and backend buffers flat, through tf.grad", async () => {
  await initBackend("wasm");
  const x = tf.randomUniform([20, 800], -1, 1, "float32", 1);
  const w = tf.randomUniform([800, 500], -1, 1, "float32", 2);
  const bias = tf.randomUniform([500], -1, 1, "float32", 3);
  const x3 = tf.randomUniform([3, 20, 800], -1, 1, "float32", 4);
  await assertMemoryFlat(() =>
    tf.tidy(() => {
      const loss = (x: tf.Tensor, w: tf.Tensor) =>
        tf.fused.matMul({ a: x, b: w, bias, activation: "relu" }).square().sum();
      return [
        ...tf.grads(loss)([x, w]),
        tf.matMul(x, x, false, true),
        tf.matMul(x3, w),
        tf.matMul(w, x3, true, true),
        tf.fused.matMul({ a: x, b: x, transposeA: true, activation: "relu" }),
      ];
    }), 10);
  tf.dispose([x, w, bias, x3]);
});
