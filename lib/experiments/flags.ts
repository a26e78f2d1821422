/**
 * Command-line flags for experiments: `--preset NAME` plus one flag per config field in
 * kebab case (`--batch-size 20`), each overriding the preset. Unknown flags are errors.
 *
 * @module
 */
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import {
  DEFAULT_PRESET,
  DEFAULTS,
  type ExperimentConfig,
  FIELD_HELP,
  PRESETS,
  resolveConfig,
} from "./config.ts";

/** What the flags ask for. */
export interface ParsedFlags {
  /** The resolved config. */
  config: ExperimentConfig;
  /** `--out DIR`, if given. */
  out?: string;
  /** `--resume DIR`, if given: continue the experiment in DIR with its saved config. */
  resume?: string;
  /** `--help` was given. */
  help: boolean;
  /** `--workers N`, if given: parallel processes. */
  workers?: number;
  /** `--quiet`: no progress bar. */
  quiet: boolean;
  /** `--executor local|slurm`. @default {"local"} */
  executor: "local" | "slurm";
  /** `--grid FIELD=v1,v2,…` specs, in order (sweeps). */
  grids: string[];
  /** Options passed through to the Slurm executor (`--slurm-*`). */
  slurm: SlurmFlags;
  /**
   * `--dry-run`: start nothing. The local executor prints the plan (the trials it would train,
   * resume or skip, and the directory) and writes nothing; the Slurm executor prints its batch
   * scripts instead of submitting them.
   */
  dryRun: boolean;
  /** The config fields the flags set explicitly (not from a preset or a saved config). */
  given: (keyof ExperimentConfig)[];
}

/** The Slurm executor's flags, as given. */
export interface SlurmFlags {
  /** `--slurm-partition`. */
  partition?: string;
  /** `--slurm-time`, e.g. `1:00:00`. */
  time?: string;
  /** `--slurm-cpus`: CPUs per task. */
  cpus?: number;
  /** `--slurm-array-limit`: tasks running at once. */
  arrayLimit?: number;
  /** `--slurm-extra "…"`: further sbatch options. */
  extra?: string;
}

/** Fields whose flag takes no value (`--nesterov`). */
const _BOOLEAN_FIELDS = ["nesterov"];

/** Extra flags a script accepts besides the config fields. */
const _EXTRA = {
  preset: { type: "string" },
  out: { type: "string" },
  resume: { type: "string" },
  workers: { type: "string" },
  help: { type: "boolean", short: "h" },
  quiet: { type: "boolean" },
  executor: { type: "string" },
  grid: { type: "string", multiple: true },
  "slurm-partition": { type: "string" },
  "slurm-time": { type: "string" },
  "slurm-cpus": { type: "string" },
  "slurm-array-limit": { type: "string" },
  "slurm-extra": { type: "string" },
  "dry-run": { type: "boolean" },
} as const;

/**
 * Converts a config key to its flag name: `batchSize` → `batch-size`.
 *
 * @param key A config field.
 * @returns The flag name without dashes in front.
 *
 * @example
 * ```ts
 * import { flagName } from "./flags.ts";
 * console.log(flagName("tfjsMomentum")); // "tfjs-momentum"
 * ```
 */
