/**
 * Sweeps: a base experiment config varied over grid points. A sweep is either named (a
 * preset such as `momentum`) or the product of `--grid FIELD=v1,v2,…` over any config fields.
 * Each point trains every variant × seed of its config as trials of the plan
 * (`trials/<point>/runs/<variant>-seed<seed>/`), so it checkpoints and resumes like
 * `deno task train`.
 *
 * Outputs, rebuilt from whatever finished:
 * - `sweep.csv`: one row per trial (point × variant × seed): `trial` (the point's id), one
 *   column per varied field, `variant`, `seed` and the summary columns;
 * - `sweep_table.csv`: per point (and variant), `n` and the mean and sample standard deviation
 *   over seeds of each metric;
 * - `sweep.svg`: test accuracy against the first varied field, one series per value of the
 *   other fields, one dot per seed.
 *
 * The `momentum` sweep keeps its own columns: momentum, convention, Keras-form momentum and
 * the accuracy with running and with batch statistics.
 *
 * @module
 */
import { writeCsv } from "../output/csv.ts";
import { sweepChart, writeSvg } from "../output/plot.ts";
import { summarize } from "../output/table.ts";
import { DEFAULTS, type ExperimentConfig, upgradeConfig } from "./config.ts";
import { flagName, parseFieldValue } from "./flags.ts";
import { buildPlan, type Plan, type PlannedTrial, readPlan, trainTrials } from "./plan.ts";
import { readJsonFile, readRunResult, type RunResult } from "./results_dir.ts";
import { STUDY_SWEEPS } from "./studies.ts";

/** One point of a sweep: an id and the config fields it changes. */
export interface SweepTrial {
  /** Directory-safe identifier, unique within the sweep. */
  id: string;
  /** Fields that differ from the base config. */
  overrides: Partial<ExperimentConfig>;
}

/** A sweep: its points over a base config. */
export interface SweepDefinition {
  /** Name used on the command line, e.g. `momentum` (`grid` for a `--grid` sweep). */
  name: string;
  /** One line for `--help`. */
  description: string;
  /** The points of a base config. */
  trials: (base: ExperimentConfig) => SweepTrial[];
  /** Fields the sweep sets at every point: a flag for one of them is an error. */
  fields: readonly (keyof ExperimentConfig)[];
}

/**
 * Momentum values of the momentum sweep, each run in both conventions. 0.1 is the report's
 * hand-written layer in the Keras form and PyTorch's default in the PyTorch form; 0.99 is
 * Keras's and tfjs's default.
 */
export const SWEEP_MOMENTA: readonly number[] = [0.01, 0.1, 0.5, 0.9, 0.99];

/** The named sweeps `deno task sweep` knows. */
export const SWEEPS: Readonly<Record<string, SweepDefinition>> = Object.freeze({
  momentum: {
    name: "momentum",
    description: "bnlab's BN over running-average momenta in the Keras and PyTorch conventions",
    fields: ["variants", "momentum", "momentumConvention"],
    trials: () =>
      (["keras", "pytorch"] as const).flatMap((convention) =>
        SWEEP_MOMENTA.map((momentum) => ({
          id: `${convention}-${momentum}`,
          overrides: { variants: ["bnlab" as const], momentum, momentumConvention: convention },
        }))
      ),
  },
  ...(STUDY_SWEEPS as unknown as Readonly<Record<string, SweepDefinition>>),
});

/** One `--grid FIELD=v1,v2,…`: a field and its values. */
export interface Grid {
  /** The config field. */
  field: keyof ExperimentConfig;
  /** Its values, parsed as the field's flag parses them. */
  values: unknown[];
}

/**
 * Parses `FIELD=v1,v2,…` grid specs (FIELD as a config key, `batchSize`, or a flag name,
 * `batch-size`); list fields (`variants`, `hidden`) take `;`-separated values
 * (`hidden=100;100,300`).
 *
 * @param specs The specs.
 * @returns One grid per spec, in order.
 * @throws {Error} For an unknown field, a repeated field, an empty list or a bad value.
 *
 * @example
 * ```ts
 * import { parseGrids } from "./sweeps.ts";
 * console.log(parseGrids(["batch-size=10,20"])); // [ { field: "batchSize", values: [ 10, 20 ] } ]
 * ```
 */
