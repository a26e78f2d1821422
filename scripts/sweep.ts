/**
 * `deno task sweep <name>` or `deno task sweep --grid FIELD=v1,v2,... [--grid ...]`: runs a
 * named sweep (`momentum`) or the product of grids over any config fields, `--seeds N` each,
 * over a base config (`--preset`, flags), resuming finished and interrupted trials, in worker
 * processes (one per core by default) or as a Slurm job array (`--executor slurm`); writes
 * `sweep.csv`, `sweep_table.csv` and `sweep.svg`/`.png`.
 *
 * @module
 */
import { type ExperimentConfig, upgradeConfig } from "../lib/experiments/config.ts";
import {
  exitOnInterrupt,
  flagName,
  helpText,
  parseFlags,
  resumeFlag,
} from "../lib/experiments/flags.ts";
import { experimentProgress } from "../lib/experiments/progress_events.ts";
import { readJsonFile } from "../lib/experiments/results_dir.ts";
import { executePlan, prepareSweep, type SweepRecord } from "../lib/experiments/runner.ts";
import {
  gridSweep,
  parseGrids,
  type SweepDefinition,
  SWEEPS,
  writeSweepOutputs,
} from "../lib/experiments/sweeps.ts";
import { formatTrialStatuses, takeStatusFlag, trialStatuses } from "../lib/experiments/slurm.ts";
import { ProgressBar } from "../lib/output/progress.ts";
import { formatTable } from "../lib/output/table.ts";

const HELP = [
  "",
  "Sweeps (or --grid FIELD=v1,v2,... for any field; several --grid sweep their product;",
  "list fields take ;-separated values, e.g. --grid variants=bnlab;group):",
  ...Object.values(SWEEPS).map((s) =>
    `  ${s.name.padEnd(Math.max(...Object.keys(SWEEPS).map((n) => n.length)))} ${s.description}`
  ),
  "",
  "  --grid FIELD=v1,v2,...   a varied field (kebab or camel case)",
  "  --status DIR             each trial's state (done, diverged, running, pending, failed,",
  "                           stopped after an epoch, missing), from its files and Slurm's",
  "                           queue, with failed trials' logs",
  "Workers default to one per core (--workers 1 runs the trials in this process).",
];

async function main(argv: string[]): Promise<number> {
  const args = [...argv];
  const status = takeStatusFlag(args);
  if (status) {
    console.log(formatTrialStatuses(await trialStatuses(status)));
    return 0;
  }
  const name = args[0] && !args[0].startsWith("-") ? args.shift()! : undefined;
  const resume = resumeFlag(args);
  let saved: SweepRecord | undefined;
  let savedConfig: ExperimentConfig | undefined;
  if (resume) {
    saved = await readJsonFile<SweepRecord>(`${resume}/sweep.json`).catch((error) => {
      throw new Error(`--resume ${resume}: ${(error as Error).message}`);
    });
    if (!saved) throw new Error(`--resume ${resume}: there is no ${resume}/sweep.json`);
    savedConfig = upgradeConfig(saved.config as unknown as Record<string, unknown>);
  }
  const flags = parseFlags(args, savedConfig);
  if (flags.help) {
    console.log(helpText("deno task sweep <sweep> | --grid FIELD=v1,v2,...", HELP));
    return 0;
  }
  if (name && flags.grids.length) {
    throw new Error(`give a named sweep or --grid, not both (received ${name} and --grid)`);
  }
  const sweepName = name ?? (flags.grids.length ? "grid" : saved?.sweep);
  const grids = flags.grids.length ? flags.grids : saved?.grids ?? [];
  if (!sweepName) {
    console.log(helpText("deno task sweep <sweep> | --grid FIELD=v1,v2,...", HELP));
    return 2;
  }
  let sweep: SweepDefinition;
  if (sweepName === "grid") {
    sweep = gridSweep(parseGrids(grids));
  } else {
    const named = SWEEPS[sweepName];
    if (!named) {
      throw new Error(
        `sweep must be one of ${Object.keys(SWEEPS).join(", ")} or --grid, received ${
          JSON.stringify(sweepName)
        }`,
      );
    }
    sweep = named;
  }
  const overridden = flags.given.filter((f) => sweep.fields.includes(f));
  if (overridden.length) {
    throw new Error(
      `the ${sweep.name} sweep sets ${overridden.join(", ")} at every point; drop ${
        overridden.map((f) => `--${flagName(f)}`).join(", ")
      }`,
    );
  }
  const { config } = flags;
  const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
  const out = resume ?? flags.out ?? `results/${sweep.name}-${config.preset}-${stamp}`;
  // A local dry run writes nothing; Slurm's batch scripts read plan.json, so its dry run needs it.
  const write = !flags.dryRun || flags.executor === "slurm";
  const plan = await prepareSweep(sweep, config, out, { grids, write });
  const workers = flags.workers ?? navigator.hardwareConcurrency;
  console.error(
    `bnlab sweep ${sweep.name}: ${plan.trials.length} trials, preset ${config.preset}, ` +
      `${flags.executor === "slurm" ? "slurm" : `up to ${workers} worker(s)`} → ${out}`,
  );
  const interrupted = !flags.dryRun && flags.executor === "local"
    ? exitOnInterrupt(`deno task sweep --resume ${out}`, { workers: workers > 1 })
    : () => {};
  await executePlan(out, plan, {
    executor: flags.executor,
    slurm: { ...flags.slurm },
    dryRun: flags.dryRun,
    workers,
    onEvent: experimentProgress(new ProgressBar(), config.epochs, { quiet: true }),
    onLine: (worker, line) => console.error(`[worker ${worker}] ${line}`),
  });
  interrupted();
  if (flags.executor === "slurm" || flags.dryRun) return 0;
  const { rows } = await writeSweepOutputs(out, plan);
  console.log(formatTable(rows, { digits: 4 }));
  console.log(
    `\nResults: ${out}/ (sweep.csv, sweep_table.csv, sweep.svg/png, sweep.json, plan.json)`,
  );
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
