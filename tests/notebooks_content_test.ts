import assert from "node:assert/strict";

/** The notebooks whose committed outputs these checks read. */
const _NOTEBOOKS = [
  "00_smoke.ipynb",
  "01_bn_layer.ipynb",
  "02_reproduce_report.ipynb",
  "03_momentum_sweep.ipynb",
] as const;

interface _Output {
  output_type: string;
  text?: string | string[];
  data?: Record<string, string | string[]>;
}

interface _Cell {
  cell_type: "markdown" | "code";
  source: string | string[];
  outputs?: _Output[];
}

async function _cells(name: string): Promise<_Cell[]> {
  const url = new URL(`../notebooks/${name}`, import.meta.url);
  return JSON.parse(await Deno.readTextFile(url)).cells;
}

const _text = (value: string | string[] | undefined) =>
  Array.isArray(value) ? value.join("") : value ?? "";

for (const name of _NOTEBOOKS) {
  Deno.test(`${name}: says how to run it, keeps cells short, ends with a conclusion`, async () => {
    const cells = await _cells(name);
    assert.equal(cells[0].cell_type, "markdown");
    assert.match(_text(cells[0].source), /How to run: /);
    for (const cell of cells.filter((c) => c.cell_type === "code")) {
      const lines = _text(cell.source).split("\n").length;
      assert.ok(lines <= 30, `a code cell of ${lines} lines: ${_text(cell.source).slice(0, 60)}`);
    }
    const last = cells.at(-1)!;
    const conclusion = _text(last.outputs?.at(-1)?.data?.["text/markdown"]);
    assert.ok(conclusion.length > 80, `the last cell shows a written conclusion: ${conclusion}`);
    assert.match(conclusion, /\d/, "the conclusion gives numbers");
  });

  Deno.test(`${name}: outputs show no machine paths or raw objects; every SVG has a PNG`, async () => {
    for (const cell of await _cells(name)) {
      for (const output of cell.outputs ?? []) {
        const text = _text(output.text) +
          Object.entries(output.data ?? {})
            .filter(([mime]) => mime.startsWith("text/"))
            .map(([, value]) => _text(value)).join("");
        assert.doesNotMatch(text, /\/(usr|home|tmp|work|root)\//, "a machine path in an output");
        assert.notEqual(output.output_type, "execute_result", `a raw value shown: ${text}`);
        assert.notEqual(output.output_type, "error", `an error: ${text}`);
        if (output.data?.["image/svg+xml"]) {
          assert.match(_text(output.data["image/png"]), /^iVBORw0KGgo/, "the SVG's PNG rendition");
        }
      }
    }
  });
}

for (const name of ["02_reproduce_report.ipynb", "03_momentum_sweep.ipynb"]) {
  Deno.test(`${name} answers whether the momentum explains 92% vs 96%, in words`, async () => {
    const cells = await _cells(name);
    const conclusion = _text(cells.at(-1)!.outputs?.at(-1)?.data?.["text/markdown"]);
    assert.match(conclusion, /^\*\*(No|Yes): /);
    assert.match(conclusion, /percentage points/);
  });
}

Deno.test("notebook 02 states its protocol when it differs from the report's", async () => {
  const outputs = (await _cells("02_reproduce_report.ipynb")).flatMap((c) => c.outputs ?? []);
  const markdown = outputs.map((o) => _text(o.data?.["text/markdown"])).join("\n");
  assert.match(markdown, /uses the report's protocol|does not use the report's protocol:/);
});
