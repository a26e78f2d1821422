/**
 * Group normalization's calls of named kernels (`lib/named_kernels.ts`): the analytic op of
 * `group_norm_ops.ts` as the kernels {@linkcode GROUP_NORM_FORWARD} and
 * {@linkcode GROUP_NORM_BACKWARD} when the active backend has them and takes the case, else
 * left to the tfjs ops of `group_norm_ops.ts`, which compute the same closed forms.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import {
  acceptsKernel,
  GROUP_NORM_BACKWARD,
  GROUP_NORM_FORWARD,
  type GroupNormAttrs,
  runNormBackward,
} from "../named_kernels.ts";

/** Options of {@linkcode namedGroupNormalize}. */
export interface NamedGroupNormalizeOptions {
  /** The number of groups G of the last axis's channels. */
  groups: number;
  /** ε, added to the variance inside the square root. */
  epsilon: number;
  /** γ, one value per channel ([C]), or none. */
  gamma?: tf.Tensor;
  /** β, like `gamma`, or none. */
  beta?: tf.Tensor;
}

/**
 * Group normalization over the last axis with the analytic gradient, as one op over x, γ and
 * β whose forward pass is one {@linkcode GROUP_NORM_FORWARD} call and whose backward pass is
 * one {@linkcode GROUP_NORM_BACKWARD} call.
 *
 * @param x The input, channels last (batch first).
 * @param options Groups, ε, γ and β.
 * @returns y, shaped like `x`, or null when the active backend has no such kernels or they
 *   decline the case (the caller runs tfjs ops).
 *
 * @example On a backend without the kernels the caller computes with tfjs ops
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { namedGroupNormalize } from "./group_norm_kernels.ts";
 *
 * await tf.setBackend("cpu");
 * assert.equal(namedGroupNormalize(tf.ones([2, 4]), { groups: 2, epsilon: 1e-3 }), null);
 * ```
 */
export function namedGroupNormalize(
  x: tf.Tensor,
  options: NamedGroupNormalizeOptions,
): tf.Tensor | null {
  const { groups, epsilon, gamma, beta } = options;
  const params: tf.NamedTensorMap = {};
  if (gamma) params.scale = gamma;
  if (beta) params.offset = beta;
  const attrs: GroupNormAttrs = { groups, epsilon };
  if (!acceptsKernel(GROUP_NORM_FORWARD, { inputs: { x, ...params }, attrs: { ...attrs } })) {
    return null;
  }
  const inputs: tf.Tensor[] = [x];
  if (gamma) inputs.push(gamma);
  if (beta) inputs.push(beta);
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args.pop() as tf.GradSaveFunc;
    const [xs, ...rest] = args as tf.Tensor[];
    const scale = gamma ? rest[0] : undefined;
    const offset = beta ? rest[gamma ? 1 : 0] : undefined;
    const forwardInputs: tf.NamedTensorMap = { x: xs };
    if (scale) forwardInputs.scale = scale;
    if (offset) forwardInputs.offset = offset;
    const [value, mean, invStd] = tf.engine().runKernel(
      GROUP_NORM_FORWARD,
      forwardInputs,
      { ...attrs },
    ) as tf.Tensor[];
    save([xs, mean, invStd, ...(scale ? [scale] : [])]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const savedScale = saved[3];
        const [dx, dScale, dOffset] = runNormBackward(GROUP_NORM_BACKWARD, {
          dy,
          saved,
          statistic: "invStd",
          attrs: { ...attrs },
        });
        const grads: tf.Tensor[] = [dx];
        if (savedScale) grads.push(dScale);
        else dScale.dispose();
        if (beta) grads.push(dOffset);
        else dOffset.dispose();
        return grads;
      },
    };
  });
  return op(...inputs);
}
