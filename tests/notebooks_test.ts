import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { describeFailure, runNotebooks } from "../scripts/notebooks.ts";

const _SMOKE = fileURLToPath(new URL("../notebooks/00_smoke.ipynb", import.meta.url));
const _PYTHON = Deno.env.get("BNLAB_PYTHON") ?? "/usr/bin/python3";

/** Whether Jupyter (nbclient) can be run; the tests below need it. */
function _hasJupyter(): boolean {
  try {
    return new Deno.Command(_PYTHON, {
      args: ["-c", "import nbclient, jupyter_client"],
      stdout: "null",
      stderr: "null",
    }).outputSync().success;
  } catch {
    return false;
  }
}

const _IGNORE = !_hasJupyter();
const _ESC = String.fromCharCode(27);
const _SKIPPED = _IGNORE ? ` (SKIPPED: no Jupyter: ${_PYTHON} cannot import nbclient)` : "";

/** A minimal Deno notebook with the given code cells, after a markdown cell. */
function _notebook(...cells: string[]): string {
  return JSON.stringify({
    nbformat: 4,
    nbformat_minor: 5,
    metadata: { kernelspec: { name: "deno", display_name: "Deno", language: "typescript" } },
    cells: [
      { cell_type: "markdown", id: "intro", metadata: {}, source: "# test notebook" },
      ...cells.map((source, i) => ({
        cell_type: "code",
        id: `code-${i}`,
        metadata: {},
        execution_count: null,
        outputs: [],
        source,
      })),
    ],
  });
}

Deno.test({
  name: `runNotebooks runs the smoke notebook: table, SVG + PNG chart and conclusion${_SKIPPED}`,
  ignore: _IGNORE,
  async fn() {
    const outDir = await Deno.makeTempDir();
    const lines: string[] = [];
    try {
      const [result] = await runNotebooks([_SMOKE], { outDir, log: (line) => lines.push(line) });
      assert.equal(result.ok, true, describeFailure(result));
      assert.equal(result.output, `${outDir}/00_smoke.ipynb`);
      assert.match(lines[0], /^ok {3}.*00_smoke\.ipynb {2}\d+\.\ds$/);
      const executed = JSON.parse(await Deno.readTextFile(result.output));
      const mimes = executed.cells.flatMap((cell: { outputs?: { data?: object }[] }) =>
        (cell.outputs ?? []).flatMap((output) => Object.keys(output.data ?? {}))
      );
      assert.ok(mimes.includes("text/html"), `outputs: ${mimes}`);
      assert.ok(mimes.includes("image/svg+xml"), `outputs: ${mimes}`);
      assert.ok(mimes.includes("image/png"), `outputs: ${mimes}`);
      assert.ok(mimes.includes("text/markdown"), `outputs: ${mimes}`); // the conclusion
      assert.equal(executed.metadata.language_info.name, "typescript");
    } finally {
      await Deno.remove(outDir, { recursive: true });
    }
  },
});

Deno.test({
  name: `runNotebooks reports the failing cell and its error, passes the environment${_SKIPPED}`,
  ignore: _IGNORE,
  async fn() {
    const dir = await Deno.makeTempDir();
    const lines: string[] = [];
    try {
      const failing = `${dir}/fails.ipynb`;
      const envCheck = `${dir}/env.ipynb`;
      await Deno.writeTextFile(
        failing,
        _notebook("const ok = 1;", 'throw new Error("deliberate failure in cell 3");', "ok"),
      );
      await Deno.writeTextFile(
        envCheck,
        _notebook(
          'const got = Deno.env.get("BNLAB_NOTEBOOK_TEST");\n' +
            'if (got !== "from the test") throw new Error(`environment not passed: ${got}`);',
        ),
      );
      const [failed, passed] = await runNotebooks([failing, envCheck], {
        env: { BNLAB_NOTEBOOK_TEST: "from the test" },
        log: (line) => lines.push(line),
      });
      assert.equal(failed.ok, false);
      assert.equal(failed.failure?.kind, "error");
      assert.equal(failed.failure?.cell, 3);
      assert.equal(failed.failure?.ename, "Error");
      assert.equal(failed.failure?.evalue, "deliberate failure in cell 3");
      assert.equal(failed.output, `${dir}/.executed/fails.ipynb`);
      assert.match(
        lines[0],
        /^FAIL .*fails\.ipynb {2}\d+\.\ds {2}cell 3: Error: deliberate failure/,
      );
      const text = describeFailure(failed);
      assert.match(text, /fails\.ipynb: cell 3 failed: Error: deliberate failure in cell 3/);
      assert.match(text, /--- cell source ---\nthrow new Error\("deliberate failure in cell 3"\);/);
      assert.ok(!text.includes("\x1b["), "no terminal colors");
      // The executed copy keeps the outputs up to the failure, the error included.
      const executed = JSON.parse(await Deno.readTextFile(failed.output));
      assert.equal(executed.cells[2].outputs[0].output_type, "error");
      assert.equal(passed.ok, true, describeFailure(passed));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: `runNotebooks --inplace writes outputs back only on success${_SKIPPED}`,
  ignore: _IGNORE,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const good = `${dir}/good.ipynb`;
      const bad = `${dir}/bad.ipynb`;
      await Deno.writeTextFile(good, _notebook("1 + 1"));
      const badText = _notebook("throw new Error('no')");
      await Deno.writeTextFile(bad, badText);
      const results = await runNotebooks([good, bad], { inplace: true, log: () => {} });
      assert.deepEqual(results.map((result) => result.ok), [true, false]);
      assert.equal(results[0].output, good);
      const executed = JSON.parse(await Deno.readTextFile(good));
      const shown = [executed.cells[1].outputs[0].data["text/plain"]].flat().join("");
      assert.equal(shown.replaceAll(_ESC, "").replace(/\[[0-9;]*m/g, ""), "2"); // Deno colors results
      assert.equal(await Deno.readTextFile(bad), badText, "a failed notebook is left as it was");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("runNotebooks rejects what is not a notebook before starting Jupyter", async () => {
  await assert.rejects(() => runNotebooks(["notes.md"]), {
    message: 'runNotebooks: expected .ipynb files, received "notes.md"',
  });
  await assert.rejects(() => runNotebooks(["/nonexistent/x.ipynb"]), {
    message: "runNotebooks: notebook not found: /nonexistent/x.ipynb",
  });
  await assert.rejects(() => runNotebooks(["/nonexistent/x.ipynb"], { timeoutSeconds: 0 }), {
    message: "runNotebooks: timeoutSeconds must be a positive number, received 0",
  });
});
