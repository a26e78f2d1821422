/**
 * `docs/findings.md`: what the report claims, what our committed runs show. One function per
 * section, each reading one results directory; {@linkcode FINDINGS_SECTIONS} is the registry.
 * A section is `{ title, source, render(context) }`; the studies' sections come from
 * `lib/experiments/findings_studies.ts`, and `studySection({ title, source, claims })` makes a
 * generic one from a directory's `table.csv` (a train run) or `sweep_table.csv` (a sweep).
 *
 * @module
 */
import type { CsvRow } from "../../lib/output/csv.ts";
import { markdownTable } from "../../lib/output/table.ts";
import { STUDY_FINDINGS_SECTIONS } from "../../lib/experiments/findings_studies.ts";
import {
  inferLogBatchSize,
  REPORT_LOG,
  REPORT_RESULTS,
  REPORT_TEST_IMAGES,
} from "../../lib/experiments/report_comparison.ts";
import {
  fixed,
  type GeneratedDoc,
  integer,
  percent,
  type Section,
  type SectionContext,
  summaryTable,
  variantName,
} from "./markdown.ts";
import { claim, type CLAIMS, SOURCES } from "./sources.ts";

type Config = Record<string, unknown>;

/** The report's numbers for a variant (`custom` or `bnlab` is its hand-written layer). */
function _report(variant: string) {
  const key = variant === "bnlab" ? "custom" : variant;
  return REPORT_RESULTS[key as keyof typeof REPORT_RESULTS];
}

/** A setting's config (`config` of config.json). */
async function _config(context: SectionContext, dir: string): Promise<Config> {
  return (await context.json<{ config: Config }>(`${dir}/config.json`)).config;
}

/**
 * "sigmoid, batch 20, SGD lr 0.001, 20 epochs on 60,000 images" from a directory's
 * `config.json` (and `summary.csv`) or, for a sweep, the base config of its `sweep.json`.
 */
async function _setting(context: SectionContext, dir: string): Promise<string> {
  if (!(await context.exists(`${dir}/config.json`))) {
    const sweep = await context.json<{ config: Config }>(`${dir}/sweep.json`);
    const c = sweep.config;
    const images = c.limit === null || c.limit === undefined ? "all" : integer(Number(c.limit));
    return `a sweep over a base of ${c.model ?? "lenet"}, ${c.activation}, batch ` +
      `${c.batchSize}, ${c.optimizer} lr ${c.lr}, ${c.epochs} epochs on ${images} images, ` +
      `${c.seeds} seed(s)`;
  }
  const config = await _config(context, dir);
  const summary = await context.exists(`${dir}/summary.csv`)
    ? await context.csv(`${dir}/summary.csv`)
    : [];
  const images = Number(summary[0]?.train_images ?? config.limit);
  return `${config.activation}, batch ${config.batchSize}, SGD lr ${config.lr}, ` +
    `${config.epochs} epochs on ${integer(images)} images`;
}

