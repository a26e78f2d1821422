/**
 * The hot kernels of LeNet's training step on an optimized BLAS (`./blas.ts`): matrix
 * products (`BatchMatMul`, `_FusedMatMul`) as `cblas_sgemm` calls with its transpose flags,
 * and convolutions (`Conv2D`, `FusedConv2D`, `Conv2DBackpropInput`, `Conv2DBackpropFilter`)
 * as im2col + one `cblas_sgemm`, all on the wasm backend's heap, in place.
 *
 * For an NHWC convolution with M = B·OH·OW output pixels, K = KH·KW·Cin taps and N = Cout,
 * let cols [M, K] hold, per output pixel, the input values under the filter (zero where the
 * filter reaches into padding; im2col). With the filter read as W [K, N]:
 *
 * - forward: y [M, N] = cols · W (+ bias, then the activation, for `FusedConv2D`);
 * - filter gradient: dW [K, N] = colsᵀ · dy;
 * - input gradient: dcols [M, K] = dy · Wᵀ, then dx is dcols summed back onto the pixels
 *   each column came from (col2im).
 *
 * 3×3 convolutions at stride 1 with `same` padding and 16 or 32 channels skip im2col and
 * BLAS: the native kernels of `conv3x3.ts` compute them directly (their products of so few
 * columns run below the BLAS's rate), the same values within float32 rounding.
 *
 * im2col and col2im (`im2col.ts`) run in C when the native kernels are built, else as
 * JavaScript loops over the heap (a 1×1 filter at stride 1 without padding skips them: cols
 * is x itself). Where the products run on bnlab's kernel with OpenBLAS's floats, the forward
 * and filter-gradient products of a convolution without padding read cols from the images
 * where they lie (`gatheredProduct`): the same floats, without writing cols. On the products' two threads each writes (or sums back) the cols rows its own
 * slice of the product reads (or wrote), so they stay in that core's cache. Batches whose cols
 * would pass 4 Mi floats are done a slice of images at a time, to bound the scratch memory.
 *
 * Each kernel returns null for what it does not handle (not float32, empty, NCHW, an
 * unknown activation, a bias not of one value or N values, batch dimensions that broadcast
 * both ways); its registration record then runs the kernel it replaced, as it does
 * whenever BLAS is off ({@linkcode blasEnabled}).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { blasEnabled, blasSliceThreads, sgemmUnchecked } from "./blas.ts";
import { col2im, gatheredProduct, im2col } from "./im2col.ts";
import { conv3x3Filter, conv3x3Forward, conv3x3Input, conv3x3Usable } from "./conv3x3.ts";
import {
  floatOffset,
  heapFloats,
  type WasmBackend,
  type WasmKernelReplacement,
} from "./wasm_kernel.ts";

/** The arguments tfjs passes to a kernel function. */
type _KernelArgs = Parameters<tf.KernelFunc>[0];

/** A BLAS kernel: its output, or null to leave the call to the kernel it replaced. */
type _BlasKernel = (args: _KernelArgs) => tf.TensorInfo | null;

/** A replacement that runs on BLAS when it can, keeping the config it wraps as fallback. */
export interface BlasKernelReplacement extends WasmKernelReplacement {
  /**
   * The config this one wraps and falls back to: one of `lib/kernels/`'s wasm replacements
   * or tfjs's own kernel.
   */
  readonly wasm: tf.KernelConfig;
}

/** Largest im2col scratch matrix, in floats (16 MiB): bigger batches go in slices. */
const _COLS_LIMIT = 1 << 22;

/** The wasm kernel of each fused activation not applied in place, and how it is called. */
const _ACTIVATION_KERNELS: Readonly<Record<string, string>> = {
  elu: "Elu",
  sigmoid: "Sigmoid",
  leakyrelu: "LeakyRelu",
  prelu: "Prelu",
};

/** Activations applied in place on the heap. */
const _IN_PLACE_ACTIVATIONS = new Set(["linear", "relu", "relu6"]);

/** Attributes of `BatchMatMul` and `_FusedMatMul`. */
interface _MatMulAttrs {
  transposeA: boolean;
  transposeB: boolean;
  activation?: string;
  leakyreluAlpha?: number;
}

/** Shape facts of op(a)·op(b). */
interface _Product {
  m: number;
  n: number;
  k: number;
  batchA: number;
  batchB: number;
  outShape: number[];
}

