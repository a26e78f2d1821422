/**
 * Ioffe & Szegedy (2015)'s Figure 1 from an experiment run with diagnostics: (a) test accuracy
 * against the training step, and for each variant (b, c, …) the 15th, 50th and 85th
 * percentiles of one last-hidden-layer unit's activation input (unit 0 of the last site
 * before the logits) over training. Values are means over seeds at each step.
 *
 * @module
 */
import { type Plan, readPlan } from "./plan.ts";
import { DIAGNOSTICS_FILE, type DiagnosticsRow, readDiagnostics } from "../train/diagnostics.ts";
import { writeCsv } from "../output/csv.ts";
import { lineChart, writeSvg } from "../output/plot.ts";
import { sideBySide } from "../output/panels.ts";
import { writeChart } from "../output/png.ts";

/** One row of `figure1.csv`: one variant at one step, over its seeds. */
export interface Figure1Row {
  /** The normalization variant. */
  variant: string;
  /** Training step. */
  step: number;
  /** Seeds measured at this step. */
  n: number;
  /** Mean over seeds of the probe's test accuracy (running statistics). */
  accuracy_mean: number;
  /** Sample standard deviation over seeds (n − 1), NaN for one seed. */
  accuracy_std: number;
  /** Means over seeds of the unit's 15th, 50th and 85th percentiles. */
  p15: number;
  p50: number;
  p85: number;
}

/** The columns of `figure1.csv`. */
export const FIGURE1_COLUMNS: readonly (keyof Figure1Row)[] = [
  "variant",
  "step",
  "n",
  "accuracy_mean",
  "accuracy_std",
  "p15",
  "p50",
  "p85",
];

/** One run's diagnostics with its variant and seed. */
export interface RunDiagnostics {
  /** The run's variant. */
  variant: string;
  /** The run's seed. */
  seed: number;
  /** Its `diagnostics.csv` rows. */
  rows: DiagnosticsRow[];
}

/**
 * Reduces runs' diagnostics to Figure 1's rows: for each variant and step, the mean (and
 * standard deviation) over seeds of the probe accuracy and the mean over seeds of the
 * percentiles of the last hidden site's unit 0 (the site with the second-largest index; the
 * largest is the logits layer).
 *
 * @param runs Each run's rows.
 * @returns Rows sorted by variant (in order of first appearance) and step.
 *
 * @example
 * ```ts
 * import { figure1Rows } from "./figure1.ts";
 * const row = (site: number, step: number, acc: number) => ({ step, site, probe_accuracy: acc,
 *   unit0_p15: -1, unit0_p50: 0, unit0_p85: 1 });
 * const rows = [row(0, 10, 0.5), row(1, 10, 0.5)] as never;
 * const out = figure1Rows([{ variant: "none", seed: 0, rows }, { variant: "none", seed: 1, rows }]);
 * console.log(out.length, out[0].n, out[0].accuracy_mean, out[0].p85); // 1 2 0.5 1
 * ```
 */
export function figure1Rows(runs: readonly RunDiagnostics[]): Figure1Row[] {
  const out: Figure1Row[] = [];
  const variants = [...new Set(runs.map((r) => r.variant))];
  for (const variant of variants) {
    const bySite = new Map<number, DiagnosticsRow[]>(); // step → rows of the chosen site
    for (const run of runs.filter((r) => r.variant === variant)) {
      const sites = [...new Set(run.rows.map((r) => r.site))].sort((a, b) => a - b);
      const site = sites.length > 1 ? sites[sites.length - 2] : sites[0];
      for (const row of run.rows.filter((r) => r.site === site)) {
        if (!bySite.has(row.step)) bySite.set(row.step, []);
        bySite.get(row.step)!.push(row);
      }
    }
    for (const [step, rows] of [...bySite].sort((a, b) => a[0] - b[0])) {
      const mean = (f: (r: DiagnosticsRow) => number) =>
        rows.reduce((s, r) => s + f(r), 0) / rows.length;
      const accuracy = mean((r) => r.probe_accuracy);
      const std = rows.length < 2 ? NaN : Math.sqrt(
        rows.reduce((s, r) => s + (r.probe_accuracy - accuracy) ** 2, 0) / (rows.length - 1),
      );
      out.push({
        variant,
        step,
        n: rows.length,
        accuracy_mean: accuracy,
        accuracy_std: std,
        p15: mean((r) => r.unit0_p15),
        p50: mean((r) => r.unit0_p50),
        p85: mean((r) => r.unit0_p85),
      });
    }
  }
  return out;
}

