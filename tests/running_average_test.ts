/**
 * Batch norm's running-average kernel (lib/kernels/running_average.ts) against the tfjs ops it
 * replaces — the same floats, by `Object.is` — on cpu and wasm, and the layer's running
 * statistics with the kernel and with the ops.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { type BackendName, initBackend } from "../lib/backend.ts";
import { RUNNING_AVERAGE } from "../lib/kernels/running_average.ts";
import { runningAverage } from "../lib/norms/batch_norm_kernels.ts";
import { batchNorm } from "../lib/norms/batch_norm.ts";
import { createRng } from "../lib/data/random.ts";
import { assertSameValues } from "./_kernel_test_utils.ts";

/** Runs `body` with the kernel unregistered for `backend`: runningAverage takes tfjs ops. */
async function _withoutKernel<T>(backend: BackendName, body: () => Promise<T>): Promise<T> {
  const kernel = tf.getKernel(RUNNING_AVERAGE, backend);
  assert.ok(kernel !== undefined, `${RUNNING_AVERAGE} not registered for ${backend}`);
  tf.unregisterKernel(RUNNING_AVERAGE, backend);
  try {
    return await body();
  } finally {
    tf.registerKernel(kernel);
  }
}

function _values(size: number, seed: number): Float32Array {
  const random = createRng(seed);
  const special = [0, -0, Infinity, NaN, 1e-40, 3e38];
  return Float32Array.from(
    { length: size },
    () => random() < 0.1 ? special[Math.floor(random() * special.length)] : 10 * random() - 5,
  );
}

for (const backend of ["cpu", "wasm"] as BackendName[]) {
  Deno.test(`the running-average kernel gives the floats of tfjs's ops (${backend})`, async () => {
    await initBackend(backend);
    const running = tf.tensor1d(_values(500, 1));
    const value = tf.tensor(_values(500, 2), [1, 1, 1, 500]);
    // Keras 0.99, PyTorch 0.1 (keep 1 − 0.1), the report's 0.1, with and without m/(m − 1).
    for (const keep of [0.99, 1 - 0.1, 0.1, 0, 1]) {
      for (const factor of [null, 11520 / 11519, 20 / 19]) {
        const run = async () => {
          const out = runningAverage(running, value, { keep, factor });
          assert.deepEqual(out.shape, running.shape);
          const data = await out.data() as Float32Array;
          out.dispose();
          return data;
        };
        const ours = await run();
        const ops = await _withoutKernel(backend, run);
        assertSameValues(ours, ops, `keep ${keep} factor ${factor}`);
      }
    }
    tf.dispose([running, value]);
  });
}

Deno.test("the running-average kernel rejects mismatched inputs", async () => {
  await initBackend("wasm");
  const running = tf.zeros([3]);
  const attrs = { keep: 0.9, complement: 0.1, factor: 1 };
  assert.throws(
    () => tf.engine().runKernel(RUNNING_AVERAGE, { running, value: tf.zeros([4]) }, attrs),
    { message: /expected a value with 3 elements \(running's shape \[3\]\), received shape \[4\]/ },
  );
  assert.throws(
    () => tf.engine().runKernel(RUNNING_AVERAGE, { running, value: tf.zeros([3], "int32") }, attrs),
    { message: /expected float32 running and value, received float32 and int32/ },
  );
});

Deno.test("BatchNorm's running statistics are those of the ops path (wasm)", async () => {
  await initBackend("wasm");
  const x = tf.tensor4d(_values(8 * 5 * 5 * 6, 3).map((v) => Number.isFinite(v) ? v : 1), [
    8,
    5,
    5,
    6,
  ]);
  const options = [
    {},
    { momentum: 0.1, momentumConvention: "pytorch" as const, runningVariance: "unbiased" as const },
  ];
  for (const config of options) {
    const run = async () => {
      const layer = batchNorm(config);
      for (let i = 0; i < 3; i++) {
        tf.tidy(() => {
          layer.apply(tf.mul(x, i + 1), { training: true });
        });
      }
      const weights = await Promise.all(layer.getWeights().map((w) => w.data()));
      layer.dispose();
      return weights as Float32Array[];
    };
    const ours = await run();
    const ops = await _withoutKernel("wasm", run);
    for (const [i, w] of ours.entries()) {
      assertSameValues(w, ops[i], `${JSON.stringify(config)} ${i}`);
    }
  }
  x.dispose();
});
