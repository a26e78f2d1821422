/**
 * bnlab's native helper kernels (lib/kernels/native_library.ts, native/bnlab_kernels.c): the C
 * im2col, col2im and MaxPoolGrad give the same floats as their JavaScript twins; a product
 * cut into slices gives the same floats on one thread or two, on every axis it is cut
 * along, and the uncut product's within float rounding; the loader's switches and errors.
 *
 * scripts/setup.sh builds the library; where it is built for the current source, it must
 * load, and where it is not, the loader says so once on stderr. Without it the comparisons compare the JavaScript path with itself and still pass.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backend.ts";
import { blasInfo, setBlasSliceThreads, sgemm } from "../lib/kernels/blas.ts";
import {
  buildNativeKernels,
  NATIVE_SOURCES,
  nativeInfo,
  nativeKernels,
  nativeLibraryPath,
  notBuiltWarning,
  setNativeEnabled,
} from "../lib/kernels/native_library.ts";
import { createRng } from "../lib/data/random.ts";
import {
  CONV_CEIL_AND_EXPLICIT_PAD_CASES,
  CONV_LENET_CASES,
  CONV_NUMERIC_PAD_CASE,
  type ConvCase,
  convInfo,
  randomConvCases,
  relativeMaxError,
  uniform,
} from "./_kernel_test_utils.ts";

function _built(): boolean {
  try {
    return Deno.statSync(nativeLibraryPath()).isFile;
  } catch {
    return false;
  }
}

Deno.test("the native kernels load where scripts/setup.sh built them", () => {
  const info = nativeInfo();
  if (!_built()) {
    assert.equal(info.enabled, false);
    assert.match(info.reason ?? "", /deno task build-native/);
    return;
  }
  assert.equal(info.enabled, true, `native kernels off: ${info.reason}`);
  assert.equal(info.library, nativeLibraryPath());
});

/** Runs `kernel` with native kernels on or off; inputs drawn from `seed`. */
async function _run(
  kernel: string,
  inputs: Record<string, number[]>,
  attrs: Record<string, unknown>,
  seed: number,
  native: boolean,
): Promise<Float32Array> {
  await initBackend("wasm");
  const previous = setNativeEnabled(native);
  const random = createRng(seed);
  const tensors = Object.fromEntries(
    Object.entries(inputs).map((
      [name, shape],
    ) => [name, tf.tensor(uniform(tf.util.sizeFromShape(shape), random), shape)]),
  );
  try {
    const y = tf.engine().runKernel(kernel, tensors, attrs as tf.NamedAttrMap) as tf.Tensor;
    const values = await y.data() as Float32Array;
    y.dispose();
    return values;
  } finally {
    tf.dispose(Object.values(tensors));
    setNativeEnabled(previous);
  }
}

/** A kernel call: its name, input shapes and attrs. */
interface _Call {
  kernel: string;
  inputs: Record<string, number[]>;
  attrs: Record<string, unknown>;
}

/** The three convolution kernels of `c`, as kernel calls. */
function _convCalls(c: ConvCase): _Call[] {
  const info = convInfo(c);
  const conv = {
    strides: c.strides,
    pad: c.pad,
    dataFormat: c.dataFormat,
    dimRoundingMode: c.dimRoundingMode,
  };
  return [
    { kernel: "Conv2D", inputs: { x: c.x, filter: c.filter }, attrs: { ...conv, dilations: 1 } },
    {
      kernel: "Conv2DBackpropFilter",
      inputs: { x: c.x, dy: info.outShape },
      attrs: { ...conv, filterShape: c.filter },
    },
    {
      kernel: "Conv2DBackpropInput",
      inputs: { dy: info.outShape, filter: c.filter },
      attrs: { ...conv, inputShape: c.x },
    },
  ];
}

