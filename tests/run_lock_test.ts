import assert from "node:assert/strict";
import {
  acquireRunLock,
  readRunLock,
  RUN_LOCK_FILE,
  RunLockedError,
} from "../lib/experiments/run_lock.ts";

const MODULE = new URL("../lib/experiments/run_lock.ts", import.meta.url).href;

/** Starts a process that takes the run lock of `dir`, says so, then holds it for `holdMs`. */
async function holder(dir: string, holdMs: number) {
  const script = await Deno.makeTempFile({ suffix: ".ts" });
  await Deno.writeTextFile(
    script,
    `import { acquireRunLock } from ${JSON.stringify(MODULE)};
     await acquireRunLock(${JSON.stringify(dir)}, { heartbeatMs: 100, staleMs: 5000 });
     console.log("locked");
     await new Promise((resolve) => setTimeout(resolve, ${holdMs}));`,
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", script],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("locked")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`holder exited before locking: ${text}`);
    text += value;
  }
  reader.releaseLock();
  return child;
}

Deno.test("a second process is refused while the owner lives, and takes over once it is killed", async () => {
  const dir = await Deno.makeTempDir();
  const child = await holder(dir, 60000);
  await assert.rejects(() => acquireRunLock(dir), (error: Error) => {
    assert.ok(error instanceof RunLockedError);
    assert.match(
      error.message,
      new RegExp(
        `^${dir}/run.lock is held by process ${child.pid} on ${Deno.hostname()} \\(heartbeat \\d+ s ago\\); ` +
          "expected no other process on this run",
      ),
    );
    return true;
  });
  child.kill("SIGKILL");
  await child.status;
  await child.stdout.cancel().catch(() => {});
  // The owner's pid is dead on this host: its lock is stale at once.
  const lock = await acquireRunLock(dir);
  assert.equal((await readRunLock(dir))?.pid, Deno.pid);
  await lock.release();
  assert.equal(await readRunLock(dir), undefined);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a process that exits normally releases its lock", async () => {
  const dir = await Deno.makeTempDir();
  const child = await holder(dir, 10);
  await child.stdout.cancel().catch(() => {});
  assert.equal((await child.status).code, 0);
  assert.deepEqual([...Deno.readDirSync(dir)], []);
  await (await acquireRunLock(dir)).release();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a lock of another host is refused while its heartbeat is fresh, taken over once stale", async () => {
  const dir = await Deno.makeTempDir();
  const other = (heartbeat: Date) => ({
    pid: 1,
    host: "elsewhere",
    token: "t",
    started: heartbeat.toISOString(),
    heartbeat: heartbeat.toISOString(),
  });
  await Deno.writeTextFile(`${dir}/${RUN_LOCK_FILE}`, JSON.stringify(other(new Date())));
  await assert.rejects(() => acquireRunLock(dir, { staleMs: 60000 }), {
    message: new RegExp(`^${dir}/run.lock is held by process 1 on elsewhere`),
  });
  await Deno.writeTextFile(
    `${dir}/${RUN_LOCK_FILE}`,
    JSON.stringify(other(new Date(Date.now() - 61000))),
  );
  const lock = await acquireRunLock(dir, { staleMs: 60000 });
  assert.equal((await readRunLock(dir))?.host, Deno.hostname());
  await lock.release();
  await assert.rejects(() => acquireRunLock(dir, { heartbeatMs: 10, staleMs: 5 }), {
    message: "acquireRunLock: expected 0 < heartbeatMs < staleMs, received heartbeatMs 10, " +
      "staleMs 5",
  });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("the heartbeat keeps a held lock fresh", async () => {
  const dir = await Deno.makeTempDir();
  const lock = await acquireRunLock(dir, { heartbeatMs: 20, staleMs: 1000 });
  const first = (await readRunLock(dir))!.heartbeat;
  await new Promise((resolve) => setTimeout(resolve, 120));
  assert.ok(Date.parse((await readRunLock(dir))!.heartbeat) > Date.parse(first));
  await lock.release();
  await Deno.remove(dir, { recursive: true });
});
