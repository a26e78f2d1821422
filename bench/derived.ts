/**
 * Figures derived from measured benchmark rows, computed in one place: LeNet's FLOPs per
 * training sample, achieved GFLOP/s and their share of the machine limit, bnlab's BN against
 * tfjs's, and the projected wall time of the `report` preset.
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs";
import type { BenchRow } from "./bench_row.ts";

/** LeNet's layers as multiply–accumulates per image of the forward pass. */
const _FORWARD_MACS = {
  conv1: 24 * 24 * 20 * (5 * 5 * 1),
  conv2: 8 * 8 * 50 * (5 * 5 * 20),
  dense1: 800 * 500,
  dense2: 500 * 10,
} as const;

/**
 * FLOPs of one LeNet training sample: the forward pass (2 FLOPs per multiply–accumulate), the
 * weight gradient of every layer (as many), and the input gradient of every layer but the first
 * (the image needs none). BN, activations and pooling are O(activations) and left out.
 *
 * @returns FLOPs per sample.
 *
 * @example
 * ```ts
 * import { lenetTrainingFlopsPerSample } from "./derived.ts";
 * console.log(lenetTrainingFlopsPerSample()); // 13132000
 * ```
 */
export function lenetTrainingFlopsPerSample(): number {
  const forward = Object.values(_FORWARD_MACS).reduce((a, b) => a + b, 0) * 2;
  const inputGradients = forward - 2 * _FORWARD_MACS.conv1;
  return forward + forward + inputGradients;
}

/**
 * FLOPs of one training sample of any model built of `Conv2D` and `Dense` layers, counted as
 * {@linkcode lenetTrainingFlopsPerSample} counts LeNet's: per layer, the forward pass (2 FLOPs
 * per multiply–accumulate), its weight gradient (as many) and its input gradient (as many,
 * except for a layer that reads the model's input). Normalization, activations, pooling and
 * residual additions are O(activations) and left out.
 *
 * @param model The model (its layers' output shapes must be known).
 * @returns FLOPs per sample.
 *
 * @example LeNet counted from its layers
 * ```ts
 * import * as tf from "@tensorflow/tfjs";
 * import { createLeNet } from "../lib/models/lenet.ts";
 * import { lenetTrainingFlopsPerSample, modelTrainingFlopsPerSample } from "./derived.ts";
 *
 * await tf.setBackend("cpu");
 * const model = createLeNet();
 * console.log(modelTrainingFlopsPerSample(model) === lenetTrainingFlopsPerSample()); // true
 * model.dispose();
 * ```
 */
export function modelTrainingFlopsPerSample(model: tf.LayersModel): number {
  let flops = 0;
  for (const layer of model.layers) {
    const name = layer.getClassName();
    if (name !== "Conv2D" && name !== "Dense") continue;
    const kernel = layer.getWeights()[0].shape;
    const out = layer.outputShape as (number | null)[];
    // Conv2D: output positions × (kh·kw·Cin) × Cout; Dense on [batch, in]: in × out.
    const positions = name === "Conv2D" ? (out[1] as number) * (out[2] as number) : 1;
    if (name === "Dense" && out.length !== 2) {
      const shape = JSON.stringify(out);
      throw new Error(
        "modelTrainingFlopsPerSample: expected Dense layers on [batch, features], received " +
          `${layer.name} with output shape ${shape}`,
      );
    }
    const macs = positions * kernel.reduce((a, b) => a * b, 1);
    const readsInput = model.inputs.includes(layer.input as tf.SymbolicTensor);
    flops += 2 * macs * (readsInput ? 2 : 3);
  }
  return flops;
}

/**
 * What a user would pick instead: reference figures for PyTorch on CPU (Debian's build, 2
 * threads) training this LeNet at batch 20 on this machine kind, quoted and not measured by
 * this bench: 5.4 ms per step without BN and 6.2 ms with BN (the constants below). Where
 * Debian's PyTorch is installed, the bench measures it beside bnlab (bench/pytorch.ts: the
 * `over_pytorch` rows), the comparison to trust on a machine whose speed drifts.
 */
const _PYTORCH_CPU_SAMPLES_PER_S: Readonly<Record<string, number>> = {
  none: 20 / 0.0054,
  tfjs: 20 / 0.0062,
  custom_analytic: 20 / 0.0062,
};

/** Samples and epochs of the `report` preset, per variant. */
const _REPORT = { images: 60000, epochs: 20, variants: ["none", "custom_analytic", "tfjs"] };

