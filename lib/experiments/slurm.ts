/**
 * The Slurm executor: an experiment directory's planned trials run as one Slurm job array, each
 * task running one trial (`deno task trial <dir> --index $SLURM_ARRAY_TASK_ID`), and a collect
 * job (`--dependency=afterany:<array>`) builds the tables and plots from whatever finished.
 *
 * Layout under the experiment directory:
 * - `plan.json`: the trials (written by the planner; this module reads only each trial's `dir`);
 * - `slurm/trials.sbatch`, `slurm/collect.sbatch`: the last submitted batch scripts;
 * - `slurm/trial-<index>.log`: each task's stdout and stderr, opened in append mode so that a
 *   requeued or resubmitted task adds to its log instead of replacing it;
 * - `slurm/collect.log`: the collect job's output;
 * - `slurm.json`: every submission (array job id, collect job id, trial indices, time).
 *
 * A task is safe to run twice: the trial command exits at once when its trial already finished,
 * and resumes from the trial's last checkpoint otherwise; `--requeue` lets Slurm restart a task
 * after preemption or node failure (`$SLURM_RESTART_COUNT` is logged at every start). A task
 * that Slurm ends with SIGTERM (`scancel`, its time limit) removes its trial's `run.lock` itself
 * before exiting. A `run.lock` that a task killed otherwise left on another node is removed when
 * Slurm restarts the task ({@linkcode releaseRequeuedLock}) or when the trial is resubmitted
 * ({@linkcode runSlurmExecutor}); Slurm runs one instance of an array task at a time.
 *
 * The local one-node cluster of `scripts/slurm_local.sh` runs all of this on one machine.
 *
 * @module
 */
import { resolve } from "node:path";
import { writeFileAtomic, writeJsonAtomic } from "../output/atomic.ts";
import { processAlive, readRunLock, RUN_LOCK_FILE } from "./run_lock.ts";
import { readRunRecords } from "./results_dir.ts";

/** Array limit used when none is given: at most this many tasks of the array run at once. */
export const DEFAULT_ARRAY_LIMIT = 64;

/** Options passed through to `sbatch`. */
export interface SlurmOptions {
  /** `--partition`. @default {undefined} (the cluster's default partition) */
  partition?: string;
  /** `--time` of each task and of the collect job (e.g. `"2:00:00"`). @default {undefined} */
  time?: string;
  /** `--cpus-per-task` of each task. @default {undefined} (the cluster's default, usually 1) */
  cpusPerTask?: number;
  /** Most tasks of the array running at once (`--array=…%LIMIT`). @default {64} */
  arrayLimit?: number;
  /**
   * More `sbatch` options for both jobs, as one shell-quoted string (`"--qos=low --mem 4G"`);
   * each option becomes its own `#SBATCH` line. @default {""}
   */
  extra?: string;
  /** `--job-name` prefix: the array is `<name>`, the collect job `<name>-collect`. @default {"bnlab"} */
  jobName?: string;
}

/** Options of {@linkcode slurmScripts}. */
export interface SlurmScriptOptions extends SlurmOptions {
  /** Trial indices the array runs (0-based, into `plan.json`'s trials). */
  indices: readonly number[];
  /** Directory the jobs run in: the repository root, where `deno task` finds deno.json. @default {the repository of this module} */
  repoRoot?: string;
  /**
   * Shell command each task runs; `$SLURM_ARRAY_TASK_ID` is the trial index.
   * @default {`deno task --quiet trial '<expDir>' --index "$SLURM_ARRAY_TASK_ID" --quiet`}
   */
  trialCommand?: string;
  /** Shell command of the collect job. @default {`deno task --quiet collect '<expDir>'`} */
  collectCommand?: string;
}

/** The two batch scripts of a submission. */
export interface SlurmScripts {
  /** The job array's script. */
  trials: string;
  /** The collect job's script (submitted with `--dependency=afterany:<array job id>`). */
  collect: string;
}

/** Options of {@linkcode submitSlurm}. */
export interface SubmitSlurmOptions extends Omit<SlurmScriptOptions, "indices"> {
  /** Trial indices to submit. @default {every trial of plan.json} */
  indices?: readonly number[];
  /** Return the scripts without submitting anything. @default {false} */
  dryRun?: boolean;
}

/** One submission, as recorded in `slurm.json`. */
export interface SlurmSubmission {
  /** Job id of the array (`<id>_<index>` names one task); absent on a dry run. */
  arrayJobId?: string;
  /** Job id of the collect job; absent on a dry run. */
  collectJobId?: string;
  /** Trial indices of the array. */
  indices: number[];
  /** When it was submitted (ISO 8601). */
  submitted: string;
}

