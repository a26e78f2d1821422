/**
 * bnlab's native helper kernels (`native/bnlab_kernels.c`, and `native/thread_pool.c`, its
 * thread pool): the memory-bound loops of the BLAS convolutions (im2col, col2im),
 * `MaxPoolGrad`, batch normalization's statistics, forward and analytic backward pass
 * (`batch_norm_native.ts`), 3×3 convolutions at stride 1 (`conv3x3.ts`), group normalization's forward and backward pass
 * (`group_norm_native.ts`), and matrix products cut into slices run on two threads
 * (`blas.ts`), in C, called through Deno's FFI on the wasm backend's heap. Their JavaScript
 * and tfjs-op twins stay as the fallback and the reference.
 *
 * The library is built from the C sources by {@linkcode buildNativeKernels} (`deno task
 * build-native`; `scripts/setup.sh` runs it) with the system's C compiler, for this
 * machine's processor, into `native/build/` beside the sources. Its file name carries a hash
 * of the sources, so a library built from another version of them is never loaded.
 *
 * It is loaded on first use: `BNLAB_NATIVE` set to `off` (or `0`, `false`, `none`, `no`;
 * read in `lib/env.ts`) disables it. Without the built library, or without the
 * `--allow-ffi` permission, nothing fails: {@linkcode nativeInfo} says why it is off, and
 * the kernels run their JavaScript loops. A missing library is also said once per process on
 * stderr ({@linkcode notBuiltWarning}), since those loops round some floats differently; a
 * process that switched the kernels off with `BNLAB_NATIVE` is not warned.
 *
 * @module
 */
import { readEnv, readSwitch } from "../env.ts";

/** Whether the native kernels run, for the provenance of results. */
export interface NativeInfo {
  /** Whether the native kernels run (the library is loaded and not switched off). */
  readonly enabled: boolean;
  /** The file loaded, or null when none is. */
  readonly library: string | null;
  /** Why the native kernels are off, when they are. */
  readonly reason?: string;
}

/** The ABI version `bnlab_native_version()` must report (see the C source). */
const _VERSION = 14;

const _GEOMETRY = [
  "i32", // b0
  "i32", // images
  "i32", // h
  "i32", // w
  "i32", // c
  "i32", // oh
  "i32", // ow
  "i32", // kh
  "i32", // kw
  "i32", // sh
  "i32", // sw
  "i32", // dh
  "i32", // dw
  "i32", // top
  "i32", // left
] as const;

/**
 * The FFI parameters of an sgemm after CBLAS's order argument, as `cblas_sgemm` (`blas.ts`)
 * and `bnlab_sgemm` (which adds a thread count) take them: transA, transB, M, N, K, alpha, A,
 * lda, B, ldb, beta, C, ldc.
 */
export const SGEMM_FFI_PARAMETERS = [
  "i32",
  "i32",
  "i32",
  "i32",
  "i32",
  "f32",
  "buffer",
  "i32",
  "buffer",
  "i32",
  "f32",
  "buffer",
  "i32",
] as const;