// With the native kernels off, products are not split over threads either, which changes
// their summation order: the convolutions agree within float rounding (1e-6 relative; a
// misplaced tap in im2col or col2im gives errors of order one).
Deno.test("native im2col and col2im agree with the JavaScript loops on 33 convolutions", async () => {
  const cases = [
    ...CONV_LENET_CASES,
    CONV_NUMERIC_PAD_CASE,
    ...CONV_CEIL_AND_EXPLICIT_PAD_CASES,
    ...randomConvCases(28, 20261201),
  ];
  // A dilated filter, with padding on every side.
  const dilated = { x: [2, 9, 10, 3], filter: [3, 2, 3, 4] };
  let seed = 1;
  for (const c of cases) {
    for (const call of _convCalls(c)) {
      seed++;
      const label = `${call.kernel} ${JSON.stringify(c)}`;
      const native = await _run(call.kernel, call.inputs, call.attrs, seed, true);
      const js = await _run(call.kernel, call.inputs, call.attrs, seed, false);
      const error = relativeMaxError(native, js);
      assert.ok(error <= 1e-6, `${label}: relative error ${error}`);
    }
  }
  const attrs = { strides: 1, pad: "same", dataFormat: "NHWC", dilations: [2, 3] };
  const native = await _run("Conv2D", dilated, attrs, 7, true);
  const error = relativeMaxError(native, await _run("Conv2D", dilated, attrs, 7, false));
  assert.ok(error <= 1e-6, `dilated: relative error ${error}`);
});

// On two threads im2col and col2im split their rows where the products split theirs (mid-image
// for LeNet's first layer at batch 3): a copy and per-image sums, so every float stays.
Deno.test("the BLAS convolutions give the same floats on one thread or two", async () => {
  await initBackend("wasm");
  if (blasInfo().sliceThreads < 2) return;
  const cases: ConvCase[] = [
    ...CONV_LENET_CASES,
    ...CONV_LENET_CASES.map((c): ConvCase => ({ ...c, x: [20, c.x[1], c.x[2], c.x[3]] })),
    CONV_NUMERIC_PAD_CASE,
    ...CONV_CEIL_AND_EXPLICIT_PAD_CASES,
  ];
  let seed = 100;
  for (const c of cases) {
    for (const call of _convCalls(c)) {
      seed++;
      const label = `${call.kernel} ${JSON.stringify(c)}`;
      const previous = setBlasSliceThreads(1);
      let one: Float32Array;
      try {
        one = await _run(call.kernel, call.inputs, call.attrs, seed, true);
      } finally {
        setBlasSliceThreads(previous);
      }
      setBlasSliceThreads(2);
      try {
        const two = await _run(call.kernel, call.inputs, call.attrs, seed, true);
        assert.deepEqual(two, one, label);
      } finally {
        setBlasSliceThreads(previous);
      }
    }
  }
});

Deno.test("native MaxPoolGrad gives the JavaScript loop's floats, ties and -0 included", async () => {
  const random = createRng(11);
  const int = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));
  for (let i = 0; i < 24; i++) {
    const filter = int(1, 3), stride = filter + int(0, 1);
    const channels = [1, 3, 20, 70][i % 4]; // 70: more than one group of 64 channels in C
    const x = [int(1, 3), int(filter, 11), int(filter, 11), channels];
    const pad = i % 3 === 0 ? "same" : "valid";
    const info = tf.backend_util.computePool2DInfo(
      x as [number, number, number, number],
      filter,
      stride,
      1,
      pad,
    );
    const run = async (native: boolean) => {
      await initBackend("wasm");
      const previous = setNativeEnabled(native);
      try {
        const values = uniform(tf.util.sizeFromShape(x), createRng(i));
        // Ties, a NaN and -Infinity, which the argmax rule must treat as cpu does.
        for (let j = 0; j < values.length; j += 5) values[j] = 0.5;
        values[1] = NaN;
        values[2] = -Infinity;
        const dyValues = uniform(tf.util.sizeFromShape(info.outShape), createRng(100 + i));
        dyValues[0] = -0;
        const dx = tf.tidy(() => {
          const input = tf.tensor4d(values, x as [number, number, number, number]);
          const dy = tf.tensor(dyValues, info.outShape);
          const output = tf.maxPool(input, filter, stride, pad);
          return tf.engine().runKernel(
            "MaxPoolGrad",
            { dy, input, output },
            { filterSize: filter, strides: stride, pad } as unknown as tf.NamedAttrMap,
          ) as tf.Tensor;
        });
        const result = await dx.data() as Float32Array;
        dx.dispose();
        return result;
      } finally {
        setNativeEnabled(previous);
      }
    };
    const native = await run(true);
    const js = await run(false);
    assert.deepEqual(native, js, JSON.stringify({ x, filter, stride, pad }));
    assert.ok(native.every((v) => !Object.is(v, -0)), "dx = 0 + dy: no -0");
  }
});

