import assert from "node:assert/strict";
import { gitState, provenance } from "../lib/experiments/provenance.ts";

function git(dir: string, ...args: string[]): string {
  const out = new Deno.Command("git", {
    args: ["-C", dir, ...args],
    env: {
      GIT_AUTHOR_NAME: "t",
      GIT_AUTHOR_EMAIL: "t@t",
      GIT_COMMITTER_NAME: "t",
      GIT_COMMITTER_EMAIL: "t@t",
    },
  }).outputSync();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout).trim();
}

async function repo(): Promise<{ dir: string; commit: string }> {
  const dir = await Deno.makeTempDir();
  git(dir, "init", "-q");
  await Deno.writeTextFile(`${dir}/a.ts`, "export const a = 1;\n");
  await Deno.writeTextFile(`${dir}/.gitignore`, "out/\n");
  git(dir, "add", "-A");
  git(dir, "commit", "-q", "-m", "first");
  return { dir, commit: git(dir, "rev-parse", "HEAD") };
}

Deno.test("gitState: a clean tree is not dirty and has no diff hash", async () => {
  const { dir, commit } = await repo();
  assert.deepEqual(gitState(dir), {
    gitCommit: commit,
    gitDirty: false,
    gitDiffSha256: null,
    gitUntracked: 0,
  });
});

Deno.test("gitState: the diff hash marks a dirty tree and changes when the diff changes", async () => {
  const { dir, commit } = await repo();
  await Deno.writeTextFile(`${dir}/a.ts`, "export const a = 2;\n");
  const first = gitState(dir);
  assert.equal(first.gitCommit, commit);
  assert.equal(first.gitDirty, true);
  assert.match(first.gitDiffSha256 ?? "", /^[0-9a-f]{64}$/);
  assert.equal(gitState(dir).gitDiffSha256, first.gitDiffSha256, "the same diff, the same hash");
  await Deno.writeTextFile(`${dir}/a.ts`, "export const a = 3;\n");
  const second = gitState(dir);
  assert.equal(second.gitDirty, true);
  assert.notEqual(second.gitDiffSha256, first.gitDiffSha256);
  // A staged change is a difference from HEAD too.
  git(dir, "add", "a.ts");
  assert.equal(gitState(dir).gitDiffSha256, second.gitDiffSha256);
  // Committing it makes the tree clean at the new commit.
  git(dir, "commit", "-q", "-m", "second");
  assert.deepEqual(gitState(dir), {
    gitCommit: git(dir, "rev-parse", "HEAD"),
    gitDirty: false,
    gitDiffSha256: null,
    gitUntracked: 0,
  });
});

Deno.test("gitState: results/ and bench/results.* are data, not code: changes and new files there leave the tree clean", async () => {
  const { dir, commit } = await repo();
  await Deno.mkdir(`${dir}/results/run`, { recursive: true });
  await Deno.writeTextFile(`${dir}/results/run/checkpoint.json`, "{}\n");
  git(dir, "add", "results");
  git(dir, "commit", "-q", "-m", "a run's checkpoint");
  await Deno.writeTextFile(`${dir}/results/run/checkpoint.json`, '{"epoch":2}\n');
  await Deno.writeTextFile(`${dir}/results/run/weights-2.bin`, "w");
  await Deno.mkdir(`${dir}/bench`);
  await Deno.writeTextFile(`${dir}/bench/results.csv`, "group,name\n");
  assert.deepEqual(gitState(dir), {
    gitCommit: git(dir, "rev-parse", "HEAD"),
    gitDirty: false,
    gitDiffSha256: null,
    gitUntracked: 0,
  });
  assert.notEqual(git(dir, "rev-parse", "HEAD"), commit);
  // The code beside it still counts, from any directory of the checkout.
  await Deno.writeTextFile(`${dir}/a.ts`, "export const a = 2;\n");
  assert.equal(gitState(`${dir}/results`).gitDirty, true);
});

