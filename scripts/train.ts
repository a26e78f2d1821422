/**
 * `deno task train`: trains a model (LeNet by default) for each normalization variant and
 * seed, then prints the results table and writes the results directory. Trials run in this
 * process, in `--workers N` processes, or as a Slurm job array (`--executor slurm`).
 *
 * @module
 */
import { type ExperimentConfig, upgradeConfig } from "../lib/experiments/config.ts";
import { exitOnInterrupt, helpText, parseFlags, resumeFlag } from "../lib/experiments/flags.ts";
import { trainTrials } from "../lib/experiments/plan.ts";
import { experimentProgress } from "../lib/experiments/progress_events.ts";
import { writeExperimentOutputs } from "../lib/experiments/report_files.ts";
import type { ExperimentRecord } from "../lib/experiments/results_dir.ts";
import { readJsonFile } from "../lib/experiments/results_dir.ts";
import { executePlan, prepareTrain } from "../lib/experiments/runner.ts";
import { formatTrialStatuses, takeStatusFlag, trialStatuses } from "../lib/experiments/slurm.ts";
import { ProgressBar } from "../lib/output/progress.ts";
import { formatTable } from "../lib/output/table.ts";

const STATUS_HELP = [
  "",
  "  --status DIR             each trial's state (done, diverged, running, pending, failed,",
  "                           stopped after an epoch, missing), from its files and Slurm's",
  "                           queue, with failed trials' logs",
];

async function main(args: string[]): Promise<number> {
  const status = takeStatusFlag(args);
  if (status) {
    console.log(formatTrialStatuses(await trialStatuses(status)));
    return 0;
  }
  const resume = resumeFlag(args);
  let saved: ExperimentConfig | undefined;
  if (resume) {
    const record = await readJsonFile<ExperimentRecord>(`${resume}/config.json`).catch(
      (error) => {
        throw new Error(`--resume ${resume}: ${(error as Error).message}`);
      },
    );
    if (!record) throw new Error(`--resume ${resume}: there is no ${resume}/config.json`);
    saved = upgradeConfig(record.config as unknown as Record<string, unknown>);
  }
  const flags = parseFlags(args, saved);
  if (flags.help) {
    console.log(helpText("deno task train", STATUS_HELP));
    return 0;
  }
  const { config } = flags;
  const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
  const out = resume ?? flags.out ?? `results/${config.preset}-${stamp}`;
  // A local dry run writes nothing; Slurm's batch scripts read plan.json, so its dry run needs it.
  const write = !flags.dryRun || flags.executor === "slurm";
  const plan = await prepareTrain(config, out, { write });
  console.error(
    `bnlab train: preset ${config.preset}, ${config.model}, variants ${
      config.variants.join(",")
    }, ` +
      `${config.epochs} epoch(s), batch ${config.batchSize}, lr ${config.lr}, ${config.loss}, ` +
      `${config.activation}, backend ${config.backend} → ${out}`,
  );
  const onEvent = experimentProgress(new ProgressBar(), config.epochs, { quiet: flags.quiet });
  const interrupted = !flags.dryRun && flags.executor === "local"
    ? exitOnInterrupt(`deno task train --resume ${out}`, { workers: (flags.workers ?? 1) > 1 })
    : () => {};
  await executePlan(out, plan, {
    executor: flags.executor,
    slurm: { ...flags.slurm },
    dryRun: flags.dryRun,
    workers: flags.workers ?? 1,
    only: new Set((await trainTrials(config, out)).map((t) => t.id)),
    onEvent,
    onLine: (worker, line) => console.error(`[worker ${worker}] ${line}`),
  });
  interrupted();
  if (flags.executor === "slurm" || flags.dryRun) return 0;
  const outputs = await writeExperimentOutputs(out, plan);
  console.log(
    formatTable(
      outputs.results.map((r) => ({
        variant: r.variant,
        seed: r.seed,
        test_accuracy: r.test_accuracy,
        test_correct: r.test_correct,
        test_accuracy_batch_stats: r.test_accuracy_batch_stats,
        test_loss: r.test_loss,
        train_loss: r.train_loss,
        train_accuracy: r.train_accuracy ?? null,
        top_class_share: r.top_class_share,
        wall_seconds: r.wall_seconds,
        status: r.status,
      })),
      { digits: 4 },
    ),
  );
  if (config.seeds > 1) console.log(formatTable(outputs.table, { digits: 4 }));
  console.log(
    `\nResults: ${out}/ (summary.csv, table.csv, history.csv, curves.svg/png, accuracy.svg/png, config.json, plan.json)`,
  );
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (error) {
    console.error(`bnlab train: ${(error as Error).message}`);
    Deno.exit(2);
  }
}
