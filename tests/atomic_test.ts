import assert from "node:assert/strict";
import { withFileLock, writeFileAtomic, writeJsonAtomic } from "../lib/output/atomic.ts";

async function _names(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.sort();
}

/** Yields each text as UTF-8 bytes; throws an Error found among them. */
async function* _chunks(...parts: (string | Error)[]): AsyncIterable<Uint8Array> {
  for (const part of parts) {
    if (part instanceof Error) throw part;
    yield new TextEncoder().encode(part);
  }
}

Deno.test("writeFileAtomic writes text and bytes, creates parents, leaves no temp file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writeFileAtomic(`${dir}/a/b/text.txt`, "héllo\n");
    assert.equal(await Deno.readTextFile(`${dir}/a/b/text.txt`), "héllo\n");
    const bytes = new Uint8Array([0, 1, 2, 255]);
    await writeFileAtomic(`${dir}/a/b/data.bin`, bytes);
    assert.deepEqual(await Deno.readFile(`${dir}/a/b/data.bin`), bytes);
    assert.deepEqual(await _names(`${dir}/a/b`), ["data.bin", "text.txt"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeFileAtomic replaces a file and keeps its permission bits", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/out.txt`;
    await writeFileAtomic(path, "a much longer first version");
    if (Deno.build.os !== "windows") await Deno.chmod(path, 0o640);
    await writeFileAtomic(path, "second");
    assert.equal(await Deno.readTextFile(path), "second");
    if (Deno.build.os !== "windows") assert.equal((await Deno.stat(path)).mode! & 0o777, 0o640);
    assert.deepEqual(await _names(dir), ["out.txt"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeFileAtomic writes a stream chunk by chunk", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writeFileAtomic(`${dir}/s.txt`, _chunks("one,", "two"));
    assert.equal(await Deno.readTextFile(`${dir}/s.txt`), "one,two");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a failure midway through a write leaves the previous file intact", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/result.csv`;
    await writeFileAtomic(path, "previous,content\n");
    // Simulates a crash after part of the new data reached the temporary file.
    const failing = _chunks("new,par", new Error("disk on fire"));
    await assert.rejects(() => writeFileAtomic(path, failing), (error: Error) => {
      assert.match(error.message, /^writeFileAtomic: could not write .*result\.csv: disk on fire$/);
      return true;
    });
    assert.equal(await Deno.readTextFile(path), "previous,content\n");
    assert.deepEqual(await _names(dir), ["result.csv"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a failed rename names the path and removes the temporary file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // A non-empty directory at the target makes the final rename fail, even for root.
    await Deno.mkdir(`${dir}/taken/child`, { recursive: true });
    await assert.rejects(
      () => writeFileAtomic(`${dir}/taken`, "x"),
      /^Error: writeFileAtomic: could not write .*\/taken: /,
    );
    assert.deepEqual(await _names(dir), ["taken"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeJsonAtomic writes indented JSON with a final newline", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writeJsonAtomic(`${dir}/r.json`, { a: [1, 2], b: NaN });
    assert.equal(
      await Deno.readTextFile(`${dir}/r.json`),
      '{\n  "a": [\n    1,\n    2\n  ],\n  "b": null\n}\n',
    );
    await writeJsonAtomic(`${dir}/r.json`, { a: 1 }, { space: 0 });
    assert.equal(await Deno.readTextFile(`${dir}/r.json`), '{"a":1}\n');
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeJsonAtomic rejects values JSON cannot hold, leaving the file alone", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writeJsonAtomic(`${dir}/r.json`, { ok: true });
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    await assert.rejects(
      () => writeJsonAtomic(`${dir}/r.json`, cyclic),
      /^Error: writeJsonAtomic: could not serialize the value for .*r\.json: .*circular/i,
    );
    await assert.rejects(() => writeJsonAtomic(`${dir}/r.json`, undefined), {
      message: `writeJsonAtomic: could not serialize the value for ${dir}/r.json: received ` +
        "undefined, expected a value JSON can represent (object, array, string, number, boolean or null)",
    });
    assert.equal(await Deno.readTextFile(`${dir}/r.json`), '{\n  "ok": true\n}\n');
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("withFileLock serializes holders, removes stale locks and times out clearly", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/config.json`;
  let inside = 0, most = 0;
  const hold = () =>
    withFileLock(path, async () => {
      most = Math.max(most, ++inside);
      await new Promise((resolve) => setTimeout(resolve, 5));
      inside--;
      return "done";
    });
  assert.deepEqual(await Promise.all([hold(), hold(), hold(), hold()]), Array(4).fill("done"));
  assert.equal(most, 1);
  await assert.rejects(() => Deno.stat(`${path}.lock`), Deno.errors.NotFound);
  // A lock that stays: a fresh one makes the holder wait and give up; a stale one is removed.
  await Deno.writeTextFile(`${path}.lock`, "");
  await assert.rejects(() => withFileLock(path, () => Promise.resolve(1), { timeoutMs: 50 }), {
    message: `withFileLock: ${path}.lock is held by another process; waited 50 ms (remove it ` +
      "if no bnlab process is running)",
  });
  const twoMinutesAgo = new Date(Date.now() - 120_000);
  await Deno.utime(`${path}.lock`, twoMinutesAgo, twoMinutesAgo);
  assert.equal(await withFileLock(path, () => Promise.resolve(2), { timeoutMs: 50 }), 2);
  // The lock is released when the body throws.
  await assert.rejects(() => withFileLock(path, () => Promise.reject(new Error("boom"))), {
    message: "boom",
  });
  assert.equal(await withFileLock(path, () => Promise.resolve(3), { timeoutMs: 50 }), 3);
  await Deno.remove(dir, { recursive: true });
});
