/**
 * Turns experiment events into progress lines, for any display: the terminal's
 * {@linkcode ProgressBar} or a notebook's {@linkcode NotebookProgress}.
 *
 * @module
 */
import type { ProgressUpdate } from "../output/progress.ts";
import type { ExperimentEvent } from "./trial.ts";

/** Something that shows progress: a transient line and permanent log lines. */
export interface ProgressSink {
  /** Replaces the transient progress line. */
  update(update: ProgressUpdate): void | Promise<void>;
  /** Adds a permanent line. */
  log(line: string): void | Promise<void>;
}

/**
 * Builds an experiment event handler that reports to a progress sink.
 *
 * @param sink Where progress goes.
 * @param epochs Epochs per run, for the "epoch e/E" label.
 * @param options `quiet` drops the per-step updates and keeps the epoch lines.
 * @returns An `onEvent` handler for `runExperiment`.
 *
 * @example
 * ```ts
 * import { experimentProgress } from "./progress_events.ts";
 * const lines: string[] = [];
 * const onEvent = experimentProgress({ update: () => {}, log: (l) => { lines.push(l); } }, 1);
 * onEvent({ type: "skipped", variant: "none", seed: 0 });
 * console.log(lines); // [ "none   seed 0: already finished, skipped" ]
 * ```
 */
export function experimentProgress(
  sink: ProgressSink,
  epochs: number,
  options: { quiet?: boolean } = {},
): (event: ExperimentEvent) => void {
  // A sweep's trials are named by their point; an experiment's by variant and seed.
  const label = (variant: string, seed: number, trial?: string) =>
    trial && trial !== `${variant}-seed${seed}` ? trial : `${variant.padEnd(6)} seed ${seed}`;
  return (event) => {
    switch (event.type) {
      case "run":
        if (event.fromEpoch > 0) {
          sink.log(
            `${
              label(event.variant, event.seed, event.trial)
            }: resuming after epoch ${event.fromEpoch}`,
          );
        }
        break;
      case "skipped":
        sink.log(`${label(event.variant, event.seed, event.trial)}: already finished, skipped`);
        break;
      case "diverged":
        sink.log(`${label(event.variant, event.seed, event.trial)}: ${event.message}`);
        break;
      case "train": {
        const e = event.event;
        if (e.type === "step" && !options.quiet) {
          sink.update({
            label: label(event.variant, event.seed, event.trial),
            step: e.step,
            totalSteps: e.totalSteps,
            epoch: e.epoch + 1,
            epochs,
            loss: e.loss,
            samplesPerSecond: e.samplesPerSecond,
            etaSeconds: e.etaSeconds,
          });
        } else if (e.type === "epoch" && e.record.test) {
          const t = e.record.test;
          sink.log(
            `${label(event.variant, event.seed, event.trial)}: epoch ${
              e.record.epoch + 1
            }/${epochs} ` +
              `train loss ${e.record.trainLoss.toFixed(4)}, test accuracy ` +
              `${(t.accuracy * 100).toFixed(2)}% (${t.correct}/${t.count}), ` +
              `test loss ${t.loss.toFixed(4)}, ${e.record.seconds.toFixed(1)} s`,
          );
        }
        break;
      }
      case "done":
        break;
    }
  };
}
