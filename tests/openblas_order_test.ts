/**
 * bnlab's matrix products with OpenBLAS's floats (lib/kernels/native/openblas_order.c) against
 * OpenBLAS itself: every float of every product the same, on random shapes over both transposes
 * and beta 0 and 1, on LeNet's and ResNet-20's shapes as the training step cuts them, on the
 * shapes that cross the library's blocks (depth past 320 and 640 terms, more than 320 columns,
 * more than 25,872 rows), over a whole LeNet gradient, and on convolutions whose products
 * read their im2col matrix from the images (`gatheredProduct`).
 *
 * The kernel runs where the native kernels are built for AVX-512 and the library is OpenBLAS
 * 0.3.21 on its Haswell kernels (`OPENBLAS_CORETYPE=Haswell`); elsewhere the tests are ignored,
 * as there is nothing to compare.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backend.ts";
import { blasInfo, setBlasSliceThreads, setOpenBlasOrder, sgemm } from "../lib/kernels/blas.ts";
import { gatheredProduct, im2col } from "../lib/kernels/im2col.ts";
import { createLeNet } from "../lib/models/lenet.ts";
import { createRng } from "../lib/data/random.ts";

const _ON = blasInfo().openblasOrder;

/** One product: C = op(A)·op(B) + beta·C, C [m, n] row-major. */
interface _Product {
  transA: boolean;
  transB: boolean;
  m: number;
  n: number;
  k: number;
  beta: 0 | 1;
}

/** The product's C on bnlab's kernel (`order`) or OpenBLAS, from inputs drawn from `seed`. */
function _compute(p: _Product, seed: number, order: boolean): Float32Array {
  const random = createRng(seed);
  const draw = (length: number) => Float32Array.from({ length }, () => 2 * random() - 1);
  const a = draw(p.m * p.k), b = draw(p.k * p.n), c = draw(p.m * p.n);
  // Some exact zeros, so that signed zeros and cancellations occur.
  for (let i = 0; i < a.length; i += 7) a[i] = 0;
  const previous = setOpenBlasOrder(order);
  try {
    const lda = p.transA ? p.m : p.k, ldb = p.transB ? p.k : p.n;
    sgemm(p.transA, p.transB, p.m, p.n, p.k, 1, a, lda, b, ldb, p.beta, c, p.n);
  } finally {
    setOpenBlasOrder(previous);
  }
  return c;
}

/** The first element whose bits differ, or -1 and the count of those that do. */
function _differences(x: Float32Array, y: Float32Array): { count: number; first: number } {
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const v = new Uint32Array(y.buffer, y.byteOffset, y.length);
  let count = 0, first = -1;
  for (let i = 0; i < u.length; i++) {
    if (u[i] !== v[i]) {
      count++;
      if (first < 0) first = i;
    }
  }
  return { count, first };
}

function _assertSameFloats(p: _Product, seed: number): void {
  const ours = _compute(p, seed, true), theirs = _compute(p, seed, false);
  const { count, first } = _differences(ours, theirs);
  assert.equal(
    count,
    0,
    `${JSON.stringify(p)}: ${count} of ${ours.length} floats differ, the first at row ` +
      `${Math.floor(first / p.n)}, column ${first % p.n} (${ours[first]} vs ${theirs[first]})`,
  );
}

Deno.test({
  name: "bnlab's products give OpenBLAS's floats on 160 random shapes",
  ignore: !_ON,
  fn() {
    const random = createRng(20261205);
    const size = (small: number, large: number) =>
      1 + Math.floor(random() * (random() < 0.5 ? small : large));
    let tried = 0;
    for (let seed = 1; tried < 160; seed++) {
      const p: _Product = {
        transA: random() < 0.5,
        transB: random() < 0.5,
        m: size(40, 1500),
        n: size(40, 700),
        k: size(30, 1400),
        beta: random() < 0.5 ? 0 : 1,
      };
      if (p.m * p.n * p.k > 6e7) continue;
      tried++;
      _assertSameFloats(p, seed);
    }
  },
});

