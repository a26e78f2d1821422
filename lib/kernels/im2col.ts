/**
 * im2col and col2im, the memory-bound halves of the BLAS convolutions (`blas_kernels.ts`), on
 * the wasm backend's heap. For an NHWC convolution, cols [M, K] holds, per output pixel (M =
 * B·OH·OW), the KH·KW·Cin input values under the filter in (kh, kw, ci) order, zero where the
 * filter reaches into padding; col2im adds such rows back onto the pixels they were read from.
 * Both run in C (`native_library.ts`) when the native kernels are built, else as the
 * JavaScript loops here. `gatheredProduct` skips cols altogether where it can: the product
 * reads each cols value from the image it would have been copied from.
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs";
import { openBlasOrderPlan } from "./blas.ts";
import { type NativeConvGeometry, nativeKernels } from "./native_library.ts";

/** A convolution's geometry as the native im2col and col2im take it (after b0, images). */
function _nativeGeometry(info: tf.backend_util.Conv2DInfo): NativeConvGeometry {
  return [
    info.inHeight,
    info.inWidth,
    info.inChannels,
    info.outHeight,
    info.outWidth,
    info.filterHeight,
    info.filterWidth,
    info.strideHeight,
    info.strideWidth,
    info.dilationHeight,
    info.dilationWidth,
    info.padInfo.top,
    info.padInfo.left,
  ];
}

/** Runs shorter than this are copied element by element; longer ones with copyWithin. */
const _SHORT_RUN = 24;

/** Which images of a convolution's batch a call covers, and where its data are. */
export interface ImageSlice {
  /** The convolution (NHWC). */
  info: tf.backend_util.Conv2DInfo;
  /** The first image. */
  b0: number;
  /** How many images from `b0`. */
  images: number;
  /**
   * Threads of the matrix products' pool the native loop may split the slice over (1 or 2):
   * each part is the rows (images, for col2im) its product slice reads or writes, so that
   * they stay in that thread's cache. The floats do not depend on it. @default {1}
   */
  threads?: number;
}

/**
 * Writes cols rows for `images` images from `b0`: per output pixel, the KH·KW·Cin input
 * values under the filter in (kh, kw, ci) order, zero where the filter is over padding.
 *
 * @param heap The wasm heap as floats.
 * @param options Where x (the whole batch) and cols (this slice's rows) start, in floats,
 *   and the slice.
 *
 * @example A 2×2 filter over one 2×3 single-channel image
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { im2col } from "./im2col.ts";
 *
 * const info = tf.backend_util.computeConv2DInfo([1, 2, 3, 1], [2, 2, 1, 1], 1, 1, "valid");
 * const heap = new Float32Array(6 + 8);
 * heap.set([1, 2, 3, 4, 5, 6]);
 * im2col(heap, { xOffset: 0, colsOffset: 6, info, b0: 0, images: 1 });
 * assert.deepEqual(Array.from(heap.subarray(6)), [1, 2, 4, 5, 2, 3, 5, 6]);
 * ```
 */
export function im2col(
  heap: Float32Array,
  options: ImageSlice & { xOffset: number; colsOffset: number },
): void {
  const { xOffset, colsOffset, info, b0, images, threads = 1 } = options;
  const native = nativeKernels();
  if (native === null) return _walk({ info, b0, images }, xOffset, colsOffset, _gather(heap));
  native.bnlab_im2col(heap, xOffset, colsOffset, b0, images, ..._nativeGeometry(info), threads);
}

