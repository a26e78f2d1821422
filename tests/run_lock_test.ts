import assert from "node:assert/strict";
import {
  acquireRunLock,
  readRunLock,
  RUN_LOCK_FILE,
  RunLockedError,
} from "../lib/experiments/run_lock.ts";
import { taskPermissions } from "./_cli.ts";

const MODULE = new URL("../lib/experiments/run_lock.ts", import.meta.url).href;

const PACER = new URL("../lib/train/yield.ts", import.meta.url).href;

/**
 * Starts a process that takes the run lock of each of `dirs`, says so, then holds them for
 * `holdMs`: idle, or (`busy`) in a synchronous loop that gives the event loop a turn through a
 * `Pacer`, as the training loop does.
 */
async function holder(dir: string | string[], holdMs: number, busy = false) {
  const script = await Deno.makeTempFile({ suffix: ".ts" });
  const hold = busy
    ? `const pacer = new Pacer();
       const started = performance.now();
       while (performance.now() - started < ${holdMs}) {
         const step = performance.now();
         while (performance.now() - step < 20) Math.sqrt(step);
         await pacer.tick();
       }`
    : `await new Promise((resolve) => setTimeout(resolve, ${holdMs}));`;
  await Deno.writeTextFile(
    script,
    `import { acquireRunLock } from ${JSON.stringify(MODULE)};
     import { Pacer } from ${JSON.stringify(PACER)};
     for (const dir of ${JSON.stringify([dir].flat())}) {
       await acquireRunLock(dir, { heartbeatMs: 100, staleMs: 5000 });
     }
     console.log("locked");
     ${hold}`,
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

Deno.test("with the train task's permissions, a live owner's lock is refused and a dead one's taken", async () => {
  const permissions = await taskPermissions("train");
  assert.ok(!permissions.includes("--allow-all"), "the check must hold without --allow-all");
  const dir = await Deno.makeTempDir();
  const script = await Deno.makeTempFile({ suffix: ".ts" });
  await Deno.writeTextFile(
    script,
    `import { acquireRunLock, processAlive, RunLockedError } from ${JSON.stringify(MODULE)};
     try {
       const lock = await acquireRunLock(${JSON.stringify(dir)});
       await lock.release();
       console.log("acquired", await processAlive(Deno.pid));
     } catch (error) {
       console.log(error instanceof RunLockedError ? "refused" : String(error));
     }`,
  );
  const attempt = async () => {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", ...permissions, script],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    return new TextDecoder().decode(output.stdout).trim();
  };
  const child = await holder(dir, 60000);
  assert.equal(await attempt(), "refused");
  child.kill("SIGKILL");
  await child.status;
  await child.stdout.cancel().catch(() => {});
  assert.equal(await attempt(), "acquired true");
  await Deno.remove(script);
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

Deno.test("a process ended by SIGTERM releases its locks and exits with 143", async () => {
  const dirs = [await Deno.makeTempDir(), await Deno.makeTempDir()];
  const child = await holder(dirs, 60000);
  for (const dir of dirs) assert.equal((await readRunLock(dir))?.pid, child.pid);
  child.kill("SIGTERM");
  await child.stdout.cancel().catch(() => {});
  assert.equal((await child.status).code, 143);
  for (const dir of dirs) {
    assert.deepEqual([...Deno.readDirSync(dir)], []);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SIGTERM ends a busy owner that paces its work at once, and its heartbeat runs meanwhile", async () => {
  const dir = await Deno.makeTempDir();
  const child = await holder(dir, 60000, true);
  const first = (await readRunLock(dir))!.heartbeat;
  // Heartbeats every 100 ms, though the owner never waits on its own.
  const deadline = Date.now() + 10000;
  while ((await readRunLock(dir))?.heartbeat === first && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.notEqual((await readRunLock(dir))?.heartbeat, first);
  const sent = performance.now();
  child.kill("SIGTERM");
  await child.stdout.cancel().catch(() => {});
  assert.equal((await child.status).code, 143);
  // Its steps take 20 ms and it yields every 500 ms; allow for a loaded machine.
  assert.ok(performance.now() - sent < 2000, `exited ${performance.now() - sent} ms after SIGTERM`);
  assert.deepEqual([...Deno.readDirSync(dir)], []);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("releasing a lock takes its SIGTERM listener away: SIGTERM then ends the process at once", async () => {
  const script = await Deno.makeTempFile({ suffix: ".ts" });
  await Deno.writeTextFile(
    script,
    `import { acquireRunLock } from ${JSON.stringify(MODULE)};
     await (await acquireRunLock(await Deno.makeTempDir())).release();
     console.log("released");
     await new Promise((resolve) => setTimeout(resolve, 60000));`,
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", script],
    stdout: "piped",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("released")) text += (await reader.read()).value ?? "";
  reader.releaseLock();
  child.kill("SIGTERM");
  await child.stdout.cancel().catch(() => {});
  const status = await child.status;
  assert.equal(status.signal, "SIGTERM");
  await Deno.remove(script);
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

Deno.test("a heartbeat skips while the lock file's companion is held, and removes a stale one", async () => {
  const dir = await Deno.makeTempDir();
  const lock = await acquireRunLock(dir, { heartbeatMs: 20, staleMs: 1000 });
  const companion = `${dir}/${RUN_LOCK_FILE}.lock`;
  await Deno.writeTextFile(companion, "");
  const held = (await readRunLock(dir))!.heartbeat;
  await new Promise((resolve) => setTimeout(resolve, 120));
  assert.equal((await readRunLock(dir))!.heartbeat, held);
  // A companion older than the file lock's staleness limit (5 s) was left by a dead process.
  const old = new Date(Date.now() - 60000);
  await Deno.utime(companion, old, old);
  await new Promise((resolve) => setTimeout(resolve, 120));
  assert.ok(Date.parse((await readRunLock(dir))!.heartbeat) > Date.parse(held));
  await lock.release();
  assert.deepEqual([...Deno.readDirSync(dir)], []);
  await Deno.remove(dir, { recursive: true });
});
