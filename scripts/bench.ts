/**
 * `deno task bench`: every benchmark in one process, so ratios compare figures measured in the
 * same run; writes `bench/results.csv` (with the machine and versions in
 * `bench/results.json`) and prints the table.
 *
 * Flags: `--quick` (fewer repeats, for a smoke check), `--out DIR` (default `bench/`),
 * `--only STAGE` to run one stage alone: `lenet` (the machine limit, kernels, LeNet training
 * and threads), `loop` (LeNet/MNIST through the training loop and evaluation as the `report`
 * preset runs them, and its share of the product rate), `resnet` (ResNet-20 training beside PyTorch's, and its profile) or `norms`
 * (group and layer normalization's cost against BN). With `--only`, the rows of the other
 * stages already in `DIR/results.csv` are kept, and the stage's own replaced.
 *
 * @module
 */
import { parseArgs } from "node:util";
import {
  benchBlasKernels,
  benchConv2dBackpropFilter,
  benchReduceLeading,
} from "../bench/kernels.ts";
import { benchMatMulLimit } from "../bench/machine.ts";
import { benchTraining } from "../bench/training.ts";
import {
  benchNorms,
  benchResNet,
  benchResNetProfile,
  resnet20TrainingFlopsPerSample,
  RESNET_TRAINING_GROUP,
  resnetShareRows,
} from "../bench/resnet.ts";
import { PYTHON, startPyTorch } from "../bench/pytorch.ts";
import { benchWasmThreads } from "../bench/wasm_threads.ts";
import { derivedRows } from "../bench/derived.ts";
import { benchTrainLoop, TRAIN_LOOP_GROUP, trainLoopShareRows } from "../bench/train_loop.ts";
import type { BenchRow } from "../bench/bench_row.ts";
import { backendInfo } from "../lib/backend.ts";
import { blasInfo } from "../lib/kernels/blas.ts";
import { nativeInfo } from "../lib/kernels/native_library.ts";
import { provenance } from "../lib/experiments/provenance.ts";
import { writeJsonAtomic } from "../lib/output/atomic.ts";
import { readCsv, writeCsv } from "../lib/output/csv.ts";
import { formatTable } from "../lib/output/table.ts";

const COLUMNS = ["group", "name", "backend", "batch_size", "metric", "median", "unit", "runs"];

/** The stages `--only` selects. */
const STAGES = ["lenet", "loop", "resnet", "norms"] as const;
type Stage = typeof STAGES[number];

