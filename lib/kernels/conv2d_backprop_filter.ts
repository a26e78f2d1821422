/**
 * The `Conv2DBackpropFilter` kernel for tfjs's wasm backend, which tfjs 4.22.0 lacks
 * (so `tf.layers.conv2d` cannot train on wasm without it).
 *
 * The filter gradient of a stride-s, dilation-1 convolution is itself a convolution:
 *
 *   dW[kh, kw, ci, co] = Σ_{b, oh, ow} x[b, oh·sH + kh − padTop, ow·sW + kw − padLeft, ci]
 *                                   · dy[b, oh, ow, co]
 *
 * Reading ci as the batch, b as the input channel and (oh, ow) as the filter taps, this is
 * the forward convolution of x′ = xᵀ [Cin, H, W, B] with the filter dy′ [OH, OW, B, Cout],
 * stride 1 and dilation (sH, sW), whose output [Cin, KH, KW, Cout] is dW with its first
 * axis moved to third. The bottom and right zero padding are chosen so the output is
 * exactly KH × KW: bottom = KH + (OH − 1)·sH − H − padTop (likewise right); where that is
 * negative, the unused bottom rows (right columns) of x′ are sliced off instead.
 * So the work runs in the backend's own XNNPACK convolution: three transposes, at most one
 * slice, one `Conv2D`, all called as kernel functions on `TensorInfo`s, with every
 * intermediate released through `backend.disposeData`.
 *
 * Why not im2col + one MatMul: on LeNet's conv2 at batch 128 it ran at 8.9 GFLOP/s against
 * 18.5 for this (the 25 patch slices are JavaScript copies), and it was no faster on conv1.
 * Either way XNNPACK packs a dy-sized operand on every call (≈10 ms for conv1 at batch 128),
 * which is most of the gap to the forward pass.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { callWasmKernel, convGradientInfo, type WasmBackend } from "./wasm_kernel.ts";

/**
 * Computes the filter gradient of a 2-D convolution on the wasm backend.
 *
 * Inputs `x` [B, H, W, Cin] and `dy` [B, OH, OW, Cout] (NCHW: [B, Cin, H, W] and
 * [B, Cout, OH, OW]), both float32; attrs as tfjs's `Conv2DBackpropFilterAttrs`
 * (`strides`, `pad` as `"valid"`, `"same"`, a number or explicit pairs, `dataFormat`,
 * `dimRoundingMode`, `filterShape` [KH, KW, Cin, Cout]). Dilation is 1, as in the op.
 * The result is a new float32 `TensorInfo` of shape `filterShape`, owned by the caller.
 *
 * @param args The kernel arguments: `inputs` ({ x, dy }), `backend` (the wasm backend)
 *   and `attrs`.
 * @returns dW with shape `filterShape`.
 *
 * @example Every tap of a 2×2 filter over a 3×3 image of ones sums four ones
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { initBackend } from "../backend.ts";
 *
 * await initBackend("wasm"); // registers this kernel
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
export function conv2dBackpropFilterWasm(
  args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap },
): tf.TensorInfo {
  const { x, dy } = args.inputs;
  const backend = args.backend as unknown as WasmBackend;
  const attrs = args.attrs as unknown as tf.Conv2DBackpropFilterAttrs;
  if (x == null || dy == null) {
    throw new Error(
      `Conv2DBackpropFilter (wasm): inputs must be { x, dy }, received { ${
        Object.keys(args.inputs).join(", ")
      } }`,
    );
  }
  if (x.dtype !== "float32" || dy.dtype !== "float32") {
    throw new Error(
      `Conv2DBackpropFilter (wasm): x and dy must be float32, received x ${x.dtype} and dy ${dy.dtype}`,
    );
  }
  const info = convGradientInfo("Conv2DBackpropFilter", {
    input: "x",
    inShape: x.shape,
    filterShape: attrs.filterShape,
    attrs,
    dy,
  });
  if (tf.util.sizeFromShape(x.shape) === 0 || tf.util.sizeFromShape(dy.shape) === 0) {
    // An empty sum; XNNPACK rejects convolutions with zero channels.
    return _call(backend, "Fill", {}, { shape: attrs.filterShape, value: 0, dtype: "float32" });
  }
  const channelsLast = info.dataFormat === "channelsLast";
  const { inHeight, inWidth, filterHeight, filterWidth, outHeight, outWidth } = info;
  const { strideHeight, strideWidth } = info;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  const bottom = filterHeight + (outHeight - 1) * strideHeight - inHeight - top;
  const right = filterWidth + (outWidth - 1) * strideWidth - inWidth - left;

  const temporaries: tf.TensorInfo[] = [];
  const keep = (t: tf.TensorInfo) => {
    temporaries.push(t);
    return t;
  };
  try {
    // x′ [Cin, H, W, B] and dy′ [OH, OW, B, Cout], from NHWC or NCHW.
    let xT = keep(
      _call(backend, "Transpose", { x }, { perm: channelsLast ? [3, 1, 2, 0] : [1, 2, 3, 0] }),
    );
    if (bottom < 0 || right < 0) {
      const size = [-1, inHeight + Math.min(bottom, 0), inWidth + Math.min(right, 0), -1];
      xT = keep(_call(backend, "Slice", { x: xT }, { begin: [0, 0, 0, 0], size }));
    }
    const dyT = keep(
      _call(backend, "Transpose", { x: dy }, { perm: channelsLast ? [1, 2, 0, 3] : [2, 3, 0, 1] }),
    );
    const pad = [[0, 0], [top, Math.max(bottom, 0)], [left, Math.max(right, 0)], [0, 0]];
    const dwT = keep(_call(backend, "Conv2D", { x: xT, filter: dyT }, {
      strides: [1, 1],
      dilations: [strideHeight, strideWidth],
      pad,
      dataFormat: "NHWC",
    }));
    return _call(backend, "Transpose", { x: dwT }, { perm: [1, 2, 0, 3] });
  } finally {
    for (const t of temporaries) backend.disposeData(t.dataId);
  }
}

/**
 * The registration record of {@linkcode conv2dBackpropFilterWasm}; `initBackend("wasm")`
 * registers it, nothing else should.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { conv2dBackpropFilterWasmConfig } from "./conv2d_backprop_filter.ts";
 *
 * assert.equal(conv2dBackpropFilterWasmConfig.kernelName, "Conv2DBackpropFilter");
 * assert.equal(conv2dBackpropFilterWasmConfig.backendName, "wasm");
 * ```
 */
export const conv2dBackpropFilterWasmConfig: tf.KernelConfig = {
  kernelName: tf.Conv2DBackpropFilter,
  backendName: "wasm",
  kernelFunc: conv2dBackpropFilterWasm as tf.KernelFunc,
};

/** Runs another wasm kernel (each used here returns a single TensorInfo); the caller owns it. */
function _call(
  backend: WasmBackend,
  kernelName: string,
  inputs: tf.NamedTensorInfoMap,
  attrs: Record<string, unknown>,
): tf.TensorInfo {
  return callWasmKernel("Conv2DBackpropFilter", backend, kernelName, inputs, attrs);
}
