/**
 * Plain SGD's update of a step's variables as one kernel call on wasm, one native pass each:
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

/** The [value, gradient] pairs of the inputs { rate, value0, gradient0, … }, in order. */
function _pairs<T>(inputs: Record<string, T>): [T | undefined, T | undefined][] {
  const count = Object.keys(inputs).filter((key) => key.startsWith("value")).length;
  return Array.from({ length: count }, (_, i) => [inputs[`value${i}`], inputs[`gradient${i}`]]);
}

function _accepts(inputs: tf.NamedTensorMap): boolean {
  const { rate } = inputs;
  const pairs = _pairs(inputs);
  return nativeKernels() !== null && rate != null && rate.dtype === "float32" &&
    rate.size === 1 && pairs.length > 0 &&
    Object.keys(inputs).length === 2 * pairs.length + 1 &&
    pairs.every(([value, gradient]) =>
      value != null && gradient != null && value.dtype === "float32" &&
      gradient.dtype === "float32" && gradient.size === value.size
    );
}

function _sgdUpdate(args: KernelArgs): tf.TensorInfo[] {
  const inputs = args.inputs as Record<string, tf.TensorInfo>;
  const { rate } = inputs;
  const native = requireNativeKernels(SGD_UPDATE);
  const pairs = _pairs(inputs);
  const size = (t: tf.TensorInfo) => tf.util.sizeFromShape(t.shape);
  for (const [i, [value, gradient]] of pairs.entries()) {
    if (
      value === undefined || gradient === undefined || value.dtype !== "float32" ||
      gradient.dtype !== "float32" || rate?.dtype !== "float32" ||
      size(gradient) !== size(value) || size(rate) !== 1
    ) {
      throw new Error(
        `${SGD_UPDATE}: expected float32 value${i} and gradient${i} of one size and a float32 ` +
          `scalar rate, received ${value?.dtype} [${value?.shape}], ${gradient?.dtype} ` +
          `[${gradient?.shape}] and ${rate?.dtype} [${rate?.shape}]`,
      );
    }
  }
  const backend = args.backend as unknown as WasmBackend;
  // Outputs and offsets first: allocating, or reading an input's offset (which may move its
  // data), can grow the heap and detach a view taken before.
  const outs = pairs.map(([value]) => backend.makeOutput(value!.shape, "float32"));
  const offsets = pairs.map(([value, gradient], i) =>
    [value, gradient, outs[i]].map((t) => floatOffset(backend, t))
  );
  const rateOffset = floatOffset(backend, rate);
  const heap = heapFloats(backend, [rate, ...pairs.flat()]);
  for (const [i, [value]] of pairs.entries()) {
    const [v, g, out] = offsets[i];
    native.bnlab_sgd_update(heap, v, g, out, size(value!), heap[rateOffset]);
  }
  return outs;
}

/**
 * The {@linkcode SGD_UPDATE} kernel for wasm (`initBackend("wasm")` registers it); it declines
 * a call whose tensors are not float32 pairs of one size, or while the native kernels are off.
 */
export const sgdUpdateWasmConfig: NamedKernelConfig = {
  kernelName: SGD_UPDATE,
  backendName: "wasm",
  kernelFunc: _sgdUpdate as unknown as tf.KernelFunc,
  accepts: _accepts,
};
