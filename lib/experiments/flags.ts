/**
 * Command-line flags for experiments: `--preset NAME` plus one flag per config field in
 * kebab case (`--batch-size 20`), each overriding the preset. Unknown flags are errors.
 *
 * @module
 */
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
}

/** Extra flags a script accepts besides the config fields. */
const _EXTRA = {
  preset: { type: "string" },
  out: { type: "string" },
  resume: { type: "string" },
  workers: { type: "string" },
  help: { type: "boolean", short: "h" },
  quiet: { type: "boolean" },
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
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = { ..._EXTRA };
  for (const key of Object.keys(DEFAULTS)) {
    if (key !== "preset") options[flagName(key)] = { type: "string" };
  }
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args, options, strict: true, allowPositionals: false }));
  } catch (error) {
    throw new Error(`${(error as Error).message}. Run with --help to list the flags.`);
  }
  const overrides: Record<string, unknown> = {};
  for (const key of Object.keys(DEFAULTS)) {
    const raw = values[flagName(key)];
    if (key === "preset" || raw === undefined) continue;
    overrides[key] = _parseValue(key, String(raw));
  }
  const preset = (values.preset as string | undefined) ?? savedConfig?.preset ?? DEFAULT_PRESET;
  const base = savedConfig ? { ...savedConfig, ...overrides } : overrides;
  const { preset: _ignored, ...fields } = base as Partial<ExperimentConfig>;
  const config = resolveConfig(preset, fields);
  let workers: number | undefined;
  if (values.workers !== undefined) {
    workers = Number(values.workers);
    if (!Number.isInteger(workers) || workers < 1) {
      throw new Error(`--workers must be a positive integer, received ${values.workers}`);
    }
  }
  return {
    config,
    out: values.out as string | undefined,
    resume: values.resume as string | undefined,
    help: Boolean(values.help),
    workers,
    quiet: Boolean(values.quiet),
  };
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
      `  ${name.padEnd(8)} ${p.description}${name === DEFAULT_PRESET ? " [default]" : ""}`
    ),
    "",
    "Fields (each overrides the preset; in brackets the default the presets start from):",
    ...Object.entries(FIELD_HELP).map(([key, help]) => {
      const value = (DEFAULTS as unknown as Record<string, unknown>)[key];
      const shown = Array.isArray(value) ? value.join(",") : value;
      return `  --${flagName(key).padEnd(22)} ${help} [${shown}]`;
    }),
    "",
    "Other flags:",
    "  --out DIR                results directory (default results/<preset>-<timestamp>/)",
    "  --resume DIR             finish an interrupted experiment in DIR with its saved config",
    "  --workers N              run variants/seeds in N parallel processes",
    "  --quiet                  no progress bar",
    "  --help, -h               this text",
    ...extra,
  ];
  return lines.join("\n");
}

function _parseValue(key: string, raw: string): unknown {
  const template = (DEFAULTS as unknown as Record<string, unknown>)[key];
  if (Array.isArray(template)) return raw.split(",").map((s) => s.trim()).filter(Boolean);
  if (typeof template === "number" || template === null) {
    if (template === null && (raw === "all" || raw === "none")) return null;
    const value = Number(raw);
    if (raw.trim() === "" || Number.isNaN(value)) {
      throw new Error(
        `--${flagName(key)} expects a number${template === null ? ' or "all"' : ""}, received ${
          JSON.stringify(raw)
        }`,
      );
    }
    return value;
  }
  return raw;
}
