/**
 * The wasm `MaxPoolGrad` kernel of lib/kernels/ against tfjs's cpu kernel, which it must
 * equal exactly (it moves dy values, it does no arithmetic), including on ties: windows of
 * equal values, ReLU zeros, integers drawn from a few values, −∞ and NaN.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { type BackendName, initBackend } from "../lib/backend.ts";
import { maxPoolGradWasm } from "../lib/kernels/max_pool_grad.ts";
import { replacedWasmKernel } from "../lib/kernels/mod.ts";
import { createRng } from "../lib/data/random.ts";
import {
  assertFallbackCases,
  assertMemoryFlat,
  assertSameValues,
  assertWasmKernelReplaced,
  compareWithCpu,
  failingFallback,
  initRoute,
  randomInts,
  readAndDispose,
} from "./_kernel_test_utils.ts";

/** How x's values are drawn: uniform, ReLU'd normal-ish, few integers, all equal, specials. */
type _Values = "uniform" | "relu" | "few" | "equal" | "special";

/** One pool whose input gradient is compared. */
interface _Case {
  x: [number, number, number, number];
  filterSize: [number, number];
  strides: [number, number];
  pad: "valid" | "same" | number;
  dimRoundingMode?: "floor" | "round" | "ceil";
  values: _Values;
}

const _VALUE_KINDS: readonly _Values[] = ["uniform", "relu", "few", "equal", "special"];

/** Random non-overlapping pools: filter ≤ stride, 'valid' and 'same', odd sizes too. */
function _randomCases(count: number, seed: number): _Case[] {
  const int = randomInts(createRng(seed));
  return Array.from({ length: count }, (_, i): _Case => {
    const sh = int(1, 3), sw = int(1, 3);
    const fh = i % 3 === 0 ? int(1, sh) : sh, fw = i % 3 === 0 ? int(1, sw) : sw;
    return {
      x: [int(1, 4), int(fh, 13), int(fw, 13), int(1, 9)],
      filterSize: [fh, fw],
      strides: [sh, sw],
      pad: i % 4 === 3 ? "same" : "valid",
      values: _VALUE_KINDS[i % _VALUE_KINDS.length],
    };
  });
}

/** LeNet's pools, and numeric pads and rounding modes. */
const _FIXED_CASES: _Case[] = [
  { x: [4, 24, 24, 20], filterSize: [2, 2], strides: [2, 2], pad: "valid", values: "relu" },
  { x: [4, 8, 8, 50], filterSize: [2, 2], strides: [2, 2], pad: "valid", values: "relu" },
  { x: [2, 8, 8, 3], filterSize: [2, 2], strides: [2, 2], pad: "valid", values: "equal" },
  // Channels of the 8-wide, 4-wide and one-at-a-time paths of the tiling 2×2 pool.
  { x: [2, 8, 8, 13], filterSize: [2, 2], strides: [2, 2], pad: "valid", values: "special" },
  { x: [2, 4, 4, 15], filterSize: [2, 2], strides: [2, 2], pad: "valid", values: "equal" },
  { x: [2, 7, 9, 3], filterSize: [2, 2], strides: [2, 2], pad: "valid", values: "few" },
  { x: [2, 7, 9, 3], filterSize: [3, 3], strides: [3, 3], pad: "same", values: "special" },
  { x: [1, 9, 8, 2], filterSize: [2, 3], strides: [3, 3], pad: 1, values: "few" },
  {
    x: [2, 10, 9, 2],
    filterSize: [2, 2],
    strides: [2, 2],
    pad: 1,
    dimRoundingMode: "ceil",
    values: "relu",
  },
];

/**
 * Overlapping windows: tfjs's wasm kernel runs them (which differs from cpu's: it gives a
 * tie to another position, and with these 'same' pads differs even without ties).
 */
const _FALLBACK_CASES: _Case[] = [
  { x: [2, 9, 9, 3], filterSize: [3, 3], strides: [2, 2], pad: "same", values: "few" },
  { x: [1, 6, 7, 2], filterSize: [2, 2], strides: [1, 1], pad: "valid", values: "uniform" },
];

function _values(kind: _Values, size: number, random: () => number): Float32Array {
  const specials = [-Infinity, NaN, 0, -0, 1, Infinity];
  return Float32Array.from({ length: size }, () => {
    switch (kind) {
      case "uniform":
        return 2 * random() - 1;
      case "relu":
        return Math.max(0, 2 * random() - 1);
      case "few":
        return Math.floor(3 * random());
      case "equal":
        return 0.5;
      case "special":
        return random() < 0.5 ? specials[Math.floor(random() * 6)] : -Infinity;
    }
  });
}

