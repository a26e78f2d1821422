/**
 * Element-wise kernels for tfjs's wasm backend in C (`native/bnlab_kernels.c`): `Add`,
 * `Sub`, `Multiply` and `RealDiv` of float32 tensors, tfjs's `FusedBatchNorm`, and `Relu`
 * with a one-pass ReLU gradient (`RELU_GRAD`; tfjs's is a `Step` and a `Multiply`: 0.20 →
 * 0.10 ms for ReLU and its gradient on [20, 24, 24, 20]), `Sigmoid` (XNNPACK's algorithm as
 * tfjs's binary runs it, the same bits), a one-pass sigmoid gradient (`SIGMOID_GRAD`; tfjs's
 * is a `Sub` and two `Multiply`s over the whole tensor) and a one-pass gradient of x²
 * (`SQUARE_GRAD`; tfjs's is two `Multiply`s).
 *
 * tfjs 4.22.0's wasm arithmetic is fast for operands of one shape but walks a general
 * broadcasting loop, index by index, whenever one operand has fewer elements: a conv
 * layer's bias add ([20, 24, 24, 20] + [20]) took 0.17 ms, four times a same-shape add of
 * that size (0.07 ms here), and tfjs's batch-norm gradient makes several such per-channel
 * products and differences per layer. Its `FusedBatchNorm` took 0.70 ms on [20, 24, 24, 20]
 * (0.10 ms here). Each runs as one loop over [rows, channels]:
 *
 * - one operand has the output's size (its layout is the output's), and the other has the
 *   same size, or one value per channel (its shape is […1, C] with C the output's last
 *   axis), or a single value;
 * - `FusedBatchNorm`'s mean, variance, scale and offset each have one value per channel of
 *   x's last axis, or a single value.
 *
 * The arithmetic is tfjs's: the binary ops make the one IEEE single-precision operation per
 * element tfjs's kernels make (compiled without contraction into fused multiply-adds), and
 * `FusedBatchNorm` computes β + (x − μ)·γ / √(σ² + ε) in double and rounds once, as tfjs's
 * cpu backend does; tests/elementwise_test.ts checks both give the same floats. Other cases
 * (other dtypes, other broadcasts), or the native kernels off or not built, go to the
 * kernel each replaced (the `fallback`).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { WasmKernelReplacement } from "./wasm_kernel.ts";
import { type NativeKernels, nativeKernels, requireNativeKernels } from "./native_library.ts";
import {
  floatOffset,
  heapFloats,
  type KernelArgs,
  type WasmBackend,
  wasmReplacement,
} from "./wasm_kernel.ts";

/** The binary kernels replaced, with their operation code in `bnlab_binary`. */
const _OPS: Readonly<Record<string, number>> = {
  [tf.Add]: 0,
  [tf.Sub]: 1,
  [tf.Multiply]: 2,
  [tf.RealDiv]: 3,
};

/** How `bnlab_binary` reads its operands (see the C source). */
export const BinaryLayout = {
  /** a and b have the output's size. */
  same: 0,
  /** a has the output's size; b one value per channel. */
  bChannels: 1,
  /** b has the output's size; a one value per channel. */
  aChannels: 2,
  /** a has the output's size; b a single value. */
  bScalar: 3,
  /** b has the output's size; a a single value. */
  aScalar: 4,
} as const;

/** One of {@linkcode BinaryLayout}'s values. */
export type BinaryLayout = typeof BinaryLayout[keyof typeof BinaryLayout];

/**
 * How the native binary kernel reads operands of shapes `a` and `b`, and the output's
 * [rows, channels]; null when it does not handle them (a broadcast of another kind, or an
 * empty output).
 *
 * @param a The first operand's shape.
 * @param b The second operand's shape.
 * @returns The layout with the output's rows and channels, or null.
 *
 * @example A bias add, a scalar product, and a broadcast it leaves to tfjs
 * ```ts
 * import assert from "node:assert/strict";
 * import { BinaryLayout, binaryLayout } from "./elementwise.ts";
 *
 * assert.deepEqual(binaryLayout([20, 24, 24, 20], [20]), {
 *   layout: BinaryLayout.bChannels,
 *   rows: 11520,
 *   channels: 20,
 * });
 * assert.deepEqual(binaryLayout([], [800, 500]), {
 *   layout: BinaryLayout.aScalar,
 *   rows: 400000,
 *   channels: 1,
 * });
 * assert.equal(binaryLayout([20, 10], [20, 1]), null);
 * ```
 */
