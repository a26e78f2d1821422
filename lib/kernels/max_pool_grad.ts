/**
 * A fast `MaxPoolGrad` kernel for tfjs's wasm backend where pooling windows do not overlap,
 * replacing tfjs 4.22.0's own: a LeNet step at batch 20 spends 5.7 ms in its two calls
 * (the forward `MaxPool`s take ≈0.25 ms) and 1.6 ms in this kernel's. tfjs's wasm kernel
 * also gives a tie to another position than its cpu kernel; this one follows cpu.
 *
 * With windows that do not overlap (filter ≤ stride on both axes, dilation 1), every input
 * position lies in at most one window, and the gradient is
 *
 *   dx[b, h, w, c] = dy[b, oh, ow, c] where (h, w) is the argmax of window (oh, ow) of
 *                    channel c, else 0
 *
 * with tfjs cpu's argmax (`maxPoolPositions`): the first position in row-major window order
 * whose value is strictly greater than all before it, starting from −∞. So ties go to the
 * first (top-left-most) tied position, NaN is never chosen, and a window that is all −∞ or
 * NaN passes no gradient. The value written is 0 + dy (so −0 becomes +0), as cpu sums it.
 *
 * The kernel is one loop over the wasm heap, in C when the native kernels are built
 * (`native_library.ts`), else in JavaScript: per output pixel it scans the window
 * once for all channels and writes dy at the argmax of each; the rest of dx is zeroed with
 * `fill`. In C, 2×2 windows at stride 2 that tile the input exactly (LeNet's) take a
 * branch-free path that writes each window's four values eight channels at a time, then
 * four, then one (on random data, 0.85 → 0.06 ms on [20, 24, 24, 20]: the argmax branches
 * were mispredicted; the channels past the last eight must be branch-free too, or LeNet's 20
 * channels spend most of the time on their last four).
 * (Composing backend kernels costs more: on [20, 24, 24, 20] a broadcasting
 * `Equal` of x against the pooled max alone takes 20 ms, and the cheapest exact composition
 * of `MaxPool`, `Sub`, `Cast` and `Mul` over the window layout needs about eight full-size
 * passes of ≈0.6–0.9 ms each.)
 *
 * Cases it does not handle go to the kernel it replaced (the `fallback`): overlapping
 * windows (filter > stride), non-float32 inputs and empty tensors.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { WasmBackend, WasmKernelReplacement } from "./wasm_kernel.ts";
import { nativeKernels } from "./native_library.ts";
import { bringOntoHeap, wasmReplacement } from "./wasm_kernel.ts";

/** The arguments tfjs passes to a kernel function. */
type _KernelArgs = Parameters<tf.KernelFunc>[0];

/**
 * Computes the input gradient of a 2-D max pool on the wasm backend when its windows do not
 * overlap, or through `fallback` for the cases it does not cover (see the module doc).
 *
 * Inputs `dy` [B, OH, OW, C], `input` [B, H, W, C] (the pool's x) and `output` (the pool's
 * result, unused: the argmax is recomputed from x, as on cpu); attrs as tfjs's
 * `MaxPoolGradAttrs` (`filterSize`, `strides`, `pad`, `dimRoundingMode`). The result is a
 * new float32 `TensorInfo` of x's shape, owned by the caller.
 *
 * @param args The kernel arguments: `inputs` ({ dy, input, output }), `backend` (the wasm
 *   backend) and `attrs`.
 * @param fallback The kernel function to run the cases this one does not handle (tfjs's own).
 * @returns dx with x's shape.
 *
 * @example A tie goes to the first position of the window in row-major order
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { initBackend } from "../backend.ts";
 *
 * await initBackend("wasm"); // registers this kernel
 * const x = tf.tensor4d([1, 3, 3, 2], [1, 2, 2, 1]);
 * const dx = tf.grad((x: tf.Tensor) => tf.maxPool(x as tf.Tensor4D, 2, 2, "valid").mul(5).sum())(x);
 * assert.deepEqual([...await dx.data()], [0, 5, 0, 0]);
 * tf.dispose([x, dx]);
 * ```
 */
