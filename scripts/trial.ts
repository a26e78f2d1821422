/**
 * `deno task trial DIR --index I`: trains (or resumes) trial I of the plan in DIR
 * (`plan.json`); returns at once when it finished before. `--index 0,3,5` runs several in
 * turn; `--collect` rebuilds the outputs after every epoch and trial; `--quiet` prints only
 * epoch lines. Exit status 0 when every trial finished, 1 when one failed (its `error.json`
 * says why), 2 for bad arguments.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { collect } from "../lib/experiments/collect.ts";
import { readPlan } from "../lib/experiments/plan.ts";
import { experimentProgress } from "../lib/experiments/progress_events.ts";
import { runTrial } from "../lib/experiments/trial.ts";
import { ProgressBar } from "../lib/output/progress.ts";

const USAGE = "Usage: deno task trial DIR --index I[,J,...] [--collect] [--quiet]";

async function main(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      index: { type: "string" },
      collect: { type: "boolean" },
      quiet: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (positionals.length !== 1 || values.index === undefined) {
    throw new Error(`expected one directory and --index. ${USAGE}`);
  }
  const dir = positionals[0];
  const plan = await readPlan(dir);
  if (!plan) throw new Error(`${dir} has no plan.json`);
  const indices = values.index.split(",").map((s) => {
    const index = Number(s);
    if (!/^\d+$/.test(s.trim()) || index >= plan.trials.length) {
      throw new Error(
        `--index must be integers in [0, ${plan.trials.length - 1}], received ${
          JSON.stringify(values.index)
        }`,
      );
    }
    return index;
  });
  const epochs = plan.trials[indices[0]]?.config.epochs ?? 1;
  const onEvent = experimentProgress(new ProgressBar(), epochs, { quiet: values.quiet });
  let failed = 0;
  for (const index of indices) {
    const trial = plan.trials[index];
    try {
      await runTrial(dir, index, {
        plan,
        onEvent,
        afterEpoch: values.collect ? () => collect(dir) : undefined,
      });
    } catch (error) {
      failed++;
      console.error(
        `bnlab trial ${trial.id}: ${(error as Error).message} (${dir}/${trial.dir}/error.json)`,
      );
    }
  }
  return failed ? 1 : 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (error) {
    console.error(`bnlab trial: ${(error as Error).message}`);
    Deno.exit(2);
  }
}