/**
 * `BatchMatMul` on BLAS: op(a)·op(b) for float32 `a` [...batchA, M, K] and `b`
 * [...batchB, K, N] (last two axes swapped when `transposeA`, `transposeB`), one
 * `cblas_sgemm` per output matrix (one in all when b is unbatched and a untransposed: a
 * folded to [batchA·M, K]). Leading dimensions must be equal, or one side's all ones.
 *
 * @param args The kernel arguments: `inputs` ({ a, b }), `backend` (the wasm backend) and
 *   `attrs` ({ transposeA, transposeB }).
 * @returns A new `TensorInfo` [...batch, M, N] owned by the caller, or null for a case it
 *   does not handle (see the module doc).
 *
 * @example The weight gradient of a dense layer, xᵀ·dy, straight from the wasm heap
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { initBackend } from "../backend.ts";
 * import { blasEnabled } from "./blas.ts";
 * import { batchMatMulBlas } from "./blas_kernels.ts";
 *
 * await initBackend("wasm");
 * const x = tf.tensor2d([[1, 2], [3, 4], [5, 6]]);
 * const dy = tf.tensor2d([[1], [0], [1]]);
 * const info = batchMatMulBlas({
 *   inputs: { a: x, b: dy },
 *   backend: tf.backend(),
 *   attrs: { transposeA: true, transposeB: false },
 * });
 * if (blasEnabled()) {
 *   const dw = tf.engine().makeTensorFromTensorInfo(info!);
 *   assert.deepEqual(await dw.array(), [[6], [8]]);
 *   dw.dispose();
 * } else {
 *   assert.equal(info, null); // BLAS off: the wasm kernel runs instead
 * }
 * tf.dispose([x, dy]);
 * ```
 */
export function batchMatMulBlas(args: _KernelArgs): tf.TensorInfo | null {
  if (!blasEnabled()) return null;
  const { a, b } = args.inputs;
  const { transposeA, transposeB } = args.attrs as unknown as _MatMulAttrs;
  const product = _product(a, b, transposeA, transposeB);
  if (product === null) return null;
  const backend = args.backend as unknown as WasmBackend;
  const out = backend.makeOutput(product.outShape, "float32");
  const heap = heapFloats(backend, [a, b]);
  _products(heap, backend, a!, b!, out, product, transposeA, transposeB, 0);
  return out;
}

/**
 * `_FusedMatMul` on BLAS: activation(op(a)·op(b) + bias), as {@linkcode batchMatMulBlas}
 * with the output first filled with the bias (one value, or N values along the rows) and
 * `cblas_sgemm` adding the product to it; linear, relu and relu6 are then applied in place,
 * the other activations by their wasm kernels.
 *
 * @param args The kernel arguments: `inputs` ({ a, b, bias?, preluActivationWeights? }),
 *   `backend` (the wasm backend) and `attrs` ({ transposeA, transposeB, activation,
 *   leakyreluAlpha }).
 * @returns A new `TensorInfo` [...batch, M, N] owned by the caller, or null for a case it
 *   does not handle (see the module doc).
 *
 * @example A dense layer's forward pass: x·W + b, then relu
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { initBackend } from "../backend.ts";
 *
 * await initBackend("wasm"); // registers it as _FusedMatMul when BLAS is on
 * const x = tf.tensor2d([[1, 2]]);
 * const w = tf.tensor2d([[1, -1], [1, -1]]);
 * const y = tf.fused.matMul({ a: x, b: w, bias: tf.tensor1d([1, 1]), activation: "relu" });
 * assert.deepEqual(await y.array(), [[4, 0]]);
 * tf.dispose([x, w, y]);
 * ```
 */
export function fusedMatMulBlas(args: _KernelArgs): tf.TensorInfo | null {
  if (!blasEnabled()) return null;
  const { a, b, bias, preluActivationWeights } = args.inputs;
  const attrs = args.attrs as unknown as _MatMulAttrs;
  const activation = attrs.activation ?? "linear";
  if (!_knownActivation(activation, preluActivationWeights)) return null;
  const product = _product(a, b, attrs.transposeA, attrs.transposeB);
  if (product === null || !_rowBias(bias, product.n)) return null;
  const backend = args.backend as unknown as WasmBackend;
  const out = backend.makeOutput(product.outShape, "float32");
  const heap = heapFloats(backend, [a, b, bias]);
  const outOffset = floatOffset(backend, out);
  if (bias != null) _fillRows(heap, outOffset, tf.util.sizeFromShape(out.shape), backend, bias);
  const beta = bias == null ? 0 : 1;
  _products(heap, backend, a!, b!, out, product, attrs.transposeA, attrs.transposeB, beta);
  return _activate(backend, out, activation, attrs.leakyreluAlpha, preluActivationWeights);
}