Deno.test("a product's slices give the same floats on one thread or two, on every axis", () => {
  const native = nativeKernels();
  if (native === null) return;
  // [m, n, k]: cut rows, columns, the sum (small m·n), LeNet's shapes.
  const shapes = [
    [1280, 50, 500],
    [20, 500, 800],
    [800, 500, 20],
    [25, 20, 11520],
    [33, 97, 301],
    [7, 9, 700],
  ];
  const random = createRng(5);
  for (const [m, n, k] of shapes) {
    for (const [ta, tb] of [[0, 0], [1, 0], [0, 1], [1, 1]]) {
      const a = uniform(m * k, random), b = uniform(k * n, random);
      const c = uniform(m * n, random);
      const one = c.slice(), two = c.slice(), uncut = c.slice();
      const lda = ta ? m : k, ldb = tb ? k : n;
      const label = `${m}×${n}×${k} ${ta}${tb}`;
      assert.equal(native.bnlab_sgemm(ta, tb, m, n, k, 0.5, a, lda, b, ldb, 0.25, one, n, 1), 0);
      assert.equal(native.bnlab_sgemm(ta, tb, m, n, k, 0.5, a, lda, b, ldb, 0.25, two, n, 2), 0);
      assert.deepEqual(two, one, label);
      // The library's own uncut product: the same within float rounding.
      const previous = setNativeEnabled(false);
      try {
        sgemm(ta === 1, tb === 1, m, n, k, 0.5, a, lda, b, ldb, 0.25, uncut, n);
      } finally {
        setNativeEnabled(previous);
      }
      const error = relativeMaxError(one, uncut);
      assert.ok(error <= 1e-5, `${label}: relative error ${error}`);
    }
  }
});

/** Runs `code` in a child Deno with `env`; returns its last line of output. */
async function _child(env: Record<string, string>, code: string): Promise<string> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "-"],
    env,
    cwd: new URL("..", import.meta.url).pathname,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(code));
  await writer.close();
  const output = await child.output();
  const stdout = new TextDecoder().decode(output.stdout).trim();
  const stderr = new TextDecoder().decode(output.stderr);
  return output.success ? stdout.split("\n").at(-1)! : `exit ${output.code}: ${stderr}`;
}

const _INFO = `
  import { blasInfo } from "${new URL("../lib/kernels/blas.ts", import.meta.url)}";
  import { nativeInfo } from "${new URL("../lib/kernels/native_library.ts", import.meta.url)}";
  console.log(JSON.stringify({ blas: blasInfo(), native: nativeInfo() }));
`;

Deno.test("BNLAB_NATIVE=off switches the native kernels and the split off, saying why", async () => {
  const result = JSON.parse(await _child({ BNLAB_NATIVE: "off" }, _INFO));
  assert.deepEqual(result.native, {
    enabled: false,
    library: null,
    reason: "switched off by BNLAB_NATIVE=off",
  });
  if (result.blas.enabled) {
    assert.equal(result.blas.slices, 1);
    assert.equal(result.blas.sliceThreads, 1);
    assert.match(result.blas.sliceReason, /^native kernels off: switched off by BNLAB_NATIVE/);
  }
});

Deno.test("BNLAB_BLAS_THREADS sets the threads of the slices, and a bad value is a clear error", async () => {
  for (const bad of ["two", "3", "0"]) {
    assert.match(
      await _child({ BNLAB_BLAS_THREADS: bad }, _INFO),
      new RegExp(`BNLAB_BLAS_THREADS must be an integer from 1 to 2 .*, received "${bad}"`),
    );
  }
  if (!_built() || !blasInfo().enabled) return;
  for (const threads of [1, 2]) {
    const result = JSON.parse(await _child({ BNLAB_BLAS_THREADS: `${threads}` }, _INFO));
    assert.equal(result.blas.slices, 2);
    if (/SINGLE_THREADED/.test(result.blas.config)) continue;
    assert.equal(result.blas.sliceThreads, threads);
    assert.equal(result.blas.sliceReason, undefined);
  }
});