const _SYMBOLS = {
  bnlab_native_version: { parameters: [], result: "i32" },
  bnlab_im2col: {
    parameters: ["buffer", "i32", "i32", ..._GEOMETRY, "i32" /* threads */],
    result: "void",
  },
  bnlab_col2im: {
    parameters: ["buffer", "i32", "i32", ..._GEOMETRY, "i32", /* zero */ "i32" /* threads */],
    result: "void",
  },
  bnlab_conv_gathered: {
    parameters: [
      "buffer",
      "i32", // x_off
      ..._GEOMETRY,
      "i32", // filter
      "i32", // b_off
      "i32", // n
      "i32", // ldb
      "f32", // beta
      "i32", // c_off
      "i32", // ldc
      "i32", // uncut
      "i32", // threads
    ],
    result: "i32",
  },
  bnlab_blas_init: { parameters: ["buffer", "i32"], result: "i32" },
  bnlab_blas_threads: { parameters: [], result: "i32" },
  bnlab_blas_slices: { parameters: [], result: "i32" },
  bnlab_sgemm: { parameters: [...SGEMM_FFI_PARAMETERS, "i32" /* threads */], result: "i32" },
  bnlab_gemm: { parameters: SGEMM_FFI_PARAMETERS, result: "i32" },
  bnlab_openblas_order: { parameters: ["i32"], result: "i32" },
  bnlab_openblas_order_available: { parameters: [], result: "i32" },
  bnlab_bn_moments: {
    parameters: ["buffer", "i32", "i32", "i32", "i32", "i32", "i32" /* threads */],
    result: "void",
  },
  bnlab_bn_forward: {
    parameters: [
      "buffer", // heap
      "i32", // x offset
      "i32", // mean offset
      "i32", // variance offset
      "i32", // gamma offset (-1: none)
      "i32", // beta offset (-1: none)
      "i32", // y offset
      "i32", // rows
      "i32", // channels
      "f32", // epsilon
      "i32", // threads (1 or 2)
    ],
    result: "void",
  },
  bnlab_bn_backward: {
    parameters: [
      "buffer", // heap
      "i32", // dy offset
      "i32", // x offset
      "i32", // mean offset
      "i32", // variance offset
      "i32", // gamma offset (-1: none)
      "i32", // dx offset
      "i32", // dgamma offset
      "i32", // dbeta offset
      "i32", // rows
      "i32", // channels
      "f32", // epsilon
      "i32", // threads (1 or 2)
    ],
    result: "void",
  },
  bnlab_conv3x3: {
    parameters: [
      "buffer", // heap
      "i32", // x offset
      "i32", // filter offset
      "i32", // y offset
      "i32", // batch
      "i32", // height
      "i32", // width
      "i32", // input channels
      "i32", // output channels: 16 or 32
      "i32", // flip: 1 for the input gradient of a convolution from 16 channels
      "i32", // accumulate: 1 adds to y's values
      "i32", // threads (1 or 2)
    ],
    result: "void",
  },
  bnlab_conv3x3_filter: {
    parameters: [
      "buffer", // heap
      "i32", // x offset
      "i32", // dy offset
      "i32", // dw offset
      "i32", // batch
      "i32", // height
      "i32", // width
      "i32", // input channels
      "i32", // output channels: 16 or 32
      "i32", // threads (1 or 2)
    ],
    result: "void",
  },
  bnlab_gn_forward: {
    parameters: [
      "buffer", // heap
      "i32", // x offset
      "i32", // gamma offset (-1: none)
      "i32", // beta offset (-1: none)
      "i32", // y offset
      "i32", // mean offset (n·g floats)
      "i32", // inverse standard deviation offset (n·g floats)
      "i32", // samples n
      "i32", // positions per sample s
      "i32", // channels c
      "i32", // groups g
      "f64", // epsilon
      "i32", // threads (1 or 2)
    ],
    result: "void",
  },
  bnlab_gn_backward: {
    parameters: [
      "buffer", // heap
      "i32", // dy offset
      "i32", // x offset
      "i32", // mean offset
      "i32", // inverse standard deviation offset
      "i32", // gamma offset (-1: none)
      "i32", // dx offset
      "i32", // dgamma offset (-1: not written)
      "i32", // dbeta offset (-1: not written)
      "i32", // samples n
      "i32", // positions per sample s
      "i32", // channels c
      "i32", // groups g
      "i32", // threads (1 or 2)
    ],
    result: "void",
  },
  bnlab_max_pool_grad: {
    parameters: [
      "buffer", // heap
      "i32", // x offset
      "i32", // dy offset
      "i32", // dx offset
      "i32", // batch
      "i32", // in height
      "i32", // in width
      "i32", // channels
      "i32", // out height
      "i32", // out width
      "i32", // filter height
      "i32", // filter width
      "i32", // stride height
      "i32", // stride width
      "i32", // top padding
      "i32", // left padding
    ],
    result: "void",
  },
  bnlab_max_pool_2x2: {
    parameters: ["buffer", "i32", "i32", "i32", "i32", "i32", "i32"],
    result: "void",
  },
  bnlab_binary: {
    parameters: [
      "buffer", // heap
      "i32", // op: 0 add, 1 sub, 2 mul, 3 div
      "i32", // layout: 0 same shape, 1 b per channel, 2 a per channel, 3 b scalar, 4 a scalar
      "i32", // a offset
      "i32", // b offset
      "i32", // out offset
      "i32", // rows
      "i32", // channels
    ],
    result: "i32",
  },
  bnlab_column_sums: {
    parameters: ["buffer", "i32", "i32", "i32", "i32", "f64"],
    result: "void",
  },
  bnlab_fused_batch_norm: {
    parameters: [
      "buffer", // heap
      "i32", // x offset
      "i32", // mean offset
      "i32", // mean length (1 or channels)
      "i32", // variance offset
      "i32", // variance length
      "i32", // scale offset (-1: none)
      "i32", // scale length
      "i32", // offset offset (-1: none)
      "i32", // offset length
      "i32", // y offset
      "i32", // rows
      "i32", // channels
      "f64", // epsilon
    ],
    result: "void",
  },
  bnlab_fused_batch_norm_grad: {
    parameters: [
      "buffer", // heap
      "i32", // dy offset
      "i32", // x offset
      "i32", // mean offset
      "i32", // variance offset
      "i32", // scale offset (-1: none)
      "i32", // dx offset
      "i32", // dmean offset
      "i32", // dvariance offset
      "i32", // dscale offset
      "i32", // doffset offset
      "i32", // rows
      "i32", // channels
      "f32", // epsilon
    ],
    result: "void",
  },
  bnlab_relu: { parameters: ["buffer", "i32", "i32", "i32"], result: "void" },
  bnlab_relu_grad: { parameters: ["buffer", "i32", "i32", "i32", "i32"], result: "void" },
  bnlab_sigmoid: { parameters: ["buffer", "i32", "i32", "i32"], result: "void" },
  bnlab_sigmoid_grad: { parameters: ["buffer", "i32", "i32", "i32", "i32"], result: "void" },
  bnlab_square_grad: { parameters: ["buffer", "i32", "i32", "i32", "i32"], result: "void" },
  bnlab_sgd_update: { parameters: ["buffer", "i32", "i32", "i32", "i32", "f32"], result: "void" },
  bnlab_tfjs_bn_training: {
    parameters: [
      "buffer",
      "i32", // x offset
      "i32", // gamma offset
      "i32", // beta offset
      "i32", // moving mean offset
      "i32", // moving variance offset
      "i32", // y offset
      "i32", // mean offset
      "i32", // variance offset
      "i32", // new moving mean offset
      "i32", // new moving variance offset
      "i32", // rows
      "i32", // channels
      "f64", // epsilon
      "f32", // decay
    ],
    result: "void",
  },
  bnlab_tfjs_bn_training_grad: {
    parameters: [
      "buffer",
      "i32", // dy offset
      "i32", // x offset
      "i32", // mean offset
      "i32", // variance offset
      "i32", // gamma offset
      "i32", // dx offset
      "i32", // dgamma offset
      "i32", // dbeta offset
      "i32", // rows
      "i32", // channels
      "f32", // epsilon
    ],
    result: "void",
  },
  bnlab_exp_log: { parameters: ["buffer", "i32", "i32", "i32", "i32"], result: "void" },
  bnlab_softmax_xent: {
    parameters: ["buffer", "i32", "i32", "i32", "i32", "i32", "i32", "i32"],
    result: "void",
  },
  bnlab_softmax_xent_grad: {
    parameters: ["buffer", "i32", "i32", "i32", "i32", "i32", "i32", "i32", "i32"],
    result: "void",
  },
} as const;

