/**
 * Plain SGD, tfjs's `SGDOptimizer` with a step's updates as one kernel call where the
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
 * (wasm with bnlab's native kernels) a step's updates are that one kernel call; elsewhere they
 * are tfjs's `add(mul(c, g), v)`. Both give the same floats, and checkpoints see tfjs's `SGD`.
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
    const updates = named.filter(({ tensor }) => tensor != null);
    const inputs: tf.NamedTensorMap = { rate: this.c };
    for (const [i, { name, tensor }] of updates.entries()) {
      inputs[`value${i}`] = tf.engine().registeredVariables[name];
      inputs[`gradient${i}`] = tensor as tf.Tensor;
    }
    if (updates.length === 0 || !acceptsKernel(SGD_UPDATE, { inputs })) {
      return super.applyGradients(variableGradients);
    }
    const next = tf.engine().runKernel(SGD_UPDATE, inputs) as tf.Tensor[];
    for (const [i, value] of next.entries()) {
      (inputs[`value${i}`] as tf.Variable).assign(value);
      value.dispose();
    }
    this.incrementIterations();
  }
}