const _intro = (): Promise<string> => {
  const r = SOURCES.report;
  const none = REPORT_RESULTS.none;
  const hand = REPORT_RESULTS.custom;
  const torch = REPORT_RESULTS.tfjs;
  const log = REPORT_LOG.map((p) => `\`[${p.seen}/60000 (${p.percent}%)]\``).join(", ");
  const batches = inferLogBatchSize(REPORT_LOG);
  return Promise.resolve([
    `This document reproduces «${r.title}», ${r.description}, and tests the claims of the ` +
    "other source documents about batch normalization. Every number below is read from a " +
    "committed results file by `deno task docs`; each section names its directory.",
    "### The report",
    `The report trains a LeNet on MNIST three times: without BN, with a hand-written BN ` +
    `("ZJK_BN") and with PyTorch's. After epoch 20 it prints a test accuracy of ` +
    `${none.testCorrect}/${REPORT_TEST_IMAGES}, ${hand.testCorrect}/${REPORT_TEST_IMAGES} ` +
    `and ${torch.testCorrect}/${REPORT_TEST_IMAGES} (test losses ${none.testLoss}, ` +
    `${hand.testLoss}, ${torch.testLoss}). Its setting:`,
    claim("reportSetting"),
    "Its question is the gap between the two BN layers, and its answer is the momentum of the " +
    "running averages:",
    claim("reportGap"),
    claim("reportMomentum"),
    "### What its log implies",
    `Its epoch-20 progress lines are ${log}: the lines of PyTorch's MNIST example, which ` +
    "prints `batch_idx * len(data)` images when `(batch_idx + 1) % 30 == 0`. Of every batch " +
    `size from 1 to 60,000, only ${batches.join(", ")} prints these three lines ` +
    "(`inferLogBatchSize` in `lib/experiments/report_comparison.ts`), whereas its text says " +
    `batch 20. At batch ${batches.join(", ")} its 20 epochs are ` +
    `${integer(20 * Math.ceil(60000 / batches[0]))} SGD steps. Its losses are cross-entropies: ` +
    `a uniform guess over ten classes has cross-entropy ln 10 = ${fixed(Math.LN10)}, which is ` +
    `where its network without BN stays (test loss ${none.testLoss}), although section 3.2 ` +
    "names the MSE loss.",
  ].join("\n\n"));
};

/** The comparison table: every committed setting next to the report (`results/comparison.csv`). */
async function comparisonSection(context: SectionContext): Promise<string> {
  const rows = await context.csv("results/comparison.csv");
  const table = markdownTable(
    rows.map((r) => ({
      setting: `${r.setting} (${r.activation}, batch ${r.batch_size}, lr ${r.lr})`,
      variant: variantName(r.variant),
      epochs: r.epochs_done,
      "test acc.": percent(r.test_accuracy as number),
      report: percent(r.report_test_accuracy as number),
      "batch-stats acc.": percent(r.test_accuracy_batch_stats as number),
      "train loss": fixed(r.train_loss as number),
      "report (logged)": fixed(r.report_train_loss as number),
      "test loss": fixed(r.test_loss as number),
      "report test loss": fixed(r.report_test_loss as number),
      "top class": r.top_class_share,
    })),
    { digits: 4 },
  );
  const report = await _config(context, "results/report");
  const form = (m: number, convention: unknown) =>
    `${convention === "pytorch" ? fixed(1 - m, { digits: 1 }) : m} in the Keras form`;
  return [
    "Each committed setting (one seed each) next to the report's epoch-20 numbers; " +
    "`deno task compare` writes the CSV. bnlab's BN runs with the report's momentum " +
    `(${form(Number(report.momentum), report.momentumConvention)}), tfjs's BN with ` +
    `PyTorch's default (${report.tfjsMomentum} in the Keras form). \`test acc.\` uses the ` +
    "running statistics, `batch-stats acc.` each test batch's own; `report (logged)` is the " +
    "mean of the three batch losses the report logged in epoch 20; `top class` is the share " +
    "of the most predicted class (1 = a constant predictor). `b512-constant-statistics` is " +
    "bnlab's BN with its batch statistics detached in the backward pass, the flaw of a " +
    "hand-written layer; `mse-b512` trains with the MSE loss the report's text names.",
    table,
  ].join("\n\n");
}

