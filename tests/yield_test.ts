/**
 * lib/train/yield.ts: the pacer's turns, and what they are for: a trial sent SIGTERM in the
 * middle of an epoch stops within a step, releases its run lock, and resumes to the floats of an
 * uninterrupted run.
 */
import assert from "node:assert/strict";
import { Pacer, yieldToEventLoop } from "../lib/train/yield.ts";

Deno.test("Pacer gives a turn once its period has passed, and rejects a bad period", async () => {
  const pacer = new Pacer(30);
  assert.equal(pacer.tick(), undefined);
  let fired = 0;
  const timer = setInterval(() => fired++, 1);
  const started = performance.now();
  while (performance.now() - started < 200) await pacer.tick();
  clearInterval(timer);
  // About one turn per 30 ms of a loop that never waits by itself.
  assert.ok(fired >= 3, `timer fired ${fired} times`);
  assert.throws(
    () => new Pacer(-1),
    { message: "Pacer: everyMs must be a finite number >= 0, received -1" },
  );
});

Deno.test("yieldToEventLoop lets a due timer fire", async () => {
  let fired = false;
  setTimeout(() => fired = true, 0);
  const started = performance.now();
  while (performance.now() - started < 5) Math.sqrt(started);
  await yieldToEventLoop();
  assert.ok(fired);
});

const MOD = new URL("../mod.ts", import.meta.url).href;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;

/**
 * A child process running one bnlab trial on LeNet (12,000 images in batches of 20: 600 steps
 * an epoch, 2 epochs) into `out`; it prints `step <n>` after each logged step.
 */
async function trainer(out: string) {
  const script = await Deno.makeTempFile({ suffix: ".ts" });
  await Deno.writeTextFile(
    script,
    `import { resolveConfig, runExperiment } from ${JSON.stringify(MOD)};
     const config = resolveConfig("smoke", {
       variants: ["bnlab"], limit: 12000, testLimit: 100, epochs: 2, logEvery: 4,
     });
     await runExperiment(config, {
       out: ${JSON.stringify(out)},
       onEvent: (e) => {
         if (e.type === "train" && e.event.type === "step") console.log("step", e.event.step);
       },
     });`,
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--config", CONFIG, script],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  return { child, script };
}

Deno.test("SIGTERM mid-epoch ends a trial within its epoch, releases its lock, and a resume finishes it exactly", async () => {
  const reference = await Deno.makeTempDir({ prefix: "bnlab-sigterm-ref-" });
  const whole = await trainer(reference);
  const wholeOutput = await whole.child.output();
  assert.equal(wholeOutput.code, 0, new TextDecoder().decode(wholeOutput.stderr));

  const out = await Deno.makeTempDir({ prefix: "bnlab-sigterm-" });
  const dir = `${out}/runs/bnlab-seed0`;
  const stopped = await trainer(out);
  // Wait for the first logged step of the second epoch (steps 601 to 1200).
  const reader = stopped.child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!/^step (60[4-9]|6[1-9]\d)$/m.test(text)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the trainer ended before its second epoch: ${text}`);
    text += value;
  }
  const sent = performance.now();
  stopped.child.kill("SIGTERM");
  const status = await stopped.child.status;
  const waited = performance.now() - sent;
  for (let read = await reader.read(); !read.done; read = await reader.read()) text += read.value;
  const lastStep = Number(text.trim().split("\n").at(-1)!.split(" ")[1]);
  await stopped.child.stderr.cancel();
  // Exited with 143 itself, after releasing its lock (a process the signal kills has no code).
  assert.equal(status.signal, null);
  assert.equal(status.code, 143);
  // It stopped within the epoch: a signal the loop did not let through would wait for the
  // epoch's last step (1200), while the loop gives it a turn every 500 ms, hundreds of steps
  // before that even on a fast machine. The time bound leaves room for a loaded one.
  assert.ok(lastStep < 1200, `ran on to step ${lastStep} after SIGTERM`);
  assert.ok(waited < 5000, `exited ${Math.round(waited)} ms after SIGTERM`);
  const left = [...Deno.readDirSync(dir)].map((e) => e.name);
  assert.ok(!left.some((name) => name.startsWith("run.lock")), `left ${left}`);
  assert.ok(!left.includes("result.json"));
  const checkpoint = JSON.parse(await Deno.readTextFile(`${dir}/checkpoint/checkpoint.json`));
  assert.equal(checkpoint.state.epochsDone, 1);

  const resumed = await trainer(out);
  const resumedOutput = await resumed.child.output();
  assert.equal(resumedOutput.code, 0, new TextDecoder().decode(resumedOutput.stderr));
  // The resume trains the second epoch only.
  assert.match(new TextDecoder().decode(resumedOutput.stdout), /^step 604$/m);
  assert.doesNotMatch(new TextDecoder().decode(resumedOutput.stdout), /^step 600$/m);
  assert.equal(
    await Deno.readTextFile(`${out}/history.csv`),
    await Deno.readTextFile(`${reference}/history.csv`),
  );
  for (const path of [whole.script, stopped.script, resumed.script, reference, out]) {
    await Deno.remove(path, { recursive: true });
  }
});
