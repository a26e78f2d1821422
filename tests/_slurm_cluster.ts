/**
 * Test helpers: a real one-node Slurm cluster (scripts/slurm_local.sh) for the duration of a
 * test, and waits on its queue.
 *
 * @module
 */

const SCRIPT = new URL("../scripts/slurm_local.sh", import.meta.url).pathname;

/** Whether Debian's Slurm and munge daemons are installed (`deno task setup` installs them). */
export function slurmInstalled(): boolean {
  return ["/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/sbin/munged", "/usr/bin/sbatch"].every(
    (path) => {
      try {
        return Deno.statSync(path).isFile;
      } catch {
        return false;
      }
    },
  );
}

async function _run(command: string, args: string[]): Promise<Deno.CommandOutput> {
  return await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" }).output();
}

/**
 * Starts a cluster in a temporary directory, points this process's environment (SLURM_CONF) at
 * it, runs `body`, and always stops every daemon it started (by PID, through `down`).
 */
export async function withLocalSlurm(body: (clusterDir: string) => Promise<void>): Promise<void> {
  if (!slurmInstalled()) {
    throw new Error(
      "the Slurm tests need Debian's slurmctld, slurmd, slurm-client and munge; " +
        "install them with `deno task setup`",
    );
  }
  const dir = await Deno.makeTempDir({ prefix: "bnlab-slurm-" });
  const previous = Deno.env.get("SLURM_CONF");
  try {
    const up = await _run("bash", [SCRIPT, "up", dir]);
    if (!up.success) {
      throw new Error(
        `slurm_local.sh up ${dir} failed (exit ${up.code}): ${new TextDecoder().decode(up.stderr)}`,
      );
    }
    Deno.env.set("SLURM_CONF", `${dir}/etc/slurm.conf`);
    await body(dir);
  } finally {
    const down = await _run("bash", [SCRIPT, "down", dir]);
    if (previous === undefined) Deno.env.delete("SLURM_CONF");
    else Deno.env.set("SLURM_CONF", previous);
    // Whatever `down` could not stop: every PID it recorded.
    for (const name of ["slurmd", "slurmctld", "munged"]) {
      try {
        Deno.kill(Number(await Deno.readTextFile(`${dir}/pids/${name}`)), "SIGKILL");
      } catch { /* already stopped and its PID file removed */ }
    }
    if (!down.success) {
      console.error(`slurm_local.sh down: ${new TextDecoder().decode(down.stderr)}`);
    }
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Job ids (`<id>` or `<array>_<task>`) still pending or running. */
export async function queuedJobs(): Promise<string[]> {
  const out = await _run("squeue", ["-h", "-r", "-o", "%i|%F|%K"]);
  if (!out.success) throw new Error(`squeue failed: ${new TextDecoder().decode(out.stderr)}`);
  return new TextDecoder().decode(out.stdout).split("\n").filter(Boolean).flatMap((line) => {
    const [id, array, task] = line.trim().split("|");
    return /^\d+$/.test(task) ? [id, `${array}_${task}`, array] : [id];
  });
}

/** Polls until `done()` is true; fails after `timeoutMs` with `what` and the last queue. */
export async function waitFor(
  what: string,
  done: () => Promise<boolean>,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await done()) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const queue = await _run("squeue", ["-r"]);
  throw new Error(
    `waited ${timeoutMs} ms for ${what}; the queue is:\n${new TextDecoder().decode(queue.stdout)}`,
  );
}

/** Waits until none of the given jobs is pending or running. */
export async function waitForJobs(ids: readonly string[], timeoutMs = 30_000): Promise<void> {
  await waitFor(`jobs ${ids.join(", ")} to end`, async () => {
    const queued = new Set(await queuedJobs());
    return ids.every((id) => !queued.has(id));
  }, timeoutMs);
}
