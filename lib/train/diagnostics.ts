/**
 * Observational diagnostics of a training run (Ioffe & Szegedy 2015, Figure 1): every N steps,
 * on a fixed probe of test images, the distribution of each normalization site's input, BN's
 * running-vs-batch statistic gap, the probe's accuracy, and the gradient norm of every weight.
 * Nothing here changes what is trained.
 *
 * @module
 */

/** A parsed `diagnostics` setting. */
export interface DiagnosticsSpec {
  /** Steps between two diagnostic points. */
  every: number;
  /** Test images in the probe (the first M). */
  probe: number;
}

/** Test images in the probe when `probe=` is not given. */
export const DEFAULT_PROBE = 500;

/**
 * Parses the `diagnostics` config field: `none`, or `every=N` with an optional `,probe=M`.
 *
 * @param value The field's text.
 * @returns `null` for `none`, else the interval and the probe size.
 * @throws {Error} Naming what was expected and what was received.
 *
 * @example
 * ```ts
 * import { parseDiagnostics } from "./diagnostics.ts";
 * console.log(parseDiagnostics("none"), parseDiagnostics("every=100,probe=1000"));
 * // null { every: 100, probe: 1000 }
 * ```
 */
export function parseDiagnostics(value: string): DiagnosticsSpec | null {
  if (value === "none") return null;
  const match = typeof value === "string" ? value.match(/^every=(\d+)(?:,probe=(\d+))?$/) : null;
  const every = match ? Number(match[1]) : NaN;
  const probe = match?.[2] === undefined ? DEFAULT_PROBE : Number(match[2]);
  if (!match || !(every >= 1) || !(probe >= 1) || every > 1e9 || probe > 1e9) {
    throw new Error(
      `config: diagnostics must be none or every=N[,probe=M] with N, M positive integers, ` +
        `received ${JSON.stringify(value)}`,
    );
  }
  return { every, probe };
}
