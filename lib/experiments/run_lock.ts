/**
 * One owner per run: a lock file `run.lock` in the run's directory names the process that
 * trains it (pid, host, a random token) and carries a heartbeat the owner refreshes. Another
 * process that wants the run finds the lock and is refused, unless the owner is gone: its pid
 * is dead on this host, or its heartbeat is older than `staleMs` (a process on another host, or
 * one that hangs). The lock is released when the owner finishes, on a normal exit, and when
 * the process is sent SIGTERM (Slurm's `scancel` or time limit, `kill`): the process then
 * releases every run lock it holds and exits with status 143, so that a run stopped on one
 * node of a cluster can be resumed on another at once. The training and evaluation loops give
 * the event loop a turn twice a second (lib/train/yield.ts), so the heartbeat and the SIGTERM
 * listener run during an epoch, not at its end. SIGINT keeps its default (and a Jupyter
 * kernel's interrupt): a process it ends leaves a lock that the dead pid check frees on this
 * host, and that a process on another host takes over once its heartbeat is stale.
 *
 * Taking, refreshing and releasing the lock happen under the lock file's `.lock` companion
 * (`withFileLock`; the heartbeat takes it synchronously), so two processes that find the same
 * stale owner cannot both take it over.
 *
 * @module
 */
import { withFileLock, writeJsonAtomic } from "../output/atomic.ts";

/** Name of the lock file inside a run directory. */
export const RUN_LOCK_FILE = "run.lock";

/** What the lock file holds. */
export interface RunLockOwner {
  /** Process id of the owner. */
  pid: number;
  /** Host name of the owner. */
  host: string;
  /** Random token telling this owner from a later one with the same pid. */
  token: string;
  /** When the owner took the lock (ISO 8601). */
  started: string;
  /** When the owner last confirmed it is alive (ISO 8601). */
  heartbeat: string;
}

/** Age (ms) past which the lock file's `.lock` companion is taken as left by a dead process. */
const _FILE_LOCK_STALE_MS = 5000;

/** Exit status of a process ended by SIGTERM once its locks are released (128 + 15). */
export const SIGTERM_EXIT_STATUS = 143;

/** Synchronous releases of the run locks this process holds, run by the SIGTERM listener. */
const _held = new Set<() => void>();

/** Releases every lock this process holds and exits as SIGTERM's default action would. */
function _onTerminate() {
  for (const release of [..._held]) release();
  Deno.exit(SIGTERM_EXIT_STATUS);
}

/** Tracks a held lock; the SIGTERM listener is installed while at least one is held. */
function _hold(releaseSync: () => void) {
  if (_held.size === 0 && Deno.build.os !== "windows") {
    Deno.addSignalListener("SIGTERM", _onTerminate);
  }
  _held.add(releaseSync);
}

/** Forgets a released lock; the SIGTERM listener goes with the last one. */
function _unhold(releaseSync: () => void) {
  if (!_held.delete(releaseSync)) return;
  if (_held.size === 0 && Deno.build.os !== "windows") {
    Deno.removeSignalListener("SIGTERM", _onTerminate);
  }
}

/** Options of {@linkcode acquireRunLock}. */
export interface RunLockOptions {
  /** Refresh the heartbeat this often, in ms. @default {10000} */
  heartbeatMs?: number;
  /**
   * A lock whose heartbeat is older than this (ms) belongs to a dead or hung owner and is taken
   * over. An owner on this host whose pid is gone is taken over at once; this limit is what
   * frees the lock of an owner on another host that died without releasing it (SIGKILL, a
   * crashed node).
   *
   * A live owner refreshes its heartbeat every `heartbeatMs`, late by at most the longest
   * stretch that keeps its event loop busy. The training and evaluation loops give the event
   * loop a turn every `YIELD_EVERY_MS` (lib/train/yield.ts), and checkpoints and results are
   * written with awaited file operations, so that stretch is one training step, one evaluation
   * batch or one chart of the results: about a second for a ResNet-20 step at batch 128 on a
   * slow, loaded CPU, a few seconds for its first step. The default, six heartbeat periods, is
   * tens of times that. Raise it for a run whose single step or evaluation batch can take tens
   * of seconds (a very large batch on a large model), or its owner would be taken over alive.
   * @default {60000}
   */
  staleMs?: number;
}

