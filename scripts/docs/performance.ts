/**
 * `docs/performance.md`: what `deno task bench` measured, on which machine, from
 * `bench/results.csv` and `bench/results.json`. Medians and ratios are printed as the CSV
 * holds them. One function per section; {@linkcode PERFORMANCE_SECTIONS} is the registry.
 *
 * @module
 */
import type { BenchRow } from "../../bench/bench_row.ts";
import { lenetTrainingFlopsPerSample, matmulLimit } from "../../bench/derived.ts";
import type { Normalization } from "../../lib/norms/normalization.ts";
import type { CsvRow } from "../../lib/output/csv.ts";
import { markdownTable } from "../../lib/output/table.ts";
import type { GeneratedDoc, Section, SectionContext } from "./markdown.ts";

const _CSV = "bench/results.csv";
const _JSON = "bench/results.json";

/**
 * A bench variant's display name (the bench's rows name bnlab's BN `custom_analytic` and
 * `custom_autodiff`).
 */
function _variant(name: unknown): string {
  return String(name).replace(/^custom/, "bnlab");
}

/** What a ratio metric of the `training` group compares: the two metrics and a label. */
const _TRAINING_RATIOS: Record<string, { label: string; from: string; to: string }> = {
  speedup_over_tfjs_kernels: {
    label: "all of bnlab's kernels vs tfjs's wasm kernels (interleaved)",
    from: "samples_per_s_tfjs_kernels",
    to: "samples_per_s_paired",
  },
  blas_speedup: {
    label: "OpenBLAS through FFI vs wasm's own products",
    from: "samples_per_s_blas_off",
    to: "samples_per_s_blas_on",
  },
  native_speedup: {
    label: "native C kernels on vs off",
    from: "samples_per_s_native_off",
    to: "samples_per_s_native_on",
  },
  threads_speedup: {
    label: "products split over two threads vs one",
    from: "samples_per_s_1_thread",
    to: "samples_per_s_2_threads",
  },
  openblas_order_speedup: {
    label: "bnlab's AVX-512 products with OpenBLAS's floats vs OpenBLAS",
    from: "samples_per_s_openblas_products",
    to: "samples_per_s_openblas_order",
  },
  openblas_order_speedup_1_thread: {
    label: "the same, products on one thread",
    from: "samples_per_s_openblas_products_1_thread",
    to: "samples_per_s_openblas_order_1_thread",
  },
  gathered_speedup_1_thread: {
    label: "convolutions' products reading the images vs writing im2col, one thread",
    from: "samples_per_s_cols_written_1_thread",
    to: "samples_per_s_cols_gathered_1_thread",
  },
  unfused_conv_speedup: {
    label: "linear convolutions unfused in training vs fused",
    from: "samples_per_s_fused_conv",
    to: "samples_per_s_unfused_conv",
  },
  over_pytorch: {
    label: "bnlab vs PyTorch on CPU (interleaved blocks)",
    from: "samples_per_s_pytorch",
    to: "samples_per_s_paired_pytorch",
  },
};

/** The profile's totals, shown apart from the kernels. */
const _PROFILE_TOTALS = ["step", "all_kernels", "outside_kernels"];

/** Metrics whose denominator is a quoted figure, not a measurement of the run. */
const _QUOTED = new Set(["fraction_of_pytorch_cpu"]);

async function _rows(context: SectionContext): Promise<CsvRow[]> {
  return await context.csv(_CSV);
}

const _value = (row: CsvRow | undefined) => (row ? `${row.median}` : "–");

/** Threads of the bench's products (bnlab's pool) and of PyTorch's LeNet and ResNet-20 workers. */
async function _threads(
  context: SectionContext,
): Promise<{ products?: number; pytorch?: number; pytorchResNet?: number }> {
  const info = await context.json<Record<string, { sliceThreads?: number; threads?: number }>>(
    _JSON,
  );
  return {
    products: info.blas?.sliceThreads,
    pytorch: info.pytorch?.threads,
    pytorchResNet: info.pytorchResNet20?.threads ?? info.pytorch?.threads,
  };
}

/** `n threads`, or `threads` alone where the count is not recorded. */
const _onThreads = (n: number | undefined) => n === undefined ? "threads" : `${n} threads`;

