/**
 * Worker processes that share a plan's trials: each takes the waiting trial with the most
 * training left, and, once fewer trials wait than there are workers, hands its trial back
 * after an epoch (checkpointed, unlocked) when a waiting one has fallen more than
 * {@linkcode HAND_OVER_EPOCHS} of its epochs behind. With three trials on two workers, none
 * waits for a core through the last of the others' epochs: the three end within about that
 * many epochs of each other. A trial resumed from a checkpoint gives the numbers of one trained
 * in a single call (lib/experiments/trial.ts), so where an epoch runs changes no result.
 *
 * @module
 */
import type { Plan, PlanTrial } from "./plan.ts";
import { readJsonFile, readRunRecords, readRunResult } from "./results_dir.ts";
import { RunLockedError, runLockHeld } from "./run_lock.ts";
import { ERROR_FILE, type RunTrialOptions, runTrialPart } from "./trial.ts";
import { assignParts } from "./workers.ts";

/** A trial of a shared pool between two epochs, as a worker estimates it. */
export interface PoolTrial {
  /** Its index in the plan. */
  index: number;
  /** The estimated cost of one of its epochs, in a unit common to the pool. */
  epochCost: number;
  /** Epochs it has left to train. */
  epochsLeft: number;
}

/**
 * How many of its own trial's epochs a waiting trial must be further behind before a worker
 * hands its trial over: each hand-over costs a model build and a checkpoint load, so trials
 * are not swapped for a difference of one epoch.
 */
export const HAND_OVER_EPOCHS = 2;

const _left = (trial: PoolTrial) => trial.epochCost * trial.epochsLeft;

/**
 * The trial a worker takes next from those waiting: the one with the most training left
 * (epochs left × cost of an epoch), the lower index on a tie.
 *
 * @param waiting The trials no worker trains, unfinished.
 * @returns The trial to take, or `undefined` when none waits.
 *
 * @example
 * ```ts
 * import { pickTrial } from "./shared_trials.ts";
 * const waiting = [
 *   { index: 0, epochCost: 1, epochsLeft: 20 },
 *   { index: 2, epochCost: 1.5, epochsLeft: 14 },
 * ];
 * console.log(pickTrial(waiting)?.index); // 2 (21 left against 20)
 * ```
 */
export function pickTrial(waiting: readonly PoolTrial[]): PoolTrial | undefined {
  let best: PoolTrial | undefined;
  for (const trial of waiting) {
    if (
      best === undefined || _left(trial) > _left(best) ||
      (_left(trial) === _left(best) && trial.index < best.index)
    ) best = trial;
  }
  return best;
}

/**
 * Whether a worker hands its trial over after an epoch: when fewer trials wait than there are
 * workers (so that, without it, a worker would find none when its trial ends and idle while
 * the waiting ones train one after another), and the waiting trial with the most training left
 * has more than {@linkcode HAND_OVER_EPOCHS} of its own trial's epochs more. While at least as
 * many trials wait as there are workers, each trial runs to its end in one sitting.
 *
 * @param own The worker's trial, after the epoch.
 * @param waiting The trials no worker trains, unfinished.
 * @param workers The workers sharing the trials.
 * @returns True to stop the trial here and take the waiting one.
 *
 * @example
 * ```ts
 * import { handOverDue } from "./shared_trials.ts";
 * const own = { index: 1, epochCost: 1, epochsLeft: 10 };
 * console.log(handOverDue(own, [{ index: 2, epochCost: 1, epochsLeft: 12 }], 2)); // false
 * console.log(handOverDue(own, [{ index: 2, epochCost: 1, epochsLeft: 13 }], 2)); // true
 * ```
 */
export function handOverDue(
  own: PoolTrial,
  waiting: readonly PoolTrial[],
  workers: number,
): boolean {
  if (waiting.length >= workers) return false;
  const behind = pickTrial(waiting);
  return behind !== undefined && _left(behind) > _left(own) + HAND_OVER_EPOCHS * own.epochCost;
}