/** What {@linkcode submitSlurm} returns: the submission and the scripts' text. */
export interface SlurmSubmitResult extends SlurmSubmission {
  /** The scripts, as written to `slurm/*.sbatch`. */
  scripts: SlurmScripts;
  /** Both scripts as one text, for `--dry-run`. */
  text: string;
}

/** State of one trial, as {@linkcode trialStatuses} reads it. */
export type TrialState =
  | "done"
  | "diverged"
  | "running"
  | "pending"
  | "failed"
  | "stopped"
  | "missing";

/** One trial's status. */
export interface TrialStatus {
  /** Index into plan.json's trials (the array task id). */
  index: number;
  /** The trial's id from plan.json, or its directory name. */
  id: string;
  /** The trial's output directory (absolute). */
  dir: string;
  /**
   * `done` or `diverged` (result.json), `failed` (error.json, or Slurm ended the task without a
   * result), `running` (a Slurm task or a live lock), `pending` (queued in Slurm), `stopped`
   * (epochs checkpointed, nothing running it: interrupted; it resumes after them) or `missing`.
   */
  state: TrialState;
  /**
   * For failed trials: the error message, or Slurm's job state, reason and exit code; for
   * stopped ones, the epochs done.
   */
  detail?: string;
  /** The task's log file, when it exists. */
  log?: string;
  /** The Slurm job id of the latest task that ran or will run the trial (`<array>_<index>`). */
  jobId?: string;
}

/** Options of {@linkcode trialStatuses}. */
export interface TrialStatusOptions {
  /** Ask `squeue` and `scontrol` about submitted tasks (skipped when they fail). @default {true} */
  slurm?: boolean;
  /**
   * A trial's `run.lock` (its owner's pid, host and heartbeat) counts as a running trial while
   * its heartbeat is younger than this and, on this host, its process lives. Slurm's queue
   * decides instead for a trial submitted to Slurm. @default {30000}
   */
  lockStaleMs?: number;
}

/** Options of {@linkcode requeueSlurmTask}. */
export interface RequeueOptions {
  /** Give up waiting for the task to be pending again after this long. @default {30000} */
  timeoutMs?: number;
}

/** Where a trial of plan.json writes: its id and output directory. */
export interface TrialLocation {
  /** The trial's id (`id` in plan.json, else its directory's name). */
  id: string;
  /** Its output directory, absolute (`dir` in plan.json, relative to the experiment). */
  dir: string;
}

/**
 * The repository root this module belongs to (the jobs' working directory by default).
 *
 * @returns An absolute path without a trailing slash.
 *
 * @example
 * ```ts
 * import { repoRoot } from "./slurm.ts";
 * console.log(repoRoot().startsWith("/")); // true
 * ```
 */
export function repoRoot(): string {
  return decodeURIComponent(new URL("../../", import.meta.url).pathname).replace(/\/$/, "");
}

/**
 * Writes indices as a Slurm array range list: consecutive runs become `a-b`.
 *
 * @param indices Distinct non-negative integers, in any order.
 * @returns The list, e.g. `0-3,7,9-10`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { arraySpec } from "./slurm.ts";
 * assert.equal(arraySpec([9, 0, 1, 2, 3, 7, 10]), "0-3,7,9-10");
 * ```
 */
export function arraySpec(indices: readonly number[]): string {
  if (indices.length === 0) {
    throw new Error("arraySpec: expected at least one index, received none");
  }
  for (const i of indices) {
    if (!Number.isInteger(i) || i < 0) {
      throw new Error(`arraySpec: indices must be integers >= 0, received ${i}`);
    }
  }
  const sorted = [...new Set(indices)].sort((a, b) => a - b);
  const ranges: string[] = [];
  let start = sorted[0];
  for (let k = 1; k <= sorted.length; k++) {
    if (k < sorted.length && sorted[k] === sorted[k - 1] + 1) continue;
    const end = sorted[k - 1];
    ranges.push(end === start ? `${start}` : `${start}-${end}`);
    start = sorted[k];
  }
  return ranges.join(",");
}

/**
 * Quotes a string for a POSIX shell.
 *
 * @param text Any string.
 * @returns `text` in single quotes, with embedded single quotes escaped.
 *
 * @example
 * ```ts
 * import { shellQuote } from "./slurm.ts";
 * console.log(shellQuote("it's")); // 'it'\''s'
 * ```
 */
export function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/**
 * Splits a string of shell words (single and double quotes, backslash escapes; no expansion).
 *
 * @param text For instance `--qos=low --comment "two words"`.
 * @returns The words.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { splitShellWords } from "./slurm.ts";
 * assert.deepEqual(splitShellWords(`--qos=low --comment "two words"`), [
 *   "--qos=low",
 *   "--comment",
 *   "two words",
 * ]);
 * ```
 */
