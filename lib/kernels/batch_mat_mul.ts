/**
 * `BatchMatMul` and `_FusedMatMul` for tfjs's wasm backend without their slow path.
 *
 * tfjs 4.22.0's wasm matrix product runs XNNPACK only when neither operand is transposed and
 * both have a batch of one; every other case falls to a blocked scalar loop at ≈2 GFLOP/s
 * against ≈25 for XNNPACK. Training hits it on every dense layer: for y = x·W, tfjs's
 * gradient computes dx = dy·Wᵀ (`transposeB`) and dW = xᵀ·dy (`transposeA`).
 *
 * These wrappers rewrite such a product so that it reaches XNNPACK, with `Transpose` (and
 * free `Reshape`s) around one call of the original kernel with both flags false:
 *
 * - a batched `a` times an unbatched `b` is one product of `a` folded to
 *   [batch·M, K] (after transposing each of its matrices when `transposeA`);
 * - an unbatched `a` times a batched `b` is the transpose of the product (op(b)ᵀ · op(a)ᵀ),
 *   which is the previous case;
 * - a 2-D product op(A)·op(B) is computed either directly, materializing each transposed
 *   operand, or as (op(B)ᵀ · op(A)ᵀ)ᵀ, where op(B)ᵀ is B itself when `transposeB` (likewise
 *   A): whichever moves fewer elements, counting transposes and the XNNPACK packing of the
 *   right-hand operand (done on every call, as the operand is new). For dx = dy·Wᵀ that is
 *   the second form: it transposes dy and the [B, 800] result instead of the 800×500 W;
 * - products where both operands are batched stay with the original kernel (so does
 *   everything not float32 or empty).
 *
 * `_FusedMatMul` (op(a)·op(b) + bias, then an activation) takes only the direct form, as its
 * bias runs along output rows; it tiles a one-element bias to N first, as tfjs's XNNPACK path
 * reads N values from it. With a batched `b` it runs unfused: our `BatchMatMul`, `Add`, then
 * the activation's kernel, because tfjs's fused loop is wrong there with a bias (it adds the
 * bias once per 48-wide block of K, and for rows past the first adds bias[N − 1] throughout)
 * and with relu/relu6 when K > 48 (it clamps partial sums).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { WasmBackend, WasmKernelReplacement } from "./wasm_kernel.ts";
import { callWasmKernel, wasmReplacement } from "./wasm_kernel.ts";

/** The arguments tfjs passes to a kernel function. */
type _KernelArgs = Parameters<tf.KernelFunc>[0];

/** Attributes shared by `BatchMatMul` and `_FusedMatMul`. */
interface _MatMulAttrs {
  transposeA: boolean;
  transposeB: boolean;
}

/** Attributes of `_FusedMatMul`. */
interface _FusedMatMulAttrs extends _MatMulAttrs {
  activation: string;
  leakyreluAlpha?: number;
}

/** The wasm kernel of each fusable activation but linear, and its attributes. */
const _ACTIVATION_KERNELS: Readonly<Record<string, string>> = {
  relu: "Relu",
  relu6: "Relu6",
  elu: "Elu",
  sigmoid: "Sigmoid",
  leakyrelu: "LeakyRelu",
  prelu: "Prelu",
};

/** The shape facts of one product op(a)·op(b). */
interface _Product {
  /** Rows of op(a), columns of op(b), and the shared dimension. */
  m: number;
  n: number;
  k: number;
  /** The number of matrices in a and in b (the product of their leading dimensions). */
  batchA: number;
  batchB: number;
  /** The output shape: broadcast leading dimensions, then [m, n]. */
  outShape: number[];
}