/** "What is true", every figure computed from `results/comparison.csv`. */
async function truthSection(context: SectionContext): Promise<string> {
  const rows = await context.csv("results/comparison.csv");
  const find = (setting: string, variant: string) =>
    rows.find((r) => r.setting === setting && variantName(r.variant) === variant);
  const num = (row: CsvRow | undefined, key: string) => row?.[key] as number;
  const out: string[] = [];

  const sigmoidNone = rows.filter((r) =>
    r.variant === "none" && r.activation === "sigmoid" && r.loss === "xent"
  );
  const constant = sigmoidNone.filter((r) => r.top_class_share === 1);
  if (sigmoidNone.length) {
    out.push(
      "**The 11% is the sigmoid network, not the missing BN alone.** Without BN the sigmoid " +
        `LeNet at lr ${[...new Set(sigmoidNone.map((r) => r.lr))].join(", ")} reaches ${
          sigmoidNone.map((r) => `${percent(num(r, "test_accuracy"))} (${r.setting})`).join(", ")
        }: ${
          constant.length === sigmoidNone.length
            ? "in every such setting it predicts one class for every test image"
            : "not a constant predictor in every setting"
        }, with a training loss of ${
          sigmoidNone.map((r) => fixed(num(r, "train_loss"))).join(", ")
        } against ln 10 = ${fixed(Math.LN10)} for a uniform guess.` +
        _reluWithoutBn(rows),
    );
  }
  const mse = rows.find((r) => r.variant === "none" && r.loss === "mse");
  if (mse) {
    // A softmax against a one-hot target over ten classes: a uniform guess has MSE
    // (0.9² + 9·0.1²)/10, and no output exceeds (1² + 1²)/10.
    out.push(
      `**Its losses are cross-entropies.** With the MSE loss (${mse.setting}) the network ` +
        `logs ${fixed(num(mse, "train_loss"))}, near a uniform guess's MSE of ` +
        `${fixed((0.9 ** 2 + 9 * 0.1 ** 2) / 10)}; a softmax's MSE never exceeds ` +
        `${fixed((1 + 1) / 10)}, far below the losses the report logged.`,
    );
  }

  const pairs = [...new Set(rows.map((r) => String(r.setting)))]
    .map((setting) => ({ setting, bnlab: find(setting, "bnlab"), tfjs: find(setting, "tfjs") }))
    .filter((p) => p.bnlab && p.tfjs);
  if (pairs.length) {
    const gap = 100 * (_report("tfjs").testCorrect - _report("custom").testCorrect) /
      REPORT_TEST_IMAGES;
    const lossDiff = Math.max(
      ...pairs.map((p) => Math.abs(num(p.bnlab, "train_loss") - num(p.tfjs, "train_loss"))),
    );
    const batchDiff = Math.max(
      ...pairs.map((p) =>
        100 *
        Math.abs(
          num(p.bnlab, "test_accuracy_batch_stats") - num(p.tfjs, "test_accuracy_batch_stats"),
        )
      ),
    );
    const running = pairs.map((p) =>
      100 * (num(p.tfjs, "test_accuracy") - num(p.bnlab, "test_accuracy"))
    );
    out.push(
      "**The momentum cannot explain the gap.** The momentum only feeds the running " +
        "statistics, so both BN layers train alike: in every setting run with both, their " +
        `final training losses differ by at most ${lossDiff.toExponential(1)} and their ` +
        `batch-statistics accuracies by at most ${batchDiff.toFixed(2)} points. With running ` +
        `statistics the report's momentum costs ${Math.min(...running).toFixed(2)} to ` +
        `${Math.max(...running).toFixed(2)} points in these runs (one seed per setting; ` +
        "“The report with error bars” gives the gap's spread over seeds), not the report's " +
        `${gap.toFixed(2)}.`,
      markdownTable(
        pairs.map((p) => ({
          setting: p.setting,
          "bnlab train loss": fixed(num(p.bnlab, "train_loss")),
          "tfjs train loss": fixed(num(p.tfjs, "train_loss")),
          "bnlab batch-stats acc.": percent(num(p.bnlab, "test_accuracy_batch_stats")),
          "tfjs batch-stats acc.": percent(num(p.tfjs, "test_accuracy_batch_stats")),
          "bnlab acc.": percent(num(p.bnlab, "test_accuracy")),
          "tfjs acc.": percent(num(p.tfjs, "test_accuracy")),
        })),
      ),
    );
    const both = pairs.filter((p) =>
      Math.abs(num(p.bnlab, "test_accuracy") - _report("custom").testCorrect / REPORT_TEST_IMAGES) <
        0.01 &&
      Math.abs(num(p.tfjs, "test_accuracy") - _report("tfjs").testCorrect / REPORT_TEST_IMAGES) <
        0.01
    );
    const sig512 = find("report-b512", "bnlab");
    const relu512 = find("relu-b512", "tfjs");
    const detached = find("b512-constant-statistics", "bnlab");
    const parts: string[] = [];
    if (sig512) {
      parts.push(
        `our sigmoid BN lands on the hand-written layer's test loss (${
          fixed(num(sig512, "test_loss"), { digits: 3 })
        } vs ${_report("custom").testLoss})`,
      );
    }
    if (relu512) {
      parts.push(
        `our ReLU BN on its PyTorch run's accuracy (${percent(num(relu512, "test_accuracy"))} ` +
          `vs ${percent(_report("tfjs").testCorrect / REPORT_TEST_IMAGES)})`,
      );
    }
    out.push(
      `**At the batch size its log implies** (seed 0), ${parts.join(", and ")}. ${
        both.length === 0
          ? "No setting gives both of its BN accuracies within one point at once"
          : `${both.map((p) => p.setting).join(", ")} gives both of its BN accuracies within ` +
            "one point"
      }${
        detached
          ? `, and the detached-statistics backward pass reaches ${
            percent(num(detached, "test_accuracy"))
          }`
          : ""
      }. ${
        both.length === 0
          ? "That points to some other difference between the report's two programs, which " +
            "its text does not show."
          : ""
      }`,
    );
  }
  return out.join("\n\n");
}

