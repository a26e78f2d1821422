/**
 * bnlab: batch normalization on TensorFlow.js, in Deno — a BN layer you can read and test,
 * real MNIST training on the tfjs WASM backend, sweeps, CSV tables and SVG plots with PNG
 * renditions.
 *
 * What a researcher uses is exported here, by area: the backend, the normalization layers and
 * their ops, the datasets, the models, training, experiments (configs, runs, sweeps, the
 * report's numbers) and outputs (CSV, tables, charts). The acceleration layer's kernels are
 * at the `./kernels` subpath; file locking, atomic writes, worker processes and progress
 * internals are not part of the package's interface.
 *
 * @example Train the report's CNN with bnlab's BN for one epoch on 200 images
 * ```ts ignore
 * import { createLeNet, initBackend, loadMnist, train } from "@bnlab/bnlab";
 * await initBackend("wasm");
 * const data = await loadMnist({ split: "train", limit: 200 });
 * const model = createLeNet({ normalization: "bnlab" });
 * const [record] = await train(model, data, { epochs: 1, batchSize: 20, lr: 0.01 });
 * console.log(record.trainLoss);
 * ```
 *
 * @module
 */

// The backend.
export {
  BACKEND_NAMES,
  type BackendInfo,
  backendInfo,
  type BackendName,
  initBackend,
  type InitBackendOptions,
  MAX_WASM_THREADS,
  type WebGpuAdapterInfo,
} from "./lib/backend.ts";
export type { BlasInfo } from "./lib/kernels/blas.ts";
export type { NativeInfo } from "./lib/kernels/native_library.ts";

// Normalization layers and their ops.
export {
  BATCH_NORM_DEFAULTS,
  BatchNorm,
  batchNorm,
  type BatchNormOptions,
  type RenormClipping,
} from "./lib/norms/batch_norm.ts";
export {
  BATCH_NORM_GRADIENTS,
  type BatchNormGradient,
  batchNormTraining,
  type BatchNormTrainingOptions,
  type BatchNormTrainingResult,
  moments,
  normalizeBatch,
  type NormalizeBatchOptions,
  stopGradient,
  valuesPerChannel,
} from "./lib/norms/batch_norm_ops.ts";
export { foldBatchNorm } from "./lib/norms/fold_batch_norm.ts";
export {
  GROUP_NORM_DEFAULTS,
  GroupNorm,
  groupNorm,
  type GroupNormOptions,
} from "./lib/norms/group_norm.ts";
export {
  groupNormalize,
  type GroupNormalizeOptions,
  type GroupNormGradient,
} from "./lib/norms/group_norm_ops.ts";
export { LayerNorm, layerNorm, type LayerNormOptions } from "./lib/norms/layer_norm.ts";
export {
  type Normalization,
  NORMALIZATION_ALIASES,
  normalizationLayer,
  normalizationName,
  type NormalizationOptions,
  NORMALIZATIONS,
} from "./lib/norms/normalization.ts";

// Data.
export type { Dataset } from "./lib/data/dataset.ts";
export { type IdxArray, parseIdx, type ParseIdxOptions, readIdx } from "./lib/data/idx.ts";
export {
  type DatasetName,
  loadDataset,
  loadFashionMnist,
  loadIdxDir,
  loadMnist,
  type LoadOptions,
} from "./lib/data/mnist.ts";
export {
  type Batch,
  type BatchOptions,
  type BatchPlanOptions,
  batchSizes,
  LAST_BATCH_POLICIES,
  type LastBatch,
  numBatches,
} from "./lib/data/batches.ts";
export { createRng, shuffledIndices } from "./lib/data/random.ts";

// Models.
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
export {
  createResNet20,
  RESNET20_BLOCKS_PER_STAGE,
  RESNET20_STAGES,
  type ResNet20Options,
} from "./lib/models/resnet20.ts";
export { createMlp, MLP_DEFAULT_HIDDEN, type MlpOptions } from "./lib/models/mlp.ts";
export {
  createModel,
  type ModelName,
  type ModelOptions,
  MODELS,
} from "./lib/models/create_model.ts";

// Training.
export { computeLoss, LOSSES, type LossName } from "./lib/train/losses.ts";
export {
  createOptimizer,
  type EpochRecord,
  LAST_BATCH_MODES,
  LR_SCHEDULES,
  type LrSchedule,
  NonFiniteLossError,
  type OptimizerName,
  type OptimizerOptions,
  OPTIMIZERS,
  scheduleFactor,
  type ScheduleOptions,
  type StepRecord,
  train,
  type TrainEvent,
  type TrainObserver,
  type TrainOptions,
} from "./lib/train/loop.ts";
export { evaluate, type EvaluateOptions, type Evaluation } from "./lib/train/evaluate.ts";
export {
  DEFAULT_PROBE,
  DIAGNOSTICS_COLUMNS,
  diagnosticsChart,
  DiagnosticsRecorder,
  type DiagnosticsRecorderOptions,
  type DiagnosticsRow,
  type DiagnosticsSpec,
  parseDiagnostics,
  percentile,
  PERCENTILES,
  readDiagnostics,
} from "./lib/train/diagnostics.ts";
export {
  type CheckpointConfig,
  type CheckpointManifest,
  loadCheckpoint,
  type LoadCheckpointOptions,
  saveCheckpoint,
  type SaveCheckpointOptions,
} from "./lib/train/checkpoint.ts";

