/**
 * An optimized BLAS (OpenBLAS from Debian) reached through Deno's FFI, for the hot kernels
 * of `lib/kernels/blas_kernels.ts`: `cblas_sgemm` runs on `Float32Array` views of the wasm
 * backend's heap, so no operand is copied.
 *
 * The library is looked for on first use: `BNLAB_BLAS` set to `off` (or `0`, `false`,
 * `none`) disables it; set to a path, only that file is tried; unset (or `on`), the usual
 * Debian paths are tried. A multi-threaded OpenBLAS is set to one thread of its own unless
 * `OPENBLAS_NUM_THREADS` says otherwise: its threading splits LeNet's small products badly
 * (two threads are slower than one here).
 *
 * Instead, bnlab's native kernels (`native_library.ts`) cut each large product into two slices of
 * its output and run them on `BNLAB_BLAS_THREADS` threads (1 or 2; default 2 where the
 * machine has two cores), each slice a single-threaded call of the library: nearly twice
 * the speed of one thread on LeNet's convolutions. How a product is cut depends on its shape
 * alone, so the floats are the same on one thread or two (as in `--workers` processes,
 * which get one thread each on two cores); only switching the native kernels off (uncut
 * products) changes them, by float rounding. Two threads need a library safe to call from
 * several threads at once, so OpenBLAS's pthread build (`libopenblas0-pthread`) is tried
 * first; its serial build (`SINGLE_THREADED` in its config) serializes such calls, and runs
 * the slices on one thread. Without the library, or without the `--allow-ffi` permission,
 * nothing fails: {@linkcode blasInfo} says why BLAS is off, and the kernels run their wasm
 * fallbacks.
 *
 * Where the library is OpenBLAS 0.3.21 on its Haswell kernels (Debian's, with
 * `OPENBLAS_CORETYPE=Haswell`) and the native kernels were built for AVX-512, the products
 * themselves run on bnlab's kernel (`native/openblas_order.c`): the same sums in the same order,
 * so every float is the library's, in vectors twice as wide. {@linkcode setOpenBlasOrder}
 * switches it off for comparisons; `BlasInfo.openblasOrder` records it.
 *
 * @module
 */
import { blasThreadsAsked, MAX_BLAS_THREADS, readEnv, readSwitch } from "../env.ts";
import { nativeInfo, nativeKernels, SGEMM_FFI_PARAMETERS } from "./native_library.ts";

/** Which BLAS the kernels use, for the provenance of results. */
export interface BlasInfo {
  /** Whether the BLAS kernels run (the library is loaded and not switched off). */
  readonly enabled: boolean;
  /** The file loaded, or null when none is. */
  readonly library: string | null;
  /** The library's own description (`openblas_get_config()`), when it has one. */
  readonly config?: string;
  /** Threads the library runs with (`openblas_get_num_threads()`), when it says. */
  readonly threads?: number;
  /**
   * Slices a large product is cut into (2 by bnlab's native kernels; 1: not cut, the native
   * kernels off). It decides the floats: each slice sums in its own order.
   */
  readonly slices: number;
  /** Threads the slices run on (`BNLAB_BLAS_THREADS`, at most `slices`). */
  readonly sliceThreads: number;
  /** Why the slices run on fewer threads than `BNLAB_BLAS_THREADS` asks, or are not cut. */
  readonly sliceReason?: string;
  /**
   * Whether the products run on bnlab's AVX-512 kernel with the library's floats
   * (`native/openblas_order.c`): only for OpenBLAS 0.3.21 on its Haswell kernels, which it
   * reproduces bit for bit, and only where the native kernels were built for AVX-512.
   */
  readonly openblasOrder: boolean;
  /** Why BLAS is off, when it is. */
  readonly reason?: string;
}

/** `CblasRowMajor`, `CblasNoTrans` and `CblasTrans` of cblas.h. */
const _ROW_MAJOR = 101;
const _NO_TRANS = 111;
const _TRANS = 112;