export function maxPoolGradWasm(args: _KernelArgs, fallback: tf.KernelFunc): tf.TensorInfo {
  const { dy, input } = args.inputs;
  const backend = args.backend as unknown as WasmBackend;
  const attrs = args.attrs as unknown as tf.MaxPoolGradAttrs;
  if (dy == null || input == null) {
    throw new Error(
      `MaxPoolGrad (wasm): inputs must be { dy, input, output }, received { ${
        Object.keys(args.inputs).join(", ")
      } }`,
    );
  }
  const info = tf.backend_util.computePool2DInfo(
    input.shape as [number, number, number, number],
    attrs.filterSize,
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
  );
  if (!tf.util.arraysEqual(dy.shape, info.outShape)) {
    throw new Error(
      `MaxPoolGrad (wasm): dy must have the pool's output shape [${info.outShape}] for ` +
        `input [${input.shape}], received [${dy.shape}]`,
    );
  }
  const handled = input.dtype === "float32" && dy.dtype === "float32" &&
    info.filterHeight <= info.strideHeight && info.filterWidth <= info.strideWidth &&
    tf.util.sizeFromShape(input.shape) > 0 && tf.util.sizeFromShape(dy.shape) > 0;
  if (!handled) return fallback(args) as tf.TensorInfo;

  // Allocate and bring the inputs onto the heap first: growing the heap would detach views
  // taken before.
  const out = backend.makeOutput(input.shape, "float32");
  bringOntoHeap(backend, [input, dy]);
  const x = backend.typedArrayFromHeap(input) as Float32Array;
  const gradient = backend.typedArrayFromHeap(dy) as Float32Array;
  const dx = backend.typedArrayFromHeap(out) as Float32Array;
  const { batchSize, inHeight, inWidth, inChannels: channels, outHeight, outWidth } = info;
  const { filterHeight, filterWidth, strideHeight, strideWidth } = info;
  const { top, left } = info.padInfo;
  const native = nativeKernels();
  if (native !== null) {
    // The same loop in C (native/bnlab_kernels.c), on the heap under the three views.
    const heap = new Float32Array(x.buffer);
    const floats = Float32Array.BYTES_PER_ELEMENT;
    native.bnlab_max_pool_grad(
      heap,
      x.byteOffset / floats,
      gradient.byteOffset / floats,
      dx.byteOffset / floats,
      batchSize,
      inHeight,
      inWidth,
      channels,
      outHeight,
      outWidth,
      filterHeight,
      filterWidth,
      strideHeight,
      strideWidth,
      top,
      left,
    );
    return out;
  }
  dx.fill(0);
  const best = new Float64Array(channels);
  const where = new Int32Array(channels);
  for (let b = 0; b < batchSize; b++) {
    for (let oh = 0; oh < outHeight; oh++) {
      const rowStart = Math.max(oh * strideHeight - top, 0);
      const rowEnd = Math.min(oh * strideHeight - top + filterHeight, inHeight);
      for (let ow = 0; ow < outWidth; ow++) {
        const colStart = Math.max(ow * strideWidth - left, 0);
        const colEnd = Math.min(ow * strideWidth - left + filterWidth, inWidth);
        best.fill(-Infinity);
        where.fill(-1);
        for (let h = rowStart; h < rowEnd; h++) {
          for (let w = colStart; w < colEnd; w++) {
            const base = ((b * inHeight + h) * inWidth + w) * channels;
            for (let c = 0; c < channels; c++) {
              const value = x[base + c];
              if (value > best[c]) {
                best[c] = value;
                where[c] = base;
              }
            }
          }
        }
        const dyBase = ((b * outHeight + oh) * outWidth + ow) * channels;
        for (let c = 0; c < channels; c++) {
          if (where[c] >= 0) dx[where[c] + c] = 0 + gradient[dyBase + c];
        }
      }
    }
  }
  return out;
}

/**
 * The registration record that replaces wasm's `MaxPoolGrad` with
 * {@linkcode maxPoolGradWasm}, keeping `original` as its fallback (and running `original`'s
 * set-up, which the fallback needs). `initBackend("wasm")` registers it, after unregistering
 * `original`; nothing else should.
 *
 * @param original The wasm kernel being replaced, as `tf.getKernel` returns it.
 * @returns The kernel config to register in its place (its `original` is `original`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { maxPoolGradWasmConfig } from "./max_pool_grad.ts";
 *
 * const original: tf.KernelConfig = {
 *   kernelName: "MaxPoolGrad",
 *   backendName: "wasm",
 *   kernelFunc: () => ({ dataId: {}, shape: [], dtype: "float32" }),
 * };
 * const config = maxPoolGradWasmConfig(original);
 * assert.equal(config.kernelName, "MaxPoolGrad");
 * assert.equal(config.original, original);
 * ```
 */
export function maxPoolGradWasmConfig(original: tf.KernelConfig): WasmKernelReplacement {
  return wasmReplacement(
    original,
    [tf.MaxPoolGrad],
    (_name, args, fallback) => maxPoolGradWasm(args, fallback),
  );
}
