/**
 * `deno task train`: trains the report's CNN without BN, with bnlab's BN and with tfjs's BN,
 * then prints the results table and writes the results directory.
 *
 * @module
 */
import { type ExperimentEvent, type ExperimentRecord, runExperiment } from "../lib/experiments/runner.ts";
import { writeExperimentReport } from "../lib/experiments/report_files.ts";
import { helpText, parseFlags } from "../lib/experiments/flags.ts";
import { ProgressBar } from "../lib/report/progress.ts";
import { formatTable } from "../lib/report/table.ts";

async function main(args: string[]): Promise<number> {
  const resumeIndex = args.indexOf("--resume");
  let saved: ExperimentRecord | undefined;
  if (resumeIndex >= 0) {
    const dir = args[resumeIndex + 1];
    if (!dir) throw new Error("--resume expects a results directory");
    try {
      saved = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
    } catch (error) {
      throw new Error(`--resume ${dir}: cannot read ${dir}/config.json (${(error as Error).message})`);
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
  const bar = new ProgressBar();
  const labels = (variant: string, seed: number) => `${variant.padEnd(6)} seed ${seed}`;
  const onEvent = (event: ExperimentEvent) => {
    switch (event.type) {
      case "run":
        if (event.fromEpoch > 0) {
          console.error(`${labels(event.variant, event.seed)}: resuming after epoch ${event.fromEpoch}`);
        }
        break;
      case "skipped":
        console.error(`${labels(event.variant, event.seed)}: already finished, skipped`);
        break;
      case "train": {
        const e = event.event;
        if (e.type === "step") {
          bar.update({
            label: labels(event.variant, event.seed),
            step: e.step,
            totalSteps: e.totalSteps,
            epoch: e.epoch + 1,
            epochs: config.epochs,
            loss: e.loss,
            samplesPerSecond: e.samplesPerSecond,
            etaSeconds: e.etaSeconds,
          });
        } else if (e.type === "epoch" && e.record.test) {
          bar.done(
            `${labels(event.variant, event.seed)}: epoch ${e.record.epoch + 1}/${config.epochs} ` +
              `train loss ${e.record.trainLoss.toFixed(4)}, test accuracy ` +
              `${(e.record.test.accuracy * 100).toFixed(2)}% (${e.record.test.correct}/${e.record.test.count}), ` +
              `test loss ${e.record.test.loss.toFixed(4)}, ${e.record.seconds.toFixed(1)} s`,
          );
        }
        break;
      }
      case "diverged":
        bar.done(`${labels(event.variant, event.seed)}: ${event.message}`);
        break;
      case "done":
        break;
    }
  };
  await runExperiment(config, { out, onEvent });
  const report = await writeExperimentReport(out);
  console.log(
    formatTable(
      report.results.map((r) => ({
        variant: r.variant,
        seed: r.seed,
        test_accuracy: r.test_accuracy,
        test_correct: r.test_correct,
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

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (error) {
    console.error(`bnlab train: ${(error as Error).message}`);
    Deno.exit(2);
  }
}