/**
 * `Conv2D` on BLAS: y = cols·W (see the module doc), for NHWC float32 `x` [B, H, W, Cin] and
 * `filter` [KH, KW, Cin, Cout], any stride, dilation and padding.
 *
 * @param args The kernel arguments: `inputs` ({ x, filter }), `backend` (the wasm backend)
 *   and `attrs` (tfjs's `Conv2DAttrs`).
 * @returns A new `TensorInfo` [B, OH, OW, Cout] owned by the caller, or null for a case it
 *   does not handle (see the module doc).
 *
 * @example A 2×2 filter of ones sums each 2×2 window
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { initBackend } from "../backend.ts";
 *
 * await initBackend("wasm"); // registers it as Conv2D when BLAS is on
 * const x = tf.tensor4d([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 3, 3, 1]);
 * const y = tf.conv2d(x, tf.ones([2, 2, 1, 1]), 1, "valid");
 * assert.deepEqual([...await y.data()], [12, 16, 24, 28]);
 * tf.dispose([x, y]);
 * ```
 */
export function conv2dBlas(args: _KernelArgs): tf.TensorInfo | null {
  return _convolution(args, false);
}

/**
 * `FusedConv2D` on BLAS: activation(cols·W + bias) (see the module doc), as
 * {@linkcode conv2dBlas} with the output first filled with the bias (Cout values, or none)
 * and the activation applied as in {@linkcode fusedMatMulBlas}.
 *
 * @param args The kernel arguments: `inputs` ({ x, filter, bias?, preluActivationWeights? }),
 *   `backend` (the wasm backend) and `attrs` (tfjs's `FusedConv2DAttrs`).
 * @returns A new `TensorInfo` [B, OH, OW, Cout] owned by the caller, or null for a case it
 *   does not handle (see the module doc).
 *
 * @example A conv layer's forward pass with a bias and relu
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { initBackend } from "../backend.ts";
 *
 * await initBackend("wasm"); // registers it as FusedConv2D when BLAS is on
 * const x = tf.tensor4d([1, 2, 3, 4], [1, 2, 2, 1]);
 * const y = tf.fused.conv2d({
 *   x,
 *   filter: tf.tensor4d([1, -1], [1, 1, 1, 2]),
 *   strides: 1,
 *   pad: "valid",
 *   bias: tf.tensor1d([0, 2]),
 *   activation: "relu",
 * });
 * assert.deepEqual([...await y.data()], [1, 1, 2, 0, 3, 0, 4, 0]);
 * tf.dispose([x, y]);
 * ```
 */
export function fusedConv2dBlas(args: _KernelArgs): tf.TensorInfo | null {
  return _convolution(args, true);
}

/**
 * `Conv2DBackpropFilter` on BLAS: dW = colsᵀ·dy (see the module doc), for NHWC float32 `x`
 * [B, H, W, Cin] and `dy` [B, OH, OW, Cout], any stride and padding (dilation 1, as in the
 * op).
 *
 * @param args The kernel arguments: `inputs` ({ x, dy }), `backend` (the wasm backend) and
 *   `attrs` (tfjs's `Conv2DBackpropFilterAttrs`).
 * @returns A new `TensorInfo` of shape `filterShape` owned by the caller, or null for a case
 *   it does not handle (see the module doc).
 *
 * @example Every tap of a 2×2 filter over a 3×3 image of ones sums four ones
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { initBackend } from "../backend.ts";
 *
 * await initBackend("wasm"); // registers it as Conv2DBackpropFilter when BLAS is on
 * const x = tf.ones([1, 3, 3, 1]);
 * const dy = tf.ones([1, 2, 2, 1]);
 * const dw = tf.engine().runKernel("Conv2DBackpropFilter", { x, dy }, {
 *   strides: 1,
 *   pad: "valid",
 *   dataFormat: "NHWC",
 *   filterShape: [2, 2, 1, 1],
 * }) as tf.Tensor;
 * assert.deepEqual([...await dw.data()], [4, 4, 4, 4]);
 * tf.dispose([x, dy, dw]);
 * ```
 */