export function splitShellWords(text: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  let quote: "'" | '"' | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === quote) quote = undefined;
      else if (c === "\\" && quote === '"' && i + 1 < text.length) word += text[++i];
      else word += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      word ??= "";
    } else if (c === "\\" && i + 1 < text.length) {
      word = (word ?? "") + text[++i];
    } else if (/\s/.test(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else {
      word = (word ?? "") + c;
    }
  }
  if (quote) {
    throw new Error(`splitShellWords: unterminated ${quote} quote in ${JSON.stringify(text)}`);
  }
  if (word !== undefined) words.push(word);
  return words;
}

/**
 * Builds the job array's batch script and the collect job's script for an experiment directory.
 *
 * Each task runs the trial command from `repoRoot` with its output and errors appended to
 * `<expDir>/slurm/trial-<index>.log`, after a line naming the job, the host and
 * `$SLURM_RESTART_COUNT`. The array is `--array=<indices>%<arrayLimit>` with `--requeue` and
 * `--open-mode=append`.
 *
 * @param expDir The experiment directory, as the compute nodes see it (an absolute path on the
 *   shared filesystem).
 * @param options Trial indices, sbatch options, and the commands.
 * @returns Both scripts.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { slurmScripts } from "./slurm.ts";
 * const { trials, collect } = slurmScripts("/shared/exp", {
 *   indices: [0, 1, 2, 3],
 *   arrayLimit: 2,
 *   partition: "gpu",
 * });
 * assert.match(trials, /^#SBATCH --array=0-3%2$/m);
 * assert.match(trials, /^#SBATCH --partition=gpu$/m);
 * assert.match(trials, /deno task --quiet trial '\/shared\/exp' --index "\$SLURM_ARRAY_TASK_ID"/);
 * assert.match(collect, /deno task --quiet collect '\/shared\/exp'/);
 * ```
 */
export function slurmScripts(expDir: string, options: SlurmScriptOptions): SlurmScripts {
  if (!expDir.startsWith("/")) {
    throw new Error(
      `slurmScripts: expDir must be an absolute path, received ${JSON.stringify(expDir)}`,
    );
  }
  const limit = options.arrayLimit ?? DEFAULT_ARRAY_LIMIT;
  if (!Number.isInteger(limit) || limit < 1) {
    throw new Error(`slurmScripts: arrayLimit must be an integer >= 1, received ${limit}`);
  }
  if (
    options.cpusPerTask !== undefined && (!Number.isInteger(options.cpusPerTask) ||
      options.cpusPerTask < 1)
  ) {
    throw new Error(
      `slurmScripts: cpusPerTask must be an integer >= 1, received ${options.cpusPerTask}`,
    );
  }
  const root = options.repoRoot ?? repoRoot();
  const name = options.jobName ?? "bnlab";
  const logs = `${expDir}/slurm`;
  const common = [
    ...(options.partition ? [`--partition=${options.partition}`] : []),
    ...(options.time ? [`--time=${options.time}`] : []),
    ..._extraLines(options.extra ?? ""),
  ];
  const header = (lines: string[]) => ["#!/bin/bash", ...lines.map((l) => `#SBATCH ${l}`)];
  const trials = [
    ...header([
      `--job-name=${name}`,
      `--array=${arraySpec(options.indices)}%${limit}`,
      `--chdir=${root}`,
      `--output=${logs}/trial-%a.log`,
      `--error=${logs}/trial-%a.log`,
      "--open-mode=append",
      "--requeue",
      ...(options.cpusPerTask ? [`--cpus-per-task=${options.cpusPerTask}`] : []),
      ...common,
    ]),
    "set -euo pipefail",
    `cd ${shellQuote(root)}`,
    'echo "[bnlab] $(date -u +%Y-%m-%dT%H:%M:%SZ) job ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}' +
    ' on $(hostname), restart ${SLURM_RESTART_COUNT:-0}"',
    // A restart may land on another node than the start it replaces, whose run.lock would
    // otherwise hold the trial until its heartbeat goes stale.
    'if [ "${SLURM_RESTART_COUNT:-0}" != 0 ]; then',
    `  BNLAB_EXP_DIR=${shellQuote(expDir)} deno eval ${shellQuote(_releaseCode(root))} ||`,
    '    echo "[bnlab] could not check the trial\'s run.lock; starting it anyway" >&2',
    "fi",
    options.trialCommand ??
      `deno task --quiet trial ${shellQuote(expDir)} --index "$SLURM_ARRAY_TASK_ID" --quiet`,
    "",
  ].join("\n");
  const collect = [
    ...header([
      `--job-name=${name}-collect`,
      `--chdir=${root}`,
      `--output=${logs}/collect.log`,
      `--error=${logs}/collect.log`,
      "--open-mode=append",
      ...common,
    ]),
    "set -euo pipefail",
    `cd ${shellQuote(root)}`,
    'echo "[bnlab] $(date -u +%Y-%m-%dT%H:%M:%SZ) collect job ${SLURM_JOB_ID} on $(hostname)"',
    options.collectCommand ?? `deno task --quiet collect ${shellQuote(expDir)}`,
    "",
  ].join("\n");
  return { trials, collect };
}

