/**
 * Worker processes that share a plan's trials (lib/experiments/shared_trials.ts): which trial
 * a worker takes and when it hands one over, a trial run in parts, failures and trials held
 * elsewhere. `deno task train --workers 2` with hand-overs: tests/train_cli_test.ts.
 */
import assert from "node:assert/strict";
import { collect } from "../lib/experiments/collect.ts";
import { type ExperimentConfig, resolveConfig } from "../lib/experiments/config.ts";
import { readRunResult } from "../lib/experiments/results_dir.ts";
import { prepareTrain, runExperiment, runLocal } from "../lib/experiments/runner.ts";
import { acquireRunLock, runLockHeld } from "../lib/experiments/run_lock.ts";
import {
  epochCosts,
  failedSince,
  HAND_OVER_EPOCHS,
  handOverDue,
  pickTrial,
  runSharedTrials,
} from "../lib/experiments/shared_trials.ts";
import { runTrialPart } from "../lib/experiments/trial.ts";
import { readCsv } from "../lib/output/csv.ts";

const TINY: Partial<ExperimentConfig> = {
  limit: 200,
  testLimit: 100,
  logEvery: 5,
};

Deno.test("pickTrial takes the waiting trial with the most training left, the lower index on a tie", () => {
  assert.equal(pickTrial([]), undefined);
  const trials = [
    { index: 3, epochCost: 1, epochsLeft: 12 },
    { index: 1, epochCost: 1.5, epochsLeft: 8 },
    { index: 2, epochCost: 2, epochsLeft: 5 },
  ];
  assert.equal(pickTrial(trials)?.index, 1); // 12 = 12 > 10: the lower index
  assert.equal(pickTrial(trials.slice(0, 1))?.index, 3);
  assert.equal(pickTrial([trials[0], trials[2]])?.index, 3);
});

Deno.test("epochCosts: timed trials cost their seconds; untimed ones their estimate at the timed ones' median rate", () => {
  assert.deepEqual(epochCosts([]), []);
  assert.deepEqual(epochCosts([{ estimate: 2 }, { estimate: 3 }]), [2, 3]);
  assert.deepEqual(epochCosts([{ estimate: 2, measured: 30 }, { estimate: 3 }]), [30, 45]);
  // Ratios 10, 20 and 40: the median, 20, prices the untimed trial.
  assert.deepEqual(
    epochCosts([
      { estimate: 1, measured: 10 },
      { estimate: 1, measured: 40 },
      { estimate: 2 },
      { estimate: 1, measured: 20 },
    ]),
    [10, 40, 40, 20],
  );
  // An even count: the mean of the middle two (15). A measurement of 0 or NaN is no timing.
  assert.deepEqual(
    epochCosts([{ estimate: 1, measured: 10 }, { estimate: 1, measured: 20 }, {
      estimate: 1,
      measured: NaN,
    }]),
    [10, 20, 15],
  );
});

Deno.test("handOverDue: once fewer trials wait than there are workers, for one more than HAND_OVER_EPOCHS of its own epochs behind", () => {
  const own = { index: 0, epochCost: 2, epochsLeft: 5 }; // 10 left, 2 per epoch
  const behind = (left: number) => [{ index: 1, epochCost: 1, epochsLeft: left }];
  assert.equal(handOverDue(own, [], 2), false);
  assert.equal(handOverDue(own, behind(10 + 2 * HAND_OVER_EPOCHS), 2), false);
  assert.equal(handOverDue(own, behind(10 + 2 * HAND_OVER_EPOCHS + 1), 2), true);
  // The furthest behind decides, whichever comes first.
  assert.equal(handOverDue(own, [...behind(3), ...behind(40)], 3), true);
  // As many waiting as workers: each worker finds one when its trial ends; no hand-over.
  assert.equal(handOverDue(own, [...behind(3), ...behind(40)], 2), false);
  assert.equal(handOverDue(own, behind(40), 1), false);
});

