/**
 * The BLAS kernels of lib/kernels/blas_kernels.ts against the wasm kernels they wrap (BLAS
 * switched off in the same process) and against tfjs's cpu kernels (plain JavaScript loops,
 * the independent reference) on small shapes; the fallback when BLAS is off or missing
 * (child processes with BNLAB_BLAS set); memory; and a whole LeNet gradient, BLAS on vs off.
 *
 * Without a BLAS library the comparisons compare the wasm path with itself and still pass;
 * where Debian's libopenblas0-pthread is installed (scripts/setup.sh installs it), BLAS
 * must be on.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { type BackendName, initBackend } from "../lib/backend.ts";
import {
  BLAS_LIBRARY_PATHS,
  blasInfo,
  setBlasEnabled,
  setBlasPoolThreads,
  sgemm,
} from "../lib/kernels/blas.ts";
import { createLeNet } from "../lib/models/lenet.ts";
import { createRng } from "../lib/data/random.ts";
import { memorySnapshot, relativeMaxError, TOLERANCE, uniform } from "./_kernel_test_utils.ts";

// Relative tolerance TOLERANCE: max|blas − reference| ≤ 1e-4 · max|reference|, the bound of the
// wasm kernel tests; on LeNet's shapes the errors seen are ≈1e-6.

/** The library scripts/setup.sh installs and the search tries first (libopenblas0-pthread). */
const _PTHREAD = BLAS_LIBRARY_PATHS[0];

/** One kernel call: its name, input shapes (random values from a seed) and attrs. */
interface _Call {
  kernel: string;
  inputs: Record<string, number[]>;
  attrs: Record<string, unknown>;
}

/** Runs `call` on `backend` (wasm: with BLAS on or off) and reads its output. */
async function _run(
  call: _Call,
  seed: number,
  backend: BackendName,
  blas: boolean,
): Promise<{ shape: number[]; values: Float32Array }> {
  await initBackend(backend);
  const previous = setBlasEnabled(blas);
  const random = createRng(seed);
  const inputs = Object.fromEntries(
    Object.entries(call.inputs).map((
      [name, shape],
    ) => [name, tf.tensor(uniform(tf.util.sizeFromShape(shape), random), shape)]),
  );
  try {
    const out = tf.engine().runKernel(call.kernel, inputs, call.attrs as tf.NamedAttrMap);
    const y = out as tf.Tensor;
    const result = { shape: y.shape, values: await y.data() as Float32Array };
    y.dispose();
    return result;
  } finally {
    tf.dispose(Object.values(inputs));
    setBlasEnabled(previous);
  }
}

/**
 * Compares BLAS with the wasm path, or with cpu when `cpu` (on odd shapes tfjs's own wasm
 * kernels are not a reference: its `Conv2D` returns zeros for x [1, 6, 5, 2], filter
 * [1, 3, 2, 8], strides [3, 1], pad "same", where cpu and BLAS agree), within the tolerance.
 */
async function _check(call: _Call, seed: number, cpu: boolean): Promise<void> {
  const label = JSON.stringify(call);
  const blas = await _run(call, seed, "wasm", true);
  const references = [await _run(call, seed, cpu ? "cpu" : "wasm", false)];
  for (const reference of references) {
    assert.deepEqual(blas.shape, reference.shape, label);
    const error = relativeMaxError(blas.values, reference.values);
    assert.ok(error <= TOLERANCE, `${label}: relative error ${error} > ${TOLERANCE}`);
  }
}

const _CONV = { strides: 1, pad: "valid", dataFormat: "NHWC", dimRoundingMode: undefined };

