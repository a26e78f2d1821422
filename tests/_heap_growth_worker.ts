/**
 * Runs one case of tests/_heap_growth_cases.ts in this worker's own tfjs and wasm heap, and
 * posts what it found: `{ skipped }` (the kernel's native library or BLAS is not loaded), or `{ before, after, length, first, actual, expected }`
 * (heap bytes before and after the op, and the first index where the floats differ, −1 for
 * none). An uncaught error reaches the worker's `error` event.
 */
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backend.ts";
import { blasInfo } from "../lib/kernels/blas.ts";
import { nativeKernels } from "../lib/kernels/native_library.ts";
import type { WasmBackend } from "../lib/kernels/wasm_kernel.ts";
import { HEAP_GROWTH_CASES } from "./_heap_growth_cases.ts";

/** The worker's global scope, as far as this module uses it. */
const scope = self as unknown as {
  onmessage: (event: MessageEvent<number>) => void;
  postMessage(message: unknown): void;
};

function heapBytes(): number {
  const wasm = (tf.backend() as unknown as WasmBackend).wasm;
  return (wasm.wasmMemory ?? wasm.HEAPU8).buffer.byteLength;
}

scope.onmessage = async (event) => {
  const c = HEAP_GROWTH_CASES[event.data];
  await initBackend("wasm");
  if (c.needs === "native" ? nativeKernels() === null : !blasInfo().enabled) {
    scope.postMessage({ skipped: true });
    return;
  }
  const before = heapBytes();
  // The first input alone is as large as the whole heap: copying it in must grow the heap.
  const rows = Math.ceil(before / 4 / 8);
  await tf.setBackend("cpu");
  const onCpu = c.inputs(rows);
  await initBackend("wasm");
  const values = await Promise.all(onCpu.map((t) => t.data()));
  const run = (inputs: tf.Tensor[]) =>
    tf.engine().runKernel(
      c.kernel,
      Object.fromEntries(c.names.map((name, i) => [name, inputs[i]])),
      (c.attrs ?? {}) as unknown as tf.NamedAttrMap,
    ) as tf.Tensor;
  const actual = await run(onCpu).data();
  const after = heapBytes();
  const expected = await run(onCpu.map((t, i) => tf.tensor(values[i], t.shape))).data();
  const first = actual.findIndex((v, i) => !Object.is(v, expected[i]));
  scope.postMessage({
    before,
    after,
    length: [actual.length, expected.length],
    first,
    actual: actual[first],
    expected: expected[first],
  });
};