export function conv2dBackpropFilterBlas(args: _KernelArgs): tf.TensorInfo | null {
  const conv = _backprop(args, "x");
  if (conv === null) return null;
  const { dy, input: x, info, backend } = conv;
  const attrs = args.attrs as unknown as tf.Conv2DBackpropFilterAttrs;
  if (conv3x3Usable(info, "forward")) {
    const out = backend.makeOutput(attrs.filterShape, "float32");
    conv3x3Filter(backend, { x, dy, out, info });
    return out;
  }
  return _sliced(backend, info, attrs.filterShape, [dy, x], (slice) => {
    const { heap, outOffset, b0, images, plan, pixels, n } = slice;
    const dyOffset = floatOffset(backend, dy);
    const beta = b0 === 0 ? 0 : 1;
    const gathered = !plan.direct && gatheredProduct(heap, {
      info,
      b0,
      images,
      xOffset: floatOffset(backend, x),
      product: "filter",
      bOffset: dyOffset + b0 * pixels * n,
      n,
      ldb: n,
      beta,
      cOffset: outOffset,
      ldc: n,
    });
    if (gathered) return;
    sgemmUnchecked(
      true,
      false,
      plan.k,
      n,
      images * pixels,
      1,
      _colsOf(backend, x, slice),
      plan.k,
      heap.subarray(dyOffset + b0 * pixels * n),
      n,
      beta,
      heap.subarray(outOffset),
      n,
    );
  });
}

/**
 * `Conv2DBackpropInput` on BLAS: dcols = dy·Wᵀ, then col2im (see the module doc), for NHWC
 * float32 `dy` [B, OH, OW, Cout] and `filter` [KH, KW, Cin, Cout], any stride and padding
 * (dilation 1, as in the op).
 *
 * @param args The kernel arguments: `inputs` ({ dy, filter }), `backend` (the wasm backend)
 *   and `attrs` (tfjs's `Conv2DBackpropInputAttrs`).
 * @returns A new `TensorInfo` of shape `inputShape` owned by the caller, or null for a case
 *   it does not handle (see the module doc).
 *
 * @example The gradient of a 2×2 filter of ones spreads each dy over four pixels
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { initBackend } from "../backend.ts";
 *
 * await initBackend("wasm"); // registers it as Conv2DBackpropInput when BLAS is on
 * const dy = tf.ones([1, 2, 2, 1]);
 * const filter = tf.ones([2, 2, 1, 1]);
 * const dx = tf.engine().runKernel("Conv2DBackpropInput", { dy, filter }, {
 *   inputShape: [1, 3, 3, 1],
 *   strides: 1,
 *   pad: "valid",
 *   dataFormat: "NHWC",
 * }) as tf.Tensor;
 * assert.deepEqual([...await dx.data()], [1, 2, 1, 2, 4, 2, 1, 2, 1]);
 * tf.dispose([dy, filter, dx]);
 * ```
 */
export function conv2dBackpropInputBlas(args: _KernelArgs): tf.TensorInfo | null {
  const conv = _backprop(args, "filter");
  if (conv === null) return null;
  const { dy, input: filter, info, backend } = conv;
  const attrs = args.attrs as unknown as tf.Conv2DBackpropInputAttrs;
  if (conv3x3Usable(info, "input")) {
    const out = backend.makeOutput(attrs.inputShape, "float32");
    conv3x3Input(backend, { dy, filter, out, info });
    return out;
  }
  const imageSize = info.inHeight * info.inWidth * info.inChannels;
  return _sliced(backend, info, attrs.inputShape, [dy, filter], (slice) => {
    const { heap, outOffset, colsOffset, b0, images, plan, pixels, n } = slice;
    const c = colsOffset === null ? outOffset + b0 * imageSize : colsOffset;
    sgemmUnchecked(
      false,
      true,
      images * pixels,
      plan.k,
      n,
      1,
      heap.subarray(floatOffset(backend, dy) + b0 * pixels * n),
      n,
      heap.subarray(floatOffset(backend, filter)),
      n,
      0,
      heap.subarray(c),
      plan.k,
    );
    if (colsOffset !== null) {
      const threads = blasSliceThreads();
      col2im(heap, { colsOffset, dxOffset: outOffset, info, b0, images, zero: true, threads });
    }
  });
}

/** The BLAS kernel of each kernel name it replaces. */
const _BLAS_KERNELS: Readonly<Record<string, _BlasKernel>> = {
  [tf.BatchMatMul]: batchMatMulBlas,
  [tf._FusedMatMul]: fusedMatMulBlas,
  [tf.Conv2D]: conv2dBlas,
  [tf.FusedConv2D]: fusedConv2dBlas,
  [tf.Conv2DBackpropFilter]: conv2dBackpropFilterBlas,
  [tf.Conv2DBackpropInput]: conv2dBackpropInputBlas,
};