// Experiments: configs, runs, sweeps, results and the report's numbers.
export {
  configDifferences,
  type DatasetSpec,
  DEFAULT_PRESET,
  DEFAULTS,
  type ExperimentConfig,
  FIELD_HELP,
  kerasMomentum,
  type Preset,
  PRESETS,
  resolveConfig,
  validateConfig,
} from "./lib/experiments/config.ts";
export {
  type GitState,
  type Provenance,
  provenance,
  type ProvenanceOptions,
} from "./lib/experiments/provenance.ts";
export { runExperiment, type RunExperimentOptions, runSweep } from "./lib/experiments/runner.ts";
export type { ExperimentEvent, ModelFactory, TrialData } from "./lib/experiments/trial.ts";
export { readRunRecords, readRunResult, type RunResult } from "./lib/experiments/results_dir.ts";
export type { Plan, PlannedTrial, PlanTrial } from "./lib/experiments/plan.ts";
export { collect, type Collected } from "./lib/experiments/collect.ts";
export {
  type ExperimentOutputs,
  HISTORY_COLUMNS,
  type HistoryRow,
  historyRows,
  readExperimentOutputs,
  settingTitle,
  SUMMARY_COLUMNS,
  writeExperimentOutputs,
} from "./lib/experiments/report_files.ts";
export {
  compareWithReport,
  type ComparisonRow,
  inferLogBatchSize,
  type InferLogBatchSizeOptions,
  type LogPoint,
  REPORT_LOG,
  REPORT_RESULTS,
  REPORT_TEST_IMAGES,
  type ReportResult,
} from "./lib/experiments/report_comparison.ts";
export {
  momentumGapConclusion,
  type MomentumGapRow,
  momentumGaps,
  REPORT_GAP_POINTS,
  sweepMomentumConclusion,
} from "./lib/experiments/momentum_gap.ts";
export {
  type Grid,
  gridSweep,
  parseGrids,
  readSweepOutputs,
  SWEEP_MOMENTA,
  type SweepDefinition,
  type SweepOutputs,
  type SweepRow,
  sweepRow,
  SWEEPS,
  type SweepTrial,
  writeSweepOutputs,
} from "./lib/experiments/sweeps.ts";
export {
  GHOST_MIN_BATCH,
  GHOST_VIRTUAL_BATCH,
  linearLr,
  LR_REFERENCE_BATCH,
  SMALL_BATCH_SIZES,
  smallBatchPoints,
  STUDY_LEARNING_RATES,
  STUDY_PRESETS,
  STUDY_SWEEPS,
  type StudyOverrides,
  type StudyPoint,
  type StudyPreset,
  type StudySweep,
  UNBIASED_BATCH_SIZES,
} from "./lib/experiments/studies.ts";
export {
  epochAccuracyChart,
  learningRateChart,
  smallBatchChart,
  STUDY_CHART_FILES,
  type SweepCsvRow,
  unbiasedVarianceChart,
  writeStudyChart,
} from "./lib/experiments/study_charts.ts";
export {
  FIGURE1_COLUMNS,
  figure1Chart,
  type Figure1Row,
  figure1Rows,
  type RunDiagnostics,
  writeFigure1,
} from "./lib/experiments/figure1.ts";
export { experimentProgress, type ProgressSink } from "./lib/experiments/progress_events.ts";
export { NotebookProgress } from "./lib/output/notebook_progress.ts";
export type { ProgressUpdate } from "./lib/output/progress.ts";

// Outputs: CSV, tables and charts.
export {
  type CsvRow,
  type CsvValue,
  parseCsv,
  type ParseCsvOptions,
  readCsv,
  toCsv,
  type ToCsvOptions,
  writeCsv,
} from "./lib/output/csv.ts";
export {
  formatCell,
  formatTable,
  htmlTable,
  markdownTable,
  summarize,
  type SummarizeOptions,
  type TableOptions,
} from "./lib/output/table.ts";
export {
  accuracyChart,
  type AccuracyChartOptions,
  type AccuracyRecord,
  type ChartOptions,
  dotChart,
  type DotChartOptions,
  histogramChart,
  type HistogramChartOptions,
  historyAccuracyChart,
  historyLossChart,
  type HistoryLossChartOptions,
  type HistoryPoint,
  lineChart,
  type LineChartOptions,
  lossChart,
  type LossChartOptions,
  sweepChart,
  sweepFieldsChart,
  type SweepFieldsChartOptions,
  writeSvg,
} from "./lib/output/plot.ts";
export {
  colorScale,
  DASH_PATTERNS,
  dashScale,
  SERIES_PALETTE,
  VARIANT_COLORS,
  variantOf,
} from "./lib/output/plot_style.ts";
export {
  type ChartBundle,
  chartBundle,
  DEJAVU_FONT_DIR,
  displayChart,
  svgToPng,
  type SvgToPngOptions,
  writeChart,
  writePng,
} from "./lib/output/png.ts";
export { sideBySide, type SideBySideOptions } from "./lib/output/panels.ts";

// The TensorFlow.js types the signatures above name.
export type {
  ConfigDict,
  Layer,
  LayersModel,
  LayerVariable,
  NamedTensorMap,
  Optimizer,
  Scalar,
  Sequential,
  Shape,
  Tensor,
  Tensor2D,
  Tensor4D,
} from "./lib/tfjs_types.ts";
export { LayerBase } from "./lib/tfjs_types.ts";
