/**
 * `deno task train`: trains the report's CNN without BN, with bnlab's BN and with tfjs's BN,
 * then prints the results table and writes the results directory.
 *
 * @module
 */
import { type ExperimentRecord, runExperiment } from "../lib/experiments/runner.ts";
import { experimentProgress } from "../lib/experiments/progress_events.ts";
import { writeExperimentReport } from "../lib/experiments/report_files.ts";
import { helpText, parseFlags } from "../lib/experiments/flags.ts";
import { ProgressBar } from "../lib/output/progress.ts";
import { runWorkers, takePartFlag } from "../lib/experiments/workers.ts";
import { formatTable } from "../lib/output/table.ts";

async function main(argv: string[]): Promise<number> {
  const args = [...argv];
  const part = takePartFlag(args);
  const resumeIndex = args.indexOf("--resume");
  let saved: ExperimentRecord | undefined;
  if (resumeIndex >= 0) {
    const dir = args[resumeIndex + 1];
    if (!dir) throw new Error("--resume expects a results directory");
    try {
      saved = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
    } catch (error) {
      throw new Error(
        `--resume ${dir}: cannot read ${dir}/config.json (${(error as Error).message})`,
      );
    }
  }
  const flags = parseFlags(args, saved?.config);
  if (flags.help) {
    console.log(helpText("deno task train"));
    return 0;
  }
  const { config } = flags;
  const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
  const out = flags.resume ?? flags.out ?? `results/${config.preset}-${stamp}`;
  console.error(
    `bnlab train: preset ${config.preset}, variants ${config.variants.join(",")}, ` +
      `${config.epochs} epoch(s), batch ${config.batchSize}, lr ${config.lr}, ${config.loss}, ` +
      `${config.activation}, backend ${config.backend} → ${out}`,
  );
  const onEvent = experimentProgress(new ProgressBar(), config.epochs, { quiet: flags.quiet });
  if (flags.workers && flags.workers > 1 && !part) {
    const childArgs = args.filter((_, i) => !_isFlagOrValue(args, i, ["--workers", "--out"]));
    if (!flags.resume) childArgs.push("--out", out);
    await runWorkers({
      script: new URL(import.meta.url),
      args: childArgs,
      workers: flags.workers,
      onLine: (worker, line) => console.error(`[worker ${worker}] ${line}`),
    });
  } else {
    await runExperiment(config, { out, onEvent, part });
  }
  if (part) return 0;
  const report = await writeExperimentReport(out);
  console.log(
    formatTable(
      report.results.map((r) => ({
        variant: r.variant,
        seed: r.seed,
        test_accuracy: r.test_accuracy,
        test_correct: r.test_correct,
        test_accuracy_batch_stats: r.test_accuracy_batch_stats,
        test_loss: r.test_loss,
        train_loss: r.train_loss,
        top_class_share: r.top_class_share,
        wall_seconds: r.wall_seconds,
        status: r.status,
      })),
      { digits: 4 },
    ),
  );
  if (config.seeds > 1) console.log(formatTable(report.table, { digits: 4 }));
  console.log(`\nResults: ${out}/ (summary.csv, table.csv, history.csv, curves.svg, config.json)`);
  return 0;
}

function _isFlagOrValue(args: string[], i: number, names: string[]): boolean {
  const own = (a: string) => names.some((n) => a === n || a.startsWith(`${n}=`));
  return own(args[i]) || (i > 0 && names.includes(args[i - 1]));
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (error) {
    console.error(`bnlab train: ${(error as Error).message}`);
    Deno.exit(2);
  }
}