export function parseGrids(specs: readonly string[]): Grid[] {
  const fields = Object.keys(DEFAULTS).filter((k) => k !== "preset");
  const grids: Grid[] = [];
  for (const spec of specs) {
    const match = spec.match(/^([A-Za-z-]+)=(.+)$/);
    if (!match) {
      throw new Error(`--grid expects FIELD=v1,v2,..., received ${JSON.stringify(spec)}`);
    }
    const field = fields.find((f) => f === match[1] || flagName(f) === match[1]);
    if (!field) {
      throw new Error(
        `--grid: unknown field ${JSON.stringify(match[1])}; fields: ${
          fields.map(flagName).join(", ")
        }`,
      );
    }
    if (grids.some((g) => g.field === field)) {
      throw new Error(`--grid: field ${field} is given twice`);
    }
    const isList = Array.isArray((DEFAULTS as unknown as Record<string, unknown>)[field]);
    const raw = match[2].split(isList ? ";" : ",").map((s) => s.trim());
    if (raw.some((s) => s === "")) {
      throw new Error(`--grid ${field}: empty value in ${JSON.stringify(match[2])}`);
    }
    grids.push({
      field: field as keyof ExperimentConfig,
      values: raw.map((value) => parseFieldValue(field, value)),
    });
  }
  return grids;
}

/**
 * The sweep over the product of grids: every combination, the first grid varying slowest.
 *
 * @param grids The grids.
 * @returns A sweep definition named `grid`.
 *
 * @example
 * ```ts
 * import { resolveConfig } from "./config.ts";
 * import { gridSweep, parseGrids } from "./sweeps.ts";
 * const sweep = gridSweep(parseGrids(["lr=0.1,0.01", "batch-size=10,20"]));
 * console.log(sweep.trials(resolveConfig("smoke")).map((t) => t.id)[1]); // "lr-0.1_batch-size-20"
 * ```
 */
export function gridSweep(grids: readonly Grid[]): SweepDefinition {
  if (grids.length === 0) throw new Error("gridSweep: at least one --grid is needed");
  return {
    name: "grid",
    description: grids.map((g) => `${g.field} ∈ {${g.values.map(_show).join(", ")}}`).join(" × "),
    fields: grids.map((g) => g.field),
    trials: () => {
      let points: Record<string, unknown>[] = [{}];
      for (const grid of grids) {
        points = points.flatMap((p) => grid.values.map((v) => ({ ...p, [grid.field]: v })));
      }
      return points.map((point) => ({
        id: Object.entries(point)
          .map(([k, v]) => `${flagName(k)}-${_show(v).replace(/[^A-Za-z0-9.+-]/g, "+")}`)
          .join("_"),
        overrides: point as Partial<ExperimentConfig>,
      }));
    },
  };
}

/**
 * The trials of a sweep: for each point, its config (base + the point's fields, validated)
 * trained for every variant × seed under `trials/<point>/`.
 *
 * @param sweep The sweep.
 * @param base The base config.
 * @param out The sweep directory (to find runs written under an old variant name).
 * @returns The trials, point by point.
 * @throws {Error} Naming the point when its config is invalid.
 *
 * @example
 * ```ts
 * import { resolveConfig } from "./config.ts";
 * import { SWEEPS, sweepTrials } from "./sweeps.ts";
 * const trials = await sweepTrials(SWEEPS.momentum, resolveConfig("smoke"), "/nonexistent");
 * console.log(trials.length, trials[0].id); // 10 keras-0.01-bnlab-seed0
 * ```
 */
export async function sweepTrials(
  sweep: SweepDefinition,
  base: ExperimentConfig,
  out: string,
): Promise<PlannedTrial[]> {
  const trials: PlannedTrial[] = [];
  for (const point of sweep.trials(base)) {
    let config: ExperimentConfig;
    try {
      config = upgradeConfig({ ...base, ...point.overrides } as Record<string, unknown>);
    } catch (error) {
      throw new Error(`sweep point ${point.id}: ${(error as Error).message}`);
    }
    const values = Object.fromEntries(
      sweep.fields.map((f) => [f, (config as unknown as Record<string, unknown>)[f]]),
    );
    for (
      const trial of await trainTrials(config, out, { dir: `trials/${point.id}`, id: point.id })
    ) {
      trials.push({ ...trial, pointId: point.id, point: values });
    }
  }
  return trials;
}

/**
 * The plan of a sweep directory written before `plan.json` existed, built in memory from its
 * `sweep.json` (nothing is written); runs are found under their old names.
 *
 * @param out The sweep directory.
 * @returns The plan, or `undefined` when there is no `sweep.json` either.
 *
 * @example
 * ```ts
 * import { legacySweepPlan } from "./sweeps.ts";
 * console.log(await legacySweepPlan("/nonexistent")); // undefined
 * ```
 */