/**
 * The best large square product rate of a backend among `rows`: XNNPACK's
 * (`machine_limit`/`matmul_best`), or OpenBLAS's (`blas_kernels`/`matmul_*`, `gflops_blas`)
 * when it ran; the training rows use BLAS whenever it is loaded.
 *
 * @param rows Bench rows.
 * @param backend The backend.
 * @returns The fastest such row, or undefined when there is none.
 *
 * @example
 * ```ts
 * import { matmulLimit } from "./derived.ts";
 * console.log(matmulLimit([], "wasm")); // undefined
 * ```
 */
export function matmulLimit(rows: readonly BenchRow[], backend: string): BenchRow | undefined {
  return rows.filter((r) =>
    r.backend === backend &&
    ((r.group === "machine_limit" && r.name === "matmul_best") ||
      (r.group === "blas_kernels" && r.name.startsWith("matmul_") && r.metric === "gflops_blas"))
  ).sort((a, b) => b.median - a.median)[0];
}

/**
 * Rows computed from the measured ones: achieved GFLOP/s of training, its share of the best
 * matrix-product GFLOP/s of the same backend, custom/tfjs samples/s ratios, and the projected
 * wall time of the `report` preset (three variants, 20 epochs of 60,000 images at batch 20,
 * evaluation left out) in one process and shared by two.
 *
 * @param rows Rows of `benchTraining` and `benchMatMulLimit` from one run.
 * @returns The derived rows (`runs` is that of the rows they come from).
 *
 * @example
 * ```ts
 * import { derivedRows } from "./derived.ts";
 * console.log(derivedRows([]).length); // 0
 * ```
 */
export function derivedRows(rows: readonly BenchRow[]): BenchRow[] {
  const out: BenchRow[] = [];
  const flops = lenetTrainingFlopsPerSample();
  const limit = (backend: string) => matmulLimit(rows, backend);
  const training = rows.filter((r) => r.group === "training" && r.metric === "samples_per_s");
  for (const row of training) {
    const gflops = (row.median * flops) / 1e9;
    out.push({
      ...row,
      group: "derived",
      metric: "training_gflops",
      median: gflops,
      unit: "GFLOP/s",
    });
    const best = limit(row.backend);
    if (best) {
      out.push({
        ...row,
        group: "derived",
        metric: "fraction_of_matmul_limit",
        median: gflops / best.median,
        unit: "ratio",
      });
    }
  }
  const find = (name: string, backend: string, batch: number) =>
    training.find((r) => r.name === name && r.backend === backend && r.batch_size === batch);
  for (const batch of new Set(training.map((r) => r.batch_size))) {
    const tfjs = find("tfjs", "wasm", batch);
    for (const custom of ["custom_analytic", "custom_autodiff"]) {
      const ours = find(custom, "wasm", batch);
      if (!tfjs || !ours) continue;
      out.push({
        group: "derived",
        name: `${custom}_over_tfjs`,
        backend: "wasm",
        batch_size: batch,
        metric: "samples_per_s_ratio",
        median: ours.median / tfjs.median,
        unit: "ratio",
        runs: Math.min(ours.runs, tfjs.runs),
      });
    }
  }
  for (const [name, pytorch] of Object.entries(_PYTORCH_CPU_SAMPLES_PER_S)) {
    const ours = find(name, "wasm", 20);
    if (!ours) continue;
    out.push({
      ...ours,
      group: "derived",
      metric: "fraction_of_pytorch_cpu",
      median: ours.median / pytorch,
      unit: "ratio",
    });
  }
  const perVariant = _REPORT.variants.map((v) => find(v, "wasm", 20));
  if (perVariant.every((r) => r)) {
    const seconds = perVariant.map((r) => (_REPORT.images * _REPORT.epochs) / r!.median);
    const total = seconds.reduce((a, b) => a + b, 0);
    const runs = Math.min(...perVariant.map((r) => r!.runs));
    out.push({
      group: "derived",
      name: "report_preset_one_process",
      backend: "wasm",
      batch_size: 20,
      metric: "projected_wall_time",
      median: total / 60,
      unit: "min",
      runs,
    });
    // Two processes (2 cores) share the variants' epochs: half the total, unless one variant
    // alone takes longer.
    out.push({
      group: "derived",
      name: "report_preset_two_processes",
      backend: "wasm",
      batch_size: 20,
      metric: "projected_wall_time",
      median: Math.max(...seconds, total / 2) / 60,
      unit: "min",
      runs,
    });
  }
  return out;
}
