/**
 * The environment switches of bnlab, read in one place. Every `BNLAB_*` variable the library
 * and its scripts look at is read through this module:
 *
 * - `BNLAB_NATIVE`: `off` (or `0`, `false`, `none`, `no`) keeps bnlab's native C kernels
 *   unloaded.
 * - `BNLAB_BLAS`: `off` (the same words) keeps OpenBLAS unloaded; `on` or unset tries the
 *   usual library paths; any other value is the path of the library to load.
 * - `BNLAB_BLAS_THREADS`: the threads a matrix product's slices run on, 1 to
 *   {@linkcode MAX_BLAS_THREADS} (default: the machine's cores, at most that).
 * - `BNLAB_PYTHON`: the Python that runs the notebooks.
 *
 * Reading never prompts for a permission and never throws for a missing one: a variable that
 * cannot be read counts as unset.
 *
 * @module
 */

/** The `BNLAB_*` variables bnlab reads. */
export type BnlabEnvName = "BNLAB_NATIVE" | "BNLAB_BLAS" | "BNLAB_BLAS_THREADS" | "BNLAB_PYTHON";

/** The values of a switch that mean "off", compared after trimming and lower-casing. */
export const OFF_VALUES: readonly string[] = ["off", "0", "false", "none", "no"];

/** The most threads `BNLAB_BLAS_THREADS` may ask for: one per slice of a product. */
export const MAX_BLAS_THREADS = 2;

/**
 * An environment variable, or undefined when unset or not readable (no `--allow-env` for it):
 * never prompts, never throws.
 *
 * @param name The variable's name.
 * @returns Its value, or undefined.
 *
 * @example
 * ```ts
 * import { readEnv } from "./env.ts";
 *
 * console.log(readEnv("BNLAB_NATIVE") ?? "(unset)");
 * ```
 */
export function readEnv(name: string): string | undefined {
  if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") {
    return undefined;
  }
  return Deno.env.get(name);
}

/** A switch as read: its trimmed value ("" when unset) and whether it says "off". */
export interface EnvSwitch {
  /** The trimmed value, "" when unset or unreadable. */
  readonly value: string;
  /** Whether the value is one of {@linkcode OFF_VALUES} (any case). */
  readonly off: boolean;
}

/**
 * Reads an on/off switch (`BNLAB_NATIVE`, `BNLAB_BLAS`).
 *
 * @param name The switch.
 * @returns Its trimmed value and whether it says "off".
 *
 * @example
 * ```ts
 * import { readSwitch } from "./env.ts";
 *
 * const { off } = readSwitch("BNLAB_NATIVE");
 * console.log(off ? "native kernels switched off" : "native kernels allowed");
 * ```
 */
export function readSwitch(name: "BNLAB_NATIVE" | "BNLAB_BLAS"): EnvSwitch {
  const value = readEnv(name)?.trim() ?? "";
  return Object.freeze({ value, off: OFF_VALUES.includes(value.toLowerCase()) });
}

/**
 * The threads `BNLAB_BLAS_THREADS` asks a product's slices to run on; unset, the machine's
 * cores, at most {@linkcode MAX_BLAS_THREADS}.
 *
 * @returns An integer from 1 to {@linkcode MAX_BLAS_THREADS}.
 * @throws If the variable is set to anything else.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { blasThreadsAsked, MAX_BLAS_THREADS } from "./env.ts";
 *
 * const threads = blasThreadsAsked();
 * assert.ok(threads >= 1 && threads <= MAX_BLAS_THREADS);
 * ```
 */
export function blasThreadsAsked(): number {
  const setting = readEnv("BNLAB_BLAS_THREADS")?.trim();
  if (setting === undefined || setting === "") {
    return Math.max(1, Math.min(MAX_BLAS_THREADS, navigator.hardwareConcurrency ?? 1));
  }
  const threads = Number(setting);
  if (!Number.isInteger(threads) || threads < 1 || threads > MAX_BLAS_THREADS) {
    throw new Error(
      `BNLAB_BLAS_THREADS must be an integer from 1 to ${MAX_BLAS_THREADS} (one thread per ` +
        `slice of a product), received "${setting}"`,
    );
  }
  return threads;
}