/**
 * The cost of an epoch of each trial of a pool, from estimates and, where a trial has trained
 * epochs, their measured seconds: a timed trial costs what its epochs took on average, and an
 * untimed one its estimate scaled by the median ratio of measured to estimated seconds over the
 * timed ones (the estimates as they are while none is timed). Estimates in any unit, such as a
 * relative step cost × steps per epoch, then come out in seconds, comparable with the measured
 * ones; an estimate off by a factor for a model or batch size it does not know is corrected by
 * that trial's first epoch.
 *
 * @param trials Each trial's estimate (positive) and its measured seconds per epoch, if any.
 * @returns Each trial's cost of an epoch.
 *
 * @example
 * ```ts
 * import { epochCosts } from "./shared_trials.ts";
 * // Timed at 30 s an epoch against an estimate of 2; the other, untimed, estimated at 3.
 * console.log(epochCosts([{ estimate: 2, measured: 30 }, { estimate: 3 }])); // [ 30, 45 ]
 * ```
 */
export function epochCosts(
  trials: readonly { estimate: number; measured?: number }[],
): number[] {
  const timed = (t: { measured?: number }) => t.measured !== undefined && t.measured > 0;
  const ratios = trials.filter(timed).map((t) => t.measured! / t.estimate).sort((a, b) => a - b);
  if (ratios.length === 0) return trials.map((t) => t.estimate);
  const middle = ratios.length / 2;
  const scale = ratios.length % 2
    ? ratios[Math.floor(middle)]
    : (ratios[middle - 1] + ratios[middle]) / 2;
  return trials.map((t) => timed(t) ? t.measured! : t.estimate * scale);
}

/** Options of {@linkcode runSharedTrials}. */
export interface RunSharedTrialsOptions {
  /** This worker's index, from 0; its first trial is the longest of its LPT share. */
  worker: number;
  /** Number of workers sharing the pool. */
  workers: number;
  /**
   * Estimated cost of one epoch of a trial (e.g. a relative step cost × steps per epoch), for
   * trials not yet timed ({@linkcode epochCosts}).
   */
  epochCost: (trial: PlanTrial) => number;
  /** The options of each part run ({@linkcode runTrialPart}), by trial index. */
  runOptions?: (index: number) => RunTrialOptions;
  /** Told when this worker hands a trial over, with the epochs it has done. */
  onHandOver?: (trial: PlanTrial, epochsDone: number) => void;
  /** Told when a trial fails here (its `error.json` says why). */
  onFailure?: (trial: PlanTrial, error: Error) => void;
  /**
   * When the workers' execution started (ms since the epoch): a trial whose `error.json` was
   * written since failed in this execution and is not taken again. @default {now}
   */
  since?: number;
}

/**
 * One worker of a shared pool: takes waiting trials of `pool` in turn ({@linkcode pickTrial})
 * and trains each until it finishes or is handed over ({@linkcode handOverDue}), until no
 * trial waits. A trial another process holds is left to it; one that failed in this run (its
 * `error.json` written since this worker started) is not taken again.
 *
 * @param expDir The experiment directory.
 * @param plan Its plan.
 * @param pool The indices of the trials the workers share (the same list for every worker).
 * @param options Worker index and count, costs, run options and reports.
 * @returns How many trials failed in this worker.
 *
 * @example One worker, the whole pool
 * ```ts
 * import { resolveConfig } from "./config.ts";
 * import { prepareTrain } from "./runner.ts";
 * import { runSharedTrials } from "./shared_trials.ts";
 * const dir = await Deno.makeTempDir();
 * const config = resolveConfig("smoke", { limit: 40, testLimit: 20 });
 * const plan = await prepareTrain(config, dir);
 * const pool = plan.trials.map((t) => t.index);
 * const failed = await runSharedTrials(dir, plan, pool, {
 *   worker: 0, workers: 1, epochCost: () => 1,
 * });
 * console.log(failed); // 0
 * ```
 */
