/**
 * The colour scale and line styles of bnlab's charts: every normalization variant has one fixed
 * colour in every figure, other series take colours from a palette in order of appearance, and
 * series that share a colour or coincide get distinct dash patterns.
 *
 * Series names are never used as CSS colours: a series named `none` or `red` is drawn in its
 * scale's colour.
 *
 * @module
 */

/**
 * The colour of each normalization variant, the same in every chart. `custom` is bnlab's BN
 * under its earlier name and shares `bnlab`'s colour.
 */
export const VARIANT_COLORS: Readonly<Record<string, string>> = Object.freeze({
  none: "#4d4d4d",
  bnlab: "#1f77b4",
  custom: "#1f77b4",
  tfjs: "#ff7f0e",
  group: "#2ca02c",
  layer: "#9467bd",
  renorm: "#8c564b",
  ghost: "#e377c2",
});

/** Colours of series that are not variants, used in order of first appearance. */
export const SERIES_PALETTE: readonly string[] = Object.freeze([
  "#17becf",
  "#d62728",
  "#bcbd22",
  "#393b79",
  "#637939",
  "#8c6d31",
  "#843c39",
  "#7b4173",
  "#3182bd",
  "#e6550d",
]);

/** Dash patterns (SVG `stroke-dasharray`) given in turn to series drawn in the same colour. */
export const DASH_PATTERNS: readonly string[] = Object.freeze([
  "",
  "7,4",
  "2,3",
  "10,3,2,3",
  "4,2",
  "1,5",
]);

/**
 * The variant a series name stands for: its first word (up to a space, `(`, `,`, `:`, `=` or
 * `/`), lowercased, when that is a key of {@linkcode VARIANT_COLORS}.
 *
 * @param name A series name, e.g. `"tfjs (seed 1)"`.
 * @returns The variant, e.g. `"tfjs"`, or `undefined`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { variantOf } from "./plot_style.ts";
 *
 * assert.equal(variantOf("bnlab (seed 0)"), "bnlab");
 * assert.equal(variantOf("running statistics"), undefined);
 * ```
 */