type _Library = Deno.DynamicLibrary<typeof _SYMBOLS>;

/**
 * A convolution's geometry as `bnlab_im2col` and `bnlab_col2im` take it after the image range:
 * h, w, c, oh, ow, kh, kw, sh, sw, dh, dw, top, left.
 */
export type NativeConvGeometry = [
  number,
  number,
  number,
  number,
  number,
  number,
  number,
  number,
  number,
  number,
  number,
  number,
  number,
];

/** The native kernels' functions, as `Deno.dlopen` gives them. */
export type NativeKernels = _Library["symbols"];

/** The C sources the library is built from, compiled together into one library. */
export const NATIVE_SOURCES: readonly URL[] = [
  new URL("./native/bnlab_kernels.c", import.meta.url),
  new URL("./native/thread_pool.c", import.meta.url),
  new URL("./native/openblas_order.c", import.meta.url),
];

/** The folder the built libraries go to (git-ignored). */
export const NATIVE_BUILD_DIR: URL = new URL("./native/build/", import.meta.url);

interface _State {
  library: _Library | null;
  info: NativeInfo;
  enabled: boolean;
}

let _state: _State | undefined;

/**
 * The path of the library built from the current sources: `libbnlab_kernels-<hash>.so` in
 * {@linkcode NATIVE_BUILD_DIR}, the hash (FNV-1a, 32 bits) over every source's bytes, each
 * followed by a zero byte.
 *
 * @param sources The C sources' bytes (read from {@linkcode NATIVE_SOURCES} when omitted).
 * @returns The absolute path of the library file (which may not exist yet).
 *
 * @example The name changes with any source
 * ```ts
 * import assert from "node:assert/strict";
 * import { nativeLibraryPath } from "./native_library.ts";
 *
 * const encode = (text: string) => new TextEncoder().encode(text);
 * const a = nativeLibraryPath([encode("int f(void) { return 1; }"), encode("int g;")]);
 * const b = nativeLibraryPath([encode("int f(void) { return 1; }"), encode("int h;")]);
 * assert.match(a, /libbnlab_kernels-[0-9a-f]{8}\.so$/);
 * assert.notEqual(a, b);
 * ```
 */
