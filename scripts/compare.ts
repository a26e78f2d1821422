/**
 * `deno task compare [DIR ...]`: our results next to the report's, one row per setting and
 * variant, printed and written to `results/comparison.csv` (or `--out FILE`). The default
 * directories are the committed runs of the presets `report`, `report-b512` and `modern`, and
 * the candidate `results/candidates/relu-b512` (`report-b512` with ReLU).
 *
 * @module
 */
import { parseArgs } from "node:util";
import {
  compareWithReport,
  inferLogBatchSize,
  REPORT_LOG,
} from "../lib/experiments/report_comparison.ts";
import { writeCsv } from "../lib/report/csv.ts";
import { formatTable, markdownTable } from "../lib/report/table.ts";

/** The results directories compared when none are named. */
const DEFAULT_DIRS = [
  "results/report",
  "results/report-b512",
  "results/candidates/relu-b512",
  "results/modern",
];

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      out: { type: "string" },
      markdown: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    console.log(
      "Usage: deno task compare [--out FILE] [--markdown] [DIR ...]\n\n" +
        `Compares results directories (default: ${DEFAULT_DIRS.join(" ")}) with the report's\n` +
        "epoch-20 numbers and writes the rows to FILE (default results/comparison.csv).\n" +
        "--markdown also prints the rows as a Markdown table (accuracies in percent).",
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

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (error) {
    console.error(`bnlab compare: ${(error as Error).message}`);
    Deno.exit(2);
  }
}
