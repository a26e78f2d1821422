/**
 * Result tables: aligned text for the terminal, HTML for notebooks, and per-group summaries.
 *
 * Cells are formatted the same way in both outputs: integers as they are, other finite numbers
 * with a fixed number of decimals (scientific notation when that would print as zero or is
 * very large), `NaN`/`±Infinity` by name, `null`/`undefined` as an empty cell, and anything
 * else with `String()`.
 *
 * @module
 */

/** Options of {@linkcode formatTable} and {@linkcode htmlTable}. */
export interface TableOptions {
  /**
   * The columns, in order.
   * @default {every key of every row, in order of first appearance}
   */
  columns?: readonly string[];
  /**
   * Decimals printed for numbers that are not integers.
   * @default {4}
   */
  digits?: number;
}

/** Options of {@linkcode summarize}. */
export interface SummarizeOptions {
  /** Columns whose values together name a group, e.g. `["variant"]`. */
  groupBy: readonly string[];
  /** Numeric columns to summarize, e.g. `["test_accuracy"]`. */
  values: readonly string[];
}

/**
 * Formats rows as a plain-text table: a header, a rule, then one line per row.
 *
 * Columns holding only numbers (and empty cells) are right-aligned; the others left-aligned.
 *
 * @param rows One object per row.
 * @param options Columns and decimals.
 * @returns The table, lines joined by `\n`, no final newline; `"(no rows)"` for no rows.
 * @throws If `digits` is not an integer in [0, 20].
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatTable } from "./table.ts";
 *
 * const text = formatTable([{ variant: "none", acc: 0.98123 }, { variant: "custom", acc: 0.99 }], {
 *   digits: 3,
 * });
 * assert.equal(text, "variant    acc\n-------  -----\nnone     0.981\ncustom   0.990");
 * ```
 */
export function formatTable(
  rows: readonly Record<string, unknown>[],
  options: TableOptions = {},
): string {
  const { columns, digits } = _resolve("formatTable", rows, options);
  if (rows.length === 0) return "(no rows)";
  const cells = rows.map((row) => columns.map((column) => formatCell(row[column], digits)));
  const numeric = columns.map((column) => _isNumericColumn(rows, column));
  const widths = columns.map((column, j) =>
    Math.max(_width(column), ...cells.map((line) => _width(line[j])))
  );
  const pad = (text: string, j: number) => {
    const fill = " ".repeat(widths[j] - _width(text));
    return numeric[j] ? fill + text : text + fill;
  };
  const lines = [
    columns.map(pad),
    widths.map((width) => "-".repeat(width)),
    ...cells.map((line) => line.map(pad)),
  ];
  return lines.map((line) => line.join("  ").trimEnd()).join("\n");
}

/**
 * Formats rows as an HTML `<table>`, every cell escaped, numeric columns right-aligned.
 *
 * Show it in a Deno notebook with `Deno.jupyter.display({ "text/html": html }, { raw: true })`.
 *
 * @param rows One object per row.
 * @param options Columns and decimals.
 * @returns The HTML text of one `<table>` element.
 * @throws If `digits` is not an integer in [0, 20].
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { htmlTable } from "./table.ts";
 *
 * const html = htmlTable([{ name: "<b>", n: 2 }]);
 * assert.match(html, /<td>&lt;b&gt;<\/td><td style="text-align:right">2<\/td>/);
 * ```
 */
export function htmlTable(
  rows: readonly Record<string, unknown>[],
  options: TableOptions = {},
): string {
  const { columns, digits } = _resolve("htmlTable", rows, options);
  const right = columns.map((column) => rows.length > 0 && _isNumericColumn(rows, column));
  const cell = (tag: string, text: string, j: number) =>
    `<${tag}${right[j] ? ' style="text-align:right"' : ""}>${_escapeHtml(text)}</${tag}>`;
  const head = `<tr>${columns.map((column, j) => cell("th", column, j)).join("")}</tr>`;
  const body = rows.map((row) =>
    `<tr>${
      columns.map((column, j) => cell("td", formatCell(row[column], digits), j)).join("")
    }</tr>`
  );
  return `<table>\n<thead>\n${head}\n</thead>\n<tbody>\n${body.join("\n")}${
    body.length ? "\n" : ""
  }</tbody>\n</table>`;
}

/**
 * Formats rows as a GitHub-flavoured Markdown table (numeric columns right-aligned, `|` in a
 * cell escaped), for READMEs built from result files rather than typed numbers.
 *
 * @param rows One object per row.
 * @param options Columns and decimals.
 * @returns The table's lines joined by `\n`, no final newline; `"(no rows)"` for no rows.
 * @throws If `digits` is not an integer in [0, 20].
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { markdownTable } from "./table.ts";
 *
 * assert.equal(
 *   markdownTable([{ variant: "a|b", acc: 0.98123 }], { digits: 2 }),
 *   "| variant | acc |\n| --- | ---: |\n| a\\|b | 0.98 |",
 * );
 * ```
 */
