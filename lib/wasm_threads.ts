/**
 * Lets tfjs's threaded SIMD wasm binary start its pthreads under Deno.
 *
 * tfjs's Node.js build (the one Deno loads) starts each pthread with
 * `new Worker(blobUrl)` from `node:worker_threads`, expecting a classic script that uses
 * `require`; Deno's workers run ES modules only. {@linkcode withWasmPthreads} puts
 * {@linkcode WasmPthreadWorker} in place of `Worker` while the backend starts: each one runs
 * `lib/wasm_threads_worker.ts`, which evaluates tfjs's worker script and module factory
 * itself. Emscripten allocates a pool of {@linkcode WASM_PTHREAD_POOL_SIZE} workers at start;
 * a worker is started only when a pthread first runs on it (XNNPACK runs threads − 1), and
 * none keeps the process alive.
 *
 * @module
 */
import os from "node:os";
import { Worker as NodeWorker } from "node:worker_threads";

/**
 * The workers Emscripten allocates at start in tfjs 4.22's threaded build
 * (`pthreadPoolSize`): XNNPACK can run this many threads plus the main one without more.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { WASM_PTHREAD_POOL_SIZE } from "./wasm_threads.ts";
 *
 * assert.equal(WASM_PTHREAD_POOL_SIZE, 8);
 * ```
 */
export const WASM_PTHREAD_POOL_SIZE = 8;

/** The module each pthread's worker runs. */
const _WORKER_URL = new URL("./wasm_threads_worker.ts", import.meta.url);

/** How long {@linkcode withWasmPthreads} waits for its trial worker to answer. */
const _PING_TIMEOUT_MS = 30_000;

type Listener = (value: unknown) => void;
type Post = [message: unknown, transfer: Transferable[] | undefined];

/**
 * A pthread worker for Emscripten's main thread (in its Node.js mode): the part of the
 * `node:worker_threads` `Worker` interface Emscripten uses, backed by a real worker started
 * on the first message after `load`. Until then it answers `load` itself with `loaded`.
 *
 * @example Emscripten's use, in short
 * ```ts ignore
 * const worker = new WasmPthreadWorker(workerScriptBlobUrl);
 * worker.on("message", (data) => console.log(data)); // { cmd: "loaded" }, …
 * worker.postMessage({ cmd: "load", urlOrBlob, wasmMemory, wasmModule, handlers: [] });
 * worker.postMessage({ cmd: "run", start_routine, arg, pthread_ptr }); // starts the worker
 * ```
 */
export class WasmPthreadWorker {
  /** Emscripten's message handler, called when no `message` listener is registered. */
  onmessage: ((event: { data: unknown }) => void) | null = null;
  /** Emscripten's error handler, called when no `error` listener is registered. */
  onerror: ((error: unknown) => void) | null = null;
  readonly #url: string;
  readonly #listeners = new Map<string, Listener[]>();
  #load: Post | undefined;
  #real: NodeWorker | undefined;

  /**
   * @param url The URL of tfjs's worker script (a blob URL).
   */
  constructor(url: string | URL) {
    this.#url = String(url);
  }

  /**
   * Registers a listener of `message` (the message's data) or `error`.
   *
   * @param event The event's name; others are accepted and never fire.
   * @param listener Called with the data or the error.
   * @returns This worker.
   */
  on(event: string, listener: Listener): this {
    const listeners = this.#listeners.get(event) ?? [];
    listeners.push(listener);
    this.#listeners.set(event, listeners);
    return this;
  }