function _reluWithoutBn(rows: CsvRow[]): string {
  const relu = rows.filter((r) => r.variant === "none" && r.activation === "relu");
  if (relu.length === 0) return "";
  return ` The same network with ReLU learns without BN: ${
    relu.map((r) =>
      `${percent(r.test_accuracy as number)} at batch ${r.batch_size} (${
        integer(Number(r.epochs_done) * Math.ceil(60000 / Number(r.batch_size)))
      } steps)`
    ).join(", ")
  }.`;
}

/** The `report` preset epoch by epoch (`results/report/history.csv`). */
async function epochsSection(context: SectionContext): Promise<string> {
  const dir = "results/report";
  const history = (await context.csv(`${dir}/history.csv`)).filter((r) =>
    r.test_accuracy !== null && r.seed === 0
  );
  const variants = [...new Set(history.map((r) => variantName(r.variant)))];
  const epochs = [...new Set(history.map((r) => Number(r.epoch)))].sort((a, b) => a - b);
  const at = (variant: string, epoch: number) =>
    history.find((r) => variantName(r.variant) === variant && r.epoch === epoch);
  const table = markdownTable(epochs.map((epoch) => ({
    epoch,
    ...Object.fromEntries(variants.map((v) => [
      `${v} test acc.`,
      percent(at(v, epoch)?.test_accuracy as number),
    ])),
    ...Object.fromEntries(variants.map((v) => [
      `${v} train loss`,
      fixed(at(v, epoch)?.train_loss as number),
    ])),
  })));
  const config = await _config(context, dir);
  const kept = config.momentumConvention === "pytorch"
    ? 1 - Number(config.momentum)
    : Number(config.momentum);
  const lines = [
    `Setting: ${await _setting(context, dir)}. Test accuracy with running statistics and ` +
    "mean training loss after each epoch (seed 0).",
    table,
  ];
  if (variants.includes("bnlab") && variants.includes("tfjs")) {
    const diff = Math.max(...epochs.map((e) =>
      Math.abs(
        (at("bnlab", e)?.train_loss as number) - (at("tfjs", e)?.train_loss as number),
      )
    ));
    const largestDrop = (variant: string) =>
      epochs.slice(1).map((e, i) => ({
        epoch: e,
        drop: (at(variant, epochs[i])?.test_accuracy as number) -
          (at(variant, e)?.test_accuracy as number),
      })).sort((a, b) => b.drop - a.drop)[0];
    const [ours, theirs] = [largestDrop("bnlab"), largestDrop("tfjs")];
    const points = (d: { drop: number; epoch: number }) =>
      `${(100 * d.drop).toFixed(2)} points at epoch ${d.epoch}`;
    lines.push(
      "The two BN layers' training losses differ by at most " +
        `${diff.toExponential(1)} at any epoch, so their test accuracies differ only through ` +
        "the running statistics. In this seed the largest drop of test accuracy from one epoch " +
        `to the next is ${points(ours)} with bnlab's BN (the report's momentum) and ` +
        `${points(theirs)} with tfjs's. A Keras-form momentum of ${kept} keeps ` +
        `${percent(1 - kept)} of the last batch in the running statistics, so inference uses ` +
        "little more than one batch's estimate; one seed does not measure how much that " +
        "costs (the seeds of “The report with error bars” do).",
    );
  }
  if (await context.exists(`${dir}/curves.svg`)) lines.push(`![curves](../${dir}/curves.svg)`);
  return lines.join("\n\n");
}