/** A plain table of bench rows: name, backend, batch, metric, median with its unit, runs. */
function _benchTable(rows: readonly CsvRow[]): string {
  return markdownTable(rows.map((r) => ({
    name: _variant(r.name),
    backend: r.backend,
    batch: r.batch_size,
    metric: r.metric,
    median: `${r.median} ${r.unit}`,
    runs: r.runs,
  })));
}

const _intro = (): Promise<string> =>
  Promise.resolve([
    "`deno task bench` measures in one process and writes `bench/results.csv` (one row per " +
    "measurement: `group`, `name`, `backend`, `batch_size`, `metric`, the `median` over " +
    "`runs` repetitions, its `unit`) and the machine, versions and backend state in " +
    "`bench/results.json`. A ratio is of two figures measured in the same run, in blocks " +
    "interleaved so that both see the machine in the same state; compare ratios, not " +
    "absolute rates, across runs. The sections run minutes apart and a shared machine's " +
    "speed drifts meanwhile, so absolute rates in different tables of one run need not agree " +
    "either (a rate measured alone early in the run can read below one of a later pair). " +
    "Every figure below is printed from those two files by `deno task docs`.",
    "Training rows train bnlab's LeNet on MNIST-shaped batches with SGD: `none` without BN, " +
    "`tfjs` with tfjs's BN layer, `bnlab_analytic` and `bnlab_autodiff` with bnlab's BN and " +
    "its closed-form or automatic gradient.",
  ].join("\n\n"));

/** The machine and versions (`bench/results.json`). */
async function machineSection(context: SectionContext): Promise<string> {
  const info = await context.json<Record<string, Record<string, unknown> | unknown>>(_JSON);
  const p = (info.provenance ?? {}) as Record<string, unknown>;
  const backend = (info.backend ?? {}) as Record<string, unknown>;
  const blas = (info.blas ?? {}) as Record<string, unknown>;
  const native = (info.native ?? {}) as Record<string, unknown>;
  const pytorch = info.pytorch as Record<string, unknown> | undefined;
  const rows: Record<string, unknown>[] = [
    { item: "CPU", value: `${p.cpuModel}, ${p.cpus} logical CPUs, ${p.memoryGiB} GiB` },
    { item: "system", value: `${p.os} ${p.arch}` },
    { item: "software", value: `Deno ${p.deno}, tfjs ${p.tfjs}, bnlab ${p.bnlab}` },
    {
      item: "wasm backend",
      value: `SIMD ${backend.simd ? "on" : "off"}, ${backend.threads} thread(s)`,
    },
    {
      item: "BLAS",
      value: blas.enabled ? `${blas.config} (${blas.library}), ${blas.threads} thread(s)` : "off",
    },
    { item: "native kernels", value: native.enabled ? "on" : "off" },
    ...(blas.openblasOrder === undefined ? [] : [{
      item: "products",
      value: blas.openblasOrder
        ? "bnlab's AVX-512 kernel with OpenBLAS's floats (lib/kernels/native/openblas_order.c)" +
          "; convolutions without padding read their im2col matrix from the images" +
          (blas.sliceThreads ? `; large products split over ${blas.sliceThreads} threads` : "")
        : "OpenBLAS",
    }]),
    ...(pytorch
      ? [{ item: "PyTorch", value: `${pytorch.version}, ${pytorch.threads} threads` }]
      : []),
    { item: "commit", value: `\`${p.gitCommit ?? "not recorded"}\`` },
    ...(p.gitDirty === undefined ? [] : [{
      item: "working tree",
      value: p.gitDirty ? `dirty (diff SHA-256 \`${p.gitDiffSha256}\`)` : "clean",
    }]),
    ...(typeof info.provenanceNote === "string"
      ? [{ item: "provenance note", value: info.provenanceNote }]
      : []),
    { item: "finished", value: `${info.finished} (${info.wallSeconds} s in all)` },
  ];
  return markdownTable(rows);
}