/**
 * Multiplies two float32 matrices (or batches of them) on the wasm backend, reaching the
 * XNNPACK path of `original` for the transposed and batched cases its loop would run (see
 * the module doc); all other cases run `original` unchanged.
 *
 * Inputs `a` [...batchA, M, K] and `b` [...batchB, K, N] (each of the last two axes swapped
 * when `transposeA`, `transposeB`); leading dimensions broadcast. The result is a new
 * `TensorInfo` [...batch, M, N], owned by the caller.
 *
 * @param args The kernel arguments: `inputs` ({ a, b }), `backend` (the wasm backend) and
 *   `attrs` ({ transposeA, transposeB }).
 * @param original wasm's own `BatchMatMul` kernel function.
 * @returns op(a)·op(b).
 *
 * @example The weight gradient of a dense layer, xᵀ·dy, on XNNPACK's path, not the scalar loop
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { initBackend } from "../backend.ts";
 *
 * await initBackend("wasm"); // registers this kernel
 * const x = tf.tensor2d([[1, 2], [3, 4], [5, 6]]); // [B = 3, in = 2]
 * const dy = tf.tensor2d([[1], [0], [1]]); // [B = 3, out = 1]
 * const dw = tf.matMul(x, dy, true, false);
 * assert.deepEqual(await dw.array(), [[6], [8]]);
 * tf.dispose([x, dy, dw]);
 * ```
 */
export function batchMatMulWasm(args: _KernelArgs, original: tf.KernelFunc): tf.TensorInfo {
  const { a, b } = _operands(args, "BatchMatMul");
  const { transposeA, transposeB } = args.attrs as unknown as _MatMulAttrs;
  const product = _product(a, b, transposeA, transposeB);
  const { batchA, batchB } = product;
  const fast = !transposeA && !transposeB && batchA === 1 && batchB === 1;
  if (fast || !_supported(a, b) || (batchA > 1 && batchB > 1)) {
    return original(args) as tf.TensorInfo;
  }
  const backend = args.backend as unknown as WasmBackend;
  const run = (a: tf.TensorInfo, b: tf.TensorInfo) =>
    original({ inputs: { a, b }, backend, attrs: { transposeA: false, transposeB: false } });
  if (batchA === 1 && batchB > 1) {
    // op(a)·op(b) = (op(b)ᵀ·op(a)ᵀ)ᵀ, whose left operand is the batched one.
    const swapped = _product(b, a, !transposeB, !transposeA);
    const outT = _foldedProduct(backend, b, a, !transposeB, !transposeA, swapped, run, true);
    outT.shape = [batchB, product.n, product.m];
    try {
      const out = _transposeLastTwo(backend, outT);
      out.shape = product.outShape;
      return out;
    } finally {
      backend.disposeData(outT.dataId);
    }
  }
  const out = _foldedProduct(backend, a, b, transposeA, transposeB, product, run, true);
  out.shape = product.outShape;
  return out;
}

/**
 * `_FusedMatMul` (a product plus bias, activation and PReLU weights, as dense layers with a
 * bias run it) on the wasm backend, reaching the XNNPACK path of `original` when `b` is
 * unbatched, by materializing the transposed operands and folding a batched `a` (see the
 * module doc); all other cases run `original` unchanged. A bias of one element is tiled to
 * N first: tfjs's XNNPACK path reads N values from it, so tfjs itself gets that case wrong.
 *
 * Inputs as tfjs passes them: `a` [batchA, M, K] and `b` [batchB, K, N] (last two axes
 * swapped when `transposeA`, `transposeB`), optional `bias` and `preluActivationWeights`;
 * attrs `transposeA`, `transposeB`, `activation`, `leakyreluAlpha`. The result is a new
 * `TensorInfo` [batch, M, N], owned by the caller.
 *
 * @param args The kernel arguments: `inputs`, `backend` (the wasm backend) and `attrs`.
 * @param original wasm's own `_FusedMatMul` kernel function.
 * @returns activation(op(a)·op(b) + bias).
 *
 * @example A fused product with a transposed left operand and a bias
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { initBackend } from "../backend.ts";
 *
 * await initBackend("wasm"); // registers this kernel
 * const a = tf.tensor2d([[1, 2], [3, 4]]);
 * const b = tf.tensor2d([[1, 0], [0, 1]]);
 * const y = tf.fused.matMul({ a, b, transposeA: true, bias: tf.tensor1d([10, 20]) });
 * assert.deepEqual(await y.array(), [[11, 23], [12, 24]]);
 * tf.dispose([a, b, y]);
 * ```
 */