/** The momentum sweep (`results/momentum/sweep.csv`). */
async function momentumSection(context: SectionContext): Promise<string> {
  const rows = await context.csv("results/momentum/sweep.csv");
  const keras = rows.filter((r) => r.momentum_convention === "keras")
    .sort((a, b) => Number(a.keras_momentum) - Number(b.keras_momentum));
  const sweep = await context.json<{ config: Config }>("results/momentum/sweep.json");
  const c = sweep.config;
  const report = await _config(context, "results/report");
  const header = ["Keras-form momentum", ...keras.map((r) => String(r.keras_momentum))];
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  const table = [
    line(header),
    line(header.map(() => "---")),
    line([
      "test acc., running statistics",
      ...keras.map((r) => percent(r.test_accuracy_running as number)),
    ]),
    line([
      "test acc., batch statistics",
      ...keras.map((r) => percent(r.test_accuracy_batch as number)),
    ]),
    line([
      "test loss, running statistics",
      ...keras.map((r) => fixed(r.test_loss_running as number)),
    ]),
  ].join("\n");
  const losses = new Set(rows.map((r) => r.train_loss));
  const batchAcc = new Set(rows.map((r) => r.test_accuracy_batch));
  const twins = keras.every((k) => {
    const twin = rows.find((r) =>
      r.momentum_convention === "pytorch" &&
      Math.abs(Number(r.keras_momentum) - Number(k.keras_momentum)) < 1e-12
    );
    return twin !== undefined && twin.test_accuracy_running === k.test_accuracy_running &&
      twin.test_loss_running === k.test_loss_running;
  });
  return [
    `\`deno task sweep momentum\`: bnlab's BN at ${keras.length} momenta, each in both ` +
    `conventions (${c.activation}, batch ${c.batchSize}, SGD lr ${c.lr}, ${c.epochs} epochs ` +
    `on ${integer(Number(c.limit))} images, ${c.seeds} seed(s) from seed ${c.seed}). The ` +
    `report's layer is ${report.momentum} in the Keras form; PyTorch's default is ` +
    `${report.tfjsMomentum}.`,
    table,
    [
      losses.size === 1
        ? `Every trial has the same training loss (${
          fixed([...losses][0] as number, { digits: 5 })
        })`
        : `The trials' training losses differ (${losses.size} values)`,
      twins
        ? "each Keras-form trial equals its PyTorch-form twin (m ↔ 1 − m) to the last digit"
        : "not every Keras-form trial equals its PyTorch-form twin",
      batchAcc.size === 1
        ? "and the accuracy with batch statistics does not move: the momentum cannot change " +
          "what BN learns, only how well the running statistics estimate the population ones."
        : "and the accuracy with batch statistics changes with the momentum.",
    ].join(", "),
    ...(await context.exists("results/momentum/sweep.svg"))
      ? ["![momentum sweep](../results/momentum/sweep.svg)"]
      : [],
  ].join("\n\n");
}

