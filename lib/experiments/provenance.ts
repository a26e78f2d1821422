/**
 * Where a result came from: the code (commit, whether the working tree differed from it, and
 * a hash of the difference), software versions, the machine and the backend, written beside
 * every result at every start.
 *
 * @module
 */
import os from "node:os";
import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";
import * as tf from "@tensorflow/tfjs";
import denoConfig from "../../deno.json" with { type: "json" };
import { type BackendInfo, backendInfo } from "../backend.ts";

/** The state of the git checkout a process runs from. */
export interface GitState {
  /** The commit checked out ("unknown" outside a git checkout). */
  gitCommit: string;
  /**
   * Whether tracked files outside `results/` and `bench/results.*` differ from `gitCommit`
   * (staged or not): `git diff HEAD` is not empty. `null` when git could not be run (no `--allow-run`, or no
   * git).
   */
  gitDirty: boolean | null;
  /**
   * SHA-256 (hex) of the output of `git diff HEAD --binary` when `gitDirty` is true, so two
   * runs from the same uncommitted code can be told apart from runs of different code;
   * `null` when the tree is clean or git could not be run.
   */
  gitDiffSha256: string | null;
  /**
   * Untracked paths outside `results/` and `bench/results.*` that git does not ignore (`null`
   * when git could not be run).
   */
  gitUntracked: number | null;
}

/** Versions, machine facts and code state recorded with results. */
export interface Provenance extends GitState {
  /** bnlab's version from deno.json. */
  bnlab: string;
  /** Deno's version. */
  deno: string;
  /** V8's version. */
  v8: string;
  /** TypeScript's version. */
  typescript: string;
  /** tfjs-core version. */
  tfjs: string;
  /** Operating system (`Deno.build.os`). */
  os: string;
  /** Architecture (`Deno.build.arch`). */
  arch: string;
  /** Logical CPUs. */
  cpus: number;
  /** Total memory in GiB, one decimal (0 without `--allow-sys`). */
  memoryGiB: number;
  /** The CPU model of the first core, from `os.cpus()` ("unknown" without `--allow-sys`). */
  cpuModel: string;
  /** Host name, so runs on different machines are told apart. */
  hostname: string;
  /**
   * What the active backend runs with (SIMD, threads, the BLAS library and its threads, the
   * native kernels), when a backend was set up by `initBackend` before the call.
   */
  backend?: BackendInfo;
}

/** Options of {@linkcode provenance}. */
export interface ProvenanceOptions {
  /**
   * The directory whose git state is recorded.
   * @default {the repository this module lives in}
   */
  root?: string;
}

/** The repository root of this module (two levels above `lib/experiments/`). */
const _ROOT = fileURLToPath(new URL("../../", import.meta.url));

/**
 * Reads the versions, machine facts, git state and backend of this process.
 *
 * @param options The repository whose git state is recorded.
 * @returns The provenance record.
 *
 * @example
 * ```ts
 * import { provenance } from "./provenance.ts";
 * const record = provenance();
 * console.log(record.tfjs); // "4.22.0"
 * console.log(typeof record.gitDirty === "boolean" || record.gitDirty === null); // true
 * ```
 */
export function provenance(options: ProvenanceOptions = {}): Provenance {
  let cpuModel = "unknown";
  try {
    // Deno 2 reads /proc/cpuinfo only with --allow-all; os.cpus() needs --allow-sys.
    cpuModel = os.cpus()[0]?.model ?? cpuModel;
  } catch {
    // No --allow-sys: the model stays unknown.
  }
  let memoryGiB = 0;
  try {
    memoryGiB = Math.round(Deno.systemMemoryInfo().total / 2 ** 30 * 10) / 10;
  } catch {
    // Needs --allow-sys.
  }
  let hostname = "unknown";
  try {
    hostname = Deno.hostname();
  } catch {
    // Needs --allow-sys.
  }
  let backend: BackendInfo | undefined;
  try {
    backend = backendInfo();
  } catch {
    // No backend set up yet.
  }
  return {
    bnlab: denoConfig.version,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    typescript: Deno.version.typescript,
    tfjs: tf.version.tfjs,
    os: Deno.build.os,
    arch: Deno.build.arch,
    cpus: navigator.hardwareConcurrency,
    memoryGiB,
    cpuModel,
    hostname,
    ...gitState(options.root ?? _ROOT),
    ...(backend ? { backend } : {}),
  };
}