export async function legacySweepPlan(out: string): Promise<Plan | undefined> {
  const record = await readJsonFile<
    { sweep: string; grids?: string[]; config: Record<string, unknown> }
  >(`${out}/sweep.json`);
  if (!record) return undefined;
  const sweep = record.sweep === "grid"
    ? gridSweep(parseGrids(record.grids ?? []))
    : SWEEPS[record.sweep];
  if (!sweep) throw new Error(`${out}/sweep.json: unknown sweep ${JSON.stringify(record.sweep)}`);
  const trials = await sweepTrials(sweep, upgradeConfig(record.config), out);
  return buildPlan("sweep", trials, undefined, sweep.name === "grid" ? undefined : sweep.name);
}

/** A row of the `momentum` sweep's `sweep.csv`. */
export interface SweepRow {
  trial: string;
  seed: number;
  momentum: number | null;
  momentum_convention: string;
  /** The same momentum in the Keras form: the weight kept on the old running value. */
  keras_momentum: number | null;
  test_accuracy_running: number;
  test_accuracy_batch: number | null;
  test_loss_running: number;
  train_loss: number;
  epochs: number;
  wall_seconds: number;
  backend: string;
  status: string;
}

/** What {@linkcode writeSweepOutputs} wrote. */
export interface SweepOutputs {
  /** The rows of `sweep.csv`, in plan order. */
  rows: Record<string, unknown>[];
  /** The rows of `sweep_table.csv`. */
  table: Record<string, unknown>[];
}

/** The metrics `sweep_table.csv` summarizes. */
const _METRICS = ["test_accuracy", "test_accuracy_batch_stats", "test_loss", "train_loss"];
const _MOMENTUM_METRICS = ["test_accuracy_running", "test_accuracy_batch", "test_loss_running"];

/**
 * Rebuilds `sweep.csv`, `sweep_table.csv` and `sweep.svg` from the finished trials of a sweep
 * directory; missing trials are left out. A directory written before `plan.json` existed is
 * read through its `sweep.json`.
 *
 * @param out Sweep directory with `plan.json`.
 * @param plan The plan, when the caller has read it.
 * @returns The rows written.
 *
 * @example
 * ```ts
 * import { resolveConfig } from "./config.ts";
 * import { buildPlan, writePlan } from "./plan.ts";
 * import { SWEEPS, sweepTrials, writeSweepOutputs } from "./sweeps.ts";
 * const out = await Deno.makeTempDir();
 * await writePlan(out, buildPlan("sweep", await sweepTrials(SWEEPS.momentum, resolveConfig("smoke"), out)));
 * console.log((await writeSweepOutputs(out)).rows.length); // 0: no trial has finished
 * ```
 */
export async function writeSweepOutputs(out: string, plan?: Plan): Promise<SweepOutputs> {
  plan ??= await readPlan(out) ?? await legacySweepPlan(out);
  if (!plan) throw new Error(`writeSweepOutputs: ${out} has neither plan.json nor sweep.json`);
  const momentum = plan.sweep === "momentum";
  const fields = Object.keys(plan.trials[0]?.point ?? {});
  const multipleVariants = new Set(plan.trials.map((t) => t.config.variants[0])).size > 1;
  const rows: Record<string, unknown>[] = [];
  for (const trial of plan.trials) {
    const result = await readRunResult(`${out}/${trial.dir}`);
    if (!result) continue;
    const pointId = trial.pointId ?? trial.id;
    rows.push(
      momentum
        ? sweepRow({ id: pointId, overrides: {} }, trial.config, result) as unknown as Record<
          string,
          unknown
        >
        : _gridRow(pointId, fields, trial.point ?? {}, result),
    );
  }
  if (rows.length === 0) return { rows, table: [] };
  const columns = momentum ? undefined : _gridColumns(fields);
  await writeCsv(`${out}/sweep.csv`, rows as Record<string, number | string | null>[], {
    columns,
  });
  const groupBy = momentum
    ? ["trial", "momentum", "momentum_convention", "keras_momentum"]
    : ["trial", ...fields.map(_column).filter((c) => c !== "variants"), "variant"];
  const metrics = momentum ? _MOMENTUM_METRICS : _METRICS;
  const table = summarize(
    rows.map((r) => ({
      ...r,
      ...Object.fromEntries(metrics.map((m) => [m, (r[m] as number | null) ?? NaN])),
    })),
    { groupBy, values: metrics },
  );
  await writeCsv(`${out}/sweep_table.csv`, table as Record<string, number | string | null>[]);
  // Diverged trials have no accuracy: with nothing finite to draw, there is no chart yet.
  const drawable = rows.some((r) =>
    Number.isFinite(r[momentum ? "test_accuracy_running" : "test_accuracy"])
  );
  if (drawable) {
    await writeSvg(
      `${out}/sweep.svg`,
      momentum ? _momentumChart(rows as unknown as SweepRow[]) : _gridChart(rows, fields, {
        multipleVariants,
      }),
    );
  }
  return { rows, table };
}