export function nativeLibraryPath(sources?: readonly Uint8Array[]): string {
  const all = sources ?? NATIVE_SOURCES.map((url) => Deno.readFileSync(url));
  let hash = 0x811c9dc5;
  for (const bytes of all) {
    for (const byte of bytes) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  const name = `libbnlab_kernels-${hash.toString(16).padStart(8, "0")}.so`;
  return decodeURIComponent(new URL(name, NATIVE_BUILD_DIR).pathname);
}

/** Options of {@linkcode buildNativeKernels}. */
export interface BuildNativeOptions {
  /** The C compiler to run. @default {Deno.env.get("CC") ?? "cc"} */
  compiler?: string;
  /** Build again even when the library for this source exists. @default {false} */
  force?: boolean;
  /**
   * The target processor (`-march`): e.g. `x86-64-v3` for any AVX2 machine, to compare its
   * floats with this machine's build. @default {"native"}
   */
  march?: string;
  /** Where to write the library. @default {nativeLibraryPath()} */
  out?: string;
}

/**
 * Compiles the native kernels for this machine (`cc -O3 -march=native -ffp-contract=off
 * -shared -fPIC`), into
 * {@linkcode nativeLibraryPath}; does nothing when that file exists (unless `force`). The
 * library is written under a temporary name and renamed, so a crash leaves no half-written
 * file under the name the loader looks for. Needs `--allow-read`, `--allow-write` and
 * `--allow-run` (and `--allow-env` to read `CC`).
 *
 * @param options The compiler, whether to rebuild, the target processor and the output path.
 * @returns The library's path, and whether it was built now.
 * @throws If the compiler cannot be run or fails; the message has its output.
 *
 * @example
 * ```ts ignore
 * import { buildNativeKernels } from "./native_library.ts";
 *
 * const { path, built } = await buildNativeKernels();
 * console.log(built ? `built ${path}` : `up to date: ${path}`);
 * ```
 */
export async function buildNativeKernels(
  options: BuildNativeOptions = {},
): Promise<{ path: string; built: boolean }> {
  const path = options.out ?? nativeLibraryPath();
  if (!options.force && _exists(path)) return { path, built: false };
  const compiler = options.compiler ?? readEnv("CC") ?? "cc";
  if (options.out === undefined) await Deno.mkdir(NATIVE_BUILD_DIR, { recursive: true });
  const temporary = `${path}.${Deno.pid}.tmp`;
  const args = [
    "-O3",
    `-march=${options.march ?? "native"}`,
    "-std=c11",
    // No fused multiply-adds: the element-wise kernels must round as tfjs's do.
    "-ffp-contract=off",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-shared",
    "-fPIC",
    "-pthread",
    "-o",
    temporary,
    ...NATIVE_SOURCES.map((url) => decodeURIComponent(url.pathname)),
    "-ldl",
    "-lm",
  ];
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command(compiler, { args, stdout: "piped", stderr: "piped" })
      .output();
  } catch (error) {
    throw new Error(
      `buildNativeKernels: expected a C compiler at "${compiler}" (set CC to another), ` +
        `received: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  if (!output.success) {
    await Deno.remove(temporary).catch(() => {});
    const text = new TextDecoder().decode(output.stderr).trim();
    throw new Error(
      `buildNativeKernels: ${compiler} ${args.join(" ")} exited with ${output.code}:\n${text}`,
    );
  }
  await Deno.rename(temporary, path);
  return { path, built: true };
}

/**
 * Opens a native kernel library other than the one the kernels use (e.g. one built by
 * {@linkcode buildNativeKernels} for another processor), to call its functions directly.
 *
 * @param path The library file.
 * @returns Its functions and a `close` that unloads it.
 * @throws If it cannot be loaded or reports another ABI version than this module's.
 *
 * @example
 * ```ts ignore
 * import { buildNativeKernels, openNativeLibrary } from "./native_library.ts";
 *
 * const { path } = await buildNativeKernels({ march: "x86-64-v3", out: "/tmp/bnlab-avx2.so" });
 * const avx2 = openNativeLibrary(path);
 * console.log(avx2.symbols.bnlab_native_version());
 * avx2.close();
 * ```
 */
export function openNativeLibrary(path: string): { symbols: NativeKernels; close(): void } {
  const library = Deno.dlopen(path, _SYMBOLS);
  const version = library.symbols.bnlab_native_version();
  if (version !== _VERSION) {
    library.close();
    throw new Error(
      `openNativeLibrary: expected ABI version ${_VERSION} in ${path}, received ${version}`,
    );
  }
  return { symbols: library.symbols, close: () => library.close() };
}

/**
 * Whether the native kernels run and which library is loaded: loads it on first call.
 *
 * @returns Whether the native kernels are on, the file loaded, and otherwise why not.
 *
 * @example Record it with results; it never throws
 * ```ts
 * import assert from "node:assert/strict";
 * import { nativeInfo } from "./native_library.ts";
 *
 * const info = nativeInfo();
 * assert.equal(typeof info.enabled, "boolean");
 * if (!info.enabled) console.log(`native kernels off: ${info.reason}`);
 * ```
 */
export function nativeInfo(): NativeInfo {
  const state = _load();
  return state.enabled ? state.info : {
    ...state.info,
    enabled: false,
    reason: state.info.reason ?? "switched off by setNativeEnabled(false)",
  };
}

/**
 * The native kernels' functions when they run, else null: kernels call this on every call
 * and run their JavaScript loop on null.
 *
 * @returns The library's symbols, or null.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { nativeInfo, nativeKernels } from "./native_library.ts";
 *
 * assert.equal(nativeKernels() !== null, nativeInfo().enabled);
 * ```
 */
export function nativeKernels(): NativeKernels | null {
  const state = _load();
  return state.enabled ? state.library!.symbols : null;
}

/**
 * The native kernels' functions, for a kernel that has no JavaScript fallback.
 *
 * @param kernel The calling kernel's name, for the error message.
 * @returns The library's symbols.
 * @throws If the native kernels are switched off or not built.
 */
export function requireNativeKernels(kernel: string): NativeKernels {
  const native = nativeKernels();
  if (native === null) {
    throw new Error(
      `${kernel}: needs bnlab's native kernels, received none (switched off, or not built: ` +
        `deno task build-native)`,
    );
  }
  return native;
}

/**
 * The warning line printed on stderr, once per process, when the library for the current
 * sources is not built (and `BNLAB_NATIVE` does not switch the native kernels off): which
 * file is missing, what runs instead, and how to build it.
 *
 * @param path The library file looked for ({@linkcode nativeLibraryPath}).
 * @returns One line, without a line break.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { notBuiltWarning } from "./native_library.ts";
 *
 * const line = notBuiltWarning("/repo/lib/kernels/native/build/libbnlab_kernels-0123abcd.so");
 * assert.match(line, /deno task build-native/);
 * assert.doesNotMatch(line, /\n/);
 * ```
 */
export function notBuiltWarning(path: string): string {
  return `bnlab: warning: native kernels are not built for this source (no ${path}); the ` +
    "fallback kernels run, and some floats differ slightly. Build them with " +
    "`deno task build-native`, or set BNLAB_NATIVE=off to run the fallbacks without this warning.";
}

/**
 * Switches the native kernels off (the JavaScript loops run) or back on, in this process;
 * for comparisons of both paths in one run. Switching on has no effect when no library is
 * loaded.
 *
 * @param enabled Whether the native kernels should run.
 * @returns Whether they ran before the call.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { nativeKernels, setNativeEnabled } from "./native_library.ts";
 *
 * const previous = setNativeEnabled(false);
 * assert.equal(nativeKernels(), null);
 * setNativeEnabled(previous);
 * ```
 */
export function setNativeEnabled(enabled: boolean): boolean {
  const state = _load();
  const previous = state.enabled;
  state.enabled = enabled && state.library !== null;
  return previous;
}

function _load(): _State {
  if (_state !== undefined) return _state;
  const off = (reason: string): _State => ({
    library: null,
    info: Object.freeze({ enabled: false, library: null, reason }),
    enabled: false,
  });
  const setting = readSwitch("BNLAB_NATIVE");
  if (setting.off) {
    return _state = off(`switched off by BNLAB_NATIVE=${setting.value.toLowerCase()}`);
  }
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
    return _state = off("no FFI permission (run deno with --allow-ffi)");
  }
  let path: string;
  try {
    path = nativeLibraryPath();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const paths = NATIVE_SOURCES.map((url) => url.pathname).join(", ");
    return _state = off(`cannot read the C sources ${paths}: ${message}`);
  }
  if (!_exists(path)) {
    console.error(notBuiltWarning(path));
    return _state = off(
      `not built for this source (expected ${path}): run \`deno task build-native\``,
    );
  }
  let library: _Library;
  try {
    library = Deno.dlopen(path, _SYMBOLS);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return _state = off(`cannot load ${path}: ${message}`);
  }
  const version = library.symbols.bnlab_native_version();
  if (version !== _VERSION) {
    library.close();
    return _state = off(`${path} reports ABI version ${version}, expected ${_VERSION}`);
  }
  return _state = {
    library,
    info: Object.freeze({ enabled: true, library: path }),
    enabled: true,
  };
}

function _exists(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}
