/**
 * im2col and col2im, the memory-bound halves of the BLAS convolutions (`blas_kernels.ts`), on
 * the wasm backend's heap. For an NHWC convolution, cols [M, K] holds, per output pixel (M =
 * B·OH·OW), the KH·KW·Cin input values under the filter in (kh, kw, ci) order, zero where the
 * filter reaches into padding; col2im adds such rows back onto the pixels they were read from.
 * Both run in C (`native_library.ts`) when the native kernels are built, else as the
 * JavaScript loops here.
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs";
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
  const { xOffset, colsOffset, info, b0, images } = options;
  const { inHeight: h, inWidth: w, inChannels: c, outHeight: oh, outWidth: ow } = info;
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw } = info;
  const { dilationHeight: dh, dilationWidth: dw } = info;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  const native = nativeKernels();
  if (native !== null) {
    native.bnlab_im2col(heap, xOffset, colsOffset, b0, images, ..._nativeGeometry(info));
    return;
  }
  const run = kw * c;
  const rowStride = w * c;
  let dst = colsOffset;
  for (let b = b0; b < b0 + images; b++) {
    const image = xOffset + b * h * rowStride;
    for (let y = 0; y < oh; y++) {
      const y0 = y * sh - top;
      for (let x = 0; x < ow; x++) {
        const x0 = x * sw - left;
        const inside = dw === 1 && x0 >= 0 && x0 + kw <= w;
        for (let i = 0; i < kh; i++) {
          const iy = y0 + i * dh;
          if (iy < 0 || iy >= h) {
            heap.fill(0, dst, dst + run);
            dst += run;
            continue;
          }
          const row = image + iy * rowStride;
          if (inside) {
            const src = row + x0 * c;
            if (run < _SHORT_RUN) {
              for (let j = 0; j < run; j++) heap[dst + j] = heap[src + j];
            } else {
              heap.copyWithin(dst, src, src + run);
            }
            dst += run;
            continue;
          }
          for (let j = 0; j < kw; j++) {
            const ix = x0 + j * dw;
            if (ix < 0 || ix >= w) {
              for (let ci = 0; ci < c; ci++) heap[dst + ci] = 0;
            } else {
              const src = row + ix * c;
              for (let ci = 0; ci < c; ci++) heap[dst + ci] = heap[src + ci];
            }
            dst += c;
          }
        }
      }
    }
  }
}

/**
 * Adds cols rows for `images` images from `b0` back onto dx (the reverse of
 * {@linkcode im2col}): each value goes to the input pixel and channel it was read from;
 * values over padding are dropped.
 *
 * @param heap The wasm heap as floats.
 * @param options Where cols (this slice's rows) and dx (the whole batch) start, in floats,
 *   and the slice.
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
  options: ImageSlice & { colsOffset: number; dxOffset: number },
): void {
  const { colsOffset, dxOffset, info, b0, images } = options;
  const { inHeight: h, inWidth: w, inChannels: c, outHeight: oh, outWidth: ow } = info;
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw } = info;
  const { dilationHeight: dh, dilationWidth: dw } = info;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  const native = nativeKernels();
  if (native !== null) {
    native.bnlab_col2im(heap, colsOffset, dxOffset, b0, images, ..._nativeGeometry(info));
    return;
  }
  const run = kw * c;
  const rowStride = w * c;
  let src = colsOffset;
  for (let b = b0; b < b0 + images; b++) {
    const image = dxOffset + b * h * rowStride;
    for (let y = 0; y < oh; y++) {
      const y0 = y * sh - top;
      for (let x = 0; x < ow; x++) {
        const x0 = x * sw - left;
        const inside = dw === 1 && x0 >= 0 && x0 + kw <= w;
        for (let i = 0; i < kh; i++) {
          const iy = y0 + i * dh;
          if (iy < 0 || iy >= h) {
            src += run;
            continue;
          }
          const row = image + iy * rowStride;
          if (inside) {
            const dst = row + x0 * c;
            for (let j = 0; j < run; j++) heap[dst + j] += heap[src + j];
            src += run;
            continue;
          }
          for (let j = 0; j < kw; j++) {
            const ix = x0 + j * dw;
            if (ix >= 0 && ix < w) {
              const dst = row + ix * c;
              for (let ci = 0; ci < c; ci++) heap[dst + ci] += heap[src + ci];
            }
            src += c;
          }
        }
      }
    }
  }
}