/** Raised by {@linkcode acquireRunLock} when a live process owns the run. */
export class RunLockedError extends Error {
  /**
   * @param path The lock file.
   * @param owner Its owner.
   */
  constructor(readonly path: string, readonly owner: RunLockOwner) {
    const age = Math.round((Date.now() - Date.parse(owner.heartbeat)) / 1000);
    super(
      `${path} is held by process ${owner.pid} on ${owner.host} (heartbeat ${age} s ago); ` +
        `expected no other process on this run. Wait for it to finish, or stop it; a lock ` +
        `whose owner died is taken over automatically`,
    );
    this.name = "RunLockedError";
  }
}

/** A held run lock. */
export interface RunLock {
  /** The lock file. */
  path: string;
  /** This process's entry. */
  owner: RunLockOwner;
  /** Stops the heartbeat and removes the lock file if this process still owns it. */
  release(): Promise<void>;
}

/**
 * Takes the lock of a run directory (created if needed), taking over a stale one.
 *
 * @param dir The run's directory.
 * @param options Heartbeat period and staleness limit.
 * @returns The held lock; call `release()` when the run is done (also released on exit and on
 * SIGTERM, which then ends the process with status 143).
 * @throws {RunLockedError} When another live process owns the run.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { acquireRunLock, RunLockedError } from "./run_lock.ts";
 * const dir = await Deno.makeTempDir();
 * const lock = await acquireRunLock(dir);
 * // A second owner, even in the same process, is refused while the first holds it.
 * await assert.rejects(() => acquireRunLock(dir), RunLockedError);
 * await lock.release();
 * await (await acquireRunLock(dir)).release();
 * ```
 */
export async function acquireRunLock(dir: string, options: RunLockOptions = {}): Promise<RunLock> {
  const { heartbeatMs = 10000, staleMs = 60000 } = options;
  if (!(heartbeatMs > 0) || !(staleMs > heartbeatMs)) {
    throw new Error(
      `acquireRunLock: expected 0 < heartbeatMs < staleMs, received heartbeatMs ${heartbeatMs}, ` +
        `staleMs ${staleMs}`,
    );
  }
  await Deno.mkdir(dir, { recursive: true });
  const path = `${dir}/${RUN_LOCK_FILE}`;
  const now = new Date().toISOString();
  const owner: RunLockOwner = {
    pid: Deno.pid,
    host: Deno.hostname(),
    token: crypto.randomUUID(),
    started: now,
    heartbeat: now,
  };
  await withFileLock(path, async () => {
    const current = await _readOwner(path);
    if (current && !(await _isStale(current, staleMs))) throw new RunLockedError(path, current);
    await writeJsonAtomic(path, owner);
  }, { timeoutMs: 10000, staleMs: _FILE_LOCK_STALE_MS });

  let released = false;
  const timer = setInterval(() => _beatSync(path, owner), heartbeatMs);
  Deno.unrefTimer(timer);
  const onUnload = () => {
    // Synchronous: the event loop is ending.
    try {
      const current = JSON.parse(Deno.readTextFileSync(path)) as RunLockOwner;
      if (current.token === owner.token) Deno.removeSync(path);
    } catch {
      // Gone or unreadable: nothing of ours to remove.
    }
  };
  globalThis.addEventListener("unload", onUnload);
  _hold(onUnload);
  return {
    path,
    owner,
    release: async () => {
      if (released) return;
      released = true;
      clearInterval(timer);
      globalThis.removeEventListener("unload", onUnload);
      _unhold(onUnload);
      await withFileLock(path, async () => {
        const current = await _readOwner(path);
        if (current?.token === owner.token) await Deno.remove(path).catch(() => {});
      }, { timeoutMs: 10000, staleMs: _FILE_LOCK_STALE_MS });
    },
  };
}

/**
 * Refreshes the owner's heartbeat in one synchronous stretch, under the same `.lock` companion
 * file that `withFileLock` uses: a handful of small file operations that, done synchronously,
 * neither hold the companion across turns of an event loop that training keeps busy (each
 * awaited operation would wait for the next turn) nor can be cut in half by the SIGTERM
 * listener. A companion held by another process (one that is reading the lock) skips this
 * beat; one older than {@linkcode _FILE_LOCK_STALE_MS} was left by a dead process and is
 * removed.
 */