Deno.test("runTrialPart: a trial handed over after every epoch ends with the numbers of one call", async () => {
  const config = resolveConfig("smoke", { ...TINY, variants: ["bnlab"], epochs: 3 });
  const full = await Deno.makeTempDir({ prefix: "bnlab-whole-" });
  const [expected] = await runExperiment(config, { out: full });
  const parts = await Deno.makeTempDir({ prefix: "bnlab-parts-" });
  await prepareTrain(config, parts);
  const asked: number[] = [];
  const handOver = (epochsDone: number) => {
    asked.push(epochsDone);
    return true;
  };
  const run = `${parts}/runs/bnlab-seed0`;
  for (const done of [1, 2]) {
    assert.equal(await runTrialPart(parts, 0, { handOver }), undefined);
    assert.equal(await readRunResult(run), undefined);
    assert.equal(await runLockHeld(run), false, "a handed-over trial is unlocked");
    const checkpoint = JSON.parse(await Deno.readTextFile(`${run}/checkpoint/checkpoint.json`));
    assert.equal(checkpoint.state.epochsDone, done);
  }
  const result = await runTrialPart(parts, 0, { handOver });
  assert.deepEqual(asked, [1, 2], "not asked after the last epoch");
  const { wall_seconds: _a, ...got } = result!;
  const { wall_seconds: _b, ...want } = expected;
  assert.deepEqual(got, want);
  await collect(parts);
  assert.deepEqual(await readCsv(`${parts}/history.csv`), await readCsv(`${full}/history.csv`));
  const trial = JSON.parse(await Deno.readTextFile(`${run}/trial.json`));
  assert.equal(trial.starts.length, 3);
});

Deno.test("runSharedTrials: one worker runs the pool to the end; a trial another process holds is left to it", async () => {
  const config = resolveConfig("smoke", { ...TINY, variants: ["none", "bnlab"], epochs: 1 });
  const dir = await Deno.makeTempDir({ prefix: "bnlab-pool-" });
  const plan = await prepareTrain(config, dir);
  const [none, bnlab] = plan.trials;
  const held = await acquireRunLock(`${dir}/${bnlab.dir}`);
  const taken: number[] = [];
  try {
    const failed = await runSharedTrials(dir, plan, [none.index, bnlab.index], {
      worker: 0,
      workers: 1,
      epochCost: () => 1,
      runOptions: (index) => ({ afterEpoch: () => void taken.push(index) }),
    });
    assert.equal(failed, 0);
    assert.deepEqual(taken, [none.index, none.index]); // its epoch, then its result
    assert.ok(await readRunResult(`${dir}/${none.dir}`));
    assert.equal(await readRunResult(`${dir}/${bnlab.dir}`), undefined);
  } finally {
    await held.release();
  }
  await assert.rejects(
    () => runSharedTrials(dir, plan, [7], { worker: 0, workers: 1, epochCost: () => 1 }),
    { message: "runSharedTrials: pool indices must be in [0, 1], received 7" },
  );
});

Deno.test("runSharedTrials: a trial that failed in this execution is not taken again, one that failed before is", async () => {
  const config = resolveConfig("smoke", { ...TINY, variants: ["none", "bnlab"], epochs: 1 });
  const dir = await Deno.makeTempDir({ prefix: "bnlab-failed-" });
  const plan = await prepareTrain(config, dir);
  const [none, bnlab] = plan.trials;
  const since = Date.now();
  const failAt = async (at: number) => {
    await Deno.mkdir(`${dir}/${none.dir}`, { recursive: true });
    const error = { message: "an earlier failure", at: new Date(at).toISOString() };
    await Deno.writeTextFile(`${dir}/${none.dir}/error.json`, JSON.stringify(error));
  };
  const pool = [none.index, bnlab.index];
  const options = { worker: 0, workers: 2, epochCost: () => 1, since };
  await failAt(since + 1); // failed in this execution, in another worker
  assert.equal(await failedSince(`${dir}/${none.dir}`, since), true);
  assert.equal(await runSharedTrials(dir, plan, pool, options), 0);
  assert.equal(await readRunResult(`${dir}/${none.dir}`), undefined);
  assert.ok(await readRunResult(`${dir}/${bnlab.dir}`));
  await failAt(since - 60000); // failed in an earlier execution: retried, and its error cleared
  assert.equal(await failedSince(`${dir}/${none.dir}`, since), false);
  assert.equal(await runSharedTrials(dir, plan, pool, options), 0);
  assert.ok(await readRunResult(`${dir}/${none.dir}`));
  assert.equal(await failedSince(`${dir}/${none.dir}`, 0), false);
});