function _attrs(c: _Case): tf.NamedAttrMap {
  return {
    filterSize: c.filterSize,
    strides: c.strides,
    pad: c.pad,
    dimRoundingMode: c.dimRoundingMode,
  } as unknown as tf.NamedAttrMap;
}

/**
 * Runs MaxPoolGrad on `backend` with x and dy drawn from `seed`: through the engine, (for
 * "wasm-direct") by calling maxPoolGradWasm with a fallback that fails the test, or (for
 * "wasm-original") through tfjs's wasm kernel that ours replaced.
 */
async function _maxPoolGrad(
  backend: BackendName | "wasm-direct" | "wasm-original",
  c: _Case,
  seed: number,
) {
  await initRoute(backend);
  const random = createRng(seed);
  const info = tf.backend_util.computePool2DInfo(
    c.x,
    c.filterSize,
    c.strides,
    1,
    c.pad,
    c.dimRoundingMode,
  );
  const xValues = _values(c.values, tf.util.sizeFromShape(c.x), random);
  const dyValues = _values("uniform", tf.util.sizeFromShape(info.outShape), random);
  dyValues[0] = -0;
  const dx = tf.tidy(() => {
    const input = tf.tensor4d(xValues, c.x);
    const dy = tf.tensor4d(dyValues, info.outShape);
    const output = tf.maxPool(input, c.filterSize, c.strides, c.pad, c.dimRoundingMode);
    const inputs = { dy, input, output };
    const args = { inputs, backend: tf.backend(), attrs: _attrs(c) };
    if (backend === "wasm-original") {
      const original = replacedWasmKernel("MaxPoolGrad")!;
      return tf.engine().makeTensorFromTensorInfo(original.kernelFunc(args) as tf.TensorInfo);
    }
    if (backend !== "wasm-direct") {
      return tf.engine().runKernel("MaxPoolGrad", inputs, _attrs(c)) as tf.Tensor;
    }
    const result = maxPoolGradWasm(args, failingFallback(c));
    return tf.engine().makeTensorFromTensorInfo(result);
  });
  return await readAndDispose(dx);
}

Deno.test("wasm MaxPoolGrad equals cpu exactly on 39 pools with ties, without its fallback", async () => {
  const cases = [..._randomCases(30, 20241124), ..._FIXED_CASES];
  const routes = ["wasm", "wasm-direct"] as const;
  await compareWithCpu(cases, 500, routes, _maxPoolGrad, (actual, expected, c, label, route) => {
    assert.deepEqual(actual.shape, c.x, label);
    assert.equal(actual.dtype, "float32", label);
    assertSameValues(actual.values, expected.values, `${route} ${label}`);
  });
});

Deno.test("wasm MaxPoolGrad hands overlapping windows to tfjs's kernel", async () => {
  await assertFallbackCases(_FALLBACK_CASES, 600, "wasm-original", _maxPoolGrad, assertSameValues);
});

Deno.test("wasm MaxPoolGrad replaced tfjs's kernel and keeps it", async () => {
  await assertWasmKernelReplaced("MaxPoolGrad");
});

Deno.test("wasm MaxPoolGrad rejects a dy whose shape does not match", async () => {
  await initBackend("wasm");
  const input = tf.zeros([1, 4, 4, 1]);
  const dy = tf.zeros([1, 3, 3, 1]);
  assert.throws(
    () =>
      tf.engine().runKernel("MaxPoolGrad", { dy, input, output: dy }, {
        filterSize: 2,
        strides: 2,
        pad: "valid",
      }),
    {
      message: "MaxPoolGrad (wasm): dy must have the pool's output shape [1,2,2,1] for " +
        "input [1,4,4,1], received [1,3,3,1]",
    },
  );
  tf.dispose([input, dy]);
});

Deno.test("wasm MaxPoolGrad keeps tensors, bytes and backend buffers flat", async () => {
  await initBackend("wasm");
  const x = tf.relu(tf.randomUniform([8, 24, 24, 20], -1, 1, "float32", 1)) as tf.Tensor4D;
  await assertMemoryFlat(() => [
    tf.grad((x: tf.Tensor) => tf.maxPool(x as tf.Tensor4D, 2, 2, "valid").square().sum())(x),
    tf.grad((x: tf.Tensor) => tf.maxPool(x as tf.Tensor4D, 3, 2, "same").sum())(x), // the fallback
  ], 20);
  x.dispose();
});