/** LeNet's kernel calls at batch `b`: both conv layers' three kernels, both dense layers'. */
function _lenetCalls(b: number): _Call[] {
  const calls: _Call[] = [];
  for (
    const [x, w, y] of [
      [[b, 28, 28, 1], [5, 5, 1, 20], [b, 24, 24, 20]],
      [[b, 12, 12, 20], [5, 5, 20, 50], [b, 8, 8, 50]],
    ]
  ) {
    calls.push(
      { kernel: "Conv2D", inputs: { x, filter: w }, attrs: { ..._CONV, dilations: 1 } },
      {
        kernel: "FusedConv2D",
        inputs: { x, filter: w, bias: [w[3]] },
        attrs: { ..._CONV, dilations: 1, activation: "relu" },
      },
      { kernel: "Conv2DBackpropFilter", inputs: { x, dy: y }, attrs: { ..._CONV, filterShape: w } },
      {
        kernel: "Conv2DBackpropInput",
        inputs: { dy: y, filter: w },
        attrs: { ..._CONV, inputShape: x },
      },
    );
  }
  for (const [i, o] of [[800, 500], [500, 10]]) {
    const mm = (a: number[], bShape: number[], transposeA: boolean, transposeB: boolean) => ({
      kernel: "BatchMatMul",
      inputs: { a, b: bShape },
      attrs: { transposeA, transposeB },
    });
    calls.push(
      mm([b, i], [i, o], false, false),
      mm([b, i], [b, o], true, false),
      mm([b, o], [i, o], false, true),
      {
        kernel: "_FusedMatMul",
        // tf.fused.matMul hands its kernel rank-3 operands.
        inputs: { a: [1, b, i], b: [1, i, o], bias: [o] },
        attrs: { transposeA: false, transposeB: false, activation: "linear" },
      },
    );
  }
  return calls;
}

/** Odd convolutions: strides, same and explicit pads, dilation, 1×1 filters, odd sizes. */
function _oddConvCalls(seed: number): _Call[] {
  const random = createRng(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));
  const calls: _Call[] = [];
  const pads = ["valid", "same", 1, [[0, 0], [2, 0], [1, 3], [0, 0]]];
  for (let i = 0; i < 16; i++) {
    const kh = int(1, 4), kw = int(1, 4), cin = int(1, 7), cout = int(1, 9);
    const stride = [int(1, 3), int(1, 2)];
    const pad = pads[i % pads.length];
    const x = [int(1, 3), int(kh + 1, 11), int(kw + 1, 11), cin];
    const w = [kh, kw, cin, cout];
    const conv = { strides: stride, pad, dataFormat: "NHWC" };
    const info = tf.backend_util.computeConv2DInfo(
      x as [number, number, number, number],
      w as [number, number, number, number],
      stride as [number, number],
      1,
      pad as "valid",
    );
    calls.push(
      { kernel: "Conv2D", inputs: { x, filter: w }, attrs: { ...conv, dilations: 1 } },
      {
        kernel: "Conv2DBackpropFilter",
        inputs: { x, dy: info.outShape },
        attrs: { ...conv, filterShape: w },
      },
      {
        kernel: "Conv2DBackpropInput",
        inputs: { dy: info.outShape, filter: w },
        attrs: { ...conv, inputShape: x },
      },
    );
  }
  // A 1×1 filter at stride 1 without padding (cols is x itself), and a dilated filter.
  calls.push(
    {
      kernel: "Conv2D",
      inputs: { x: [2, 5, 6, 7], filter: [1, 1, 7, 3] },
      attrs: { ..._CONV, dilations: 1 },
    },
    {
      kernel: "Conv2DBackpropFilter",
      inputs: { x: [2, 5, 6, 7], dy: [2, 5, 6, 3] },
      attrs: { ..._CONV, filterShape: [1, 1, 7, 3] },
    },
    {
      kernel: "Conv2DBackpropInput",
      inputs: { dy: [2, 5, 6, 3], filter: [1, 1, 7, 3] },
      attrs: { ..._CONV, inputShape: [2, 5, 6, 7] },
    },
    {
      kernel: "Conv2D",
      inputs: { x: [2, 9, 10, 3], filter: [3, 2, 3, 4] },
      attrs: { ..._CONV, pad: "same", dilations: [2, 3] },
    },
  );
  return calls;
}