/** Training throughput per variant and batch size (`training`, `samples_per_s`). */
async function throughputSection(context: SectionContext): Promise<string> {
  const rows = (await _rows(context)).filter((r) =>
    r.group === "training" && r.metric === "samples_per_s"
  );
  const batches = [...new Set(rows.map((r) => Number(r.batch_size)))].sort((a, b) => a - b);
  const variants = [...new Set(rows.map((r) => String(r.name)))];
  return [
    "Samples per second, median of the measured blocks, one process, wasm with every kernel " +
    "bnlab installs:",
    markdownTable(variants.map((v) => ({
      variant: _variant(v),
      ...Object.fromEntries(batches.map((b) => [
        `batch ${b}`,
        _value(rows.find((r) => r.name === v && Number(r.batch_size) === b)),
      ])),
    }))),
  ].join("\n\n");
}

/** What each part of the acceleration is worth (`training` ratios). */
async function ratiosSection(context: SectionContext): Promise<string> {
  const rows = (await _rows(context)).filter((r) => r.group === "training");
  const ratios = rows.filter((r) => r.unit === "ratio");
  const find = (like: CsvRow, metric: string) =>
    rows.find((r) =>
      r.name === like.name && r.batch_size === like.batch_size && r.metric === metric
    );
  return [
    "Each pair is measured in interleaved blocks within the run; the ratio is the median of " +
    "the pairs' ratios, so it need not equal the ratio of the two medians beside it.",
    markdownTable(ratios.map((r) => {
      const known = _TRAINING_RATIOS[String(r.metric)];
      return {
        comparison: known?.label ??
          (r.metric === "cpu_over_wasm" ? "tfjs's cpu backend vs wasm" : r.metric),
        variant: _variant(r.name),
        batch: r.batch_size,
        "before (samples/s)": known ? _value(find(r, known.from)) : "–",
        "after (samples/s)": known ? _value(find(r, known.to)) : "–",
        ratio: _value(r),
      };
    })),
  ].join("\n\n");
}

/** How much of the machine's product rate training uses (`derived`, `machine_limit`). */
async function machineLimitSection(context: SectionContext): Promise<string> {
  const rows = await _rows(context);
  const limit = matmulLimit(
    rows.map((r) => ({ ...r, median: Number(r.median) })) as unknown as BenchRow[],
    "wasm",
  );
  const wasmLimit = limit === undefined ? "" : ` On wasm that is \`${limit.group}\`'s ` +
    `${limit.name} (${limit.metric}): ${limit.median} GFLOP/s.`;
  return [
    "`machine_limit` is the rate of one large matrix product through the backend's own " +
    "kernels; `derived` divides training's floating-point operations per second by the best " +
    "product rate measured for its backend in the run, the larger of `matmul_best` and the " +
    "products through BLAS (`blas_kernels`, metric `gflops_blas`)." + wasmLimit,
    _benchTable(
      rows.filter((r) =>
        (r.group === "machine_limit" || r.group === "derived") && !_QUOTED.has(String(r.metric))
      ),
    ),
    ...rows.some((r) => _QUOTED.has(String(r.metric)))
      ? [
        "Rows with the metric `fraction_of_pytorch_cpu` divide by PyTorch figures written into " +
        "`bench/derived.ts`, not measured in the run; they are left out here (the measured " +
        "comparison is `over_pytorch` above).",
      ]
      : [],
  ].join("\n\n");
}

/** tfjs's threaded wasm binary (`wasm_threads`). */
async function threadsSection(context: SectionContext): Promise<string> {
  const rows = (await _rows(context)).filter((r) => r.group === "wasm_threads");
  return [
    "tfjs's multi-threaded SIMD binary with two threads against one thread (`1t`, `2t`), in " +
    "separate processes; the machine's load average before and after is recorded because " +
    "other work on the machine moves these figures.",
    _benchTable(rows),
  ].join("\n\n");
}

/** Kernel microbenchmarks: each replaced kernel against tfjs's (ratios only). */
async function kernelsSection(context: SectionContext): Promise<string> {
  const groups = ["training_kernels", "blas_kernels", "reduce_leading", "conv2d_backprop_filter"];
  const rows = (await _rows(context)).filter((r) =>
    groups.includes(String(r.group)) && r.unit === "ratio"
  );
  return [
    "One kernel at LeNet's shapes, ours over tfjs's (`ours_over_tfjs`, `speedup`), OpenBLAS " +
    "over wasm (`blas_over_wasm`), the backward filter kernel over the forward convolution and " +
    "over the cpu backend. The absolute rates are in the CSV.",
    ...groups.map((g) => {
      const part = rows.filter((r) => r.group === g);
      return part.length ? `**${g}**\n\n${_benchTable(part)}` : "";
    }).filter((s) => s !== ""),
  ].join("\n\n");
}