/** The kernel names {@linkcode blasConfig} wraps. */
export const BLAS_KERNEL_NAMES: readonly string[] = Object.keys(_BLAS_KERNELS);

/**
 * The registration record that runs `wasm`'s kernel on BLAS (`BatchMatMul`, `_FusedMatMul`,
 * `Conv2D`, `FusedConv2D`, `Conv2DBackpropFilter` or `Conv2DBackpropInput`: the exported
 * kernel of this module of that name), falling back to `wasm` (our wasm replacement, or
 * tfjs's kernel) for what it does not handle and whenever BLAS is off. Its `original` is
 * `wasm`'s `original` when `wasm` is a replacement itself (so tfjs's kernel), else `wasm`.
 *
 * @param wasm The config to wrap.
 * @returns The config to register in its place.
 * @throws If `wasm` is not a wasm kernel named in {@linkcode BLAS_KERNEL_NAMES}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { blasConfig } from "./blas_kernels.ts";
 *
 * const wasm: tf.KernelConfig = {
 *   kernelName: "BatchMatMul",
 *   backendName: "wasm",
 *   kernelFunc: () => ({ dataId: {}, shape: [], dtype: "float32" }),
 * };
 * const config = blasConfig(wasm);
 * assert.equal(config.wasm, wasm);
 * assert.equal(config.original, wasm);
 * assert.throws(() => blasConfig({ ...wasm, kernelName: "Tile" }), {
 *   message: "Tile (BLAS): the kernel to wrap must be a wasm BatchMatMul, _FusedMatMul, " +
 *     "Conv2D, FusedConv2D, Conv2DBackpropFilter or Conv2DBackpropInput, received Tile for wasm",
 * });
 * ```
 */
export function blasConfig(wasm: tf.KernelConfig): BlasKernelReplacement {
  const { kernelName, backendName } = wasm;
  const kernel = Object.hasOwn(_BLAS_KERNELS, kernelName) ? _BLAS_KERNELS[kernelName] : undefined;
  if (kernel === undefined || backendName !== "wasm") {
    const names = BLAS_KERNEL_NAMES;
    throw new Error(
      `${kernelName} (BLAS): the kernel to wrap must be a wasm ${names.slice(0, -1).join(", ")} ` +
        `or ${names[names.length - 1]}, received ${kernelName} for ${backendName}`,
    );
  }
  const fallback = wasm.kernelFunc;
  return {
    kernelName,
    backendName: "wasm",
    setupFunc: wasm.setupFunc,
    disposeFunc: wasm.disposeFunc,
    kernelFunc: (args) => kernel(args) ?? fallback(args),
    original: (wasm as Partial<WasmKernelReplacement>).original ?? wasm,
    wasm,
  };
}

function _float32(...infos: tf.TensorInfo[]): boolean {
  return infos.every((t) => t.dtype === "float32" && tf.util.sizeFromShape(t.shape) > 0);
}

function _product(
  a: tf.TensorInfo | undefined,
  b: tf.TensorInfo | undefined,
  transposeA: boolean,
  transposeB: boolean,
): _Product | null {
  if (a == null || b == null || a.shape.length < 2 || b.shape.length < 2 || !_float32(a, b)) {
    return null;
  }
  const [ra, rb] = [a.shape.length, b.shape.length];
  const m = transposeA ? a.shape[ra - 1] : a.shape[ra - 2];
  const k = transposeA ? a.shape[ra - 2] : a.shape[ra - 1];
  const kB = transposeB ? b.shape[rb - 1] : b.shape[rb - 2];
  const n = transposeB ? b.shape[rb - 2] : b.shape[rb - 1];
  const outerA = a.shape.slice(0, -2);
  const outerB = b.shape.slice(0, -2);
  const batchA = tf.util.sizeFromShape(outerA);
  const batchB = tf.util.sizeFromShape(outerB);
  // Mismatches go to the fallback, which reports them; so does broadcasting both ways.
  if (k !== kB) return null;
  if (batchA > 1 && batchB > 1 && !tf.util.arraysEqual(outerA, outerB)) return null;
  let outer: number[];
  try {
    outer = tf.broadcast_util.assertAndGetBroadcastShape(outerA, outerB);
  } catch {
    return null;
  }
  return { m, n, k, batchA, batchB, outShape: [...outer, m, n] };
}