export function fusedMatMulWasm(args: _KernelArgs, original: tf.KernelFunc): tf.TensorInfo {
  const { a, b } = _operands(args, "_FusedMatMul");
  const attrs = args.attrs as unknown as _FusedMatMulAttrs;
  const product = _product(a, b, attrs.transposeA, attrs.transposeB);
  if (!_supported(a, b)) return original(args) as tf.TensorInfo;
  const backend = args.backend as unknown as WasmBackend;
  if (product.batchB > 1) return _unfusedMatMul(backend, args.inputs, attrs);
  const { bias } = args.inputs;
  // tfjs's XNNPACK path reads N bias values even from a bias of one.
  const tileBias = bias != null && tf.util.sizeFromShape(bias.shape) === 1 && product.n > 1;
  const fast = !attrs.transposeA && !attrs.transposeB && product.batchA === 1;
  if (fast && !tileBias) return original(args) as tf.TensorInfo;
  const tiled = tileBias ? _call(backend, "Tile", { x: bias }, { reps: [product.n] }) : undefined;
  try {
    const run = (a: tf.TensorInfo, b: tf.TensorInfo) =>
      original({
        inputs: { ...args.inputs, a, b, ...(tiled && { bias: tiled }) },
        backend,
        attrs: { ...args.attrs, transposeA: false, transposeB: false },
      });
    const { transposeA, transposeB } = attrs;
    const out = _foldedProduct(backend, a, b, transposeA, transposeB, product, run, false);
    out.shape = product.outShape;
    return out;
  } finally {
    if (tiled) backend.disposeData(tiled.dataId);
  }
}

/**
 * The registration record that replaces wasm's `BatchMatMul` with
 * {@linkcode batchMatMulWasm}, keeping `original` as the kernel it calls (and running its
 * set-up). `initBackend("wasm")` registers it, after unregistering `original`.
 *
 * @param original The wasm kernel being replaced, as `tf.getKernel` returns it.
 * @returns The kernel config to register in its place (its `original` is `original`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { batchMatMulWasmConfig } from "./batch_mat_mul.ts";
 *
 * const original: tf.KernelConfig = {
 *   kernelName: "BatchMatMul",
 *   backendName: "wasm",
 *   kernelFunc: () => ({ dataId: {}, shape: [], dtype: "float32" }),
 * };
 * assert.equal(batchMatMulWasmConfig(original).kernelName, "BatchMatMul");
 * ```
 */
export function batchMatMulWasmConfig(original: tf.KernelConfig): WasmKernelReplacement {
  return _replacement(original, tf.BatchMatMul, batchMatMulWasm);
}

/**
 * The registration record that replaces wasm's `_FusedMatMul` with
 * {@linkcode fusedMatMulWasm}, keeping `original` as the kernel it calls (and running its
 * set-up). `initBackend("wasm")` registers it, after unregistering `original`.
 *
 * @param original The wasm kernel being replaced, as `tf.getKernel` returns it.
 * @returns The kernel config to register in its place (its `original` is `original`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { fusedMatMulWasmConfig } from "./batch_mat_mul.ts";
 *
 * const original: tf.KernelConfig = {
 *   kernelName: "_FusedMatMul",
 *   backendName: "wasm",
 *   kernelFunc: () => ({ dataId: {}, shape: [], dtype: "float32" }),
 * };
 * assert.equal(fusedMatMulWasmConfig(original).kernelName, "_FusedMatMul");
 * ```
 */