/** Where a training step's time goes (`training_profile`): the costliest kernels. */
async function profileSection(context: SectionContext): Promise<string> {
  const rows = (await _rows(context)).filter((r) =>
    r.group === "training_profile" && r.metric === "ms_per_step"
  );
  const variants = [...new Set(rows.map((r) => String(r.name).split("/")[0]))];
  const parts = [
    "Milliseconds per training step (tfjs's profiler): the whole step, the time inside tfjs " +
    "kernels and outside them, then the five costliest kernels per variant and batch size:",
  ];
  for (const variant of variants) {
    for (const batch of [...new Set(rows.map((r) => r.batch_size))]) {
      const mine = rows.filter((r) =>
        String(r.name).startsWith(`${variant}/`) && r.batch_size === batch
      );
      const op = (r: CsvRow) => String(r.name).split("/")[1];
      const total = (name: string) => _value(mine.find((r) => op(r) === name));
      const top = mine.filter((r) => !_PROFILE_TOTALS.includes(op(r)))
        .sort((a, b) => Number(b.median) - Number(a.median)).slice(0, 5);
      if (mine.length === 0) continue;
      parts.push(
        `**${_variant(variant)}, batch ${batch}**: a step ${total("step")} ms, in kernels ` +
          `${total("all_kernels")} ms, outside them ${total("outside_kernels")} ms; ` +
          top.map((r) => `\`${op(r)}\` ${r.median} ms`).join(", "),
      );
    }
  }
  return parts.join("\n\n");
}

/** LeNet through the training loop and evaluation as the `report` preset runs them (`train_loop`). */
async function trainLoopSection(context: SectionContext): Promise<string> {
  const rows = (await _rows(context)).filter((r) => r.group === "train_loop");
  if (rows.length === 0) {
    return "Not in the committed results: `deno task bench --only loop` measures it.";
  }
  const parts = [
    "LeNet/MNIST as the `report` preset trains it (sigmoid, batch 20, SGD), through the " +
    "training loop (`train`) and the evaluation after each epoch (`evaluate`), on MNIST's " +
    "images: the rate the train CLI reaches, where the rows above time the model's step alone. " +
    "`epoch_seconds` is a report epoch (60,000 images, then 10,000 evaluated) at those rates; " +
    "the projected wall times add the preset's 20 epochs per variant, evaluation included: " +
    "all of them for one process, and for two `--workers` processes, which share the " +
    "variants' epochs, half of them at the `_one_thread` rates (the products on one thread, " +
    "as each worker runs them), or the longest variant's if more. Neither counts what two " +
    "processes cost each other (memory bandwidth, the shared cache).",
    _benchTable(rows),
  ];
  const timed = await _reportTimed(context);
  if (timed) parts.push(timed);
  const bound = await _reportBound(context);
  if (bound) parts.push(bound);
  return parts.join("\n\n");
}

/** The committed run of the whole `report` preset with two worker processes. */
const _REPORT_TIMED = "results/report-timed";

/** The committed `results/report-timed` run: its summary rows and its wall time. */
interface _ReportRun {
  summary: CsvRow[];
  variants: Normalization[];
  /** Each variant's training wall time, in seconds (over every process that trained it). */
  walls: number[];
  /** The run's wall time, first trial to last output, in seconds. */
  seconds: number;
  /** Its worker processes. */
  workers: number;
  /** Its commit, abbreviated. */
  commit: string;
}

/**
 * The committed `results/report-timed` run (`summary.csv`, and the wall time and workers its
 * `config.json` records); undefined without the run, or unless one sitting ran all its trials.
 */
