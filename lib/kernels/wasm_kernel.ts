/**
 * What the wasm kernels of lib/kernels/ share: the registration record of a kernel that
 * replaces one of tfjs's and keeps it as its fallback, and calling another registered wasm
 * kernel on `TensorInfo`s.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";

/** A kernel config that replaces another; it keeps the one it replaced, its fallback. */
export interface WasmKernelReplacement extends tf.KernelConfig {
  /** The kernel registered before, as `tf.getKernel` returned it. */
  readonly original: tf.KernelConfig;
}

/** The arguments tfjs passes to a kernel function. */
export type KernelArgs = Parameters<tf.KernelFunc>[0];

/**
 * A replacing kernel: computes the cases it handles and hands the others to `fallback`, the
 * kernel function it replaced.
 */
export type ReplacingKernel = (
  kernelName: string,
  args: KernelArgs,
  fallback: tf.KernelFunc,
) => tf.TensorInfo;

/**
 * The registration record that replaces `original`, one of tfjs's wasm kernels named in
 * `kernelNames`, with `kernel`, keeping `original` as its fallback (and running `original`'s
 * set-up and dispose functions, which the fallback needs). `initBackend("wasm")` registers
 * it, after unregistering `original`; nothing else should.
 *
 * @param original The wasm kernel being replaced, as `tf.getKernel` returns it.
 * @param kernelNames The kernel names `kernel` can replace.
 * @param kernel The replacing kernel; it receives the kernel's name first.
 * @returns The kernel config to register in its place (its `original` is `original`).
 * @throws If `original` is not a wasm kernel named in `kernelNames`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { wasmReplacement } from "./wasm_kernel.ts";
 *
 * const original = {
 *   kernelName: "Tile",
 *   backendName: "wasm",
 *   kernelFunc: () => ({ dataId: {}, shape: [], dtype: "float32" as const }),
 * };
 * const config = wasmReplacement(original, ["Tile"], (_name, args, fallback) => fallback(args) as never);
 * assert.equal(config.kernelName, "Tile");
 * assert.equal(config.original, original);
 * assert.throws(() => wasmReplacement({ ...original, backendName: "cpu" }, ["Tile"], () => {
 *   throw new Error("unused");
 * }), { message: "Tile (wasm): the kernel to replace must be wasm's Tile, received Tile for cpu" });
 * ```
 */
export function wasmReplacement(
  original: tf.KernelConfig,
  kernelNames: readonly string[],
  kernel: ReplacingKernel,
): WasmKernelReplacement {
  const { kernelName, backendName } = original;
  if (!kernelNames.includes(kernelName) || backendName !== "wasm") {
    throw new Error(
      `${kernelNames.join("/")} (wasm): the kernel to replace must be wasm's ` +
        `${kernelNames.join(" or ")}, received ${kernelName} for ${backendName}`,
    );
  }
  const fallback = original.kernelFunc;
  return {
    kernelName,
    backendName: "wasm",
    setupFunc: original.setupFunc,
    disposeFunc: original.disposeFunc,
    kernelFunc: (args) => kernel(kernelName, args, fallback),
    original,
  };
}

