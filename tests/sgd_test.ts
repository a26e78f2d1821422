/**
 * lib/train/sgd.ts against tfjs's `SGDOptimizer`: the same floats (compared by `Object.is`)
 * with the native update (wasm) and without it (cpu), a step's updates as one kernel call,
 * tfjs's update where a gradient is not float32, absent gradients skipped, and flat memory.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { type BackendName, initBackend } from "../lib/backend.ts";
import { SGD_UPDATE } from "../lib/kernels/sgd_update.ts";
import { createRng } from "../lib/data/random.ts";
import { SgdOptimizer } from "../lib/train/sgd.ts";
import { assertSameValues } from "./_kernel_test_utils.ts";

/** Random floats in [−2, 2) with ±0, ±∞ and NaN mixed in. */
function _values(size: number, seed: number): Float32Array {
  const random = createRng(seed);
  const special = [0, -0, Infinity, -Infinity, NaN];
  return Float32Array.from(
    { length: size },
    () => random() < 0.05 ? special[Math.floor(random() * 5)] : 4 * random() - 2,
  );
}

/** Three updates of two variables (one of LeNet's dense size) by `optimizer`; their values. */
async function _train(optimizer: tf.Optimizer, tag: string): Promise<Float32Array[]> {
  const shapes = [[800, 500], [10]];
  const variables = shapes.map((shape, i) =>
    tf.variable(tf.tensor(_values(tf.util.sizeFromShape(shape), i + 1), shape), true, `${tag}${i}`)
  );
  for (let step = 0; step < 3; step++) {
    const grads = variables.map((v, i) => ({
      name: v.name,
      tensor: tf.tensor(_values(v.size, 10 * step + i + 5), v.shape),
    }));
    optimizer.applyGradients(grads);
    tf.dispose(grads.map((g) => g.tensor));
  }
  const values = await Promise.all(variables.map((v) => v.data() as Promise<Float32Array>));
  tf.dispose(variables);
  optimizer.dispose();
  return values;
}

for (const backend of ["wasm", "cpu"] as BackendName[]) {
  Deno.test(`SgdOptimizer gives tfjs's SGD floats (${backend})`, async () => {
    await initBackend(backend);
    let ours: Float32Array[] = [];
    const profile = await tf.profile(async () => {
      ours = await _train(new SgdOptimizer(0.013), `ours_${backend}_`);
    });
    const theirs = await _train(tf.train.sgd(0.013), `theirs_${backend}_`);
    for (const [i, values] of ours.entries()) assertSameValues(values, theirs[i], `variable ${i}`);
    // One call a step on wasm, for both variables.
    const fused = profile.kernels.filter((k) => k.name === SGD_UPDATE).length;
    assert.equal(fused, backend === "wasm" ? 3 : 0);
  });
}

Deno.test("SgdOptimizer follows setLearningRate and counts iterations", async () => {
  await initBackend("wasm");
  const ours = new SgdOptimizer(0.5);
  ours.setLearningRate(0.25);
  const theirs = tf.train.sgd(0.5);
  theirs.setLearningRate(0.25);
  const [a, b] = [ours, theirs].map((optimizer, i) => {
    const w = tf.variable(tf.tensor1d([1, 2, 3]), true, `rate${i}`);
    optimizer.applyGradients({ [w.name]: tf.tensor1d([0.1, -4, 1e-8]) });
    return w;
  });
  assertSameValues(await a.data(), await b.data(), "after one step");
  assert.equal(ours.iterations, 1);
  assert.equal(ours.getClassName(), "SGD");
  tf.dispose([a, b]);
  ours.dispose();
  theirs.dispose();
});

Deno.test("SgdOptimizer keeps memory flat", async () => {
  await initBackend("wasm");
  const optimizer = new SgdOptimizer(0.1);
  const w = tf.variable(tf.tensor2d(_values(12, 3), [3, 4]), true, "flat");
  const g = tf.tensor2d(_values(12, 4), [3, 4]);
  optimizer.applyGradients({ flat: g });
  const before = tf.memory().numTensors;
  const bytes = tf.memory().numBytes;
  for (let i = 0; i < 3; i++) optimizer.applyGradients({ flat: g });
  assert.equal(tf.memory().numTensors, before);
  assert.equal(tf.memory().numBytes, bytes);
  tf.dispose([w, g]);
  optimizer.dispose();
});

Deno.test("SgdOptimizer skips absent gradients, and runs tfjs's update for an int32 one", async () => {
  await initBackend("wasm");
  // [gradient of a, gradient of b]: a null one in the middle of the fused call, then an int32.
  const cases: [string, (tf.Tensor | null)[], number][] = [
    ["float32", [null, tf.tensor1d([0.5, -0.25])], 1],
    ["int32", [tf.tensor1d([1, 0, -1], "int32"), null], 0],
  ];
  for (const [kind, gradients, fusedCalls] of cases) {
    const run = async (optimizer: tf.Optimizer, tag: string) => {
      const a = tf.variable(tf.tensor1d([1, 2, 3]), true, `${kind}_${tag}a`);
      const b = tf.variable(tf.tensor1d([4, 5]), true, `${kind}_${tag}b`);
      const profile = await tf.profile(() => {
        optimizer.applyGradients([
          { name: a.name, tensor: gradients[0] as tf.Tensor },
          { name: b.name, tensor: gradients[1] as tf.Tensor },
        ]);
      });
      const values = [await a.data(), await b.data()] as Float32Array[];
      tf.dispose([a, b]);
      optimizer.dispose();
      return { values, calls: profile.kernels.filter((k) => k.name === SGD_UPDATE).length };
    };
    const x = await run(new SgdOptimizer(0.5), "ours");
    const y = await run(tf.train.sgd(0.5), "theirs");
    assert.equal(x.calls, fusedCalls, kind);
    for (const [i, values] of x.values.entries()) {
      assertSameValues(values, y.values[i], `${kind}: variable ${i}`);
    }
    // The variable without a gradient is unchanged.
    const untouched = gradients[0] === null ? [1, 2, 3] : [4, 5];
    assert.deepEqual(Array.from(x.values[gradients[0] === null ? 0 : 1]), untouched, kind);
    tf.dispose(gradients.filter((g): g is tf.Tensor => g !== null));
  }
});
