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

/** Wall time (ms) between two turns of the event loop that the training and evaluation loops
 * give. @default {50} */
export const YIELD_EVERY_MS = 50;

/**
 * Lets the event loop run one turn (timers, signals, finished I/O) and resumes after it.
 *
 * A `MessageChannel` message is a macrotask that the runtime delivers without the minimum
 * delay that `setTimeout(…, 0)` has (1 ms and more), so a turn costs tens of microseconds.
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
 * await yieldToEventLoop();
 * console.log(fired); // true
 * ```
 */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => {
    const { port1, port2 } = new MessageChannel();
    port1.onmessage = () => {
      port1.close();
      resolve();
    };
    port2.postMessage(null);
    port2.close();
  });
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
   * @param everyMs Wall time (ms) between two turns; 0 yields on every call.
   * @default {YIELD_EVERY_MS}
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