/** Products over every flag pair and batch layout, sizes 1–40. */
function _oddMatMulCalls(seed: number): _Call[] {
  const random = createRng(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));
  const layouts = [[[], []], [[1], [1]], [[3], []], [[3], [1]], [[2, 3], [1, 1]], [[], [4]], [
    [3],
    [3],
  ], [[2, 3], [2, 3]]];
  const calls: _Call[] = [];
  for (const [batchA, batchB] of layouts) {
    for (const [tA, tB] of [[false, false], [true, false], [false, true], [true, true]]) {
      const m = int(1, 40), k = int(1, 40), n = int(1, 40);
      calls.push({
        kernel: "BatchMatMul",
        inputs: {
          a: [...batchA, ...(tA ? [k, m] : [m, k])],
          b: [...batchB, ...(tB ? [n, k] : [k, n])],
        },
        attrs: { transposeA: tA, transposeB: tB },
      });
    }
  }
  return calls;
}

/** Fused products and convolutions: every activation, row and scalar biases, transposes. */
function _fusedCalls(): _Call[] {
  const calls: _Call[] = [];
  const activations = ["linear", "relu", "relu6", "elu", "sigmoid", "leakyrelu", "prelu"];
  for (const [i, activation] of activations.entries()) {
    const tA = i % 2 === 1, tB = i % 3 === 1;
    const prelu: Record<string, number[]> = activation === "prelu"
      ? { preluActivationWeights: [13] }
      : {};
    calls.push({
      kernel: "_FusedMatMul",
      inputs: {
        a: [2, ...(tA ? [11, 7] : [7, 11])],
        b: [1, ...(tB ? [13, 11] : [11, 13])],
        bias: i % 2 === 0 ? [13] : [1],
        ...prelu,
      },
      attrs: { transposeA: tA, transposeB: tB, activation, leakyreluAlpha: 0.3 },
    });
    calls.push({
      kernel: "FusedConv2D",
      inputs: {
        x: [2, 9, 8, 3],
        filter: [3, 3, 3, 13],
        bias: [13],
        ...prelu,
      },
      attrs: { ..._CONV, pad: "same", dilations: 1, activation, leakyreluAlpha: 0.3 },
    });
  }
  // No bias at all.
  calls.push({
    kernel: "_FusedMatMul",
    inputs: { a: [1, 5, 6], b: [1, 6, 4] },
    attrs: { transposeA: false, transposeB: false, activation: "relu" },
  });
  return calls;
}

