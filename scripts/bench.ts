/**
 * `deno task bench`: every benchmark in one process, so ratios compare figures measured in the
 * same run; writes `bench/results.csv` (with the machine and versions in
 * `bench/results.json`) and prints the table.
 *
 * Flags: `--quick` (fewer repeats, for a smoke check), `--out DIR` (default `bench/`).
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
import { PYTHON, startPyTorch } from "../bench/pytorch.ts";
import { benchWasmThreads } from "../bench/wasm_threads.ts";
import { derivedRows } from "../bench/derived.ts";
import type { BenchRow } from "../bench/bench_row.ts";
import { backendInfo } from "../lib/backend.ts";
import { blasInfo } from "../lib/kernels/blas.ts";
import { nativeInfo } from "../lib/kernels/native_library.ts";
import { provenance } from "../lib/experiments/provenance.ts";
import { writeJsonAtomic } from "../lib/output/atomic.ts";
import { writeCsv } from "../lib/output/csv.ts";
import { formatTable } from "../lib/output/table.ts";

const COLUMNS = ["group", "name", "backend", "batch_size", "metric", "median", "unit", "runs"];

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { quick: { type: "boolean" }, out: { type: "string" }, help: { type: "boolean" } },
    strict: true,
  });
  if (values.help) {
    console.log("Usage: deno task bench [--quick] [--out DIR]");
    return 0;
  }
  const quick = Boolean(values.quick);
  const out = values.out ?? "bench";
  const started = performance.now();
  const rows: BenchRow[] = [];
  const stage = async (name: string, run: () => Promise<BenchRow[]>) => {
    const t = performance.now();
    console.error(`bench: ${name} …`);
    rows.push(...await run());
    console.error(`bench: ${name} done in ${((performance.now() - t) / 1000).toFixed(0)} s`);
  };
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
  await Deno.mkdir(out, { recursive: true });
  const table = rows.map((r) => ({ ...r, median: Number(r.median.toPrecision(5)) }));
  await writeCsv(`${out}/results.csv`, table, { columns: COLUMNS });
  await writeJsonAtomic(`${out}/results.json`, {
    provenance: provenance(),
    backend: backendInfo(),
    blas: blasInfo(),
    native: nativeInfo(),
    pytorch: "worker" in torch
      ? { version: torch.worker.version, threads: torch.worker.threads, python: PYTHON }
      : { reason: torch.reason },
    quick,
    wallSeconds: Math.round((performance.now() - started) / 100) / 10,
    finished: new Date().toISOString(),
  });
  console.log(formatTable(table, { columns: COLUMNS }));
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
