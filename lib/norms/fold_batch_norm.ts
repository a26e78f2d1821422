/**
 * Folding batch normalization into the preceding layer, for inference.
 *
 * In inference mode a BN layer is an affine map per channel c:
 *
 *     BN(z)_c = γ_c · (z_c − μ_c) / √(σ²_c + ε) + β_c = s_c · z_c + (β_c − s_c · μ_c),
 *     s_c = γ_c / √(σ²_c + ε)
 *
 * so a conv/dense layer z = W·x + b (with a linear activation) followed by BN equals one layer
 * with kernel W′ = W · s (each output channel's column scaled) and bias b′ = s·(b − μ) + β.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { BatchNorm } from "./batch_norm.ts";

const _FOLDABLE = new Set(["Dense", "Conv2D"]);

/**
 * Returns a copy of a trained Sequential model with every BN layer (bnlab's or tfjs's) that
 * directly follows a `dense`/`conv2d` layer with a linear activation folded into that layer.
 * Other layers are copied with their weights; a BN that cannot be folded is kept as it is.
 *
 * @param model A `tf.Sequential` model.
 * @returns The folded model; its `predict` equals the original's up to float rounding.
 *
 * @example
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { batchNorm } from "./batch_norm.ts";
 * import { foldBatchNorm } from "./fold_batch_norm.ts";
 * await tf.setBackend("cpu");
 * const model = tf.sequential({
 *   layers: [tf.layers.dense({ units: 3, inputShape: [2] }), batchNorm(), tf.layers.activation({ activation: "relu" })],
 * });
 * const folded = foldBatchNorm(model);
 * console.log(folded.layers.length); // 2
 * ```
 */
export function foldBatchNorm(model: tf.LayersModel): tf.Sequential {
  if (!(model instanceof tf.Sequential)) {
    throw new Error(
      `foldBatchNorm: expected a tf.Sequential model, received ${model.getClassName()} ` +
        `(functional models are not supported)`,
    );
  }
  const layers = model.layers;
  const specs: { layer: tf.layers.Layer; weights: tf.Tensor[] }[] = [];
  for (let i = 0; i < layers.length; i++) {
    const layer = layers[i];
    const next = layers[i + 1];
    const config = { ...layer.getConfig() };
    delete config.name;
    if (next && _isBatchNorm(next) && _canFold(layer, next)) {
      const weights = _foldedWeights(layer, next);
      config.useBias = true;
      if (i === 0 && !config.batchInputShape) config.batchInputShape = layer.batchInputShape;
      specs.push({ layer: _fromConfig(layer, config), weights });
      i++;
      continue;
    }
    // A layer with nothing before it to fold into (a BN first layer included) is kept as is.
    if (i === 0 && layer.batchInputShape) {
      // bnlab's BatchNorm reads `inputShape` only; tfjs layers read either.
      config.batchInputShape ??= layer.batchInputShape;
      config.inputShape ??= layer.batchInputShape.slice(1);
    }
    specs.push({ layer: _fromConfig(layer, config), weights: layer.getWeights() });
  }
  const folded = tf.sequential({ name: `${model.name}_folded` });
  for (const { layer } of specs) folded.add(layer);
  for (const { layer, weights } of specs) {
    if (weights.length) layer.setWeights(weights);
  }
  return folded;
}

function _isBatchNorm(layer: tf.layers.Layer): boolean {
  return layer instanceof BatchNorm || layer.getClassName() === "BatchNormalization";
}

function _canFold(layer: tf.layers.Layer, bn: tf.layers.Layer): boolean {
  const config = layer.getConfig();
  const axis = bn.getConfig().axis as number | number[];
  const lastAxis = (Array.isArray(axis) ? axis[0] : axis) === -1 ||
    (Array.isArray(axis) ? axis[0] : axis) === (layer.outputShape as number[]).length - 1;
  return _FOLDABLE.has(layer.getClassName()) && (config.activation ?? "linear") === "linear" &&
    lastAxis && (config.dataFormat ?? "channelsLast") === "channelsLast";
}

function _foldedWeights(layer: tf.layers.Layer, bn: tf.layers.Layer): tf.Tensor[] {
  const { gamma, beta, mean, variance, epsilon } = _bnParameters(bn);
  const [kernel, bias] = layer.getWeights();
  return tf.tidy(() => {
    const s = tf.div(gamma ?? tf.onesLike(mean), tf.sqrt(tf.add(variance, epsilon)));
    const b = bias ?? tf.zerosLike(mean);
    const newBias = tf.add(tf.mul(s, tf.sub(b, mean)), beta ?? tf.zerosLike(mean));
    return [tf.mul(kernel, s), newBias];
  });
}

function _bnParameters(bn: tf.layers.Layer) {
  const byName = new Map(bn.weights.map((w) => [w.originalName.split("/").pop()!, w.read()]));
  const config = bn.getConfig();
  return {
    gamma: byName.get("gamma"),
    beta: byName.get("beta"),
    mean: byName.get("moving_mean")!,
    variance: byName.get("moving_variance")!,
    epsilon: config.epsilon as number,
  };
}

function _fromConfig(layer: tf.layers.Layer, config: tf.serialization.ConfigDict): tf.layers.Layer {
  const cls = layer.constructor as unknown as tf.serialization.SerializableConstructor<
    tf.layers.Layer
  >;
  return tf.serialization.SerializationMap.getMap().classNameMap[layer.getClassName()]
    ? (cls as unknown as { fromConfig: (c: unknown, cfg: unknown) => tf.layers.Layer }).fromConfig(
      cls,
      config,
    )
    : new (cls as unknown as new (c: unknown) => tf.layers.Layer)(config);
}