/**
 * Where Debian's OpenBLAS packages put the library: the pthread build first (safe to call
 * from several threads at once), then the serial build, the `update-alternatives` link and
 * the dynamic linker's search.
 */
export const BLAS_LIBRARY_PATHS: readonly string[] = [
  "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0",
  "/usr/lib/aarch64-linux-gnu/openblas-pthread/libopenblas.so.0",
  "/usr/lib/x86_64-linux-gnu/openblas-serial/libopenblas.so.0",
  "/usr/lib/aarch64-linux-gnu/openblas-serial/libopenblas.so.0",
  "/usr/lib/x86_64-linux-gnu/libopenblas.so.0",
  "/usr/lib/aarch64-linux-gnu/libopenblas.so.0",
  "libopenblas.so.0",
];

const _SYMBOLS = {
  cblas_sgemm: { parameters: ["i32", /* order */ ...SGEMM_FFI_PARAMETERS], result: "void" },
} as const;

const _OPENBLAS_SYMBOLS = {
  openblas_get_config: { parameters: [], result: "pointer", optional: true },
  openblas_get_num_threads: { parameters: [], result: "i32", optional: true },
  openblas_set_num_threads: { parameters: ["i32"], result: "void", optional: true },
  openblas_get_corename: { parameters: [], result: "pointer", optional: true },
} as const;

/** The library and kernels whose floats `native/openblas_order.c` reproduces. */
const _OPENBLAS_ORDER = { version: "OpenBLAS 0.3.21 ", core: "Haswell" } as const;

type _Library = Deno.DynamicLibrary<typeof _SYMBOLS & typeof _OPENBLAS_SYMBOLS>;

/** The loaded library and the switch of {@linkcode setBlasEnabled}. */
interface _State {
  library: _Library | null;
  info: BlasInfo;
  enabled: boolean;
  /** Slices of a large product (1: not cut) and the threads that run them. */
  slices: number;
  threads: number;
  /** Whether bnlab's kernel may take the products (`BlasInfo.openblasOrder`). */
  openblasOrder: boolean;
}

/** The most threads `BNLAB_BLAS_THREADS` may ask for: one per slice of a product. */
export { MAX_BLAS_THREADS };

/** Products of fewer FLOPs (2·M·N·K) are not cut: a slice would take under ≈10 µs. */
const _SLICE_MIN_FLOPS = 2e6;

/**
 * Whether a product runs cut into the pool's slices (else as one call). The one rule for
 * `sgemmUnchecked` and {@linkcode openBlasOrderPlan}: a gathered product must be cut as the
 * product it replaces, or its floats differ.
 */
function _cut(state: _State, m: number, n: number, k: number): boolean {
  return state.slices > 1 && 2 * m * n * k >= _SLICE_MIN_FLOPS;
}

let _state: _State | undefined;

/**
 * Which BLAS the kernels use: loads it on first call (see the module doc for the search).
 *
 * @returns Whether BLAS is on, the file loaded, and otherwise why not.
 *
 * @example Record it with results; it never throws
 * ```ts
 * import assert from "node:assert/strict";
 * import { blasInfo } from "./blas.ts";
 *
 * const info = blasInfo();
 * assert.equal(typeof info.enabled, "boolean");
 * if (!info.enabled) console.log(`BLAS off: ${info.reason}`);
 * ```
 */
export function blasInfo(): BlasInfo {
  const state = _load();
  return state.enabled ? state.info : {
    ...state.info,
    enabled: false,
    reason: state.info.reason ?? "switched off by setBlasEnabled(false)",
  };
}

/**
 * Whether the BLAS kernels run now: the library is loaded and not switched off. The
 * kernels ask this on every call.
 *
 * @returns True when `cblas_sgemm` may be called.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { blasEnabled, blasInfo } from "./blas.ts";
 *
 * assert.equal(blasEnabled(), blasInfo().enabled);
 * ```
 */
export function blasEnabled(): boolean {
  return _load().enabled;
}

