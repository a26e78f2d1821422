/**
 * 3×3 convolutions at stride 1 with one pixel of zero padding (tfjs's `same`; ResNet-20's)
 * producing 16 or 32 channels ({@linkcode CONV3X3_CHANNELS}), computed directly in C (`bnlab_conv3x3` in
 * `native/bnlab_kernels.c`): the forward pass, the input gradient, and the filter gradient,
 * without im2col. The BLAS kernels (`blas_kernels.ts`) call these for the cases
 * {@linkcode conv3x3Usable} accepts, where products of so few columns run below the
 * machine's rate. The sums run in another order than the BLAS's (with fused
 * multiply-adds where the processor has them): the same values within float32 rounding
 * (tests/conv3x3_test.ts), the same floats on one thread or two.
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs";
import { blasSliceThreads } from "./blas.ts";
import { nativeKernels } from "./native_library.ts";
import { floatOffset, heapFloats, type WasmBackend } from "./wasm_kernel.ts";

/**
 * The channel counts the direct kernels handle on the side they produce (the forward pass's
 * and the filter gradient's output channels, the input gradient's input channels).
 */
export const CONV3X3_CHANNELS: readonly number[] = [16, 32];

/** Whether the direct kernels may run: on unless switched off by {@linkcode setConv3x3Enabled}. */
let _enabled = true;

/**
 * Switches the direct kernels off (the BLAS path runs) or back on, for comparisons.
 *
 * @param enabled Whether they may run.
 * @returns Whether they could run before the call.
 *
 * @example
 * ```ts
 * import { setConv3x3Enabled } from "./conv3x3.ts";
 * const previous = setConv3x3Enabled(false);
 * setConv3x3Enabled(previous);
 * ```
 */
export function setConv3x3Enabled(enabled: boolean): boolean {
  const previous = _enabled;
  _enabled = enabled;
  return previous;
}

/**
 * Whether a convolution's geometry is one the direct kernels compute: NHWC, a 3×3 filter at
 * stride 1 and dilation 1, one pixel of padding on every side (output size = input size),
 * the channels of one side (output channels for the forward pass and the filter gradient,
 * input channels for the input gradient) one of {@linkcode CONV3X3_CHANNELS}, and the native
 * kernels on.
 *
 * @param info The convolution's geometry.
 * @param side `forward` (and filter gradient): output channels; `input`: input channels.
 * @returns True when the direct kernels take it.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { conv3x3Usable } from "./conv3x3.ts";
 *
 * const info = tf.backend_util.computeConv2DInfo([2, 8, 8, 4], [3, 3, 4, 16], 1, 1, "same");
 * console.log(typeof conv3x3Usable(info, "forward")); // boolean
 * ```
 */
export function conv3x3Usable(
  info: tf.backend_util.Conv2DInfo,
  side: "forward" | "input",
): boolean {
  if (!_enabled || nativeKernels() === null) return false;
  const channels = side === "forward" ? info.outChannels : info.inChannels;
  return CONV3X3_CHANNELS.includes(channels) && info.dataFormat === "channelsLast" &&
    info.filterHeight === 3 && info.filterWidth === 3 &&
    info.strideHeight === 1 && info.strideWidth === 1 &&
    info.dilationHeight === 1 && info.dilationWidth === 1 &&
    info.padInfo.top === 1 && info.padInfo.left === 1 &&
    info.outHeight === info.inHeight && info.outWidth === info.inWidth;
}

/**
 * The forward pass into `out` ([B, H, W, Cout]), or with `accumulate` added to its values (a
 * bias written there first).
 *
 * @param backend The wasm backend.
 * @param options x [B, H, W, Cin], the filter [3, 3, Cin, Cout], out, the geometry, accumulate.
 *
 * @example An inner pixel of ones under a filter of ones sums nine ones
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { initBackend } from "../backend.ts";
 * import { conv3x3Forward, conv3x3Usable } from "./conv3x3.ts";
 * import type { WasmBackend } from "./wasm_kernel.ts";
 *
 * await initBackend("wasm");
 * const x = tf.ones([1, 4, 4, 2]);
 * const filter = tf.ones([3, 3, 2, 16]);
 * const info = tf.backend_util.computeConv2DInfo([1, 4, 4, 2], [3, 3, 2, 16], 1, 1, "same");
 * if (conv3x3Usable(info, "forward")) {
 *   const backend = tf.backend() as unknown as WasmBackend;
 *   const out = backend.makeOutput(info.outShape, "float32");
 *   conv3x3Forward(backend, { x, filter, out, info, accumulate: false });
 *   const y = tf.engine().makeTensorFromTensorInfo(out);
 *   console.log((await y.data())[5 * 16]); // 18 (3·3 taps · 2 channels)
 *   y.dispose();
 * }
 * tf.dispose([x, filter]);
 * ```
 */
