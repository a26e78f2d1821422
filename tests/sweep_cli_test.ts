/**
 * `deno task sweep`, `deno task trial` and `deno task collect` end to end: a grid through
 * worker processes, the trial and collect commands on its plan, resumes checked before
 * anything is written, and flags a named sweep sets.
 */
import assert from "node:assert/strict";
import { run } from "./_cli.ts";
import { readCsv } from "../lib/output/csv.ts";

const exists = (path: string) => Deno.stat(path).then(() => true, () => false);
const TINY = ["--preset", "smoke", "--limit", "100", "--test-limit", "40", "--quiet"];

Deno.test("sweep --grid in worker processes; trial and collect on its plan; resume checks first", async () => {
  const out = `${await Deno.makeTempDir({ prefix: "bnlab-sweep-cli-" })}/grid`;
  const sweep = await run("sweep", [
    "--grid",
    "lr=0.1,0.01",
    "--grid=variants=none",
    ...TINY,
    "--out",
    out,
    "--workers",
    "8",
  ]);
  assert.equal(sweep.code, 0, sweep.stderr);
  // Two trials: at most two workers, whatever --workers asks.
  assert.match(sweep.stderr, /\[worker 1\]/);
  assert.doesNotMatch(sweep.stderr, /\[worker 2\]/);
  const rows = await readCsv(`${out}/sweep.csv`);
  assert.deepEqual(rows.map((r) => [r.trial, r.lr, r.variants]), [
    ["lr-0.1_variants-none", 0.1, "none"],
    ["lr-0.01_variants-none", 0.01, "none"],
  ]);
  for (const file of ["sweep_table.csv", "sweep.svg", "sweep.png", "sweep.json", "plan.json"]) {
    assert.ok(await exists(`${out}/${file}`), file);
  }

  // The same grid in this process gives the same CSV: one runTrial and one collect for both.
  const inProcess = `${out}-1`;
  const one = await run("sweep", [
    "--grid",
    "lr=0.1,0.01",
    "--grid=variants=none",
    ...TINY,
    "--out",
    inProcess,
    "--workers",
    "1",
  ]);
  assert.equal(one.code, 0, one.stderr);
  const timeless = (rows: Record<string, unknown>[]) =>
    rows.map(({ wall_seconds: _, ...rest }) => rest);
  assert.deepEqual(timeless(await readCsv(`${inProcess}/sweep.csv`)), timeless(rows));

  const trial = await run("trial", [out, "--index", "1"]);
  assert.equal(trial.code, 0, trial.stderr);
  assert.match(trial.stderr, /already finished, skipped/);
  const badIndex = await run("trial", [out, "--index", "2"]);
  assert.equal(badIndex.code, 2);
  assert.match(badIndex.stderr, /--index must be integers in \[0, 1\], received "2"/);
  await Deno.remove(`${out}/sweep.csv`);
  const collected = await run("collect", [out]);
  assert.equal(collected.code, 0, collected.stderr);
  assert.match(collected.stdout, /2 of 2 trials finished/);
  assert.deepEqual(await readCsv(`${out}/sweep.csv`), rows);

  // A resume with another config is refused and changes nothing; the right one still works.
  const files = async () =>
    await Promise.all(["sweep.json", "plan.json"].map((f) => Deno.readTextFile(`${out}/${f}`)));
  const before = await files();
  const refused = await run("sweep", ["--resume", out, "--epochs", "3"]);
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /was written with a different sweep config.*epochs: 1 → 3/);
  assert.deepEqual(await files(), before);
  const resumed = await run("sweep", [`--resume=${out}`, "--quiet"]);
  assert.equal(resumed.code, 0, resumed.stderr);
});

Deno.test("sweep and train reject bad input before creating anything", async () => {
  const root = await Deno.makeTempDir({ prefix: "bnlab-sweep-bad-" });
  const overridden = await run("sweep", ["momentum", "--momentum", "0.5", "--out", `${root}/a`]);
  assert.equal(overridden.code, 2);
  assert.match(
    overridden.stderr,
    /the momentum sweep sets momentum at every point; drop --momentum/,
  );
  const variants = await run("sweep", ["momentum", "--variants", "tfjs", "--out", `${root}/b`]);
  assert.match(variants.stderr, /sets variants at every point; drop --variants/);
  const unknown = await run("sweep", ["--grid", "colour=1,2", "--out", `${root}/c`]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /--grid: unknown field "colour"/);
  const badValue = await run("sweep", ["--grid", "optimizer=sgd,rmsprop", "--out", `${root}/d`]);
  assert.match(
    badValue.stderr,
    /sweep point optimizer-rmsprop: config: optimizer must be one of sgd, adam/,
  );
  const both = await run("sweep", ["momentum", "--grid", "lr=0.1", "--out", `${root}/e`]);
  assert.match(both.stderr, /give a named sweep or --grid, not both/);
  const data = await run("train", [...TINY, "--dataset", "idx:/nonexistent", "--out", `${root}/f`]);
  assert.equal(data.code, 2);
  assert.match(data.stderr, /dataset idx:\/nonexistent: loadIdxDir/);
  const one = await run("train", [
    ...TINY,
    "--variants",
    "custom",
    "--batch-size",
    "9",
    "--limit",
    "19",
    "--last-batch",
    "keep",
    "--out",
    `${root}/h`,
  ]);
  assert.equal(one.code, 2);
  assert.match(one.stderr, /bnlab-seed0: lastBatch keep leaves a training batch of 1 image/);
  for (const name of ["a", "b", "c", "d", "e", "f", "h"]) {
    assert.equal(await exists(`${root}/${name}`), false, name);
  }
  const slurm = await run("train", [
    ...TINY,
    "--executor",
    "slurm",
    "--slurm-array-limit",
    "0",
    "--out",
    `${root}/g`,
  ]);
  assert.equal(slurm.code, 2);
  assert.match(
    slurm.stderr,
    /--slurm-array-limit must be an integer in \[1, 1000000\], received 0/,
  );
  assert.equal(await exists(`${root}/g`), false);
});