Deno.test({
  name: "bnlab's products give OpenBLAS's floats on the models' and the blocks' shapes",
  ignore: !_ON,
  fn() {
    const shapes: [boolean, boolean, number, number, number][] = [
      // LeNet at batch 20: convolutions (im2col), their gradients, the dense layers.
      [false, false, 11520, 20, 25],
      [false, false, 1280, 50, 500],
      [true, false, 25, 20, 11520],
      [true, false, 500, 50, 1280],
      [false, true, 1280, 500, 50],
      [false, false, 20, 500, 800],
      [true, false, 800, 500, 20],
      [false, true, 20, 800, 500],
      // ResNet-20's 1×1 projections and its dense layer at batch 128.
      [false, false, 8192, 32, 16],
      [true, false, 16, 32, 8192],
      [false, true, 8192, 16, 32],
      // Depth of 320 + 1, 640 and 641 terms; 321 and 700 columns; 26,000 rows.
      [false, false, 100, 40, 321],
      [false, false, 64, 24, 640],
      [true, true, 64, 24, 641],
      [false, false, 50, 321, 60],
      [true, false, 70, 700, 30],
      [false, false, 26000, 20, 9],
      // A large B (read in strips shared by groups of tiles, prefetched): more rows than one
      // group, two blocks of columns, three of depth; A transposed too; and the evaluation's
      // dense layer at batch 500.
      [false, false, 100, 400, 700],
      [true, false, 100, 400, 700],
      [false, false, 500, 500, 800],
      // A transposed B on few rows, transposed strip by strip: partial strips and 16×16 blocks.
      [false, true, 33, 1000, 70],
      [true, true, 7, 129, 513],
    ];
    for (const [i, [transA, transB, m, n, k]] of shapes.entries()) {
      for (const beta of [0, 1] as const) _assertSameFloats({ transA, transB, m, n, k, beta }, i);
    }
  },
});

Deno.test({
  name: "a LeNet gradient is the same with bnlab's products or OpenBLAS's",
  ignore: !_ON,
  async fn() {
    await initBackend("wasm");
    const model = createLeNet({ normalization: "custom", activation: "sigmoid", seed: 3 });
    const x = tf.randomUniform([20, 28, 28, 1], 0, 1, "float32", 5);
    const y = tf.oneHot(tf.tensor1d([...Array(20).keys()].map((i) => i % 10), "int32"), 10);
    const gradients = async (order: boolean) => {
      const previous = setOpenBlasOrder(order);
      try {
        const { grads } = tf.variableGrads(() =>
          tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor)
        );
        const values = await Promise.all(Object.values(grads).map((g) => g.data()));
        tf.dispose(Object.values(grads));
        return values as Float32Array[];
      } finally {
        setOpenBlasOrder(previous);
      }
    };
    const ours = await gradients(true), theirs = await gradients(false);
    assert.equal(ours.length, theirs.length);
    for (const [i, g] of ours.entries()) {
      assert.equal(_differences(g, theirs[i]).count, 0, `gradient ${i}`);
    }
    tf.dispose([x, y]);
    model.dispose();
  },
});

/** Conv2D, FusedConv2D (bias) and Conv2DBackpropFilter outputs of one convolution. */
async function _convolutions(
  xShape: [number, number, number, number],
  filterShape: [number, number, number, number],
  stride: number,
  dilation: number,
  pad: "valid" | "same",
  seed: number,
): Promise<Float32Array[]> {
  const x = tf.randomNormal(xShape, 0, 1, "float32", seed) as tf.Tensor4D;
  const filter = tf.randomNormal(filterShape, 0, 1, "float32", seed + 1) as tf.Tensor4D;
  const bias = tf.randomNormal([filterShape[3]], 0, 1, "float32", seed + 2) as tf.Tensor1D;
  const y = tf.conv2d(x, filter, stride, pad, "NHWC", dilation);
  const biased = tf.fused.conv2d({ x, filter, bias, strides: stride, pad, dilations: dilation });
  const dy = tf.randomNormal(y.shape, 0, 1, "float32", seed + 3);
  // tfjs's gradient kernels have no dilations: those of the undilated filter.
  const plain = dilation === 1 ? dy : tf.conv2d(x, filter, stride, pad);
  const dw = tf.engine().runKernel("Conv2DBackpropFilter", { x, dy: plain }, {
    strides: stride,
    pad,
    dataFormat: "NHWC",
    filterShape,
  }) as tf.Tensor;
  const dx = tf.engine().runKernel("Conv2DBackpropInput", { dy: plain, filter }, {
    inputShape: xShape,
    strides: stride,
    pad,
    dataFormat: "NHWC",
  }) as tf.Tensor;
  const out = await Promise.all([y, biased, dw, dx].map((t) => t.data() as Promise<Float32Array>));
  tf.dispose([x, filter, bias, y, biased, dy, plain, dw, dx]);
  return out;
}

