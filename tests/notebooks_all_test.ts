/**
 * Executes every notebook in notebooks/ headless through Jupyter with the Deno kernel, at the
 * `smoke` scale, so CI runs each notebook on every change. Results go to a temporary folder.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { describeFailure, findNotebooks, runNotebooks } from "../scripts/notebooks.ts";

const DIR = fileURLToPath(new URL("../notebooks/", import.meta.url));

for (const path of await findNotebooks(DIR)) {
  Deno.test(`notebook ${path.slice(DIR.length)} runs without error at the smoke scale`, async () => {
    const scratch = await Deno.makeTempDir({ prefix: "bnlab-notebook-" });
    const [result] = await runNotebooks([path], {
      outDir: scratch,
      timeoutSeconds: 600,
      env: { BNLAB_PRESET: "smoke", BNLAB_OUT: scratch },
      log: () => {},
    });
    assert.ok(result.ok, describeFailure(result));
  });
}
