/**
 * Run by tests/wasm_threads_test.ts in a process of its own (tfjs starts wasm once per
 * process): starts wasm with the thread count of its first argument, computes a conv2d, a
 * matmul and a whole LeNet gradient (with tfjs's batch norm), and prints them as JSON with
 * the backend info and what a second `initBackend` with another thread count says.
 *
 * ```sh
 * deno run --allow-all tests/wasm_threads_probe.ts 2
 * ```
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backend.ts";
import { createLeNet } from "../lib/models/lenet.ts";

const threads = Number(Deno.args[0]);
const info = await initBackend("wasm", { threads });
const again = await initBackend("wasm");

let mismatch: string | null = null;
try {
  await initBackend("wasm", { threads: threads === 1 ? 2 : 1 });
} catch (error) {
  mismatch = (error as Error).message;
}

const x = tf.randomNormal([8, 28, 28, 3], 0, 1, "float32", 1) as tf.Tensor4D;
const w = tf.randomNormal([5, 5, 3, 16], 0, 1, "float32", 2) as tf.Tensor4D;
const conv = tf.conv2d(x, w, 1, "same");
const a = tf.randomNormal([300, 257], 0, 1, "float32", 3) as tf.Tensor2D;
const b = tf.randomNormal([257, 129], 0, 1, "float32", 4) as tf.Tensor2D;
const matmul = tf.matMul(a, b);

const model = createLeNet({ seed: 1, normalization: "tfjs" });
const images = tf.randomUniform([16, 28, 28, 1], 0, 1, "float32", 5);
const labels = tf.oneHot(tf.randomUniform([16], 0, 10, "int32", 6) as tf.Tensor1D, 10);
const { value, grads } = tf.variableGrads(() => {
  const logits = model.apply(images, { training: true }) as tf.Tensor;
  return tf.losses.softmaxCrossEntropy(labels, logits) as tf.Scalar;
});
const names = Object.keys(grads).sort();

console.log(JSON.stringify({
  info,
  again,
  mismatch,
  conv: [...await conv.data()],
  matmul: [...await matmul.data()],
  loss: (await value.data())[0],
  grads: Object.fromEntries(
    await Promise.all(names.map(async (n) => [n, [...await grads[n].data()]] as const)),
  ),
}));
// No Deno.exit: the process must end by itself (idle pthread workers keep nothing alive).
