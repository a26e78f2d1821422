/**
 * Atomic file writes: a reader sees the old file or the new one, never half of one.
 *
 * The data goes to a temporary file in the target's directory (same file system, so the
 * rename cannot degrade into a copy), is flushed to disk with `fsync`, and is then renamed
 * over the target. A crash or an error before the rename leaves the previous file as it was;
 * the temporary file is removed on error. Temporary names are `.<name>.<random>.tmp`.
 *
 * @module
 */
import { basename, dirname, join } from "node:path";

/** What {@linkcode writeFileAtomic} accepts: text (written as UTF-8), bytes, or a stream of bytes. */
export type AtomicData = string | Uint8Array | AsyncIterable<Uint8Array>;

/** Options of {@linkcode writeJsonAtomic}. */
export interface WriteJsonAtomicOptions {
  /**
   * Indentation passed to `JSON.stringify`; 0 writes one line.
   * @default {2}
   */
  space?: number;
}

/**
 * Writes `data` to `path` atomically, creating the parent directories.
 *
 * An existing file is replaced and keeps its permission bits. When `data` is a stream and it
 * throws midway, the error is rethrown and the previous file is left untouched.
 *
 * @param path File to write.
 * @param data Text (UTF-8), bytes, or an async iterable of byte chunks.
 * @throws What the file system or the stream threw, with the path in the message.
 *
 * @example Write a file, then replace it
 * ```ts
 * import assert from "node:assert/strict";
 * import { writeFileAtomic } from "./atomic.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await writeFileAtomic(`${dir}/sub/note.txt`, "first");
 * await writeFileAtomic(`${dir}/sub/note.txt`, new TextEncoder().encode("second"));
 * assert.equal(await Deno.readTextFile(`${dir}/sub/note.txt`), "second");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeFileAtomic(path: string, data: AtomicData): Promise<void> {
  const dir = dirname(path);
  await Deno.mkdir(dir, { recursive: true });
  const mode = await _existingMode(path);
  const temp = join(dir, `.${basename(path)}.${crypto.randomUUID().slice(0, 8)}.tmp`);
  try {
    const file = await Deno.open(temp, { write: true, createNew: true, mode });
    try {
      if (typeof data === "string") await _writeAll(file, new TextEncoder().encode(data));
      else if (data instanceof Uint8Array) await _writeAll(file, data);
      else for await (const chunk of data) await _writeAll(file, chunk);
      await file.sync();
    } finally {
      file.close();
    }
    // open() applies the umask; chmod gives a replaced file its exact previous mode back.
    if (mode !== undefined && Deno.build.os !== "windows") await Deno.chmod(temp, mode);
    await Deno.rename(temp, path);
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    const message = error instanceof Error ? error.message : String(error);
    throw new Error(`writeFileAtomic: could not write ${path}: ${message}`, { cause: error });
  }
  await _syncDirectory(dir);
}

/**
 * Writes `value` as JSON (with a final newline) to `path` atomically.
 *
 * `JSON.stringify` rules apply: `NaN` and `Infinity` become `null`, `undefined` fields are left out.
 *
 * @param path File to write.
 * @param value Anything `JSON.stringify` accepts.
 * @param options Indentation.
 * @throws If `value` cannot be serialized (a cycle, a bigint), or the write fails.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { writeJsonAtomic } from "./atomic.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await writeJsonAtomic(`${dir}/result.json`, { accuracy: 0.98 });
 * assert.deepEqual(JSON.parse(await Deno.readTextFile(`${dir}/result.json`)), { accuracy: 0.98 });
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeJsonAtomic(
  path: string,
  value: unknown,
  options: WriteJsonAtomicOptions = {},
): Promise<void> {
  let text: string | undefined;
  try {
    text = JSON.stringify(value, null, options.space ?? 2);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new Error(`writeJsonAtomic: could not serialize the value for ${path}: ${message}`, {
      cause: error,
    });
  }
  if (text === undefined) {
    throw new Error(
      `writeJsonAtomic: could not serialize the value for ${path}: received ${typeof value}, ` +
        "expected a value JSON can represent (object, array, string, number, boolean or null)",
    );
  }
  await writeFileAtomic(path, text + "\n");
}

/** Options of {@linkcode withFileLock}. */
export interface WithFileLockOptions {
  /** Give up after waiting this long for the lock (longer than `staleMs`). @default {90000} */
  timeoutMs?: number;
  /** A lock file older than this is left over from a crashed process, and is removed. @default {60000} */
  staleMs?: number;
}

/**
 * Runs `body` while holding an exclusive lock on `path` among processes: the lock is the file
 * `<path>.lock`, created with `createNew` (it exists only while one holder runs) and removed
 * after `body` settles. For read-modify-write updates of a file that several worker processes
 * share, such as an experiment's `config.json`.
 *
 * @param path The file the lock protects (it need not exist).
 * @param body What to run while holding the lock.
 * @param options How long to wait, and when a lock counts as stale.
 * @returns What `body` returns.
 * @throws If the lock is not free within `timeoutMs`, naming the lock file.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { withFileLock } from "./atomic.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const order: string[] = [];
 * const hold = (name: string) =>
 *   withFileLock(`${dir}/config.json`, async () => {
 *     order.push(`${name} in`);
 *     await new Promise((resolve) => setTimeout(resolve, 30));
 *     order.push(`${name} out`);
 *   });
 * await Promise.all([hold("a"), hold("b")]);
 * assert.deepEqual(order, ["a in", "a out", "b in", "b out"]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function withFileLock<T>(
  path: string,
  body: () => Promise<T>,
  options: WithFileLockOptions = {},
): Promise<T> {
  const { timeoutMs = 90000, staleMs = 60000 } = options;
  const lock = `${path}.lock`;
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    try {
      (await Deno.open(lock, { createNew: true, write: true })).close();
      break;
    } catch (error) {
      if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
    }
    const age = await _ageMs(lock);
    if (age !== undefined && age > staleMs) {
      await Deno.remove(lock).catch(() => {});
      continue;
    }
    if (performance.now() > deadline) {
      throw new Error(
        `withFileLock: ${lock} is held by another process; waited ${timeoutMs} ms (remove it ` +
          `if no bnlab process is running)`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 10 + 20 * Math.random()));
  }
  try {
    return await body();
  } finally {
    await Deno.remove(lock).catch(() => {});
  }
}

/** How long ago `path` was modified, or undefined when it is gone. */
async function _ageMs(path: string): Promise<number | undefined> {
  try {
    const mtime = (await Deno.stat(path)).mtime;
    return mtime === null ? undefined : Date.now() - mtime.getTime();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

async function _writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await file.write(bytes.subarray(written));
}

async function _existingMode(path: string): Promise<number | undefined> {
  try {
    const mode = (await Deno.stat(path)).mode;
    return mode === null ? undefined : mode & 0o7777;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/** Makes the rename itself durable; best effort, as not every platform can open a directory. */
async function _syncDirectory(dir: string): Promise<void> {
  if (Deno.build.os === "windows") return;
  try {
    const handle = await Deno.open(dir, { read: true });
    try {
      await handle.sync();
    } finally {
      handle.close();
    }
  } catch {
    // The data is already renamed into place; only its durability across a power cut is at stake.
  }
}