/** The `deno eval` code a restarted task runs: {@linkcode releaseRequeuedLock} of its trial. */
function _releaseCode(root: string): string {
  const module = JSON.stringify(`file://${root}/lib/experiments/slurm.ts`);
  return `import { releaseRequeuedLock } from ${module}; await releaseRequeuedLock(` +
    `Deno.env.get("BNLAB_EXP_DIR") ?? "", Number(Deno.env.get("SLURM_ARRAY_TASK_ID")));`;
}

/** Groups `--opt value` words into one `#SBATCH` line per option. */
function _extraLines(extra: string): string[] {
  const lines: string[] = [];
  for (const word of splitShellWords(extra)) {
    const quoted = /[\s'"\\$`]/.test(word) ? shellQuote(word) : word;
    if (word.startsWith("-") || lines.length === 0) lines.push(quoted);
    else lines[lines.length - 1] += ` ${quoted}`;
  }
  return lines;
}

/**
 * Reads the trials of `<expDir>/plan.json`: each entry's id and its output directory.
 *
 * @param expDir The experiment directory.
 * @returns The trials in plan order, with absolute directories.
 * @throws If plan.json is missing or has no `trials` array.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readTrialLocations } from "./slurm.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/plan.json`, JSON.stringify({ trials: [{ id: "a", dir: "trials/a" }] }));
 * assert.deepEqual(await readTrialLocations(dir), [{ id: "a", dir: `${dir}/trials/a` }]);
 * ```
 */
export async function readTrialLocations(expDir: string): Promise<TrialLocation[]> {
  const path = `${expDir}/plan.json`;
  let plan: { trials?: unknown };
  try {
    plan = JSON.parse(await Deno.readTextFile(path));
  } catch (error) {
    throw new Error(`cannot read the plan ${path} (${(error as Error).message})`);
  }
  if (!Array.isArray(plan.trials)) {
    throw new Error(`${path}: expected a "trials" array, received ${typeof plan.trials}`);
  }
  const base = resolve(expDir);
  return plan.trials.map((entry: Record<string, unknown>, i: number) => {
    const dir = String(entry.dir ?? entry.out ?? `trials/${entry.id ?? i}`);
    return {
      id: String(entry.id ?? dir.split("/").pop()),
      dir: dir.startsWith("/") ? dir : `${base}/${dir}`,
    };
  });
}

/**
 * Submits an experiment's trials as one job array and its collect job (`afterany` on the
 * array), writes the scripts under `<expDir>/slurm/`, and records the job ids in `slurm.json`.
 * With `dryRun` it only returns the scripts.
 *
 * @param expDir The experiment directory, with `plan.json`; made absolute.
 * @param options Which trials, sbatch options, the commands, `dryRun`.
 * @returns The submission and the scripts' text.
 * @throws If `sbatch` fails, with its message.
 *
 * @example
 * ```ts ignore
 * import { submitSlurm } from "./slurm.ts";
 * const job = await submitSlurm("/shared/sweep", { arrayLimit: 100, time: "1:00:00" });
 * console.log(`array ${job.arrayJobId}, collect ${job.collectJobId}`);
 * ```
 */
export async function submitSlurm(
  expDir: string,
  options: SubmitSlurmOptions = {},
): Promise<SlurmSubmitResult> {
  const dir = resolve(expDir);
  const indices = [...(options.indices ?? (await readTrialLocations(dir)).map((_, i) => i))];
  if (indices.length === 0) {
    throw new Error(`submitSlurm: ${dir} has no trial to submit (all finished or none planned)`);
  }
  const scripts = slurmScripts(dir, { ...options, indices });
  const text =
    `${scripts.trials}\n# collect job: sbatch --dependency=afterany:<array job id>\n${scripts.collect}`;
  const submitted = new Date().toISOString();
  if (options.dryRun) return { indices, submitted, scripts, text };
  await Deno.mkdir(`${dir}/slurm`, { recursive: true });
  await writeFileAtomic(`${dir}/slurm/trials.sbatch`, scripts.trials);
  await writeFileAtomic(`${dir}/slurm/collect.sbatch`, scripts.collect);
  const arrayJobId = await _sbatch([`${dir}/slurm/trials.sbatch`]);
  let collectJobId: string;
  try {
    collectJobId = await _sbatch([
      "--kill-on-invalid-dep=yes",
      `--dependency=afterany:${arrayJobId}`,
      `${dir}/slurm/collect.sbatch`,
    ]);
  } catch (error) {
    await _slurmCommand("scancel", [arrayJobId]).catch(() => {});
    throw error;
  }
  const submission = { arrayJobId, collectJobId, indices, submitted };
  const record = await readSlurmRecord(dir);
  await writeJsonAtomic(`${dir}/slurm.json`, { submissions: [...record.submissions, submission] });
  return { ...submission, scripts, text };
}

/**
 * Reads `<expDir>/slurm.json`; an experiment never submitted to Slurm has no submissions.
 *
 * @param expDir The experiment directory.
 * @returns Every submission, oldest first.
 *
 * @example
 * ```ts
 * import { readSlurmRecord } from "./slurm.ts";
 * console.log((await readSlurmRecord(await Deno.makeTempDir())).submissions); // []
 * ```
 */
export async function readSlurmRecord(
  expDir: string,
): Promise<{ submissions: SlurmSubmission[] }> {
  try {
    return JSON.parse(await Deno.readTextFile(`${expDir}/slurm.json`));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return { submissions: [] };
    throw new Error(`cannot read ${expDir}/slurm.json (${(error as Error).message})`);
  }
}

/**
 * Reports each planned trial's state from its files (`result.json`, `error.json`, a live
 * `run.lock`) and, for trials submitted to Slurm, from `squeue` (pending, running) and
 * `scontrol show job` (how a task without a result ended, while Slurm still remembers it;
 * there is no accounting database to ask later).
 *
 * @param expDir The experiment directory, with `plan.json`.
 * @param options Whether to ask Slurm; when a lock counts as stale.
 * @returns One status per trial, in plan order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { trialStatuses } from "./slurm.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/plan.json`, JSON.stringify({ trials: [{ id: "a" }, { id: "b" }] }));
 * await Deno.mkdir(`${dir}/trials/a`, { recursive: true });
 * await Deno.writeTextFile(`${dir}/trials/a/result.json`, JSON.stringify({ status: "done" }));
 * const states = (await trialStatuses(dir)).map((s) => s.state);
 * assert.deepEqual(states, ["done", "missing"]);
 * ```
 */
export async function trialStatuses(
  expDir: string,
  options: TrialStatusOptions = {},
): Promise<TrialStatus[]> {
  const dir = resolve(expDir);
  const trials = await readTrialLocations(dir);
  const { submissions } = await readSlurmRecord(dir);
  const latest = new Map<number, string>();
  for (const s of submissions) {
    for (const i of s.indices) if (s.arrayJobId) latest.set(i, s.arrayJobId);
  }
  const askSlurm = (options.slurm ?? true) && latest.size > 0;
  const queued = askSlurm ? await _squeue(new Set(latest.values())) : undefined;
  const ended = new Map<string, string>();
  const staleMs = options.lockStaleMs ?? 30_000;
  const statuses: TrialStatus[] = [];
  for (const [index, trial] of trials.entries()) {
    const arrayId = latest.get(index);
    const jobId = arrayId ? `${arrayId}_${index}` : undefined;
    const log = await _exists(`${dir}/slurm/trial-${index}.log`);
    const status: TrialStatus = { index, id: trial.id, dir: trial.dir, state: "missing" };
    if (jobId) status.jobId = jobId;
    if (log) status.log = log;
    const result = await _readJson(`${trial.dir}/result.json`);
    const error = await _readJson(`${trial.dir}/error.json`);
    const inQueue = jobId ? queued?.get(jobId) : undefined;
    if (result) {
      status.state = result.status === "diverged" ? "diverged" : "done";
    } else if (inQueue) {
      status.state = inQueue === "PENDING" || inQueue === "REQUEUED" ? "pending" : "running";
    } else if (!(jobId && queued) && await _liveLock(trial.dir, staleMs)) {
      status.state = "running";
    } else if (error) {
      status.state = "failed";
      status.detail = String(error.message ?? error.error ?? JSON.stringify(error));
    } else if (jobId && queued) {
      if (!ended.has(arrayId!)) {
        for (const [id, state] of await _scontrolJobs(arrayId!)) ended.set(id, state);
        ended.set(arrayId!, "");
      }
      const state = ended.get(jobId);
      if (state && !/^JobState=COMPLETED\b/.test(state)) {
        status.state = "failed";
        status.detail = state;
      } else if (state || log) {
        status.state = "failed";
        status.detail = state ? `${state}, but no result.json` : "the task ended without a result";
      }
    }
    if (status.state === "missing") {
      // A checkpoint that cannot be read leaves the trial missing: the trial itself reports it.
      const epochs = (await readRunRecords(trial.dir).catch(() => [])).length;
      if (epochs > 0) {
        status.state = "stopped";
        status.detail = `after epoch ${epochs}`;
      }
    }
    statuses.push(status);
  }
  return statuses;
}

/**
 * Formats trial statuses as text: a count per state, then one line per trial that is not done.
 *
 * @param statuses From {@linkcode trialStatuses}.
 * @returns Lines for a terminal.
 *
 * @example
 * ```ts
 * import { formatTrialStatuses } from "./slurm.ts";
 * console.log(formatTrialStatuses([
 *   { index: 0, id: "a", dir: "/x/a", state: "done" },
 *   { index: 1, id: "b", dir: "/x/b", state: "failed", detail: "lr must be > 0", log: "/x/slurm/trial-1.log" },
 * ]));
 * // 2 trials: 1 done, 1 failed
 * // #1 b: failed: lr must be > 0 (log /x/slurm/trial-1.log)
 * ```
 */
export function formatTrialStatuses(statuses: readonly TrialStatus[]): string {
  const counts = new Map<TrialState, number>();
  for (const s of statuses) counts.set(s.state, (counts.get(s.state) ?? 0) + 1);
  const lines = [
    `${statuses.length} trials: ${[...counts].map(([state, n]) => `${n} ${state}`).join(", ")}`,
  ];
  for (const s of statuses) {
    if (s.state === "done") continue;
    const detail = s.detail ? `: ${s.detail}` : "";
    const where = [s.jobId ? `job ${s.jobId}` : "", s.log ? `log ${s.log}` : ""].filter(Boolean);
    lines.push(
      `#${s.index} ${s.id}: ${s.state}${detail}${where.length ? ` (${where.join(", ")})` : ""}`,
    );
  }
  return lines.join("\n");
}

/**
 * The trials a resubmission must run: those neither finished (done, diverged) nor queued or
 * running (a stopped one resumes after its checkpointed epochs).
 *
 * @param statuses From {@linkcode trialStatuses}.
 * @returns Their indices.
 *
 * @example
 * ```ts
 * import { unfinishedTrials } from "./slurm.ts";
 * console.log(unfinishedTrials([
 *   { index: 0, id: "a", dir: "/a", state: "done" },
 *   { index: 1, id: "b", dir: "/b", state: "failed" },
 *   { index: 2, id: "c", dir: "/c", state: "running" },
 *   { index: 3, id: "d", dir: "/d", state: "stopped", detail: "after epoch 2" },
 *   { index: 4, id: "e", dir: "/e", state: "missing" },
 * ])); // [ 1, 3, 4 ]
 * ```
 */
export function unfinishedTrials(statuses: readonly TrialStatus[]): number[] {
  return statuses
    .filter((s) => s.state === "failed" || s.state === "stopped" || s.state === "missing")
    .map((s) => s.index);
}

/** Options of {@linkcode runSlurmExecutor}. */
export interface SlurmExecutorOptions extends Omit<SubmitSlurmOptions, "indices"> {
  /** Submit only the trials with these ids (of those unfinished). @default {every trial} */
  only?: ReadonlySet<string>;
  /** Receives the lines that say what was submitted. @default {console.error} */
  log?: (line: string) => void;
}

/**
 * The Slurm executor: submits the plan's unfinished trials (neither done, diverged, queued
 * nor running; see {@linkcode unfinishedTrials}) as one job array with its collect job, or,
 * with `dryRun`, prints the batch scripts to stdout. Resuming an experiment with it submits
 * only what is missing. Before submitting, it removes the `run.lock` that an earlier Slurm
 * task of a resubmitted trial left on another node (that task is no longer queued or running).
 *
 * @param expDir The experiment directory, with `plan.json`.
 * @param options sbatch options, `dryRun`, which trials, where to log.
 * @returns The submission, or `undefined` when no trial needed one.
 *
 * @example
 * ```ts ignore
 * import { runSlurmExecutor } from "./slurm.ts";
 * await runSlurmExecutor("/shared/sweep", { arrayLimit: 100, partition: "cpu" });
 * ```
 */
export async function runSlurmExecutor(
  expDir: string,
  options: SlurmExecutorOptions = {},
): Promise<SlurmSubmitResult | undefined> {
  const log = options.log ?? ((line: string) => console.error(line));
  const dir = resolve(expDir);
  const statuses = await trialStatuses(dir);
  const wanted = statuses.filter((s) => !options.only || options.only.has(s.id));
  const indices = unfinishedTrials(wanted);
  if (indices.length === 0) {
    log(
      `bnlab slurm: nothing to submit: of ${wanted.length} trials, ${
        wanted.filter((s) => s.state === "done" || s.state === "diverged").length
      } finished and the others are queued or running (deno task collect ${dir} rebuilds the outputs)`,
    );
    return undefined;
  }
  const { only: _only, log: _log, ...submit } = options;
  if (!options.dryRun) {
    // A task Slurm ended on another node (scancel, a time limit, a node failure) may have left
    // its trial's run.lock behind; no task of that trial is queued or running, so it is stale.
    for (const status of wanted) {
      if (!status.jobId || !indices.includes(status.index)) continue;
      const owner = await readRunLock(status.dir).catch(() => undefined);
      if (!owner || owner.host === Deno.hostname()) continue;
      await Deno.remove(`${status.dir}/${RUN_LOCK_FILE}`).catch(() => {});
      log(
        `bnlab slurm: removed ${status.dir}/${RUN_LOCK_FILE} of process ${owner.pid} on ` +
          `${owner.host}, left by Slurm task ${status.jobId}`,
      );
    }
  }
  const result = await submitSlurm(dir, { ...submit, indices });
  if (options.dryRun) {
    console.log(result.text);
    return result;
  }
  log(
    `bnlab slurm: submitted job array ${result.arrayJobId} (${indices.length} of ${statuses.length} trials, ` +
      `at most ${options.arrayLimit ?? DEFAULT_ARRAY_LIMIT} at once) and collect job ` +
      `${result.collectJobId}; logs in ${dir}/slurm/`,
  );
  log(`bnlab slurm: follow it with: deno task sweep --status ${dir}  (or train --status)`);
  return result;
}

/**
 * Removes `--status DIR` (or `--status=DIR`) from a list of arguments.
 *
 * @param args Command-line arguments; modified in place.
 * @returns The directory, or `undefined` when absent.
 * @throws If `--status` has no value.
 *
 * @example
 * ```ts
 * import { takeStatusFlag } from "./slurm.ts";
 * const args = ["--status", "results/x"];
 * console.log(takeStatusFlag(args), args); // "results/x" []
 * ```
 */
export function takeStatusFlag(args: string[]): string | undefined {
  const index = args.findIndex((a) => a === "--status" || a.startsWith("--status="));
  if (index < 0) return undefined;
  const inline = args[index].startsWith("--status=");
  const value = inline ? args[index].slice("--status=".length) : args[index + 1];
  if (!value || value.startsWith("-")) {
    throw new Error(
      `--status expects an experiment directory, received ${JSON.stringify(value ?? "")}`,
    );
  }
  args.splice(index, inline ? 1 : 2);
  return value;
}

/**
 * Removes the `run.lock` a trial's previous start left on another node, for a task that Slurm
 * restarted (`$SLURM_RESTART_COUNT` > 0; the batch script calls this before the trial). Slurm
 * runs one instance of an array task at a time and stops the old one before a requeue, so a
 * lock from another host is that stopped start's; a lock from this host is left to the
 * trial, which takes it over once its process is gone.
 *
 * @param expDir The experiment directory.
 * @param index The trial's index in plan.json.
 * @returns Whether a lock was removed.
 * @throws If `index` is not a trial of the plan.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { releaseRequeuedLock } from "./slurm.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/plan.json`, JSON.stringify({ trials: [{ id: "a", dir: "a" }] }));
 * await Deno.mkdir(`${dir}/a`);
 * const lock = { pid: 1, host: "node-elsewhere", token: "t", heartbeat: new Date().toISOString() };
 * await Deno.writeTextFile(`${dir}/a/run.lock`, JSON.stringify(lock));
 * assert.equal(await releaseRequeuedLock(dir, 0), true);
 * assert.equal(await releaseRequeuedLock(dir, 0), false); // no lock left
 * ```
 */
export async function releaseRequeuedLock(expDir: string, index: number): Promise<boolean> {
  const trials = await readTrialLocations(resolve(expDir));
  const trial = trials[index];
  if (!trial) {
    throw new Error(
      `releaseRequeuedLock: index must be a trial of ${expDir}/plan.json, in [0, ${
        trials.length - 1
      }], received ${index}`,
    );
  }
  const owner = await readRunLock(trial.dir);
  if (!owner || owner.host === Deno.hostname()) return false;
  await Deno.remove(`${trial.dir}/${RUN_LOCK_FILE}`).catch(() => {});
  console.error(
    `[bnlab] removed ${trial.dir}/${RUN_LOCK_FILE} of process ${owner.pid} on ${owner.host}, ` +
      "left by this task's previous start",
  );
  return true;
}

/**
 * Requeues a running task (`scontrol requeue`), as preemption or a node failure would, and
 * makes it start again at once: once it is pending, `scontrol update JobId=… StartTime=now`
 * replaces the begin time Slurm gives a requeued job (about two minutes later). The update
 * waits for the next wall-clock second after the requeue, because slurmd refuses a task
 * relaunched within the second of its requeue ("Job credential revoked").
 *
 * @param jobId A job or array task id (`123` or `123_4`).
 * @param options How long to wait for the task to be pending.
 * @returns Resolves once the task is released.
 * @throws If scontrol fails, or the task is not pending within `timeoutMs`.
 *
 * @example
 * ```ts ignore
 * import { requeueSlurmTask } from "./slurm.ts";
 * await requeueSlurmTask("123_4");
 * ```
 */
export async function requeueSlurmTask(jobId: string, options: RequeueOptions = {}): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const requeuedAt = Date.now();
  await _slurmCommand("scontrol", ["requeue", jobId]);
  const deadline = requeuedAt + timeoutMs;
  let state = "";
  while (Date.now() < deadline) {
    state = (await _slurmCommand("squeue", ["-h", "-j", jobId, "-o", "%T"])).trim();
    if (state === "PENDING") break;
    await _sleep(100);
  }
  if (state !== "PENDING") {
    throw new Error(
      `requeueSlurmTask: ${jobId} was not pending within ${timeoutMs} ms of the requeue, ` +
        `its state is ${JSON.stringify(state)}`,
    );
  }
  const nextSecond = (Math.floor(requeuedAt / 1000) + 1) * 1000 + 100;
  if (Date.now() < nextSecond) await _sleep(nextSecond - Date.now());
  await _slurmCommand("scontrol", ["update", `JobId=${jobId}`, "StartTime=now"]);
}

