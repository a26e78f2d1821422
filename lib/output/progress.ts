/**
 * A terminal progress bar for training: steps, loss, samples/s and ETA, on stderr.
 *
 * On a terminal the bar redraws in place; otherwise (CI logs, files) it prints a line at most
 * every `intervalSeconds`, so logs stay short.
 *
 * @module
 */

/** One progress update. */
export interface ProgressUpdate {
  /** What is running, e.g. `custom seed 0`. */
  label: string;
  /** Steps done and the total. */
  step: number;
  /** Steps in all. */
  totalSteps: number;
  /** Epoch, from 1, and the total. */
  epoch: number;
  /** Epochs in all. */
  epochs: number;
  /** Latest training loss. */
  loss: number;
  /** Training throughput. */
  samplesPerSecond: number;
  /** Estimated seconds left for this run. */
  etaSeconds: number;
}

/** Options of {@linkcode ProgressBar}. */
export interface ProgressBarOptions {
  /** Where to write. @default {Deno.stderr} */
  writer?: { writeSync(p: Uint8Array): number; isTerminal(): boolean };
  /** Width of the bar in characters. @default {24} */
  width?: number;
  /** Seconds between lines when the output is not a terminal. @default {10} */
  intervalSeconds?: number;
}

/**
 * Draws training progress on stderr.
 *
 * @example
 * ```ts
 * import { ProgressBar } from "./progress.ts";
 * const bar = new ProgressBar();
 * bar.update({ label: "none seed 0", step: 5, totalSteps: 10, epoch: 1, epochs: 1, loss: 2.3,
 *   samplesPerSecond: 100, etaSeconds: 0.5 });
 * bar.log("none seed 0: accuracy 11.35%");
 * ```
 */
export class ProgressBar {
  readonly #writer: { writeSync(p: Uint8Array): number; isTerminal(): boolean };
  readonly #width: number;
  readonly #intervalMs: number;
  readonly #tty: boolean;
  #lastLine = 0;
  #encoder = new TextEncoder();

  /** @param options Writer, width and the logging interval. */
  constructor(options: ProgressBarOptions = {}) {
    this.#writer = options.writer ?? Deno.stderr;
    this.#width = options.width ?? 24;
    this.#intervalMs = (options.intervalSeconds ?? 10) * 1000;
    this.#tty = this.#writer.isTerminal();
  }

  /**
   * Shows an update (redrawn in place on a terminal, throttled otherwise).
   *
   * @param update The current state.
   */
  update(update: ProgressUpdate): void {
    const line = formatProgress(update, this.#width);
    if (this.#tty) {
      this.#write(`\r\x1b[2K${line}`);
    } else {
      const now = Date.now();
      if (now - this.#lastLine < this.#intervalMs && update.step < update.totalSteps) return;
      this.#lastLine = now;
      this.#write(`${line}\n`);
    }
  }

  /**
   * Prints a permanent line, clearing the bar first on a terminal.
   *
   * @param message Printed on its own line.
   */
  log(message: string): void {
    this.#write(this.#tty ? `\r\x1b[2K${message}\n` : `${message}\n`);
  }

  #write(text: string) {
    this.#writer.writeSync(this.#encoder.encode(text));
  }
}

/**
 * Formats one progress line.
 *
 * @param update The current state.
 * @param width Width of the bar.
 * @returns The line, without a newline.
 *
 * @example
 * ```ts
 * import { formatProgress } from "./progress.ts";
 * console.log(formatProgress({ label: "tfjs seed 0", step: 3, totalSteps: 4, epoch: 1, epochs: 2,
 *   loss: 0.5, samplesPerSecond: 1000, etaSeconds: 75 }, 4));
 * // "tfjs seed 0 [███░] 3/4 epoch 1/2 loss 0.5000 1000 samples/s ETA 1m15s"
 * ```
 */
export function formatProgress(update: ProgressUpdate, width = 24): string {
  const fraction = update.totalSteps > 0 ? Math.min(1, update.step / update.totalSteps) : 0;
  const filled = Math.round(fraction * width);
  const bar = "█".repeat(filled) + "░".repeat(width - filled);
  return `${update.label} [${bar}] ${update.step}/${update.totalSteps} ` +
    `epoch ${update.epoch}/${update.epochs} loss ${update.loss.toFixed(4)} ` +
    `${Math.round(update.samplesPerSecond)} samples/s ETA ${formatDuration(update.etaSeconds)}`;
}

/**
 * Formats seconds as `1h02m`, `3m05s` or `42s`.
 *
 * @param seconds A duration.
 * @returns A short human-readable string.
 *
 * @example
 * ```ts
 * import { formatDuration } from "./progress.ts";
 * console.log(formatDuration(3725)); // "1h02m"
 * ```
 */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  const s = Math.max(0, Math.round(seconds));
  if (s >= 3600) {
    return `${Math.floor(s / 3600)}h${String(Math.floor(s % 3600 / 60)).padStart(2, "0")}m`;
  }
  if (s >= 60) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${s}s`;
}
