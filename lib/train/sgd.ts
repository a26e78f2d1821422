/**
 * Plain SGD, tfjs's `SGDOptimizer` with each variable's update as one kernel where the
 * backend has it.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { acceptsKernel, SGD_UPDATE } from "../named_kernels.ts";

/** What `Optimizer.applyGradients` takes: gradients by variable name, or a named list. */
type _Gradients = Parameters<tf.SGDOptimizer["applyGradients"]>[0];

/**
 * tfjs's plain SGD: every variable v with gradient g becomes c·g + v, c = −lr as a float32,
 * each product and sum rounded to float32. Where the backend registers {@linkcode SGD_UPDATE}
 * (wasm with bnlab's native kernels) each update is that one kernel; elsewhere it is tfjs's
 * `add(mul(c, g), v)`. Both give the same floats, and checkpoints see tfjs's `SGD`.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { SgdOptimizer } from "./sgd.ts";
 * await tf.setBackend("cpu");
 * const w = tf.variable(tf.tensor1d([1, 2]), true, "w");
 * const optimizer = new SgdOptimizer(0.5);
 * optimizer.applyGradients({ w: tf.tensor1d([2, -2]) });
 * console.log(await w.array()); // [ 0, 3 ]
 * ```
 */
export class SgdOptimizer extends tf.SGDOptimizer {
  /**
   * Applies one step to the named variables.
   *
   * @param variableGradients The gradients, by variable name or as a list of named tensors.
   */
  override applyGradients(variableGradients: _Gradients): void {
    const named = Array.isArray(variableGradients)
      ? variableGradients
      : Object.keys(variableGradients).map((name) => ({
        name,
        tensor: variableGradients[name],
      }));
    const rate = this.c;
    const fused = named.every(({ name, tensor }) =>
      tensor == null ||
      acceptsKernel(SGD_UPDATE, {
        inputs: { value: tf.engine().registeredVariables[name], gradient: tensor, rate },
      })
    );
    if (!fused) return super.applyGradients(variableGradients);
    for (const { name, tensor: gradient } of named) {
      if (gradient == null) continue;
      const value = tf.engine().registeredVariables[name];
      const next = tf.engine().runKernel(SGD_UPDATE, { value, gradient, rate }) as tf.Tensor;
      value.assign(next);
      next.dispose();
    }
    this.incrementIterations();
  }
}
