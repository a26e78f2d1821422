/**
 * Helpers shared by the tests of the wasm kernels of lib/kernels/ (tests/*_test.ts of
 * BatchMatMul, Conv2DBackpropFilter, Conv2DBackpropInput, MaxPoolGrad and Tile): random
 * inputs, reading results, comparing wasm with cpu, the "fast path without its fallback"
 * check, and the memory and LeNet-gradient checks. Not a test file itself (`deno test` runs
 * only files named *_test.ts).
 *
 * @module
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { type BackendName, initBackend } from "../lib/backend.ts";
import { replacedWasmKernel } from "../lib/kernels/mod.ts";
import { createLeNet, type Normalization } from "../lib/models/lenet.ts";
import { createRng } from "../lib/data/random.ts";

/** Relative tolerance of the float kernels: max|wasm − cpu| ≤ 1e-4 · max|cpu|. */
export const TOLERANCE = 1e-4;

/** `size` floats drawn uniformly from [−1, 1) by `random`. */
export function uniform(size: number, random: () => number): Float32Array {
  return Float32Array.from({ length: size }, () => 2 * random() - 1);
}

/**
 * A normalization's inputs for x of `shape` (channels last), drawn by `random` in this order:
 * x in [−2, 4), the upstream gradient dy in [−1, 1), γ in [0.5, 2.5) and β in [−1, 1) per channel.
 */
export function normInputs(
  shape: readonly number[],
  random: () => number,
): { xs: Float32Array; dys: Float32Array; gammas: Float32Array; betas: Float32Array } {
  const size = shape.reduce((a, b) => a * b, 1), channels = shape[shape.length - 1];
  const xs = uniform(size, random).map((v) => 3 * v + 1);
  const dys = uniform(size, random);
  const gammas = uniform(channels, random).map((v) => v + 1.5);
  const betas = uniform(channels, random);
  return { xs, dys, gammas, betas };
}

/** A draw of integers lo…hi (both included) from `random`, for random case generators. */
export function randomInts(random: () => number): (lo: number, hi: number) => number {
  return (lo, hi) => lo + Math.floor(random() * (hi - lo + 1));
}

/**
 * Where a kernel runs: a backend through the engine, or one of the tests' own routes on wasm
 * ("wasm-direct": the kernel's function called with a fallback that fails the test, and
 * others such as "wasm-spy" or "wasm-original").
 */
export type Route = BackendName | `wasm-${string}`;

/** Sets the backend a route runs on: wasm for every "wasm-…" route. */
export async function initRoute(route: Route): Promise<void> {
  await initBackend(route.startsWith("wasm") ? "wasm" : route as BackendName);
}

/** A kernel's output, read back: shape, dtype and values. */
export interface KernelResult<V extends ArrayLike<number> = Float32Array> {
  shape: number[];
  dtype: tf.DataType;
  values: V;
}

/** Reads `t`'s shape, dtype and values (as `V`: Float32Array for float32), and disposes it. */
export async function readAndDispose<V extends ArrayLike<number> = Float32Array>(
  t: tf.Tensor,
): Promise<KernelResult<V>> {
  const result = { shape: t.shape, dtype: t.dtype, values: await t.data() as unknown as V };
  t.dispose();
  return result;
}

/** The message of the fallback of {@link failingFallback}: the fast path should cover `c`. */
export function fastPathMessage(c: unknown): string {
  return `the fast path should cover ${JSON.stringify(c)}`;
}

/** A fallback for a kernel's function that fails the test: case `c` should not need it. */
export function failingFallback(c: unknown): () => never {
  return () => {
    throw new Error(fastPathMessage(c));
  };
}

/**
 * The cpu-vs-wasm comparison: for each case `c` (the i-th, inputs from seed `seedBase + i`,
 * labelled by its JSON), runs `run` on cpu, then on each of `routes`, and calls
 * `check(actual, expected, c, label, route)` on each route's result.
 */
