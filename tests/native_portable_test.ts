/**
 * The native kernels compute the same floats on every x86-64 machine with AVX2: the library
 * built for this machine (`-march=native`, AVX-512 where it has it) and one built for any AVX2
 * machine (`-march=x86-64-v3`) give the same bits for the kernels whose code depends on the
 * vector width — the direct 3×3 convolutions (16-float vectors with AVX-512, 8 with AVX2) and
 * the batch and group normalizations' sums and passes (vectorized by the compiler to the
 * machine's width). Skipped where there is no native build, no C compiler or no AVX2.
 */
import assert from "node:assert/strict";
import {
  buildNativeKernels,
  type NativeKernels,
  nativeKernels,
  openNativeLibrary,
} from "../lib/kernels/native_library.ts";
import { createRng } from "../lib/data/random.ts";
import { uniform } from "./_kernel_test_utils.ts";

function _hasAvx2(): boolean {
  if (Deno.build.arch !== "x86_64") return false;
  try {
    const flags = Deno.readTextFileSync("/proc/cpuinfo").match(/^flags\s*:(.*)$/m)?.[1] ?? "";
    return [" avx2", " fma"].every((flag) => ` ${flags} `.includes(`${flag} `));
  } catch {
    return false;
  }
}

/** One call of the library on a heap of random floats; returns the heap after it. */
type _Call = (k: NativeKernels, heap: Float32Array) => void;

/** The calls compared: [name, heap size, call]. Offsets are in floats. */
function _calls(): [string, number, _Call][] {
  const calls: [string, number, _Call][] = [];
  // 3×3 convolutions: [batch, h, w, cin] → cout, forward, accumulate, input and filter gradient.
  for (
    const [b, h, cin, cout] of [[4, 28, 16, 16], [4, 14, 32, 32], [3, 7, 16, 32], [2, 5, 3, 16]]
  ) {
    const nx = b * h * h * cin, ny = b * h * h * cout, nf = 9 * cin * cout;
    const [x, dy, f, y, dx, dw] = [
      0,
      nx,
      nx + ny,
      nx + ny + nf,
      nx + 2 * ny + nf,
      2 * nx + 2 * ny + nf,
    ];
    const size = dw + nf;
    calls.push([`conv3x3 ${[b, h, cin, cout]}`, size, (k, heap) => {
      k.bnlab_conv3x3(heap, x, f, y, b, h, h, cin, cout, 0, 1, 1);
      if (cin === 16 || cin === 32) k.bnlab_conv3x3(heap, dy, f, dx, b, h, h, cout, cin, 1, 0, 1);
      k.bnlab_conv3x3_filter(heap, x, dy, dw, b, h, h, cin, cout, 1);
    }]);
  }
  // Batch norm over [rows, c] and group norm over [n, s, c] in g groups.
  for (
    const [n, s, c, g] of [[8, 49, 16, 16], [4, 36, 32, 8], [2, 9, 64, 32], [20, 64, 50, 10], [
      3,
      5,
      77,
      7,
    ]]
  ) {
    const size = n * s * c, rows = n * s;
    const [x, dy, y, dx, stats] = [0, size, 2 * size, 3 * size, 4 * size];
    const [mean, variance, gamma, beta, dgamma, dbeta] = [0, 1, 2, 3, 4, 5].map((i) =>
      stats + i * c
    );
    const [gMean, gInv] = [stats + 6 * c, stats + 6 * c + n * g];
    calls.push([`batch norm ${[rows, c]}`, stats + 6 * c, (k, heap) => {
      k.bnlab_bn_moments(heap, x, mean, variance, rows, c, 1);
      k.bnlab_bn_forward(heap, x, mean, variance, gamma, beta, y, rows, c, 1e-3, 1);
      k.bnlab_bn_backward(heap, dy, x, mean, variance, gamma, dx, dgamma, dbeta, rows, c, 1e-3, 1);
    }]);
    calls.push([`group norm ${[n, s, c, g]}`, stats + 6 * c + 2 * n * g, (k, heap) => {
      k.bnlab_gn_forward(heap, x, gamma, beta, y, gMean, gInv, n, s, c, g, 1e-3, 1);
      k.bnlab_gn_backward(heap, dy, x, gMean, gInv, gamma, dx, dgamma, dbeta, n, s, c, g, 1);
    }]);
  }
  return calls;
}

Deno.test("the native kernels give the same floats built for any AVX2 machine as for this one", async () => {
  const native = nativeKernels();
  if (native === null || !_hasAvx2()) return;
  const dir = await Deno.makeTempDir({ prefix: "bnlab-avx2-" });
  try {
    let path: string;
    try {
      ({ path } = await buildNativeKernels({ march: "x86-64-v3", out: `${dir}/avx2.so` }));
    } catch (error) {
      if (String(error).includes("expected a C compiler")) return;
      throw error;
    }
    const avx2 = openNativeLibrary(path);
    try {
      const random = createRng(5);
      for (const [name, size, call] of _calls()) {
        // Variances and scales must be positive: the whole heap is drawn in [0.25, 1.75).
        const start = uniform(size, random).map((v) => 1 + 0.75 * v);
        const [here, there] = [start.slice(), start.slice()];
        call(native, here);
        call(avx2.symbols, there);
        // Compared as bits (a large diff from assert.deepEqual would not fit in memory).
        const [a, b] = [new Uint32Array(here.buffer), new Uint32Array(there.buffer)];
        const first = a.findIndex((bits, i) => bits !== b[i]);
        const count = a.filter((bits, i) => bits !== b[i]).length;
        assert.equal(
          first,
          -1,
          `${name}: ${count} floats differ, the first at ${first}: ${here[first]} here, ` +
            `${there[first]} built for AVX2`,
        );
      }
    } finally {
      avx2.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
