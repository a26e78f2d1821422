/**
 * The body of one pthread of tfjs's threaded SIMD wasm binary under Deno, started by
 * `lib/wasm_threads.ts` as a `node:worker_threads` worker (unlike a web worker, it can be
 * `unref()`ed, so idle pthreads never keep the process alive).
 *
 * tfjs hands each pthread two classic scripts: Emscripten's worker script (a blob URL) and
 * the module factory (a Blob, loaded with `importScripts`). Deno runs module workers only,
 * and both scripts take their Node.js branch when they see `process`, which needs
 * `require`. So this module evaluates them itself, in a scope where `process` is undefined
 * (Emscripten then takes its web-worker branch), `self` is a stand-in object whose
 * `onmessage` receives the messages of `parentPort`, and `importScripts` evaluates a script
 * read beforehand (`Blob#text` is asynchronous, `importScripts` is not).
 *
 * Messages are handled in order, one at a time: first `{ cmd: "bnlab:init", url, answered }`
 * with the worker script's URL (and whether the main thread answered `load` itself), then
 * Emscripten's own (`load`, `run`, …); those after `load` wait until the module is loaded.
 *
 * @module
 */
import { parentPort } from "node:worker_threads";

type Message = { cmd?: string; url?: string; urlOrBlob?: unknown } & Record<string, unknown>;

/** The key under which the module factory of a `load` message is read beforehand. */
const _MAIN_SCRIPT = "bnlab:main-script";

/** The main thread; null when imported outside a worker (say, by a test run): then idle. */
const port = parentPort!;

/** Scripts `importScripts` can evaluate, by URL. */
const _scripts = new Map<string, string>();

/** Stands in for the worker's `self`: Emscripten sets `onmessage` and the like on it. */
const _self: Record<string, unknown> = { location: { href: "blob:bnlab-pthread" } };

/** Whether the main thread answered `load` itself, so the worker's `loaded` is dropped. */
let _answered = false;
/** Resolves `_loading` once the worker script posts `loaded`. */
let _onLoaded: (() => void) | undefined;

function _postMessage(message: unknown, transfer?: Transferable[]): void {
  if ((message as { cmd?: unknown })?.cmd === "loaded") {
    _onLoaded?.();
    _onLoaded = undefined;
    if (_answered) return;
  }
  // deno-lint-ignore no-explicit-any
  port.postMessage(message, transfer as any);
}

function _importScripts(...urls: string[]): void {
  for (const url of urls) {
    const text = _scripts.get(url);
    if (text === undefined) {
      throw new Error(
        `wasm_threads_worker: importScripts expected a script read beforehand, received ${
          JSON.stringify(url)
        }`,
      );
    }
    // The factory script is `var WasmBackendModuleThreadedSimd = function …`.
    const factory = _evaluate(`${text}\n;return WasmBackendModuleThreadedSimd;`);
    (globalThis as Record<string, unknown>).WasmBackendModuleThreadedSimd = factory;
  }
}

// The three TypeScript helpers that tfjs's ES5 Node.js build uses inside the factory.
function __values(o: unknown): Iterator<unknown> {
  return (o as Iterable<unknown>)[Symbol.iterator]();
}
function __read(o: Iterable<unknown>, n?: number): unknown[] {
  const values = [...o];
  return n === undefined ? values : values.slice(0, n);
}
function __spreadArray(to: unknown[], from: Iterable<unknown>): unknown[] {
  return [...to, ...from];
}

/** Runs `body` as a sloppy-mode function with the stand-ins in scope; returns its result. */
function _evaluate(body: string): unknown {
  const names = [
    "process",
    "self",
    "postMessage",
    "importScripts",
    "startWorker",
    "__values",
    "__read",
    "__spreadArray",
  ];
  // The worker script calls the factory as a global, once importScripts has defined it;
  // the factory calls startWorker, which the worker script sets on self, as a global.
  const fn = new Function(...names, body);
  return fn(
    undefined,
    _self,
    _postMessage,
    _importScripts,
    (instance: unknown) => (_self.startWorker as (instance: unknown) => void)(instance),
    __values,
    __read,
    __spreadArray,
  );
}

async function _handle(data: Message): Promise<void> {
  if (data?.cmd === "bnlab:ping") {
    // The main thread's check, before it may block waiting for a pthread.
    port.postMessage({ cmd: "bnlab:pong" });
    return;
  }
  if (data?.cmd === "bnlab:init") {
    const response = await fetch(data.url as string);
    _evaluate(await response.text());
    _answered = data.answered === true;
    return;
  }
  if (data?.cmd === "load" && data.urlOrBlob instanceof Blob) {
    _scripts.set(_MAIN_SCRIPT, await data.urlOrBlob.text());
    data = { ...data, urlOrBlob: _MAIN_SCRIPT };
  }
  // What follows `load` waits until the worker script has loaded the module.
  const loading = data?.cmd === "load"
    ? new Promise<void>((resolve) => _onLoaded = resolve)
    : undefined;
  const onmessage = _self.onmessage as ((event: { data: unknown }) => void) | undefined;
  if (onmessage === undefined) {
    throw new Error(
      `wasm_threads_worker: expected the worker script to set onmessage before ${
        JSON.stringify(data?.cmd)
      }, received none`,
    );
  }
  onmessage({ data });
  await loading;
}

let _queue: Promise<void> = Promise.resolve();
parentPort?.on("message", (data: Message) => {
  _queue = _queue.then(() => _handle(data)).catch((error) => {
    // Surfaces on the main thread as the worker's "error" event.
    setTimeout(() => {
      throw error;
    });
  });
});