Deno.test("BLAS kernels read the heap after it grows", async () => {
  await initBackend("wasm");
  const heap = () => (tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8;
  const before = heap().buffer.byteLength;
  // First in this file, so the heap is still small (its start-up size, tens of MiB).
  if (before > 256 * 2 ** 20) return;
  // An outer product whose output (rows × 1000 floats) is larger than the whole heap: the
  // kernel's allocation grows it, detaching views taken before.
  const rows = Math.ceil(before / 4 / 1000) + 1000;
  const a = tf.range(0, rows).reshape([rows, 1]);
  const b = tf.ones([1, 1000]);
  const y = tf.matMul(a, b);
  assert.ok(heap().buffer.byteLength > before, "the heap did not grow");
  const values = await y.data();
  for (const row of [0, 1, rows >> 1, rows - 1]) {
    assert.equal(values[row * 1000 + 999], row);
  }
  tf.dispose([a, b, y]);
});

Deno.test("blasInfo reports the library scripts/setup.sh installs, on one thread", async () => {
  await initBackend("wasm");
  const info = blasInfo();
  let installed = false;
  try {
    installed = Deno.statSync(_PTHREAD).isFile;
  } catch {
    // Not installed: the wasm path runs, which the other tests then check.
  }
  if (!installed) {
    assert.equal(info.enabled, info.library !== null);
    return;
  }
  assert.equal(info.enabled, true, `BLAS is off: ${info.reason}`);
  assert.equal(info.library, _PTHREAD);
  assert.match(info.config ?? "", /^OpenBLAS /);
  assert.equal(info.threads, 1); // its own threading off: bnlab splits products (native.ts)
});

Deno.test("the products' pool restarts with another thread count, every float the same", async () => {
  await initBackend("wasm");
  if (blasInfo().sliceThreads < 2) return;
  const random = createRng(11);
  const a = uniform(1280 * 500, random), b = uniform(500 * 50, random);
  const product = () => {
    const c = new Float32Array(1280 * 50);
    sgemm(false, false, 1280, 50, 500, 1, a, 500, b, 50, 0, c, 50);
    return c;
  };
  const two = product();
  assert.equal(setBlasPoolThreads(1), 2);
  try {
    assert.equal(blasInfo().sliceThreads, 1);
    assert.deepEqual(product(), two);
  } finally {
    assert.equal(setBlasPoolThreads(2), 1);
  }
  assert.equal(blasInfo().sliceThreads, 2);
  assert.deepEqual(product(), two);
  assert.throws(() => setBlasPoolThreads(3), {
    message: "setBlasPoolThreads: threads must be an integer from 1 to 2, received 3",
  });
});

Deno.test("sgemm computes op(A)·op(B) with strides and rejects short arrays", () => {
  if (!blasInfo().enabled) return;
  // A 2×3 inside rows of stride 4; B 3×2 stored transposed (2×3); C += A·B (beta 1).
  const a = new Float32Array([1, 2, 3, 99, 4, 5, 6, 99]);
  const b = new Float32Array([1, 0, 1, 0, 1, 1]);
  const c = new Float32Array([10, 20, 30, 40]);
  sgemm(false, true, 2, 2, 3, 1, a, 4, b, 3, 1, c, 2);
  // Row 1: [1+3, 2+3] = [4, 5]; row 2: [4+6, 5+6] = [10, 11]; plus C.
  assert.deepEqual([...c], [14, 25, 40, 51]);
  assert.throws(() => sgemm(false, false, 2, 2, 2, 1, a, 2, b, 2, 0, new Float32Array(3), 2), {
    message: "sgemm: arrays must hold their matrices (A 4, B 4, C 4 elements for M 2, N 2, " +
      "K 2), received 8, 6 and 3",
  });
});

for (const batch of [1, 20]) {
  Deno.test(`BLAS kernels equal the wasm kernels on LeNet's shapes at batch ${batch}`, async () => {
    for (const [i, call] of _lenetCalls(batch).entries()) await _check(call, 100 + i, false);
  });
}

Deno.test("BLAS kernels equal the wasm kernels at batch 128 (slices of im2col)", async () => {
  // conv1's cols at batch 128 is 73,728 × 25 floats, under the 4 Mi limit; batch 240 of
  // conv2 (15,360 × 500) is over it, so it runs in two slices.
  const calls = [
    ..._lenetCalls(128).filter((c) => c.kernel.startsWith("Conv2D")),
    {
      kernel: "Conv2DBackpropFilter",
      inputs: { x: [240, 12, 12, 20], dy: [240, 8, 8, 50] },
      attrs: { ..._CONV, filterShape: [5, 5, 20, 50] },
    },
    {
      kernel: "Conv2DBackpropInput",
      inputs: { dy: [240, 8, 8, 50], filter: [5, 5, 20, 50] },
      attrs: { ..._CONV, inputShape: [240, 12, 12, 20] },
    },
  ];
  for (const [i, call] of calls.entries()) await _check(call, 200 + i, false);
});

Deno.test("BLAS convolutions equal cpu on 52 odd shapes", async () => {
  for (const [i, call] of _oddConvCalls(20251125).entries()) await _check(call, 300 + i, true);
});

Deno.test("BLAS products equal cpu over transposes and batch layouts", async () => {
  for (const [i, call] of _oddMatMulCalls(7).entries()) await _check(call, 400 + i, true);
});

Deno.test("BLAS fused products and convolutions equal cpu for every activation", async () => {
  for (const [i, call] of _fusedCalls().entries()) await _check(call, 500 + i, true);
});

Deno.test("what BLAS does not handle goes to the wasm kernel: empty, NCHW", async () => {
  await initBackend("wasm");
  const empty = tf.matMul(tf.zeros([0, 3]), tf.zeros([3, 2]));
  assert.deepEqual(empty.shape, [0, 2]);
  // wasm's Conv2D rejects NCHW itself; the BLAS kernel must leave that error to it.
  assert.throws(() =>
    tf.engine().runKernel("Conv2D", { x: tf.zeros([1, 1, 3, 3]), filter: tf.zeros([2, 2, 1, 1]) }, {
      strides: 1,
      pad: "valid",
      dataFormat: "NCHW",
      dilations: 1,
    })
  );
  tf.dispose([empty]);
});

Deno.test("BLAS kernels keep tensors, bytes and backend buffers flat", async () => {
  await initBackend("wasm");
  const x = tf.randomUniform([4, 12, 12, 20], -1, 1, "float32", 1) as tf.Tensor4D;
  const w = tf.randomUniform([5, 5, 20, 50], -1, 1, "float32", 2) as tf.Tensor4D;
  const bias = tf.randomUniform([50], -1, 1, "float32", 3) as tf.Tensor1D;
  const d = tf.randomUniform([4, 30], -1, 1, "float32", 4) as tf.Tensor2D;
  const v = tf.randomUniform([30, 50], -1, 1, "float32", 5) as tf.Tensor2D;
  const step = async () => {
    const [dx, dw] = tf.grads((x: tf.Tensor, w: tf.Tensor) =>
      tf.fused.conv2d({
        x: x as tf.Tensor4D,
        filter: w as tf.Tensor4D,
        strides: 1,
        pad: "valid",
        bias,
        activation: "relu",
      }).sum()
    )([x, w]);
    const [da, dv] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
      tf.fused.matMul({ a: a as tf.Tensor2D, b: b as tf.Tensor2D, bias, activation: "elu" }).sum()
    )([d, v]);
    await Promise.all([dx, dw, da, dv].map((t) => t.data()));
    tf.dispose([dx, dw, da, dv]);
  };
  await step(); // warm-up: tfjs caches a few scalars on first use
  const before = memorySnapshot();
  for (let i = 0; i < 10; i++) await step();
  assert.deepEqual(memorySnapshot(), before);
  tf.dispose([x, w, bias, d, v]);
});

