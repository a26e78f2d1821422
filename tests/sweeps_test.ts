import assert from "node:assert/strict";
import { resolveConfig } from "../lib/experiments/config.ts";
import { experimentProgress } from "../lib/experiments/progress_events.ts";
import { runSweep } from "../lib/experiments/runner.ts";
import {
  SWEEP_MOMENTA,
  type SweepRow,
  SWEEPS,
  writeSweepOutputs,
} from "../lib/experiments/sweeps.ts";
import { assignParts, othersEnded, takePartFlag } from "../lib/experiments/workers.ts";
import { buildPlan, trainTrials } from "../lib/experiments/plan.ts";
import { readCsv } from "../lib/output/csv.ts";

Deno.test("the momentum sweep: both conventions, identical training, twins agree, resumable", async () => {
  const base = resolveConfig("smoke", { limit: 120, testLimit: 60, logEvery: 3 });
  const trials = SWEEPS.momentum.trials(base);
  assert.equal(trials.length, 2 * SWEEP_MOMENTA.length);
  assert.ok(trials.some((t) => t.id === "keras-0.1")); // the report's hand-written layer
  assert.ok(trials.some((t) => t.id === "pytorch-0.1")); // PyTorch's default

  const out = await Deno.makeTempDir({ prefix: "bnlab-sweep-" });
  const { rows } = await runSweep(SWEEPS.momentum, base, { out }) as unknown as {
    rows: SweepRow[];
  };
  assert.equal(rows.length, trials.length);
  assert.deepEqual(await readCsv(`${out}/sweep.csv`), JSON.parse(JSON.stringify(rows)));
  assert.match(await Deno.readTextFile(`${out}/sweep.svg`), /^<svg/);

  // Momentum only touches the running statistics, never a training step.
  assert.ok(rows.every((r) => r.train_loss === rows[0].train_loss), "identical training loss");
  assert.ok(rows.every((r) => r.test_accuracy_batch === rows[0].test_accuracy_batch));
  // Keras m and PyTorch 1 − m are one setting written twice.
  for (const keras of rows.filter((r) => r.momentum_convention === "keras")) {
    const twin = rows.find((r) =>
      r.momentum_convention === "pytorch" && r.keras_momentum === keras.keras_momentum
    );
    assert.ok(twin, `pytorch twin of keras ${keras.momentum}`);
    assert.equal(twin.test_accuracy_running, keras.test_accuracy_running);
    assert.equal(twin.test_loss_running, keras.test_loss_running);
  }
  // A second pass finds everything finished and trains nothing.
  const started = performance.now();
  const again = await writeSweepOutputs(out);
  await runSweep(SWEEPS.momentum, base, { out });
  assert.deepEqual(again.rows, rows);
  assert.ok(performance.now() - started < 5000);
});

Deno.test("takePartFlag parses and removes --part i/N and rejects bad values", () => {
  const args = ["momentum", "--part=1/3", "--quiet"];
  assert.deepEqual(takePartFlag(args), { part: 1, of: 3 });
  assert.deepEqual(args, ["momentum", "--quiet"]);
  assert.equal(takePartFlag(["--quiet"]), undefined);
  assert.throws(() => takePartFlag(["--part", "3/3"]), {
    message: '--part expects i/N with 0 <= i < N, received "3/3"',
  });
});

Deno.test("assignParts: longest first to the least loaded worker, deterministic", () => {
  // LeNet's variants (none, custom, tfjs) on two workers: tfjs alone.
  assert.deepEqual(assignParts([1, 1.6, 1.8], 2), [1, 1, 0]);
  // Two seeds each: 3.6 / 3.2 / ... every worker's load within the largest job of the others.
  const costs = [1, 1, 1.6, 1.6, 1.8, 1.8];
  const parts = assignParts(costs, 2);
  const load = [0, 1].map((w) => costs.reduce((sum, c, i) => sum + (parts[i] === w ? c : 0), 0));
  assert.deepEqual(load, [4.4, 4.4]);
  // Equal costs: job by job, as index modulo workers.
  assert.deepEqual(assignParts([1, 1, 1, 1, 1], 3), [0, 1, 2, 0, 1]);
  assert.deepEqual(assignParts([2, 5], 4), [1, 0]);
  assert.deepEqual(assignParts([], 2), []);
  assert.throws(() => assignParts([1], 0), {
    message: "assignParts: of must be an integer >= 1, received 0",
  });
  assert.throws(() => assignParts([1, -1], 2), {
    message: "assignParts: costs must be positive numbers, received -1 at 1",
  });
});

Deno.test("progress lines name a sweep trial by its point and an experiment's by variant and seed", () => {
  const lines: string[] = [];
  const onEvent = experimentProgress({ update: () => {}, log: (l) => void lines.push(l) }, 1);
  onEvent({ type: "skipped", variant: "bnlab", seed: 0, trial: "bnlab-seed0" });
  onEvent({ type: "skipped", variant: "bnlab", seed: 0, trial: "lr-0.1-bnlab-seed0" });
  assert.deepEqual(lines, [
    "bnlab  seed 0: already finished, skipped",
    "lr-0.1-bnlab-seed0: already finished, skipped",
  ]);
});

Deno.test("othersEnded: a worker's siblings have ended when each of their trials has a result or an error", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bnlab-others-" });
  try {
    const plan = buildPlan("train", await trainTrials(resolveConfig("smoke"), dir));
    assert.equal(plan.trials.length, 3);
    const [mine, done, failed] = plan.trials;
    assert.equal(await othersEnded(dir, plan, [mine.index]), false);
    await Deno.mkdir(`${dir}/${done.dir}`, { recursive: true });
    await Deno.writeTextFile(`${dir}/${done.dir}/result.json`, "{}");
    assert.equal(await othersEnded(dir, plan, [mine.index]), false);
    await Deno.mkdir(`${dir}/${failed.dir}`, { recursive: true });
    await Deno.writeTextFile(`${dir}/${failed.dir}/error.json`, "{}");
    assert.equal(await othersEnded(dir, plan, [mine.index]), true);
    // Its own trials do not count, finished or not.
    assert.equal(await othersEnded(dir, plan, plan.trials.map((t) => t.index)), true);
    await Deno.remove(`${dir}/${done.dir}/result.json`);
    assert.equal(await othersEnded(dir, plan, [mine.index, failed.index]), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
