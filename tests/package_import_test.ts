import assert from "node:assert/strict";

const _MOD = new URL("../mod.ts", import.meta.url).href;

/** The program a separate project runs: bnlab by path, its wasm backend, one training step, a PNG. */
const _PROGRAM = `
import { createLeNet, initBackend, lineChart, loadMnist, svgToPng, train } from "bnlab";

const info = await initBackend("wasm");
const data = await loadMnist({ split: "train", limit: 32 });
const model = createLeNet({ normalization: "custom" });
const layers = model.layers.map((layer) => layer.getClassName());
const [record] = await train(model, data, { epochs: 1, batchSize: 32, lr: 0.01, logEvery: 1 });
const png = await svgToPng(lineChart([{ step: 1, loss: record.trainLoss }], { x: "step", y: "loss" }));
console.log(JSON.stringify({
  backend: info.name, layers, steps: record.step, loss: record.trainLoss, png: [...png.subarray(1, 4)],
}));
`;

Deno.test("a separate Deno project imports bnlab by path, starts wasm, trains a step with bnlab's BN and draws a PNG", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bnlab-user-" });
  try {
    await Deno.writeTextFile(
      `${dir}/deno.json`,
      JSON.stringify({ imports: { bnlab: _MOD } }, null, 2) + "\n",
    );
    await Deno.writeTextFile(`${dir}/main.ts`, _PROGRAM);
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", "main.ts"],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    const stderr = new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 0, `the project's deno run failed:\n${stderr}`);
    const lines = new TextDecoder().decode(output.stdout).trim().split("\n");
    const result = JSON.parse(lines[lines.length - 1]);
    assert.equal(result.backend, "wasm");
    assert.ok(result.layers.includes("BatchNorm"), `bnlab's BN is in the model: ${result.layers}`);
    assert.equal(result.steps, 1);
    assert.ok(Number.isFinite(result.loss) && result.loss > 0, `a finite loss: ${result.loss}`);
    assert.deepEqual(result.png, [80, 78, 71], "resvg's wasm is found too: a PNG is drawn");
    // The wasm binaries and MNIST came from bnlab's installation, not the project's directory.
    const entries = [];
    for await (const entry of Deno.readDir(dir)) entries.push(entry.name);
    assert.ok(!entries.includes("node_modules"), `nothing installed in the project: ${entries}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
