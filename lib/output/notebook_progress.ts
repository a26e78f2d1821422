/**
 * Live training progress in a Jupyter notebook (Deno kernel): one display that is updated in
 * place through `Deno.jupyter.display(..., { display_id, update })`.
 *
 * @module
 */
import { formatProgress, type ProgressUpdate } from "./progress.ts";

/** The part of `Deno.jupyter` this module uses (absent outside the kernel). */
interface _Jupyter {
  display(
    obj: unknown,
    options?: { raw?: boolean; update?: boolean; display_id?: string },
  ): Promise<void>;
}

/**
 * A progress display for notebooks; outside a kernel it writes lines to stderr instead.
 *
 * @example
 * ```ts
 * import { NotebookProgress } from "./notebook_progress.ts";
 * const progress = new NotebookProgress("demo");
 * await progress.update({ label: "none seed 0", step: 1, totalSteps: 2, epoch: 1, epochs: 1,
 *   loss: 2.3, samplesPerSecond: 10, etaSeconds: 1 });
 * await progress.log("epoch 1: accuracy 11.35%");
 * await progress.flush();
 * ```
 */
export class NotebookProgress {
  readonly #id: string;
  readonly #jupyter?: _Jupyter;
  #shown = false;
  #lines: string[] = [];
  #current = "";
  #pending: Promise<void> = Promise.resolve();

  /**
   * Creates a display, shown on the first update.
   *
   * @param id A display id unique within the notebook.
   */
  constructor(id: string) {
    this.#id = `bnlab-progress-${id}`;
    try {
      this.#jupyter = (Deno as unknown as { jupyter?: _Jupyter }).jupyter;
    } catch {
      // Outside `deno jupyter`, reading Deno.jupyter throws: fall back to stderr.
    }
  }

  /**
   * Shows the current progress line, replacing the previous one.
   *
   * @param update The training state.
   */
  update(update: ProgressUpdate): Promise<void> {
    this.#current = formatProgress(update);
    return this.#queue();
  }

  /**
   * Adds a permanent line above the progress line (e.g. an epoch's test accuracy).
   *
   * @param line The text.
   */
  log(line: string): Promise<void> {
    this.#lines.push(line);
    return this.#queue(line);
  }

  /** Resolves when every display update so far has been sent. */
  flush(): Promise<void> {
    return this.#pending;
  }

  // Updates are chained so they reach the kernel in order even when callers don't await.
  #queue(fallback?: string): Promise<void> {
    this.#pending = this.#pending.then(() => this.#render(fallback));
    return this.#pending;
  }

  async #render(fallback?: string) {
    const text = [...this.#lines, this.#current].filter(Boolean).join("\n");
    if (!this.#jupyter) {
      if (fallback) console.error(fallback);
      return;
    }
    await this.#jupyter.display({ "text/plain": text }, {
      raw: true,
      display_id: this.#id,
      update: this.#shown,
    });
    this.#shown = true;
  }
}
