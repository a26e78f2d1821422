import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { backendInfo, type BackendName, initBackend } from "../lib/backend.ts";

// The installed packages, pinned in deno.json.
const _TFJS_VERSION = "4.22.0";

Deno.test("backendInfo() before initBackend says what to call", () => {
  assert.throws(() => backendInfo(), {
    message: "backendInfo: needs a backend made active by initBackend, received active backend " +
      'null; call initBackend("wasm" | "cpu" | "webgpu") first',
  });
});

Deno.test("initBackend() starts wasm with SIMD and one thread (Deno counts as Node.js)", async () => {
  const info = await initBackend();
  const { blas, native, ...rest } = info;
  assert.deepEqual(rest, { name: "wasm", simd: true, threads: 1, tfjsVersion: _TFJS_VERSION });
  // setup.sh installs Debian's OpenBLAS and builds the native kernels; the wasm kernels use
  // both through FFI (OpenBLAS set to one thread of its own).
  assert.deepEqual([blas?.enabled, blas?.threads, native?.enabled], [true, 1, true]);
  assert.match(blas?.library ?? "", /libopenblas\.so/);
  assert.equal(tf.getBackend(), "wasm");
  assert.deepEqual(backendInfo(), info);
});

Deno.test("initBackend('wasm') registers Conv2DBackpropFilter so conv2d trains", async () => {
  await initBackend("wasm");
  assert.ok(tf.getKernel("Conv2DBackpropFilter", "wasm") !== undefined);
  // d/dw Σ conv2d(ones 3×3, w 2×2, valid) = 4 for every tap: each sees four ones.
  const x = tf.ones([1, 3, 3, 1]) as tf.Tensor4D;
  const loss = (w: tf.Tensor) => tf.conv2d(x, w as tf.Tensor4D, 1, "valid").sum();
  const dw = tf.tidy(() => tf.grad(loss)(tf.zeros([2, 2, 1, 1])));
  assert.deepEqual([...await dw.data()], [4, 4, 4, 4]);
  tf.dispose([x, dw]);
});

Deno.test("initBackend is idempotent and switches between backends", async () => {
  const first = await initBackend("wasm");
  const again = await Promise.all([initBackend("wasm"), initBackend("wasm")]);
  assert.deepEqual(again, [first, first]);

  const cpu = await initBackend("cpu");
  assert.deepEqual(cpu, { name: "cpu", simd: false, threads: 1, tfjsVersion: _TFJS_VERSION });
  assert.equal(tf.getBackend(), "cpu");
  assert.deepEqual(backendInfo(), cpu);
  const sum = tf.tidy(() => tf.add(tf.tensor1d([1, 2]), tf.tensor1d([3, 4])));
  assert.deepEqual([...await sum.data()], [4, 6]);
  sum.dispose();

  assert.deepEqual(await initBackend("wasm"), first);
  assert.equal(tf.getBackend(), "wasm");
  assert.deepEqual(backendInfo(), first);
});

Deno.test("initBackend rejects an unknown backend name", async () => {
  await assert.rejects(() => initBackend("foo" as BackendName), {
    message: 'initBackend: backend must be one of wasm, cpu, webgpu, received "foo"',
  });
});

Deno.test("initBackend('webgpu') says so when navigator.gpu has no adapter", async () => {
  // Stand in for a machine without a GPU (this one may have a software adapter).
  Object.defineProperty(navigator, "gpu", {
    value: { requestAdapter: () => Promise.resolve(null) },
    configurable: true,
  });
  try {
    await assert.rejects(() => initBackend("webgpu"), {
      message: 'initBackend: backend "webgpu" needs a WebGPU adapter, received null from ' +
        'navigator.gpu.requestAdapter(); use "wasm" or "cpu" on this machine',
    });
  } finally {
    delete (navigator as { gpu?: unknown }).gpu;
  }
  assert.notEqual(tf.getBackend(), "webgpu");
});

Deno.test("initBackend('webgpu') starts webgpu and records its adapter", async () => {
  // tfjs's webgpu backend asks for a high-performance adapter (WEBGPU_USE_LOW_POWER_GPU is off).
  const adapter = await navigator.gpu?.requestAdapter({ powerPreference: "high-performance" });
  if (adapter == null) return; // covered by the test above
  const info = await initBackend("webgpu");
  const { vendor, architecture, device, description, isFallbackAdapter } = adapter.info;
  assert.deepEqual(info, {
    name: "webgpu",
    simd: false,
    threads: 1,
    tfjsVersion: _TFJS_VERSION,
    adapter: { vendor, architecture, device, description, isFallbackAdapter },
  });
  assert.deepEqual(backendInfo(), info);
  // Provenance is written as JSON (config.json): the adapter must survive it.
  assert.deepEqual(JSON.parse(JSON.stringify(info)), info);
  const square = tf.tidy(() => tf.square(tf.tensor1d([1, 2, 3])));
  assert.deepEqual([...await square.data()], [1, 4, 9]);
  square.dispose();
  await initBackend("wasm"); // leave the default behind for any later test
});