/** The wasm backend methods the kernels of lib/kernels/ use (tfjs's `BackendWasm` has them). */
export interface WasmBackend {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  getMemoryOffset(dataId: tf.DataId): number;
  disposeData(dataId: tf.DataId): boolean;
  incRef(dataId: tf.DataId): void;
  typedArrayFromHeap(info: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
  wasm: { HEAPU8: Uint8Array; wasmMemory?: WebAssembly.Memory };
}

/**
 * The wasm heap as floats, for a native kernel's `buffer` argument, taken once `inputs` are on
 * the heap. Growing the heap replaces its buffer, and two things grow it: allocating an
 * output, and the first request for the offset of an input whose data lives on another
 * backend (a tensor made on cpu, then used on wasm), which copies the data in. So take the
 * view after allocating the outputs, and pass every input whose offset the kernel reads. (With
 * threads the memory is shared and `HEAPU8` may lag behind a growth, so the memory's own
 * buffer comes first.)
 *
 * @param backend The wasm backend, as a kernel received it.
 * @param inputs The tensors whose heap offsets the kernel reads; absent ones are skipped.
 * @returns A float view of the whole heap.
 */
export function heapFloats(
  backend: WasmBackend,
  inputs: readonly (tf.TensorInfo | null | undefined)[],
): Float32Array {
  bringOntoHeap(backend, inputs);
  return new Float32Array((backend.wasm.wasmMemory ?? backend.wasm.HEAPU8).buffer);
}

/**
 * Copies onto the wasm heap the data of any of `inputs` that lives on another backend (a
 * tensor made on cpu, then used on wasm), as reading its offset does; call it before taking
 * any view of the heap (`heapFloats`, `typedArrayFromHeap`), since the copy can grow the heap
 * and detach the views taken before.
 *
 * @param backend The wasm backend, as a kernel received it.
 * @param inputs The kernel's inputs; absent ones are skipped.
 */
export function bringOntoHeap(
  backend: Pick<WasmBackend, "getMemoryOffset">,
  inputs: readonly (tf.TensorInfo | null | undefined)[],
): void {
  for (const info of inputs) if (info != null) backend.getMemoryOffset(info.dataId);
}

/**
 * A float32 tensor's offset on the wasm heap in floats, or −1 for an absent (optional) one,
 * as the native kernels take them.
 *
 * @param backend The wasm backend, as a kernel received it.
 * @param info The tensor, or undefined.
 * @returns Its offset in floats, or −1.
 */
export function floatOffset(backend: WasmBackend, info: tf.TensorInfo | undefined): number {
  return info == null ? -1 : backend.getMemoryOffset(info.dataId) / Float32Array.BYTES_PER_ELEMENT;
}

/**
 * The heap offsets of several tensors in floats ({@linkcode floatOffset} of each, −1 for an
 * absent one), in order, for spreading into a native kernel's arguments.
 *
 * @param backend The wasm backend, as a kernel received it.
 * @param infos The tensors, undefined for an absent optional one.
 * @returns Their offsets in floats, one a tensor.
 *
 * @example An absent tensor's offset is −1
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { initBackend } from "../backend.ts";
 * import { floatOffset, floatOffsets, type WasmBackend } from "./wasm_kernel.ts";
 *
 * await initBackend("wasm");
 * const backend = tf.backend() as unknown as WasmBackend;
 * const x = tf.ones([2]);
 * assert.deepEqual(floatOffsets(backend, [x, undefined]), [floatOffset(backend, x), -1]);
 * x.dispose();
 * ```
 */
export function floatOffsets<T extends readonly (tf.TensorInfo | undefined)[]>(
  backend: WasmBackend,
  infos: readonly [...T],
): { [K in keyof T]: number } {
  return infos.map((info) => floatOffset(backend, info)) as { [K in keyof T]: number };
}

/**
 * Runs another registered wasm kernel on `TensorInfo`s, for kernels composed of others; the
 * caller owns (and disposes) its output.
 *
 * @param caller The calling kernel's name, for the error message.
 * @param backend The wasm backend, as the caller received it.
 * @param kernelName The kernel to run; it must return a single `TensorInfo`.
 * @param inputs Its inputs.
 * @param attrs Its attributes.
 * @returns Its output.
 * @throws If no wasm kernel `kernelName` is registered.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { initBackend } from "../backend.ts";
 * import { callWasmKernel } from "./wasm_kernel.ts";
 *
 * await initBackend("wasm");
 * const x = tf.tensor1d([1, 2, 3, 4]);
 * const info = callWasmKernel("Example", tf.backend(), "Reshape", { x }, { shape: [2, 2] });
 * assert.deepEqual(info.shape, [2, 2]);
 * tf.backend().disposeData(info.dataId);
 * x.dispose();
 * ```
 */
export function callWasmKernel(
  caller: string,
  backend: unknown,
  kernelName: string,
  inputs: tf.NamedTensorInfoMap,
  attrs: Record<string, unknown>,
): tf.TensorInfo {
  const kernel = tf.getKernel(kernelName, "wasm");
  if (kernel == null) {
    throw new Error(
      `${caller} (wasm): needs the wasm kernel ${kernelName}, received none registered`,
    );
  }
  return kernel.kernelFunc({
    inputs,
    backend: backend as tf.KernelBackend,
    attrs: attrs as tf.NamedAttrMap,
  }) as tf.TensorInfo;
}

/** The attributes a convolution gradient kernel reads its geometry from. */
export interface ConvGradientAttrs {
  strides: [number, number] | number;
  pad: "valid" | "same" | number | tf.backend_util.ExplicitPadding;
  dimRoundingMode?: "floor" | "round" | "ceil";
  dataFormat: "NHWC" | "NCHW";
}

/**
 * The geometry of a convolution (dilation 1) whose gradient a kernel computes, after checking
 * that dy has the convolution's output shape.
 *
 * @param kernelName The calling kernel, for the error message.
 * @param options The input's shape (and what the kernel calls it), the filter's shape, the
 *   attributes and dy.
 * @returns The convolution's info.
 * @throws If dy's shape is not the convolution's output shape.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { convGradientInfo } from "./wasm_kernel.ts";
 *
 * const dy = { dataId: {}, shape: [1, 2, 2, 1], dtype: "float32" as const };
 * const attrs = { strides: 1, pad: "valid" as const, dataFormat: "NHWC" as const };
 * const options = { input: "x", inShape: [1, 3, 3, 1], filterShape: [2, 2, 1, 1], attrs, dy };
 * assert.deepEqual(convGradientInfo("Example", options).outShape, [1, 2, 2, 1]);
 * assert.throws(() => convGradientInfo("Example", { ...options, inShape: [1, 4, 4, 1] }), {
 *   message: "Example (wasm): dy must have the convolution's output shape [1,3,3,1] for " +
 *     "x [1,4,4,1] and filter [2,2,1,1], received [1,2,2,1]",
 * });
 * ```
 */
export function convGradientInfo(
  kernelName: string,
  options: {
    input: string;
    inShape: readonly number[];
    filterShape: readonly number[];
    attrs: ConvGradientAttrs;
    dy: tf.TensorInfo;
  },
): tf.backend_util.Conv2DInfo {
  const { input, inShape, filterShape, attrs, dy } = options;
  const info = tf.backend_util.computeConv2DInfo(
    inShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    tf.backend_util.convertConv2DDataFormat(attrs.dataFormat),
  );
  if (!tf.util.arraysEqual(dy.shape, info.outShape)) {
    throw new Error(
      `${kernelName} (wasm): dy must have the convolution's output shape ` +
        `[${info.outShape}] for ${input} [${inShape}] and filter [${filterShape}], ` +
        `received [${dy.shape}]`,
    );
  }
  return info;
}

/**
 * [rows, channels] of a tensor of `shape` read as a row-major matrix over its last axis, as the
 * per-channel native kernels take it.
 *
 * @param shape The tensor's shape (rank ≥ 1).
 * @returns The product of the other axes, and the last axis's size.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { rowsAndChannels } from "./wasm_kernel.ts";
 *
 * assert.deepEqual(rowsAndChannels([20, 24, 24, 20]), [11520, 20]);
 * ```
 */
export function rowsAndChannels(shape: readonly number[]): [number, number] {
  const channels = shape[shape.length - 1];
  return [tf.util.sizeFromShape([...shape]) / channels, channels];
}