/**
 * Switches the BLAS kernels off (they run their wasm fallbacks) or back on, in this process;
 * for comparisons of both paths in one run. Switching on has no effect when no library is
 * loaded.
 *
 * @param enabled Whether the BLAS kernels should run.
 * @returns Whether they ran before the call.
 *
 * @example Run something on the wasm kernels, then restore the previous state
 * ```ts
 * import assert from "node:assert/strict";
 * import { blasEnabled, setBlasEnabled } from "./blas.ts";
 *
 * const previous = setBlasEnabled(false);
 * assert.equal(blasEnabled(), false);
 * setBlasEnabled(previous);
 * assert.equal(blasEnabled(), previous);
 * ```
 */
export function setBlasEnabled(enabled: boolean): boolean {
  const state = _load();
  const previous = state.enabled;
  state.enabled = enabled && state.library !== null;
  return previous;
}

/**
 * Sets the threads a product's slices run on, in this process (at most the threads the
 * pool started with, `blasInfo().sliceThreads`); for comparisons of one thread and two in
 * one run. The floats do not change.
 *
 * @param threads 1, or up to `blasInfo().sliceThreads`.
 * @returns The threads they ran on before the call.
 * @throws If `threads` is not an integer from 1 to `blasInfo().sliceThreads`.
 *
 * @example Time one thread, then restore
 * ```ts
 * import assert from "node:assert/strict";
 * import { setBlasSliceThreads } from "./blas.ts";
 *
 * const previous = setBlasSliceThreads(1);
 * assert.equal(setBlasSliceThreads(previous), 1);
 * ```
 */
export function setBlasSliceThreads(threads: number): number {
  const state = _load();
  const most = state.info.sliceThreads;
  if (!Number.isInteger(threads) || threads < 1 || threads > most) {
    throw new Error(
      `setBlasSliceThreads: threads must be an integer from 1 to ${most} (the threads the ` +
        `pool started with), received ${threads}`,
    );
  }
  const previous = state.threads;
  state.threads = threads;
  return previous;
}

/**
 * Restarts the products' thread pool with `threads` threads, e.g. when a core that another
 * process used has become free (lib/experiments/workers.ts); the slices, hence the floats, do
 * not change. Does nothing when the products are not cut (BLAS or the native kernels off) or the
 * library serializes calls from several threads.
 *
 * @param threads 1 to {@linkcode MAX_BLAS_THREADS}.
 * @returns The threads the pool had.
 * @throws If `threads` is out of range, or the pool cannot be started again.
 *
 * @example Back to the same count
 * ```ts
 * import assert from "node:assert/strict";
 * import { blasInfo, setBlasPoolThreads } from "./blas.ts";
 *
 * const threads = blasInfo().sliceThreads;
 * assert.equal(setBlasPoolThreads(threads), threads);
 * ```
 */
export function setBlasPoolThreads(threads: number): number {
  if (!Number.isInteger(threads) || threads < 1 || threads > MAX_BLAS_THREADS) {
    throw new Error(
      `setBlasPoolThreads: threads must be an integer from 1 to ${MAX_BLAS_THREADS}, ` +
        `received ${threads}`,
    );
  }
  const state = _load();
  const previous = state.info.sliceThreads;
  const path = state.info.library;
  if (threads === previous || path === null || state.slices <= 1) return previous;
  const { slices, threads: started, reason } = _startSlices(path, state.info.config, threads);
  if (slices <= 1) throw new Error(`setBlasPoolThreads: ${reason}`);
  const { sliceReason: _, ...info } = state.info;
  state.info = Object.freeze({
    ...info,
    sliceThreads: started,
    ...(reason !== undefined && { sliceReason: reason }),
  });
  state.threads = started;
  return previous;
}

/**
 * Switches bnlab's kernel with OpenBLAS's floats (`BlasInfo.openblasOrder`) off, or back on
 * where it could start; for comparisons with the library in one run. The floats do not change.
 *
 * @param enabled Whether the products may run on it.
 * @returns Whether they ran on it before the call.
 *
 * @example Time the library's own products, then restore
 * ```ts
 * import assert from "node:assert/strict";
 * import { blasInfo, setOpenBlasOrder } from "./blas.ts";
 *
 * const previous = setOpenBlasOrder(false);
 * assert.equal(previous, blasInfo().openblasOrder);
 * setOpenBlasOrder(previous);
 * ```
 */
