/**
 * The plan of an experiment: `plan.json`, one entry per trial (one variant, one seed, one
 * sweep point) with its resolved config and its directory. Every executor (worker processes
 * on this machine, a Slurm job array) runs the same trials through `runTrial` and builds the
 * same outputs through `collect`.
 *
 * @module
 */
import { writeJsonAtomic } from "../output/atomic.ts";
import { configDifferences, type ExperimentConfig, upgradeConfig } from "./config.ts";
import { existingRunDir, readJsonFile } from "./results_dir.ts";

/** Version of the `plan.json` format. */
export const PLAN_FORMAT = 1;

/** The plan file's name inside an experiment directory. */
export const PLAN_FILE = "plan.json";

/** One trial of a plan. */
export interface PlanTrial {
  /** Position in `trials`, from 0 (the Slurm array index). */
  index: number;
  /** Unique, directory-safe id, e.g. `bnlab-seed0` or `keras-0.1-bnlab-seed0`. */
  id: string;
  /** The trial's directory, relative to the experiment directory. */
  dir: string;
  /** The resolved config: one variant (`variants: [v]`), one seed (`seed`, `seeds: 1`). */
  config: ExperimentConfig;
  /** Sweep trials: the value of each varied field at this trial's grid point. */
  point?: Record<string, unknown>;
  /** Sweep trials: the grid point's id (shared by its variants and seeds). */
  pointId?: string;
}

/** The contents of `plan.json`. */
export interface Plan {
  /** {@linkcode PLAN_FORMAT}. */
  format: 1;
  /** `train` (variants × seeds) or `sweep` (grid points × variants × seeds). */
  kind: "train" | "sweep";
  /** When the plan was first written (ISO 8601). */
  created: string;
  /** Sweep plans: the named sweep it came from, if any. */
  sweep?: string;
  /** Every trial, in the order the outputs list them. */
  trials: PlanTrial[];
}

/** A trial before it has an index. */
export type PlannedTrial = Omit<PlanTrial, "index">;

/**
 * The trials of a train experiment: one per variant × seed, in the config's order.
 *
 * @param config A resolved config.
 * @param out The experiment directory (to find runs written under an old variant name).
 * @param prefix Prefix of each trial's directory and id (a sweep point's), if any.
 * @returns The trials.
 *
 * @example
 * ```ts
 * import { resolveConfig } from "./config.ts";
 * import { trainTrials } from "./plan.ts";
 * const trials = await trainTrials(resolveConfig("smoke", { seeds: 2 }), "/nonexistent");
 * console.log(trials.map((t) => t.dir)[1]); // "runs/none-seed1"
 * ```
 */
export async function trainTrials(
  config: ExperimentConfig,
  out: string,
  prefix?: { dir: string; id: string },
): Promise<PlannedTrial[]> {
  const trials: PlannedTrial[] = [];
  const base = prefix ? `${out}/${prefix.dir}` : out;
  for (const variant of config.variants) {
    for (let i = 0; i < config.seeds; i++) {
      const seed = config.seed + i;
      const dir = (await existingRunDir(base, variant, seed)).slice(out.length + 1);
      trials.push({
        id: `${prefix ? `${prefix.id}-` : ""}${variant}-seed${seed}`,
        dir,
        config: { ...config, variants: [variant], seed, seeds: 1 },
      });
    }
  }
  return trials;
}

/**
 * Builds a plan, keeping the trials of an existing one at their indices: a trial already
 * planned must have the same config (else an error names the differing fields), and new
 * trials are appended.
 *
 * @param kind `train` or `sweep`.
 * @param trials The trials wanted.
 * @param previous The plan already on disk, if any.
 * @param sweep The named sweep, for sweep plans.
 * @returns The plan.
 *
 * @example
 * ```ts
 * import { resolveConfig } from "./config.ts";
 * import { buildPlan, trainTrials } from "./plan.ts";
 * const plan = buildPlan("train", await trainTrials(resolveConfig("smoke"), "/x"));
 * console.log(plan.trials.map((t) => t.id)); // [ "none-seed0", "bnlab-seed0", "tfjs-seed0" ]
 * ```
 */
