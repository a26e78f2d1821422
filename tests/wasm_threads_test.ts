import assert from "node:assert/strict";
import { initBackend, MAX_WASM_THREADS } from "../lib/backend.ts";

// tfjs starts wasm once per process, so each thread count runs in a process of its own.
const PROBE = new URL("./wasm_threads_probe.ts", import.meta.url).pathname;

interface Probe {
  info: {
    name: string;
    simd: boolean;
    threads: number;
    tfjsVersion: string;
    blas?: unknown;
    native?: unknown;
  };
  again: Probe["info"];
  mismatch: string | null;
  conv: number[];
  matmul: number[];
  loss: number;
  grads: Record<string, number[]>;
}

async function probe(threads: number): Promise<Probe> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", PROBE, String(threads)],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(120_000),
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 0, `probe with ${threads} thread(s) failed:\n${stderr}`);
  return JSON.parse(new TextDecoder().decode(output.stdout));
}

function assertClose(actual: number[], expected: number[], what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    const tolerance = 1e-5 * Math.max(1, Math.abs(expected[i]));
    if (!(Math.abs(actual[i] - expected[i]) <= tolerance)) {
      assert.fail(`${what}[${i}]: expected ${expected[i]} ± ${tolerance}, received ${actual[i]}`);
    }
  }
}

Deno.test({
  name: "initBackend('wasm', { threads: 2 }) runs 2 threads and computes what 1 thread does",
  // The probes start workers and processes of their own.
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const [one, two] = await Promise.all([probe(1), probe(2)]);
    const { blas: _blas, native: _native, ...info } = one.info;
    assert.deepEqual(info, { name: "wasm", simd: true, threads: 1, tfjsVersion: "4.22.0" });
    assert.deepEqual(two.info, { ...one.info, threads: 2 });
    // A later call without a count keeps what runs; one with another count says so.
    assert.deepEqual(two.again, two.info);
    assert.equal(
      two.mismatch,
      "initBackend: wasm runs 2 thread(s) (tfjs starts wasm once per process), received " +
        "threads: 1; start another process for another count",
    );
    assert.equal(
      one.mismatch,
      "initBackend: wasm runs 1 thread(s) (tfjs starts wasm once per process), received " +
        "threads: 2; start another process for another count",
    );
    assertClose(two.conv, one.conv, "conv2d");
    assertClose(two.matmul, one.matmul, "matMul");
    assertClose([two.loss], [one.loss], "LeNet loss");
    assert.deepEqual(Object.keys(two.grads), Object.keys(one.grads));
    // 4 conv/dense kernels, the last layer's bias (BN replaces the others), 3 BNs' γ and β.
    assert.equal(Object.keys(one.grads).length, 11);
    for (const name of Object.keys(one.grads)) {
      assertClose(two.grads[name], one.grads[name], `LeNet gradient ${name}`);
    }
  },
});

Deno.test("initBackend rejects a thread count out of range before starting anything", async () => {
  for (const threads of [0, 1.5, MAX_WASM_THREADS + 1, Number.NaN]) {
    await assert.rejects(() => initBackend("wasm", { threads }), {
      message: `initBackend: threads must be an integer from 1 to ${MAX_WASM_THREADS}, ` +
        `received ${threads}`,
    });
  }
});
