/**
 * Batch norm's running-average update as one kernel on the cpu and wasm backends:
 *
 *     running ← running·keep + (value·factor)·(1 − keep)
 *
 * with the floats of the tfjs ops `lib/norms/batch_norm_kernels.ts` writes it with (`tf.add(tf.mul(running,
 * keep), tf.mul(value, 1 − keep))`, value first multiplied by `factor` for PyTorch's unbiased
 * variance): every product and the sum rounded to float32, the constants float32 as tfjs makes
 * them. (Each float32 product or sum computed in double and rounded once is the float32
 * result: double has more than twice float32's precision.)
 *
 * Why a kernel: the update runs inside the training step's gradient tape, where each of its
 * ops is recorded and saves its inputs, and each scalar operand is a tensor made from a
 * JavaScript number. With bnlab's BatchNorm on LeNet (three layers, two statistics each) those
 * ops cost a noticeable share of a training step on wasm; one kernel call per statistic
 * records no saved inputs (it has no gradient: the update is not differentiated).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { RUNNING_AVERAGE, type RunningAverageAttrs } from "../named_kernels.ts";
import { bringOntoHeap, type WasmBackend } from "./wasm_kernel.ts";

export { RUNNING_AVERAGE, type RunningAverageAttrs };

/** The cpu and wasm backend methods this kernel uses: wasm's, or cpu's data store. */
type _Backend = Partial<Pick<WasmBackend, "makeOutput" | "typedArrayFromHeap">> & {
  data?: { get(dataId: tf.DataId): { values: Float32Array } };
  makeTensorInfo?(shape: number[], dtype: tf.DataType, values: Float32Array): tf.TensorInfo;
};

/** The update on plain arrays: `out[i]` from `running[i]` and `value[i]`. */
function _update(
  running: Float32Array,
  value: Float32Array,
  out: Float32Array,
  { keep, complement, factor }: RunningAverageAttrs,
): void {
  const k = Math.fround(keep);
  const c = Math.fround(complement);
  const f = Math.fround(factor);
  for (let i = 0; i < out.length; i++) {
    const v = Math.fround(value[i] * f);
    out[i] = Math.fround(Math.fround(running[i] * k) + Math.fround(v * c));
  }
}

function _check(running: tf.TensorInfo, value: tf.TensorInfo): void {
  const size = tf.util.sizeFromShape(running.shape);
  if (running.dtype !== "float32" || value.dtype !== "float32") {
    throw new Error(
      `${RUNNING_AVERAGE}: expected float32 running and value, received ${running.dtype} and ` +
        value.dtype,
    );
  }
  if (tf.util.sizeFromShape(value.shape) !== size) {
    throw new Error(
      `${RUNNING_AVERAGE}: expected a value with ${size} elements (running's shape ` +
        `[${running.shape}]), received shape [${value.shape}]`,
    );
  }
}

function _kernel(args: Parameters<tf.KernelFunc>[0]): tf.TensorInfo {
  const { running, value } = args.inputs as { running: tf.TensorInfo; value: tf.TensorInfo };
  const attrs = args.attrs as unknown as RunningAverageAttrs;
  _check(running, value);
  const backend = args.backend as unknown as _Backend;
  if (backend.makeOutput !== undefined && backend.typedArrayFromHeap !== undefined) {
    const out = backend.makeOutput(running.shape, "float32");
    // Views after every copy onto the heap: a copy can grow it and detach earlier views.
    bringOntoHeap(backend as unknown as WasmBackend, [running, value]);
    const heap = (info: tf.TensorInfo) => backend.typedArrayFromHeap!(info) as Float32Array;
    _update(heap(running), heap(value), heap(out), attrs);
    return out;
  }
  const values = new Float32Array(tf.util.sizeFromShape(running.shape));
  const read = (info: tf.TensorInfo) => backend.data!.get(info.dataId).values;
  _update(read(running), read(value), values, attrs);
  return backend.makeTensorInfo!(running.shape, "float32", values);
}

/** The kernel's configs, for cpu and wasm (registered by `installKernels`, `mod.ts`). */
export const RUNNING_AVERAGE_CONFIGS: readonly tf.KernelConfig[] = ["cpu", "wasm"].map((
  backendName,
) => ({ kernelName: RUNNING_AVERAGE, backendName, kernelFunc: _kernel }));