export async function compareWithCpu<C, R, K extends Route>(
  cases: readonly C[],
  seedBase: number,
  routes: readonly K[],
  run: (route: K | "cpu", c: C, seed: number) => Promise<R>,
  check: (actual: R, expected: R, c: C, label: string, route: K) => void,
): Promise<void> {
  for (const [i, c] of cases.entries()) {
    const label = JSON.stringify(c);
    const expected = await run("cpu", c, seedBase + i);
    for (const route of routes) {
      const actual = await run(route, c, seedBase + i);
      check(actual, expected, c, label, route);
    }
  }
}

/**
 * The check of cases a kernel hands to tfjs's: for each case `c` (the i-th, inputs from seed
 * `seedBase + i`, labelled by its JSON), asserts that "wasm" gives the shape of `reference`
 * ("cpu", or "wasm-original": tfjs's own wasm kernel) and its values (by
 * `assertValues(actual, expected, label)`), and that "wasm-direct" (the kernel's function
 * with {@link failingFallback}) rejects with {@link fastPathMessage}.
 */
export async function assertFallbackCases<
  C,
  V extends ArrayLike<number>,
  Reference extends "cpu" | "wasm-original",
>(
  cases: readonly C[],
  seedBase: number,
  reference: Reference,
  run: (
    route: Reference | "wasm" | "wasm-direct",
    c: C,
    seed: number,
  ) => Promise<{ shape: number[]; values: V }>,
  assertValues: (actual: V, expected: V, label: string) => void,
): Promise<void> {
  for (const [i, c] of cases.entries()) {
    const label = JSON.stringify(c);
    const expected = await run(reference, c, seedBase + i);
    const actual = await run("wasm", c, seedBase + i);
    assert.deepEqual(actual.shape, expected.shape, label);
    assertValues(actual.values, expected.values, label);
    await assert.rejects(() => run("wasm-direct", c, seedBase + i), {
      message: fastPathMessage(c),
    });
  }
}

/** max|a − b| / max|b| over all elements. */
export function relativeMaxError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let error = 0, scale = 0;
  for (let i = 0; i < expected.length; i++) {
    error = Math.max(error, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  return scale === 0 ? error : error / scale;
}

/**
 * Asserts relativeMaxError(actual, expected) ≤ {@link TOLERANCE}; the message starts with
 * `label` when given.
 */
export function assertRelativeClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  label?: string,
): void {
  const error = relativeMaxError(actual, expected);
  const message = `relative error ${error} > ${TOLERANCE}`;
  assert.ok(error <= TOLERANCE, label === undefined ? message : `${label}: ${message}`);
}

/** Asserts `actual` equals `expected` element for element by `Object.is` (−0 and NaN count). */
export function assertSameValues(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  label: string,
): void {
  assert.equal(actual.length, expected.length, label);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Object.is(actual[i], expected[i]), `${label}[${i}]: ${actual[i]} ≠ ${expected[i]}`);
  }
}

/**
 * Sets up the wasm backend and asserts that lib/kernels/ replaced tfjs's wasm kernel
 * `kernelName` and kept the original (`message`, when given, labels both assertions);
 * returns the original.
 */
export async function assertWasmKernelReplaced(
  kernelName: string,
  message?: string,
): Promise<tf.KernelConfig> {
  await initBackend("wasm");
  const original = replacedWasmKernel(kernelName);
  const current = tf.getKernel(kernelName, "wasm")?.kernelFunc;
  // Without a message, node's assert writes its own.
  if (message === undefined) {
    assert.ok(original !== undefined);
    assert.notEqual(current, original.kernelFunc);
  } else {
    assert.ok(original !== undefined, message);
    assert.notEqual(current, original.kernelFunc, message);
  }
  return original;
}

/**
 * tf.memory() (the engine's tensor, byte and buffer counts; on wasm also a constant
 * `unreliable: false`) and the backend's own count of live buffers (wasm heap ids).
 */