/** Gradients of LeNet's loss on 8 random images, with BLAS on or off, every trainable weight. */
async function _leNetGradients(blas: boolean): Promise<Float32Array[]> {
  await initBackend("wasm");
  const previous = setBlasEnabled(blas);
  try {
    const model = createLeNet({ seed: 5 });
    const random = createRng(11);
    const images = tf.tensor4d(
      uniform(8 * 28 * 28, random).map((v) => (v + 1) / 2),
      [8, 28, 28, 1],
    );
    const labels = tf.oneHot(tf.tensor1d([0, 1, 2, 3, 4, 5, 6, 7], "int32"), 10);
    const trainable = model.trainableWeights.map((w) => w.read() as tf.Variable);
    const { value, grads } = tf.variableGrads(
      () =>
        tf.losses.softmaxCrossEntropy(
          labels,
          model.apply(images, { training: true }) as tf.Tensor,
        ) as tf.Scalar,
      trainable,
    );
    const result = await Promise.all(
      trainable.map((v) => grads[v.name].data() as Promise<Float32Array>),
    );
    tf.dispose([value, images, labels, ...Object.values(grads)]);
    model.dispose();
    return result;
  } finally {
    setBlasEnabled(previous);
  }
}

Deno.test("LeNet's full gradient with BLAS equals the wasm kernels' within 1e-4 per tensor", async () => {
  const on = await _leNetGradients(true);
  const off = await _leNetGradients(false);
  assert.equal(on.length, 8); // kernel and bias of 2 conv and 2 dense layers
  for (const [i, g] of on.entries()) {
    // Relative L2 error of one weight tensor; tests/conv2d_backprop_filter_test.ts allows
    // 1e-3 between wasm and cpu, and the two float32 paths here differ only in summation order.
    let diff = 0, norm = 0;
    for (let j = 0; j < g.length; j++) {
      diff += (g[j] - off[i][j]) ** 2;
      norm += off[i][j] ** 2;
    }
    const error = Math.sqrt(diff / norm);
    assert.ok(error <= 1e-4, `weight ${i}: relative error ${error} > 1e-4`);
  }
});