async function _reportRun(context: SectionContext): Promise<_ReportRun | undefined> {
  if (!(await context.exists(`${_REPORT_TIMED}/summary.csv`))) return undefined;
  const summary = await context.csv(`${_REPORT_TIMED}/summary.csv`);
  const variants = summary.map((r) => String(r.variant) as Normalization);
  const walls = summary.map((r) => Number(r.wall_seconds));
  if (variants.length === 0 || walls.some((w) => !Number.isFinite(w))) return undefined;
  const record = await context.json<{
    starts?: {
      seconds?: number;
      workers?: number;
      trials?: number;
      provenance?: { gitCommit?: string };
    }[];
  }>(`${_REPORT_TIMED}/config.json`);
  const last = record.starts?.at(-1);
  if (!(last?.seconds && last.seconds > 0) || !last.workers) return undefined;
  // One start: one sitting ran every trial (a resume adds a start).
  if (record.starts?.length !== 1 || (last.trials ?? summary.length) !== summary.length) {
    return undefined;
  }
  const commit = last.provenance?.gitCommit?.slice(0, 7) ?? "unknown";
  return { summary, variants, walls, seconds: last.seconds, workers: last.workers, commit };
}

/** What the committed `results/report-timed` run took; undefined without it. */
async function _reportTimed(context: SectionContext): Promise<string | undefined> {
  const run = await _reportRun(context);
  if (run === undefined) return undefined;
  const { variants, walls, seconds, workers, commit } = run;
  const minutes = `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  const trials = variants.map((v, i) => `${v} ${walls[i].toFixed(0)} s`);
  return `Measured: the whole preset with \`--workers ${workers}\` (\`${_REPORT_TIMED}\`, commit ` +
    `\`${commit}\`) took ${minutes} from its first trial to the end of its last (the workers' ` +
    `start-up, training, evaluation, checkpoints and the outputs rebuilt after each epoch). ` +
    `Its trials trained for ${trials.join(", ")}, shared between the ${workers} processes.`;
}

/**
 * The committed `results/report-timed` run against the machine's product rate: its training
 * FLOPs (`lenetTrainingFlopsPerSample` × epochs × images, evaluation left out), the least
 * time they take at the best product rate of the bench, and the share of that rate the run
 * reached over its wall time; undefined without the run or the rate.
 */
async function _reportBound(context: SectionContext): Promise<string | undefined> {
  const run = await _reportRun(context);
  if (run === undefined) return undefined;
  const limit = matmulLimit(
    (await _rows(context)).map((r) => ({
      ...r,
      median: Number(r.median),
    })) as unknown as BenchRow[],
    "wasm",
  );
  if (limit === undefined) return undefined;
  const perSample = lenetTrainingFlopsPerSample();
  const samples = run.summary.reduce(
    (sum, r) => sum + Number(r.epochs) * Number(r.train_images),
    0,
  );
  if (!Number.isFinite(samples)) return undefined;
  const flops = samples * perSample;
  const rate = limit.median * 1e9;
  const pct = (v: number) => `${Math.round(100 * v)}%`;
  const { products } = await _threads(context);
  return `The bound: the preset trains ${samples.toLocaleString("en-US")} samples of ` +
    `${(perSample / 1e6).toFixed(2)} MFLOP (\`lenetTrainingFlopsPerSample\`; evaluation left ` +
    `out), ${(flops / 1e12).toFixed(1)} TFLOP in all. At the best matrix-product rate measured ` +
    `on these cores (${limit.name}: ${limit.median} GFLOP/s on ${_onThreads(products)}) that ` +
    `is at least ${(flops / rate / 60).toFixed(1)} min; the measured run reached ` +
    `${pct(flops / rate / run.seconds)} of that rate over its wall time, every step and ` +
    `evaluation included.`;
}

