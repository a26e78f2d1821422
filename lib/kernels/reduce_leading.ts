/**
 * A fast `Sum` and `Mean` over leading axes for tfjs's wasm backend. Batch normalization's
 * statistics and the sums of its gradient (dβ = Σ dy, dγ = Σ dy·x̂) reduce every axis but the
 * channels, the last axis of NHWC: axes 0…k−1 of the tensor.
 *
 * tfjs 4.22.0's wasm `Sum`/`Mean` transpose the input so that the reduced axes are innermost
 * and then reduce rows: on LeNet's first activation at batch 20 ([20, 24, 24, 20]) ≈0.42 ms a
 * call, against ≈0.2 ms here (`bench/kernels.ts`, `reduce_leading` rows). This kernel reads x
 * as a row-major [M, N] matrix (M the product of the reduced sizes) and sums its columns in
 * one pass over the wasm heap, four columns at a time in float64 registers, then stores
 * float32. tfjs accumulates in float32, so the two differ in the last bits (this one is
 * closer to the exact sum); the kernel tests bound the difference.
 *
 * (The broadcasting `Add`/`Sub`/`Multiply` of a [C] vector run in C: elementwise.ts.)
 *
 * Every other case (other axes, dtypes other than float32, empty tensors) goes to the kernel
 * it replaces (its `fallback`).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { WasmBackend, WasmKernelReplacement } from "./wasm_kernel.ts";
import { nativeKernels } from "./native_library.ts";
import { bringOntoHeap, type KernelArgs, wasmReplacement } from "./wasm_kernel.ts";

/** The reductions {@linkcode reduceLeadingWasm} computes. */
export type LeadingReduction = "Sum" | "Mean";

/**
 * How many leading axes a reduction over `axes` of a tensor of rank `rank` covers: k when the
 * axes are exactly 0…k−1 (in any order, negative axes counted from the end), `rank` when
 * `axes` is null or undefined (tfjs's "every axis"), else 0.
 *
 * @param axes The reduced axes, as tfjs's `axis` attribute gives them.
 * @param rank The input's rank.
 * @returns k ≥ 1, or 0 when the axes are not a leading block.
 *
 * @example Batch normalization's statistics of NHWC activations reduce the first three axes
 * ```ts
 * import assert from "node:assert/strict";
 * import { leadingAxesCount } from "./reduce_leading.ts";
 *
 * assert.equal(leadingAxesCount([0, 1, 2], 4), 3);
 * assert.equal(leadingAxesCount([-4, 1, -2], 4), 3);
 * assert.equal(leadingAxesCount([1, 2], 4), 0);
 * ```
 */
export function leadingAxesCount(
  axes: number | readonly number[] | null | undefined,
  rank: number,
): number {
  if (axes == null) return rank; // tfjs's "every axis"
  const list = (typeof axes === "number" ? [axes] : [...axes]).map((a) => (a < 0 ? a + rank : a));
  const unique = new Set(list);
  if (unique.size !== list.length || list.length === 0 || list.length > rank) return 0;
  for (let k = 0; k < list.length; k++) if (!unique.has(k)) return 0;
  return list.length;
}

/**
 * `Sum` or `Mean` on the wasm backend: one pass over the heap when the reduced axes are the
 * leading ones of a non-empty float32 tensor, else `fallback` (see the module doc).
 *
 * Inputs `{ x }`; attrs as tfjs's `SumAttrs`/`MeanAttrs` (`axis`, `keepDims`).
 *
 * @param op Which reduction.
 * @param args The kernel arguments: `inputs`, `backend` (the wasm backend) and `attrs`.
 * @param fallback The kernel function for the cases this one does not handle (tfjs's own).
 * @returns The reduced tensor, owned by the caller.
 *
 * @example Per-channel means of NHWC activations
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { initBackend } from "../backend.ts";
 *
 * await initBackend("wasm"); // registers this kernel
 * const x = tf.tensor4d([1, 10, 3, 30], [2, 1, 1, 2]);
 * const mean = tf.mean(x, [0, 1, 2]);
 * assert.deepEqual([...await mean.data()], [2, 20]);
 * tf.dispose([x, mean]);
 * ```
 */
export function reduceLeadingWasm(
  op: LeadingReduction,
  args: KernelArgs,
  fallback: tf.KernelFunc,
): tf.TensorInfo {
  const { x } = args.inputs;
  if (x == null) {
    throw new Error(
      `${op} (wasm): inputs must be { x }, received { ${Object.keys(args.inputs).join(", ")} }`,
    );
  }
  const { axis, keepDims } = args.attrs as unknown as tf.SumAttrs;
  const k = leadingAxesCount(axis, x.shape.length);
  const size = tf.util.sizeFromShape(x.shape);
  if (x.dtype !== "float32" || k === 0 || size === 0) return fallback(args) as tf.TensorInfo;
  const backend = args.backend as unknown as WasmBackend;
  const kept = x.shape.slice(k);
  const shape = keepDims ? [...x.shape.slice(0, k).map(() => 1), ...kept] : kept;
  const out = backend.makeOutput(shape, "float32");
  const columns = tf.util.sizeFromShape(kept);
  const rows = size / columns;
  _writeColumnSums(backend, x, out, rows, columns, op === "Mean" ? 1 / rows : 1);
  return out;
}

