/**
 * The named-kernel contract (lib/named_kernels.ts) and the kernels' one door
 * (installKernels, lib/kernels/mod.ts): a layer runs a named kernel only when one is registered
 * for the active backend and takes the case, and falls back to its tfjs ops otherwise, with
 * the same result.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { installKernels, KERNEL_TABLE } from "../lib/kernels/mod.ts";
import { acceptsKernel, BATCH_NORM_FORWARD, type NamedKernelConfig } from "../lib/named_kernels.ts";
import { namedBatchNormTraining } from "../lib/norms/batch_norm_kernels.ts";
import { batchNormTraining } from "../lib/norms/batch_norm_ops.ts";

Deno.test("acceptsKernel: unregistered, registered, and declining kernels", async () => {
  await tf.setBackend("cpu");
  const name = "BnlabTestKernel";
  const x = tf.zeros([2, 3]);
  assert.equal(acceptsKernel(name, { inputs: { x } }), false);
  const seen: unknown[] = [];
  let accept = true;
  const config: NamedKernelConfig = {
    kernelName: name,
    backendName: "cpu",
    kernelFunc: () => ({ dataId: {}, shape: [], dtype: "float32" }),
    accepts: (inputs, attrs) => {
      seen.push([inputs.x.shape, attrs.axes]);
      return accept;
    },
  };
  tf.registerKernel(config);
  try {
    assert.equal(acceptsKernel(name, { inputs: { x }, attrs: { axes: [0] } }), true);
    accept = false;
    assert.equal(acceptsKernel(name, { inputs: { x }, attrs: { axes: [0] } }), false);
    assert.deepEqual(seen, [[[2, 3], [0]], [[2, 3], [0]]]);
  } finally {
    tf.unregisterKernel(name, "cpu");
    x.dispose();
  }
});

Deno.test("a declining batch-norm kernel leaves batchNormTraining to its tfjs ops", async () => {
  await tf.setBackend("cpu");
  const x = tf.tensor2d([[1, 2], [3, 5], [4, 9]]);
  const options = { axes: [0], epsilon: 1e-3 };
  const reference = batchNormTraining(x, options);
  tf.registerKernel({
    kernelName: BATCH_NORM_FORWARD,
    backendName: "cpu",
    kernelFunc: () => {
      throw new Error("declined kernels must not run");
    },
    accepts: () => false,
  } as NamedKernelConfig);
  try {
    const before = tf.memory().numTensors;
    assert.equal(namedBatchNormTraining(x, options), null);
    assert.equal(tf.memory().numTensors, before);
    const result = batchNormTraining(x, options);
    assert.deepEqual(await result.y.array(), await reference.y.array());
    tf.dispose([result.y, result.mean, result.variance]);
  } finally {
    tf.unregisterKernel(BATCH_NORM_FORWARD, "cpu");
    tf.dispose([x, reference.y, reference.mean, reference.variance]);
  }
});

Deno.test("installKernels installs the table's cpu entries once and says so", () => {
  const first = installKernels({ backend: "cpu" });
  const second = installKernels({ backend: "cpu" });
  assert.deepEqual(second, first);
  assert.deepEqual(first.kernels, ["BnlabRunningAverage"]);
  assert.deepEqual(first.replaced, []);
  assert.equal(first.blas, undefined);
  const gradients = KERNEL_TABLE.flatMap((e) => e.kind === "gradient" ? [e.kernelName] : []);
  assert.deepEqual(first.gradients, gradients);
});
