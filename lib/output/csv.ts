/**
 * CSV tables for results: written with `csv-stringify`, read back with `csv-parse`.
 *
 * The format is RFC 4180 with a header row and `\n` line ends. Values are written so that
 * {@linkcode parseCsv} (and {@linkcode readCsv}) give back what was written:
 *
 * | value | written as | read back (with `cast`) |
 * | --- | --- | --- |
 * | number | shortest round-trip text (`String(n)`; `-0` as `-0`) | the same number |
 * | `NaN`, `Infinity`, `-Infinity` | `NaN`, `Infinity`, `-Infinity` | the same number |
 * | `null`, `undefined`, missing | empty cell | `null` |
 * | boolean | `true` / `false` | the same boolean |
 * | string | as is; quoted when it has `,` `"` or a line break, or would read as another type (`""`, `"12"`, `"true"`, `"NaN"`) | the same string |
 * | bigint | its digits | a number |
 * | `Date` | ISO 8601 text | a string |
 * | other objects | JSON text | a string |
 *
 * pandas reads these files as written (`NaN`, `Infinity` and empty cells included).
 *
 * @module
 */
import { stringify } from "csv-stringify/sync";
import { parse } from "csv-parse/sync";
import { writeFileAtomic } from "./atomic.ts";

/** A cell as {@linkcode parseCsv} returns it. */
export type CsvValue = string | number | boolean | null;

/** A row as {@linkcode parseCsv} returns it: column name to cell. */
export type CsvRow = Record<string, CsvValue>;

/** Options of {@linkcode toCsv}, {@linkcode writeCsv} and {@linkcode appendCsvRows}. */
export interface ToCsvOptions {
  /**
   * The columns, in order. A row with a key not listed is an error (a misspelled column must
   * not vanish silently); a listed column missing from a row is written empty.
   * @default {every key of every row, in order of first appearance}
   */
  columns?: readonly string[];
}

/** Options of {@linkcode parseCsv} and {@linkcode readCsv}. */
export interface ParseCsvOptions {
  /**
   * Give cells back their types: unquoted numbers (`NaN` and `±Infinity` included) become
   * numbers, unquoted `true`/`false` booleans, unquoted empty cells `null`; quoted cells stay
   * strings. With `false` every cell is the string in the file.
   * @default {true}
   */
  cast?: boolean;
}