/** The row groups each stage writes (for `--only`: which rows of an earlier run it replaces). */
const STAGE_GROUPS: Readonly<Record<Stage, readonly string[]>> = {
  lenet: [
    "machine_limit",
    "conv2d_backprop_filter",
    "blas_kernels",
    "reduce_leading",
    "training",
    "training_profile",
    "training_kernels",
    "wasm_threads",
    "derived",
  ],
  loop: [TRAIN_LOOP_GROUP],
  resnet: ["resnet20_training", "resnet20_profile"],
  norms: ["norm_cost"],
};

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      quick: { type: "boolean" },
      out: { type: "string" },
      only: { type: "string" },
      help: { type: "boolean" },
    },
    strict: true,
  });
  if (values.help) {
    console.log(`Usage: deno task bench [--quick] [--out DIR] [--only ${STAGES.join("|")}]`);
    return 0;
  }
  const only = values.only as Stage | undefined;
  if (only !== undefined && !STAGES.includes(only)) {
    throw new Error(`--only must be one of ${STAGES.join(", ")}, received ${JSON.stringify(only)}`);
  }
  const runs = (stage: Stage) => only === undefined || only === stage;
  const quick = Boolean(values.quick);
  const out = values.out ?? "bench";
  const started = performance.now();
  const rows: BenchRow[] = [];
  const torchInfo: Record<string, Awaited<ReturnType<typeof startPyTorch>>> = {};
  const stage = async (name: string, run: () => Promise<BenchRow[]>) => {
    const t = performance.now();
    console.error(`bench: ${name} …`);
    rows.push(...await run());
    console.error(`bench: ${name} done in ${((performance.now() - t) / 1000).toFixed(0)} s`);
  };
  if (runs("lenet")) {
    await stage("machine limit (matmul)", () => benchMatMulLimit({ repeats: quick ? 2 : 5 }));
    await stage(
      "Conv2DBackpropFilter vs conv2d",
      () => benchConv2dBackpropFilter(quick ? { repeats: 2, warmup: 1 } : {}),
    );
    await stage(
      "BLAS vs wasm kernels",
      () => benchBlasKernels(quick ? { repeats: 3, warmup: 1 } : {}),
    );
    await stage(
      "Sum/Mean over leading axes, tfjs vs ours",
      () => benchReduceLeading(quick ? { repeats: 5, warmup: 1 } : {}),
    );
    // PyTorch beside us, when Debian's python3-torch is installed (not by the setup).
    const torch = await startPyTorch(2);
    torchInfo.lenet = torch;
    const pytorch = "worker" in torch ? torch.worker : undefined;
    if ("reason" in torch) console.error(`bench: PyTorch left out (${torch.reason})`);
    await stage(
      "LeNet training",
      () =>
        benchTraining({
          // cpu without and with BN, for the cpu/wasm ratio (a cpu step takes seconds).
          cpuVariants: ["none", "tfjs"],
          pytorch,
          ...(quick
            ? { blocks: 2, samplesPerBlock: 160, profileSteps: 2, kernelRepeats: 2, cpuBlocks: 1 }
            : {}),
        }),
    );
    await pytorch?.close();
    await stage(
      "wasm threads, 1 vs 2 (child processes)",
      () =>
        benchWasmThreads(
          quick ? { rounds: 1, blocks: 2, samplesPerBlock: 320, matmulRepeats: 3 } : {},
        ),
    );
    rows.push(...derivedRows(rows));
  }
  if (runs("loop")) {
    await stage(
      "LeNet through the training loop (report preset)",
      () => benchTrainLoop(quick ? { images: 400, testImages: 200, blocks: 1 } : {}),
    );
  }
  if (runs("resnet")) {
    const started = await startPyTorch(2, { model: "resnet20" });
    torchInfo.resnet20 = started;
    const pytorch = "worker" in started ? started.worker : undefined;
    if ("reason" in started) console.error(`bench: PyTorch left out (${started.reason})`);
    try {
      await stage(
        "ResNet-20 training beside PyTorch",
        () => benchResNet(quick ? { blocks: 1, pytorch } : { pytorch }),
      );
    } finally {
      await pytorch?.close();
    }
    await stage(
      "ResNet-20 profile",
      () => benchResNetProfile(quick ? { variants: ["bnlab"], steps: 1 } : {}),
    );
  }
  if (runs("norms")) {
    await stage(
      "group and layer norm against BN",
      () => benchNorms(quick ? { blocks: 1, lenetSamplesPerBlock: 160 } : {}),
    );
  }
  await Deno.mkdir(out, { recursive: true });
  // --only: the other stages' rows of the last run stay, before this stage's.
  let kept: BenchRow[] = [];
  let previous: Record<string, unknown> = {};
  if (only !== undefined) {
    const own = new Set(STAGE_GROUPS[only]);
    try {
      kept = (await readCsv<Record<string, unknown>>(`${out}/results.csv`, { cast: false }))
        .filter((r) => !own.has(String(r.group)))
        .map((r) => ({
          ...r,
          batch_size: Number(r.batch_size),
          median: Number(r.median),
          runs: Number(r.runs),
        })) as never;
      previous = JSON.parse(await Deno.readTextFile(`${out}/results.json`));
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
  // The training loop's and ResNet-20's shares of the product rate, from whichever run each
  // side comes from.
  const isShare = (r: BenchRow) =>
    (r.group === TRAIN_LOOP_GROUP && r.metric === "fraction_of_matmul_limit") ||
    (r.group === RESNET_TRAINING_GROUP &&
      ["training_gflops", "fraction_of_matmul_limit"].includes(r.metric));
  kept = kept.filter((r) => !isShare(r));
  const measured = rows.filter((r) => !isShare(r));
  const shares = [
    ...trainLoopShareRows([...kept, ...measured]),
    ...resnetShareRows([...kept, ...measured], resnet20TrainingFlopsPerSample()),
  ];
  const table: BenchRow[] = [
    ...kept,
    ...[...measured, ...shares].map((r) => ({ ...r, median: Number(r.median.toPrecision(5)) })),
  ];
  await writeCsv(`${out}/results.csv`, table as never, { columns: COLUMNS });
  const pytorchInfo = (started: Awaited<ReturnType<typeof startPyTorch>>) =>
    "worker" in started
      ? { version: started.worker.version, threads: started.worker.threads, python: PYTHON }
      : { reason: started.reason };
  const wallSeconds = Math.round((performance.now() - started) / 100) / 10;
  // Which run each stage's rows come from: this one, or (kept by --only) an earlier one.
  const stages = (previous.stages ?? {}) as Record<string, unknown>;
  const earlier = previous.provenance as { gitCommit?: string } | undefined;
  for (const name of STAGES) {
    if (runs(name)) {
      stages[name] = {
        gitCommit: provenance().gitCommit,
        wallSeconds,
        quick,
        finished: new Date().toISOString(),
      };
    } else if (stages[name] === undefined && previous.finished !== undefined) {
      stages[name] = {
        gitCommit: earlier?.gitCommit,
        finished: previous.finished,
        quick: previous.quick,
        keptFromEarlierRun: true,
      };
    }
  }
  // A note on the earlier record's provenance does not describe this one.
  const { provenanceNote: _note, ...before } = previous;
  await writeJsonAtomic(`${out}/results.json`, {
    ...before,
    provenance: provenance(),
    backend: backendInfo(),
    blas: blasInfo(),
    native: nativeInfo(),
    ...(torchInfo.lenet && { pytorch: pytorchInfo(torchInfo.lenet) }),
    ...(torchInfo.resnet20 && { pytorchResNet20: pytorchInfo(torchInfo.resnet20) }),
    quick,
    wallSeconds,
    stages,
    finished: new Date().toISOString(),
  });
  console.log(formatTable(table as never, { columns: COLUMNS }));
  console.log(`\nbench: wrote ${out}/results.csv and ${out}/results.json`);
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (error) {
    console.error(`bnlab bench: ${(error as Error).message}`);
    Deno.exit(2);
  }
}
