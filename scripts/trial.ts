/**
 * `deno task trial DIR --index I`: trains (or resumes) trial I of the plan in DIR
 * (`plan.json`); returns at once when it finished before. `--index 0,3,5` runs several in
 * turn; `--collect` rebuilds the outputs after every epoch and trial; `--quiet` prints only
 * epoch lines. `--share i/N` makes this process worker i of N that share the listed trials
 * (the runner starts its workers so): each takes the waiting trial with the most training left
 * and, in the last stretch, hands its trial back after an epoch when a waiting one has fallen
 * behind (lib/experiments/shared_trials.ts; the numbers do not change); `--since MS` (ms since
 * the epoch, the workers' common start) tells it which failures are this execution's. `--share-cores`
 * (given by the runner to its worker processes) runs the matrix products on every core once the
 * plan's other trials have ended (their workers' cores are free; the floats do not change).
 * Exit status 0 when every trial this process took finished (with `--share`, trials other
 * processes hold are left to them: the runner checks every trial at the end), 1 when one failed
 * (its `error.json` says why), 2 for bad arguments.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { collect } from "../lib/experiments/collect.ts";
import { readPlan } from "../lib/experiments/plan.ts";
import { experimentProgress } from "../lib/experiments/progress_events.ts";
import { checkBuiltinParts, RELATIVE_STEP_COST } from "../lib/experiments/runner.ts";
import { runSharedTrials } from "../lib/experiments/shared_trials.ts";
import { runTrial } from "../lib/experiments/trial.ts";
import { othersEnded, takePartFlag } from "../lib/experiments/workers.ts";
import { datasetCount } from "../lib/data/mnist.ts";
import { epochSteps } from "../lib/train/loop.ts";
import { setProductThreads } from "../lib/backend.ts";
import { MAX_BLAS_THREADS } from "../lib/env.ts";
import { ProgressBar } from "../lib/output/progress.ts";

const USAGE =
  "Usage: deno task trial DIR --index I[,J,...] [--share i/N [--since MS]] [--collect] [--quiet] " +
  "[--share-cores]";

async function main(args: string[]): Promise<number> {
  args = [...args];
  const share = takePartFlag(args, "--share");
  const { values, positionals } = parseArgs({
    args,
    options: {
      index: { type: "string" },
      collect: { type: "boolean" },
      quiet: { type: "boolean" },
      "share-cores": { type: "boolean" },
      since: { type: "string" },
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
  await checkBuiltinParts(dir);
  // Ctrl-C in a terminal reaches the workers too: end as SIGTERM does, freeing the run locks.
  if (Deno.build.os !== "windows") {
    Deno.addSignalListener("SIGINT", () => Deno.kill(Deno.pid, "SIGTERM"));
  }
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
  // Once the other workers have ended, their cores are this one's.
  const cores = Math.min(MAX_BLAS_THREADS, navigator.hardwareConcurrency ?? 1);
  let shareCores = values["share-cores"] === true && cores > 1;
  const afterEpoch = async (own: number[]) => {
    if (values.collect) await collect(dir);
    if (shareCores && await othersEnded(dir, plan, own)) {
      shareCores = false;
      try {
        const before = setProductThreads(cores);
        if (before < cores) {
          console.error(`bnlab trial: the other workers have ended; products on ${cores} threads`);
        }
      } catch (error) {
        // A speed-up only: training goes on with the threads it had.
        console.error(`bnlab trial: could not take the free cores: ${(error as Error).message}`);
      }
    }
  };
  const since = values.since === undefined ? undefined : Number(values.since);
  if (since !== undefined && !(Number.isInteger(since) && since >= 0)) {
    throw new Error(`--since expects ms since the epoch, received ${JSON.stringify(values.since)}`);
  }
  if (share) {
    const steps = new Map<string, number>();
    for (const index of indices) {
      const { config } = plan.trials[index];
      const images = config.limit ?? await datasetCount(config.dataset, "train");
      steps.set(plan.trials[index].id, epochSteps(images, config.batchSize, config.lastBatch));
    }
    return await runSharedTrials(dir, plan, indices, {
        worker: share.part,
        workers: share.of,
        since,
        epochCost: (trial) =>
          (RELATIVE_STEP_COST[trial.config.variants[0]] ?? 1) * steps.get(trial.id)!,
        runOptions: (index) => ({ onEvent, afterEpoch: () => afterEpoch([index]) }),
        onHandOver: (trial, epochsDone) =>
          console.error(`bnlab trial ${trial.id}: handed over after epoch ${epochsDone}`),
        onFailure: (trial, error) =>
          console.error(
            `bnlab trial ${trial.id}: ${error.message} (${dir}/${trial.dir}/error.json)`,
          ),
      })
      ? 1
      : 0;
  }
  for (const index of indices) {
    const trial = plan.trials[index];
    try {
      await runTrial(dir, index, { plan, onEvent, afterEpoch: () => afterEpoch(indices) });
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
