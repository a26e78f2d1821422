/**
 * What the local executor would do with a plan, read from the experiment directory without
 * writing to it (`--dry-run`): each trial is skipped (its `result.json` says it finished),
 * resumed after the last epoch its checkpoint holds, or trained from the start.
 *
 * @module
 */
import type { Plan } from "./plan.ts";
import { readRunRecords, readRunResult } from "./results_dir.ts";

/** What running a plan would do with one of its trials. */
export interface TrialPreview {
  /** Index into the plan's trials. */
  index: number;
  /** The trial's id. */
  id: string;
  /** The trial's directory, relative to the experiment directory. */
  dir: string;
  /**
   * `skip`: it finished (done or diverged); `resume`: it continues after `epochsDone`;
   * `train`: it starts at epoch 1.
   */
  action: "skip" | "resume" | "train";
  /** For a skipped trial: how it finished. */
  status?: "done" | "diverged";
  /** Epochs completed: those its checkpoint holds, or its result's. */
  epochsDone: number;
  /** Epochs its config asks for. */
  epochs: number;
}

/**
 * Reads what the local executor would do with each trial of a plan, writing nothing.
 *
 * @param expDir The experiment directory (it need not exist).
 * @param plan Its plan.
 * @param only Consider only the trials with these ids. @default {all}
 * @returns One preview per trial considered, in plan order.
 *
 * @example A directory without runs trains every trial
 * ```ts
 * import { resolveConfig } from "./config.ts";
 * import { buildPlan, trainTrials } from "./plan.ts";
 * import { previewPlan } from "./plan_preview.ts";
 * const plan = buildPlan("train", await trainTrials(resolveConfig("smoke"), "/nonexistent"));
 * const previews = await previewPlan("/nonexistent", plan);
 * console.log(previews.map((p) => p.action)); // [ "train", "train", "train" ]
 * ```
 */
export async function previewPlan(
  expDir: string,
  plan: Plan,
  only?: ReadonlySet<string>,
): Promise<TrialPreview[]> {
  const previews: TrialPreview[] = [];
  for (const { index, id, dir, config } of plan.trials) {
    if (only && !only.has(id)) continue;
    const trial = { index, id, dir, epochs: config.epochs };
    const result = await readRunResult(`${expDir}/${dir}`);
    if (result) {
      previews.push({ ...trial, action: "skip", status: result.status, epochsDone: result.epochs });
      continue;
    }
    // One record per completed epoch (results_dir.ts, RunState).
    const epochsDone = (await readRunRecords(`${expDir}/${dir}`)).length;
    previews.push({ ...trial, action: epochsDone > 0 ? "resume" : "train", epochsDone });
  }
  return previews;
}

/**
 * Formats a plan's preview for the terminal: the directory and that nothing was written, a
 * count per action, then one line per trial.
 *
 * @param expDir The experiment directory.
 * @param previews From {@linkcode previewPlan}.
 * @returns The text.
 *
 * @example
 * ```ts
 * import { formatPlanPreview } from "./plan_preview.ts";
 * console.log(formatPlanPreview("results/x", [
 *   { index: 0, id: "none-seed0", dir: "runs/none-seed0", action: "skip", status: "done", epochsDone: 2, epochs: 2 },
 *   { index: 1, id: "bnlab-seed0", dir: "runs/bnlab-seed0", action: "resume", epochsDone: 1, epochs: 2 },
 * ]));
 * // Dry run: nothing was written. Results directory: results/x
 * // 2 trials: 0 to train, 1 to resume, 1 finished (skipped)
 * //   skip    none-seed0   runs/none-seed0   done (2 epoch(s))
 * //   resume  bnlab-seed0  runs/bnlab-seed0  after epoch 1: epoch 2
 * ```
 */
export function formatPlanPreview(expDir: string, previews: readonly TrialPreview[]): string {
  const count = (action: TrialPreview["action"]) =>
    previews.filter((p) => p.action === action).length;
  const epochs = (from: number, to: number) => from === to ? `epoch ${to}` : `epochs ${from}–${to}`;
  const what = (p: TrialPreview) =>
    p.action === "skip"
      ? `${p.status} (${p.epochsDone} epoch(s))`
      : p.action === "resume"
      ? `after epoch ${p.epochsDone}: ${epochs(p.epochsDone + 1, p.epochs)}`
      : epochs(1, p.epochs);
  const idWidth = Math.max(0, ...previews.map((p) => p.id.length));
  const dirWidth = Math.max(0, ...previews.map((p) => p.dir.length));
  return [
    `Dry run: nothing was written. Results directory: ${expDir}`,
    `${previews.length} trials: ${count("train")} to train, ${count("resume")} to resume, ` +
    `${count("skip")} finished (skipped)`,
    ...previews.map((p) =>
      `  ${p.action.padEnd(6)}  ${p.id.padEnd(idWidth)}  ${p.dir.padEnd(dirWidth)}  ${what(p)}`
    ),
  ].join("\n");
}