export function buildPlan(
  kind: Plan["kind"],
  trials: PlannedTrial[],
  previous?: Plan,
  sweep?: string,
): Plan {
  if (previous && previous.kind !== kind) {
    throw new Error(`plan: the directory holds a ${previous.kind} plan, not a ${kind} plan`);
  }
  const all: PlanTrial[] = previous ? previous.trials.map((t) => ({ ...t })) : [];
  const byId = new Map(all.map((t) => [t.id, t]));
  for (const trial of trials) {
    const old = byId.get(trial.id);
    if (old) {
      const diff = configDifferences(old.config, trial.config);
      if (diff.length) {
        throw new Error(
          `plan: trial ${trial.id} was planned with a different config; resume with the same ` +
            `settings (only variants and seeds may be added). Differences (saved → given): ${
              diff.join("; ")
            }`,
        );
      }
      continue;
    }
    const entry = { index: all.length, ...trial };
    all.push(entry);
    byId.set(entry.id, entry);
  }
  return {
    format: PLAN_FORMAT,
    kind,
    created: previous?.created ?? new Date().toISOString(),
    ...(sweep ?? previous?.sweep ? { sweep: sweep ?? previous?.sweep } : {}),
    trials: all,
  };
}

/**
 * Reads `plan.json` of an experiment directory; configs are read as today's
 * (see `upgradeConfig`).
 *
 * @param expDir The experiment directory.
 * @returns The plan, or `undefined` when the directory has none.
 *
 * @example
 * ```ts
 * import { readPlan } from "./plan.ts";
 * console.log(await readPlan("/nonexistent")); // undefined
 * ```
 */
export async function readPlan(expDir: string): Promise<Plan | undefined> {
  const path = `${expDir}/${PLAN_FILE}`;
  const plan = await readJsonFile<Plan>(path);
  if (!plan) return undefined;
  if (plan.format !== PLAN_FORMAT || !Array.isArray(plan.trials)) {
    throw new Error(`${path}: expected a plan of format ${PLAN_FORMAT}, received ${plan.format}`);
  }
  for (const trial of plan.trials) {
    try {
      trial.config = upgradeConfig(trial.config as unknown as Record<string, unknown>);
    } catch (error) {
      throw new Error(`${path}: trial ${trial.id}: ${(error as Error).message}`);
    }
  }
  return plan;
}

/**
 * The plan of a train directory written before `plan.json` existed, built in memory from its
 * `config.json` (nothing is written); runs are found under their old names.
 *
 * @param expDir The experiment directory.
 * @returns The plan, or `undefined` when there is no `config.json` either.
 *
 * @example
 * ```ts
 * import { legacyTrainPlan } from "./plan.ts";
 * console.log(await legacyTrainPlan("/nonexistent")); // undefined
 * ```
 */
export async function legacyTrainPlan(expDir: string): Promise<Plan | undefined> {
  const record = await readJsonFile<{ config: Record<string, unknown>; started?: string }>(
    `${expDir}/config.json`,
  );
  if (!record) return undefined;
  const plan = buildPlan("train", await trainTrials(upgradeConfig(record.config), expDir));
  return { ...plan, created: record.started ?? plan.created };
}

/**
 * Writes `plan.json` atomically.
 *
 * @param expDir The experiment directory (created if needed).
 * @param plan The plan.
 *
 * @example
 * ```ts
 * import { resolveConfig } from "./config.ts";
 * import { buildPlan, readPlan, trainTrials, writePlan } from "./plan.ts";
 * const dir = await Deno.makeTempDir();
 * await writePlan(dir, buildPlan("train", await trainTrials(resolveConfig("smoke"), dir)));
 * console.log((await readPlan(dir))?.trials.length); // 3
 * ```
 */
export async function writePlan(expDir: string, plan: Plan): Promise<void> {
  await Deno.mkdir(expDir, { recursive: true });
  await writeJsonAtomic(`${expDir}/${PLAN_FILE}`, plan);
}
