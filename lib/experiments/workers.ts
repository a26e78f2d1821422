/**
 * Parallel worker processes: the same script started N times, each told its index (by
 * `--part i/N`, or the arguments the caller gives each: the runner's workers get `--share i/N`
 * and share the trials, lib/experiments/shared_trials.ts). Processes rather than threads, because tfjs-wasm runs one thread per
 * process in Deno and independent trials scale across cores this way.
 *
 * @module
 */
import { MAX_BLAS_THREADS, readEnv } from "../env.ts";
import type { Plan } from "./plan.ts";
import { pathExists } from "./results_dir.ts";
import { SIGTERM_EXIT_STATUS } from "./run_lock.ts";

/** Options of {@linkcode runWorkers}. */
export interface RunWorkersOptions {
  /** Path or URL of the Deno script to start. */
  script: string | URL;
  /** Arguments every worker gets; `--part i/N` is appended unless `argsFor` is given. */
  args: string[];
  /** The arguments of worker i, appended to `args` instead of `--part i/N`. */
  argsFor?: (worker: number) => string[];
  /** Number of processes. */
  workers: number;
  /** Receives each line a worker writes to stderr, with the worker's index. */
  onLine?: (worker: number, line: string) => void;
}

/**
 * Parses `--part i/N` (0 ≤ i < N) from a list of arguments and removes it; another flag of the
 * same form (scripts/trial.ts' `--share i/N`) when `flag` names it.
 *
 * @param args Command-line arguments; modified in place.
 * @param flag The flag. @default {"--part"}
 * @returns The part, or `undefined` when absent.
 *
 * @example
 * ```ts
 * import { takePartFlag } from "./workers.ts";
 * const args = ["--epochs", "2", "--part", "1/4"];
 * console.log(takePartFlag(args), args); // { part: 1, of: 4 } [ "--epochs", "2" ]
 * ```
 */
export function takePartFlag(
  args: string[],
  flag = "--part",
): { part: number; of: number } | undefined {
  const index = args.findIndex((a) => a === flag || a.startsWith(`${flag}=`));
  if (index < 0) return undefined;
  const inline = args[index].startsWith(`${flag}=`);
  const value = inline ? args[index].slice(flag.length + 1) : args[index + 1];
  args.splice(index, inline ? 1 : 2);
  const match = value?.match(/^(\d+)\/(\d+)$/);
  const part = match ? Number(match[1]) : NaN;
  const of = match ? Number(match[2]) : NaN;
  if (!match || of < 1 || part >= of) {
    throw new Error(`${flag} expects i/N with 0 <= i < N, received ${JSON.stringify(value)}`);
  }
  return { part, of };
}

/**
 * Splits jobs over `of` workers so that the busiest one has as little to do as the rule
 * "longest job first, to the least loaded worker" (LPT) makes it: with LeNet's three variants
 * on two workers, tfjs's BN (the slowest) goes to one and the other two to the other, instead
 * of index-by-index (none and tfjs together, the longest pair). Workers that share trials
 * take their first one from this split, so that workers starting together reach for different
 * trials. Deterministic: ties go to the lower job index and the lower worker index, so every
 * worker computes the same split.
 *
 * @param costs Estimated cost of each job (any positive unit).
 * @param of Number of workers, at least 1.
 * @returns For each job, the index of its worker (0 ≤ index < of).
 *
 * @example Three variants on two workers
 * ```ts
 * import assert from "node:assert/strict";
 * import { assignParts } from "./workers.ts";
 *
 * // none, bnlab, tfjs: relative step costs
 * assert.deepEqual(assignParts([1, 1.3, 1.55], 2), [1, 1, 0]);
 * ```
 */
export function assignParts(costs: readonly number[], of: number): number[] {
  if (!Number.isInteger(of) || of < 1) {
    throw new Error(`assignParts: of must be an integer >= 1, received ${of}`);
  }
  for (const [i, cost] of costs.entries()) {
    if (!(cost > 0) || !Number.isFinite(cost)) {
      throw new Error(`assignParts: costs must be positive numbers, received ${cost} at ${i}`);
    }
  }
  const order = costs.map((_, i) => i).sort((a, b) => costs[b] - costs[a] || a - b);
  const load = new Array<number>(of).fill(0);
  const parts = new Array<number>(costs.length);
  for (const job of order) {
    const worker = load.indexOf(Math.min(...load));
    parts[job] = worker;
    load[worker] += costs[job];
  }
  return parts;
}

/**
 * Starts `workers` processes of a script and waits for all of them.
 *
 * SIGTERM sent to this process while they run is passed on to each of them (each releases its
 * trial's run lock and exits), and once they have all ended this process exits with SIGTERM's
 * status (143) too, instead of leaving them to train on with no parent.
 *
 * @param options Script, arguments, process count and a line sink.
 * @returns Resolves when every worker exited with status 0; rejects naming the failed ones.
 *
 * @example
 * ```ts ignore
 * import { runWorkers } from "./workers.ts";
 * await runWorkers({ script: "scripts/sweep.ts", args: ["momentum"], workers: 2 });
 * ```
 */
