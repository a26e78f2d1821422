import assert from "node:assert/strict";
import { settingTitle, writeExperimentOutputs } from "../lib/experiments/report_files.ts";
import { resolveConfig } from "../lib/experiments/config.ts";
import { buildPlan, writePlan } from "../lib/experiments/plan.ts";
import {
  gridSweep,
  parseGrids,
  readSweepOutputs,
  sweepTrials,
  writeSweepOutputs,
} from "../lib/experiments/sweeps.ts";

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47];

async function copyOf(name: string): Promise<string | undefined> {
  const source = new URL(`../results/${name}`, import.meta.url).pathname;
  try {
    await Deno.stat(source);
  } catch {
    return undefined;
  }
  const copy = await Deno.makeTempDir({ prefix: `bnlab-charts-${name}-` });
  await new Deno.Command("cp", { args: ["-r", `${source}/.`, copy] }).output();
  for (const file of ["curves.svg", "curves.png", "accuracy.svg", "accuracy.png", "sweep.svg"]) {
    await Deno.remove(`${copy}/${file}`).catch(() => {});
  }
  return copy;
}

/** Removes the directory when the test's scope ends. */
function removedAfter(dir: string): Disposable {
  return { [Symbol.dispose]: () => Deno.removeSync(dir, { recursive: true }) };
}

async function assertPng(path: string): Promise<void> {
  const bytes = await Deno.readFile(path);
  assert.deepEqual([...bytes.slice(0, 4)], PNG_SIGNATURE, `${path} is a PNG`);
}

Deno.test("settingTitle names model, dataset, batch, lr, activation and epochs; leaves out varied fields", () => {
  const config = {
    model: "lenet",
    dataset: "mnist",
    batchSize: 64,
    lr: 0.01,
    activation: "sigmoid",
    epochs: 10,
  } as const;
  assert.equal(settingTitle(config), "LeNet on MNIST, batch 64, lr 0.01, sigmoid, 10 epochs");
  assert.equal(
    settingTitle({ ...config, model: "resnet20", dataset: "fashion-mnist", epochs: 1 }, ["lr"]),
    "ResNet-20 on Fashion-MNIST, batch 64, sigmoid, 1 epoch",
  );
  assert.equal(
    settingTitle(config, ["model", "batchSize"]),
    "on MNIST, lr 0.01, sigmoid, 10 epochs",
  );
});

Deno.test("a train experiment gets curves.svg/png (loss in epochs, smoothed, ln 10) and accuracy.svg/png", async () => {
  const out = await copyOf("report");
  if (!out) return;
  using _ = removedAfter(out);
  await writeExperimentOutputs(out);
  const curves = await Deno.readTextFile(`${out}/curves.svg`);
  assert.match(curves, /^<svg/);
  assert.match(curves, /Training loss: LeNet on MNIST, batch \d+, lr [\d.]+, \w+, \d+ epochs?/);
  assert.match(curves, /chance: ln 10/);
  assert.match(curves, /epoch/);
  // One legend entry per variant, each with a visible stroke.
  const legend = curves.match(/aria-label="legend item"/g) ?? [];
  assert.equal(legend.length, 3);
  assert.doesNotMatch(curves, /stroke="none"/);
  const accuracy = await Deno.readTextFile(`${out}/accuracy.svg`);
  assert.match(accuracy, /Test accuracy per epoch: LeNet on MNIST/);
  assert.match(accuracy, /test accuracy \(%\)/);
  await assertPng(`${out}/curves.png`);
  await assertPng(`${out}/accuracy.png`);
});

Deno.test("a momentum sweep gets sweep.svg/png on a log momentum axis; a diverged trial is drawn as ×", async () => {
  const out = await copyOf("momentum");
  if (!out) return;
  using _ = removedAfter(out);
  await writeSweepOutputs(out);
  const svg = await Deno.readTextFile(`${out}/sweep.svg`);
  assert.match(svg, /Test accuracy vs BN momentum: LeNet on MNIST/);
  assert.match(svg, /log scale/);
  assert.doesNotMatch(svg, /diverged/);
  await assertPng(`${out}/sweep.png`);

  const runs = `${out}/trials/keras-0.5/runs`;
  const [run] = [...Deno.readDirSync(runs)].map((entry) => entry.name); // bnlab-seed0 (custom- in older runs)
  const result = `${runs}/${run}/result.json`;
  const record = JSON.parse(await Deno.readTextFile(result));
  await Deno.writeTextFile(
    result,
    JSON.stringify({
      ...record,
      status: "diverged",
      test_accuracy: null,
      test_accuracy_batch_stats: null,
      test_loss: null,
    }),
  );
  await writeSweepOutputs(out);
  assert.match(await Deno.readTextFile(`${out}/sweep.svg`), /× at the top: 1 run diverged/);
});

Deno.test("a learning-rate grid's sweep.svg: log x, error bars over seeds, a diverged seed as ×, lr left out of the title", async () => {
  const out = await Deno.makeTempDir({ prefix: "bnlab-charts-grid-" });
  using _ = removedAfter(out);
  const base = resolveConfig("smoke", { variants: ["bnlab"], seeds: 2, batchSize: 32 });
  const trials = await sweepTrials(gridSweep(parseGrids(["lr=0.001,0.01,0.1"])), base, out);
  await writePlan(out, buildPlan("sweep", trials));
  // Finished results written by hand: accuracy rises with lr; seed 1 of lr 0.1 diverged.
  for (const [i, trial] of trials.entries()) {
    const { lr, seed } = trial.config;
    const diverged = lr === 0.1 && seed === 1;
    await Deno.mkdir(`${out}/${trial.dir}`, { recursive: true });
    await Deno.writeTextFile(
      `${out}/${trial.dir}/result.json`,
      JSON.stringify({
        variant: "bnlab",
        seed,
        epochs: 1,
        test_accuracy: diverged ? null : 0.9 + lr / 2 + i / 1000,
        test_accuracy_batch_stats: null,
        test_loss: diverged ? null : 0.3,
        train_loss: diverged ? null : 0.3,
        wall_seconds: 1,
        backend: "wasm",
        status: diverged ? "diverged" : "done",
      }),
    );
  }
  const { rows } = await writeSweepOutputs(out);
  assert.equal(rows.length, 6);
  const svg = await Deno.readTextFile(`${out}/sweep.svg`);
  assert.match(svg, /Test accuracy vs lr: LeNet on MNIST, batch 32, \w+, 1 epoch</);
  assert.match(svg, /lr \(log scale\)/);
  assert.match(svg, /× at the top: 1 run diverged/);
  assert.match(svg, /bars: ± one standard deviation/);
  await assertPng(`${out}/sweep.png`);
  // The read-only variant draws the same chart and writes nothing.
  await Deno.remove(`${out}/sweep.svg`);
  const read = await readSweepOutputs(out);
  assert.equal(read.chart, svg.trimEnd());
  await assert.rejects(() => Deno.stat(`${out}/sweep.svg`), Deno.errors.NotFound);
});