/**
 * Adds cols rows for `images` images from `b0` back onto dx (the reverse of
 * {@linkcode im2col}): each value goes to the input pixel and channel it was read from;
 * values over padding are dropped.
 *
 * @param heap The wasm heap as floats.
 * @param options Where cols (this slice's rows) and dx (the whole batch) start, in floats,
 *   the slice, and `zero`: whether the slice's images of dx are cleared first (a gradient of
 *   its own; otherwise the values are added to what dx holds).
 *
 * @example The values under a 2×2 filter summed back onto a 2×3 image
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { col2im } from "./im2col.ts";
 *
 * const info = tf.backend_util.computeConv2DInfo([1, 2, 3, 1], [2, 2, 1, 1], 1, 1, "valid");
 * const heap = new Float32Array(8 + 6);
 * heap.fill(1, 0, 8);
 * col2im(heap, { colsOffset: 0, dxOffset: 8, info, b0: 0, images: 1 });
 * assert.deepEqual(Array.from(heap.subarray(8)), [1, 2, 1, 1, 2, 1]);
 * ```
 */
export function col2im(
  heap: Float32Array,
  options: ImageSlice & { colsOffset: number; dxOffset: number; zero?: boolean },
): void {
  const { colsOffset, dxOffset, info, b0, images, zero = false, threads = 1 } = options;
  const native = nativeKernels();
  if (native === null) {
    if (zero) {
      const imageSize = info.inHeight * info.inWidth * info.inChannels;
      heap.fill(0, dxOffset + b0 * imageSize, dxOffset + (b0 + images) * imageSize);
    }
    return _walk({ info, b0, images }, dxOffset, colsOffset, _scatterAdd(heap));
  }
  const geometry = _nativeGeometry(info);
  native.bnlab_col2im(heap, colsOffset, dxOffset, b0, images, ...geometry, zero ? 1 : 0, threads);
}

/** Whether {@linkcode gatheredProduct} may run (switched off for comparisons). */
let _gathered = true;

/**
 * Lets {@linkcode gatheredProduct} run (the default), or not: every convolution then writes
 * its cols matrix. The floats are the same either way; for comparisons and tests.
 *
 * @param enabled Whether gathered products may run.
 * @returns Whether they could before the call.
 *
 * @example
 * ```ts
 * import { setGatheredProducts } from "./im2col.ts";
 * const previous = setGatheredProducts(false);
 * setGatheredProducts(previous);
 * ```
 */
export function setGatheredProducts(enabled: boolean): boolean {
  const previous = _gathered;
  _gathered = enabled;
  return previous;
}

/** A convolution product {@linkcode gatheredProduct} computes from the images. */
export interface GatheredProduct extends ImageSlice {
  /** Where x (the whole batch) starts, in floats. */
  xOffset: number;
  /**
   * `forward`: C [M, N] = cols·B with B the filter [K, N]; `filter`: C [K, N] = colsᵀ·B with B
   * the output gradient [M, N] (M = images·OH·OW, K = KH·KW·Cin).
   */
  product: "forward" | "filter";
  /** Where B starts, in floats, its columns (N) and row stride. */
  bOffset: number;
  n: number;
  ldb: number;
  /** 0: C = the product; 1: C += the product. */
  beta: 0 | 1;
  /** Where C starts, in floats, and its row stride. */
  cOffset: number;
  ldc: number;
}

/**
 * A convolution's product with its cols matrix read from the images where they lie, never
 * written: the floats {@linkcode im2col} followed by `sgemmUnchecked` on cols give (the same
 * kernel, on the same slices of the product), without writing and reading back cols. It runs
 * only on bnlab's kernel with OpenBLAS's floats (`openBlasOrderPlan`), for convolutions without
 * padding, on shapes that kernel takes; elsewhere it computes nothing and returns false, and
 * the caller writes cols and calls the product.
 *
 * @param heap The wasm heap as floats.
 * @param options The product, its operands and the slice of images.
 * @returns Whether the product was computed.
 *
 * @example A 2×2 filter of ones over one 2×3 image: false where the kernel is off
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { gatheredProduct } from "./im2col.ts";
 *
 * const info = tf.backend_util.computeConv2DInfo([1, 2, 3, 1], [2, 2, 1, 1], 1, 1, "valid");
 * const heap = new Float32Array([1, 2, 3, 4, 5, 6, 1, 1, 1, 1, 0, 0]);
 * const done = gatheredProduct(heap, {
 *   info, b0: 0, images: 1, xOffset: 0, product: "forward",
 *   bOffset: 6, n: 1, ldb: 1, beta: 0, cOffset: 10, ldc: 1,
 * });
 * if (done) console.log(Array.from(heap.subarray(10))); // [ 12, 16 ]
 * ```
 */