/**
 * out[c] = scale · Σ_r x[r, c] for x read as a row-major [rows, columns] matrix, summed in
 * double in row order and rounded once: in C (native/bnlab_kernels.c) when loaded, else the
 * same sums in JavaScript. `out` is allocated: growing the heap would detach views taken
 * before.
 */
function _writeColumnSums(
  backend: WasmBackend,
  x: tf.TensorInfo,
  out: tf.TensorInfo,
  rows: number,
  columns: number,
  scale: number,
): void {
  bringOntoHeap(backend, [x]);
  const source = backend.typedArrayFromHeap(x) as Float32Array;
  const target = backend.typedArrayFromHeap(out) as Float32Array;
  const native = nativeKernels();
  if (native !== null) {
    const floats = Float32Array.BYTES_PER_ELEMENT;
    native.bnlab_column_sums(
      new Float32Array(source.buffer),
      source.byteOffset / floats,
      target.byteOffset / floats,
      rows,
      columns,
      scale,
    );
    return;
  }
  const sums = _columnSums(source, rows, columns);
  for (let j = 0; j < columns; j++) target[j] = sums[j] * scale;
}

/**
 * Column sums of a row-major [rows, columns] matrix, in float64: four columns at a time, each
 * in its own accumulator (a strided pass per group of four beats one row-wise pass that
 * stores every partial sum, ≈70 vs ≈105 µs for 11520 × 20).
 */
function _columnSums(source: Float32Array, rows: number, columns: number): Float64Array {
  const sums = new Float64Array(columns);
  const n = rows * columns;
  let j = 0;
  for (; j + 4 <= columns; j += 4) {
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (let i = j; i < n; i += columns) {
      s0 += source[i];
      s1 += source[i + 1];
      s2 += source[i + 2];
      s3 += source[i + 3];
    }
    sums[j] = s0;
    sums[j + 1] = s1;
    sums[j + 2] = s2;
    sums[j + 3] = s3;
  }
  for (; j < columns; j++) {
    let sum = 0;
    for (let i = j; i < n; i += columns) sum += source[i];
    sums[j] = sum;
  }
  return sums;
}

/**
 * The registration record that replaces wasm's `Sum` or `Mean` with
 * {@linkcode reduceLeadingWasm}, keeping `original` as its fallback (and running `original`'s
 * set-up, which the fallback needs). `initBackend("wasm")` registers it; nothing else should.
 *
 * @param original The wasm kernel being replaced, as `tf.getKernel` returns it.
 * @returns The kernel config to register in its place (its `original` is `original`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { reduceLeadingWasmConfig } from "./reduce_leading.ts";
 *
 * const original = {
 *   kernelName: "Mean",
 *   backendName: "wasm",
 *   kernelFunc: () => ({ dataId: {}, shape: [], dtype: "float32" as const }),
 * };
 * assert.equal(reduceLeadingWasmConfig(original).original, original);
 * ```
 */
export function reduceLeadingWasmConfig(original: tf.KernelConfig): WasmKernelReplacement {
  return wasmReplacement(
    original,
    [tf.Sum, tf.Mean],
    (name, args, fallback) => reduceLeadingWasm(name as LeadingReduction, args, fallback),
  );
}

/**
 * The gradient of a broadcast `Add` or `Sub` operand, summed over the leading axes it was
 * broadcast along, in one kernel (lib/kernels/gradients.ts uses it): { x } with x the
 * incoming gradient, attrs {@linkcode LeadingSumToAttrs} → `shape`, sign · Σ over x's leading
 * axes, with the floats of tfjs's `Sum` here (then `Neg` for sign −1: negating the double
 * sum before its rounding is exact). tfjs's gradient sums, negates and reshapes: up to three
 * kernel calls.
 */
export const LEADING_SUM_TO = "BnlabLeadingSumTo";

/** The attributes of {@linkcode LEADING_SUM_TO}. */
export interface LeadingSumToAttrs {
  /** The output's shape, as many elements as x's trailing axes after the summed ones. */
  shape: number[];
  /** 1 for the sum, −1 for its negation. */
  sign: 1 | -1;
}

function _leadingSumTo(args: KernelArgs): tf.TensorInfo {
  const { x } = args.inputs as { x: tf.TensorInfo };
  const { shape, sign } = args.attrs as unknown as LeadingSumToAttrs;
  const size = tf.util.sizeFromShape(x.shape);
  const columns = tf.util.sizeFromShape(shape);
  if (x.dtype !== "float32" || size === 0 || columns === 0 || size % columns !== 0) {
    throw new Error(
      `${LEADING_SUM_TO}: expected a non-empty float32 x whose size is a multiple of ` +
        `[${shape}]'s, received ${x.dtype} [${x.shape}]`,
    );
  }
  const backend = args.backend as unknown as WasmBackend;
  const out = backend.makeOutput(shape, "float32");
  _writeColumnSums(backend, x, out, size / columns, columns, sign);
  return out;
}

/** The {@linkcode LEADING_SUM_TO} kernel for wasm (`initBackend("wasm")` registers it). */
export const leadingSumToWasmConfig: tf.KernelConfig = {
  kernelName: LEADING_SUM_TO,
  backendName: "wasm",
  kernelFunc: _leadingSumTo as unknown as tf.KernelFunc,
};
