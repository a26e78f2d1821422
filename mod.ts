/**
 * bnlab: batch normalization on TensorFlow.js, in Deno — a BN layer you can read and test,
 * real MNIST training on the tfjs WASM backend, sweeps, CSV tables and SVG plots with PNG
 * renditions.
 *
 * @example Train the report's CNN with bnlab's BN for one epoch on 200 images
 * ```ts ignore
 * import { createLeNet, initBackend, loadMnist, train } from "@bnlab/bnlab";
 * await initBackend("wasm");
 * const data = await loadMnist({ split: "train", limit: 200 });
 * const model = createLeNet({ normalization: "custom" });
 * const [record] = await train(model, data, { epochs: 1, batchSize: 20, lr: 0.01 });
 * console.log(record.trainLoss);
 * ```
 *
 * @module
 */
export * from "./lib/backend.ts";
export * from "./lib/norms/batch_norm.ts";
export * from "./lib/norms/batch_norm_ops.ts";
export * from "./lib/norms/fold_batch_norm.ts";
export * from "./lib/norms/group_norm.ts";
export * from "./lib/norms/group_norm_ops.ts";
export * from "./lib/norms/layer_norm.ts";
export * from "./lib/norms/normalization.ts";
export * from "./lib/data/idx.ts";
export * from "./lib/data/mnist.ts";
export * from "./lib/data/batches.ts";
export * from "./lib/data/random.ts";
export {
  type Activation,
  ACTIVATIONS,
  createLeNet,
  type Init,
  type Initializer,
  INITS,
  layerInitializers,
  type LeNetOptions,
} from "./lib/models/lenet.ts";
export * from "./lib/models/resnet20.ts";
export * from "./lib/models/mlp.ts";
export * from "./lib/models/create_model.ts";
export * from "./lib/train/losses.ts";
export * from "./lib/train/loop.ts";
export * from "./lib/train/evaluate.ts";
export * from "./lib/train/checkpoint.ts";
export * from "./lib/train/diagnostics.ts";
export * from "./lib/experiments/config.ts";
export * from "./lib/experiments/flags.ts";
export * from "./lib/experiments/provenance.ts";
export * from "./lib/experiments/runner.ts";
export * from "./lib/experiments/results_dir.ts";
export * from "./lib/experiments/plan.ts";
export * from "./lib/experiments/trial.ts";
export * from "./lib/experiments/collect.ts";
export * from "./lib/experiments/report_files.ts";
export * from "./lib/experiments/report_comparison.ts";
export * from "./lib/experiments/sweeps.ts";
export * from "./lib/experiments/studies.ts";
export * from "./lib/experiments/workers.ts";
export * from "./lib/experiments/progress_events.ts";
export * from "./lib/output/notebook_progress.ts";
export * from "./lib/output/atomic.ts";
export * from "./lib/output/csv.ts";
export * from "./lib/output/plot.ts";
export * from "./lib/output/plot_style.ts";
export * from "./lib/output/png.ts";
export * from "./lib/output/table.ts";
export * from "./lib/output/progress.ts";
export * from "./lib/output/panels.ts";
export * from "./lib/experiments/figure1.ts";
export * from "./lib/experiments/study_charts.ts";