/** The default preset (`results/quick/table.csv`). */
async function quickSection(context: SectionContext): Promise<string> {
  const dir = "results/quick";
  return [
    `The default of \`deno task train\`: ${await _setting(context, dir)}.`,
    summaryTable(await context.csv(`${dir}/table.csv`)),
  ].join("\n\n");
}

/** Options of {@linkcode studySection}. */
export interface StudyOptions {
  /** The section's heading. */
  title: string;
  /** The results directory (with `table.csv`, or `sweep_table.csv` for a sweep). */
  source: string;
  /** The claims tested, by key of `CLAIMS`. */
  claims?: readonly (keyof typeof CLAIMS)[];
  /** A sentence on the setting and what is measured. */
  about?: string;
}

/**
 * A section for a study's results directory: the claims it tests, the setting, the table of
 * mean ± std and n from `table.csv` or `sweep_table.csv`, and its plot.
 *
 * @param options The title, directory, claims and description.
 * @returns The section.
 *
 * @example
 * ```ts
 * import { studySection } from "./findings.ts";
 * import { fileContext, renderDoc } from "./markdown.ts";
 * const root = await Deno.makeTempDir();
 * await Deno.mkdir(`${root}/results/x`, { recursive: true });
 * await Deno.writeTextFile(
 *   `${root}/results/x/table.csv`,
 *   "variant,n,test_accuracy_mean,test_accuracy_std\nbnlab,3,0.9,0.01\n",
 * );
 * const section = studySection({ title: "X", source: "results/x" });
 * console.log((await section.render(fileContext(root))).includes("90.00% ± 1.00")); // true
 * ```
 */
export function studySection(options: StudyOptions): Section {
  return {
    title: options.title,
    source: options.source,
    async render(context) {
      const parts = (options.claims ?? []).map((key) => claim(key));
      if (options.about) parts.push(options.about);
      if (
        await context.exists(`${options.source}/config.json`) ||
        await context.exists(`${options.source}/sweep.json`)
      ) {
        parts.push(`Setting: ${await _setting(context, options.source)}.`);
      }
      for (const file of ["table.csv", "sweep_table.csv"]) {
        const path = `${options.source}/${file}`;
        if (await context.exists(path)) {
          parts.push(`From \`${path}\` (mean ± sample std over n seeds):`);
          parts.push(summaryTable(await context.csv(path)));
        }
      }
      for (const plot of ["curves.svg", "sweep.svg", "figure1.svg"]) {
        if (await context.exists(`${options.source}/${plot}`)) {
          parts.push(`![${plot}](../${options.source}/${plot})`);
        }
      }
      return parts.join("\n\n");
    },
  };
}

/** The sections of `docs/findings.md`, in order. */
export const FINDINGS_SECTIONS: readonly Section[] = [
  {
    title: "Our runs next to the report",
    source: "results/comparison.csv",
    render: comparisonSection,
  },
  { title: "What is true", source: "results/comparison.csv", render: truthSection },
  {
    title: "The report's setting, epoch by epoch",
    source: "results/report",
    render: epochsSection,
  },
  { title: "The momentum sweep", source: "results/momentum", render: momentumSection },
  { title: "The default preset", source: "results/quick", render: quickSection },
  // The studies' sections (lib/experiments/findings_studies.ts), in document order.
  ...STUDY_FINDINGS_SECTIONS,
];

/** `docs/findings.md`. */
export const FINDINGS: GeneratedDoc = {
  path: "docs/findings.md",
  title: "Findings",
  intro: _intro,
  sections: FINDINGS_SECTIONS,
};
