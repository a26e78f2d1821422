/**
 * `deno run --allow-read --allow-write --allow-run scripts/mark_provenance.ts [--check]`:
 * checks the provenance recorded with every committed result against the git history and
 * writes what is wrong into the record's `provenanceNote` field (a plain sentence per
 * problem), so that a reader of `config.json`, `sweep.json` or `bench/results.json` sees it.
 * Records with nothing wrong are left as they are. The edit is scripted: rerunning it gives
 * the same files. `--check` writes nothing and fails when a note is missing or stale.
 *
 * The checks, for a record with `provenance` and `started` (or `finished`):
 * - no commit recorded;
 * - the recorded commit was made after the run started (a resume replaced the first start's
 *   record);
 * - the record's preset is defined neither in `lib/experiments/config.ts` nor in
 *   `lib/experiments/studies.ts` at the recorded commit (the run used uncommitted code);
 * - no `starts` list (a train record: the processes that resumed it are unknown);
 * - no CPU model;
 * - for `bench/results.json`: code under `bench/`, `lib/` or `scripts/` differs between the
 *   recorded commit and the last commit of `bench/results.csv` (the results came from
 *   uncommitted code).
 *
 * @module
 */
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

/** What the checks ask of the git history. */
export interface GitFacts {
  /** The committer time of a commit (ISO 8601), or null when it is not in the history. */
  commitTime(commit: string): string | null;
  /** A file's text at a commit, or null when absent. */
  fileAt(commit: string, path: string): string | null;
  /** The code files (bench/, lib/, scripts/) that differ between two commits. */
  codeChanges(from: string, to: string): string[];
  /** The last commit that changed a file, or null. */
  lastCommitOf(path: string): string | null;
}

/** A record as written beside results (only the fields the checks read). */
export interface ResultRecord {
  config?: { preset?: string };
  provenance?: { gitCommit?: string; cpuModel?: string };
  started?: string;
  finished?: string;
  starts?: unknown[];
  sweep?: string;
  provenanceNote?: string;
}

/** Options of {@linkcode provenanceProblems}. */
export interface ProblemOptions {
  /** The record's path relative to the repository root (decides the bench check). */
  path: string;
}

/**
 * What is wrong with a record's provenance, one sentence per problem.
 *
 * @param record The parsed `config.json`, `sweep.json` or `bench/results.json`.
 * @param git The git history's answers.
 * @param options The record's path.
 * @returns The sentences; empty when nothing is wrong.
 *
 * @example
 * ```ts
 * import { provenanceProblems } from "./mark_provenance.ts";
 * const git = {
 *   commitTime: () => "2026-01-02T00:00:00Z",
 *   fileAt: () => "smoke: {",
 *   codeChanges: () => [],
 *   lastCommitOf: () => null,
 * };
 * const record = {
 *   config: { preset: "smoke" },
 *   provenance: { gitCommit: "abc", cpuModel: "x" },
 *   started: "2026-01-01T00:00:00Z",
 *   starts: [],
 * };
 * console.log(provenanceProblems(record, git, { path: "results/a/config.json" }).length); // 1
 * ```
 */
export function provenanceProblems(
  record: ResultRecord,
  git: GitFacts,
  options: ProblemOptions,
): string[] {
  const problems: string[] = [];
  const commit = record.provenance?.gitCommit;
  const started = record.started;
  if (!commit || commit === "unknown") {
    problems.push("No git commit is recorded, so the code that produced these results is unknown.");
  } else {
    const time = git.commitTime(commit);
    if (time === null) {
      problems.push(`The recorded commit ${commit} is not in the repository's history.`);
    } else if (started && Date.parse(time) > Date.parse(started)) {
      problems.push(
        `The recorded commit ${commit.slice(0, 7)} was made at ${time}, after the run started ` +
          `at ${started}: a resume replaced the first start's record, so the commit of the ` +
          "first start is unknown.",
      );
    }
    const preset = record.config?.preset;
    const sources = time === null
      ? []
      : _PRESET_FILES.map((path) => git.fileAt(commit, path)).filter((t) => t !== null);
    if (preset && sources.length && !sources.some((text) => _definesPreset(text!, preset))) {
      problems.push(
        `The preset "${preset}" is not in ${_PRESET_FILES.join(" or ")} at the recorded commit ` +
          `${commit.slice(0, 7)}: the run used uncommitted code (no dirty-tree flag was ` +
          "recorded then).",
      );
    }
    if (options.path === "bench/results.json") {
      // The bench writes results.csv and results.json together; the CSV's last commit is the
      // one that committed the measurements (a note added later changes only the JSON).
      const added = git.lastCommitOf("bench/results.csv");
      const changed = added && time !== null ? git.codeChanges(commit, added) : [];
      if (changed.length) {
        problems.push(
          `The code committed with these results (${added!.slice(0, 7)}) differs from the ` +
            `recorded commit ${commit.slice(0, 7)} in ${changed.join(", ")}: the results came ` +
            "from uncommitted code.",
        );
      }
    }
  }
  if (record.config && !record.sweep && record.starts === undefined) {
    problems.push(
      "There is no starts list: the processes that started and resumed the run are not recorded.",
    );
  }
  if (!record.provenance?.cpuModel || record.provenance.cpuModel === "unknown") {
    problems.push("The CPU model is not recorded.");
  }
  return problems;
}

