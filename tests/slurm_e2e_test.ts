/**
 * `--executor slurm` end to end on a real one-node cluster (scripts/slurm_local.sh), at a tiny
 * smoke scale: a grid's CSVs equal the local executor's; a cancelled task resumed with
 * `--resume` and a requeued task give an uninterrupted run's numbers; a failing trial leaves
 * the others finished and `--status` names it; `--dry-run` submits nothing.
 */
import assert from "node:assert/strict";
import { parseCsv } from "../lib/output/csv.ts";
import { readSlurmRecord, requeueSlurmTask, trialStatuses } from "../lib/experiments/slurm.ts";
import { queuedJobs, waitFor, waitForJobs, withLocalSlurm } from "./_slurm_cluster.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const TINY = ["--preset", "smoke", "--variants", "bnlab", "--test-limit", "200"];

/** Runs `deno task <task> …args` from the repository root; returns stdout and stderr. */
async function task(
  name: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", name, ...args],
    cwd: ROOT,
    env: { BNLAB_BLAS_THREADS: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

async function ok(name: string, args: string[]): Promise<string> {
  const result = await task(name, args);
  assert.equal(result.code, 0, `deno task ${name} ${args.join(" ")} failed:\n${result.stderr}`);
  return result.stdout + result.stderr;
}

/** Waits for every job an experiment submitted (arrays and collect jobs). */
async function waitForExperiment(dir: string, timeoutMs = 60_000): Promise<void> {
  const { submissions } = await readSlurmRecord(dir);
  assert.ok(submissions.length > 0, `${dir} has no Slurm submission`);
  await waitForJobs(submissions.flatMap((s) => [s.arrayJobId!, s.collectJobId!]), timeoutMs);
}

/** A CSV's rows without its wall-time columns. */
async function numbers(path: string): Promise<Record<string, unknown>[]> {
  return parseCsv(await Deno.readTextFile(path)).map((row) =>
    Object.fromEntries(Object.entries(row).filter(([column]) => !column.includes("wall")))
  );
}

/** Epochs a trial's checkpoint holds (0 before the first). */
async function epochsDone(trialDir: string): Promise<number> {
  try {
    const manifest = JSON.parse(await Deno.readTextFile(`${trialDir}/checkpoint/checkpoint.json`));
    return manifest.state?.epochsDone ?? 0;
  } catch {
    return 0;
  }
}

Deno.test({
  name: "slurm e2e: --executor slurm against a real cluster",
  async fn(t) {
    const tmp = await Deno.makeTempDir({ prefix: "bnlab-slurm-e2e-" });
    try {
      await withLocalSlurm(async () => {
        await t.step("--dry-run prints the batch script and submits nothing", async () => {
          const out = `${tmp}/dry`;
          const text = await ok("sweep", [
            "--grid",
            "lr=0.01,0.1",
            ...TINY,
            "--limit",
            "200",
            "--executor",
            "slurm",
            "--slurm-array-limit",
            "3",
            "--slurm-time",
            "0:10:00",
            "--dry-run",
            "--out",
            out,
          ]);
          assert.match(text, /^#SBATCH --array=0-1%3$/m);
          assert.match(text, /^#SBATCH --time=0:10:00$/m);
          assert.match(
            text,
            /deno task --quiet trial '[^']*\/dry' --index "\$SLURM_ARRAY_TASK_ID"/,
          );
          assert.deepEqual((await readSlurmRecord(out)).submissions, []);
          assert.deepEqual(await queuedJobs(), []);
        });

        await t.step("a 2×2 grid × 2 seeds gives the local executor's CSVs", async () => {
          const grid = [
            "--grid",
            "lr=0.01,0.1",
            "--grid",
            "batch-size=20,50",
            "--seeds",
            "2",
            ...TINY,
            "--limit",
            "200",
          ];
          const slurm = `${tmp}/grid-slurm`;
          const local = `${tmp}/grid-local`;
          const submitted = await ok("sweep", [...grid, "--executor", "slurm", "--out", slurm]);
          assert.match(submitted, /submitted job array \d+ \(8 of 8 trials/);
          await ok("sweep", [...grid, "--workers", "1", "--out", local]);
          await waitForExperiment(slurm);
          const status = await ok("sweep", ["--status", slurm]);
          assert.match(status, /^8 trials: 8 done$/m);
          for (const file of ["sweep.csv", "sweep_table.csv"]) {
            const rows = await numbers(`${slurm}/${file}`);
            assert.equal(rows.length, file === "sweep.csv" ? 8 : 4);
            assert.deepEqual(rows, await numbers(`${local}/${file}`), file);
          }
          // Everything finished: a resume submits nothing.
          const again = await ok("sweep", ["--resume", slurm, "--executor", "slurm"]);
          assert.match(again, /nothing to submit: of 8 trials, 8 finished/);
          assert.equal((await readSlurmRecord(slurm)).submissions.length, 1);
        });

        await t.step(
          "a failing and a diverging trial leave the others finished; --status names them",
          async () => {
            // Every bad value the planner can see is refused before submission, so the failure
            // here comes from the filesystem: trial 1's checkpoint path is a file. lr 1e9 diverges.
            const out = `${tmp}/failing`;
            const grid = ["--grid", "lr=0.01,0.1,1e9", ...TINY, "--limit", "200"];
            await ok("sweep", [...grid, "--executor", "slurm", "--dry-run", "--out", out]);
            const plan = JSON.parse(await Deno.readTextFile(`${out}/plan.json`));
            const broken = `${out}/${plan.trials[1].dir}`;
            await Deno.mkdir(broken, { recursive: true });
            await Deno.writeTextFile(`${broken}/checkpoint`, "");
            await ok("sweep", ["--resume", out, "--executor", "slurm"]);
            await waitForExperiment(out);
            const status = await ok("sweep", ["--status", out]);
            assert.match(status, /^3 trials: 1 done, 1 failed, 1 diverged$/m);
            assert.match(
              status,
              /^#1 lr-0\.1-bnlab-seed0: failed: loadCheckpoint: cannot read .*Not a directory.* \(job \d+_1, log .*\/failing\/slurm\/trial-1\.log\)$/m,
            );
            assert.match(status, /^#2 lr-1000000000-bnlab-seed0: diverged \(job \d+_2, log /m);
            const rows = await numbers(`${out}/sweep.csv`);
            assert.deepEqual(rows.map((r) => [r.lr, r.status]), [[0.01, "done"], [
              1e9,
              "diverged",
            ]]);
            // The failed task's log names its error.json.
            assert.match(await Deno.readTextFile(`${out}/slurm/trial-1.log`), /error\.json/);
          },
        );

        await t.step(
          "a cancelled task resumed with --resume and a requeued task give the uninterrupted numbers",
          async () => {
            const run = [...TINY, "--limit", "1000", "--epochs", "4", "--seeds", "2"];
            const out = `${tmp}/interrupted`;
            const local = `${tmp}/uninterrupted`;
            await ok("train", [...run, "--executor", "slurm", "--out", out]);
            const [array] = (await readSlurmRecord(out)).submissions.map((s) => s.arrayJobId!);
            const dirs = (await trialStatuses(out)).map((s) => s.dir);
            // Act once each trial has checkpointed its first epoch and before it finishes.
            await waitFor(
              "both trials to checkpoint an epoch",
              async () => (await epochsDone(dirs[0])) >= 1 && (await epochsDone(dirs[1])) >= 1,
              60_000,
            );
            const cancel = await new Deno.Command("scancel", { args: [`${array}_0`] }).output();
            assert.ok(cancel.success);
            await requeueSlurmTask(`${array}_1`);
            const local_ = ok("train", [...run, "--workers", "1", "--out", local]);
            await waitForJobs([`${array}_0`, `${array}_1`], 60_000);
            const afterCancel = await trialStatuses(out);
            assert.deepEqual(afterCancel.map((s) => s.state), ["failed", "done"]);
            assert.match(afterCancel[0].detail!, /^JobState=CANCELLED /);
            assert.ok((await epochsDone(dirs[0])) < 4, "the cancelled trial had finished");

            // As if the cancelled task had run on another node: its lock stays until resubmission.
            const foreign = {
              pid: 1,
              host: "node-elsewhere",
              token: "t",
              heartbeat: new Date().toISOString(),
            };
            await Deno.writeTextFile(`${dirs[0]}/run.lock`, JSON.stringify(foreign));
            const resumed = await ok("train", ["--resume", out, "--executor", "slurm"]);
            assert.match(
              resumed,
              /removed .*run\.lock of process 1 on node-elsewhere, left by Slurm task \d+_0/,
            );
            assert.match(resumed, /submitted job array \d+ \(1 of 2 trials/);
            await waitForExperiment(out);
            await local_;
            assert.match(await ok("train", ["--status", out]), /^2 trials: 2 done$/m);
            for (const file of ["summary.csv", "history.csv", "table.csv"]) {
              assert.deepEqual(
                await numbers(`${out}/${file}`),
                await numbers(`${local}/${file}`),
                file,
              );
            }
            const requeuedLog = await Deno.readTextFile(`${out}/slurm/trial-1.log`);
            assert.match(requeuedLog, /restart 0\n/);
            assert.match(requeuedLog, /restart 1\n/);
            const cancelledLog = await Deno.readTextFile(`${out}/slurm/trial-0.log`);
            assert.match(cancelledLog, /CANCELLED/);
            assert.equal(cancelledLog.match(/\[bnlab\] .* job \d+_0 on /g)?.length, 2);
          },
        );
      });
    } finally {
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
    }
  },
});