/** Computes out = op(a)·op(b) + beta·out on BLAS, matrix by matrix (or folded). */
function _products(
  heap: Float32Array,
  backend: WasmBackend,
  a: tf.TensorInfo,
  b: tf.TensorInfo,
  out: tf.TensorInfo,
  product: _Product,
  transposeA: boolean,
  transposeB: boolean,
  beta: number,
): void {
  const { m, n, k, batchA, batchB } = product;
  const aOffset = floatOffset(backend, a);
  const bOffset = floatOffset(backend, b);
  const outOffset = floatOffset(backend, out);
  const lda = transposeA ? m : k;
  const ldb = transposeB ? k : n;
  if (batchB === 1 && !transposeA) {
    sgemmUnchecked(
      false,
      transposeB,
      batchA * m,
      n,
      k,
      1,
      heap.subarray(aOffset),
      lda,
      heap.subarray(bOffset),
      ldb,
      beta,
      heap.subarray(outOffset),
      n,
    );
    return;
  }
  const batch = Math.max(batchA, batchB);
  for (let i = 0; i < batch; i++) {
    sgemmUnchecked(
      transposeA,
      transposeB,
      m,
      n,
      k,
      1,
      heap.subarray(aOffset + (batchA === 1 ? 0 : i) * m * k),
      lda,
      heap.subarray(bOffset + (batchB === 1 ? 0 : i) * k * n),
      ldb,
      beta,
      heap.subarray(outOffset + i * m * n),
      n,
    );
  }
}

/** Whether a bias adds along output rows: absent, one value, or N values ([..., 1, N]). */
function _rowBias(bias: tf.TensorInfo | undefined, n: number): boolean {
  if (bias == null) return true;
  if (bias.dtype !== "float32") return false;
  const size = tf.util.sizeFromShape(bias.shape);
  return size === 1 || (size === n && bias.shape[bias.shape.length - 1] === n);
}

function _knownActivation(activation: string, prelu: tf.TensorInfo | undefined): boolean {
  if (activation === "prelu" && prelu == null) return false;
  return _IN_PLACE_ACTIVATIONS.has(activation) || activation in _ACTIVATION_KERNELS;
}

/** Fills `size` floats from `offset` with the bias repeated (one value, or rows of N). */
function _fillRows(
  heap: Float32Array,
  offset: number,
  size: number,
  backend: WasmBackend,
  bias: tf.TensorInfo,
): void {
  const biasOffset = floatOffset(backend, bias);
  const n = tf.util.sizeFromShape(bias.shape);
  if (n === 1) {
    heap.fill(heap[biasOffset], offset, offset + size);
    return;
  }
  heap.copyWithin(offset, biasOffset, biasOffset + n);
  // Doubling copies: log2(rows) calls.
  for (let filled = n; filled < size;) {
    const length = Math.min(filled, size - filled);
    heap.copyWithin(offset + filled, offset, offset + length);
    filled += length;
  }
}

/**
 * Applies a fused activation: linear, relu and relu6 in place (returning `out`), the others
 * through their wasm kernels (returning a new TensorInfo and disposing `out`).
 */
function _activate(
  backend: WasmBackend,
  out: tf.TensorInfo,
  activation: string,
  leakyreluAlpha: number | undefined,
  prelu: tf.TensorInfo | undefined,
): tf.TensorInfo {
  if (activation === "linear") return out;
  if (activation === "relu" || activation === "relu6") {
    const heap = heapFloats(backend, [out]);
    const start = floatOffset(backend, out);
    const end = start + tf.util.sizeFromShape(out.shape);
    const top = activation === "relu6" ? 6 : Infinity;
    for (let i = start; i < end; i++) {
      const v = heap[i];
      // NaN stays NaN, as in tfjs's kernels.
      heap[i] = v < 0 ? 0 : v > top ? top : v;
    }
    return out;
  }
  const kernelName = _ACTIVATION_KERNELS[activation];
  const kernel = tf.getKernel(kernelName, "wasm");
  if (kernel === undefined) {
    backend.disposeData(out.dataId);
    throw new Error(
      `${activation} (BLAS): needs the wasm kernel ${kernelName}, received none registered`,
    );
  }
  try {
    const inputs = activation === "prelu" ? { x: out, alpha: prelu! } : { x: out };
    return kernel.kernelFunc({
      inputs,
      backend,
      attrs: { alpha: leakyreluAlpha ?? 0.2 },
    }) as tf.TensorInfo;
  } finally {
    backend.disposeData(out.dataId);
  }
}

