/**
 * `deno task train` end to end: its files, a run killed mid-way and resumed, bad flags.
 */
import assert from "node:assert/strict";
import { readCsv } from "../lib/output/csv.ts";
import { taskPermissions } from "./_cli.ts";

const SCRIPT = new URL("../scripts/train.ts", import.meta.url).pathname;
const SMALL = [
  "--preset",
  "smoke",
  "--variants",
  "none,bnlab,tfjs",
  "--limit",
  "240",
  "--test-limit",
  "100",
  "--epochs",
  "3",
  "--log-every",
  "4",
  "--quiet",
];

function train(args: string[]) {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", SCRIPT, ...args],
    stdout: "piped",
    stderr: "piped",
  });
}

async function run(args: string[]) {
  const output = await train(args).output();
  return {
    code: output.code,
    stdout: new TextDecoder().decode(output.stdout),
    stderr: new TextDecoder().decode(output.stderr),
  };
}

/** The columns that must not depend on whether the run was interrupted. */
function deterministic(rows: Record<string, unknown>[]) {
  return rows.map(({ wall_seconds: _, ...rest }) => rest);
}

const uninterrupted = await Deno.makeTempDir({ prefix: "bnlab-train-" });

Deno.test("deno task train writes summary.csv, history.csv, table.csv, config.json, curves.svg and accuracy.svg", async () => {
  const { code, stdout, stderr } = await run([...SMALL, "--out", uninterrupted]);
  assert.equal(code, 0, stderr);
  assert.match(stdout, /variant\s+seed\s+test_accuracy/);
  const summary = await readCsv(`${uninterrupted}/summary.csv`);
  assert.deepEqual(summary.map((r) => r.variant), ["none", "bnlab", "tfjs"]);
  for (const row of summary) {
    assert.equal(row.epochs, 3);
    assert.equal(row.batch_size, 20);
    assert.equal(row.train_images, 240);
    assert.equal(row.backend, "wasm");
    assert.ok(
      typeof row.test_accuracy === "number" && row.test_accuracy >= 0 && row.test_accuracy <= 1,
    );
    assert.ok(typeof row.wall_seconds === "number" && row.wall_seconds > 0);
  }
  const history = await readCsv(`${uninterrupted}/history.csv`);
  // 240 images / batch 20 = 12 steps per epoch; a point every 4 steps plus one row per epoch end.
  assert.equal(history.filter((r) => r.variant === "none").length, 3 * (3 + 1));
  assert.deepEqual(
    history.filter((r) => r.variant === "none" && r.test_accuracy !== null).map((r) => r.step),
    [12, 24, 36],
  );
  const config = JSON.parse(await Deno.readTextFile(`${uninterrupted}/config.json`));
  assert.equal(config.config.preset, "smoke");
  assert.equal(config.backend.name, "wasm");
  assert.equal(config.provenance.tfjs, "4.22.0");
  assert.equal(config.starts.length, 1);
  assert.deepEqual(config.starts[0].provenance, config.provenance);
  assert.match(await Deno.readTextFile(`${uninterrupted}/curves.svg`), /^<svg/);
  assert.match(await Deno.readTextFile(`${uninterrupted}/accuracy.svg`), /Test accuracy per epoch/);
  // Run again: every run is finished, so it only reloads them and records no start.
  const again = await run(["--resume", uninterrupted, "--quiet"]);
  assert.equal(again.code, 0, again.stderr);
  const after = JSON.parse(await Deno.readTextFile(`${uninterrupted}/config.json`));
  assert.equal(after.starts.length, 1);
  assert.deepEqual(await readCsv(`${uninterrupted}/summary.csv`), summary);
});