export function binaryLayout(
  a: readonly number[],
  b: readonly number[],
): { layout: BinaryLayout; rows: number; channels: number } | null {
  return _layoutFor(a, b, tf.backend_util.assertAndGetBroadcastShape([...a], [...b]));
}

/** {@linkcode binaryLayout} for operands whose broadcast shape `out` is known. */
function _layoutFor(
  a: readonly number[],
  b: readonly number[],
  out: readonly number[],
): { layout: BinaryLayout; rows: number; channels: number } | null {
  const n = tf.util.sizeFromShape([...out]);
  if (n === 0) return null;
  const aSize = tf.util.sizeFromShape([...a]);
  const bSize = tf.util.sizeFromShape([...b]);
  // An operand with the output's size is laid out as the output (broadcasting it only adds
  // axes of size 1).
  if (aSize === n && bSize === n) return { layout: BinaryLayout.same, rows: n, channels: 1 };
  const channels = out[out.length - 1];
  const perChannel = (shape: readonly number[], size: number) =>
    size === channels && shape[shape.length - 1] === channels;
  if (aSize === n) {
    if (bSize === 1) return { layout: BinaryLayout.bScalar, rows: n, channels: 1 };
    if (perChannel(b, bSize)) {
      return { layout: BinaryLayout.bChannels, rows: n / channels, channels };
    }
  }
  if (bSize === n) {
    if (aSize === 1) return { layout: BinaryLayout.aScalar, rows: n, channels: 1 };
    if (perChannel(a, aSize)) {
      return { layout: BinaryLayout.aChannels, rows: n / channels, channels };
    }
  }
  return null;
}

function _binary(kernelName: string, args: KernelArgs, fallback: tf.KernelFunc): tf.TensorInfo {
  const { a, b } = args.inputs as { a?: tf.TensorInfo; b?: tf.TensorInfo };
  if (a == null || b == null) {
    throw new Error(
      `${kernelName} (wasm): inputs must be { a, b }, received { ${
        Object.keys(args.inputs).join(", ")
      } }`,
    );
  }
  const native = nativeKernels();
  if (native === null || a.dtype !== "float32" || b.dtype !== "float32") {
    return fallback(args) as tf.TensorInfo;
  }
  const shape = tf.backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
  const plan = _layoutFor(a.shape, b.shape, shape);
  if (plan === null) return fallback(args) as tf.TensorInfo;
  const backend = args.backend as unknown as WasmBackend;
  // Allocate first: growing the heap replaces its buffer.
  const out = backend.makeOutput(shape, "float32");
  const status = native.bnlab_binary(
    heapFloats(backend, [a, b]),
    _OPS[kernelName],
    plan.layout,
    floatOffset(backend, a),
    floatOffset(backend, b),
    floatOffset(backend, out),
    plan.rows,
    plan.channels,
  );
  if (status !== 0) {
    throw new Error(`${kernelName} (wasm): bnlab_binary expected to succeed, returned ${status}`);
  }
  return out;
}

/**
 * The registration record that replaces one of tfjs's wasm `Add`, `Sub`, `Multiply` or
 * `RealDiv` with the native kernel, keeping tfjs's as the fallback.
 *
 * @param original tfjs's wasm kernel, as `tf.getKernel(name, "wasm")` returns it.
 * @returns The kernel config to register in its place.
 * @throws If `original` is not one of those four wasm kernels.
 *
 * @example A bias add on the native kernel
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { initBackend } from "../backend.ts";
 *
 * await initBackend("wasm");
 * const y = tf.add(tf.ones([2, 3]), tf.tensor1d([1, 2, 3]));
 * assert.deepEqual(await y.array(), [[2, 3, 4], [2, 3, 4]]);
 * ```
 */
export function binaryWasmConfig(original: tf.KernelConfig): WasmKernelReplacement {
  return wasmReplacement(original, Object.keys(_OPS), _binary);
}

