/**
 * The findings of the studies, one Markdown section each, generated from the committed CSVs
 * under `results/<study>/`: the claim in the source's words (with an English translation),
 * the setting and scale read from the results' own configs, tables of mean ± standard
 * deviation over seeds, the study's figure, and a verdict computed from the numbers. A study
 * whose results directory is absent reads "not yet run".
 *
 * {@linkcode studyFindings} writes a study's section from one table of the studies (claim,
 * command, files read, and the function that writes the rest); {@linkcode STUDY_SECTIONS}
 * holds every section, the report's included, as a function `(root) => Promise<string>` of
 * the repository root. Figures are linked relative to `docs/`.
 *
 * @module
 */
import { REPORT_RESULTS, REPORT_TEST_IMAGES } from "./report_comparison.ts";
import type { ExperimentConfig } from "./config.ts";
import { readPlan } from "./plan.ts";
import { readCsv } from "../output/csv.ts";
import { markdownTable } from "../output/table.ts";

/** A CSV row as read. */
type Row = Record<string, string | number | boolean | null>;

/** A section generator: the repository root in, Markdown out. */
export type FindingsSection = (root: string) => Promise<string>;

/** Mean, sample standard deviation (n − 1; NaN for one value) and count of finite values. */
export interface Stats {
  /** Mean. */
  mean: number;
  /** Sample standard deviation. */
  std: number;
  /** Values counted. */
  n: number;
}

/**
 * Mean, sample standard deviation and count of the finite values.
 *
 * @param values The values; non-finite ones (a diverged trial's NaN) are left out.
 * @returns The statistics; mean NaN when none is finite.
 *
 * @example
 * ```ts
 * import { stats } from "./findings_studies.ts";
 * console.log(stats([1, 3, NaN])); // { mean: 2, std: 1.4142135623730951, n: 2 }
 * ```
 */
export function stats(values: readonly number[]): Stats {
  const xs = values.filter((v) => Number.isFinite(v));
  const n = xs.length;
  const mean = n ? xs.reduce((a, b) => a + b, 0) / n : NaN;
  const std = n > 1 ? Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1)) : NaN;
  return { mean, std, n };
}

/**
 * Formats a fraction's statistics in percent: `97.12 ± 0.31`, or `97.12 (n = 1)` for one value,
 * `–` for none.
 *
 * @param s The statistics of fractions.
 * @param digits Decimals. @default {2}
 * @returns The cell text.
 *
 * @example
 * ```ts
 * import { percentCell } from "./findings_studies.ts";
 * console.log(percentCell({ mean: 0.97123, std: 0.0031, n: 3 })); // 97.12 ± 0.31
 * ```
 */
export function percentCell(s: Stats, digits = 2): string {
  if (s.n === 0) return "–";
  const mean = (s.mean * 100).toFixed(digits);
  return s.n > 1 ? `${mean} ± ${(s.std * 100).toFixed(digits)}` : `${mean} (n = 1)`;
}

/** A section's heading and its claim, each followed by a blank line. */
function _head(study: keyof typeof STUDY_TITLES, claim: string): string[] {
  return [`## ${STUDY_TITLES[study]}`, "", claim, ""];
}