/** Convolution attributes shared by the four kernels. */
interface _ConvAttrs {
  strides: number | [number, number];
  pad: "valid" | "same" | number | tf.backend_util.ExplicitPadding;
  dataFormat?: "NHWC" | "NCHW";
  dilations?: number | [number, number];
  dimRoundingMode?: "floor" | "round" | "ceil";
}

/** The convolution's geometry, or null unless NHWC with non-empty shapes. */
function _convInfo(
  inShape: number[],
  filterShape: number[],
  attrs: _ConvAttrs,
  dilations: number | [number, number],
): tf.backend_util.Conv2DInfo | null {
  if (inShape.length !== 4 || filterShape.length !== 4) return null;
  const dataFormat = tf.backend_util.convertConv2DDataFormat(attrs.dataFormat ?? "NHWC");
  if (dataFormat !== "channelsLast") return null;
  const info = tf.backend_util.computeConv2DInfo(
    inShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides,
    dilations,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    dataFormat,
  );
  const empty = [info.inShape, info.outShape, filterShape].some((s) =>
    tf.util.sizeFromShape(s) === 0
  );
  return empty ? null : info;
}

/** What {@linkcode _backprop} hands a convolution's gradient kernel. */
interface _Backprop {
  dy: tf.TensorInfo;
  /** x (for the filter's gradient) or the filter (for the input's). */
  input: tf.TensorInfo;
  info: tf.backend_util.Conv2DInfo;
  backend: WasmBackend;
}

/**
 * The convolution (dilation 1) whose gradient a backprop kernel computes from dy and x (the
 * filter's gradient, shaped `filterShape`) or dy and the filter (the input's, shaped
 * `inputShape`); null when BLAS is off, an input is absent or not float32, the geometry is not
 * handled, or dy is not the convolution's output shape.
 */
function _backprop(args: _KernelArgs, given: "x" | "filter"): _Backprop | null {
  if (!blasEnabled()) return null;
  const { dy, [given]: input } = args.inputs;
  if (dy == null || input == null || !_float32(dy, input)) return null;
  const attrs = args.attrs as unknown as
    & tf.Conv2DBackpropFilterAttrs
    & tf.Conv2DBackpropInputAttrs;
  const info = given === "x"
    ? _convInfo(input.shape, attrs.filterShape, attrs, 1)
    : _convInfo(attrs.inputShape, input.shape, attrs, 1);
  if (info === null || !tf.util.arraysEqual(dy.shape, info.outShape)) return null;
  return { dy, input, info, backend: args.backend as unknown as WasmBackend };
}

/** How a convolution is split: cols rows per slice, images per slice, and taps K. */
interface _Plan {
  info: tf.backend_util.Conv2DInfo;
  /** Whether cols is the input itself (a 1×1 filter, stride 1, no padding). */
  direct: boolean;
  k: number;
  images: number;
  rows: number;
}

function _plan(info: tf.backend_util.Conv2DInfo): _Plan {
  const k = info.filterHeight * info.filterWidth * info.inChannels;
  const pixels = info.outHeight * info.outWidth;
  const direct = info.filterHeight === 1 && info.filterWidth === 1 &&
    info.strideHeight === 1 && info.strideWidth === 1 &&
    info.padInfo.top === 0 && info.padInfo.left === 0 &&
    info.outHeight === info.inHeight && info.outWidth === info.inWidth;
  const images = direct
    ? info.batchSize
    : Math.max(1, Math.min(info.batchSize, Math.floor(_COLS_LIMIT / (pixels * k))));
  return { info, direct, k, images, rows: images * pixels };
}