export function markdownTable(
  rows: readonly Record<string, unknown>[],
  options: TableOptions = {},
): string {
  const { columns, digits } = _resolve("markdownTable", rows, options);
  if (rows.length === 0) return "(no rows)";
  const escape = (text: string) => text.replaceAll("|", "\\|").replaceAll("\n", " ");
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [
    line(columns.map(escape)),
    line(columns.map((column) => (_isNumericColumn(rows, column) ? "---:" : "---"))),
    ...rows.map((row) => line(columns.map((column) => escape(formatCell(row[column], digits))))),
  ].join("\n");
}

/**
 * Formats one table cell (see the module's rules).
 *
 * @param value The cell's value.
 * @param digits Decimals for numbers that are not integers.
 * @returns The cell's text.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatCell } from "./table.ts";
 *
 * assert.deepEqual(
 *   [formatCell(3, 2), formatCell(0.98765, 2), formatCell(1e-7, 2), formatCell(NaN, 2), formatCell(null, 2)],
 *   ["3", "0.99", "1.0e-7", "NaN", ""],
 * );
 * ```
 */
export function formatCell(value: unknown, digits: number): string {
  if (value === null || value === undefined) return "";
  if (typeof value !== "number") return String(value);
  if (!Number.isFinite(value) || Number.isInteger(value)) return String(value);
  const fixed = value.toFixed(digits);
  const magnitude = Math.abs(value);
  if (magnitude >= 1e15 || Number(fixed) === 0) return value.toExponential(Math.max(digits - 1, 1));
  return fixed;
}

/**
 * Mean and sample standard deviation of numeric columns per group.
 *
 * Each output row holds the `groupBy` columns, `n` (rows in the group), then `<value>_mean` and
 * `<value>_std` for each value column. The standard deviation is the sample one,
 * √(Σ(x − mean)² / (n − 1)), so it is `NaN` for a group of one row; a `NaN` value makes its
 * group's mean and std `NaN` (a diverged run is not hidden). Groups keep the order in which
 * they first appear.
 *
 * @param rows One object per row, e.g. one per (variant, seed).
 * @param options The grouping and value columns.
 * @returns One row per group.
 * @throws If a row lacks a `groupBy` column, or a value is not a number.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { summarize } from "./table.ts";
 *
 * const table = summarize(
 *   [{ variant: "bn", acc: 0.9 }, { variant: "bn", acc: 0.7 }, { variant: "none", acc: 0.5 }],
 *   { groupBy: ["variant"], values: ["acc"] },
 * );
 * assert.equal(table[0].acc_mean, 0.8);
 * assert.ok(Math.abs((table[0].acc_std as number) - Math.SQRT2 / 10) < 1e-12);
 * assert.deepEqual(table[1], { variant: "none", n: 1, acc_mean: 0.5, acc_std: NaN });
 * ```
 */
export function summarize(
  rows: readonly Record<string, unknown>[],
  options: SummarizeOptions,
): Record<string, unknown>[] {
  const { groupBy, values } = options;
  const groups = new Map<string, { key: unknown[]; count: number; columns: number[][] }>();
  rows.forEach((row, index) => {
    const key = groupBy.map((column) => {
      if (!(column in row)) {
        throw new Error(
          `summarize: row ${index} has no groupBy column "${column}"; ` +
            `its columns are ${Object.keys(row).join(", ")}`,
        );
      }
      return row[column];
    });
    const id = JSON.stringify(key.map((part) => [typeof part, String(part)]));
    let group = groups.get(id);
    if (!group) {
      group = { key, count: 0, columns: values.map(() => []) };
      groups.set(id, group);
    }
    group.count += 1;
    values.forEach((column, j) => {
      const value = row[column];
      if (typeof value !== "number") {
        throw new Error(
          `summarize: "${column}" must be a number in every row; row ${index} has ` +
            `${value === undefined ? "no such column" : JSON.stringify(value)}`,
        );
      }
      group.columns[j].push(value);
    });
  });
  return [...groups.values()].map(({ key, count, columns }) => {
    const out: Record<string, unknown> = {};
    groupBy.forEach((column, i) => out[column] = key[i]);
    out.n = count;
    values.forEach((column, j) => {
      const xs = columns[j];
      const mean = xs.reduce((sum, x) => sum + x, 0) / xs.length;
      const squares = xs.reduce((sum, x) => sum + (x - mean) ** 2, 0);
      out[`${column}_mean`] = mean;
      out[`${column}_std`] = xs.length > 1 ? Math.sqrt(squares / (xs.length - 1)) : NaN;
    });
    return out;
  });
}

function _resolve(
  what: string,
  rows: readonly Record<string, unknown>[],
  options: TableOptions,
): { columns: string[]; digits: number } {
  const digits = options.digits ?? 4;
  if (!Number.isInteger(digits) || digits < 0 || digits > 20) {
    throw new Error(`${what}: digits must be an integer in [0, 20], received ${digits}`);
  }
  const columns = options.columns
    ? [...options.columns]
    : [...new Set(rows.flatMap((row) => Object.keys(row)))];
  return { columns, digits };
}

function _isNumericColumn(rows: readonly Record<string, unknown>[], column: string): boolean {
  return rows.every((row) =>
    row[column] === null || row[column] === undefined ||
    typeof row[column] === "number"
  ) &&
    rows.some((row) => typeof row[column] === "number");
}

function _width(text: string): number {
  return [...text].length;
}

function _escapeHtml(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;").replaceAll("'", "&#39;");
}