Deno.test("a run killed mid-way and resumed gives exactly the uninterrupted numbers", async () => {
  const out = await Deno.makeTempDir({ prefix: "bnlab-resume-" });
  const child = train([...SMALL, "--out", out]).spawn();
  // Kill it as soon as the second run (bnlab) has saved its first epoch.
  const checkpoint = `${out}/runs/bnlab-seed0/checkpoint/checkpoint.json`;
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    if (await Deno.stat(checkpoint).then(() => true, () => false)) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  child.kill("SIGKILL");
  await child.status;
  await child.stdout.cancel();
  await child.stderr.cancel();
  assert.equal(await Deno.stat(`${out}/runs/bnlab-seed0/result.json`).then(() => 1, () => 0), 0);

  const { code, stderr } = await run(["--resume", out, "--quiet"]);
  assert.equal(code, 0, stderr);
  assert.match(stderr, /none {3}seed 0: already finished, skipped/);
  assert.match(stderr, /bnlab {2}seed 0: resuming after epoch [12]/);
  assert.deepEqual(
    deterministic(await readCsv(`${out}/summary.csv`)),
    deterministic(await readCsv(`${uninterrupted}/summary.csv`)),
  );
  assert.deepEqual(
    await readCsv(`${out}/history.csv`),
    await readCsv(`${uninterrupted}/history.csv`),
  );
  // The resume is recorded beside the first start, whose provenance stays the experiment's.
  const record = JSON.parse(await Deno.readTextFile(`${out}/config.json`));
  assert.equal(record.starts.length, 2);
  assert.deepEqual(record.provenance, record.starts[0].provenance);
  assert.ok(record.starts[1].at > record.starts[0].at);
});

