/**
 * Softmax cross-entropy and its gradient as one kernel each on wasm
 * (`SOFTMAX_CROSS_ENTROPY`, `SOFTMAX_CROSS_ENTROPY_GRAD` of lib/named_kernels.ts), for the
 * training loss (lib/train/losses.ts).
 *
 * tfjs 4.22's `tf.losses.softmaxCrossEntropy` is a log-sum-exp, a difference, a product and
 * three sums through tfjs's engine: 17 kernel calls forward and 13 backward for a [20, 10]
 * batch, each with its tensors, scopes and tape bookkeeping, for 200 numbers. With the native
 * kernels loaded, each pass is one call of C (`bnlab_softmax_xent` and its `_grad` in
 * native/bnlab_kernels.c) that rounds where tfjs's kernels round, with the exp and log of
 * tfjs's wasm binary (its C library's algorithms and tables). Without them, the kernels call
 * the wasm backend's kernels (bnlab's replacements where registered) in tfjs's order on the
 * same values, without the engine in between: tfjs's floats by construction. Either way every
 * float is tfjs's (tests/losses_test.ts compares both routes by `Object.is`, and the C exp and
 * log with tfjs's `Exp` and `Log` on a sweep of float32 inputs, or on all of them).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import {
  type NamedKernelConfig,
  SOFTMAX_CROSS_ENTROPY,
  SOFTMAX_CROSS_ENTROPY_GRAD,
} from "../named_kernels.ts";
import { nativeKernels } from "./native_library.ts";
import { floatOffset, heapFloats, type KernelArgs, type WasmBackend } from "./wasm_kernel.ts";

export { SOFTMAX_CROSS_ENTROPY, SOFTMAX_CROSS_ENTROPY_GRAD };

/** The wasm kernels of one call, run in order; the temporaries are freed at the end. */
class _Kernels {
  readonly #backend: WasmBackend;
  readonly #temporaries: tf.TensorInfo[] = [];

  constructor(backend: WasmBackend) {
    this.#backend = backend;
  }

  /** Runs the wasm kernel `name` on `inputs`; its output is freed by {@linkcode free}. */
  run(name: string, inputs: Record<string, tf.TensorInfo>, attrs: tf.NamedAttrMap = {}) {
    const output = this.keep(name, inputs, attrs);
    this.#temporaries.push(output);
    return output;
  }

  /** Runs the wasm kernel `name` on `inputs`; its output is the caller's. */
  keep(name: string, inputs: Record<string, tf.TensorInfo>, attrs: tf.NamedAttrMap = {}) {
    const config = tf.getKernel(name, "wasm");
    if (config === undefined) throw new Error(`${name}: no wasm kernel registered`);
    const backend = this.#backend as unknown as tf.KernelBackend;
    return config.kernelFunc({ inputs, attrs, backend }) as tf.TensorInfo;
  }

  /** A float32 scalar of `value` (rounded to float32), freed by {@linkcode free}. */
  scalar(value: number): tf.TensorInfo {
    const out = this.#backend.makeOutput([], "float32");
    this.#backend.typedArrayFromHeap(out)[0] = value;
    this.#temporaries.push(out);
    return out;
  }

  /** `labels` as float32: as they are, or through `Cast` (tfjs's `cast`) from int32. */
  float32(labels: tf.TensorInfo): tf.TensorInfo {
    return labels.dtype === "float32"
      ? labels
      : this.run(tf.Cast, { x: labels }, { dtype: "float32" });
  }