export function flagName(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/**
 * Parses command-line arguments into a config.
 *
 * @param args The arguments, e.g. `Deno.args`.
 * @param savedConfig With `--resume`, the saved config that flags may not contradict.
 * @returns The resolved config and the script-level flags.
 *
 * @example
 * ```ts
 * import { parseFlags } from "./flags.ts";
 * const { config } = parseFlags(["--preset", "smoke", "--variants", "none,tfjs", "--lr", "0.1"]);
 * console.log(config.variants, config.lr); // [ "none", "tfjs" ] 0.1
 * ```
 */
export function parseFlags(args: string[], savedConfig?: ExperimentConfig): ParsedFlags {
  const options: Record<
    string,
    { type: "string" | "boolean"; short?: string; multiple?: boolean }
  > = { ..._EXTRA };
  for (const key of Object.keys(DEFAULTS)) {
    if (key !== "preset") {
      options[flagName(key)] = { type: _BOOLEAN_FIELDS.includes(key) ? "boolean" : "string" };
    }
  }
  let values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  try {
    ({ values } = parseArgs({
      args: _attachValues(args, options),
      options,
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    const message = (error as Error).message.replace(/\.$/, "");
    throw new Error(`${message}. Run with --help to list the flags.`);
  }
  const overrides: Record<string, unknown> = {};
  const given: (keyof ExperimentConfig)[] = [];
  for (const key of Object.keys(DEFAULTS)) {
    const raw = values[flagName(key)];
    if (key === "preset" || raw === undefined) continue;
    overrides[key] = typeof raw === "boolean" ? raw : parseFieldValue(key, String(raw));
    given.push(key as keyof ExperimentConfig);
  }
  const preset = (values.preset as string | undefined) ?? savedConfig?.preset ?? DEFAULT_PRESET;
  const base = savedConfig ? { ...savedConfig, ...overrides } : overrides;
  const { preset: _ignored, ...fields } = base as Partial<ExperimentConfig>;
  let config: ExperimentConfig;
  try {
    config = resolveConfig(preset, fields);
  } catch (error) {
    throw _inFlagTerms(error, given, savedConfig !== undefined);
  }
  const [resume, out] = [values.resume, values.out] as (string | undefined)[];
  if (resume !== undefined && out !== undefined && resolve(out) !== resolve(resume)) {
    throw new Error(
      `--resume ${resume} continues that directory; --out ${out} names another ` +
        "(give one of them)",
    );
  }
  const workers = values.workers === undefined
    ? undefined
    : _flagInteger("workers", values.workers as string, 1, 1024);
  const executor = (values.executor as string | undefined) ?? "local";
  if (executor !== "local" && executor !== "slurm") {
    throw new Error(`--executor must be local or slurm, received ${JSON.stringify(executor)}`);
  }
  const slurmValue = (name: string) => values[`slurm-${name}`] as string | undefined;
  const cpus = slurmValue("cpus");
  const arrayLimit = slurmValue("array-limit");
  return {
    config,
    out,
    resume,
    help: Boolean(values.help),
    workers,
    quiet: Boolean(values.quiet),
    executor,
    grids: (values.grid as string[] | undefined) ?? [],
    slurm: {
      partition: slurmValue("partition"),
      time: slurmValue("time"),
      cpus: cpus === undefined ? undefined : _flagInteger("slurm-cpus", cpus, 1, 4096),
      arrayLimit: arrayLimit === undefined
        ? undefined
        : _flagInteger("slurm-array-limit", arrayLimit, 1, 1_000_000),
      extra: slurmValue("extra"),
    },
    dryRun: Boolean(values["dry-run"]),
    given,
  };
}

/**
 * The value of `--resume` in a list of arguments (`--resume DIR` or `--resume=DIR`).
 *
 * @param args Command-line arguments.
 * @returns The directory, or `undefined` when absent.
 * @throws {Error} When `--resume` has no value.
 *
 * @example
 * ```ts
 * import { resumeFlag } from "./flags.ts";
 * console.log(resumeFlag(["--resume=results/x"]), resumeFlag(["--resume", "y"])); // results/x y
 * ```
 */
export function resumeFlag(args: readonly string[]): string | undefined {
  for (const [i, arg] of args.entries()) {
    if (arg.startsWith("--resume=")) {
      const dir = arg.slice("--resume=".length);
      if (dir) return dir;
    } else if (arg !== "--resume") continue;
    const dir = arg === "--resume" ? args[i + 1] : undefined;
    if (!dir || dir.startsWith("--")) {
      throw new Error("--resume expects a results directory, e.g. --resume results/x");
    }
    return dir;
  }
  return undefined;
}

/**
 * Parses one field's value as its flag does: numbers (`none`/`all` for a field that may be
 * null), comma-separated lists, `true`/`false`, or the string itself.
 *
 * @param key A config field.
 * @param raw The text.
 * @returns The value (validated later, with the whole config).
 * @throws {Error} When a number is expected and the text is not one.
 *
 * @example
 * ```ts
 * import { parseFieldValue } from "./flags.ts";
 * console.log(parseFieldValue("momentum", "none"), parseFieldValue("hidden", "100,50")); // null [ 100, 50 ]
 * ```
 */
export function parseFieldValue(key: string, raw: string): unknown {
  const template = (DEFAULTS as unknown as Record<string, unknown>)[key];
  if (_BOOLEAN_FIELDS.includes(key)) {
    if (raw === "true" || raw === "false") return raw === "true";
    throw new Error(`--${flagName(key)} expects true or false, received ${JSON.stringify(raw)}`);
  }
  if (Array.isArray(template)) {
    const items = raw.split(",").map((s) => s.trim());
    if (items.some((item) => item === "")) {
      throw new Error(
        `--${flagName(key)} expects comma-separated values, none empty, received ${
          JSON.stringify(raw)
        }`,
      );
    }
    if (typeof template[0] !== "number") return items;
    return items.map((item) => _number(key, item, false));
  }
  if (typeof template === "number" || template === null || key === "momentum") {
    const nullable = template === null || key === "momentum";
    if (nullable && (raw === "all" || raw === "none")) return null;
    return _number(key, raw, nullable);
  }
  return raw;
}

/** Whether an argument is one of the flags (`--name`, `--name=…`, `-h`), not a value. */
function _isFlag(arg: string, options: Record<string, { short?: string }>): boolean {
  if (arg.startsWith("--")) return arg.slice(2).split("=")[0] in options;
  return Object.values(options).some((o) => o.short !== undefined && arg === `-${o.short}`);
}

/**
 * The arguments with each string flag and its value joined as `--flag=value`, so that a value
 * that starts with a dash (`--lr -1`, `--slurm-extra --mem=4G`) is read as the value it is; a
 * string flag with no value after it (the end, or another of the flags) is an error that names
 * the flag and what it takes.
 */
function _attachValues(
  args: readonly string[],
  options: Record<string, { type: "string" | "boolean"; short?: string }>,
): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const name = arg.startsWith("--") && !arg.includes("=") ? arg.slice(2) : undefined;
    if (name === undefined || options[name]?.type !== "string") {
      out.push(arg);
      continue;
    }
    const next = args[i + 1];
    if (next === undefined || _isFlag(next, options)) {
      const received = next === undefined
        ? "nothing"
        : `the flag ${next} (write --${name}=${next} for a value that starts with dashes)`;
      throw new Error(`--${name} expects ${_takes(name)}, received ${received}`);
    }
    out.push(`${arg}=${next}`);
    i++;
  }
  return out;
}

/** What a string flag takes, for an error message. */
function _takes(name: string): string {
  if (name === "preset") return `a preset name (${Object.keys(PRESETS).join(", ")})`;
  const key = Object.keys(FIELD_HELP).find((k) => flagName(k) === name);
  return key === undefined ? "a value" : `a value: ${FIELD_HELP[key as keyof typeof FIELD_HELP]}`;
}

/**
 * A config error told in the flags' terms: `config: batchSize must be …` becomes
 * `--batch-size must be …`, every field named outside quotes (a value as the user typed it
 * stays as it was) becomes its flag, and `null` becomes `"none"`, as the flags write it. On a
 * resume, an error about a field the flags did not set is about the saved config, and passes
 * unchanged.
 */
function _inFlagTerms(error: unknown, given: readonly string[], resumed: boolean): unknown {
  const message = error instanceof Error ? error.message : undefined;
  if (message === undefined || !message.startsWith("config: ")) return error;
  const field = message.match(/^config: (\w+) /)?.[1];
  if (resumed && (field === undefined || !given.includes(field))) return error;
  const fields = new Set(Object.keys(DEFAULTS));
  const text = message.slice("config: ".length).split(/("[^"]*")/).map((part, i) =>
    i % 2 === 1 ? part : part
      .replace(
        /(?<![\w-])[a-z]+(?:[A-Z][a-z]*)*(?![\w-])/g,
        (w) => fields.has(w) ? `--${flagName(w)}` : w,
      )
      .replace(/\bor null\b/g, 'or "none"')
  ).join("");
  return new Error(text);
}

function _number(key: string, raw: string, nullable: boolean): number {
  const value = Number(raw);
  if (raw.trim() === "" || Number.isNaN(value)) {
    throw new Error(
      `--${flagName(key)} expects a number${nullable ? ' or "none"' : ""}, received ${
        JSON.stringify(raw)
      }`,
    );
  }
  return value;
}

function _flagInteger(name: string, raw: string, min: number, max: number): number {
  const value = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || value < min || value > max) {
    throw new Error(`--${name} must be an integer in [${min}, ${max}], received ${raw}`);
  }
  return value;
}

/**
 * Has Ctrl-C (SIGINT) end a command-line run with a line that says how to resume it. In one
 * process it exits with status 130 (128 + SIGINT's 2) once the run locks are released
 * (`Deno.exit` runs the unload listeners that release them); with worker processes it sends
 * itself SIGTERM, which the runner passes on to each worker (each frees its lock) before it
 * exits with 143, so that no worker outlives it. For the CLIs only: in a notebook SIGINT
 * interrupts a cell and must keep its default.
 *
 * @param command The command that resumes, e.g. `deno task train --resume results/x`.
 * @param options `workers`: whether trials run in worker processes.
 * @returns A function that removes the listener (once training is over).
 *
 * @example
 * ```ts
 * import { exitOnInterrupt } from "./flags.ts";
 * const remove = exitOnInterrupt("deno task train --resume results/x", { workers: false });
 * remove();
 * ```
 */
export function exitOnInterrupt(command: string, options: { workers: boolean }): () => void {
  if (Deno.build.os === "windows") return () => {};
  const listener = () => {
    console.error(
      `\ninterrupted: \`${command}\` continues each trial after its last finished epoch`,
    );
    if (options.workers) Deno.kill(Deno.pid, "SIGTERM");
    else Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", listener);
  return () => Deno.removeSignalListener("SIGINT", listener);
}

/**
 * The `--help` text: the presets, and every field's flag with what it means, its allowed values
 * and its default (in brackets).
 *
 * @param command How the script is invoked, e.g. `deno task train`.
 * @param extra Script-specific lines.
 * @returns The help text.
 *
 * @example
 * ```ts
 * import { helpText } from "./flags.ts";
 * console.log(helpText("deno task train").includes("--batch-size")); // true
 * ```
 */
export function helpText(command: string, extra: string[] = []): string {
  const lines = [
    `Usage: ${command} [--preset NAME] [--FIELD VALUE ...]`,
    "",
    "Presets (a few named overrides over the defaults below):",
    ...Object.entries(PRESETS).map(([name, p]) =>
      `  ${name.padEnd(Math.max(...Object.keys(PRESETS).map((n) => n.length)))} ${p.description}${
        name === DEFAULT_PRESET ? " [default]" : ""
      }`
    ),
    "",
    "Fields (each overrides the preset; in brackets the default the presets start from):",
    ...Object.entries(FIELD_HELP).map(([key, help]) => {
      const value = (DEFAULTS as unknown as Record<string, unknown>)[key];
      const shown = Array.isArray(value) ? value.join(",") : value === null ? "none" : value;
      return `  --${flagName(key).padEnd(22)} ${help} [${shown}]`;
    }),
    "",
    "Other flags:",
    "  --out DIR                results directory (default results/<preset>-<timestamp>/)",
    "  --resume DIR             finish an interrupted experiment in DIR with its saved config",
    "  --workers N              run trials in N parallel processes (bounded by the trials",
    "                           left and by free memory)",
    "  --executor local|slurm   local worker processes [local], or one Slurm job array",
    "  --slurm-partition P, --slurm-time T, --slurm-cpus N, --slurm-array-limit N,",
    '  --slurm-extra "…"        passed to the Slurm executor',
    "  --dry-run                start nothing: print which trials would train, resume (after",
    "                           which epoch) or be skipped as finished, and the results",
    "                           directory, writing nothing; with --executor slurm, write",
    "                           config.json (sweep.json for a sweep) and plan.json (the",
    "                           scripts read them) and print the batch scripts instead of",
    "                           submitting them",
    "  --quiet                  no progress bar",
    "  --help, -h               this text",
    ...extra,
  ];
  return lines.join("\n");
}
