/**
 * `deno task compare [DIR ...]`: our results next to the report's, one row per setting and
 * variant, printed and written to `results/comparison.csv` (or `--out FILE`). The default
 * directories are the committed runs of the presets `report`, `report-b512` and `modern`, and
 * the candidates under `results/candidates/`: `relu-b512` (`report-b512` with ReLU),
 * `mse-b512` (with the MSE loss the report's text names) and `b512-constant-statistics` (bnlab's
 * BN with its batch statistics detached in the backward pass, the flaw of a hand-written layer).
 *
 * @module
 */
import { parseArgs } from "node:util";
import {
  compareWithReport,
  inferLogBatchSize,
  REPORT_LOG,
} from "../lib/experiments/report_comparison.ts";
import { readCsv, writeCsv } from "../lib/output/csv.ts";
import type { HistoryRow } from "../lib/experiments/report_files.ts";
import { formatTable, markdownTable } from "../lib/output/table.ts";

/** The results directories compared when none are named. */
const DEFAULT_DIRS = [
  "results/report",
  "results/report-b512",
  "results/candidates/relu-b512",
  "results/candidates/mse-b512",
  "results/candidates/b512-constant-statistics",
  "results/modern",
];

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      out: { type: "string" },
      markdown: { type: "boolean" },
      epochs: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    console.log(
      "Usage: deno task compare [--out FILE] [--markdown] [--epochs] [DIR ...]\n\n" +
        `Compares results directories (default: ${DEFAULT_DIRS.join(" ")}) with the report's\n` +
        "epoch-20 numbers and writes the rows to FILE (default results/comparison.csv).\n" +
        "--markdown also prints the rows as a Markdown table (accuracies in percent);\n" +
        "--epochs prints each directory's per-epoch test accuracy and training loss as Markdown.",
    );
    return 0;
  }
  const dirs = positionals.length ? positionals : DEFAULT_DIRS;
  const out = values.out ?? "results/comparison.csv";
  const rows = await compareWithReport(dirs);
  const seen = REPORT_LOG.map((p) => `${p.seen} (${p.percent}%)`).join(", ");
  console.log(
    `The report's epoch-20 log lines ${seen} fit batch size(s) ${
      inferLogBatchSize(REPORT_LOG).join(", ")
    } under PyTorch's MNIST example's logging rule; its text says 20.\n`,
  );
  console.log(formatTable(rows as unknown as Record<string, unknown>[], {
    columns: [
      "setting",
      "activation",
      "batch_size",
      "variant",
      "epochs_done",
      "status",
      "test_accuracy",
      "report_test_accuracy",
      "test_accuracy_batch_stats",
      "test_loss",
      "report_test_loss",
      "train_loss",
      "report_train_loss",
      "top_class_share",
    ],
    digits: 4,
  }));
  await writeCsv(out, rows as unknown as Record<string, string | number | null>[]);
  if (values.epochs) {
    for (const dir of dirs) console.log(`\n${dir}\n\n${await _epochTable(dir)}`);
  }
  if (values.markdown) {
    const percent = (x: number | null) => (x === null ? null : `${(100 * x).toFixed(2)}%`);
    console.log(
      "\n" + markdownTable(
        rows.map((r) => ({
          setting: `${r.setting} (${r.activation}, batch ${r.batch_size})`,
          variant: r.variant,
          epochs: r.epochs_done,
          "test acc.": percent(r.test_accuracy),
          "report": percent(r.report_test_accuracy),
          "batch-stats acc.": percent(r.test_accuracy_batch_stats),
          "train loss": r.train_loss,
          "report (logged)": r.report_train_loss,
          "test loss": r.test_loss,
          "report test loss": r.report_test_loss,
          "top class": r.top_class_share,
        })),
        { digits: 4 },
      ),
    );
  }
  console.log(`\nWritten: ${out}`);
  return 0;
}

/** Per epoch: each variant's test accuracy (running statistics), then its mean training loss. */
async function _epochTable(dir: string): Promise<string> {
  const history = await readCsv(`${dir}/history.csv`) as unknown as HistoryRow[];
  const rows = history.filter((r) => r.test_accuracy !== null && r.seed === 0);
  const variants = [...new Set(rows.map((r) => r.variant))];
  const epochs = [...new Set(rows.map((r) => r.epoch))].sort((a, b) => a - b);
  const at = (variant: string, epoch: number) =>
    rows.find((r) => r.variant === variant && r.epoch === epoch);
  return markdownTable(
    epochs.map((epoch) => ({
      epoch,
      ...Object.fromEntries(variants.map((v) => {
        const accuracy = at(v, epoch)?.test_accuracy;
        return [`${v} test acc.`, accuracy == null ? "…" : `${(100 * accuracy).toFixed(2)}%`];
      })),
      ...Object.fromEntries(
        variants.map((v) => [`${v} train loss`, at(v, epoch)?.train_loss ?? "…"]),
      ),
    })),
    { digits: 4 },
  );
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (error) {
    console.error(`bnlab compare: ${(error as Error).message}`);
    Deno.exit(2);
  }
}