export function memorySnapshot(): tf.MemoryInfo & { backendDataIds: number } {
  return { ...tf.memory(), backendDataIds: tf.backend().numDataIds() };
}

/**
 * Runs `step` once as a warm-up (tfjs caches a few scalars on first use, optimizers create
 * their state), then `iterations` times, each time reading (awaiting) and disposing the
 * tensors it returns, and asserts that {@link memorySnapshot} is the same after the
 * iterations as before them.
 */
export async function assertMemoryFlat(
  step: () => tf.Tensor[],
  iterations: number,
): Promise<void> {
  const run = async () => {
    const outputs = step();
    await Promise.all(outputs.map((t) => t.data()));
    tf.dispose(outputs);
  };
  await run();
  const before = memorySnapshot();
  for (let i = 0; i < iterations; i++) await run();
  assert.deepEqual(memorySnapshot(), before);
}

/** One convolution (x, filter, strides, pad, format) whose gradient is compared. */
export interface ConvCase {
  x: [number, number, number, number];
  filter: [number, number, number, number];
  strides: [number, number];
  pad: tf.Conv2DBackpropInputAttrs["pad"];
  dataFormat: "NHWC" | "NCHW";
  dimRoundingMode?: "floor" | "round" | "ceil";
}

/**
 * `count` random NHWC convolutions drawn from `seed`: filters 1–5 per axis, strides 1–2 per
 * axis, pads alternately valid and same, odd and non-square sizes up to 13, batch 1–8,
 * 1–16 channels in and out.
 */
export function randomConvCases(count: number, seed: number): ConvCase[] {
  const int = randomInts(createRng(seed));
  return Array.from({ length: count }, (_, i): ConvCase => {
    const kh = int(1, 5), kw = int(1, 5), inChannels = int(1, 16);
    return {
      x: [int(1, 8), int(kh, 13), int(kw, 13), inChannels],
      filter: [kh, kw, inChannels, int(1, 16)],
      strides: [int(1, 2), int(1, 2)],
      pad: i % 2 === 0 ? "valid" : "same",
      dataFormat: "NHWC",
    };
  });
}

/** LeNet's two convolutions (at batch 3). */
export const CONV_LENET_CASES: readonly ConvCase[] = [
  { x: [3, 28, 28, 1], filter: [5, 5, 1, 20], strides: [1, 1], pad: "valid", dataFormat: "NHWC" },
  { x: [3, 12, 12, 20], filter: [5, 5, 20, 50], strides: [1, 1], pad: "valid", dataFormat: "NHWC" },
];

/** A numeric pad, which the random draw never makes. */
export const CONV_NUMERIC_PAD_CASE: ConvCase = {
  x: [2, 9, 7, 3],
  filter: [3, 2, 3, 4],
  strides: [2, 2],
  pad: 1,
  dataFormat: "NHWC",
};

/** A numeric pad with ceil rounding, and an explicit asymmetric pad. */
export const CONV_CEIL_AND_EXPLICIT_PAD_CASES: readonly ConvCase[] = [
  {
    x: [2, 10, 9, 3],
    filter: [3, 3, 3, 2],
    strides: [2, 2],
    pad: 1,
    dataFormat: "NHWC",
    dimRoundingMode: "ceil",
  },
  {
    x: [2, 8, 9, 2],
    filter: [3, 4, 2, 3],
    strides: [1, 2],
    pad: [[0, 0], [2, 0], [1, 3], [0, 0]],
    dataFormat: "NHWC",
  },
];

/** NCHW convolutions (the random draw is NHWC only). */
export const CONV_NCHW_CASES: readonly ConvCase[] = [
  { x: [2, 3, 9, 8], filter: [3, 3, 3, 4], strides: [2, 1], pad: "same", dataFormat: "NCHW" },
  { x: [1, 5, 6, 7], filter: [2, 3, 5, 3], strides: [1, 1], pad: "valid", dataFormat: "NCHW" },
];

