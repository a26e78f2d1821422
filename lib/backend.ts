/**
 * Chooses and sets up the TensorFlow.js backend: wasm (default), cpu or webgpu.
 *
 * This is the only module that selects a backend, and the only one outside `lib/kernels/` that
 * imports from it: it installs bnlab's kernels through that layer's one door,
 * `installKernels` (`lib/kernels/mod.ts`). For wasm it loads the `.wasm` binaries from the
 * installed `@tensorflow/tfjs-backend-wasm` package (never the network), and the kernels
 * installed include those tfjs's wasm backend lacks, such as `Conv2DBackpropFilter`, so that
 * conv layers train on wasm, and those that replace its slow ones, which keep tfjs's kernel as
 * their fallback. With `threads` > 1 it starts tfjs's threaded SIMD binary, whose pthreads
 * Deno cannot start by itself (`lib/wasm_threads.ts`). For every backend the kernels include
 * faster gradients with tfjs's floats.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { fileURLToPath } from "node:url";
import {
  type BlasInfo,
  installKernels,
  type NativeInfo,
  setBlasPoolThreads,
} from "./kernels/mod.ts";
import { WASM_PTHREAD_POOL_SIZE, withWasmPthreads } from "./wasm_threads.ts";

/** A backend {@linkcode initBackend} can set up. */
export type BackendName = "wasm" | "cpu" | "webgpu";

/** The backends {@linkcode initBackend} accepts, in the order of its error message. */
export const BACKEND_NAMES: readonly BackendName[] = ["wasm", "cpu", "webgpu"];

/** What a backend really runs with, for the provenance of results. */
export interface BackendInfo {
  /** The backend's name, as `tf.getBackend()` reports it. */
  readonly name: BackendName;
  /** Whether the wasm SIMD binary is in use (always false for cpu and webgpu). */
  readonly simd: boolean;
  /**
   * Threads the wasm backend's XNNPACK uses (tfjs's `getThreadsCount()`): 1 unless wasm
   * was started with `threads` > 1 (tfjs sees `process.versions.node` under Deno and would
   * load its single-threaded binary). 1 for cpu (plain JavaScript); 1 for webgpu (the GPU
   * does the work).
   */
  readonly threads: number;
  /** The version of `@tensorflow/tfjs-core` in use. */
  readonly tfjsVersion: string;
  /** The WebGPU adapter webgpu runs on (webgpu only; absent for wasm and cpu). */
  readonly adapter?: WebGpuAdapterInfo;
  /**
   * Whether wasm's matrix and convolution kernels run OpenBLAS through FFI, and which library
   * (wasm only; see `lib/kernels/blas.ts`). Read when wasm starts: `setBlasEnabled` can
   * switch the kernels later within a process.
   */
  readonly blas?: BlasInfo;
  /**
   * Whether bnlab's native helper kernels (im2col, col2im, MaxPoolGrad and the split of
   * products over threads) run, and which library (wasm only; see `lib/kernels/native_library.ts`).
   */
  readonly native?: NativeInfo;
}

/**
 * Which WebGPU adapter the webgpu backend runs on, from `GPUAdapter.info`: results say
 * whether they came from a GPU or from a software (fallback) adapter.
 *
 * @example Record the adapter (where `navigator.gpu` offers one)
 * ```ts ignore
 * import { initBackend } from "./backend.ts";
 *
 * const { adapter } = await initBackend("webgpu");
 * console.log(adapter?.description, adapter?.isFallbackAdapter);
 * // "llvmpipe (LLVM 15.0.6, 256 bits)" true: Deno's software adapter, not a GPU
 * ```
 */
export interface WebGpuAdapterInfo {
  /** The vendor, a name or a PCI vendor id ("" when the browser/runtime hides it). */
  readonly vendor: string;
  /** The GPU family ("" when unknown). */
  readonly architecture: string;
  /** The device id ("" when unknown). */
  readonly device: string;
  /** A human-readable description of the adapter, such as its driver's name. */
  readonly description: string;
  /** True for a software (CPU) adapter: WebGPU timings then say nothing about a GPU. */
  readonly isFallbackAdapter: boolean;
}

/** Options of {@linkcode initBackend}. */
export interface InitBackendOptions {
  /**
   * Directory holding tfjs's `.wasm` binaries. Read by the first wasm set-up only: tfjs
   * cannot reload them afterwards.
   * @default {the `dist/` directory of the installed `@tensorflow/tfjs-backend-wasm`}
   */
  wasmDir?: string;
  /**
   * Threads for wasm's XNNPACK, 1 to {@linkcode MAX_WASM_THREADS}. More than 1 starts
   * tfjs's threaded SIMD binary, its pthreads in workers; this pays only when the cores
   * are otherwise idle (two trainings side by side on two cores are faster with one thread
   * each). Read by the first wasm set-up only: tfjs starts wasm once per process, and a
   * later call asking for another count fails.
   * @default {1, or whatever the first wasm set-up used}
   */
  threads?: number;
}