export function setOpenBlasOrder(enabled: boolean): boolean {
  const state = _load();
  const previous = state.openblasOrder;
  state.openblasOrder = enabled && state.info.openblasOrder;
  nativeKernels()?.bnlab_openblas_order(state.openblasOrder ? 1 : 0);
  return previous;
}

/**
 * The threads a product's slices run on now (1 when BLAS or the slices are off); the
 * native kernels that split their work the same way use as many.
 *
 * @returns 1 or 2.
 *
 * @example
 * ```ts
 * import { blasSliceThreads } from "./blas.ts";
 * console.log([1, 2].includes(blasSliceThreads())); // true
 * ```
 */
export function blasSliceThreads(): number {
  const state = _load();
  return state.library === null ? 1 : Math.max(1, state.threads);
}

/**
 * How {@linkcode sgemmUnchecked} runs a product of this shape on bnlab's kernel with
 * OpenBLAS's floats: as one call (`uncut`) or in the slices of the products' pool, on
 * `threads` threads. Null where that kernel is off (the products then run on the BLAS).
 *
 * @param m Rows of C.
 * @param n Columns of C.
 * @param k Terms of each sum.
 * @returns The plan, or null.
 *
 * @example
 * ```ts
 * import { blasInfo, openBlasOrderPlan } from "./blas.ts";
 * console.log((openBlasOrderPlan(64, 64, 64) !== null) === blasInfo().openblasOrder); // true
 * ```
 */
export function openBlasOrderPlan(
  m: number,
  n: number,
  k: number,
): { uncut: boolean; threads: number } | null {
  const state = _state ?? _load();
  if (!state.openblasOrder || state.library === null || nativeKernels() === null) return null;
  return {
    uncut: !_cut(state, m, n, k),
    threads: state.threads,
  };
}

/**
 * C = alpha·op(A)·op(B) + beta·C in single precision, row-major, through `cblas_sgemm`:
 * op(A) is M×K, op(B) K×N, C M×N; `lda`, `ldb`, `ldc` are the row strides (in elements) of
 * A, B and C as stored. The arrays may be views of any buffer (such as the wasm heap): the
 * library reads and writes them in place, from their first element.
 *
 * @param transA Whether A is stored as K×M (op(A) = Aᵀ).
 * @param transB Whether B is stored as N×K (op(B) = Bᵀ).
 * @param m Rows of op(A) and C.
 * @param n Columns of op(B) and C.
 * @param k Columns of op(A), rows of op(B).
 * @param alpha The factor of the product.
 * @param a A, from its first element.
 * @param lda A's row stride.
 * @param b B, from its first element.
 * @param ldb B's row stride.
 * @param beta The factor of C's previous contents (0: C is only written).
 * @param c C, from its first element.
 * @param ldc C's row stride.
 * @throws If BLAS is off, or an array is too short for its matrix (checked, as the library
 *   would read or write past it).
 *
 * @example A 2×2 product
 * ```ts
 * import assert from "node:assert/strict";
 * import { blasEnabled, sgemm } from "./blas.ts";
 *
 * if (blasEnabled()) {
 *   const a = new Float32Array([1, 2, 3, 4]);
 *   const b = new Float32Array([1, 0, 0, 1]);
 *   const c = new Float32Array(4);
 *   sgemm(true, false, 2, 2, 2, 1, a, 2, b, 2, 0, c, 2);
 *   assert.deepEqual([...c], [1, 3, 2, 4]); // aᵀ
 * }
 * ```
 */