function _fusedBatchNorm(args: KernelArgs, fallback: tf.KernelFunc): tf.TensorInfo {
  const { x, mean, variance, scale, offset } = args.inputs as Record<
    string,
    tf.TensorInfo | undefined
  >;
  if (x == null || mean == null || variance == null) {
    throw new Error(
      `FusedBatchNorm (wasm): inputs must be { x, mean, variance, scale?, offset? }, ` +
        `received { ${Object.keys(args.inputs).join(", ")} }`,
    );
  }
  const native = nativeKernels();
  const size = tf.util.sizeFromShape(x.shape);
  if (native === null || x.shape.length === 0 || size === 0) return fallback(args) as tf.TensorInfo;
  const channels = x.shape[x.shape.length - 1];
  const params = [mean, variance, scale, offset];
  // Each parameter: float32, and one value per channel or a single value.
  const lengths = params.map((p) => p == null ? 1 : tf.util.sizeFromShape(p.shape));
  const handled = x.dtype === "float32" &&
    params.every((p, i) =>
      p == null || (p.dtype === "float32" && (lengths[i] === 1 || lengths[i] === channels))
    );
  if (!handled) return fallback(args) as tf.TensorInfo;
  const backend = args.backend as unknown as WasmBackend;
  const epsilon = (args.attrs as unknown as tf.FusedBatchNormAttrs).varianceEpsilon ?? 0.001;
  const y = backend.makeOutput(x.shape, "float32");
  const at = (p: tf.TensorInfo | undefined) => p == null ? -1 : floatOffset(backend, p);
  native.bnlab_fused_batch_norm(
    heapFloats(backend, [x, ...params]),
    at(x),
    at(mean),
    lengths[0],
    at(variance),
    lengths[1],
    at(scale),
    lengths[2],
    at(offset),
    lengths[3],
    at(y),
    size / channels,
    channels,
    epsilon,
  );
  return y;
}

/**
 * The registration record that replaces tfjs's wasm `FusedBatchNorm` with the native
 * kernel, keeping tfjs's as the fallback.
 *
 * @param original tfjs's wasm `FusedBatchNorm`.
 * @returns The kernel config to register in its place.
 * @throws If `original` is not wasm's `FusedBatchNorm`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { initBackend } from "../backend.ts";
 *
 * await initBackend("wasm");
 * const y = tf.batchNorm(tf.tensor2d([[1, 2], [3, 6]]), [2, 4], [1, 4], undefined, undefined, 0);
 * assert.deepEqual(await y.array(), [[-1, -1], [1, 1]]);
 * ```
 */
export function fusedBatchNormWasmConfig(original: tf.KernelConfig): WasmKernelReplacement {
  return wasmReplacement(
    original,
    [tf.FusedBatchNorm],
    (_name, args, fallback) => _fusedBatchNorm(args, fallback),
  );
}

/**
 * An element-wise float32 kernel `y = f(x)` run by a native function of `(heap, x, y, size)`;
 * tfjs's kernel (`fallback`) for other dtypes, empty tensors, or with the native kernels off.
 */
function _unaryNative(
  kernelName: string,
  args: KernelArgs,
  fallback: tf.KernelFunc,
  run: (native: NativeKernels, heap: Float32Array, x: number, y: number, size: number) => void,
): tf.TensorInfo {
  const { x } = args.inputs as { x?: tf.TensorInfo };
  if (x == null) {
    throw new Error(
      `${kernelName} (wasm): inputs must be { x }, received { ${
        Object.keys(args.inputs).join(", ")
      } }`,
    );
  }
  const native = nativeKernels();
  const size = tf.util.sizeFromShape(x.shape);
  if (native === null || x.dtype !== "float32" || size === 0) {
    return fallback(args) as tf.TensorInfo;
  }
  const backend = args.backend as unknown as WasmBackend;
  const y = backend.makeOutput(x.shape, "float32");
  run(native, heapFloats(backend, [x]), floatOffset(backend, x), floatOffset(backend, y), size);
  return y;
}

/**
 * The registration record that replaces tfjs's wasm `Relu` with the native kernel (the same
 * floats: NaN stays NaN, −0 gives 0), keeping tfjs's as the fallback (for int32, or with the
 * native kernels off).
 *
 * @param original tfjs's wasm `Relu`.
 * @returns The kernel config to register in its place.
 * @throws If `original` is not wasm's `Relu`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { initBackend } from "../backend.ts";
 *
 * await initBackend("wasm");
 * assert.deepEqual(await tf.relu(tf.tensor1d([-1, 2, NaN])).array(), [0, 2, NaN]);
 * ```
 */
export function reluWasmConfig(original: tf.KernelConfig): WasmKernelReplacement {
  return wasmReplacement(
    original,
    [tf.Relu],
    (_name, args, fallback) =>
      _unaryNative("Relu", args, fallback, (native, ...pointers) => native.bnlab_relu(...pointers)),
  );
}