Deno.test("Ctrl-C ends deno task train with how to resume, frees its lock, and --status says stopped", async () => {
  const out = await Deno.makeTempDir({ prefix: "bnlab-sigint-" });
  // With the task's own permissions (deno.json), not --allow-all.
  const permissions = await taskPermissions("train");
  const child = new Deno.Command(Deno.execPath(), {
    // 300 steps an epoch: the run is still going when the signal arrives.
    args: [
      "run",
      ...permissions,
      SCRIPT,
      ...SMALL,
      "--variants",
      "none",
      "--limit",
      "6000",
      "--out",
      out,
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const checkpoint = `${out}/runs/none-seed0/checkpoint/checkpoint.json`;
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    if (await Deno.stat(checkpoint).then(() => true, () => false)) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  child.kill("SIGINT");
  const { code, stderr } = await child.output();
  const text = new TextDecoder().decode(stderr);
  assert.equal(code, 130, text);
  assert.ok(
    text.includes(`interrupted: \`deno task train --resume ${out}\` continues each trial`),
    text,
  );
  assert.equal(await Deno.stat(`${out}/runs/none-seed0/run.lock`).then(() => 1, () => 0), 0);
  const status = await run(["--status", out]);
  assert.match(status.stdout, /#0 none-seed0: stopped: after epoch [12]/);
  await Deno.remove(out, { recursive: true });
});

// A terminal's Ctrl-C reaches the whole process group (the CLI and its workers); `kill` of the
// CLI alone reaches only it. Either way each worker frees its lock and all exit.
const _SIGNALS = [
  ["SIGTERM", "the CLI"],
  ["SIGINT", "the CLI"],
  ["SIGINT", "its process group"],
] as const;
for (const [signal, target] of _SIGNALS) {
  Deno.test(`${signal} to ${target} of deno task train --workers 2: each worker frees its lock, all exit`, async () => {
    if (target !== "the CLI" && Deno.build.os !== "linux") return;
    const out = await Deno.makeTempDir({ prefix: "bnlab-workers-signal-" });
    const args = [...SMALL, "--variants", "none,bnlab", "--limit", "6000", "--epochs", "2"];
    // setsid makes the CLI the leader of a process group of its own (its pid is the group's).
    const child = (target === "the CLI"
      ? train([...args, "--out", out, "--workers", "2"])
      : new Deno.Command("setsid", {
        args: [
          Deno.execPath(),
          "run",
          "--allow-all",
          SCRIPT,
          ...args,
          "--out",
          out,
          "--workers",
          "2",
        ],
        stdout: "piped",
        stderr: "piped",
      })).spawn();
    const locks = ["none", "bnlab"].map((v) =>
      `${out}/runs/${v}-seed0/run.lock`
    );
    const owners: number[] = [];
    const deadline = Date.now() + 120_000;
    while (owners.length < 2 && Date.now() < deadline) {
      owners.length = 0;
      for (const lock of locks) {
        const text = await Deno.readTextFile(lock).catch(() => undefined);
        if (text) owners.push(JSON.parse(text).pid);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(owners.length, 2);
    if (target === "the CLI") child.kill(signal);
    else await new Deno.Command("kill", { args: ["-INT", "--", `-${child.pid}`] }).output();
    const status = await child.status;
    await child.stdout.cancel();
    const text = await new Response(child.stderr).text();
    assert.equal(status.signal, null);
    assert.equal(status.code, 143);
    if (signal === "SIGINT") assert.ok(text.includes(`deno task train --resume ${out}`), text);
    for (const lock of locks) assert.equal(await Deno.stat(lock).then(() => 1, () => 0), 0);
    if (Deno.build.os === "linux") {
      for (const pid of owners) {
        assert.equal(await Deno.stat(`/proc/${pid}`).then(() => 1, () => 0), 0);
      }
    }
    await Deno.remove(out, { recursive: true });
  });
}

Deno.test("deno task train rejects unknown flags and bad values, and --help lists the flags", async () => {
  const unknown = await run(["--epochz", "2"]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /Unknown option '--epochz'/);
  const bad = await run(["--preset", "smoke", "--momentum", "1.5"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--momentum must be a number in \[0, 1\] or "none", received 1.5/);
  const elsewhere = await run(["--resume", "results/report", "--out", "/tmp/bnlab-elsewhere"]);
  assert.equal(elsewhere.code, 2);
  assert.match(
    elsewhere.stderr,
    /--resume results\/report continues that directory; --out \/tmp\/bnlab-elsewhere names another/,
  );
  const help = await run(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--batch-size/);
  assert.match(help.stdout, /report/);
});

Deno.test("--workers 2 runs the variants in two processes with exactly the same numbers", async () => {
  const out = await Deno.makeTempDir({ prefix: "bnlab-workers-" });
  const { code, stderr } = await run([...SMALL, "--out", out, "--workers", "2"]);
  assert.equal(code, 0, stderr);
  assert.match(stderr, /\[worker 1\]/);
  // Each trial records the processes that trained it beside its result (more than one where
  // a trial was handed over between the workers).
  for (const variant of ["none", "bnlab", "tfjs"]) {
    const trial = JSON.parse(await Deno.readTextFile(`${out}/runs/${variant}-seed0/trial.json`));
    assert.ok(trial.starts.length >= 1);
    assert.deepEqual(trial.config.variants, [variant]);
  }
  assert.deepEqual(
    deterministic(await readCsv(`${out}/summary.csv`)),
    deterministic(await readCsv(`${uninterrupted}/summary.csv`)),
  );
});

Deno.test("--workers 2 shares three trials between two processes, hands them over, and gives the numbers of one", async () => {
  const sixEpochs = SMALL.map((arg, i) => SMALL[i - 1] === "--epochs" ? "6" : arg);
  const one = await Deno.makeTempDir({ prefix: "bnlab-one-" });
  const two = await Deno.makeTempDir({ prefix: "bnlab-two-" });
  const alone = await run([...sixEpochs, "--out", one, "--workers", "1"]);
  assert.equal(alone.code, 0, alone.stderr);
  const { code, stderr } = await run([...sixEpochs, "--out", two, "--workers", "2"]);
  assert.equal(code, 0, stderr);
  // Six epochs of three trials on two workers: one of the first two is handed over for the
  // third, which waits with all of its training left (lib/experiments/shared_trials.ts).
  assert.match(stderr, /handed over after epoch \d/);
  assert.match(stderr, /resuming after epoch \d/);
  let starts = 0;
  for (const variant of ["none", "bnlab", "tfjs"]) {
    const trial = JSON.parse(await Deno.readTextFile(`${two}/runs/${variant}-seed0/trial.json`));
    starts += trial.starts.length;
  }
  assert.ok(starts > 3, `${starts} starts`);
  assert.deepEqual(
    deterministic(await readCsv(`${two}/summary.csv`)),
    deterministic(await readCsv(`${one}/summary.csv`)),
  );
  assert.deepEqual(await readCsv(`${two}/history.csv`), await readCsv(`${one}/history.csv`));
});