Deno.test("runSharedTrials: a trial whose checkpoint cannot be read fails alone; the others train", async () => {
  const config = resolveConfig("smoke", { ...TINY, variants: ["none", "bnlab"], epochs: 2 });
  const dir = await Deno.makeTempDir({ prefix: "bnlab-corrupt-" });
  const plan = await prepareTrain(config, dir);
  const [none, bnlab] = plan.trials;
  await Deno.mkdir(`${dir}/${none.dir}/checkpoint`, { recursive: true });
  await Deno.writeTextFile(`${dir}/${none.dir}/checkpoint/checkpoint.json`, "{ not json");
  const failures: string[] = [];
  const failed = await runSharedTrials(dir, plan, [none.index, bnlab.index], {
    worker: 0,
    workers: 1,
    epochCost: () => 1,
    onFailure: (trial, error) => failures.push(`${trial.id}: ${error.message}`),
  });
  assert.equal(failed, 1);
  assert.equal(failures.length, 1);
  assert.match(failures[0], /^none-seed0: .*checkpoint\.json/);
  assert.ok(await readRunResult(`${dir}/${bnlab.dir}`));
});

Deno.test("runLocal with workers names a trial that failed in one of them, with its message and error.json", async () => {
  const config = resolveConfig("smoke", { ...TINY, variants: ["none", "bnlab"], epochs: 1 });
  const dir = await Deno.makeTempDir({ prefix: "bnlab-fails-" });
  const plan = await prepareTrain(config, dir);
  const [none] = plan.trials;
  // A trial.json from another config: the trial refuses to resume under this one.
  await Deno.mkdir(`${dir}/${none.dir}`, { recursive: true });
  const other = { id: none.id, config: { ...none.config, lr: 0.5 }, starts: [] };
  await Deno.writeTextFile(`${dir}/${none.dir}/trial.json`, JSON.stringify(other));
  await assert.rejects(
    () => runLocal(dir, plan, { workers: 2 }),
    /^Error: a trial failed; .*none-seed0: .*trained with another config.*\(.*none-seed0\/error\.json\)$/s,
  );
  assert.ok(await readRunResult(`${dir}/${plan.trials[1].dir}`));
});

Deno.test("runLocal with workers names a trial the workers could not take: unfinished, held by another process", async () => {
  const config = resolveConfig("smoke", { ...TINY, variants: ["none", "bnlab"], epochs: 1 });
  const dir = await Deno.makeTempDir({ prefix: "bnlab-held-" });
  const plan = await prepareTrain(config, dir);
  const bnlabDir = `${dir}/${plan.trials[1].dir}`;
  // An error left by an earlier execution does not account for it.
  await Deno.mkdir(bnlabDir, { recursive: true });
  const stale = { message: "an earlier failure", at: new Date(Date.now() - 60000).toISOString() };
  await Deno.writeTextFile(`${bnlabDir}/error.json`, JSON.stringify(stale));
  const held = await acquireRunLock(bnlabDir);
  try {
    await assert.rejects(
      () => runLocal(dir, plan, { workers: 2 }),
      new RegExp(`bnlab-seed0: unfinished, held by process ${Deno.pid}`),
    );
    assert.ok(await readRunResult(`${dir}/${plan.trials[0].dir}`));
  } finally {
    await held.release();
  }
  // The sitting is recorded on the start its prepare added: its time, workers and trials.
  const record = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
  assert.equal(record.starts.length, 1);
  assert.ok(record.starts[0].seconds > 0);
  assert.equal(record.starts[0].workers, 2);
  assert.equal(record.starts[0].trials, 2);
});
