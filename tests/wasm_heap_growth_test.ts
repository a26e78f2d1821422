/**
 * A tensor made on another backend (cpu) and then used on wasm is copied onto the wasm heap
 * when a kernel first asks for its offset, and that copy can grow the heap, which replaces
 * the heap's buffer. Each of bnlab's wasm kernels in tests/_heap_growth_cases.ts runs, in a
 * fresh worker and through `runKernel` (no op copies its inputs first), on cpu-made inputs
 * larger than the whole heap, and must give the floats it
 * gives on the same inputs already on wasm (a kernel that took its view of the heap before
 * the copy would write through a detached buffer and crash the process).
 */
import assert from "node:assert/strict";
import { initBackend } from "../lib/backend.ts";
import { blasInfo } from "../lib/kernels/blas.ts";
import { nativeKernels } from "../lib/kernels/native_library.ts";
import { HEAP_GROWTH_CASES } from "./_heap_growth_cases.ts";

interface _Outcome {
  skipped?: boolean;
  before: number;
  after: number;
  length: [number, number];
  first: number;
  actual: number;
  expected: number;
}

function _runCase(index: number): Promise<_Outcome> {
  const worker = new Worker(new URL("./_heap_growth_worker.ts", import.meta.url), {
    type: "module",
  });
  return new Promise<_Outcome>((resolve, reject) => {
    worker.onmessage = (event) => resolve(event.data);
    worker.onerror = (event) => {
      event.preventDefault();
      reject(new Error(event.message));
    };
    worker.postMessage(index);
  }).finally(() => worker.terminate());
}

/** Whether this process loads the native library and BLAS, as the workers then must. */
async function _available(): Promise<{ native: boolean; blas: boolean }> {
  await initBackend("wasm");
  return { native: nativeKernels() !== null, blas: blasInfo().enabled };
}

for (const [index, c] of HEAP_GROWTH_CASES.entries()) {
  Deno.test(`${c.name}: inputs made on cpu, copied in while the heap grows`, async () => {
    const outcome = await _runCase(index);
    if (outcome.skipped) {
      // Only where the kernel's library is missing here too (no native build, no BLAS).
      assert.equal((await _available())[c.needs], false, "the worker skipped a loaded kernel");
      return;
    }
    assert.ok(outcome.after > outcome.before, "the heap grew while the inputs were copied in");
    assert.equal(outcome.length[0], outcome.length[1]);
    assert.equal(
      outcome.first,
      -1,
      `${outcome.actual} against ${outcome.expected} at ${outcome.first}`,
    );
  });
}
