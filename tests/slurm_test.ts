/**
 * The Slurm executor against a real one-node cluster (scripts/slurm_local.sh), with a shell
 * stand-in for the trial command: job arrays with an afterany collect job, a failing task, a
 * cancelled and resubmitted task, a requeued task, and the dry-run scripts.
 */
import assert from "node:assert/strict";
import {
  arraySpec,
  readSlurmRecord,
  releaseRequeuedLock,
  requeueSlurmTask,
  slurmScripts,
  splitShellWords,
  submitSlurm,
  takeStatusFlag,
  trialStatuses,
  unfinishedTrials,
} from "../lib/experiments/slurm.ts";
import { queuedJobs, waitFor, waitForJobs, withLocalSlurm } from "./_slurm_cluster.ts";
import { parseCsv } from "../lib/output/csv.ts";
import { formattedScalingDoc, renderScalingDoc, type ScalingRow } from "../scripts/scaling.ts";

/**
 * An experiment directory with `n` planned trials and a stand-in trial script: trial `i` runs
 * `behaviour` (shell, with $I the index, $T its directory, $E the experiment) and then writes
 * its result.json unless the behaviour exited.
 */
async function experiment(n: number, behaviour: string): Promise<{ dir: string; trial: string }> {
  const dir = await Deno.makeTempDir({ prefix: "bnlab-slurm-exp-" });
  await Deno.writeTextFile(
    `${dir}/plan.json`,
    JSON.stringify({
      trials: Array.from({ length: n }, (_, i) => ({ id: `t${i}`, dir: `trials/t${i}` })),
    }),
  );
  await Deno.writeTextFile(
    `${dir}/trial.sh`,
    [
      "set -eu",
      'I="$1"; E="$2"; T="$E/trials/t$I"; mkdir -p "$T"',
      'echo "trial $I starts"',
      behaviour,
      `printf '{"status":"done","index":%s}' "$I" > "$T/result.json"`,
      "",
    ].join("\n"),
  );
  return { dir, trial: `bash ${dir}/trial.sh "$SLURM_ARRAY_TASK_ID" ${dir}` };
}

/** Whether task `index`'s log holds `text`. */
async function logHas(dir: string, index: number, text: string): Promise<boolean> {
  return (await Deno.readTextFile(`${dir}/slurm/trial-${index}.log`).catch(() => "")).includes(
    text,
  );
}

/** The stand-in collect command: lists the result files it finds. */
function collect(dir: string): string {
  return `ls ${dir}/trials/*/result.json | wc -l > ${dir}/collected.txt`;
}

