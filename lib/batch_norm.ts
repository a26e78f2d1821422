// PLACEHOLDER written by the lead so dependants type-check; the BN engineer replaces this file.
import * as tf from "@tensorflow/tfjs";
export interface BatchNormOptions {
  momentum?: number | null;
  momentumConvention?: "keras" | "pytorch";
  epsilon?: number;
}
export function batchNorm(options: BatchNormOptions = {}): tf.layers.Layer {
  const m = options.momentumConvention === "pytorch" ? 1 - (options.momentum ?? 0.1) : options.momentum ?? 0.99;
  return tf.layers.batchNormalization({ momentum: m, epsilon: options.epsilon });
}