function _beatSync(path: string, owner: RunLockOwner) {
  const companion = `${path}.lock`;
  try {
    Deno.openSync(companion, { createNew: true, write: true }).close();
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) return;
    try {
      const mtime = Deno.statSync(companion).mtime;
      if (mtime && Date.now() - mtime.getTime() > _FILE_LOCK_STALE_MS) Deno.removeSync(companion);
    } catch {
      // Gone meanwhile.
    }
    return;
  }
  try {
    const current = JSON.parse(Deno.readTextFileSync(path)) as RunLockOwner;
    if (current.token !== owner.token) return;
    owner.heartbeat = new Date().toISOString();
    // Named as writeJsonAtomic names its temporary files; no fsync: a heartbeat lost in a
    // crash costs nothing.
    const temp = path.replace(/[^/]+$/, (name) => `.${name}.${owner.token.slice(0, 8)}.tmp`);
    try {
      Deno.writeTextFileSync(temp, JSON.stringify(owner, null, 2) + "\n");
      Deno.renameSync(temp, path);
    } catch (error) {
      Deno.removeSync(temp);
      throw error;
    }
  } catch {
    // Gone or unreadable (taken over, or removed by `slurm`'s restart check): nothing to refresh.
  } finally {
    try {
      Deno.removeSync(companion);
    } catch {
      // Already gone.
    }
  }
}

/**
 * Who holds a run's lock, or `undefined` when nobody does (a stale lock is still reported).
 *
 * @param dir The run's directory.
 * @returns The owner's entry.
 *
 * @example
 * ```ts
 * import { readRunLock } from "./run_lock.ts";
 * console.log(await readRunLock(await Deno.makeTempDir())); // undefined
 * ```
 */
export async function readRunLock(dir: string): Promise<RunLockOwner | undefined> {
  return await _readOwner(`${dir}/${RUN_LOCK_FILE}`);
}

/**
 * Whether a live process holds a run's lock: one whose lock {@linkcode acquireRunLock} would
 * refuse (a lock left by a dead owner, or with a heartbeat older than `staleMs`, is not held).
 *
 * @param dir The run's directory.
 * @param staleMs As {@linkcode RunLockOptions}' `staleMs`. @default {60000}
 * @returns True while another owner (or this process) trains the run.
 *
 * @example
 * ```ts
 * import { acquireRunLock, runLockHeld } from "./run_lock.ts";
 * const dir = await Deno.makeTempDir();
 * const lock = await acquireRunLock(dir);
 * console.log(await runLockHeld(dir)); // true
 * await lock.release();
 * console.log(await runLockHeld(dir)); // false
 * ```
 */
export async function runLockHeld(dir: string, staleMs = 60000): Promise<boolean> {
  const owner = await _readOwner(`${dir}/${RUN_LOCK_FILE}`);
  return owner !== undefined && !(await _isStale(owner, staleMs));
}

async function _readOwner(path: string): Promise<RunLockOwner | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  try {
    const owner = JSON.parse(text) as RunLockOwner;
    if (typeof owner.pid === "number" && typeof owner.heartbeat === "string") return owner;
  } catch {
    // Fall through: a lock nobody can read belongs to nobody (it is rewritten atomically).
  }
  return undefined;
}

async function _isStale(owner: RunLockOwner, staleMs: number): Promise<boolean> {
  const age = Date.now() - Date.parse(owner.heartbeat);
  if (!(age <= staleMs)) return true;
  if (owner.host === Deno.hostname()) return !(await processAlive(owner.pid));
  return false;
}

/**
 * Whether a process with this pid exists on this host: `/proc/<pid>` where it exists and the
 * permissions let this process read `/proc` (Deno asks `--allow-all` for it), else
 * `kill -0 <pid>` (with `--allow-run`, as the tasks have). When neither can tell, the process
 * is taken to be alive: its lock is then stale only once its heartbeat is.
 *
 * @param pid A process id on this host.
 * @returns False only when the process is known to have ended.
 *
 * @example
 * ```ts
 * import { processAlive } from "./run_lock.ts";
 * console.log(await processAlive(Deno.pid)); // true
 * ```
 */
export async function processAlive(pid: number): Promise<boolean> {
  if (Deno.build.os === "windows") return true;
  let procSays: boolean | undefined;
  if (Deno.build.os === "linux") {
    try {
      await Deno.stat(`/proc/${pid}`);
      return true;
    } catch (error) {
      // NotFound: gone, unless /proc hides other users' processes (hidepid): `kill -0` decides.
      // NotCapable (no --allow-all) or another failure: `kill -0` decides.
      if (error instanceof Deno.errors.NotFound) procSays = false;
    }
  }
  try {
    const { code, stderr } = await new Deno.Command("kill", {
      args: ["-0", String(pid)],
      env: { LC_ALL: "C" },
      stdout: "null",
      stderr: "piped",
    }).output();
    // A process of another user answers "Operation not permitted": it exists.
    return code === 0 || /not permitted/i.test(new TextDecoder().decode(stderr));
  } catch {
    return procSays ?? true;
  }
}