export function variantOf(name: string): string | undefined {
  const first = name.trim().split(/[\s(,:=/]/, 1)[0].toLowerCase();
  return Object.hasOwn(VARIANT_COLORS, first) ? first : undefined;
}

/**
 * Maps series names to colours: a variant's fixed colour ({@linkcode VARIANT_COLORS}), else the
 * next unused colour of {@linkcode SERIES_PALETTE} (cycling when all are used).
 *
 * @param names Series names in legend order.
 * @returns The colour of each name, as a `#rrggbb` string.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { colorScale } from "./plot_style.ts";
 *
 * const colors = colorScale(["red", "none", "tfjs"]);
 * assert.equal(colors.get("none"), "#4d4d4d");
 * assert.equal(colors.get("red"), "#17becf"); // a name is never a CSS colour
 * ```
 */
export function colorScale(names: readonly string[]): Map<string, string> {
  const colors = new Map<string, string>();
  let next = 0;
  for (const name of names) {
    if (colors.has(name)) continue;
    const variant = variantOf(name);
    if (variant !== undefined) {
      colors.set(name, VARIANT_COLORS[variant]);
    } else {
      colors.set(name, SERIES_PALETTE[next % SERIES_PALETTE.length]);
      next++;
    }
  }
  return colors;
}

/**
 * Gives every series a dash pattern, so that series of one colour, and series that coincide,
 * stay distinguishable: within each colour, and within each group of coinciding series, the
 * k-th series takes `DASH_PATTERNS[k]` (the first is solid).
 *
 * @param colors Colour of each series, as {@linkcode colorScale} returns it.
 * @param overlapping Groups of series whose values coincide.
 * @returns The dash pattern of each series (`""` for solid).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { colorScale, dashScale } from "./plot_style.ts";
 *
 * const dashes = dashScale(colorScale(["bnlab", "tfjs"]), [["bnlab", "tfjs"]]);
 * assert.deepEqual([dashes.get("bnlab"), dashes.get("tfjs")], ["", "7,4"]);
 * ```
 */
export function dashScale(
  colors: ReadonlyMap<string, string>,
  overlapping: readonly (readonly string[])[] = [],
): Map<string, string> {
  const rank = new Map<string, number>();
  const seen = new Map<string, number>();
  for (const [name, color] of colors) {
    const k = seen.get(color) ?? 0;
    seen.set(color, k + 1);
    rank.set(name, k);
  }
  for (const group of overlapping) {
    group.forEach((name, k) => rank.set(name, Math.max(rank.get(name) ?? 0, k)));
  }
  const dashes = new Map<string, string>();
  for (const [name, k] of rank) dashes.set(name, DASH_PATTERNS[k % DASH_PATTERNS.length]);
  return dashes;
}

/** Series whose values coincide, found by {@linkcode overlappingSeries}. */
export interface SeriesOverlap {
  /** Names of the coinciding series, in the order given. */
  names: string[];
  /** The largest difference between the first series and another at any x (0: identical). */
  maxDifference: number;
}

/**
 * The caption that states which series coincide: `"bnlab and tfjs overlap: identical training
 * loss"` when their values are equal, else `"… overlap: training loss identical to within
 * 0.012"` (the largest difference, to 2 significant digits).
 *
 * @param group Names of the coinciding series (two or more).
 * @param what What coincides, e.g. the y axis's label.
 * @param maxDifference The largest difference between them.
 * @default maxDifference 0
 * @returns The caption.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { overlapCaption } from "./plot_style.ts";
 *
 * assert.equal(
 *   overlapCaption(["a", "b", "c"], "test accuracy"),
 *   "a, b and c overlap: identical test accuracy",
 * );
 * assert.equal(
 *   overlapCaption(["bnlab", "tfjs"], "training loss", 0.01234),
 *   "bnlab and tfjs overlap: training loss identical to within 0.012",
 * );
 * ```
 */
export function overlapCaption(group: readonly string[], what: string, maxDifference = 0): string {
  const names = group.length > 1
    ? `${group.slice(0, -1).join(", ")} and ${group[group.length - 1]}`
    : group.join("");
  return maxDifference === 0
    ? `${names} overlap: identical ${what}`
    : `${names} overlap: ${what} identical to within ${Number(maxDifference.toPrecision(2))}`;
}

/**
 * Groups the series whose values coincide: the same x values in every facet, and at each x,
 * y values at most `tolerance` apart (`NaN` matches only `NaN`). A series joins the group of
 * the first earlier series it matches.
 *
 * @param values For each series, per facet (`""` for one panel), y by x.
 * @param tolerance The largest difference that still counts as coinciding.
 * @default tolerance 0
 * @returns Groups of two or more series, in the order of `values`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { overlappingSeries } from "./plot_style.ts";
 *
 * const curve = new Map([["", new Map([[1, 2.3], [2, 1.1]])]]);
 * const close = new Map([["", new Map([[1, 2.3], [2, 1.1001]])]]);
 * const groups = overlappingSeries(new Map([["bnlab", curve], ["tfjs", close]]), 0.001);
 * assert.deepEqual(groups[0].names, ["bnlab", "tfjs"]);
 * assert.ok(Math.abs(groups[0].maxDifference - 0.0001) < 1e-12);
 * ```
 */
export function overlappingSeries(
  values: ReadonlyMap<string, ReadonlyMap<string, ReadonlyMap<number, number>>>,
  tolerance = 0,
): SeriesOverlap[] {
  const groups: SeriesOverlap[] = [];
  const placed = new Set<string>();
  const names = [...values.keys()];
  for (let i = 0; i < names.length; i++) {
    if (placed.has(names[i])) continue;
    const group: SeriesOverlap = { names: [names[i]], maxDifference: 0 };
    for (let j = i + 1; j < names.length; j++) {
      if (placed.has(names[j])) continue;
      const difference = _difference(values.get(names[i])!, values.get(names[j])!);
      if (difference <= tolerance) {
        group.names.push(names[j]);
        group.maxDifference = Math.max(group.maxDifference, difference);
        placed.add(names[j]);
      }
    }
    if (group.names.length > 1) groups.push(group);
  }
  return groups;
}

/**
 * Groups the series whose values are identical: {@linkcode overlappingSeries} with no
 * tolerance.
 *
 * @param values For each series, per facet (`""` for one panel), y by x.
 * @returns Groups of two or more series' names, in the order of `values`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { identicalSeries } from "./plot_style.ts";
 *
 * const curve = new Map([["", new Map([[1, 2.3], [2, 1.1]])]]);
 * const other = new Map([["", new Map([[1, 2.3], [2, 1.0]])]]);
 * assert.deepEqual(
 *   identicalSeries(new Map([["bnlab", curve], ["tfjs", curve], ["none", other]])),
 *   [["bnlab", "tfjs"]],
 * );
 * ```
 */
export function identicalSeries(
  values: ReadonlyMap<string, ReadonlyMap<string, ReadonlyMap<number, number>>>,
): string[][] {
  return overlappingSeries(values, 0).map((group) => group.names);
}

/** The largest |a − b| over all facets and x; Infinity where the x values differ. */
function _difference(
  a: ReadonlyMap<string, ReadonlyMap<number, number>>,
  b: ReadonlyMap<string, ReadonlyMap<number, number>>,
): number {
  if (a.size !== b.size) return Infinity;
  let largest = 0;
  for (const [facet, ya] of a) {
    const yb = b.get(facet);
    if (!yb || ya.size !== yb.size || ya.size === 0) return Infinity;
    for (const [x, y] of ya) {
      if (!yb.has(x)) return Infinity;
      const other = yb.get(x)!;
      if (Number.isNaN(y) || Number.isNaN(other)) {
        if (!(Number.isNaN(y) && Number.isNaN(other))) return Infinity;
        continue;
      }
      largest = Math.max(largest, Math.abs(y - other));
    }
  }
  return largest;
}
