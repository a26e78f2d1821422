import assert from "node:assert/strict";
import { formatCell, formatTable, htmlTable, summarize } from "../lib/output/table.ts";

Deno.test("formatTable aligns numbers right and text left, with a rule under the header", () => {
  const text = formatTable([
    { variant: "none", seed: 0, acc: 0.98123, note: null },
    { variant: "custom", seed: 12, acc: NaN, note: "diverged" },
  ]);
  assert.equal(
    text,
    [
      "variant  seed     acc  note",
      "-------  ----  ------  --------",
      "none        0  0.9812",
      "custom     12     NaN  diverged",
    ].join("\n"),
  );
});

Deno.test("formatTable follows the given columns and digits, and says when there are no rows", () => {
  const rows = [{ a: 1.23456, b: "x", c: 3 }];
  assert.equal(formatTable(rows, { columns: ["c", "a"], digits: 2 }), "c     a\n-  ----\n3  1.23");
  assert.equal(formatTable([]), "(no rows)");
  assert.throws(() => formatTable(rows, { digits: -1 }), {
    message: "formatTable: digits must be an integer in [0, 20], received -1",
  });
});

Deno.test("formatCell keeps tiny and huge numbers readable", () => {
  assert.equal(formatCell(0.00001234, 4), "1.234e-5");
  assert.equal(formatCell(0.4, 0), "4.0e-1");
  assert.equal(formatCell(1.5e16, 2), "15000000000000000"); // an integer
  assert.equal(formatCell(1e15 + 0.5, 2), "1.0e+15");
  assert.equal(formatCell(123456789.123, 2), "123456789.12");
  assert.equal(formatCell(Infinity, 2), "Infinity");
  assert.equal(formatCell(undefined, 2), "");
  assert.equal(formatCell(true, 2), "true");
});

Deno.test("htmlTable escapes every cell and right-aligns numeric columns", () => {
  const html = htmlTable([{ "<name>": `a & "b"`, n: 0.5 }], { digits: 1 });
  assert.equal(
    html,
    [
      "<table>",
      "<thead>",
      '<tr><th>&lt;name&gt;</th><th style="text-align:right">n</th></tr>',
      "</thead>",
      "<tbody>",
      '<tr><td>a &amp; &quot;b&quot;</td><td style="text-align:right">0.5</td></tr>',
      "</tbody>",
      "</table>",
    ].join("\n"),
  );
  assert.equal(
    htmlTable([], { columns: ["a"] }),
    "<table>\n<thead>\n<tr><th>a</th></tr>\n</thead>\n<tbody>\n</tbody>\n</table>",
  );
});

Deno.test("summarize gives n, mean and sample std per group, in order of appearance", () => {
  const rows = [
    { variant: "custom", lr: 0.1, acc: 0.97, loss: 0.1 },
    { variant: "none", lr: 0.1, acc: 0.9, loss: 0.3 },
    { variant: "custom", lr: 0.1, acc: 0.99, loss: 0.2 },
    { variant: "custom", lr: 0.01, acc: 0.5, loss: 1 },
    { variant: "custom", lr: 0.1, acc: 0.98, loss: 0.3 },
  ];
  const table = summarize(rows, { groupBy: ["variant", "lr"], values: ["acc", "loss"] });
  assert.deepEqual(table.map((row) => [row.variant, row.lr, row.n]), [
    ["custom", 0.1, 3],
    ["none", 0.1, 1],
    ["custom", 0.01, 1],
  ]);
  assert.deepEqual(Object.keys(table[0]), [
    "variant",
    "lr",
    "n",
    "acc_mean",
    "acc_std",
    "loss_mean",
    "loss_std",
  ]);
  // Independent check: mean 0.98, deviations ±0.01 and 0 → sample variance 0.0002/2.
  assert.ok(Math.abs((table[0].acc_mean as number) - 0.98) < 1e-12);
  assert.ok(Math.abs((table[0].acc_std as number) - 0.01) < 1e-12);
  assert.ok(Math.abs((table[0].loss_std as number) - 0.1) < 1e-12);
  assert.ok(Number.isNaN(table[1].acc_std), "one row has no sample std");
});

Deno.test("summarize lets NaN through and rejects missing or non-numeric columns", () => {
  const [group] = summarize([{ g: "a", v: 1 }, { g: "a", v: NaN }], {
    groupBy: ["g"],
    values: ["v"],
  });
  assert.ok(Number.isNaN(group.v_mean));
  assert.throws(() => summarize([{ g: "a", v: 1 }, { v: 2 }], { groupBy: ["g"], values: ["v"] }), {
    message: 'summarize: row 1 has no groupBy column "g"; its columns are v',
  });
  assert.throws(() => summarize([{ g: "a", v: "1" }], { groupBy: ["g"], values: ["v"] }), {
    message: 'summarize: "v" must be a number in every row; row 0 has "1"',
  });
  assert.throws(() => summarize([{ g: "a" }], { groupBy: ["g"], values: ["v"] }), {
    message: 'summarize: "v" must be a number in every row; row 0 has no such column',
  });
  assert.deepEqual(summarize([], { groupBy: ["g"], values: ["v"] }), []);
});

Deno.test("summarize keeps groups whose keys only differ in type apart", () => {
  const table = summarize([{ g: 1, v: 1 }, { g: "1", v: 3 }], { groupBy: ["g"], values: ["v"] });
  assert.equal(table.length, 2);
});