export function conv3x3Forward(
  backend: WasmBackend,
  options: {
    x: tf.TensorInfo;
    filter: tf.TensorInfo;
    out: tf.TensorInfo;
    info: tf.backend_util.Conv2DInfo;
    accumulate: boolean;
  },
): void {
  const { x, filter, out, info, accumulate } = options;
  nativeKernels()!.bnlab_conv3x3(
    heapFloats(backend, [x, filter]),
    floatOffset(backend, x),
    floatOffset(backend, filter),
    floatOffset(backend, out),
    info.batchSize,
    info.inHeight,
    info.inWidth,
    info.inChannels,
    info.outChannels,
    0,
    accumulate ? 1 : 0,
    blasSliceThreads(),
  );
}

/**
 * The input gradient dx [B, H, W, Cin] of a convolution from Cin channels to Cout, from dy
 * [B, H, W, Cout] and its filter [3, 3, Cin, Cout], into `out`.
 *
 * @param backend The wasm backend.
 * @param options dy, the filter, out and the geometry of the forward convolution.
 *
 * @example The gradient at an inner pixel gathers nine taps of every output channel
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { initBackend } from "../backend.ts";
 * import { conv3x3Input, conv3x3Usable } from "./conv3x3.ts";
 * import type { WasmBackend } from "./wasm_kernel.ts";
 *
 * await initBackend("wasm");
 * const dy = tf.ones([1, 4, 4, 2]);
 * const filter = tf.ones([3, 3, 16, 2]);
 * const info = tf.backend_util.computeConv2DInfo([1, 4, 4, 16], [3, 3, 16, 2], 1, 1, "same");
 * if (conv3x3Usable(info, "input")) {
 *   const backend = tf.backend() as unknown as WasmBackend;
 *   const out = backend.makeOutput(info.inShape, "float32");
 *   conv3x3Input(backend, { dy, filter, out, info });
 *   const dx = tf.engine().makeTensorFromTensorInfo(out);
 *   console.log((await dx.data())[5 * 16]); // 18
 *   dx.dispose();
 * }
 * tf.dispose([dy, filter]);
 * ```
 */
export function conv3x3Input(
  backend: WasmBackend,
  options: {
    dy: tf.TensorInfo;
    filter: tf.TensorInfo;
    out: tf.TensorInfo;
    info: tf.backend_util.Conv2DInfo;
  },
): void {
  const { dy, filter, out, info } = options;
  nativeKernels()!.bnlab_conv3x3(
    heapFloats(backend, [dy, filter]),
    floatOffset(backend, dy),
    floatOffset(backend, filter),
    floatOffset(backend, out),
    info.batchSize,
    info.inHeight,
    info.inWidth,
    info.outChannels,
    info.inChannels,
    1,
    0,
    blasSliceThreads(),
  );
}

/**
 * The filter gradient dW [3, 3, Cin, Cout] from x [B, H, W, Cin] and dy [B, H, W, Cout], into
 * `out`.
 *
 * @param backend The wasm backend.
 * @param options x, dy, out and the geometry.
 *
 * @example Ones against ones: the center tap sees every pixel, a corner tap four of nine
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { initBackend } from "../backend.ts";
 * import { conv3x3Filter, conv3x3Usable } from "./conv3x3.ts";
 * import type { WasmBackend } from "./wasm_kernel.ts";
 *
 * await initBackend("wasm");
 * const x = tf.ones([1, 3, 3, 1]);
 * const dy = tf.ones([1, 3, 3, 16]);
 * const info = tf.backend_util.computeConv2DInfo([1, 3, 3, 1], [3, 3, 1, 16], 1, 1, "same");
 * if (conv3x3Usable(info, "forward")) {
 *   const backend = tf.backend() as unknown as WasmBackend;
 *   const out = backend.makeOutput([3, 3, 1, 16], "float32");
 *   conv3x3Filter(backend, { x, dy, out, info });
 *   const dw = tf.engine().makeTensorFromTensorInfo(out);
 *   const values = await dw.array() as number[][][][];
 *   console.log(values[1][1][0][0], values[0][0][0][0]); // 9 4
 *   dw.dispose();
 * }
 * tf.dispose([x, dy]);
 * ```
 */
export function conv3x3Filter(
  backend: WasmBackend,
  options: {
    x: tf.TensorInfo;
    dy: tf.TensorInfo;
    out: tf.TensorInfo;
    info: tf.backend_util.Conv2DInfo;
  },
): void {
  const { x, dy, out, info } = options;
  nativeKernels()!.bnlab_conv3x3_filter(
    heapFloats(backend, [x, dy]),
    floatOffset(backend, x),
    floatOffset(backend, dy),
    floatOffset(backend, out),
    info.batchSize,
    info.inHeight,
    info.inWidth,
    info.inChannels,
    info.outChannels,
    blasSliceThreads(),
  );
}