/** ResNet-20 beside PyTorch, and the other normalizations against BN (`resnet20_training`, `norm_cost`). */
async function resnetAndNormsSection(context: SectionContext): Promise<string> {
  const all = await _rows(context);
  const resnet = all.filter((r) => r.group === "resnet20_training");
  const norms = all.filter((r) => r.group === "norm_cost");
  if (resnet.length === 0 && norms.length === 0) {
    return "Not in the committed results: `deno task bench --only resnet` and `--only norms` " +
      "measure them.";
  }
  const parts: string[] = [];
  if (resnet.length) {
    const ratio = (name: string) =>
      resnet.find((r) => r.name === name && r.metric === "over_pytorch")?.median;
    const { products, pytorchResNet } = await _threads(context);
    parts.push(
      "ResNet-20 (28×28×1 input, batch 128) trained on wasm with OpenBLAS and the native kernels " +
        `(products on ${_onThreads(products)}), beside Debian's PyTorch on ` +
        `${_onThreads(pytorchResNet)} in interleaved blocks; \`over_pytorch\` is ` +
        "ours over PyTorch's rate on the same network (without BN: " +
        `${ratio("none") ?? "–"}; with BN: ${ratio("bnlab") ?? "–"}).`,
      _benchTable(resnet),
    );
    const bound = _resnetBound(all, resnet);
    if (bound) parts.push(bound);
  }
  if (norms.length) {
    parts.push(
      "GroupNorm and LayerNorm against bnlab's BN on the same network (`step_time_over_bnlab`: " +
        "a training step's time over BN's; `_tfjs_ops` rows run the readable tfjs-op version).",
      _benchTable(norms),
    );
  }
  return parts.join("\n\n");
}

/**
 * ResNet-20's rates as shares of the machine's best matrix-product rate (the rows of
 * bench/resnet.ts' `resnetShareRows`), and what twice PyTorch's rate would need; undefined
 * without those rows.
 */
function _resnetBound(all: readonly CsvRow[], resnet: readonly CsvRow[]): string | undefined {
  const get = (name: string, metric: string) => {
    const row = resnet.find((r) => r.name === name && r.metric === metric);
    return row === undefined ? undefined : Number(row.median);
  };
  const share = (name: string) => get(name, "fraction_of_matmul_limit");
  const [bn, none, ours] = [share("pytorch_bn"), share("pytorch_none"), share("bnlab")];
  const limit = matmulLimit(
    all.map((r) => ({ ...r, median: Number(r.median) })) as unknown as BenchRow[],
    "wasm",
  );
  const gflops = get("bnlab", "training_gflops"), rate = get("bnlab", "samples_per_s");
  if ([bn, none, ours, gflops, rate].some((v) => v === undefined) || limit === undefined) {
    return undefined;
  }
  const pct = (v: number) => `${Math.round(100 * v)}%`;
  const product = limit.group === "blas_kernels" ? "OpenBLAS's sgemm" : "XNNPACK's product";
  const need = Math.max(2 * bn!, 2 * none!);
  return `Counted at ${(gflops! * 1e3 / rate!).toFixed(1)} MFLOP per training sample ` +
    "(the convolutions and the dense layer: forward pass, weight and input gradients; " +
    "`training_gflops` and `fraction_of_matmul_limit` rows), PyTorch computes at " +
    `${pct(bn!)} (with BN) and ${pct(none!)} (without) of the best matrix-product rate ` +
    `measured on these cores (${product}, ${limit.name}: ${limit.median} GFLOP/s), bnlab's BN ` +
    `run at ${pct(ours!)}. Twice PyTorch's rate would need ${pct(2 * bn!)} with BN and ` +
    `${pct(2 * none!)} without: ` +
    (need > 1
      ? "more than a large square matrix product reaches on this machine."
      : "within what a large square matrix product reaches on this machine.");
}

/** The sections of `docs/performance.md`, in order. */
export const PERFORMANCE_SECTIONS: readonly Section[] = [
  { title: "The machine", source: _JSON, render: machineSection },
  { title: "Training throughput", source: _CSV, render: throughputSection },
  { title: "What each part is worth", source: _CSV, render: ratiosSection },
  { title: "Share of the machine's product rate", source: _CSV, render: machineLimitSection },
  { title: "The training loop end to end", source: _CSV, render: trainLoopSection },
  { title: "ResNet-20 and the other normalizations", source: _CSV, render: resnetAndNormsSection },
  { title: "Kernels", source: _CSV, render: kernelsSection },
  { title: "tfjs's threaded wasm binary", source: _CSV, render: threadsSection },
  { title: "Where a step's time goes", source: _CSV, render: profileSection },
];

/** `docs/performance.md`. */
export const PERFORMANCE: GeneratedDoc = {
  path: "docs/performance.md",
  title: "Performance",
  intro: _intro,
  sections: PERFORMANCE_SECTIONS,
};