Deno.test("OpenBLAS's serial build gets one thread, and says why", async () => {
  const serial = "/usr/lib/x86_64-linux-gnu/openblas-serial/libopenblas.so.0";
  try {
    Deno.statSync(serial);
  } catch {
    return; // not installed here
  }
  const result = JSON.parse(
    await _child({ BNLAB_BLAS: serial, BNLAB_BLAS_THREADS: "2" }, _INFO),
  );
  assert.equal(result.blas.library, serial);
  if (!_built()) return;
  assert.equal(result.blas.slices, 2);
  assert.equal(result.blas.sliceThreads, 1);
  assert.match(result.blas.sliceReason, /serial build, which serializes calls/);
});

Deno.test("buildNativeKernels names the compiler it could not run", async () => {
  await assert.rejects(
    () => buildNativeKernels({ compiler: "/nonexistent/cc", force: true }),
    /expected a C compiler at "\/nonexistent\/cc" \(set CC to another\), received: /,
  );
});

/**
 * Runs `code` in a child Deno, in a copy of the loader (native_library.ts, env.ts and the C
 * sources, as in lib/) that has no build folder; returns the child's stdout and stderr.
 */
async function _unbuiltChild(env: Record<string, string>, code: string) {
  const root = await Deno.makeTempDir({ prefix: "bnlab-unbuilt-" });
  const lib = new URL("../lib/", import.meta.url);
  await Deno.mkdir(`${root}/lib/kernels/native`, { recursive: true });
  const copied = [
    "env.ts",
    "kernels/native_library.ts",
    ...NATIVE_SOURCES.map((url) => url.href.slice(lib.href.length)),
  ];
  for (const path of copied) {
    await Deno.copyFile(new URL(path, lib), `${root}/lib/${path}`);
  }
  const loader = `${root}/lib/kernels/native_library.ts`;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--no-config", "-"],
    env,
    cwd: root,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(code.replaceAll("LOADER", loader)));
  await writer.close();
  const result = await child.output();
  await Deno.remove(root, { recursive: true });
  return {
    code: result.code,
    stdout: new TextDecoder().decode(result.stdout).trim(),
    stderr: new TextDecoder().decode(result.stderr),
    expected: `${root}/lib/kernels/native/build/${nativeLibraryPath().split("/").at(-1)}`,
  };
}

const _TWICE = `
  import { nativeInfo, nativeKernels } from "LOADER";
  nativeKernels();
  console.log(JSON.stringify(nativeInfo()));
`;

Deno.test("without the built library the loader warns once on stderr, unless BNLAB_NATIVE=off", async () => {
  const unbuilt = await _unbuiltChild({}, _TWICE);
  assert.equal(unbuilt.code, 0, unbuilt.stderr);
  assert.equal(unbuilt.stderr, `${notBuiltWarning(unbuilt.expected)}\n`);
  assert.match(unbuilt.stderr, /native kernels are not built .* `deno task build-native`/);
  assert.equal(JSON.parse(unbuilt.stdout).enabled, false);
  const off = await _unbuiltChild({ BNLAB_NATIVE: "off" }, _TWICE);
  assert.equal(off.code, 0, off.stderr);
  assert.equal(off.stderr, "");
  assert.equal(JSON.parse(off.stdout).reason, "switched off by BNLAB_NATIVE=off");
});

Deno.test("the warning is one line naming the missing file and the build command", () => {
  const line = notBuiltWarning("/x/libbnlab_kernels-0123abcd.so");
  assert.doesNotMatch(line, /\n/);
  assert.match(
    line,
    /^bnlab: warning: native kernels are not built for this source \(no \/x\/libbnlab_kernels-0123abcd\.so\)/,
  );
  assert.match(line, /deno task build-native/);
  assert.match(line, /BNLAB_NATIVE=off/);
});
