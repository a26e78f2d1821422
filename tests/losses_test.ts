/**
 * lib/train/losses.ts' softmax cross-entropy against tfjs's `tf.losses.softmaxCrossEntropy`:
 * the value and both gradients the same floats (`Object.is`) on wasm, where it runs as one
 * kernel forward and one backward (lib/kernels/softmax_cross_entropy.ts), and on cpu, where it
 * is tfjs's op; higher-order gradients through tfjs's ops; memory flat.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { type BackendName, initBackend } from "../lib/backend.ts";
import { computeLoss, softmaxCrossEntropy } from "../lib/train/losses.ts";
import {
  SOFTMAX_CROSS_ENTROPY,
  SOFTMAX_CROSS_ENTROPY_GRAD,
} from "../lib/kernels/softmax_cross_entropy.ts";
import { nativeKernels, setNativeEnabled } from "../lib/kernels/native_library.ts";
import { floatOffset, heapFloats, type WasmBackend } from "../lib/kernels/wasm_kernel.ts";
import { createRng } from "../lib/data/random.ts";
import { assertMemoryFlat, assertSameValues } from "./_kernel_test_utils.ts";

/** [label kind, batch, classes, logit scale, with NaN and ±∞ among the logits]. */
const _CASES: ["one-hot" | "int32" | "soft" | "signed", number, number, number, boolean][] = [
  ["one-hot", 20, 10, 3, false], // a LeNet batch
  ["int32", 20, 10, 3, false], // tf.oneHot's labels
  ["one-hot", 1, 10, 3, false], // a batch of one
  ["soft", 7, 5, 3, false],
  ["one-hot", 13, 10, 90, false], // exp(x − max) under- and overflowing float32
  ["one-hot", 6, 4, 3, true],
  ["signed", 9, 6, 0.5, false], // labels of both signs and ±0: products and costs of ±0
  ["soft", 64, 10, 20, true],
  ["soft", 3, 1, 3, false], // one class
];

/** Logits and labels of a case. */
function _inputs(
  [kind, batch, classes, scale, specials]: (typeof _CASES)[number],
  seed: number,
): { logits: tf.Tensor2D; labels: tf.Tensor2D } {
  const random = createRng(seed);
  const special = [NaN, Infinity, -Infinity, 0, -0];
  const values = Float32Array.from(
    { length: batch * classes },
    (_, i) =>
      specials && (i === 0 || random() < 0.1)
        ? special[Math.floor(random() * special.length)]
        : scale * (2 * random() - 1),
  );
  const logits = tf.tensor2d(values, [batch, classes]);
  const classOf = Array.from({ length: batch }, () => Math.floor(random() * classes));
  const signed = [-1, -0, 0, 0.5, 1];
  const labels = kind === "soft"
    ? tf.tensor2d(Float32Array.from({ length: batch * classes }, () => random()), [batch, classes])
    : kind === "signed"
    ? tf.tensor2d(
      Float32Array.from({ length: batch * classes }, () => signed[Math.floor(random() * 5)]),
      [batch, classes],
    )
    : kind === "int32"
    ? tf.oneHot(tf.tensor1d(classOf, "int32"), classes) as tf.Tensor2D
    : tf.tidy(() =>
      tf.cast(tf.oneHot(tf.tensor1d(classOf, "int32"), classes), "float32")
    ) as tf.Tensor2D;
  return { logits, labels };
}

/** The loss and its gradients with respect to labels and logits, read and disposed. */
async function _lossAndGradients(
  loss: (logits: tf.Tensor, labels: tf.Tensor) => tf.Scalar,
  logits: tf.Tensor,
  labels: tf.Tensor,
): Promise<Float32Array[]> {
  // With respect to labels and logits; int32 labels have no gradient.
  const { value, grads } = labels.dtype === "float32"
    ? tf.valueAndGrads((y: tf.Tensor, z: tf.Tensor) => loss(z, y))([labels, logits])
    : (({ value, grad }) => ({ value, grads: [grad] }))(
      tf.valueAndGrad((z: tf.Tensor) => loss(z, labels))(logits),
    );
  const out = await Promise.all([value, ...grads].map((t) => t.data() as Promise<Float32Array>));
  tf.dispose([value, ...grads]);
  return out;
}