export async function runSharedTrials(
  expDir: string,
  plan: Plan,
  pool: readonly number[],
  options: RunSharedTrialsOptions,
): Promise<number> {
  for (const index of pool) {
    if (!Number.isInteger(index) || !plan.trials[index]) {
      throw new Error(
        `runSharedTrials: pool indices must be in [0, ${
          plan.trials.length - 1
        }], received ${index}`,
      );
    }
  }
  const since = options.since ?? Date.now();
  const failedHere = new Set<number>();
  const estimates = new Map(pool.map((i) => [i, options.epochCost(plan.trials[i])]));
  // The pool's unfinished trials with what an epoch of each costs, and which of them no
  // process holds.
  const look = async (): Promise<{ unfinished: PoolTrial[]; waiting: PoolTrial[] }> => {
    const found: { index: number; epochsLeft: number; measured?: number; held: boolean }[] = [];
    for (const index of pool) {
      const dir = `${expDir}/${plan.trials[index].dir}`;
      if (failedHere.has(index)) continue;
      let epochsLeft = plan.trials[index].config.epochs;
      let measured: number | undefined;
      try {
        if (await failedSince(dir, since) || await readRunResult(dir)) continue;
        const records = await readRunRecords(dir);
        epochsLeft -= records.length;
        if (records.length) measured = records.reduce((t, r) => t + r.seconds, 0) / records.length;
      } catch {
        // A file that cannot be read: the trial stays in the pool, and the worker that takes
        // it fails it with the reason, leaving the other trials to train.
      }
      const held = await runLockHeld(dir).catch(() => false);
      found.push({ index, epochsLeft, measured, held });
    }
    const costs = epochCosts(
      found.map((t) => ({ estimate: estimates.get(t.index)!, measured: t.measured })),
    );
    const unfinished = found.map((t, i) => ({
      index: t.index,
      epochCost: costs[i],
      epochsLeft: t.epochsLeft,
    }));
    return { unfinished, waiting: unfinished.filter((_, i) => !found[i].held) };
  };
  const waiting = async () => (await look()).waiting;

  let next = _firstTrial(await look(), options.worker, options.workers);
  let failed = 0;
  while (next !== undefined) {
    const index = next;
    const trial = plan.trials[index];
    let handedOver = -1;
    try {
      const result = await runTrialPart(expDir, index, {
        ...options.runOptions?.(index),
        plan,
        handOver: async (epochsDone) => {
          const { unfinished, waiting } = await look();
          const own = {
            index,
            epochCost: unfinished.find((t) => t.index === index)?.epochCost ??
              estimates.get(index)!,
            epochsLeft: trial.config.epochs - epochsDone,
          };
          const others = waiting.filter((t) => t.index !== index);
          const due = handOverDue(own, others, options.workers);
          if (due) handedOver = epochsDone;
          return due;
        },
      });
      if (result === undefined) options.onHandOver?.(trial, handedOver);
    } catch (error) {
      // Taken by another worker between the look and the lock: look again.
      if (!(error instanceof RunLockedError)) {
        failed++;
        failedHere.add(index);
        options.onFailure?.(trial, error as Error);
      }
    }
    next = pickTrial(await waiting())?.index;
  }
  return failed;
}

/**
 * A worker's first trial: the longest of its share when {@linkcode assignParts} splits the
 * unfinished trials among the workers (the same split in every worker, whichever looked
 * first), so that workers starting together do not reach for the same trial; the longest
 * waiting one when that one is taken or its share is empty.
 */
function _firstTrial(
  { unfinished, waiting }: { unfinished: PoolTrial[]; waiting: PoolTrial[] },
  worker: number,
  workers: number,
): number | undefined {
  const parts = assignParts(unfinished.map((t) => Math.max(_left(t), Number.MIN_VALUE)), workers);
  const mine = pickTrial(unfinished.filter((_, i) => parts[i] === worker));
  return mine && waiting.includes(mine) ? mine.index : pickTrial(waiting)?.index;
}

/**
 * A trial's failure at `since` or later: its `error.json`, which records the time it was
 * written, when that time is that recent.
 *
 * @param dir The trial's directory.
 * @param since Time (ms since the epoch).
 * @returns The error's message and time, or `undefined` without so recent a failure.
 *
 * @example
 * ```ts
 * import { failureSince } from "./shared_trials.ts";
 * console.log(await failureSince(await Deno.makeTempDir(), 0)); // undefined
 * ```
 */
export async function failureSince(
  dir: string,
  since: number,
): Promise<{ message?: string; at: string } | undefined> {
  const error = await readJsonFile<{ message?: string; at?: string }>(`${dir}/${ERROR_FILE}`);
  return error?.at !== undefined && Date.parse(error.at) >= since
    ? { message: error.message, at: error.at }
    : undefined;
}

/**
 * Whether a trial failed at `since` or later ({@linkcode failureSince}).
 *
 * @param dir The trial's directory.
 * @param since Time (ms since the epoch).
 * @returns True when the trial's last failure is that recent.
 *
 * @example
 * ```ts
 * import { failedSince } from "./shared_trials.ts";
 * console.log(await failedSince(await Deno.makeTempDir(), 0)); // false
 * ```
 */
export async function failedSince(dir: string, since: number): Promise<boolean> {
  return (await failureSince(dir, since)) !== undefined;
}