/** tfjs's shape information (outShape: dy's shape) of the convolution `c`. */
export function convInfo(c: ConvCase): tf.backend_util.Conv2DInfo {
  return tf.backend_util.computeConv2DInfo(
    c.x,
    c.filter,
    c.strides,
    1,
    c.pad,
    c.dimRoundingMode,
    false,
    c.dataFormat === "NHWC" ? "channelsLast" : "channelsFirst",
  );
}

/** A LeNet's trainable weights' names, all its weights and the gradients, as read back. */
export interface LeNetGradients {
  names: string[];
  weights: Float32Array[];
  grads: Float32Array[];
}

/**
 * Gradients of the mean softmax cross-entropy of LeNet (lib/models/lenet.ts, initialized
 * from `modelSeed`) in training mode on 8 random images, with respect to every trainable
 * weight, on `backend`; `weights` (when given) replace the initial ones.
 */
export async function leNetGradients(
  backend: BackendName,
  normalization: Normalization,
  modelSeed: number,
  weights?: Float32Array[],
): Promise<LeNetGradients> {
  await initBackend(backend);
  const model = createLeNet({ normalization, seed: modelSeed });
  if (weights) {
    const values = model.getWeights().map((w, i) => tf.tensor(weights[i], w.shape));
    model.setWeights(values);
    tf.dispose(values);
  }
  const random = createRng(11);
  const images = tf.tensor4d(uniform(8 * 28 * 28, random).map((v) => (v + 1) / 2), [8, 28, 28, 1]);
  const labels = tf.oneHot(tf.tensor1d([0, 1, 2, 3, 4, 5, 6, 7], "int32"), 10);
  return await crossEntropyGradients(model, images, labels);
}

/**
 * The gradient of the mean softmax cross-entropy of `model` (training mode) on `images` and
 * one-hot `labels`, with the weights it was taken at; disposes the model and the inputs.
 */
export async function crossEntropyGradients(
  model: tf.LayersModel,
  images: tf.Tensor,
  labels: tf.Tensor,
): Promise<{ names: string[]; weights: Float32Array[]; grads: Float32Array[] }> {
  const trainable = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const { value, grads } = tf.variableGrads(() => {
    const logits = model.apply(images, { training: true }) as tf.Tensor;
    return tf.losses.softmaxCrossEntropy(labels, logits) as tf.Scalar;
  }, trainable);
  const names = trainable.map((v) => v.name);
  const result = {
    names,
    weights: await Promise.all(model.getWeights().map((w) => w.data() as Promise<Float32Array>)),
    grads: await Promise.all(names.map((n) => grads[n].data() as Promise<Float32Array>)),
  };
  tf.dispose([value, images, labels, ...Object.values(grads)]);
  model.dispose();
  return result;
}

/**
 * Compares LeNet's full gradient on wasm with cpu's (the mean softmax cross-entropy on 8
 * random images, in training mode, the model initialized from `modelSeed` on wasm and cpu
 * given wasm's weights): asserts as many gradients, and for each weight tensor a relative
 * L2 error ‖g_wasm − g_cpu‖₂ / ‖g_cpu‖₂ ≤ 1e-3.
 */
export async function assertLeNetGradientsMatchCpu(
  normalization: Normalization,
  modelSeed: number,
): Promise<void> {
  const wasm = await leNetGradients("wasm", normalization, modelSeed);
  const cpu = await leNetGradients("cpu", normalization, modelSeed, wasm.weights);
  assert.equal(cpu.grads.length, wasm.grads.length);
  for (const [i, g] of wasm.grads.entries()) {
    let diff = 0, norm = 0;
    for (let j = 0; j < g.length; j++) {
      diff += (g[j] - cpu.grads[i][j]) ** 2;
      norm += cpu.grads[i][j] ** 2;
    }
    const error = Math.sqrt(diff / norm);
    assert.ok(error <= 1e-3, `${wasm.names[i]}: relative error ${error} > 1e-3`);
  }
}