export function fusedMatMulWasmConfig(original: tf.KernelConfig): WasmKernelReplacement {
  return _replacement(original, tf._FusedMatMul, fusedMatMulWasm);
}

function _replacement(
  original: tf.KernelConfig,
  kernelName: string,
  kernel: (args: _KernelArgs, original: tf.KernelFunc) => tf.TensorInfo,
): WasmKernelReplacement {
  return wasmReplacement(original, [kernelName], (_name, args, fallback) => kernel(args, fallback));
}

function _operands(args: _KernelArgs, kernelName: string) {
  const { a, b } = args.inputs;
  if (a == null || b == null) {
    throw new Error(
      `${kernelName} (wasm): inputs must include { a, b }, received { ${
        Object.keys(args.inputs).join(", ")
      } }`,
    );
  }
  if (a.shape.length < 2 || b.shape.length < 2) {
    throw new Error(
      `${kernelName} (wasm): a and b must have rank ≥ 2, received [${a.shape}] and [${b.shape}]`,
    );
  }
  return { a, b };
}

/** Whether the rewrite applies at all: float32 and nothing empty. */
function _supported(a: tf.TensorInfo, b: tf.TensorInfo): boolean {
  return a.dtype === "float32" && b.dtype === "float32" &&
    tf.util.sizeFromShape(a.shape) > 0 && tf.util.sizeFromShape(b.shape) > 0;
}

function _product(
  a: tf.TensorInfo,
  b: tf.TensorInfo,
  transposeA: boolean,
  transposeB: boolean,
): _Product {
  const [ra, rb] = [a.shape.length, b.shape.length];
  const m = transposeA ? a.shape[ra - 1] : a.shape[ra - 2];
  const k = transposeA ? a.shape[ra - 2] : a.shape[ra - 1];
  const kB = transposeB ? b.shape[rb - 1] : b.shape[rb - 2];
  const n = transposeB ? b.shape[rb - 2] : b.shape[rb - 1];
  if (k !== kB) {
    throw new Error(
      `matMul (wasm): inner dimensions must match, received a [${a.shape}] ` +
        `(transposeA ${transposeA}) and b [${b.shape}] (transposeB ${transposeB})`,
    );
  }
  const outer = tf.broadcast_util.assertAndGetBroadcastShape(
    a.shape.slice(0, -2),
    b.shape.slice(0, -2),
  );
  return {
    m,
    n,
    k,
    batchA: tf.util.sizeFromShape(a.shape.slice(0, -2)),
    batchB: tf.util.sizeFromShape(b.shape.slice(0, -2)),
    outShape: [...outer, m, n],
  };
}

/**
 * op(a)·op(b) for an unbatched b, as one call of `run` on untransposed operands: a folded to
 * [batchA·M, K]; with `mayTranspose`, the 2-D product may instead be computed transposed.
 * Returns a fresh TensorInfo [1, batchA·M, N] (whose shape the caller sets).
 */