/** The files that define presets. */
const _PRESET_FILES = ["lib/experiments/config.ts", "lib/experiments/studies.ts"];

function _definesPreset(source: string, preset: string): boolean {
  const name = preset.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`^\\s*(?:"${name}"|${name}):\\s*\\{`, "m").test(source);
}

/** {@linkcode GitFacts} answered by git in `root`. */
function _gitFacts(root: string): GitFacts {
  const run = (...args: string[]): string | null => {
    const out = new Deno.Command("git", { args: ["-C", root, ...args], stderr: "null" })
      .outputSync();
    return out.success ? new TextDecoder().decode(out.stdout) : null;
  };
  return {
    commitTime: (commit) => run("show", "-s", "--format=%cI", commit)?.trim() ?? null,
    fileAt: (commit, path) => run("show", `${commit}:${path}`),
    codeChanges: (from, to) =>
      (run("diff", "--name-only", from, to, "--", "bench/*.ts", "bench/*.py", "lib", "scripts") ??
        "").split("\n").filter((line) => line !== ""),
    lastCommitOf: (path) => run("log", "-1", "--format=%H", "--", path)?.trim() || null,
  };
}

/** The result records under `root`: results' config.json and sweep.json, and the bench's. */
async function _records(root: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (dir: string) => {
    for await (const entry of Deno.readDir(dir)) {
      const path = join(dir, entry.name);
      if (entry.isDirectory && entry.name !== "runs" && entry.name !== "checkpoint") {
        await walk(path);
      } else if (entry.isFile && (entry.name === "config.json" || entry.name === "sweep.json")) {
        found.push(relative(root, path));
      }
    }
  };
  await walk(join(root, "results"));
  found.push("bench/results.json");
  return found.sort();
}

async function main(args: string[]): Promise<number> {
  const root = fileURLToPath(new URL("..", import.meta.url));
  const check = args.includes("--check");
  const git = _gitFacts(root);
  const shallow = new Deno.Command("git", {
    args: ["-C", root, "rev-parse", "--is-shallow-repository"],
    stderr: "null",
  }).outputSync();
  if (!shallow.success || new TextDecoder().decode(shallow.stdout).trim() !== "false") {
    console.error(
      "mark_provenance: needs the full git history of the repository (git, not a shallow " +
        "clone); nothing checked",
    );
    return check ? 0 : 2;
  }
  let stale = 0;
  for (const path of await _records(root)) {
    const text = await Deno.readTextFile(join(root, path));
    const record = JSON.parse(text) as ResultRecord;
    const problems = provenanceProblems(record, git, { path });
    const note = problems.length
      ? `${problems.join(" ")} (Checked by scripts/mark_provenance.ts.)`
      : undefined;
    if (note === record.provenanceNote) continue;
    stale++;
    if (check) {
      console.error(`${path}: provenanceNote is ${note ? "missing or stale" : "no longer true"}`);
      continue;
    }
    const { provenanceNote: _, ...rest } = record;
    const updated = note === undefined ? rest : { ...rest, provenanceNote: note };
    await Deno.writeTextFile(join(root, path), JSON.stringify(updated, null, 2) + "\n");
    console.log(`${path}: ${note ?? "note removed"}`);
  }
  return check && stale ? 1 : 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (error) {
    console.error(`bnlab mark_provenance: ${(error as Error).message}`);
    Deno.exit(2);
  }
}
