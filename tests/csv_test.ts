import assert from "node:assert/strict";
import { appendCsvRows, parseCsv, readCsv, toCsv, writeCsv } from "../lib/output/csv.ts";

Deno.test("CSV round-trips awkward strings: commas, quotes, newlines, unicode", () => {
  const rows = [
    { name: "a, b", note: 'say "hi"', text: "line 1\nline 2\r\nline 3", unicode: "µ σ² – 日本 🙂" },
    { name: " padded ", note: "", text: "tab\there", unicode: "é" },
  ];
  const text = toCsv(rows);
  assert.deepEqual(parseCsv(text), rows);
  assert.deepEqual(parseCsv(text, { cast: false }), rows);
});

Deno.test("CSV keeps numbers lossless and types apart", () => {
  const rows = [{
    third: 0.1 + 0.2,
    tiny: 5e-324,
    huge: 1.7976931348623157e308,
    big: 1e21,
    negativeZero: -0,
    integer: 42,
    yes: true,
    no: false,
    numericString: "12",
    boolString: "true",
    nanString: "NaN",
    empty: "",
    missing: null,
  }];
  const text = toCsv(rows);
  assert.equal(
    text.split("\n")[1],
    '0.30000000000000004,5e-324,1.7976931348623157e+308,1e+21,-0,42,true,false,"12","true","NaN","",',
  );
  const [back] = parseCsv(text);
  assert.deepEqual(back, rows[0]);
  assert.ok(Object.is(back.negativeZero, -0));
});

Deno.test("NaN and ±Infinity are written by name and read back as numbers", () => {
  const text = toCsv([{ a: NaN, b: Infinity, c: -Infinity }]);
  assert.equal(text, "a,b,c\nNaN,Infinity,-Infinity\n");
  const [row] = parseCsv(text);
  assert.ok(Number.isNaN(row.a));
  assert.equal(row.b, Infinity);
  assert.equal(row.c, -Infinity);
});

Deno.test("null, undefined and missing keys become empty cells, read back as null", () => {
  const text = toCsv([{ a: 1, b: null }, { a: undefined, c: 3 }]);
  assert.equal(text, "a,b,c\n1,,\n,,3\n");
  assert.deepEqual(parseCsv(text), [{ a: 1, b: null, c: null }, { a: null, b: null, c: 3 }]);
  assert.deepEqual(parseCsv(text, { cast: false }), [{ a: "1", b: "", c: "" }, {
    a: "",
    b: "",
    c: "3",
  }]);
});

Deno.test("dates and objects are written as ISO text and JSON", () => {
  const text = toCsv([{ when: new Date(Date.UTC(2024, 0, 2)), shape: [28, 28, 1] }]);
  assert.deepEqual(parseCsv(text), [{ when: "2024-01-02T00:00:00.000Z", shape: "[28,28,1]" }]);
});

Deno.test("columns set the order and reject unknown keys with a clear message", () => {
  assert.equal(toCsv([{ b: 2, a: 1 }], { columns: ["a", "b", "c"] }), "a,b,c\n1,2,\n");
  assert.equal(toCsv([{ b: 2, a: 1 }, { c: 3 }]), "b,a,c\n2,1,\n,,3\n");
  assert.equal(toCsv([], { columns: ["a", "b"] }), "a,b\n");
  assert.equal(toCsv([]), "");
  assert.throws(() => toCsv([{ a: 1 }, { a: 2, acuracy: 0.9 }], { columns: ["a", "accuracy"] }), {
    message: 'toCsv: row 1 has unknown column "acuracy"; allowed columns: a, accuracy',
  });
});

Deno.test("writeCsv and readCsv round-trip through a file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const rows = [{ variant: "none", seed: 0, acc: 0.98 }, {
      variant: "custom",
      seed: 1,
      acc: NaN,
    }];
    await writeCsv(`${dir}/out/summary.csv`, rows, { columns: ["variant", "seed", "acc"] });
    const back = await readCsv<{ variant: string; seed: number; acc: number }>(
      `${dir}/out/summary.csv`,
    );
    assert.deepEqual(back, rows);
    assert.deepEqual(Object.keys(back[0]), ["variant", "seed", "acc"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readCsv names the file when the CSV is malformed", async () => {
  const path = await Deno.makeTempFile({ suffix: ".csv" });
  try {
    await Deno.writeTextFile(path, "a,b\n1,2,3\n");
    await assert.rejects(() => readCsv(path), (error: Error) => {
      assert.ok(error.message.startsWith(`readCsv: could not parse ${path}: `), error.message);
      assert.match(error.message, /Invalid Record Length/);
      return true;
    });
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("appendCsvRows starts a file with a header and then only appends rows", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/log.csv`;
    await appendCsvRows(path, [{ step: 1, loss: 2.5 }], { columns: ["step", "loss"] });
    await appendCsvRows(path, [{ step: 2, loss: 1.5 }, { loss: 1 }]);
    assert.equal(await Deno.readTextFile(path), "step,loss\n1,2.5\n2,1.5\n,1\n");
    await assert.rejects(() => appendCsvRows(path, [{ step: 3, lr: 0.1 }]), {
      message: `appendCsvRows(${path}): row 0 has unknown column "lr"; allowed columns: step, loss`,
    });
    await assert.rejects(() => appendCsvRows(path, [], { columns: ["loss", "step"] }), {
      message: `appendCsvRows: columns must match the header of ${path}; received loss, step, ` +
        "the file has step, loss",
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
