/**
 * A fast `Conv2DBackpropInput` kernel for tfjs's wasm backend, replacing tfjs 4.22.0's own,
 * which is a scalar loop (≈2 GFLOP/s on LeNet's conv2 against ≈22 for the forward pass).
 *
 * The input gradient of a stride-s, dilation-1 convolution is a full correlation of dy with
 * the spatially flipped filter:
 *
 *   dx[b, h, w, ci] = Σ_{kh, kw, co} dy[b, oh, ow, co] · W[kh, kw, ci, co]
 *                     over h = oh·sH + kh − padTop, w = ow·sW + kw − padLeft
 *
 * Let dyₛ be dy with sH − 1 zero rows after every row and sW − 1 zero columns after every
 * column ([B, OH·sH, OW·sW, Cout]; dyₛ = dy for stride 1), and W′[kh, kw, co, ci] =
 * W[KH−1−kh, KW−1−kw, ci, co] (the filter rotated 180° with its channels swapped). Then
 *
 *   dx = conv2d(dyₛ, W′, stride 1, pad top KH−1−padTop, left KW−1−padLeft,
 *               bottom H + padTop − OH·sH, right W + padLeft − OW·sW)
 *
 * So the work runs in the backend's XNNPACK `Conv2D`: a `Reverse` and a `Transpose` of the
 * filter, for stride > 1 one `PadV2` of dy seen as [B, OH, 1, OW, 1, Cout], then one
 * `Conv2D`; every intermediate is released through `backend.disposeData`. Where the bottom
 * (right) pad would be negative, some of each entry's zeros go before it instead; where a
 * pad is negative even so (explicit pads wider than the filter), a `Slice` drops the dy
 * entries that only ever met padding.
 *
 * Its costs: the correlation also multiplies the padding, (H·W)/(OH·OW) times the useful
 * work (2.25 on LeNet's conv2, so ≈10 GFLOP/s of useful work where XNNPACK runs at ≈22),
 * and for stride s the inserted zeros, s² times. With one input channel (Cin = 1, say a
 * first layer on grayscale images) W′ has one output channel, which starves XNNPACK's
 * GEMM tiles; there dx is a `DepthwiseConv2dNative` of dyₛ with W′ per dy channel, then a
 * `Sum` over the channels: on LeNet's conv1 at batch 20, 1.9 ms against 4.6 for the
 * one-channel `Conv2D` and 5 for tfjs's loop. (tfjs computes conv1's dx although nothing
 * reads it: layers' convolutions run tfjs's fused conv2d, whose gradient returns dx and dW
 * together.)
 *
 * Cases it does not handle go to the kernel it replaced (the `fallback`): NCHW (wasm's
 * forward `Conv2D` is NHWC-only), non-float32 inputs and empty tensors.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { WasmBackend, WasmKernelReplacement } from "./wasm_kernel.ts";
import { callWasmKernel, convGradientInfo, wasmReplacement } from "./wasm_kernel.ts";

/** The arguments tfjs passes to a kernel function. */
type _KernelArgs = Parameters<tf.KernelFunc>[0];