async function _rows(path: string): Promise<Row[] | undefined> {
  try {
    return await readCsv(path) as Row[];
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

async function _config(dir: string): Promise<ExperimentConfig | undefined> {
  return (await readPlan(dir).catch(() => undefined))?.trials[0]?.config;
}

function _num(value: unknown): number {
  return typeof value === "number" ? value : NaN;
}

function _unique<T>(values: readonly T[]): T[] {
  return [...new Set(values)];
}

function _points(a: Stats, b: Stats): string {
  return ((a.mean - b.mean) * 100).toFixed(1);
}

function _scale(config: ExperimentConfig, trials: number, varied: string[] = []): string {
  const images = config.limit === null
    ? "all training images"
    : `the first ${config.limit} training images`;
  const test = config.testLimit === null
    ? "the full test set"
    : `the first ${config.testLimit} test images`;
  return `${config.model} on ${config.dataset}, ${images}, ${config.epochs} epoch(s), tested on ` +
    `${test}; ${config.optimizer} with momentum ${config.sgdMomentum}` +
    (varied.includes("activation") ? "" : `, activation ${config.activation}`) +
    `; ${trials} trials`;
}

/** The studies {@linkcode studyFindings} writes, by the name of their results directory. */
export type StudyName =
  | "small-batch"
  | "learning-rate"
  | "figure1"
  | "resnet"
  | "unbiased-variance";

/** Options of {@linkcode studyFindings}. */
export interface StudyFindingsOptions {
  /** The repository root. */
  root: string;
  /** The study's results directory. @default {`<root>/results/<study>`} */
  dir?: string;
}

/**
 * A study's section: its heading and claim, then, from the committed results, its setting,
 * tables, figure and verdict; "not yet run" with the command to run when its results are
 * absent.
 *
 * @param study The study.
 * @param options The repository root, and the results directory when not `results/<study>/`
 *   under it.
 * @returns The Markdown section.
 *
 * @example
 * ```ts
 * import { studyFindings } from "./findings_studies.ts";
 * const section = await studyFindings("small-batch", { root: "/nonexistent" });
 * console.log(section.includes("Not yet run")); // true
 * ```
 */
export async function studyFindings(
  study: StudyName,
  options: StudyFindingsOptions,
): Promise<string> {
  const { claim, command, files, body } = _STUDIES[study];
  const dir = options.dir ?? `${options.root}/${_SOURCES[study]}`;
  const head = _head(study, claim);
  const csv: Row[][] = [];
  for (const file of files) {
    const rows = await _rows(`${dir}/${file}`);
    if (rows) csv.push(rows);
  }
  const config = await _config(dir);
  if (csv.length < files.length || !config) {
    return [...head, `*Not yet run*: \`results/${study}/\` is absent. Run \`${command}\`.\n`]
      .join("\n");
  }
  return [...head, ...await body({ dir, config, csv })].join("\n");
}

/** What a study's section reads and how it is written. */
interface _Study {
  /** The claim, in the source's words with an English translation. */
  readonly claim: string;
  /** The command that writes the study's results. */
  readonly command: string;
  /** The CSV files of the results directory the section needs (with the plan's config). */
  readonly files: readonly string[];
  /** The section below its claim, one entry a line, the last one empty. */
  body(results: _Results): string[] | Promise<string[]>;
}

/** A study's results as its section reads them. */
interface _Results {
  /** The results directory. */
  readonly dir: string;
  /** The first trial's resolved config, from the plan. */
  readonly config: ExperimentConfig;
  /** The rows of each of the study's `files`, in order. */
  readonly csv: readonly Row[][];
}

/** Each study of {@linkcode studyFindings}: its claim, how to run it, and how its results read. */
const _STUDIES: Readonly<Record<StudyName, _Study>> = {
  "small-batch": {
    claim:
      "**Claim** (document 001): “batch normalization依赖于batch的大小,当batch值很小时,计算的均值和方差不稳定。" +
      "研究表明对于ResNet类模型在ImageNet数据集上,batch从16降低到8时开始有非常明显的性能下降” — *batch " +
      "normalization depends on the batch size: when the batch is very small, the mean and variance it " +
      "computes are unstable; research shows that for ResNet-type models on ImageNet performance starts " +
      "to drop very markedly when the batch goes from 16 down to 8.* And: “BN层在使用过程中的training参数非常重要” " +
      "— *the BN layer's training flag matters a great deal in use.* Anchor: Wu & He (2018, Group " +
      "Normalization, Fig. 1): BN's error grows sharply below batch 8 while GN's stays flat.",
    command: "deno task sweep small-batch --preset small-batch",
    files: ["sweep.csv"],
    body: _smallBatch,
  },
  "learning-rate": {
    claim:
      "**Claim** (document 001): “训练更快,可以使用更高的学习率” — *trains faster, and can use a higher " +
      "learning rate*; and “可以使用更大的学习率,文[2]指出BN有效是因为用上BN层之后可以使用更大的学习率,从而跳出不好的局部极值” — " +
      "*a larger learning rate can be used; [2] argues BN works because with BN layers a larger " +
      "learning rate can be used, escaping poor local minima.*",
    command: "deno task sweep learning-rate --preset learning-rate",
    files: ["sweep.csv"],
    body: _learningRate,
  },
  figure1: {
    claim:
      "**Claim** (Ioffe & Szegedy 2015, Figure 1): “(a) The test accuracy of the MNIST network trained " +
      "with and without Batch Normalization, vs. the number of training steps. Batch Normalization " +
      "helps the network train faster and achieve higher accuracy. (b, c) The evolution of input " +
      "distributions to a typical sigmoid, over the course of training, shown as {15, 50, 85}th " +
      "percentiles. Batch Normalization makes the distribution more stable and reduces the internal " +
      "covariate shift.”",
    command: "deno task train --preset figure1",
    files: ["figure1.csv"],
    body: _figure1,
  },
  resnet: {
    claim:
      "**Claim** (document 004, read critically): “在第一步，我们将训练一个ResNet-20模型，并使用三个数据集（cifar10、" +
      "cifar100和imagenet）进行评估。通过实验，我们可以看出，使用批归一化能够显著提升模型性能” " +
      "— *first we train a " +
      "ResNet-20 model and evaluate it on three datasets (cifar10, cifar100 and imagenet); the " +
      "experiments show that batch normalization improves the model's performance significantly.* " +
      "CIFAR-10 is not available on this machine; Fashion-MNIST (28×28 grey images, 10 classes) " +
      "stands in.",
    command: "deno task train --preset resnet",
    files: ["summary.csv", "history.csv"],
    body: _resnet,
  },
  "unbiased-variance": {
    claim:
      "**Claim** (document 002): “值得注意的是在做test的时候为了对一个sample也可以用BN，此时的 u, var 往往采用做training" +
      "时候的一个统计平均，同时方差采样的是无差的平均统计，即做test时有：” var_test = m/(m−1)·E[var] — *note that " +
      "at test time, so that BN works on a single sample, μ and var are usually averages collected " +
      "during training, the variance being the unbiased average; that is, at test time* " +
      "var_test = m/(m−1)·E[var]. " +
      "Document 001 gives the same rule, σ²_test = m/(m−1)·E(σ²_batch).",
    command: "deno task sweep unbiased-variance --preset unbiased-variance",
    files: ["sweep.csv"],
    body: _unbiasedVariance,
  },
};

/**
 * The small-batch study: BN's test accuracy (running and batch statistics) against GroupNorm,
 * Batch Renormalization, ghost batches and no normalization at batch sizes 2–128.
 */
function _smallBatch({ config, csv }: _Results): string[] {
  const [rows] = csv;
  const batches = _unique(rows.map((r) => _num(r.batch_size))).sort((a, b) => a - b);
  const variants = _unique(rows.map((r) => String(r.variant)));
  const cell = (b: number, v: string, column: string) =>
    stats(
      rows.filter((r) => r.batch_size === b && r.variant === v).map((r) => _num(r[column])),
    );
  const table = (column: string, only?: (v: string) => boolean) =>
    markdownTable(batches.map((b) => ({
      batch: b,
      lr: String(rows.find((r) => r.batch_size === b)?.lr ?? "–"),
      ...Object.fromEntries(
        variants.filter((v) => !only || only(v)).map((v) => [v, percentCell(cell(b, v, column))]),
      ),
    })));
  const seeds = _unique(rows.map((r) => r.seed)).length;
  const lines = [
    `**Setting**: ${_scale(config, rows.length)}; batch sizes ${batches.join(", ")}; lr = ` +
    `base·B/32 (the lr column); ${seeds} seed(s); GroupNorm with ${config.groups} groups; ghost ` +
    `batches of ${
      rows.find((r) => r.variant === "ghost")?.virtual_batch_size ?? "–"
    } where the batch ` +
    `is at least twice that. Test accuracy in percent, mean ± std over seeds.`,
    "",
    "Running statistics (inference mode):",
    "",
    table("test_accuracy"),
    "",
    "Batch statistics (the training flag left on at test time; test batches of the training batch size):",
    "",
    table("test_accuracy_batch_stats", (v) => v !== "none"),
    "",
    "![Test accuracy vs batch size](../results/small-batch/small_batch.svg)",
    "",
  ];
  const verdict: string[] = [];
  const [low, high] = [batches.find((b) => b === 2) ?? batches[0], batches.find((b) => b === 8)];
  if (high !== undefined) {
    const rise = (v: string, column: string) => {
      const a = cell(low, v, column);
      const b = cell(high, v, column);
      return { points: (b.mean - a.mean) * 100, spread: Math.max(a.std, b.std) * 100 };
    };
    const bn = rise("bnlab", "test_accuracy");
    const gn = rise("group", "test_accuracy");
    const bnBatch = rise("bnlab", "test_accuracy_batch_stats");
    const spread = Math.max(bn.spread, gn.spread);
    const change = (points: number) =>
      `${points >= 0 ? "rises" : "falls"} ${Math.abs(points).toFixed(1)} points`;
    verdict.push(
      `**Verdict**: from batch ${high} to batch ${low}, BN's (bnlab) error with running statistics ` +
        `${change(bn.points)}, with batch statistics ${change(bnBatch.points)}; GroupNorm's ` +
        `${change(gn.points)} ` +
        (Number.isFinite(spread)
          ? `(largest seed spread at these points ${spread.toFixed(1)} points). ` +
            (bn.points - gn.points > 2 * spread
              ? "Wu & He's pattern is seen: BN degrades at small batches, GroupNorm much less."
              : "Wu & He's pattern is not seen at this scale: the difference between BN's and " +
                "GroupNorm's rise is within twice the seed spread.")
          : "(one seed: no spread to judge the difference against)."),
    );
    const flag = batches.map((b) => {
      const r = cell(b, "bnlab", "test_accuracy");
      const s = cell(b, "bnlab", "test_accuracy_batch_stats");
      return `${b}: ${((s.mean - r.mean) * 100).toFixed(1)}`;
    });
    verdict.push(
      "",
      `Training flag: batch-statistics minus running-statistics accuracy of bnlab, in points, by ` +
        `batch size — ${flag.join("; ")}.`,
    );
  }
  return [...lines, ...verdict, ""];
}

/**
 * The learning-rate study: none vs bnlab, relu and sigmoid, lr 0.001–1, diverged trials
 * counted.
 */
function _learningRate({ config, csv }: _Results): string[] {
  const [rows] = csv;
  const lrs = _unique(rows.map((r) => _num(r.lr))).sort((a, b) => a - b);
  const activations = _unique(rows.map((r) => String(r.activation)));
  const variants = _unique(rows.map((r) => String(r.variant)));
  const at = (lr: number, a: string, v: string) =>
    rows.filter((r) => r.lr === lr && r.activation === a && r.variant === v);
  const cell = (lr: number, a: string, v: string) => {
    const trials = at(lr, a, v);
    const diverged = trials.filter((r) => r.status === "diverged").length;
    const s = stats(trials.map((r) => _num(r.test_accuracy)));
    return diverged ? `${percentCell(s)} (${diverged}/${trials.length} diverged)` : percentCell(s);
  };
  const table = markdownTable(lrs.map((lr) => ({
    lr: String(lr),
    ...Object.fromEntries(
      activations.flatMap((a) => variants.map((v) => [`${v}, ${a}`, cell(lr, a, v)])),
    ),
  })));
  // A learning rate "works" for a normalization when no seed diverged and the mean accuracy is
  // at least 90% of the best mean any normalization reached with that activation.
  const verdict = activations.map((a) => {
    const mean = (lr: number, v: string) =>
      stats(at(lr, a, v).map((r) => _num(r.test_accuracy))).mean;
    const best = Math.max(
      ...variants.flatMap((v) => lrs.map((lr) => mean(lr, v))).filter(Number.isFinite),
    );
    const works = (v: string) =>
      lrs.filter((lr) => {
        const trials = at(lr, a, v);
        return trials.length > 0 && trials.every((r) => r.status !== "diverged") &&
          mean(lr, v) >= 0.9 * best;
      });
    const range = (list: number[]) => list.length ? `lr ${list.join(", ")}` : "no learning rate";
    const pct = (x: number) => Number.isFinite(x) ? `${(x * 100).toFixed(1)}%` : "– (diverged)";
    const bestAt = (v: string) =>
      lrs.reduce((b, lr) => (mean(lr, v) > mean(b, v) || !Number.isFinite(mean(b, v)) ? lr : b));
    const parts = variants.map((v) =>
      `${v} works at ${range(works(v))} (best ${(mean(bestAt(v), v) * 100).toFixed(1)}% at lr ${
        bestAt(v)
      })`
    );
    const diverged = rows.filter((r) => r.activation === a && r.status === "diverged").length;
    const top = lrs[lrs.length - 1];
    let judgement = "";
    if (variants.includes("bnlab") && variants.includes("none")) {
      const [bn, none] = [works("bnlab").at(-1) ?? 0, works("none").at(-1) ?? 0];
      judgement = bn > none
        ? ` The largest working learning rate is higher with BN (${bn} vs ${
          none || "none"
        }): the claim holds.`
        : ` The largest working learning rate is not higher with BN (${bn || "none"} vs ${
          none || "none"
        }): the claim does not hold here.`;
      judgement += ` At lr ${top}: none ${pct(mean(top, "none"))}, bnlab ${
        pct(mean(top, "bnlab"))
      }.`;
    }
    return `${a}: ${parts.join("; ")}; ${diverged} trial(s) diverged.${judgement}`;
  });
  return [
    `**Setting**: ${_scale(config, rows.length, ["activation"])}; batch ${config.batchSize}; ` +
    `${_unique(rows.map((r) => r.seed)).length} seed(s). Test accuracy in percent (running ` +
    `statistics), mean ± std over the seeds that did not diverge; a trial whose loss turned NaN is ` +
    `counted as diverged.`,
    "",
    table,
    "",
    "![Test accuracy vs learning rate](../results/learning-rate/learning_rate.svg)",
    "",
    `**Verdict** (a learning rate works when no seed diverged and the mean accuracy is at least ` +
    `90% of the best mean with that activation): ${verdict.join(" ")}`,
    "",
  ];
}

/**
 * Whether BN trains faster in Figure 1's rows: the probe accuracy at `step` with and without
 * BN, mean ± std over seeds, and a verdict only where the difference of the means exceeds
 * twice its standard error (one seed gives none).
 */
function _fasterVerdict(rows: readonly Row[], step: number): string {
  const at = (v: string) => rows.find((r) => r.variant === v && r.step === step);
  const [bn, none] = [at("bnlab"), at("none")];
  const cell = (r: Row | undefined) =>
    `${(_num(r?.accuracy_mean) * 100).toFixed(1)}` +
    (_num(r?.n) > 1 ? ` ± ${(_num(r?.accuracy_std) * 100).toFixed(1)}` : "");
  const seeds = Math.min(_num(bn?.n), _num(none?.n));
  const text = `Probe accuracy at step ${step}: ${cell(bn)}% with BN, ${cell(none)}% without ` +
    `(${seeds} seed${seeds === 1 ? "" : "s"})`;
  if (!(seeds > 1)) return `${text}: one seed has no spread to judge the difference by.`;
  const difference = _num(bn?.accuracy_mean) - _num(none?.accuracy_mean);
  const error = Math.sqrt(
    _num(bn?.accuracy_std) ** 2 / _num(bn?.n) + _num(none?.accuracy_std) ** 2 / _num(none?.n),
  );
  if (difference > 2 * error) {
    return `${text} — BN trains faster (the difference exceeds twice its standard error).`;
  }
  return difference < -2 * error
    ? `${text} — BN trains slower here (by more than twice the standard error).`
    : `${text} — the difference is within twice its standard error: not measurable here.`;
}

/**
 * Ioffe & Szegedy (2015)'s Figure 1: test accuracy over training and the 15th/50th/85th
 * percentiles of a last-hidden-layer sigmoid input, with and without BN.
 */
async function _figure1({ dir, config, csv }: _Results): Promise<string[]> {
  const [rows] = csv;
  const variants = _unique(rows.map((r) => String(r.variant)));
  const summary = await _rows(`${dir}/summary.csv`) ?? [];
  const steps = _unique(rows.map((r) => _num(r.step))).sort((a, b) => a - b);
  const tenth = steps[Math.max(0, Math.floor(steps.length / 10) - 1)];
  const drift = (v: string) => {
    const of = rows.filter((r) => r.variant === v && _num(r.step) >= tenth);
    const p50 = of.map((r) => _num(r.p50));
    const width = of.map((r) => _num(r.p85) - _num(r.p15));
    return {
      range: Math.max(...p50) - Math.min(...p50),
      first: _num(of[0]?.p50),
      last: _num(of.at(-1)?.p50),
      width: stats(width).mean,
    };
  };
  const accuracyAt = (v: string, step: number) =>
    _num(rows.find((r) => r.variant === v && r.step === step)?.accuracy_mean);
  const early = steps[Math.max(0, Math.floor(steps.length / 5) - 1)];
  const table = markdownTable(variants.map((v) => {
    const d = drift(v);
    return {
      variant: v,
      [`probe accuracy at step ${early}`]: `${(accuracyAt(v, early) * 100).toFixed(2)}`,
      [`probe accuracy at step ${steps.at(-1)}`]: `${
        (accuracyAt(v, steps.at(-1)!) * 100).toFixed(2)
      }`,
      "final test accuracy (full test set)": percentCell(
        stats(summary.filter((r) => r.variant === v).map((r) => _num(r.test_accuracy))),
      ),
      [`median from step ${tenth} to the end`]: `${d.first.toFixed(3)} → ${d.last.toFixed(3)}`,
      "range of the median": d.range.toFixed(3),
      "mean 15–85th width": d.width.toFixed(3),
    };
  }));
  const none = variants.includes("none") ? drift("none") : undefined;
  const bn = variants.includes("bnlab") ? drift("bnlab") : undefined;
  const verdict = none && bn
    ? `the median of the sigmoid input moves over a range of ${none.range.toFixed(3)} without BN ` +
      `and ${bn.range.toFixed(3)} with BN after the first tenth of training; ` +
      (bn.range < none.range
        ? "BN's input distribution is the more stable, as the figure claims. "
        : "BN's input distribution is not the more stable here. ") +
      _fasterVerdict(rows, early)
    : "both variants are needed for a verdict.";
  return [
    `**Setting**: hidden layers ${config.hidden.join("×")}, ` +
    `${_scale(config, summary.length)}; batch ${config.batchSize}, lr ${config.lr}; ` +
    `${
      steps.at(-1)
    } steps (the paper ran 50,000); diagnostics \`${config.diagnostics}\` (a fixed ` +
    `probe of test images, inference mode); the unit is unit 0 of the last hidden layer; values ` +
    `are means over seeds.`,
    "",
    table,
    "",
    "![Figure 1](../results/figure1/figure1.svg)",
    "",
    `**Verdict**: ${verdict}`,
    "",
  ];
}

/**
 * ResNet-20 with and without BN on Fashion-MNIST: per-epoch test accuracy, and inference with
 * batch vs running statistics.
 */
function _resnet({ config, csv }: _Results): string[] {
  const [summary, history] = csv;
  const variants = _unique(summary.map((r) => String(r.variant)));
  const epochs = _unique(
    history.filter((r) => typeof r.test_accuracy === "number").map((r) => _num(r.epoch)),
  ).sort((a, b) => a - b);
  const epochCell = (v: string, e: number) =>
    percentCell(
      stats(
        history.filter((r) =>
          r.variant === v && r.epoch === e && typeof r.test_accuracy === "number"
        )
          .map((r) => _num(r.test_accuracy)),
      ),
    );
  const final = (v: string, column: string) =>
    stats(summary.filter((r) => r.variant === v).map((r) => _num(r[column])));
  const table = markdownTable(variants.map((v) => ({
    variant: v,
    ...Object.fromEntries(epochs.map((e) => [`epoch ${e}`, epochCell(v, e)])),
    "batch statistics (final)": v === "none"
      ? "–"
      : percentCell(final(v, "test_accuracy_batch_stats")),
  })));
  const none = final("none", "test_accuracy");
  const others = variants.filter((v) => v !== "none").map((v) => {
    const s = final(v, "test_accuracy");
    return `${v} ${percentCell(s)} (${_points(s, none)} points vs none)`;
  });
  const spread = Math.max(
    ...variants.map((v) => final(v, "test_accuracy").std).filter(Number.isFinite),
    0,
  );
  const bn = final("bnlab", "test_accuracy");
  return [
    `**Setting**: ${_scale(config, summary.length)}; batch ${config.batchSize}, lr ${config.lr}; ` +
    `GroupNorm with ${config.groups} groups; the same epochs for every variant. Test accuracy in ` +
    `percent (running statistics), mean ± std over seeds, at the end of each epoch.`,
    "",
    table,
    "",
    "![ResNet-20 test accuracy per epoch](../results/resnet/resnet_epochs.svg)",
    "",
    `**Verdict**: after ${epochs.at(-1)} epochs, none reaches ${percentCell(none)}; ` +
    `${others.join("; ")}; largest seed spread ${(spread * 100).toFixed(2)} points. ` +
    (bn.mean - none.mean > 2 * Math.max(spread, 0.001)
      ? "BN improves ResNet-20 here by more than twice the seed spread."
      : "BN's advantage is not larger than twice the seed spread at this scale."),
    "",
  ];
}

/**
 * The unbiased-variance study: bnlab's running variance stored biased (÷m) or unbiased
 * (÷(m−1)) at batch 2, 4, 8, paired by seed.
 */
function _unbiasedVariance({ config, csv }: _Results): string[] {
  const [rows] = csv;
  const batches = _unique(rows.map((r) => _num(r.batch_size))).sort((a, b) => a - b);
  const acc = (b: number, kind: string) =>
    rows.filter((r) => r.batch_size === b && r.running_variance === kind);
  const tableRows = batches.map((b) => {
    const biased = acc(b, "biased");
    const unbiased = acc(b, "unbiased");
    const diffs = unbiased.map((u) => {
      const twin = biased.find((r) => r.seed === u.seed);
      return twin ? _num(u.test_accuracy) - _num(twin.test_accuracy) : NaN;
    });
    const d = stats(diffs);
    return {
      batch: b,
      biased: percentCell(stats(biased.map((r) => _num(r.test_accuracy)))),
      unbiased: percentCell(stats(unbiased.map((r) => _num(r.test_accuracy)))),
      "unbiased − biased (paired)": percentCell(d),
      "batch statistics": percentCell(stats(biased.map((r) => _num(r.test_accuracy_batch_stats)))),
      _d: d,
    };
  });
  const verdicts = tableRows.map((r) => {
    const d = r._d;
    const measurable = d.n > 1 && Math.abs(d.mean) > 2 * d.std / Math.sqrt(d.n);
    return `batch ${r.batch}: ${(d.mean * 100).toFixed(2)} points` +
      (d.n > 1
        ? ` ± ${(d.std * 100).toFixed(2)} (${measurable ? "measurable" : "within noise"})`
        : "");
  });
  // The running variance is not used in training: paired runs must end with the same loss.
  const pairs = rows.filter((r) => r.running_variance === "unbiased").flatMap((u) => {
    const b = rows.find((r) =>
      r.running_variance === "biased" && r.seed === u.seed && r.batch_size === u.batch_size
    );
    return b ? [{ u, b }] : [];
  });
  const identical = pairs.filter(({ u, b }) => u.train_loss === b.train_loss).length;
  return [
    `**Setting**: bnlab, ${_scale(config, rows.length)}; lr = base·B/32; seeds paired (the same ` +
    `seed gives the same initial weights and batches in both arms; the running variance is not ` +
    `used in training, and ${identical} of ${pairs.length} pairs end with the same training loss ` +
    `to the last digit). In a convolutional BN layer m counts every position of the batch ` +
    `(B·H·W values per channel), so m/(m−1) is far from 1 only in the BN of a dense layer, where ` +
    `m = B. Test accuracy in percent, mean ± std over seeds; the paired column is the mean ± std ` +
    `of the per-seed differences.`,
    "",
    markdownTable(tableRows.map(({ _d, ...rest }) => rest)),
    "",
    "![Biased vs unbiased running variance](../results/unbiased-variance/unbiased_variance.svg)",
    "",
    `**Verdict**: inference accuracy with the unbiased minus the biased running variance — ` +
    `${verdicts.join("; ")} (measurable: the mean difference exceeds twice its standard error).`,
    "",
  ];
}

/** The report's settings the report section reads, by results directory. */
export const REPORT_SETTINGS: readonly { dir: string; what: string }[] = [
  { dir: "report-5seeds", what: "`report` preset (sigmoid), 5 seeds" },
  { dir: "modern", what: "`modern` preset (relu)" },
  { dir: "report-normalized", what: "`report` + input standardization (0.1307, 0.3081)" },
  { dir: "report-example-optimizer", what: "`report` + SGD momentum 0.5 at lr 0.01" },
];

/**
 * How far a report value may lie from a mean over seeds and still count as reproduced: two seed
 * standard deviations, but never less than half a point (where fewer than two seeds differ).
 */
const _REPRODUCED_MIN_POINTS = 0.5;

/** Trials a results directory's saved config asks for (variants × seeds), if it has one. */
async function _plannedTrials(dir: string): Promise<number | undefined> {
  try {
    const { config } = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
    return config.variants.length * config.seeds;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/** The report's test accuracy of a variant, in percent. */
function _reportPercent(variant: "none" | "bnlab" | "tfjs"): number {
  const key = variant === "bnlab" ? "custom" : variant;
  return REPORT_RESULTS[key].testCorrect / REPORT_TEST_IMAGES * 100;
}

/** The report's gap tfjs − bnlab (its PyTorch BN minus its ZJK_BN), in points. */
function _reportGap(): number {
  return _reportPercent("tfjs") - _reportPercent("bnlab");
}

/** Whether a report value (percent) counts as reproduced by statistics of fractions. */
function _reproduces(s: Stats, reportPercent: number): boolean {
  const tolerance = Math.max(
    2 * (Number.isFinite(s.std) ? s.std * 100 : 0),
    _REPRODUCED_MIN_POINTS,
  );
  return Math.abs(s.mean * 100 - reportPercent) <= tolerance;
}

/** One setting's comparison with the report: a line per variant and the gap, in Markdown. */
function _settingAgainstReport(summary: readonly Row[]): { lines: string[]; reproduced: string[] } {
  const done = summary.filter((r) => r.status !== "diverged");
  const accuracy = (v: string) =>
    stats(done.filter((r) => r.variant === v).map((r) => _num(r.test_accuracy)));
  const lines: string[] = [];
  const reproduced: string[] = [];
  const parts = (["none", "bnlab", "tfjs"] as const).flatMap((v) => {
    const s = accuracy(v);
    if (!s.n) return [];
    const report = _reportPercent(v);
    const ok = _reproduces(s, report);
    if (ok) reproduced.push(v);
    const diff = s.mean * 100 - report;
    return [
      `${v} ${percentCell(s)} against ${report.toFixed(2)}: ` +
      (ok ? "reproduced" : `${Math.abs(diff).toFixed(2)} points ${diff > 0 ? "above" : "below"}`),
    ];
  });
  lines.push(`Against the report: ${parts.join("; ")}.`);
  // The gap tfjs − bnlab, paired by seed.
  const bySeed = (v: string) =>
    new Map(done.filter((r) => r.variant === v).map((r) => [r.seed, _num(r.test_accuracy)]));
  const bn = bySeed("bnlab");
  const tfjs = bySeed("tfjs");
  const gaps = [...bn.keys()].filter((seed) => tfjs.has(seed)).map((seed) =>
    (tfjs.get(seed)! - bn.get(seed)!) * 100
  );
  if (gaps.length) {
    const g = stats(gaps);
    const gap = _reportGap();
    lines.push(
      "",
      `tfjs − bnlab, paired by seed: ${g.mean.toFixed(2)}` +
        (g.n > 1 ? ` ± ${g.std.toFixed(2)} points over ${g.n} seeds` : " points (one seed)") +
        `; the report's gap is ${gap.toFixed(2)} points` +
        (g.n > 1 && g.std > 0
          ? `, ${(Math.abs(gap - g.mean) / g.std).toFixed(1)} standard deviations of the paired ` +
            `gap away from ours.`
          : "."),
    );
  }
  return { lines, reproduced };
}

/**
 * The report with error bars: each of the report's settings with every seed run, each variant
 * against the report's number, the gap tfjs − bnlab paired by seed, and whether the PyTorch MNIST
 * example's input standardization or optimizer gives the report's numbers.
 *
 * @param root The repository root.
 * @returns The Markdown section.
 *
 * @example
 * ```ts
 * import { reportSeedsSection } from "./findings_studies.ts";
 * console.log((await reportSeedsSection("/nonexistent")).includes("not yet run")); // true
 * ```
 */
export async function reportSeedsSection(root: string): Promise<string> {
  const report = (["none", "bnlab", "tfjs"] as const).map((v) =>
    `${v === "bnlab" ? "bnlab (its ZJK_BN)" : v} ${_reportPercent(v).toFixed(2)}%`
  );
  const lines = _head(
    "report-seeds",
    `**Claim** (document 000, the report): after 20 epochs, test accuracy ${report.join(", ")}.`,
  );
  lines.push(
    `A report value counts as reproduced when it lies within two standard deviations over seeds ` +
      `of our mean, or within ${_REPRODUCED_MIN_POINTS} points where fewer than two seeds differ.`,
    "",
  );
  const verdicts: string[] = [];
  for (const { dir, what } of REPORT_SETTINGS) {
    const summary = await _rows(`${root}/results/${dir}/summary.csv`);
    if (!summary) {
      lines.push(`### ${what}`, "", `*Not yet run*: \`results/${dir}/\` is absent.`, "");
      continue;
    }
    // Rows that name bnlab's BN by its alias `custom` read as `bnlab`.
    for (const row of summary) if (row.variant === "custom") row.variant = "bnlab";
    const variants = _unique(summary.map((r) => String(r.variant)));
    const s = (v: string, c: string) =>
      stats(
        summary.filter((r) => r.variant === v && r.status !== "diverged").map((r) => _num(r[c])),
      );
    const against = _settingAgainstReport(summary);
    lines.push(
      `### ${what}`,
      "",
      markdownTable(variants.map((v) => ({
        variant: v,
        n: summary.filter((r) => r.variant === v).length,
        "test accuracy (running)": percentCell(s(v, "test_accuracy")),
        "test accuracy (batch)": v === "none"
          ? "–"
          : percentCell(s(v, "test_accuracy_batch_stats")),
        "test loss": _lossCell(s(v, "test_loss")),
        "train loss": _lossCell(s(v, "train_loss")),
      }))),
      "",
      ...against.lines,
      "",
    );
    const planned = await _plannedTrials(`${root}/results/${dir}`);
    const inProgress = planned !== undefined && summary.length < planned;
    const all = (["none", "bnlab", "tfjs"] as const).every((v) => against.reproduced.includes(v));
    const counts = variants.map((v) => s(v, "test_accuracy").n);
    const seeds = Math.min(...counts);
    const seedText = seeds === 1 && Math.max(...counts) === 1
      ? "one seed"
      : seeds === Math.max(...counts)
      ? `${seeds} seeds`
      : `at least ${seeds} seed${seeds === 1 ? "" : "s"}`;
    verdicts.push(
      `${what}: ` +
        (all
          ? "gives the report's numbers"
          : against.reproduced.length
          ? `gives the report's number for ${against.reproduced.join(" and ")} only`
          : "gives none of the report's numbers") +
        ` (${seedText} per variant` +
        (inProgress ? `; in progress, ${summary.length} of ${planned} trials finished` : "") +
        ")",
    );
  }
  if (verdicts.length) lines.push(`**Verdict**: ${verdicts.join("; ")}.`, "");
  return lines.join("\n");
}

function _lossCell(s: Stats): string {
  if (s.n === 0) return "–";
  return s.n > 1 ? `${s.mean.toFixed(4)} ± ${s.std.toFixed(4)}` : s.mean.toFixed(4);
}

/** Every study's section, in the order of the findings document. */
export const STUDY_SECTIONS: Readonly<Record<string, FindingsSection>> = Object.freeze({
  "report-seeds": reportSeedsSection,
  ...Object.fromEntries(
    (Object.keys(_STUDIES) as StudyName[]).map((study) => [
      study,
      (root: string) => studyFindings(study, { root }),
    ]),
  ),
});

/**
 * A study's section in the shape of the findings document's registry (`scripts/docs/`): a
 * heading, the results directory it reads, and a renderer of its body (the heading left out).
 */
export interface StudyFindingsSection {
  /** The heading (level 2). */
  title: string;
  /** The results directory the section reads, relative to the repository root. */
  source: string;
  /** The section's Markdown body, read from the files under `context.root`. */
  render(context: { root: string }): Promise<string>;
}

/** The headings of the studies' sections. */
export const STUDY_TITLES = Object.freeze({
  "report-seeds": "The report with error bars",
  "small-batch": "Small batches",
  "learning-rate": "Higher learning rates",
  figure1: "Ioffe & Szegedy's Figure 1",
  resnet: "ResNet-20 with and without BN",
  "unbiased-variance": "Unbiased running variance, m/(m−1)",
});

/** The results directory each study's section reads. */
const _SOURCES: Readonly<Record<keyof typeof STUDY_TITLES, string>> = {
  "report-seeds": "results/report-5seeds",
  "small-batch": "results/small-batch",
  "learning-rate": "results/learning-rate",
  figure1: "results/figure1",
  resnet: "results/resnet",
  "unbiased-variance": "results/unbiased-variance",
};

/**
 * The studies' sections as entries of the findings document's registry, in document order:
 * each renders its section without the heading.
 *
 * @example
 * ```ts
 * import { STUDY_FINDINGS_SECTIONS } from "./findings_studies.ts";
 * const [first] = STUDY_FINDINGS_SECTIONS;
 * console.log(first.title, first.source); // The report with error bars results/report-5seeds
 * ```
 */
export const STUDY_FINDINGS_SECTIONS: readonly StudyFindingsSection[] = Object.freeze(
  (Object.keys(_SOURCES) as (keyof typeof STUDY_TITLES)[]).map((key) => ({
    title: STUDY_TITLES[key],
    source: _SOURCES[key],
    render: async (context: { root: string }) =>
      (await STUDY_SECTIONS[key](context.root)).replace(/^## [^\n]*\n+/, "").trim(),
  })),
);