function _foldedProduct(
  backend: WasmBackend,
  a: tf.TensorInfo,
  b: tf.TensorInfo,
  transposeA: boolean,
  transposeB: boolean,
  product: _Product,
  run: (a: tf.TensorInfo, b: tf.TensorInfo) => tf.TensorInfo | tf.TensorInfo[],
  mayTranspose: boolean,
): tf.TensorInfo {
  const { m, n, k, batchA } = product;
  const temporaries: tf.TensorInfo[] = [];
  const keep = (t: tf.TensorInfo) => {
    temporaries.push(t);
    return t;
  };
  try {
    // A single-matrix view of a: [1, M′, K] (or [1, K, M′] when transposed, which needs
    // batchA = 1); the original kernels take rank-3 operands.
    let a2: tf.TensorInfo;
    let a2Transposed = transposeA;
    if (transposeA && batchA > 1) {
      a2 = keep(_reshape(backend, keep(_transposeLastTwo(backend, a)), [1, batchA * m, k]));
      a2Transposed = false;
    } else {
      a2 = keep(_reshape(backend, a, transposeA ? [1, k, m] : [1, batchA * m, k]));
    }
    const b2 = keep(_reshape(backend, b, transposeB ? [1, n, k] : [1, k, n]));
    const rows = batchA * m;
    // Elements moved: transposes, plus XNNPACK's packing of the right-hand operand.
    const direct = (a2Transposed ? rows * k : 0) + (transposeB ? 2 : 1) * k * n;
    const swapped = (transposeB ? 0 : k * n) + (a2Transposed ? 1 : 2) * rows * k + rows * n;
    if (!mayTranspose || direct <= swapped) {
      const left = a2Transposed ? keep(_transposeLastTwo(backend, a2)) : a2;
      const right = transposeB ? keep(_transposeLastTwo(backend, b2)) : b2;
      return run(left, right) as tf.TensorInfo;
    }
    const left = transposeB ? b2 : keep(_transposeLastTwo(backend, b2));
    const right = a2Transposed ? a2 : keep(_transposeLastTwo(backend, a2));
    const outT = keep(run(left, right) as tf.TensorInfo);
    return _transposeLastTwo(backend, outT);
  } finally {
    for (const t of temporaries) backend.disposeData(t.dataId);
  }
}

/**
 * A fused product as its three steps: `BatchMatMul` (our kernel), `Add` of the bias, then
 * the activation's kernel; for batched b, where tfjs's fused loop adds the bias once per
 * 48-wide block of K, and for rows past the first reads bias[N − 1] for every column.
 */
function _unfusedMatMul(
  backend: WasmBackend,
  inputs: tf.NamedTensorInfoMap,
  attrs: _FusedMatMulAttrs,
): tf.TensorInfo {
  const { a, b, bias, preluActivationWeights } = inputs;
  const { transposeA, transposeB, activation } = attrs;
  const activationKernel = _ACTIVATION_KERNELS[activation];
  if (activation !== "linear" && activationKernel === undefined) {
    throw new Error(
      `_FusedMatMul (wasm): activation must be linear or one of ${
        Object.keys(_ACTIVATION_KERNELS).join(", ")
      }, received ${JSON.stringify(activation)}`,
    );
  }
  const temporaries: tf.TensorInfo[] = [];
  try {
    let y = _call(backend, "BatchMatMul", { a, b }, { transposeA, transposeB });
    if (bias != null) {
      temporaries.push(y);
      y = _call(backend, "Add", { a: y, b: bias }, {});
    }
    if (activationKernel !== undefined) {
      temporaries.push(y);
      y = activation === "prelu"
        ? _call(backend, "Prelu", { x: y, alpha: preluActivationWeights! }, {})
        : _call(backend, activationKernel, { x: y }, { alpha: attrs.leakyreluAlpha ?? 0.2 });
    }
    return y;
  } finally {
    for (const t of temporaries) backend.disposeData(t.dataId);
  }
}

function _transposeLastTwo(backend: WasmBackend, x: tf.TensorInfo): tf.TensorInfo {
  const rank = x.shape.length;
  const perm = [...Array(rank).keys()];
  [perm[rank - 2], perm[rank - 1]] = [rank - 1, rank - 2];
  return _call(backend, "Transpose", { x }, { perm });
}

function _reshape(backend: WasmBackend, x: tf.TensorInfo, shape: number[]): tf.TensorInfo {
  return _call(backend, "Reshape", { x }, { shape });
}

/** Runs another wasm kernel (each used here returns a single TensorInfo); the caller owns it. */
function _call(
  backend: WasmBackend,
  kernelName: string,
  inputs: tf.NamedTensorInfoMap,
  attrs: Record<string, unknown>,
): tf.TensorInfo {
  return callWasmKernel("matMul", backend, kernelName, inputs, attrs);
}