/** Strings that an unquoted cell would turn into a number, boolean or null when read back. */
const _TYPED_TEXT = /^(?:[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|NaN|[-+]?Infinity|true|false|)$/;

/**
 * Formats rows as CSV text with a header row.
 *
 * @param rows One object per row.
 * @param options The columns and their order.
 * @returns The CSV text, ending with a newline; `""` for no rows and no columns.
 * @throws If a row has a key that `options.columns` does not list.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { toCsv } from "./csv.ts";
 *
 * const text = toCsv([{ variant: "custom", accuracy: 0.1 + 0.2, note: "a, b" }]);
 * assert.equal(text, 'variant,accuracy,note\ncustom,0.30000000000000004,"a, b"\n');
 * ```
 */
export function toCsv(
  rows: readonly Record<string, unknown>[],
  options: ToCsvOptions = {},
): string {
  const columns = options.columns ? [...options.columns] : _columnsOf(rows);
  if (options.columns) _checkColumns("toCsv", rows, columns);
  if (columns.length === 0) return "";
  return stringify(rows as Record<string, unknown>[], {
    header: true,
    columns,
    record_delimiter: "\n",
    cast: {
      number: (value) => Object.is(value, -0) ? "-0" : String(value),
      boolean: (value) => String(value),
      bigint: (value) => String(value),
      date: (value) => value.toISOString(),
      object: (value) => JSON.stringify(value),
      string: (value, context) =>
        !context.header && _TYPED_TEXT.test(value)
          ? { value, quoted: true, quoted_empty: true }
          : value,
    },
  });
}

/**
 * Writes rows to a CSV file atomically (see {@linkcode toCsv} for the format).
 *
 * @param path File to write; parent directories are created.
 * @param rows One object per row.
 * @param options The columns and their order.
 * @throws If a row has a key that `options.columns` does not list, or the write fails.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readCsv, writeCsv } from "./csv.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await writeCsv(`${dir}/summary.csv`, [{ variant: "none", seed: 0, accuracy: 0.98 }]);
 * assert.deepEqual(await readCsv(`${dir}/summary.csv`), [{ variant: "none", seed: 0, accuracy: 0.98 }]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeCsv(
  path: string,
  rows: readonly Record<string, unknown>[],
  options: ToCsvOptions = {},
): Promise<void> {
  await writeFileAtomic(path, toCsv(rows, options));
}

/**
 * Appends rows to a CSV file, creating it with a header when it is missing or empty.
 *
 * The file's header decides the columns: a row with a key the header lacks is an error, and
 * `options.columns`, when given, must equal the header. Appending is not atomic (a crash can
 * leave a partial last line); use {@linkcode writeCsv} for files that must always be whole.
 *
 * @param path File to append to.
 * @param rows One object per row.
 * @param options The columns, used for a new file and checked against an existing one.
 * @throws If the columns disagree with the file's header.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { appendCsvRows, readCsv } from "./csv.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await appendCsvRows(`${dir}/log.csv`, [{ step: 1, loss: 2.3 }]);
 * await appendCsvRows(`${dir}/log.csv`, [{ step: 2, loss: 1.9 }]);
 * assert.equal((await readCsv(`${dir}/log.csv`)).length, 2);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function appendCsvRows(
  path: string,
  rows: readonly Record<string, unknown>[],
  options: ToCsvOptions = {},
): Promise<void> {
  let existing = "";
  try {
    existing = await Deno.readTextFile(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  if (existing === "") return writeCsv(path, rows, options);
  const header = (parse(existing, { to_line: 1 }) as string[][])[0] ?? [];
  if (options.columns && options.columns.join("\u0000") !== header.join("\u0000")) {
    throw new Error(
      `appendCsvRows: columns must match the header of ${path}; received ` +
        `${options.columns.join(", ")}, the file has ${header.join(", ")}`,
    );
  }
  _checkColumns(`appendCsvRows(${path})`, rows, header);
  if (rows.length === 0) return;
  const body = toCsv(rows, { columns: header });
  const lines = body.slice(body.indexOf("\n") + 1);
  const separator = existing.endsWith("\n") ? "" : "\n";
  await Deno.writeTextFile(path, separator + lines, { append: true });
}

/**
 * Parses CSV text with a header row into one object per row.
 *
 * @param text CSV text, as {@linkcode toCsv} writes it.
 * @param options Whether to give cells their types back.
 * @returns The rows; keys follow the header's order.
 * @throws If the text is not valid CSV or a row has more or fewer cells than the header.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCsv } from "./csv.ts";
 *
 * assert.deepEqual(parseCsv('a,b,c\n1,"1",\n'), [{ a: 1, b: "1", c: null }]);
 * assert.deepEqual(parseCsv("a\n1\n", { cast: false }), [{ a: "1" }]);
 * ```
 */
export function parseCsv<T extends Record<string, unknown> = CsvRow>(
  text: string,
  options: ParseCsvOptions = {},
): T[] {
  const cast = options.cast ?? true;
  return parse(text, {
    columns: true,
    bom: true,
    cast: cast
      ? (value, context) => (context.header || context.quoting ? value : _castCell(value))
      : false,
  }) as T[];
}

/**
 * Reads a CSV file with a header row (see {@linkcode parseCsv}).
 *
 * The type parameter is a promise of the caller, not checked against the file.
 *
 * @param path File to read.
 * @param options Whether to give cells their types back.
 * @returns The rows.
 * @throws If the file is missing or is not valid CSV; the message names the file.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readCsv } from "./csv.ts";
 *
 * const path = await Deno.makeTempFile({ suffix: ".csv" });
 * await Deno.writeTextFile(path, "step,loss\n1,2.5\n");
 * assert.deepEqual(await readCsv<{ step: number; loss: number }>(path), [{ step: 1, loss: 2.5 }]);
 * await Deno.remove(path);
 * ```
 */
export async function readCsv<T extends Record<string, unknown> = CsvRow>(
  path: string,
  options: ParseCsvOptions = {},
): Promise<T[]> {
  const text = await Deno.readTextFile(path);
  try {
    return parseCsv<T>(text, options);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new Error(`readCsv: could not parse ${path}: ${message}`, { cause: error });
  }
}

function _castCell(value: string): CsvValue {
  if (value === "") return null;
  if (value === "true") return true;
  if (value === "false") return false;
  return _TYPED_TEXT.test(value) ? Number(value) : value;
}

function _columnsOf(rows: readonly Record<string, unknown>[]): string[] {
  const seen = new Set<string>();
  for (const row of rows) for (const key of Object.keys(row)) seen.add(key);
  return [...seen];
}

function _checkColumns(
  what: string,
  rows: readonly Record<string, unknown>[],
  columns: readonly string[],
): void {
  const allowed = new Set(columns);
  rows.forEach((row, index) => {
    const unknown = Object.keys(row).filter((key) => !allowed.has(key));
    if (unknown.length) {
      throw new Error(
        `${what}: row ${index} has unknown column${unknown.length > 1 ? "s" : ""} ` +
          `${unknown.map((key) => `"${key}"`).join(", ")}; allowed columns: ${columns.join(", ")}`,
      );
    }
  });
}
