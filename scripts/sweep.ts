/**
 * `deno task sweep <name>`: runs a sweep (today: `momentum`) over a base config, in parallel
 * worker processes (one per core by default), resuming finished and interrupted trials, and
 * writes `sweep.csv` and `sweep.svg`.
 *
 * @module
 */
import { helpText, parseFlags } from "../lib/experiments/flags.ts";
import type { ExperimentRecord } from "../lib/experiments/runner.ts";
import { runSweep, SWEEPS, writeSweepReport } from "../lib/experiments/sweeps.ts";
import { runWorkers, takePartFlag } from "../lib/experiments/workers.ts";
import { writeJsonAtomic } from "../lib/output/atomic.ts";
import { provenance } from "../lib/experiments/provenance.ts";
import { formatTable } from "../lib/output/table.ts";

async function main(argv: string[]): Promise<number> {
  const args = [...argv];
  const part = takePartFlag(args);
  const name = args[0] && !args[0].startsWith("-") ? args.shift()! : undefined;
  const resumeIndex = args.indexOf("--resume");
  let saved: (ExperimentRecord & { sweep: string }) | undefined;
  if (resumeIndex >= 0) {
    const dir = args[resumeIndex + 1];
    if (!dir) throw new Error("--resume expects a sweep directory");
    try {
      saved = JSON.parse(await Deno.readTextFile(`${dir}/sweep.json`));
    } catch (error) {
      throw new Error(
        `--resume ${dir}: cannot read ${dir}/sweep.json (${(error as Error).message})`,
      );
    }
  }
  const flags = parseFlags(args, saved?.config);
  const sweepName = name ?? saved?.sweep;
  if (flags.help || !sweepName) {
    console.log(
      helpText("deno task sweep <sweep>", [
        "",
        "Sweeps:",
        ...Object.values(SWEEPS).map((s) => `  ${s.name.padEnd(8)} ${s.description}`),
        "",
        "Workers default to one per core (--workers 1 runs the trials in this process).",
      ]),
    );
    return flags.help ? 0 : 2;
  }
  const sweep = SWEEPS[sweepName];
  if (!sweep) {
    throw new Error(
      `sweep must be one of ${Object.keys(SWEEPS).join(", ")}, received ${
        JSON.stringify(sweepName)
      }`,
    );
  }
  const { config } = flags;
  const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
  const out = flags.resume ?? flags.out ?? `results/${sweep.name}-${config.preset}-${stamp}`;
  const workers = flags.workers ?? navigator.hardwareConcurrency;
  if (!part) {
    await Deno.mkdir(out, { recursive: true });
    await writeJsonAtomic(`${out}/sweep.json`, {
      sweep: sweep.name,
      config,
      trials: sweep.trials(config),
      provenance: provenance(),
      started: saved?.started ?? new Date().toISOString(),
    });
    console.error(
      `bnlab sweep ${sweep.name}: ${
        sweep.trials(config).length
      } trials, preset ${config.preset}, ` +
        `${workers} worker(s) → ${out}`,
    );
  }
  if (workers > 1 && !part) {
    const childArgs = [sweep.name, "--resume", out, "--quiet"];
    await runWorkers({
      script: new URL(import.meta.url),
      args: childArgs,
      workers,
      onLine: (worker, line) => console.error(`[worker ${worker}] ${line}`),
    });
  } else {
    const started = performance.now();
    await runSweep(sweep, config, {
      out,
      part,
      onEvent: (trial, event) => {
        if (event.type === "done") {
          const r = event.result;
          console.error(
            `${trial.id}: test accuracy ${(r.test_accuracy * 100).toFixed(2)}% with running ` +
              `statistics, ${
                ((r.test_accuracy_batch_stats ?? NaN) * 100).toFixed(2)
              }% with batch ` +
              `statistics (${r.wall_seconds.toFixed(0)} s)`,
          );
        } else if (event.type === "train" && event.event.type === "epoch") {
          const record = event.event.record;
          console.error(
            `${trial.id}: epoch ${record.epoch + 1}/${config.epochs} test accuracy ` +
              `${((record.test?.accuracy ?? NaN) * 100).toFixed(2)}% ` +
              `(${((performance.now() - started) / 1000).toFixed(0)} s)`,
          );
        }
      },
    });
  }
  if (part) return 0;
  const rows = await writeSweepReport(sweep, config, out);
  console.log(formatTable(rows as unknown as Record<string, unknown>[], { digits: 4 }));
  console.log(`\nResults: ${out}/ (sweep.csv, sweep.svg, sweep.json, trials/)`);
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (error) {
    console.error(`bnlab sweep: ${(error as Error).message}`);
    Deno.exit(2);
  }
}
