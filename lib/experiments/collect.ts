/**
 * `collect`: builds an experiment's outputs from whatever trials of its plan finished; the
 * same for every executor, so the CSVs do not depend on where the trials ran.
 *
 * @module
 */
import { type Plan, readPlan } from "./plan.ts";
import { writeExperimentOutputs } from "./report_files.ts";
import { readRunResult } from "./results_dir.ts";
import { writeSweepOutputs } from "./sweeps.ts";
import { writeFigure1 } from "./figure1.ts";
import { writeStudyChart } from "./study_charts.ts";

/** What {@linkcode collect} found. */
export interface Collected {
  /** The plan's kind. */
  kind: Plan["kind"];
  /** Trials with a `result.json`. */
  finished: number;
  /** Trials in the plan. */
  total: number;
}

/**
 * Writes `summary.csv`, `table.csv`, `history.csv` and `curves.svg` (train; with
 * `figure1.csv`/`.svg`/`.png` when runs wrote diagnostics) or `sweep.csv`, `sweep_table.csv`
 * and `sweep.svg` (sweep), and a study's own chart (`study_charts.ts`), from the finished trials; missing or failed
 * trials are left out, never an error.
 *
 * @param expDir The experiment directory (with `plan.json`).
 * @returns The kind and how many trials finished.
 *
 * @example
 * ```ts
 * import { resolveConfig } from "./config.ts";
 * import { collect } from "./collect.ts";
 * import { buildPlan, trainTrials, writePlan } from "./plan.ts";
 * const dir = await Deno.makeTempDir();
 * await writePlan(dir, buildPlan("train", await trainTrials(resolveConfig("smoke"), dir)));
 * console.log(await collect(dir)); // { kind: "train", finished: 0, total: 3 }
 * ```
 */
export async function collect(expDir: string): Promise<Collected> {
  const plan = await readPlan(expDir);
  if (!plan) throw new Error(`collect: ${expDir} has no plan.json`);
  if (plan.kind === "sweep") await writeSweepOutputs(expDir, plan);
  else await writeExperimentOutputs(expDir, plan);
  let finished = 0;
  for (const trial of plan.trials) {
    if (await readRunResult(`${expDir}/${trial.dir}`)) finished++;
  }
  // The studies' figures; their PNG renditions (about a second each) once every trial is done.
  const png = finished === plan.trials.length;
  if (plan.kind === "train") await writeFigure1(expDir, plan, { png }); // runs with diagnostics
  await writeStudyChart(expDir, plan, { png }); // small-batch, learning-rate, …, resnet
  return { kind: plan.kind, finished, total: plan.trials.length };
}