/**
 * Computes the input gradient of a 2-D convolution on the wasm backend with one XNNPACK
 * convolution, or through `fallback` for the cases that does not cover (see the module doc).
 *
 * Inputs `dy` [B, OH, OW, Cout] and `filter` [KH, KW, Cin, Cout]; attrs as tfjs's
 * `Conv2DBackpropInputAttrs` (`inputShape` [B, H, W, Cin], `strides`, `pad` as `"valid"`,
 * `"same"`, a number or explicit pairs, `dataFormat`, `dimRoundingMode`). Dilation is 1, as
 * in the op. The result is a new float32 `TensorInfo` of shape `inputShape`, owned by the
 * caller.
 *
 * @param args The kernel arguments: `inputs` ({ dy, filter }), `backend` (the wasm backend)
 *   and `attrs`.
 * @param fallback The kernel function to run the cases this one does not handle (tfjs's own).
 * @returns dx with shape `inputShape`.
 *
 * @example The gradient of a 2×2 filter of ones, stride 1, spreads each dy over four pixels
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { initBackend } from "../backend.ts";
 *
 * await initBackend("wasm"); // registers this kernel
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
export function conv2dBackpropInputWasm(args: _KernelArgs, fallback: tf.KernelFunc): tf.TensorInfo {
  const { dy, filter } = args.inputs;
  const backend = args.backend as unknown as WasmBackend;
  const attrs = args.attrs as unknown as tf.Conv2DBackpropInputAttrs;
  if (dy == null || filter == null) {
    throw new Error(
      `Conv2DBackpropInput (wasm): inputs must be { dy, filter }, received { ${
        Object.keys(args.inputs).join(", ")
      } }`,
    );
  }
  const info = convGradientInfo("Conv2DBackpropInput", {
    input: "input",
    inShape: attrs.inputShape,
    filterShape: filter.shape,
    attrs,
    dy,
  });
  const handled = info.dataFormat === "channelsLast" && dy.dtype === "float32" &&
    filter.dtype === "float32" && tf.util.sizeFromShape(dy.shape) > 0 &&
    tf.util.sizeFromShape(info.inShape) > 0;
  if (!handled) return fallback(args) as tf.TensorInfo;
  const rows = _axisPlan(
    info.filterHeight,
    info.padInfo.top,
    info.inHeight,
    dy.shape[1],
    info.strideHeight,
  );
  const cols = _axisPlan(
    info.filterWidth,
    info.padInfo.left,
    info.inWidth,
    dy.shape[2],
    info.strideWidth,
  );
  if (rows.size <= 0 || cols.size <= 0) {
    // Every dy value multiplies padding only.
    return _call(backend, "Fill", {}, { shape: info.inShape, value: 0, dtype: "float32" });
  }

  const temporaries: tf.TensorInfo[] = [];
  const keep = (t: tf.TensorInfo) => {
    temporaries.push(t);
    return t;
  };
  try {
    const [batch, outHeight, outWidth, channels] = dy.shape;
    let spread = dy;
    if (rows.stride > 1 || cols.stride > 1) {
      const split = keep(_call(backend, "Reshape", { x: dy }, {
        shape: [batch, outHeight, 1, outWidth, 1, channels],
      }));
      const padded = keep(_call(backend, "PadV2", { x: split }, {
        paddings: [[0, 0], [0, 0], rows.zeros, [0, 0], cols.zeros, [0, 0]],
        constantValue: 0,
      }));
      spread = keep(_call(backend, "Reshape", { x: padded }, {
        shape: [batch, outHeight * rows.stride, outWidth * cols.stride, channels],
      }));
    }
    if (rows.size < spread.shape[1] || cols.size < spread.shape[2]) {
      spread = keep(_call(backend, "Slice", { x: spread }, {
        begin: [0, rows.begin, cols.begin, 0],
        size: [-1, rows.size, cols.size, -1],
      }));
    }
    const pad = [[0, 0], rows.pad, cols.pad, [0, 0]];
    const flipped = keep(_call(backend, "Reverse", { x: filter }, { dims: [0, 1] }));
    const [filterHeight, filterWidth, inChannels] = filter.shape;
    if (inChannels === 1) {
      // One output channel starves XNNPACK's GEMM tiles; a depthwise convolution per dy
      // channel, then a sum over them, does the same sum in a fraction of the time.
      const perChannel = keep(_call(backend, "Reshape", { x: flipped }, {
        shape: [filterHeight, filterWidth, channels, 1],
      }));
      const terms = _call(backend, "DepthwiseConv2dNative", { x: spread, filter: perChannel }, {
        strides: [1, 1],
        dilations: [1, 1],
        pad,
      });
      if (channels === 1) return terms;
      keep(terms);
      return _call(backend, "Sum", { x: terms }, { axis: [3], keepDims: true });
    }
    // W′[kh, kw, co, ci] = W[KH−1−kh, KW−1−kw, ci, co].
    const rotated = keep(_call(backend, "Transpose", { x: flipped }, { perm: [0, 1, 3, 2] }));
    return _call(backend, "Conv2D", { x: spread, filter: rotated }, {
      strides: [1, 1],
      dilations: [1, 1],
      pad,
      dataFormat: "NHWC",
    });
  } finally {
    for (const t of temporaries) backend.disposeData(t.dataId);
  }
}

/** How one spatial axis of dy becomes the stride-1 full correlation's input and padding. */
interface _AxisPlan {
  /** The convolution's stride on this axis. */
  stride: number;
  /** Zeros inserted before and after each dy entry (s − 1 in all). */
  zeros: [number, number];
  /** The range of the spread dy the correlation reads (the rest meets only padding). */
  begin: number;
  size: number;
  /** The correlation's zero padding before and after. */
  pad: [number, number];
}

/**
 * Plans one axis for a filter of size k, padding `padBefore`, input size n, dy size o and
 * stride s. The full correlation pads by k − 1 − padBefore before and n + padBefore − o·s
 * after the spread dy; the s − 1 zeros of each entry go after it, or partly before it where
 * that keeps both pads non-negative (so no slice is needed); a pad still negative drops the
 * dy entries that only ever met padding.
 */
function _axisPlan(k: number, padBefore: number, n: number, o: number, s: number): _AxisPlan {
  let before = k - 1 - padBefore;
  let after = n + padBefore - o * s;
  const lead = Math.max(0, Math.min(-after, Math.max(before, 0), s - 1));
  before -= lead;
  after += lead;
  const begin = Math.max(-before, 0);
  const size = o * s - begin - Math.max(-after, 0);
  return {
    stride: s,
    zeros: [lead, s - 1 - lead],
    begin,
    size,
    pad: [Math.max(before, 0), Math.max(after, 0)],
  };
}

/**
 * The registration record that replaces wasm's `Conv2DBackpropInput` with
 * {@linkcode conv2dBackpropInputWasm}, keeping `original` as its fallback (and running
 * `original`'s set-up, which the fallback needs). `initBackend("wasm")` registers it, after
 * unregistering `original`; nothing else should.
 *
 * @param original The wasm kernel being replaced, as `tf.getKernel` returns it.
 * @returns The kernel config to register in its place (its `original` is `original`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { conv2dBackpropInputWasmConfig } from "./conv2d_backprop_input.ts";
 *
 * const original: tf.KernelConfig = {
 *   kernelName: "Conv2DBackpropInput",
 *   backendName: "wasm",
 *   kernelFunc: () => ({ dataId: {}, shape: [], dtype: "float32" }),
 * };
 * const config = conv2dBackpropInputWasmConfig(original);
 * assert.equal(config.kernelName, "Conv2DBackpropInput");
 * assert.equal(config.backendName, "wasm");
 * ```
 */
export function conv2dBackpropInputWasmConfig(
  original: tf.KernelConfig,
): WasmKernelReplacement {
  return wasmReplacement(
    original,
    [tf.Conv2DBackpropInput],
    (_name, args, fallback) => conv2dBackpropInputWasm(args, fallback),
  );
}

/** Runs another wasm kernel (each used here returns a single TensorInfo); the caller owns it. */
function _call(
  backend: WasmBackend,
  kernelName: string,
  inputs: tf.NamedTensorInfoMap,
  attrs: Record<string, unknown>,
): tf.TensorInfo {
  return callWasmKernel("Conv2DBackpropInput", backend, kernelName, inputs, attrs);
}