export async function runWorkers(options: RunWorkersOptions): Promise<void> {
  const script = options.script instanceof URL ? options.script.pathname : options.script;
  const spawned: Deno.ChildProcess[] = [];
  const children = Array.from({ length: options.workers }, (_, i) => {
    const command = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-all",
        script,
        ...options.args,
        ...(options.argsFor ? options.argsFor(i) : ["--part", `${i}/${options.workers}`]),
      ],
      env: _workerEnv(options.workers),
      stdout: "null",
      stderr: "piped",
    });
    const child = command.spawn();
    spawned.push(child);
    const lines = _forwardLines(child.stderr, (line) => options.onLine?.(i, line));
    return Promise.all([child.status, lines]).then(([status]) => ({ i, status }));
  });
  let terminated = false;
  const passOn = () => {
    terminated = true;
    for (const child of spawned) {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already exited.
      }
    }
  };
  const listens = Deno.build.os !== "windows";
  if (listens) Deno.addSignalListener("SIGTERM", passOn);
  let statuses: { i: number; status: Deno.CommandStatus }[];
  try {
    statuses = await Promise.all(children);
  } finally {
    if (listens) Deno.removeSignalListener("SIGTERM", passOn);
  }
  if (terminated) Deno.exit(SIGTERM_EXIT_STATUS);
  const failed = statuses.filter((s) => !s.status.success);
  if (failed.length) {
    throw new Error(
      `workers ${
        failed.map((f) => `${f.i} (exit ${f.status.code})`).join(", ")
      } of ${options.workers} ` +
        `failed; rerun the same command to resume where they stopped`,
    );
  }
}

/**
 * Whether the worker processes may take the cores of siblings that have ended: when the runner
 * shares the cores out itself (`BNLAB_BLAS_THREADS` not set by the caller), it passes
 * `--share-cores` to scripts/trial.ts, which then calls {@linkcode othersEnded} after each epoch
 * and, once it holds, runs the products on every core (lib/backend.ts' `setProductThreads`).
 *
 * @returns True unless the caller set `BNLAB_BLAS_THREADS`.
 *
 * @example
 * ```ts
 * import { workersShareCores } from "./workers.ts";
 * console.log(typeof workersShareCores()); // "boolean"
 * ```
 */
export function workersShareCores(): boolean {
  return readEnv("BNLAB_BLAS_THREADS") === undefined;
}

/**
 * Whether every trial of `plan` but `own` (this worker's) has ended, with its `result.json` or
 * `error.json` written: the other workers are done and their cores free. A trial that ended
 * before the run counts as ended.
 *
 * @param expDir The experiment directory.
 * @param plan Its plan.
 * @param own The indices of this worker's trials.
 * @returns True when no other trial is pending or running.
 *
 * @example
 * ```ts
 * import { buildPlan, trainTrials } from "./plan.ts";
 * import { resolveConfig } from "./config.ts";
 * import { othersEnded } from "./workers.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const plan = buildPlan("train", await trainTrials(resolveConfig("smoke"), dir));
 * console.log(await othersEnded(dir, plan, plan.trials.map((t) => t.index))); // true
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function othersEnded(
  expDir: string,
  plan: Plan,
  own: readonly number[],
): Promise<boolean> {
  for (const trial of plan.trials) {
    if (own.includes(trial.index)) continue;
    const dir = `${expDir}/${trial.dir}`;
    if (!(await pathExists(`${dir}/result.json`)) && !(await pathExists(`${dir}/error.json`))) {
      return false;
    }
  }
  return true;
}

/**
 * What a worker's environment adds: the threads its matrix products' slices run on
 * (`BNLAB_BLAS_THREADS`, lib/kernels/blas.ts), the cores shared out among the workers, so
 * that processes side by side do not compete for cores; unless the caller set it. (The
 * floats do not depend on it.)
 */
function _workerEnv(workers: number): Record<string, string> {
  if (readEnv("BNLAB_BLAS_THREADS") !== undefined) return {};
  const cores = navigator.hardwareConcurrency ?? 1;
  return {
    BNLAB_BLAS_THREADS: String(
      Math.max(1, Math.min(MAX_BLAS_THREADS, Math.floor(cores / workers))),
    ),
  };
}

async function _forwardLines(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void) {
  let pending = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    const parts = (pending + chunk).split(/\r?\n|\r/);
    pending = parts.pop() ?? "";
    for (const line of parts) if (line.trim()) onLine(line);
  }
  if (pending.trim()) onLine(pending);
}