/** Runs a Slurm client command; returns stdout, or throws with its stderr. */
async function _slurmCommand(
  command: string,
  args: string[],
): Promise<string> {
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" }).output();
  } catch (error) {
    throw new Error(
      `${command} could not start (${(error as Error).message}); is Slurm's client installed?`,
    );
  }
  const decoder = new TextDecoder();
  if (!output.success) {
    throw new Error(
      `${command} ${args.join(" ")} failed with exit code ${output.code}: ${
        decoder.decode(output.stderr).trim()
      }`,
    );
  }
  return decoder.decode(output.stdout);
}

async function _sbatch(args: string[]): Promise<string> {
  const out = (await _slurmCommand("sbatch", ["--parsable", ...args])).trim();
  const id = out.split(";")[0];
  if (!/^\d+$/.test(id)) {
    throw new Error(`sbatch --parsable: expected a job id, received ${JSON.stringify(out)}`);
  }
  return id;
}

/**
 * `<array>_<task>` → squeue state, for the tasks of the given arrays still in the queue;
 * `undefined` when squeue cannot answer.
 */
async function _squeue(arrayIds: Set<string>): Promise<Map<string, string> | undefined> {
  const states = new Map<string, string>();
  let out: string;
  try {
    out = await _slurmCommand("squeue", ["-h", "-r", "-o", "%F|%K|%T"]);
  } catch {
    return undefined;
  }
  for (const line of out.split("\n")) {
    const [arrayId, task, state] = line.trim().split("|");
    if (arrayIds.has(arrayId) && /^\d+$/.test(task)) states.set(`${arrayId}_${task}`, state);
  }
  return states;
}