Deno.test({
  name: "convolutions whose products read the images give OpenBLAS's floats on im2col",
  ignore: !_ON,
  async fn() {
    await initBackend("wasm");
    const cases: [
      [number, number, number, number],
      [number, number, number, number],
      number,
      number,
      "valid" | "same",
    ][] = [
      // LeNet's two layers at batch 20 (the first filter gradient cut along its depth), one
      // image (products below the slicing size, run uncut), and 200 images (cols past 4 Mi
      // floats: two slices of images, the second added into the filter gradient).
      [[20, 28, 28, 1], [5, 5, 1, 20], 1, 1, "valid"],
      [[20, 12, 12, 20], [5, 5, 20, 50], 1, 1, "valid"],
      [[1, 12, 12, 20], [5, 5, 20, 50], 1, 1, "valid"],
      [[200, 12, 12, 20], [5, 5, 20, 50], 1, 1, "valid"],
      // Two slices of rows that split an image, strides, dilations, a rectangular filter and
      // image; padding (cols written). The input gradient always writes its cols.
      [[5, 20, 20, 16], [5, 5, 16, 32], 1, 1, "valid"],
      [[3, 13, 11, 3], [3, 2, 3, 7], 2, 1, "valid"],
      [[4, 15, 15, 8], [3, 3, 8, 40], 1, 2, "valid"],
      [[7, 9, 9, 4], [3, 3, 4, 40], 1, 1, "same"],
    ];
    for (const threads of [1, 2]) {
      const previousThreads = setBlasSliceThreads(threads);
      try {
        for (const [i, [xShape, filterShape, stride, dilation, pad]] of cases.entries()) {
          const args = [xShape, filterShape, stride, dilation, pad, 10 * i + 1] as const;
          const previous = setOpenBlasOrder(false);
          let theirs: Float32Array[];
          try {
            theirs = await _convolutions(...args);
          } finally {
            setOpenBlasOrder(previous);
          }
          const ours = await _convolutions(...args);
          const outputs = ["forward", "forward with bias", "filter gradient", "input gradient"];
          for (const [j, output] of outputs.entries()) {
            const { count } = _differences(ours[j], theirs[j]);
            assert.equal(count, 0, `${JSON.stringify(args)} on ${threads} threads: ${output}`);
          }
        }
      } finally {
        setBlasSliceThreads(previousThreads);
      }
    }
  },
});

Deno.test({
  name: "a convolution's product reads the images where bnlab's kernel runs, without padding",
  ignore: !_ON,
  async fn() {
    await initBackend("wasm");
    // LeNet's second layer, one image: y = cols·W, cols read from x in place.
    const info = tf.backend_util.computeConv2DInfo([1, 12, 12, 20], [5, 5, 20, 50], 1, 1, "valid");
    const random = createRng(7);
    const x = Float32Array.from({ length: 12 * 12 * 20 }, () => 2 * random() - 1);
    const w = Float32Array.from({ length: 500 * 50 }, () => 2 * random() - 1);
    const heap = new Float32Array(x.length + w.length + 64 * 50 + 64 * 500);
    heap.set(x);
    heap.set(w, x.length);
    const cOffset = x.length + w.length, colsOffset = cOffset + 64 * 50;
    const product = {
      info,
      b0: 0,
      images: 1,
      xOffset: 0,
      product: "forward",
      bOffset: x.length,
      n: 50,
      ldb: 50,
      beta: 0,
      cOffset,
      ldc: 50,
    } as const;
    assert.equal(gatheredProduct(heap, product), true);
    const gathered = heap.slice(cOffset, cOffset + 64 * 50);
    im2col(heap, { xOffset: 0, colsOffset, info, b0: 0, images: 1 });
    const cols = heap.subarray(colsOffset, colsOffset + 64 * 500);
    const written = new Float32Array(64 * 50);
    sgemm(false, false, 64, 50, 500, 1, cols, 500, heap.subarray(x.length), 50, 0, written, 50);
    assert.equal(_differences(gathered, written).count, 0);
    // Not where it would need padding, nor with bnlab's kernel off: the caller writes cols.
    const padded = tf.backend_util.computeConv2DInfo([1, 12, 12, 20], [5, 5, 20, 50], 1, 1, "same");
    assert.equal(gatheredProduct(heap, { ...product, info: padded }), false);
    const previous = setOpenBlasOrder(false);
    try {
      assert.equal(gatheredProduct(heap, product), false);
    } finally {
      setOpenBlasOrder(previous);
    }
  },
});
