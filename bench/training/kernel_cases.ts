/**
 * The training benchmark's replaced-kernel figures: tfjs's kernel against ours on LeNet's
 * shapes, in useful GFLOP/s.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { setBlasEnabled } from "../../lib/kernels/blas.ts";
import { replacedWasmKernel } from "../../lib/kernels/mod.ts";
import { median } from "../machine.ts";

/** One replaced-kernel call on LeNet's shapes. */
export interface KernelCase {
  /** The row's name, `layer_gradient`. */
  name: string;
  /** The kernel called. */
  kernelName: string;
  /** Useful floating-point operations of one call. */
  flops: number;
  /** Makes the inputs, as tensors (the caller disposes them). */
  inputs: () => Record<string, tf.Tensor>;
  /** The kernel's attributes. */
  attrs: Record<string, unknown>;
}

/**
 * The replaced-kernel calls of a LeNet training step at `batchSize`: the convolutions' input
 * gradients and the dense layers' weight and input gradients.
 *
 * @param batchSize The batch size.
 * @returns The cases.
 *
 * @example
 * ```ts
 * import { kernelCases } from "./kernel_cases.ts";
 *
 * console.log(kernelCases(20).map((c) => c.name)[0]); // "conv1_dx"
 * ```
 */
export function kernelCases(batchSize: number): KernelCase[] {
  const b = batchSize;
  const random = (shape: number[], seed: number) => () =>
    tf.randomUniform(shape, -1, 1, "float32", seed);
  const convDx = (name: string, input: number[], filter: number[], out: number[]): KernelCase => ({
    name,
    kernelName: "Conv2DBackpropInput",
    flops: 2 * b * out[0] * out[1] * filter[0] * filter[1] * filter[2] * filter[3],
    inputs: () => ({ dy: random([b, ...out], 1)(), filter: random(filter, 2)() }),
    attrs: { inputShape: [b, ...input], strides: 1, pad: "valid", dataFormat: "NHWC" },
  });
  const dense = (
    name: string,
    a: number[],
    bShape: number[],
    flops: number,
    transposeA: boolean,
  ) => ({
    name,
    kernelName: "BatchMatMul",
    flops,
    inputs: () => ({ a: random(a, 3)(), b: random(bShape, 4)() }),
    attrs: { transposeA, transposeB: !transposeA },
  });
  return [
    convDx("conv1_dx", [28, 28, 1], [5, 5, 1, 20], [24, 24, 20]),
    convDx("conv2_dx", [12, 12, 20], [5, 5, 20, 50], [8, 8, 50]),
    // dW = xᵀ·dy and dx = dy·Wᵀ of dense 800→500 and 500→10.
    dense("dense1_dw", [b, 800], [b, 500], 2 * b * 800 * 500, true),
    dense("dense1_dx", [b, 500], [800, 500], 2 * b * 800 * 500, false),
    dense("dense2_dw", [b, 500], [b, 10], 2 * b * 500 * 10, true),
    dense("dense2_dx", [b, 10], [500, 10], 2 * b * 500 * 10, false),
  ];
}

/**
 * GFLOP/s of tfjs's kernel and of ours on one case, BLAS switched off, on wasm after
 * `initBackend("wasm")`.
 *
 * @param c The case.
 * @param repeats Timed calls per figure, after two untimed.
 * @returns [theirs, ours].
 *
 * @example
 * ```ts
 * import { initBackend } from "../../lib/backend.ts";
 * import { kernelCases, kernelGflops } from "./kernel_cases.ts";
 *
 * await initBackend("wasm");
 * const [theirs, ours] = kernelGflops(kernelCases(2)[5], 1);
 * console.log(theirs > 0 && ours > 0); // true
 * ```
 */
export function kernelGflops(c: KernelCase, repeats: number): [number, number] {
  const backend = tf.backend() as tf.KernelBackend & { disposeData(id: tf.DataId): boolean };
  const original = replacedWasmKernel(c.kernelName);
  const ours = tf.getKernel(c.kernelName, "wasm");
  if (original === undefined || ours === undefined) {
    throw new Error(`benchTraining: needs ${c.kernelName} replaced on wasm, received none`);
  }
  const inputs = c.inputs();
  const wasOn = setBlasEnabled(false);
  try {
    const gflops = (kernel: tf.KernelConfig) => {
      const seconds: number[] = [];
      for (let i = 0; i < repeats + 2; i++) {
        const start = performance.now();
        // wasm kernels are synchronous: the output is complete when the call returns.
        const out = kernel.kernelFunc({
          inputs,
          backend,
          attrs: c.attrs as tf.NamedAttrMap,
        }) as tf.TensorInfo;
        const elapsed = (performance.now() - start) / 1000;
        backend.disposeData(out.dataId);
        if (i >= 2) seconds.push(elapsed);
      }
      return c.flops / median(seconds) / 1e9;
    };
    return [gflops(original), gflops(ours)];
  } finally {
    setBlasEnabled(wasOn);
    tf.dispose(Object.values(inputs));
  }
}