/**
 * The most threads {@linkcode initBackend} gives wasm: the size of the pthread pool tfjs
 * allocates.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { initBackend, MAX_WASM_THREADS } from "./backend.ts";
 *
 * await assert.rejects(() => initBackend("wasm", { threads: MAX_WASM_THREADS + 1 }));
 * ```
 */
export const MAX_WASM_THREADS: number = WASM_PTHREAD_POOL_SIZE;

/** One set-up per backend, shared by concurrent and repeated calls. */
const _setups = new Map<BackendName, Promise<BackendInfo>>();
/** The info of each backend whose set-up finished. */
const _infos = new Map<string, BackendInfo>();

/**
 * Makes `name` the active TensorFlow.js backend, setting it up on first use.
 *
 * Calling it again is cheap and safe: a backend is set up once, and later calls only
 * switch back to it when another one is active. Setting up wasm registers the kernels
 * of `lib/kernels/` (those wasm lacks, and faster ones in place of some of its own);
 * webgpu's package is imported only when asked for, and fails with a clear error when
 * `navigator.gpu` offers no adapter.
 *
 * @param name The backend: `"wasm"` (the default), `"cpu"` or `"webgpu"`.
 * @param options Where the wasm binaries are, and how many threads wasm runs.
 * @returns What the backend runs with.
 * @throws If `name` is not a known backend, the backend fails to start, or wasm cannot
 *   run the `threads` asked for (it runs another count, or the threaded binary fails).
 *
 * @example Start wasm and read what it runs with
 * ```ts
 * import assert from "node:assert/strict";
 * import { initBackend } from "./backend.ts";
 *
 * const info = await initBackend("wasm");
 * assert.equal(info.name, "wasm");
 * assert.equal(info.threads, 1); // unless asked for: Deno looks like Node.js to tfjs
 * ```
 *
 * @example Two threads (in a process of its own: wasm starts once per process)
 * ```ts ignore
 * import { initBackend } from "./backend.ts";
 *
 * const info = await initBackend("wasm", { threads: 2 });
 * console.log(info.threads); // 2
 * ```
 */
export async function initBackend(
  name: BackendName = "wasm",
  options: InitBackendOptions = {},
): Promise<BackendInfo> {
  if (!BACKEND_NAMES.includes(name)) {
    throw new Error(
      `initBackend: backend must be one of ${BACKEND_NAMES.join(", ")}, received ${
        JSON.stringify(name)
      }`,
    );
  }
  const threads = options.threads;
  if (
    threads !== undefined &&
    !(Number.isInteger(threads) && threads >= 1 && threads <= MAX_WASM_THREADS)
  ) {
    throw new Error(
      `initBackend: threads must be an integer from 1 to ${MAX_WASM_THREADS}, received ${threads}`,
    );
  }
  let setup = _setups.get(name);
  if (setup === undefined) {
    setup = _setUp(name, options);
    _setups.set(name, setup);
    // A failed set-up may be retried (say, with another wasmDir).
    setup.catch(() => _setups.delete(name));
  }
  const info = await setup;
  if (name === "wasm" && threads !== undefined && info.threads !== threads) {
    throw new Error(
      `initBackend: wasm runs ${info.threads} thread(s) (tfjs starts wasm once per process), ` +
        `received threads: ${threads}; start another process for another count`,
    );
  }
  if (tf.engine().backendName !== name && !(await tf.setBackend(name))) {
    throw new Error(`initBackend: could not switch to backend "${name}", tf.setBackend failed`);
  }
  return info;
}

/**
 * The info of the active backend, for writers of results.
 *
 * @returns What the active backend runs with.
 * @throws If no backend has been made active through {@linkcode initBackend}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { backendInfo, initBackend } from "./backend.ts";
 *
 * await initBackend("cpu");
 * assert.deepEqual(backendInfo(), {
 *   name: "cpu",
 *   simd: false,
 *   threads: 1,
 *   tfjsVersion: "4.22.0",
 * });
 * ```
 */
export function backendInfo(): BackendInfo {
  const active = tf.engine().backendName;
  const info = active == null ? undefined : _infos.get(active);
  if (info === undefined) {
    throw new Error(
      `backendInfo: needs a backend made active by initBackend, received active backend ${
        JSON.stringify(active ?? null)
      }; call initBackend(${BACKEND_NAMES.map((n) => `"${n}"`).join(" | ")}) first`,
    );
  }
  return info;
}