export function sgemm(
  transA: boolean,
  transB: boolean,
  m: number,
  n: number,
  k: number,
  alpha: number,
  a: Float32Array,
  lda: number,
  b: Float32Array,
  ldb: number,
  beta: number,
  c: Float32Array,
  ldc: number,
): void {
  const state = _load();
  if (!state.enabled || state.library === null) {
    throw new Error(
      `sgemm: needs BLAS enabled, received blasInfo().enabled false (${blasInfo().reason})`,
    );
  }
  if (m <= 0 || n <= 0 || k <= 0) return;
  // Rows × stride, less what the last row does not use: the elements each matrix spans.
  const needA = transA ? (k - 1) * lda + m : (m - 1) * lda + k;
  const needB = transB ? (n - 1) * ldb + k : (k - 1) * ldb + n;
  const needC = (m - 1) * ldc + n;
  if (a.length < needA || b.length < needB || c.length < needC) {
    throw new Error(
      `sgemm: arrays must hold their matrices (A ${needA}, B ${needB}, C ${needC} elements ` +
        `for M ${m}, N ${n}, K ${k}), received ${a.length}, ${b.length} and ${c.length}`,
    );
  }
  sgemmUnchecked(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/**
 * {@linkcode sgemm} without its checks, for kernels that have checked their shapes: the
 * arrays must be long enough (a short one is read or written past its end), and BLAS should
 * be enabled (see {@linkcode blasEnabled}); it throws only when no library is loaded.
 *
 * @param transA Whether A is stored as K×M.
 * @param transB Whether B is stored as N×K.
 * @param m Rows of op(A) and C.
 * @param n Columns of op(B) and C.
 * @param k Columns of op(A), rows of op(B).
 * @param alpha The factor of the product.
 * @param a A, from its first element.
 * @param lda A's row stride.
 * @param b B, from its first element.
 * @param ldb B's row stride.
 * @param beta The factor of C's previous contents.
 * @param c C, from its first element.
 * @param ldc C's row stride.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { blasEnabled, sgemmUnchecked } from "./blas.ts";
 *
 * if (blasEnabled()) {
 *   const c = new Float32Array([1]);
 *   sgemmUnchecked(false, false, 1, 1, 1, 2, new Float32Array([3]), 1, new Float32Array([4]), 1, 1, c, 1);
 *   assert.deepEqual([...c], [25]); // 2·3·4 + 1
 * }
 * ```
 */
export function sgemmUnchecked(...args: Parameters<typeof sgemm>): void {
  const [transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc] = args;
  const gemm = [
    transA ? 1 : 0,
    transB ? 1 : 0,
    m,
    n,
    k,
    alpha,
    a,
    lda,
    b,
    ldb,
    beta,
    c,
    ldc,
  ] as const;
  const state = _state ?? _load();
  const library = state.library;
  if (library === null) {
    throw new Error(`sgemmUnchecked: needs a BLAS library, received none (${blasInfo().reason})`);
  }
  if (_cut(state, m, n, k)) {
    const native = nativeKernels();
    if (native !== null) {
      const status = native.bnlab_sgemm(...gemm, state.threads);
      if (status !== 0) throw new Error(`sgemmUnchecked: bnlab_sgemm failed with ${status}`);
      return;
    }
  }
  if (state.openblasOrder) {
    const native = nativeKernels();
    if (native !== null && native.bnlab_gemm(...gemm) === 0) return;
  }
  library.symbols.cblas_sgemm(
    _ROW_MAJOR,
    transA ? _TRANS : _NO_TRANS,
    transB ? _TRANS : _NO_TRANS,
    m,
    n,
    k,
    alpha,
    a,
    lda,
    b,
    ldb,
    beta,
    c,
    ldc,
  );
}

function _load(): _State {
  if (_state !== undefined) return _state;
  const off = (reason: string): _State => ({
    library: null,
    info: Object.freeze({
      enabled: false,
      library: null,
      reason,
      slices: 1,
      sliceThreads: 1,
      openblasOrder: false,
    }),
    enabled: false,
    slices: 1,
    threads: 1,
    openblasOrder: false,
  });
  const asked = blasThreadsAsked();
  const setting = readSwitch("BNLAB_BLAS").value;
  if (readSwitch("BNLAB_BLAS").off) {
    return _state = off(`switched off by BNLAB_BLAS=${setting}`);
  }
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
    return _state = off("no FFI permission (run deno with --allow-ffi)");
  }
  const candidates = setting === "" || setting.toLowerCase() === "on"
    ? BLAS_LIBRARY_PATHS
    : [setting];
  const failures: string[] = [];
  for (const path of candidates) {
    let library: _Library;
    try {
      library = Deno.dlopen(path, { ..._SYMBOLS, ..._OPENBLAS_SYMBOLS });
    } catch (error) {
      failures.push(`${path}: ${error instanceof Error ? error.message : String(error)}`);
      continue;
    }
    const symbols = library.symbols;
    if (
      symbols.openblas_set_num_threads !== null && readEnv("OPENBLAS_NUM_THREADS") === undefined
    ) {
      symbols.openblas_set_num_threads(1);
    }
    const configPointer = symbols.openblas_get_config?.() ?? null;
    const config = configPointer === null
      ? undefined
      : new Deno.UnsafePointerView(configPointer).getCString();
    const threads = symbols.openblas_get_num_threads?.() ?? undefined;
    const { slices, threads: sliceThreads, reason: sliceReason } = _startSlices(
      path,
      config,
      asked,
    );
    const corePointer = symbols.openblas_get_corename?.() ?? null;
    const core = corePointer === null
      ? undefined
      : new Deno.UnsafePointerView(corePointer).getCString();
    const openblasOrder = _startOpenBlasOrder(config, core, slices > 1);
    const info: BlasInfo = Object.freeze({
      enabled: true,
      library: path,
      ...(config !== undefined && { config }),
      ...(threads !== undefined && { threads }),
      slices,
      sliceThreads,
      ...(sliceReason !== undefined && { sliceReason }),
      openblasOrder,
    });
    return _state = {
      library,
      info,
      enabled: true,
      slices,
      threads: sliceThreads,
      openblasOrder,
    };
  }
  return _state = off(`no BLAS library could be loaded: ${failures.join("; ")}`);
}

/**
 * Switches the native products to bnlab's kernel with OpenBLAS's floats (`native/openblas_order.c`)
 * when the library is the one it reproduces, the native kernels' pool started (`started`) and
 * they were built for AVX-512; returns whether it is on.
 */
function _startOpenBlasOrder(
  config: string | undefined,
  core: string | undefined,
  started: boolean,
): boolean {
  const native = nativeKernels();
  const reproduced = (config?.startsWith(_OPENBLAS_ORDER.version) ?? false) &&
    core?.toLowerCase() === _OPENBLAS_ORDER.core.toLowerCase();
  if (native === null || !started || !reproduced) return false;
  if (native.bnlab_openblas_order_available() !== 1) return false;
  native.bnlab_openblas_order(1);
  return true;
}

/** Starts the native kernels' products on `asked` threads, when they are on. */
function _startSlices(
  path: string,
  config: string | undefined,
  asked: number,
): { slices: number; threads: number; reason?: string } {
  const native = nativeKernels();
  if (native === null) {
    return { slices: 1, threads: 1, reason: `native kernels off: ${nativeInfo().reason}` };
  }
  const serial = config?.includes("SINGLE_THREADED") ?? false;
  const threads = serial ? 1 : asked;
  const status = native.bnlab_blas_init(new TextEncoder().encode(`${path}\0`), threads);
  if (status !== 0) {
    return {
      slices: 1,
      threads: 1,
      reason: `bnlab_blas_init(${path}, ${threads}) failed with ${status}`,
    };
  }
  const slices = native.bnlab_blas_slices();
  if (serial && asked > 1) {
    return {
      slices,
      threads,
      reason: `${path} is OpenBLAS's serial build, which serializes calls from several ` +
        `threads (install libopenblas0-pthread)`,
    };
  }
  return { slices, threads: native.bnlab_blas_threads() };
}