Deno.test("gitState: untracked paths are counted apart from the dirty flag; ignored ones are not", async () => {
  const { dir } = await repo();
  await Deno.writeTextFile(`${dir}/b.ts`, "new\n");
  await Deno.mkdir(`${dir}/out`);
  await Deno.writeTextFile(`${dir}/out/result.csv`, "x\n");
  const state = gitState(dir);
  assert.equal(state.gitDirty, false);
  assert.equal(state.gitUntracked, 1);
});

Deno.test("gitState: outside a checkout the commit is unknown and the rest null", async () => {
  const dir = await Deno.makeTempDir();
  assert.deepEqual(gitState(dir), {
    gitCommit: "unknown",
    gitDirty: null,
    gitDiffSha256: null,
    gitUntracked: null,
  });
});

Deno.test("gitState: without --allow-run the commit is read from .git/ (worktrees too)", async () => {
  const { dir, commit } = await repo();
  const worktree = `${await Deno.makeTempDir()}/wt`;
  git(dir, "worktree", "add", "-q", "-b", "side", worktree);
  const module = new URL("../lib/experiments/provenance.ts", import.meta.url).href;
  const config = new URL("../deno.json", import.meta.url).pathname;
  const script = `${await Deno.makeTempDir()}/state.ts`;
  for (const root of [dir, worktree]) {
    await Deno.writeTextFile(
      script,
      `import { gitState } from "${module}";\nconsole.log(JSON.stringify(gitState(${
        JSON.stringify(root)
      })));\n`,
    );
    const denied = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--config", config, "--allow-read", "--allow-env", "--no-prompt", script],
    }).output();
    assert.equal(denied.success, true, new TextDecoder().decode(denied.stderr));
    assert.deepEqual(JSON.parse(new TextDecoder().decode(denied.stdout)), {
      gitCommit: commit,
      gitDirty: null,
      gitDiffSha256: null,
      gitUntracked: null,
    });
  }
});

Deno.test("provenance: machine facts, versions and the git state of the repository", () => {
  const record = provenance();
  assert.equal(record.tfjs, "4.22.0");
  assert.notEqual(record.cpuModel, "unknown");
  assert.match(record.gitCommit, /^[0-9a-f]{40}$/);
  assert.equal(typeof record.gitDirty, "boolean");
  assert.equal(record.gitDirty, record.gitDiffSha256 !== null);
});

Deno.test("provenance: root picks the repository recorded", async () => {
  const { dir, commit } = await repo();
  assert.equal(provenance({ root: dir }).gitCommit, commit);
});

Deno.test("a sweep's resume appends its start to sweep.json's starts and keeps its note", async () => {
  const { prepareSweep } = await import("../lib/experiments/runner.ts");
  const { resolveConfig } = await import("../lib/experiments/config.ts");
  const { SWEEPS } = await import("../lib/experiments/sweeps.ts");
  const out = await Deno.makeTempDir();
  const base = resolveConfig("smoke");
  await prepareSweep(SWEEPS.momentum, base, out, { checkData: false });
  await prepareSweep(SWEEPS.momentum, base, out, { checkData: false });
  // A note written by scripts/mark_provenance.ts survives a resume.
  const marked = JSON.parse(await Deno.readTextFile(`${out}/sweep.json`));
  await Deno.writeTextFile(
    `${out}/sweep.json`,
    JSON.stringify({ ...marked, provenanceNote: "The CPU model is not recorded." }),
  );
  await prepareSweep(SWEEPS.momentum, base, out, { checkData: false });
  const record = JSON.parse(await Deno.readTextFile(`${out}/sweep.json`));
  assert.equal(record.provenanceNote, "The CPU model is not recorded.");
  assert.equal(record.starts.length, 3);
  assert.deepEqual(record.provenance, record.starts[0].provenance);
  assert.equal(record.started, record.starts[0].at);
  for (const start of record.starts) {
    assert.equal(typeof start.provenance.gitDirty, "boolean");
    assert.notEqual(start.provenance.cpuModel, "unknown");
  }
});