/** `Conv2D` (fused: `FusedConv2D`) on BLAS. */
function _convolution(args: _KernelArgs, fused: boolean): tf.TensorInfo | null {
  if (!blasEnabled()) return null;
  const { x, filter, bias, preluActivationWeights } = args.inputs;
  const attrs = args.attrs as unknown as _ConvAttrs & {
    activation?: string;
    leakyreluAlpha?: number;
  };
  if (x == null || filter == null || !_float32(x, filter)) return null;
  const activation = fused ? attrs.activation ?? "linear" : "linear";
  if (!_knownActivation(activation, preluActivationWeights)) return null;
  const info = _convInfo(x.shape, filter.shape, attrs, attrs.dilations ?? 1);
  if (info === null) return null;
  const n = info.outChannels;
  if (fused && bias != null && (bias.shape.length !== 1 || !_rowBias(bias, n))) return null;
  const backend = args.backend as unknown as WasmBackend;
  const pixels = info.outHeight * info.outWidth;
  const hasBias = fused && bias != null;
  if (conv3x3Usable(info, "forward")) {
    const out = backend.makeOutput(info.outShape, "float32");
    if (hasBias) {
      _fillRows(
        heapFloats(backend, [bias]),
        floatOffset(backend, out),
        tf.util.sizeFromShape(info.outShape),
        backend,
        bias,
      );
    }
    conv3x3Forward(backend, { x, filter, out, info, accumulate: hasBias });
    return _activate(backend, out, activation, attrs.leakyreluAlpha, preluActivationWeights);
  }
  const out = _sliced(backend, info, info.outShape, [x, filter, hasBias ? bias : undefined], (
    slice,
  ) => {
    const { heap, outOffset, b0, images, plan } = slice;
    if (hasBias && b0 === 0) _fillRows(heap, outOffset, info.batchSize * pixels * n, backend, bias);
    const filterOffset = floatOffset(backend, filter);
    const gathered = !plan.direct && gatheredProduct(heap, {
      info,
      b0,
      images,
      xOffset: floatOffset(backend, x),
      product: "forward",
      bOffset: filterOffset,
      n,
      ldb: n,
      beta: hasBias ? 1 : 0,
      cOffset: outOffset + b0 * pixels * n,
      ldc: n,
    });
    if (gathered) return;
    sgemmUnchecked(
      false,
      false,
      images * pixels,
      n,
      plan.k,
      1,
      _colsOf(backend, x, slice),
      plan.k,
      heap.subarray(filterOffset),
      n,
      hasBias ? 1 : 0,
      heap.subarray(outOffset + b0 * pixels * n),
      n,
    );
  });
  return _activate(backend, out, activation, attrs.leakyreluAlpha, preluActivationWeights);
}

/** A slice of a BLAS convolution's batch, as {@linkcode _sliced} hands it on. */
interface _Slice {
  /** The wasm heap as floats, taken after the output and scratch were allocated. */
  heap: Float32Array;
  /** Where the output starts, in floats. */
  outOffset: number;
  /** Where the cols scratch starts, in floats; null when cols is the input itself. */
  colsOffset: number | null;
  /** The slice's first image, and its images. */
  b0: number;
  images: number;
  plan: _Plan;
  /** Output pixels per image (OH·OW) and output channels (N). */
  pixels: number;
  n: number;
}

/**
 * Allocates a convolution's output (`outShape`) and, unless its plan is direct, the cols
 * scratch; runs `slice` over the batch a slice of images at a time, in order; frees the
 * scratch (and the output, when a slice throws).
 */
function _sliced(
  backend: WasmBackend,
  info: tf.backend_util.Conv2DInfo,
  outShape: number[],
  inputs: readonly (tf.TensorInfo | undefined)[],
  slice: (s: _Slice) => void,
): tf.TensorInfo {
  const plan = _plan(info);
  const out = backend.makeOutput(outShape, "float32");
  const cols = plan.direct ? null : backend.makeOutput([plan.rows, plan.k], "float32");
  try {
    const heap = heapFloats(backend, inputs);
    const outOffset = floatOffset(backend, out);
    const colsOffset = cols === null ? null : floatOffset(backend, cols);
    const pixels = info.outHeight * info.outWidth;
    const n = info.outChannels;
    for (let b0 = 0; b0 < info.batchSize; b0 += plan.images) {
      const images = Math.min(plan.images, info.batchSize - b0);
      slice({ heap, outOffset, colsOffset, b0, images, plan, pixels, n });
    }
  } catch (error) {
    backend.disposeData(out.dataId);
    throw error;
  } finally {
    if (cols !== null) backend.disposeData(cols.dataId);
  }
  return out;
}

/** The A operand of a slice's product: x's images themselves, or their im2col rows. */
function _colsOf(backend: WasmBackend, x: tf.TensorInfo, slice: _Slice): Float32Array {
  const { heap, colsOffset, b0, images, plan } = slice;
  const info = plan.info;
  const xOffset = floatOffset(backend, x);
  if (colsOffset === null) {
    return heap.subarray(xOffset + b0 * info.inHeight * info.inWidth * info.inChannels);
  }
  im2col(heap, { xOffset, colsOffset, info, b0, images, threads: blasSliceThreads() });
  return heap.subarray(colsOffset);
}