const _tfjs = (logits: tf.Tensor, labels: tf.Tensor) =>
  tf.losses.softmaxCrossEntropy(labels, logits) as tf.Scalar;

/** Where the loss runs: wasm with the native kernels (C) or without (wasm kernels), or cpu. */
const _ROUTES: [BackendName, boolean][] = [["wasm", true], ["wasm", false], ["cpu", false]];

for (const [backend, native] of _ROUTES) {
  const route = backend === "wasm" ? `wasm, ${native ? "in C" : "wasm kernels"}` : backend;
  Deno.test(`softmax cross-entropy: tfjs's value and gradients (${route})`, async () => {
    await initBackend(backend);
    const previous = setNativeEnabled(native);
    if (native) assert.ok(nativeKernels() !== null, "the native kernels are built and loaded");
    try {
      await _compareWithTfjs(backend);
    } finally {
      setNativeEnabled(previous);
    }
  });
}

/** Our loss against tfjs's on every case, on the backend set up. */
async function _compareWithTfjs(backend: BackendName) {
  for (const [i, c] of _CASES.entries()) {
    const { logits, labels } = _inputs(c, 10 + i);
    let ours: Float32Array[] = [];
    const profile = await tf.profile(async () => {
      ours = await _lossAndGradients(softmaxCrossEntropy, logits, labels);
    });
    const theirs = await _lossAndGradients(_tfjs, logits, labels);
    for (const [k, values] of ours.entries()) {
      assertSameValues(values, theirs[k], `${c}: ${["loss", "dlabels", "dlogits"][k]}`);
    }
    const calls = (name: string) => profile.kernels.filter((k) => k.name === name).length;
    const fused = backend === "wasm" ? 1 : 0;
    assert.equal(calls(SOFTMAX_CROSS_ENTROPY), fused, `${c}`);
    assert.equal(calls(SOFTMAX_CROSS_ENTROPY_GRAD), fused, `${c}`);
    // computeLoss("xent") is this loss.
    const viaCompute = await computeLoss("xent", logits, labels).data();
    assertSameValues(viaCompute as Float32Array, theirs[0], `${c}: computeLoss`);
    tf.dispose([logits, labels]);
  }
}

Deno.test("softmax cross-entropy: the one-kernel passes make a LeNet step's loss 2 kernel calls", async () => {
  await initBackend("wasm");
  const { logits, labels } = _inputs(_CASES[0], 3);
  const z = tf.variable(logits);
  const count = async (loss: typeof _tfjs) => {
    const profile = await tf.profile(() => {
      const { value, grads } = tf.variableGrads(() => loss(z, labels), [z]);
      tf.dispose([value, ...Object.values(grads)]);
    });
    return profile.kernels.length;
  };
  const ours = await count(softmaxCrossEntropy), theirs = await count(_tfjs);
  assert.ok(ours <= 4 && theirs >= 25, `kernel calls: ${ours} against tfjs's ${theirs}`);
  tf.dispose([logits, labels, z]);
});

Deno.test("softmax cross-entropy: a recorded gradient runs tfjs's ops, and a second order fails as tfjs's does", async () => {
  await initBackend("wasm");
  const { logits, labels } = _inputs(_CASES[3], 5);
  // The gradient of the loss's gradient with respect to its incoming gradient: recorded.
  const weights = tf.tensor(_inputs(_CASES[3], 6).logits.dataSync(), logits.shape);
  const throughDy = (loss: typeof _tfjs) =>
    tf.grad((s: tf.Tensor) =>
      tf.sum(tf.mul(tf.grads((z: tf.Tensor) => tf.mul(loss(z, labels), s))([logits])[0], weights))
    )(tf.scalar(1.5));
  const ours = throughDy(softmaxCrossEntropy), theirs = throughDy(_tfjs);
  assertSameValues(await ours.data() as Float32Array, await theirs.data() as Float32Array, "d/ds");
  // tfjs's custom gradient keeps its saved tensors off the tape: d²/dz² cannot be taken, by
  // either.
  const second = (loss: typeof _tfjs) => () =>
    tf.grad((z: tf.Tensor) => tf.sum(tf.square(tf.grad((u: tf.Tensor) => loss(u, labels))(z))))(
      logits,
    );
  assert.throws(second(_tfjs), /Cannot compute gradient/);
  assert.throws(second(softmaxCrossEntropy), /Cannot compute gradient/);
  tf.dispose([logits, labels, weights, ours, theirs]);
});