  /** Frees every temporary. */
  free(): void {
    for (const t of this.#temporaries) this.#backend.disposeData(t.dataId);
  }
}

/** `info` seen with another shape of the same size (tfjs's `Reshape`: the same data). */
function _as(info: tf.TensorInfo, shape: number[]): tf.TensorInfo {
  return { dataId: info.dataId, shape, dtype: info.dtype };
}

/** Whether `t` is a float32 matrix with rows and columns. */
function _matrix(t: tf.Tensor | undefined): t is tf.Tensor {
  return t != null && t.dtype === "float32" && t.rank === 2 && t.size > 0;
}

/** Whether `labels` are float32 or int32 (one-hot from `tf.oneHot`) of `like`'s shape. */
function _labels(labels: tf.Tensor | undefined, like: tf.Tensor): boolean {
  return labels != null && (labels.dtype === "float32" || labels.dtype === "int32") &&
    tf.util.arraysEqual(labels.shape, like.shape);
}

function _softmaxCrossEntropy(args: KernelArgs): tf.TensorInfo[] {
  const { labels, logits } = args.inputs as Record<string, tf.TensorInfo>;
  const [batch, classes] = logits.shape;
  const native = nativeKernels();
  if (native !== null) {
    const backend = args.backend as unknown as WasmBackend;
    const loss = backend.makeOutput([], "float32");
    const logSoftmax = backend.makeOutput(logits.shape, "float32");
    // Offsets first: reading an input's offset may move its data and grow the heap.
    const [x, y, out, cost] = [logits, labels, logSoftmax, loss].map((t) =>
      floatOffset(backend, t)
    );
    const ints = labels.dtype === "int32" ? 1 : 0;
    native.bnlab_softmax_xent(
      heapFloats(backend, [logits, labels]),
      x,
      y,
      ints,
      batch,
      classes,
      out,
      cost,
    );
    return [loss, logSoftmax];
  }
  const kernels = new _Kernels(args.backend as unknown as WasmBackend);
  try {
    // tfjs's logSumExp(logits, [1], keepDims): max, shifted, exp, sum, log, max + log.
    const max = kernels.run(tf.Max, { x: logits }, { reductionIndices: [1], keepDims: true });
    const shifted = kernels.run(tf.Sub, { a: logits, b: max });
    const exps = kernels.run(tf.Exp, { x: shifted });
    const sums = kernels.run(tf.Sum, { x: exps }, { axis: [1], keepDims: false });
    const logs = kernels.run(tf.Log, { x: sums });
    const lse = kernels.run(tf.Add, { a: _as(max, [batch]), b: logs });
    const logSoftmax = kernels.keep(tf.Sub, { a: logits, b: _as(lse, [batch, 1]) });
    // The per-example losses, −Σ logSoftmax·labels, and their sum over the batch / batch.
    const products = kernels.run(tf.Multiply, { a: logSoftmax, b: kernels.float32(labels) });
    const costs = kernels.run(tf.Neg, { x: products });
    const perExample = kernels.run(tf.Sum, { x: costs }, { axis: [1], keepDims: false });
    // tfjs sums every axis (axis null): here the one.
    const total = kernels.run(tf.Sum, { x: perExample }, { axis: [0], keepDims: false });
    const loss = kernels.keep(tf.RealDiv, { a: total, b: kernels.scalar(batch) });
    return [loss, logSoftmax];
  } finally {
    kernels.free();
  }
}

function _softmaxCrossEntropyGrad(args: KernelArgs): tf.TensorInfo[] {
  const { dy, logSoftmax } = args.inputs as Record<string, tf.TensorInfo>;
  const [batch, classes] = logSoftmax.shape;
  const native = nativeKernels();
  if (native !== null) {
    const backend = args.backend as unknown as WasmBackend;
    const labels = args.inputs.labels as tf.TensorInfo;
    const dlabels = backend.makeOutput(logSoftmax.shape, "float32");
    const dlogits = backend.makeOutput(logSoftmax.shape, "float32");
    // Offsets first: reading an input's offset may move its data and grow the heap.
    const [g, y, ls, dy_, dx] = [dy, labels, logSoftmax, dlabels, dlogits].map((t) =>
      floatOffset(backend, t)
    );
    const ints = labels.dtype === "int32" ? 1 : 0;
    native.bnlab_softmax_xent_grad(
      heapFloats(backend, [dy, labels, logSoftmax]),
      g,
      y,
      ints,
      ls,
      batch,
      classes,
      dy_,
      dx,
    );
    return [dlabels, dlogits];
  }
  const kernels = new _Kernels(args.backend as unknown as WasmBackend);
  try {
    const labels = kernels.float32(args.inputs.labels as tf.TensorInfo);
    // The gradient of the division by the batch, then of the sum over it (a copy per row).
    const perBatch = kernels.run(tf.RealDiv, { a: dy, b: kernels.scalar(batch) });
    const perExample = kernels.run(tf.Tile, { x: _as(perBatch, [1, 1]) }, { reps: [batch, 1] });
    const softmax = kernels.run(tf.Exp, { x: logSoftmax });
    const labelsMinus = kernels.run(tf.Sub, { a: labels, b: softmax });
    const softmaxMinus = kernels.run(tf.Sub, { a: softmax, b: labels });
    return [
      kernels.keep(tf.Multiply, { a: perExample, b: labelsMinus }),
      kernels.keep(tf.Multiply, { a: perExample, b: softmaxMinus }),
    ];
  } finally {
    kernels.free();
  }
}

/** The {@linkcode SOFTMAX_CROSS_ENTROPY} kernel for wasm (`initBackend("wasm")` registers it). */
export const softmaxCrossEntropyWasmConfig: NamedKernelConfig = {
  kernelName: SOFTMAX_CROSS_ENTROPY,
  backendName: "wasm",
  kernelFunc: _softmaxCrossEntropy as unknown as tf.KernelFunc,
  accepts: ({ labels, logits }) => _matrix(logits) && _labels(labels, logits),
};

/**
 * The {@linkcode SOFTMAX_CROSS_ENTROPY_GRAD} kernel for wasm (`initBackend("wasm")` registers
 * it). It declines inside a recorded backward pass (a higher-order gradient needs tfjs's
 * differentiable ops).
 */
export const softmaxCrossEntropyGradWasmConfig: NamedKernelConfig = {
  kernelName: SOFTMAX_CROSS_ENTROPY_GRAD,
  backendName: "wasm",
  kernelFunc: _softmaxCrossEntropyGrad as unknown as tf.KernelFunc,
  accepts: ({ dy, labels, logSoftmax }) =>
    tf.engine().state.gradientDepth === 0 && dy != null && dy.dtype === "float32" &&
    dy.rank === 0 && _matrix(logSoftmax) && _labels(labels, logSoftmax),
};
