/**
 * Turns of the event loop inside long synchronous work. tfjs ops on the wasm and cpu backends
 * run synchronously, and reading a tensor back resolves as a microtask, so a loop over training
 * or evaluation batches would otherwise keep the event loop from running for its whole length:
 * timers (the run lock's heartbeat) and signal listeners (SIGTERM) would wait for its end. The
 * loops call a {@linkcode Pacer} after every batch; it yields one macrotask turn once at least
 * `everyMs` of wall time has passed since the last one. A turn changes no float: it only lets
 * other callbacks run between two batches.
 *
 * @module
 */

/**
 * Wall time (ms) between two turns of the event loop that the training and evaluation loops
 * give: a turn costs a few milliseconds (the shortest timer the runtime has, and the time the
 * operating system takes to run the thread again), so it is taken only this often.
 */
export const YIELD_EVERY_MS = 500;

/**
 * Lets the event loop run one full turn and resumes after it: due timers fire, signal
 * listeners run, finished I/O is delivered.
 *
 * A zero-delay timer is the turn that does all of this. A microtask (a resolved promise, or
 * reading a wasm tensor's data) is no turn at all; a `MessageChannel` message delivers only
 * what is ready without waiting on the operating system, so signals and timers can stay
 * pending behind it.
 *
 * @returns A promise resolved on the next turn of the event loop.
 *
 * @example
 * ```ts
 * import { yieldToEventLoop } from "./yield.ts";
 * let fired = false;
 * setTimeout(() => fired = true, 0);
 * const started = performance.now();
 * while (performance.now() - started < 5) {
 *   // Synchronous work: the timer cannot fire during it.
 * }
 * await yieldToEventLoop();
 * console.log(fired); // true
 * ```
 */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/**
 * Yields to the event loop at most once per `everyMs` of wall time: a loop calls
 * `await pacer.tick()` after each unit of work, and only a call that finds `everyMs` elapsed
 * since the last turn waits for one. The other calls cost a clock read.
 *
 * @example
 * ```ts
 * import { Pacer } from "./yield.ts";
 * const pacer = new Pacer(10);
 * let turns = 0;
 * const timer = setInterval(() => turns++, 1);
 * const started = performance.now();
 * while (performance.now() - started < 100) await pacer.tick();
 * clearInterval(timer);
 * console.log(turns > 0); // true
 * ```
 */
export class Pacer {
  /** Wall time (ms) between two turns. */
  readonly everyMs: number;
  private _last = performance.now();

  /**
   * @param everyMs Wall time (ms) between two turns (default {@linkcode YIELD_EVERY_MS}); 0
   * yields on every call.
   */
  constructor(everyMs: number = YIELD_EVERY_MS) {
    if (!(everyMs >= 0) || !Number.isFinite(everyMs)) {
      throw new Error(`Pacer: everyMs must be a finite number >= 0, received ${everyMs}`);
    }
    this.everyMs = everyMs;
  }

  /**
   * Gives the event loop a turn when `everyMs` has passed since the last one.
   *
   * @returns A promise resolved after the turn, or `undefined` when none is due.
   */
  tick(): Promise<void> | undefined {
    if (performance.now() - this._last < this.everyMs) return undefined;
    return yieldToEventLoop().then(() => {
      this._last = performance.now();
    });
  }
}