/** Runs a small check in a child Deno with `env` and `permissions`; returns its last line. */
async function _child(env: Record<string, string>, permissions: string[]): Promise<string> {
  const code = `
    import * as tf from "@tensorflow/tfjs";
    import { initBackend } from "${new URL("../lib/backend.ts", import.meta.url)}";
    import { blasInfo } from "${new URL("../lib/kernels/blas.ts", import.meta.url)}";
    await initBackend("wasm");
    const x = tf.tensor4d([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 3, 3, 1]);
    const y = tf.conv2d(x, tf.ones([2, 2, 1, 1]), 1, "valid");
    const p = tf.matMul(tf.tensor2d([[1, 2], [3, 4]]), tf.tensor2d([[1, 0], [0, 1]]), true, false);
    console.log(JSON.stringify({ info: blasInfo(), conv: [...await y.data()], mm: await p.array() }));
  `;
  // `deno run -` reads the module from stdin (`deno eval` would grant every permission).
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...permissions, "-"],
    env,
    cwd: new URL("..", import.meta.url).pathname,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(code));
  await writer.close();
  const output = await child.output();
  const stderr = new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 0, `child failed: ${stderr}`);
  const lines = new TextDecoder().decode(output.stdout).trim().split("\n");
  return lines[lines.length - 1];
}

/** What every child must compute, with or without BLAS (worked out by hand). */
const _CHILD_RESULTS = { conv: [12, 16, 24, 28], mm: [[1, 3], [2, 4]] };

Deno.test("BNLAB_BLAS=off runs the wasm kernels and says why", async () => {
  const result = JSON.parse(await _child({ BNLAB_BLAS: "off" }, ["--allow-all"]));
  assert.deepEqual(result.info, {
    enabled: false,
    library: null,
    reason: "switched off by BNLAB_BLAS=off",
    slices: 1,
    sliceThreads: 1,
    openblasOrder: false,
  });
  assert.deepEqual({ conv: result.conv, mm: result.mm }, _CHILD_RESULTS);
});

Deno.test("a missing library falls back silently to the wasm kernels", async () => {
  const missing = "/nonexistent/libopenblas.so.0";
  const result = JSON.parse(await _child({ BNLAB_BLAS: missing }, ["--allow-all"]));
  assert.equal(result.info.enabled, false);
  assert.equal(result.info.library, null);
  assert.match(result.info.reason, /^no BLAS library could be loaded: \/nonexistent\/libopenblas/);
  assert.deepEqual({ conv: result.conv, mm: result.mm }, _CHILD_RESULTS);
});

Deno.test("without --allow-ffi BLAS is off, without a prompt", async () => {
  const result = JSON.parse(
    await _child({}, ["--allow-read", "--allow-env", "--allow-sys", "--no-prompt"]),
  );
  assert.deepEqual(result.info, {
    enabled: false,
    library: null,
    reason: "no FFI permission (run deno with --allow-ffi)",
    slices: 1,
    sliceThreads: 1,
    openblasOrder: false,
  });
  assert.deepEqual({ conv: result.conv, mm: result.mm }, _CHILD_RESULTS);
});

Deno.test("BNLAB_BLAS=<path> loads that library", async () => {
  try {
    Deno.statSync(_PTHREAD);
  } catch {
    return; // not installed here
  }
  const result = JSON.parse(await _child({ BNLAB_BLAS: _PTHREAD }, ["--allow-all"]));
  assert.equal(result.info.enabled, true);
  assert.equal(result.info.library, _PTHREAD);
  assert.deepEqual({ conv: result.conv, mm: result.mm }, _CHILD_RESULTS);
});