/**
 * Draws Figure 1: panel (a) accuracy against step, one line per variant in its colour; then one
 * panel per variant with its 15th, 50th and 85th percentile lines (the variant's colour, told
 * apart by dashes), side by side in one SVG.
 *
 * @param rows {@linkcode figure1Rows}'s rows.
 * @param options `title` over the figure; `panelWidth` of each panel in pixels.
 * @returns The SVG document.
 * @throws {Error} When there are no rows.
 *
 * @example
 * ```ts
 * import { figure1Chart } from "./figure1.ts";
 * const rows = [10, 20].map((step) => ({ variant: "bnlab", step, n: 1, accuracy_mean: 0.9,
 *   accuracy_std: NaN, p15: -1, p50: 0, p85: 1 }));
 * console.log((figure1Chart(rows).match(/<svg/g) ?? []).length); // 3: the figure and 2 panels
 * ```
 */
export function figure1Chart(
  rows: readonly Figure1Row[],
  options: { title?: string; panelWidth?: number } = {},
): string {
  if (rows.length === 0) throw new Error("figure1Chart: expected rows, received none");
  const width = options.panelWidth ?? 420;
  const variants = [...new Set(rows.map((r) => r.variant))];
  const panels = [
    lineChart(rows.map((r) => ({ step: r.step, accuracy: r.accuracy_mean, series: r.variant })), {
      x: "step",
      y: "accuracy",
      series: "series",
      title: "(a) test accuracy (probe, mean over seeds)",
      xLabel: "training step",
      yLabel: "test accuracy",
      width,
      height: 380,
    }),
    ...variants.map((variant, i) =>
      lineChart(
        rows.filter((r) => r.variant === variant).flatMap((r) =>
          (["p15", "p50", "p85"] as const).map((p) => ({
            step: r.step,
            value: r[p],
            series: `${variant} ${p.slice(1)}th`,
          }))
        ),
        {
          x: "step",
          y: "value",
          series: "series",
          title: `(${String.fromCharCode(98 + i)}) ${variant}: sigmoid input percentiles`,
          xLabel: "training step",
          yLabel: "last hidden unit's input",
          width,
          height: 380,
          overlapTolerance: 0,
        },
      )
    ),
  ];
  return sideBySide(panels, { title: options.title });
}

/**
 * Writes `figure1.csv`, `figure1.svg` and `figure1.png` into an experiment directory from its
 * runs' `diagnostics.csv`; does nothing when no run has diagnostics.
 *
 * @param expDir The experiment directory (with `plan.json`).
 * @param plan The plan, when the caller has read it.
 * @param options `png`: write the PNG beside the SVG (about a second). @default {png: true}
 * @returns The rows written (empty when nothing was written).
 *
 * @example
 * ```ts
 * import { writeFigure1 } from "./figure1.ts";
 * import { resolveConfig } from "./config.ts";
 * import { buildPlan, trainTrials, writePlan } from "./plan.ts";
 * const dir = await Deno.makeTempDir();
 * await writePlan(dir, buildPlan("train", await trainTrials(resolveConfig("smoke"), dir)));
 * console.log(await writeFigure1(dir)); // []
 * ```
 */
export async function writeFigure1(
  expDir: string,
  plan?: Plan,
  options: { png?: boolean } = {},
): Promise<Figure1Row[]> {
  plan ??= await readPlan(expDir);
  if (!plan) throw new Error(`writeFigure1: ${expDir} has no plan.json`);
  const runs: RunDiagnostics[] = [];
  for (const trial of plan.trials) {
    const rows = await readDiagnostics(`${expDir}/${trial.dir}/${DIAGNOSTICS_FILE}`);
    if (rows.length) {
      runs.push({ variant: trial.config.variants[0], seed: trial.config.seed, rows });
    }
  }
  if (runs.length === 0) return [];
  const rows = figure1Rows(runs);
  await writeCsv(`${expDir}/figure1.csv`, rows as unknown as Record<string, unknown>[], {
    columns: [...FIGURE1_COLUMNS],
  });
  const config = plan.trials[0].config;
  const svg = figure1Chart(rows, {
    title: `${config.model} ${config.hidden.join("×")} ${config.activation}, ${config.dataset}, ` +
      `batch ${config.batchSize}, lr ${config.lr}: ${runs.length} runs`,
  });
  if (options.png ?? true) await writeChart(`${expDir}/figure1.svg`, svg);
  else await writeSvg(`${expDir}/figure1.svg`, svg);
  return rows;
}