/**
 * The registration record that replaces tfjs's wasm `Sigmoid` with the native kernel: the
 * same floats bit for bit (tfjs's kernel is XNNPACK's, whose float operations the C repeats
 * in order; NaN gives NaN as tfjs's does), several times faster than tfjs's on
 * [20, 24, 24, 20]. tfjs's stays the fallback (other dtypes, or the native kernels off).
 *
 * @param original tfjs's wasm `Sigmoid`.
 * @returns The kernel config to register in its place.
 * @throws If `original` is not wasm's `Sigmoid`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { initBackend } from "../backend.ts";
 *
 * await initBackend("wasm");
 * assert.deepEqual(await tf.sigmoid(tf.tensor1d([0, -Infinity, Infinity])).array(), [0.5, 0, 1]);
 * ```
 */
export function sigmoidWasmConfig(original: tf.KernelConfig): WasmKernelReplacement {
  return wasmReplacement(
    original,
    [tf.Sigmoid],
    (_name, args, fallback) =>
      _unaryNative(
        "Sigmoid",
        args,
        fallback,
        (native, ...pointers) => native.bnlab_sigmoid(...pointers),
      ),
  );
}

/**
 * ReLU's gradient as one native kernel (lib/kernels/gradients.ts uses it): { dy, x } → dx =
 * dy·Step(x), the floats of tfjs's `Step` then `Multiply` on wasm.
 */
export const RELU_GRAD = "BnlabReluGrad";

/** The {@linkcode RELU_GRAD} kernel for wasm (`initBackend("wasm")` registers it). */
export const reluGradWasmConfig: tf.KernelConfig = _gradConfig(RELU_GRAD, "x", "bnlab_relu_grad");

/**
 * The sigmoid's gradient as one native kernel (lib/kernels/gradients.ts uses it): { dy, y },
 * with y the sigmoid's output → dx = dy·(y·(1 − y)), the floats of tfjs's `Sub`, `Multiply`
 * and `Multiply` on wasm.
 */
export const SIGMOID_GRAD = "BnlabSigmoidGrad";

/** The {@linkcode SIGMOID_GRAD} kernel for wasm (`initBackend("wasm")` registers it). */
export const sigmoidGradWasmConfig: tf.KernelConfig = _gradConfig(
  SIGMOID_GRAD,
  "y",
  "bnlab_sigmoid_grad",
);

/**
 * The gradient of x² as one native kernel (lib/kernels/gradients.ts uses it): { dy, x } →
 * dx = dy·(x·2), the floats of tfjs's `Multiply` by 2 and `Multiply` by dy on wasm.
 */
export const SQUARE_GRAD = "BnlabSquareGrad";

/** The {@linkcode SQUARE_GRAD} kernel for wasm (`initBackend("wasm")` registers it). */
export const squareGradWasmConfig: tf.KernelConfig = _gradConfig(
  SQUARE_GRAD,
  "x",
  "bnlab_square_grad",
);

/**
 * A gradient kernel for wasm of { dy, [saved] }, two float32 tensors of one size, to dx
 * (saved's shape) by the native function `symbol` (heap, dy, saved, dx, size).
 */
function _gradConfig(
  kernelName: string,
  saved: "x" | "y",
  symbol: "bnlab_relu_grad" | "bnlab_sigmoid_grad" | "bnlab_square_grad",
): tf.KernelConfig {
  const kernelFunc = (args: KernelArgs): tf.TensorInfo => {
    const dy = args.inputs.dy as tf.TensorInfo;
    const t = args.inputs[saved] as tf.TensorInfo;
    const native = requireNativeKernels(kernelName);
    const size = tf.util.sizeFromShape(t.shape);
    if (
      dy.dtype !== "float32" || t.dtype !== "float32" || tf.util.sizeFromShape(dy.shape) !== size
    ) {
      throw new Error(
        `${kernelName}: expected float32 dy and ${saved} of one size, received ${dy.dtype} ` +
          `[${dy.shape}] and ${t.dtype} [${t.shape}]`,
      );
    }
    const backend = args.backend as unknown as WasmBackend;
    const dx = backend.makeOutput(t.shape, "float32");
    native[symbol](
      heapFloats(backend, [dy, t]),
      floatOffset(backend, dy),
      floatOffset(backend, t),
      floatOffset(backend, dx),
      size,
    );
    return dx;
  };
  return { kernelName, backendName: "wasm", kernelFunc: kernelFunc as unknown as tf.KernelFunc };
}
