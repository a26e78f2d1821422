/**
 * A fast `Conv2DBackpropInput` kernel for tfjs's wasm backend, replacing tfjs 4.22.0's own,
 * which is a scalar loop (≈2 GFLOP/s on LeNet's conv2 against ≈24 for the forward pass).
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
 * (a negative bottom or right pad instead slices that many trailing zero rows or columns
 * off dyₛ). So the work runs in the backend's XNNPACK `Conv2D`: a `Reverse` and a
 * `Transpose` of the filter, for stride > 1 a `PadV2` of dy seen as
 * [B, OH, 1, OW, 1, Cout] (and at most one `Slice`), then one `Conv2D`. Every intermediate
 * is released through `backend.disposeData`. For stride s the convolution does s² times
 * the useful work (it multiplies the inserted zeros), still far faster than the loop.
 *
 * Cases it does not handle go to the kernel it replaced (the `fallback`): NCHW (wasm's
 * forward `Conv2D` is NHWC-only), non-float32 inputs, empty tensors, and explicit pads
 * larger than KH − 1 (or KW − 1), whose full-correlation pad would be negative.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { WasmKernelReplacement } from "./mod.ts";

/** The wasm backend methods this kernel uses (tfjs's `BackendWasm` has them). */
interface _Backend {
  disposeData(dataId: tf.DataId): boolean;
}

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
  const backend = args.backend as _Backend;
  const attrs = args.attrs as unknown as tf.Conv2DBackpropInputAttrs;
  if (dy == null || filter == null) {
    throw new Error(
      `Conv2DBackpropInput (wasm): inputs must be { dy, filter }, received { ${
        Object.keys(args.inputs).join(", ")
      } }`,
    );
  }
  const dataFormat = tf.backend_util.convertConv2DDataFormat(attrs.dataFormat);
  const info = tf.backend_util.computeConv2DInfo(
    attrs.inputShape,
    filter.shape as [number, number, number, number],
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    dataFormat,
  );
  if (!tf.util.arraysEqual(dy.shape, info.outShape)) {
    throw new Error(
      `Conv2DBackpropInput (wasm): dy must have the convolution's output shape ` +
        `[${info.outShape}] for input [${attrs.inputShape}] and filter [${filter.shape}], ` +
        `received [${dy.shape}]`,
    );
  }
  const { filterHeight, filterWidth, outHeight, outWidth, strideHeight, strideWidth } = info;
  const top = filterHeight - 1 - info.padInfo.top;
  const left = filterWidth - 1 - info.padInfo.left;
  const handled = info.dataFormat === "channelsLast" && dy.dtype === "float32" &&
    filter.dtype === "float32" && top >= 0 && left >= 0 &&
    tf.util.sizeFromShape(dy.shape) > 0 && tf.util.sizeFromShape(info.inShape) > 0;
  if (!handled) return fallback(args) as tf.TensorInfo;

  // Pads of the stride-1 convolution over dyₛ ([B, OH·sH, OW·sW, Cout]).
  const bottom = info.inHeight + info.padInfo.top - outHeight * strideHeight;
  const right = info.inWidth + info.padInfo.left - outWidth * strideWidth;

  const temporaries: tf.TensorInfo[] = [];
  const keep = (t: tf.TensorInfo) => {
    temporaries.push(t);
    return t;
  };
  try {
    // W′[kh, kw, co, ci] = W[KH−1−kh, KW−1−kw, ci, co].
    const flipped = keep(_call(backend, "Reverse", { x: filter }, { dims: [0, 1] }));
    const rotated = keep(_call(backend, "Transpose", { x: flipped }, { perm: [0, 1, 3, 2] }));
    let spread = dy;
    if (strideHeight > 1 || strideWidth > 1) {
      const [batch, , , channels] = dy.shape;
      const split = keep(_call(backend, "Reshape", { x: dy }, {
        shape: [batch, outHeight, 1, outWidth, 1, channels],
      }));
      const padded = keep(_call(backend, "PadV2", { x: split }, {
        paddings: [[0, 0], [0, 0], [0, strideHeight - 1], [0, 0], [0, strideWidth - 1], [0, 0]],
        constantValue: 0,
      }));
      spread = keep(_call(backend, "Reshape", { x: padded }, {
        shape: [batch, outHeight * strideHeight, outWidth * strideWidth, channels],
      }));
    }
    if (bottom < 0 || right < 0) {
      const size = [
        -1,
        outHeight * strideHeight + Math.min(bottom, 0),
        outWidth * strideWidth + Math.min(right, 0),
        -1,
      ];
      spread = keep(_call(backend, "Slice", { x: spread }, { begin: [0, 0, 0, 0], size }));
    }
    return _call(backend, "Conv2D", { x: spread, filter: rotated }, {
      strides: [1, 1],
      dilations: [1, 1],
      pad: [[0, 0], [top, Math.max(bottom, 0)], [left, Math.max(right, 0)], [0, 0]],
      dataFormat: "NHWC",
    });
  } finally {
    for (const t of temporaries) backend.disposeData(t.dataId);
  }
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
  if (original.kernelName !== tf.Conv2DBackpropInput || original.backendName !== "wasm") {
    throw new Error(
      `conv2dBackpropInputWasmConfig: original must be wasm's Conv2DBackpropInput, received ` +
        `${original.kernelName} for ${original.backendName}`,
    );
  }
  const fallback = original.kernelFunc;
  return {
    kernelName: tf.Conv2DBackpropInput,
    backendName: "wasm",
    setupFunc: original.setupFunc,
    disposeFunc: original.disposeFunc,
    kernelFunc: (args) => conv2dBackpropInputWasm(args, fallback),
    original,
  };
}

/** Runs another wasm kernel on TensorInfos; the caller owns (and disposes) its output. */
function _call(
  backend: _Backend,
  kernelName: string,
  inputs: tf.NamedTensorInfoMap,
  attrs: Record<string, unknown>,
): tf.TensorInfo {
  const kernel = tf.getKernel(kernelName, "wasm");
  if (kernel == null) {
    throw new Error(
      `Conv2DBackpropInput (wasm): needs the wasm kernel ${kernelName}, received none registered`,
    );
  }
  // Reverse, Transpose, Reshape, PadV2, Slice and Conv2D each return a single TensorInfo.
  return kernel.kernelFunc({ inputs, backend, attrs: attrs as tf.NamedAttrMap }) as tf.TensorInfo;
}