  /**
   * Sends a message to the pthread, starting its worker on the first message after `load`.
   *
   * @param message Emscripten's message.
   * @param transfer Objects to transfer.
   */
  postMessage(message: unknown, transfer?: Transferable[]): void {
    if (this.#real === undefined) {
      if (this.#load === undefined && (message as { cmd?: unknown })?.cmd === "load") {
        this.#load = [message, transfer];
        queueMicrotask(() => this.#emit("message", { cmd: "loaded" }));
        return;
      }
      this.#real = this.#start();
    }
    this.#send(message, transfer);
  }

  /** Does nothing: these workers never keep the process alive. */
  ref(): void {}

  /** Does nothing: these workers never keep the process alive. */
  unref(): void {}

  /**
   * Stops the worker, if it was started.
   *
   * @returns Resolves once it stopped.
   */
  async terminate(): Promise<void> {
    const real = this.#real;
    this.#real = undefined;
    if (real !== undefined) await real.terminate();
  }

  #start(): NodeWorker {
    const real = new NodeWorker(_WORKER_URL);
    real.unref();
    // The worker holds back what follows `load` until it has loaded, and does not answer
    // `load` again: the main thread may be blocked (in Atomics.wait) until the pthread runs.
    real.on("message", (data: unknown) => this.#emit("message", data));
    real.on("error", (error: unknown) => this.#emit("error", error));
    real.postMessage({ cmd: "bnlab:init", url: this.#url, answered: this.#load !== undefined });
    // deno-lint-ignore no-explicit-any
    if (this.#load !== undefined) real.postMessage(this.#load[0], this.#load[1] as any);
    return real;
  }

  #send(message: unknown, transfer: Transferable[] | undefined): void {
    // deno-lint-ignore no-explicit-any
    this.#real?.postMessage(message, transfer as any);
  }

  #emit(event: string, value: unknown): void {
    const listeners = this.#listeners.get(event);
    if (listeners !== undefined && listeners.length > 0) {
      for (const listener of listeners) listener(value);
    } else if (event === "message") {
      this.onmessage?.({ data: value });
    } else if (event === "error") {
      this.onerror?.(value);
    }
  }
}

/**
 * Runs `start` (which starts tfjs's wasm backend) so that its threaded build can run
 * `threads` threads: with {@linkcode WasmPthreadWorker} as the global `Worker`, which
 * Emscripten's pthread pool uses (tfjs's own attempt to replace it with
 * `node:worker_threads`'s is ignored), and with `os.cpus()` reporting `2 × threads`
 * cores, since tfjs caps its thread count at half the logical cores (which would give one
 * thread on a 2-core machine). Both are restored afterwards. A trial worker runs first:
 * once tfjs starts, its main thread blocks until each pthread runs, so a worker that cannot
 * start (say, without read permission for `lib/wasm_threads_worker.ts`) would hang it.
 *
 * @param threads The thread count that tfjs's cap must allow (set it with
 *   `setThreadsCount`).
 * @param start Starts the backend, for example `() => tf.setBackend("wasm")`.
 * @returns What `start` returns.
 * @throws If the trial worker fails or does not answer within 30 s.
 *
 * @example
 * ```ts ignore
 * import * as tf from "@tensorflow/tfjs";
 * import { setThreadsCount } from "@tensorflow/tfjs-backend-wasm";
 *
 * tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", true);
 * setThreadsCount(2);
 * await withWasmPthreads(2, () => tf.setBackend("wasm"));
 * ```
 */
export async function withWasmPthreads<T>(threads: number, start: () => Promise<T>): Promise<T> {
  // Once tfjs starts, its main thread blocks until each pthread runs: a worker that cannot
  // start would hang it, so try one first.
  await _ping();
  const original = Object.getOwnPropertyDescriptor(globalThis, "Worker");
  Object.defineProperty(globalThis, "Worker", {
    configurable: true,
    get: () => WasmPthreadWorker,
    set: () => {},
  });
  const cpus = os.cpus;
  os.cpus = () => {
    const real = cpus();
    return Array.from({ length: 2 * threads }, (_, i) => real[i % real.length]);
  };
  try {
    return await start();
  } finally {
    os.cpus = cpus;
    if (original === undefined) delete (globalThis as { Worker?: unknown }).Worker;
    else Object.defineProperty(globalThis, "Worker", original);
  }
}

/** Starts a worker on {@linkcode _WORKER_URL} and waits for its answer to a ping. */
async function _ping(): Promise<void> {
  let worker: NodeWorker;
  try {
    worker = new NodeWorker(_WORKER_URL);
  } catch (error) {
    throw _pingError(error);
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      worker.on("message", (data: { cmd?: unknown }) => {
        if (data?.cmd === "bnlab:pong") resolve();
      });
      worker.on("error", (error: unknown) => reject(_pingError(error)));
      worker.on("exit", (code: number) => reject(_pingError(`it exited with code ${code}`)));
      timer = setTimeout(
        () => reject(_pingError(`no answer within ${_PING_TIMEOUT_MS / 1000} s`)),
        _PING_TIMEOUT_MS,
      );
      worker.postMessage({ cmd: "bnlab:ping" });
    });
  } finally {
    clearTimeout(timer);
    await worker.terminate();
  }
}

function _pingError(cause: unknown): Error {
  const received = cause instanceof Error ? cause.message : String(cause);
  return new Error(
    `wasm threads: expected a worker running ${_WORKER_URL.href} to answer, received: ${received}`,
  );
}
