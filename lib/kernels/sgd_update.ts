/**
 * Plain SGD's update of a variable as one native pass on wasm:
 *
 *     value' = c·gradient + value,   c = −lr as a float32
 *
 * with the floats of tfjs's `SGDOptimizer` (`add(mul(c, gradient), value)`: the product and
 * the sum each rounded to float32; the C is compiled without contraction into fused
 * multiply-adds). tfjs's update is two kernels and two passes per variable, with a
 * temporary the size of the variable; LeNet's first dense layer alone is 400,000 weights.
 *
 * The kernel declines (`accepts`) other dtypes and shapes, and runs only while the native
 * kernels are loaded; the caller (lib/train/sgd.ts) then runs tfjs's update.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { type NamedKernelConfig, SGD_UPDATE } from "../named_kernels.ts";
import { nativeKernels, requireNativeKernels } from "./native_library.ts";
import { floatOffset, heapFloats, type KernelArgs, type WasmBackend } from "./wasm_kernel.ts";

export { SGD_UPDATE };

function _accepts(inputs: tf.NamedTensorMap): boolean {
  const { value, gradient, rate } = inputs;
  return nativeKernels() !== null && value != null && gradient != null && rate != null &&
    value.dtype === "float32" && gradient.dtype === "float32" && rate.dtype === "float32" &&
    rate.size === 1 && gradient.size === value.size;
}

function _sgdUpdate(args: KernelArgs): tf.TensorInfo {
  const { value, gradient, rate } = args.inputs as Record<string, tf.TensorInfo>;
  const native = requireNativeKernels(SGD_UPDATE);
  const size = tf.util.sizeFromShape(value.shape);
  if (
    value.dtype !== "float32" || gradient.dtype !== "float32" || rate.dtype !== "float32" ||
    tf.util.sizeFromShape(gradient.shape) !== size || tf.util.sizeFromShape(rate.shape) !== 1
  ) {
    throw new Error(
      `${SGD_UPDATE}: expected float32 value and gradient of one size and a float32 scalar ` +
        `rate, received ${value.dtype} [${value.shape}], ${gradient.dtype} [${gradient.shape}] ` +
        `and ${rate.dtype} [${rate.shape}]`,
    );
  }
  const backend = args.backend as unknown as WasmBackend;
  const heap = heapFloats(backend);
  const out = backend.makeOutput(value.shape, "float32");
  native.bnlab_sgd_update(
    heap,
    floatOffset(backend, value),
    floatOffset(backend, gradient),
    floatOffset(backend, out),
    size,
    heap[floatOffset(backend, rate)],
  );
  return out;
}

/** The {@linkcode SGD_UPDATE} kernel for wasm (`initBackend("wasm")` registers it). */
export const sgdUpdateWasmConfig: NamedKernelConfig = {
  kernelName: SGD_UPDATE,
  backendName: "wasm",
  kernelFunc: _sgdUpdate as unknown as tf.KernelFunc,
  accepts: _accepts,
};