/**
 * Lets the matrix products' slices run on `threads` threads from now on (1 or 2): a worker
 * process whose sibling processes have ended takes their cores (lib/experiments/workers.ts).
 * The floats do not depend on it; where the products are not cut it does nothing.
 *
 * @param threads 1 or 2.
 * @returns The threads they ran on before.
 *
 * @example
 * ```ts
 * import { backendInfo, initBackend, setProductThreads } from "./backend.ts";
 *
 * await initBackend("wasm");
 * const threads = backendInfo().blas?.sliceThreads ?? 1;
 * console.log(setProductThreads(threads) === threads); // true
 * ```
 */
export function setProductThreads(threads: number): number {
  return setBlasPoolThreads(threads);
}

async function _setUp(name: BackendName, options: InitBackendOptions): Promise<BackendInfo> {
  let info: BackendInfo;
  switch (name) {
    case "wasm":
      info = await _setUpWasm(options);
      break;
    case "cpu":
      installKernels({ backend: "cpu" });
      await _activate("cpu");
      info = _info("cpu", false, 1);
      break;
    case "webgpu":
      installKernels({ backend: "webgpu" });
      info = await _setUpWebGpu();
      break;
  }
  _infos.set(name, info);
  return info;
}

async function _setUpWasm(options: InitBackendOptions): Promise<BackendInfo> {
  // Importing the package registers the backend (its Node.js build, which Deno loads, reads
  // the binaries from disk).
  const wasm = await import("@tensorflow/tfjs-backend-wasm");
  const dir = options.wasmDir ??
    fileURLToPath(new URL(".", import.meta.resolve("@tensorflow/tfjs-backend-wasm")));
  wasm.setWasmPaths(dir.endsWith("/") ? dir : `${dir}/`);
  // bnlab's kernels, registered for wasm once its package has registered tfjs's.
  installKernels({ backend: "wasm" });
  // tfjs picks the SIMD binary exactly when this flag holds (and no single wasmPath is set).
  const simd = await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT") as boolean;
  const threads = options.threads ?? 1;
  if (threads === 1) {
    await _activate("wasm", ` from ${dir}`);
  } else {
    if (!simd) {
      throw new Error(
        `initBackend: wasm threads need the threaded SIMD binary, so WebAssembly SIMD, ` +
          `received WASM_HAS_SIMD_SUPPORT false; asked for threads: ${threads}`,
      );
    }
    // tfjs turns this off whenever it sees Node.js (as under Deno).
    tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", true);
    wasm.setThreadsCount(threads);
    await withWasmPthreads(threads, () => _activate("wasm", ` (${threads} threads) from ${dir}`));
  }
  const running = wasm.getThreadsCount();
  if (running !== threads) {
    throw new Error(
      `initBackend: wasm expected ${threads} thread(s), received ${running} from ` +
        `getThreadsCount()`,
    );
  }
  const { blas, native } = installKernels({ backend: "wasm" });
  return Object.freeze({ ..._info("wasm", simd, running), blas, native });
}

async function _setUpWebGpu(): Promise<BackendInfo> {
  const gpu = (globalThis.navigator as { gpu?: GPU } | undefined)?.gpu;
  const adapter = gpu === undefined ? null : await gpu.requestAdapter();
  if (adapter === null) {
    throw new Error(
      `initBackend: backend "webgpu" needs a WebGPU adapter, received ${
        gpu === undefined ? "no navigator.gpu" : "null from navigator.gpu.requestAdapter()"
      }; use "wasm" or "cpu" on this machine`,
    );
  }
  await import("@tensorflow/tfjs-backend-webgpu");
  await _activate("webgpu");
  // tfjs's backend requests its own adapter with these options: ask for the same one.
  const powerPreference = tf.env().getBool("WEBGPU_USE_LOW_POWER_GPU")
    ? "low-power"
    : "high-performance";
  const used = (await gpu?.requestAdapter({ powerPreference })) ?? adapter;
  return Object.freeze({ ..._info("webgpu", false, 1), adapter: _adapterInfo(used) });
}

function _adapterInfo(adapter: GPUAdapter): WebGpuAdapterInfo {
  const { vendor, architecture, device, description, isFallbackAdapter } = adapter.info;
  return Object.freeze({ vendor, architecture, device, description, isFallbackAdapter });
}

async function _activate(name: BackendName, where = ""): Promise<void> {
  let ok: boolean;
  try {
    ok = await tf.setBackend(name);
  } catch (error) {
    throw new Error(`initBackend: could not start backend "${name}"${where}: ${_message(error)}`);
  }
  if (!ok) {
    throw new Error(
      `initBackend: could not start backend "${name}"${where}, tf.setBackend returned false`,
    );
  }
}

function _info(name: BackendName, simd: boolean, threads: number): BackendInfo {
  return Object.freeze({ name, simd, threads, tfjsVersion: tf.version_core });
}

function _message(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (typeof error === "object" && error !== null && "message" in error) {
    return String(error.message);
  }
  return String(error);
}