/**
 * The git state of a checkout's code (all but `results/` and `bench/results.*`, which runs
 * and the bench write): its commit, whether tracked code files differ from it, a SHA-256 of
 * their `git diff HEAD --binary` when they do, and the number of untracked, unignored code
 * paths. Runs
 * `git` (needs `--allow-run`); without it, the commit is read from `.git/` and the other
 * fields are `null`.
 *
 * @param root A directory inside the checkout.
 * @returns The state.
 *
 * @example
 * ```ts
 * import { gitState } from "./provenance.ts";
 * const dir = await Deno.makeTempDir();
 * console.log(gitState(dir)); // { gitCommit: "unknown", gitDirty: null, gitDiffSha256: null, gitUntracked: null }
 * ```
 */
export function gitState(root: string): GitState {
  const head = _git(root, ["rev-parse", "--verify", "HEAD"]);
  if (head === null) {
    return { gitCommit: _readHead(root), gitDirty: null, gitDiffSha256: null, gitUntracked: null };
  }
  const gitCommit = new TextDecoder().decode(head).trim();
  const diff = _git(root, ["diff", "HEAD", "--binary", "--", ..._CODE]);
  const untracked = _git(root, [
    "ls-files",
    "--others",
    "--exclude-standard",
    "-z",
    "--",
    ..._CODE,
  ]);
  if (diff === null || untracked === null) {
    return { gitCommit, gitDirty: null, gitDiffSha256: null, gitUntracked: null };
  }
  const gitDirty = diff.length > 0;
  return {
    gitCommit,
    gitDirty,
    gitDiffSha256: gitDirty ? createHash("sha256").update(diff).digest("hex") : null,
    gitUntracked: new TextDecoder().decode(untracked).split("\0").filter((p) => p).length,
  };
}

/**
 * The commit of the git checkout this module lives in.
 *
 * @returns A 40-hex commit id, or "unknown".
 *
 * @example
 * ```ts
 * import { gitCommit } from "./provenance.ts";
 * console.log(/^([0-9a-f]{40}|unknown)$/.test(gitCommit())); // true
 * ```
 */
export function gitCommit(): string {
  return gitState(_ROOT).gitCommit;
}

/**
 * The paths whose state is the code's: everything but what runs and the bench write —
 * `results/` (a resumed run changes its committed checkpoint without changing the code that
 * trains it) and `bench/results.*` (the bench's record is read after its table is written).
 */
const _CODE = [
  ":(top)",
  ":(top,exclude)results",
  ":(top,exclude)bench/results.csv",
  ":(top,exclude)bench/results.json",
];

/** `git -C root …`'s stdout, or null when git cannot run or fails. */
function _git(root: string, args: string[]): Uint8Array | null {
  try {
    const out = new Deno.Command("git", {
      args: ["-C", root, ...args],
      stdout: "piped",
      stderr: "null",
      env: { LC_ALL: "C" },
    }).outputSync();
    return out.success ? out.stdout : null;
  } catch {
    return null;
  }
}

/** HEAD read from `.git/` without a git process (a `.git` file of a worktree is followed). */
function _readHead(root: string): string {
  try {
    let git = `${root}/.git`;
    let common = git;
    if (Deno.statSync(git).isFile) {
      git = Deno.readTextFileSync(git).replace(/^gitdir:\s*/, "").trim();
      try {
        common = `${git}/${Deno.readTextFileSync(`${git}/commondir`).trim()}`;
      } catch {
        common = git;
      }
    }
    const head = Deno.readTextFileSync(`${git}/HEAD`).trim();
    if (!head.startsWith("ref: ")) return head;
    const ref = head.slice(5);
    try {
      return Deno.readTextFileSync(`${common}/${ref}`).trim();
    } catch {
      const packed = Deno.readTextFileSync(`${common}/packed-refs`);
      return packed.split("\n").find((line) => line.endsWith(` ${ref}`))?.split(" ")[0] ??
        "unknown";
    }
  } catch {
    return "unknown";
  }
}