/**
 * Turns a momentum-sweep trial's result into its `sweep.csv` row.
 *
 * @param trial The point (its id is the `trial` column).
 * @param config The trial's resolved config.
 * @param result Its run result.
 * @returns The row.
 *
 * @example
 * ```ts
 * import { resolveConfig } from "./config.ts";
 * import type { RunResult } from "./results_dir.ts";
 * import { sweepRow } from "./sweeps.ts";
 * const config = resolveConfig("smoke", { momentum: 0.9, momentumConvention: "pytorch" });
 * const result = { seed: 0, test_accuracy: 0.9 } as RunResult;
 * console.log(sweepRow({ id: "pytorch-0.9", overrides: {} }, config, result).keras_momentum); // 0.1
 * ```
 */
export function sweepRow(trial: SweepTrial, config: ExperimentConfig, result: RunResult): SweepRow {
  return {
    trial: trial.id,
    seed: result.seed,
    momentum: config.momentum,
    momentum_convention: config.momentumConvention,
    // Rounded so that 1 − 0.9 prints as 0.1.
    keras_momentum: config.momentum === null ? null : Math.round(
      (config.momentumConvention === "keras" ? config.momentum : 1 - config.momentum) * 1e9,
    ) / 1e9,
    test_accuracy_running: result.test_accuracy,
    test_accuracy_batch: result.test_accuracy_batch_stats,
    test_loss_running: result.test_loss,
    train_loss: result.train_loss,
    epochs: result.epochs,
    wall_seconds: result.wall_seconds,
    backend: result.backend,
    status: result.status,
  };
}

const _SUMMARY = [
  "variant",
  "seed",
  "test_accuracy",
  "test_accuracy_batch_stats",
  "test_loss",
  "train_loss",
  "train_accuracy",
  "epochs",
  "wall_seconds",
  "backend",
  "status",
];

function _column(field: string): string {
  return flagName(field).replaceAll("-", "_");
}

function _gridColumns(fields: string[]): string[] {
  return ["trial", ...fields.map(_column), ..._SUMMARY];
}

function _gridRow(
  pointId: string,
  fields: string[],
  point: Record<string, unknown>,
  result: RunResult,
): Record<string, unknown> {
  const row: Record<string, unknown> = { trial: pointId };
  for (const field of fields) row[_column(field)] = _cell(point[field]);
  for (const key of _SUMMARY) {
    row[key] = (result as unknown as Record<string, unknown>)[key] ?? null;
  }
  return row;
}

function _cell(value: unknown): string | number | boolean | null {
  if (Array.isArray(value)) return value.join(";");
  if (value === null || typeof value === "number" || typeof value === "boolean") return value;
  return String(value);
}

function _show(value: unknown): string {
  return Array.isArray(value) ? value.join(";") : String(value);
}

function _gridChart(
  rows: Record<string, unknown>[],
  fields: string[],
  options: { multipleVariants: boolean },
): string {
  const [first, ...others] = fields.map(_column);
  const x = first ?? "trial";
  // A field of names (variants, optimizer, …) is drawn at positions 0, 1, … in grid order.
  const categories = [...new Set(rows.map((row) => row[x]))];
  const numeric = categories.every((v) => typeof v === "number" && Number.isFinite(v));
  const xLabel = numeric ? x : `${x} (${categories.map((c, i) => `${i}: ${c}`).join(", ")})`;
  const points = rows.map((row) => ({
    x: numeric ? row[x] : categories.indexOf(row[x]),
    accuracy: row.test_accuracy,
    series: [
      ...others.map((c) => `${c}=${row[c]}`),
      ...(options.multipleVariants && x !== "variants" ? [`${row.variant}`] : []),
    ].join(", ") || "all",
  }));
  return sweepChart(points, {
    x: "x",
    y: "accuracy",
    series: "series",
    title: `Test accuracy vs ${x} (one dot per seed, lines through the means)`,
    xLabel,
    yLabel: "test accuracy",
  });
}

function _momentumChart(rows: SweepRow[]): string {
  const points = rows.flatMap((row) => [
    {
      momentum: row.keras_momentum,
      accuracy: row.test_accuracy_running,
      series: `running statistics (${row.momentum_convention} trials)`,
    },
    ...(row.test_accuracy_batch === null ? [] : [{
      momentum: row.keras_momentum,
      accuracy: row.test_accuracy_batch,
      series: `batch statistics (${row.momentum_convention} trials)`,
    }]),
  ]);
  return sweepChart(points, {
    x: "momentum",
    y: "accuracy",
    series: "series",
    title: "Test accuracy vs BN momentum (twin trials overlap)",
    xLabel: "momentum, Keras form (PyTorch's m is 1 − this)",
    yLabel: "test accuracy",
  });
}
