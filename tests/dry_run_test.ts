/**
 * `--dry-run` with the local executor (`deno task train`, `deno task sweep`): it prints the plan
 * (the trials it would train, resume after which epoch, or skip as finished, and the results
 * directory) and writes nothing, in a fresh directory and in one holding finished runs.
 */
import assert from "node:assert/strict";
import { run } from "./_cli.ts";
import { formatPlanPreview } from "../lib/experiments/plan_preview.ts";

/** Every file and directory under `dir`, with its size, modification time and contents. */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const entries = new Map<string, string>();
  const walk = async (path: string) => {
    for await (const entry of Deno.readDir(path)) {
      const child = `${path}/${entry.name}`;
      const info = await Deno.stat(child);
      if (entry.isDirectory) {
        entries.set(child, "dir");
        await walk(child);
      } else {
        const text = await Deno.readTextFile(child).catch(() => "(binary)");
        entries.set(child, `${info.size} ${info.mtime?.getTime()} ${text.length} ${text}`);
      }
    }
  };
  await walk(dir);
  return entries;
}

function assertUnchanged(before: Map<string, string>, after: Map<string, string>) {
  const created = [...after.keys()].filter((path) => !before.has(path));
  const removed = [...before.keys()].filter((path) => !after.has(path));
  const changed = [...before.keys()].filter((p) => after.has(p) && before.get(p) !== after.get(p));
  assert.deepEqual({ created, removed, changed }, { created: [], removed: [], changed: [] });
}

const TINY = [
  "--preset",
  "smoke",
  "--limit",
  "40",
  "--test-limit",
  "20",
  "--epochs",
  "2",
  "--quiet",
];

Deno.test("train --dry-run in a fresh directory prints every trial to train and creates nothing", async () => {
  const parent = await Deno.makeTempDir({ prefix: "bnlab-dry-run-" });
  const out = `${parent}/fresh`;
  const { code, stdout, stderr } = await run("train", [
    ...TINY,
    "--seeds",
    "2",
    "--out",
    out,
    "--dry-run",
  ]);
  assert.equal(code, 0, stderr);
  assert.match(stdout, new RegExp(`Results directory: ${out}\n`));
  assert.match(stdout, /6 trials: 6 to train, 0 to resume, 0 finished \(skipped\)/);
  assert.match(stdout, /train +bnlab-seed1 +runs\/bnlab-seed1 +epochs 1–2/);
  assertUnchanged(new Map(), await snapshot(parent));
  // An empty directory that exists stays empty too.
  await Deno.mkdir(out);
  assert.equal((await run("train", [...TINY, "--out", out, "--dry-run"])).code, 0);
  assertUnchanged(new Map([[out, "dir"]]), await snapshot(parent));
  await Deno.remove(parent, { recursive: true });
});

Deno.test("train --dry-run over finished runs says what it skips, resumes and trains, and writes nothing", async () => {
  const out = await Deno.makeTempDir({ prefix: "bnlab-dry-run-" });
  const first = await run("train", [...TINY, "--variants", "none", "--out", out]);
  assert.equal(first.code, 0, first.stderr);
  // A trial interrupted after its first epoch: the dry run reads only the checkpoint's records.
  const checkpoint = `${out}/runs/bnlab-seed0/checkpoint`;
  await Deno.mkdir(checkpoint, { recursive: true });
  await Deno.writeTextFile(
    `${checkpoint}/checkpoint.json`,
    JSON.stringify({ state: { epochsDone: 1, records: [{ epoch: 1 }], wallSeconds: 1 } }),
  );
  const before = await snapshot(out);
  const { code, stdout, stderr } = await run("train", [
    ...TINY,
    "--variants",
    "none,bnlab,tfjs",
    "--out",
    out,
    "--dry-run",
  ]);
  assert.equal(code, 0, stderr);
  assert.match(stdout, /3 trials: 1 to train, 1 to resume, 1 finished \(skipped\)/);
  assert.match(stdout, /skip +none-seed0 +runs\/none-seed0 +done \(2 epoch\(s\)\)/);
  assert.match(stdout, /resume +bnlab-seed0 +runs\/bnlab-seed0 +after epoch 1: epoch 2/);
  assert.match(stdout, /train +tfjs-seed0 +runs\/tfjs-seed0 +epochs 1–2/);
  assertUnchanged(before, await snapshot(out));
  await Deno.remove(out, { recursive: true });
});

Deno.test("sweep --dry-run writes nothing, fresh or over a finished sweep", async () => {
  const parent = await Deno.makeTempDir({ prefix: "bnlab-dry-run-" });
  const out = `${parent}/grid`;
  const grid = ["--grid", "lr=0.1,0.01", "--variants", "none", ...TINY, "--workers", "1"];
  const fresh = await run("sweep", [...grid, "--out", out, "--dry-run"]);
  assert.equal(fresh.code, 0, fresh.stderr);
  assert.match(fresh.stdout, /2 trials: 2 to train, 0 to resume, 0 finished \(skipped\)/);
  assertUnchanged(new Map(), await snapshot(parent));
  const sweep = await run("sweep", [...grid, "--out", out]);
  assert.equal(sweep.code, 0, sweep.stderr);
  const before = await snapshot(parent);
  const again = await run("sweep", [...grid, "--seeds", "2", "--out", out, "--dry-run"]);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /4 trials: 2 to train, 0 to resume, 2 finished \(skipped\)/);
  assertUnchanged(before, await snapshot(parent));
  await Deno.remove(parent, { recursive: true });
});

Deno.test("--help describes --dry-run for both executors", async () => {
  const { stdout } = await run("train", ["--help"]);
  assert.match(stdout, /--dry-run +start nothing: print which trials would train, resume/);
  assert.match(stdout, /with --executor slurm, write/);
});

Deno.test("formatPlanPreview counts the actions and aligns one line per trial", () => {
  const text = formatPlanPreview("results/x", [
    {
      index: 0,
      id: "a",
      dir: "runs/a",
      action: "skip",
      status: "diverged",
      epochsDone: 3,
      epochs: 5,
    },
    { index: 1, id: "bb", dir: "runs/bb", action: "train", epochsDone: 0, epochs: 1 },
  ]);
  assert.equal(
    text,
    [
      "Dry run: nothing was written. Results directory: results/x",
      "2 trials: 1 to train, 0 to resume, 1 finished (skipped)",
      "  skip    a   runs/a   diverged (3 epoch(s))",
      "  train   bb  runs/bb  epoch 1",
    ].join("\n"),
  );
});