Deno.test("softmax cross-entropy: the one-kernel passes keep memory flat", async () => {
  await initBackend("wasm");
  for (const c of [_CASES[0], _CASES[1]]) {
    const { logits, labels } = _inputs(c, 7);
    await assertMemoryFlat(() => {
      const { value, grads } = tf.valueAndGrads((z: tf.Tensor) => softmaxCrossEntropy(z, labels))([
        logits,
      ]);
      return [value, ...grads];
    }, 3);
    tf.dispose([logits, labels]);
  }
});

/**
 * Compares the native expf (op 0) or logf (op 1) of the loss kernels with tfjs's wasm `Exp` or
 * `Log` on float32 inputs given by their bit patterns: `count` patterns from `start` in steps
 * of `stride` (modulo 2^32). Returns how many differ (every NaN counts as the same).
 */
function _expLogMismatches(op: 0 | 1, start: number, count: number, stride: number): number {
  const native = nativeKernels();
  assert.ok(native !== null, "the native kernels are built and loaded");
  const bits = Uint32Array.from({ length: count }, (_, i) => (start + i * stride) >>> 0);
  const x = tf.tensor1d(new Float32Array(bits.buffer));
  const theirs = op === 0 ? tf.exp(x) : tf.log(x);
  const ours = tf.zerosLike(x);
  const backend = tf.backend() as unknown as WasmBackend;
  native.bnlab_exp_log(
    heapFloats(backend, [x]),
    op,
    floatOffset(backend, x),
    floatOffset(backend, ours),
    count,
  );
  const [a, b] = [ours.dataSync(), theirs.dataSync()];
  tf.dispose([x, ours, theirs]);
  let differ = 0;
  for (let i = 0; i < count; i++) if (!Object.is(a[i], b[i])) differ++;
  return differ;
}

Deno.test("softmax cross-entropy: expf and logf in C give tfjs's wasm Exp's and Log's floats", async () => {
  await initBackend("wasm");
  for (const op of [0, 1] as const) {
    // Every 4093rd float32 bit pattern: every exponent of both signs, NaN and ±∞.
    assert.equal(_expLogMismatches(op, 0, Math.ceil(2 ** 32 / 4093), 4093), 0, `op ${op}`);
  }
  // Every float near exp's cutoffs (88.72, −103.97, where it turns subnormal), near 0 and −1;
  // near log's 1, its table's edge (0x3f330000) and the subnormals.
  const near: [0 | 1, number][] = [
    [0, 0x42b17218],
    [0, 0xc2cff1b5],
    [0, 0xc2aeac50],
    [0, 0x00000000],
    [0, 0x80000000],
    [0, 0xbf800000],
    [1, 0x3f800000],
    [1, 0x3f330000],
    [1, 0x00800000],
  ];
  for (const [op, center] of near) {
    const start = (center - (1 << 17)) >>> 0;
    assert.equal(_expLogMismatches(op, start, 1 << 18, 1), 0, `op ${op} ${center.toString(16)}`);
  }
});

Deno.test({
  name: "softmax cross-entropy: expf and logf in C give tfjs's bits on every float32 input " +
    "(BNLAB_TEST_EVERY_FLOAT=1)",
  ignore: Deno.env.get("BNLAB_TEST_EVERY_FLOAT") !== "1",
  fn: async () => {
    await initBackend("wasm");
    const chunk = 1 << 22;
    for (const op of [0, 1] as const) {
      let differ = 0;
      for (let start = 0; start < 2 ** 32; start += chunk) {
        differ += _expLogMismatches(op, start, chunk, 1);
      }
      assert.equal(differ, 0, `op ${op}`);
    }
  },
});