export function gatheredProduct(heap: Float32Array, options: GatheredProduct): boolean {
  const { info, b0, images, xOffset, product, bOffset, n, ldb, beta, cOffset, ldc } = options;
  const native = nativeKernels();
  if (!_gathered || native === null) return false;
  const pixels = images * info.outHeight * info.outWidth;
  const taps = info.filterHeight * info.filterWidth * info.inChannels;
  const plan = product === "forward"
    ? openBlasOrderPlan(pixels, n, taps)
    : openBlasOrderPlan(taps, n, pixels);
  if (plan === null) return false;
  const status = native.bnlab_conv_gathered(
    heap,
    xOffset,
    b0,
    images,
    ..._nativeGeometry(info),
    product === "filter" ? 1 : 0,
    bOffset,
    n,
    ldb,
    beta,
    cOffset,
    ldc,
    plan.uncut ? 1 : 0,
    plan.threads,
  );
  if (status === -5) return false;
  if (status !== 0) {
    throw new Error(`gatheredProduct: expected status 0 or -5, received ${status}`);
  }
  return true;
}

/** im2col's run: copies the pixels into cols, zeros for padding. */
function _gather(heap: Float32Array): _Visit {
  return (cols, pixels, length) => {
    if (pixels < 0) {
      heap.fill(0, cols, cols + length);
    } else if (length < _SHORT_RUN) {
      for (let j = 0; j < length; j++) heap[cols + j] = heap[pixels + j];
    } else {
      heap.copyWithin(cols, pixels, pixels + length);
    }
  };
}

/** col2im's run: adds cols onto the pixels, dropping padding. */
function _scatterAdd(heap: Float32Array): _Visit {
  return (cols, pixels, length) => {
    if (pixels >= 0) { for (let j = 0; j < length; j++) heap[pixels + j] += heap[cols + j]; }
  };
}

/** Pairs `length` cols values from `cols` with image values from `pixels` (−1: padding). */
type _Visit = (cols: number, pixels: number, length: number) => void;

/**
 * Visits the cols rows of a slice in order, run by run: `visit(cols, pixels, length)` pairs
 * `length` values of cols from `cols` with as many of the image batch from `pixels` (−1 where
 * the filter is over padding). A run is a filter row's KW·C values when the whole row lies
 * inside the image (dilation 1), else one tap's C values.
 */
function _walk(
  slice: ImageSlice,
  imagesOffset: number,
  colsOffset: number,
  visit: _Visit,
): void {
  const { info, b0, images } = slice;
  const { inHeight: h, inWidth: w, inChannels: c, outHeight: oh, outWidth: ow } = info;
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw } = info;
  const { dilationHeight: dh, dilationWidth: dw } = info;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  const run = kw * c;
  const rowStride = w * c;
  let cols = colsOffset;
  for (let b = b0; b < b0 + images; b++) {
    const image = imagesOffset + b * h * rowStride;
    for (let y = 0; y < oh; y++) {
      const y0 = y * sh - top;
      for (let x = 0; x < ow; x++) {
        const x0 = x * sw - left;
        const inside = dw === 1 && x0 >= 0 && x0 + kw <= w;
        for (let i = 0; i < kh; i++) {
          const iy = y0 + i * dh;
          const row = image + iy * rowStride;
          if (iy < 0 || iy >= h || inside) {
            visit(cols, iy < 0 || iy >= h ? -1 : row + x0 * c, run);
            cols += run;
            continue;
          }
          for (let j = 0; j < kw; j++) {
            const ix = x0 + j * dw;
            visit(cols, ix < 0 || ix >= w ? -1 : row + ix * c, c);
            cols += c;
          }
        }
      }
    }
  }
}