/** `<array>_<task>` → "JobState=… Reason=… ExitCode=…" from `scontrol show job`, while known. */
async function _scontrolJobs(arrayId: string): Promise<Map<string, string>> {
  const states = new Map<string, string>();
  let out: string;
  try {
    out = await _slurmCommand("scontrol", ["-o", "show", "job", arrayId]);
  } catch {
    return states;
  }
  for (const line of out.split("\n")) {
    const field = (name: string) => line.match(new RegExp(`\\b${name}=(\\S+)`))?.[1];
    const task = field("ArrayTaskId");
    if (field("ArrayJobId") !== arrayId || !task || !/^\d+$/.test(task)) continue;
    states.set(
      `${arrayId}_${task}`,
      `JobState=${field("JobState")} Reason=${field("Reason")} ExitCode=${field("ExitCode")}`,
    );
  }
  return states;
}

async function _liveLock(dir: string, staleMs: number): Promise<boolean> {
  const owner = await readRunLock(dir).catch(() => undefined);
  if (!owner) return false;
  if (!(Date.now() - Date.parse(owner.heartbeat) <= staleMs)) return false;
  if (owner.host !== Deno.hostname()) return true;
  return await processAlive(owner.pid);
}

async function _readJson(path: string): Promise<Record<string, unknown> | undefined> {
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw new Error(`cannot read ${path} (${(error as Error).message})`);
  }
}

async function _exists(path: string): Promise<string | undefined> {
  try {
    await Deno.stat(path);
    return path;
  } catch {
    return undefined;
  }
}

function _sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