Deno.test("slurm: --dry-run scripts name the array, limit, logs, requeue and pass-through options", () => {
  const { trials, collect } = slurmScripts("/shared/exp dir", {
    indices: [0, 1, 2, 5],
    arrayLimit: 3,
    partition: "short",
    time: "0:30:00",
    cpusPerTask: 2,
    extra: `--qos=low --comment "two words"`,
    repoRoot: "/repo",
  });
  const directives = trials.split("\n").filter((l) => l.startsWith("#SBATCH"));
  assert.deepEqual(directives, [
    "#SBATCH --job-name=bnlab",
    "#SBATCH --array=0-2,5%3",
    "#SBATCH --chdir=/repo",
    "#SBATCH --output=/shared/exp dir/slurm/trial-%a.log",
    "#SBATCH --error=/shared/exp dir/slurm/trial-%a.log",
    "#SBATCH --open-mode=append",
    "#SBATCH --requeue",
    "#SBATCH --cpus-per-task=2",
    "#SBATCH --partition=short",
    "#SBATCH --time=0:30:00",
    "#SBATCH --qos=low",
    "#SBATCH --comment 'two words'",
  ]);
  assert.match(trials, /\$\{SLURM_RESTART_COUNT:-0\}/);
  // A restarted task first removes a run.lock its previous start left on another node.
  assert.match(
    trials,
    /^if \[ "\$\{SLURM_RESTART_COUNT:-0\}" != 0 \]; then\n {2}BNLAB_EXP_DIR='\/shared\/exp dir' deno eval '.*releaseRequeuedLock.*' \|\|$/m,
  );
  assert.match(
    trials,
    /^deno task --quiet trial '\/shared\/exp dir' --index "\$SLURM_ARRAY_TASK_ID" --quiet$/m,
  );
  assert.match(collect, /^#SBATCH --job-name=bnlab-collect$/m);
  assert.match(collect, /^#SBATCH --output=\/shared\/exp dir\/slurm\/collect.log$/m);
  assert.match(collect, /^deno task --quiet collect '\/shared\/exp dir'$/m);
  assert.doesNotMatch(collect, /--array|--cpus-per-task/);
});

Deno.test("slurm: bad options are rejected with what was received", () => {
  assert.throws(
    () => slurmScripts("/x", { indices: [0], arrayLimit: 0 }),
    { message: "slurmScripts: arrayLimit must be an integer >= 1, received 0" },
  );
  assert.throws(
    () => slurmScripts("relative", { indices: [0] }),
    { message: 'slurmScripts: expDir must be an absolute path, received "relative"' },
  );
  assert.throws(() => arraySpec([]), {
    message: "arraySpec: expected at least one index, received none",
  });
  assert.throws(() => arraySpec([1, -2]), {
    message: "arraySpec: indices must be integers >= 0, received -2",
  });
  assert.throws(() => takeStatusFlag(["--status"]), {
    message: '--status expects an experiment directory, received ""',
  });
  assert.throws(() => takeStatusFlag(["--status", "--quiet"]), {
    message: '--status expects an experiment directory, received "--quiet"',
  });
  assert.throws(() => splitShellWords(`--comment "open`), {
    message: `splitShellWords: unterminated " quote in "--comment \\"open"`,
  });
});

Deno.test("slurm: submitSlurm with dryRun submits nothing and returns both scripts", async () => {
  const { dir } = await experiment(3, "true");
  const result = await submitSlurm(dir, { dryRun: true });
  assert.deepEqual(result.indices, [0, 1, 2]);
  assert.equal(result.arrayJobId, undefined);
  assert.match(result.text, /#SBATCH --array=0-2%64/);
  assert.match(result.text, /--dependency=afterany:<array job id>/);
  assert.deepEqual((await readSlurmRecord(dir)).submissions, []);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("slurm: trialStatuses reads result.json, error.json and a live run.lock", async () => {
  const { dir } = await experiment(7, "true");
  const write = async (i: number, file: string, value: unknown) => {
    await Deno.mkdir(`${dir}/trials/t${i}`, { recursive: true });
    await Deno.writeTextFile(`${dir}/trials/t${i}/${file}`, JSON.stringify(value));
  };
  const now = new Date().toISOString();
  await write(0, "result.json", { status: "done" });
  await write(1, "result.json", { status: "diverged" });
  await write(2, "error.json", { message: "groups must divide 6, received 4", at: now });
  // This process holds trial 3; trial 4's owner is a pid that does not exist.
  await write(3, "run.lock", { pid: Deno.pid, host: Deno.hostname(), heartbeat: now });
  await write(4, "run.lock", { pid: 2 ** 30, host: Deno.hostname(), heartbeat: now });
  // Trial 5 was interrupted after two epochs: its checkpoint holds their records.
  await write(5, "run.lock", { pid: 2 ** 30, host: Deno.hostname(), heartbeat: now });
  await Deno.mkdir(`${dir}/trials/t5/checkpoint`);
  await Deno.writeTextFile(
    `${dir}/trials/t5/checkpoint/checkpoint.json`,
    JSON.stringify({ state: { records: [{ epoch: 0 }, { epoch: 1 }] } }),
  );
  // Trial 6's checkpoint path is a file: unreadable, it leaves the trial missing.
  await write(6, "checkpoint", "");
  const statuses = await trialStatuses(dir);
  assert.deepEqual(statuses.map((s) => s.state), [
    "done",
    "diverged",
    "failed",
    "running",
    "missing",
    "stopped",
    "missing",
  ]);
  assert.equal(statuses[2].detail, "groups must divide 6, received 4");
  assert.equal(statuses[5].detail, "after epoch 2");
  assert.equal(statuses[0].dir, `${dir}/trials/t0`);
  assert.deepEqual(unfinishedTrials(statuses), [2, 4, 5, 6]);
  // A lock of this host is left to the trial; a bad index is refused.
  assert.equal(await releaseRequeuedLock(dir, 3), false);
  await assert.rejects(() => releaseRequeuedLock(dir, 7), {
    message:
      `releaseRequeuedLock: index must be a trial of ${dir}/plan.json, in [0, 6], received 7`,
  });
  await Deno.remove(dir, { recursive: true });
});

Deno.test({
  name: "slurm: a real one-node cluster runs arrays, failures, cancels, resubmits and requeues",
  async fn(t) {
    await withLocalSlurm(async () => {
      await t.step("array + afterany collect: every task runs, then the collect job", async () => {
        const { dir, trial } = await experiment(4, "true");
        const job = await submitSlurm(dir, {
          trialCommand: trial,
          collectCommand: collect(dir),
          arrayLimit: 2,
          partition: "local",
          time: "0:05:00",
          cpusPerTask: 1,
          extra: `--comment 'bnlab test'`,
        });
        assert.match(job.arrayJobId!, /^\d+$/);
        // The pass-through options reached Slurm.
        const shown = await new Deno.Command("scontrol", {
          args: ["show", "job", job.collectJobId!],
          stdout: "piped",
        }).output();
        const record = new TextDecoder().decode(shown.stdout);
        for (const field of ["Partition=local", "TimeLimit=00:05:00", "Comment=bnlab test"]) {
          assert.ok(record.includes(field), `scontrol show job lacks ${field}:\n${record}`);
        }
        assert.match(record, new RegExp(`Dependency=afterany:${job.arrayJobId}_\\*`));
        await waitForJobs([job.arrayJobId!, job.collectJobId!]);
        const statuses = await trialStatuses(dir);
        assert.deepEqual(statuses.map((s) => s.state), ["done", "done", "done", "done"]);
        assert.equal((await Deno.readTextFile(`${dir}/collected.txt`)).trim(), "4");
        const log = await Deno.readTextFile(`${dir}/slurm/trial-3.log`);
        assert.match(log, new RegExp(`job ${job.arrayJobId}_3 on \\S+, restart 0`));
        assert.match(log, /trial 3 starts/);
        assert.deepEqual((await readSlurmRecord(dir)).submissions.map((s) => s.arrayJobId), [
          job.arrayJobId,
        ]);
        await Deno.remove(dir, { recursive: true });
      });

      await t.step("a failing task leaves the others finished and --status names it", async () => {
        const { dir, trial } = await experiment(
          4,
          [
            `if [ "$I" = 1 ]; then echo '{"message":"lr must be > 0, received -1"}' > "$T/error.json"; exit 3; fi`,
            `if [ "$I" = 2 ]; then exit 4; fi`,
          ].join("\n"),
        );
        const job = await submitSlurm(dir, { trialCommand: trial, collectCommand: collect(dir) });
        await waitForJobs([job.arrayJobId!, job.collectJobId!]);
        const statuses = await trialStatuses(dir);
        assert.deepEqual(statuses.map((s) => s.state), ["done", "failed", "failed", "done"]);
        assert.equal(statuses[1].detail, "lr must be > 0, received -1");
        assert.equal(statuses[1].log, `${dir}/slurm/trial-1.log`);
        assert.equal(statuses[2].detail, "JobState=FAILED Reason=NonZeroExitCode ExitCode=4:0");
        assert.equal(statuses[2].jobId, `${job.arrayJobId}_2`);
        // afterany: the collect job ran although tasks failed.
        assert.equal((await Deno.readTextFile(`${dir}/collected.txt`)).trim(), "2");
        assert.deepEqual(unfinishedTrials(statuses), [1, 2]);
        await Deno.remove(dir, { recursive: true });
      });

      await t.step("scancel of one task, then a resubmission of what is missing", async () => {
        // Trial 2 hangs until the marker file exists.
        const { dir, trial } = await experiment(
          3,
          `if [ "$I" = 2 ] && [ ! -f "$E/release" ]; then sleep 120; fi`,
        );
        const first = await submitSlurm(dir, { trialCommand: trial, collectCommand: collect(dir) });
        const task = `${first.arrayJobId}_2`;
        // Running in Slurm's queue comes before the script's first line: wait for the trial.
        await waitFor(`${task} to run its trial`, () => logHas(dir, 2, "trial 2 starts"));
        assert.equal((await trialStatuses(dir))[2].state, "running");
        await waitFor(
          "trials 0 and 1 to finish",
          async () => (await trialStatuses(dir)).slice(0, 2).every((s) => s.state === "done"),
        );
        const scancel = await new Deno.Command("scancel", { args: [task] }).output();
        assert.ok(scancel.success, "scancel failed");
        await waitForJobs([first.arrayJobId!, first.collectJobId!]);
        const cancelled = (await trialStatuses(dir))[2];
        assert.equal(cancelled.state, "failed");
        assert.match(cancelled.detail!, /^JobState=CANCELLED /);

        await Deno.writeTextFile(`${dir}/release`, "");
        const missing = unfinishedTrials(await trialStatuses(dir));
        assert.deepEqual(missing, [2]);
        const second = await submitSlurm(dir, {
          indices: missing,
          trialCommand: trial,
          collectCommand: collect(dir),
        });
        assert.match(second.scripts.trials, /^#SBATCH --array=2%64$/m);
        await waitForJobs([second.arrayJobId!, second.collectJobId!]);
        assert.deepEqual((await trialStatuses(dir)).map((s) => s.state), ["done", "done", "done"]);
        assert.equal((await trialStatuses(dir))[2].jobId, `${second.arrayJobId}_2`);
        // Append mode: the resubmitted task added to the cancelled one's log.
        const log = await Deno.readTextFile(`${dir}/slurm/trial-2.log`);
        assert.equal(log.match(/trial 2 starts/g)?.length, 2);
        assert.match(log, /CANCELLED/);
        assert.equal((await readSlurmRecord(dir)).submissions.length, 2);
        await Deno.remove(dir, { recursive: true });
      });

      await t.step("a requeued task restarts at once and keeps its log", async () => {
        // The first start hangs; a restart ($SLURM_RESTART_COUNT > 0) finishes.
        const { dir, trial } = await experiment(
          1,
          `if [ "\${SLURM_RESTART_COUNT:-0}" = 0 ]; then sleep 120; fi`,
        );
        const job = await submitSlurm(dir, { trialCommand: trial, collectCommand: collect(dir) });
        const task = `${job.arrayJobId}_0`;
        await waitFor(`${task} to run its trial`, () => logHas(dir, 0, "trial 0 starts"));
        assert.equal((await trialStatuses(dir))[0].state, "running");
        const requeued = Date.now();
        await requeueSlurmTask(task);
        await waitForJobs([task, job.collectJobId!], 20_000);
        // Without StartTime=now the restart would wait about two minutes.
        assert.ok(Date.now() - requeued < 20_000);
        assert.deepEqual((await trialStatuses(dir)).map((s) => s.state), ["done"]);
        const log = await Deno.readTextFile(`${dir}/slurm/trial-0.log`);
        assert.match(log, /restart 0"?\n/);
        assert.match(log, /restart 1"?\n/);
        assert.equal(log.match(/trial 0 starts/g)?.length, 2);
        assert.deepEqual(await queuedJobs(), []);
        await Deno.remove(dir, { recursive: true });
      });
    });
  },
});

Deno.test("slurm: docs/scaling.md is the render of docs/scaling.csv", async () => {
  const root = new URL("../", import.meta.url).pathname;
  const rows = parseCsv(await Deno.readTextFile(`${root}/docs/scaling.csv`));
  const text = await formattedScalingDoc(rows as unknown as ScalingRow[]);
  assert.equal(await Deno.readTextFile(`${root}/docs/scaling.md`), text);
  assert.throws(() => renderScalingDoc([]), {
    message: "renderScalingDoc: docs/scaling.csv must have a row for t_smoke, received no rows",
  });
});
