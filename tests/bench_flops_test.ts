/**
 * The FLOP counts behind the bench's "share of the machine's product rate" rows: counted from a
 * model's layers, they agree with LeNet's hand table and with ResNet-20's convolutions summed by
 * hand; the ResNet-20 share rows divide by the best product rate of the same table.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { lenetTrainingFlopsPerSample, modelTrainingFlopsPerSample } from "../bench/derived.ts";
import { resnet20TrainingFlopsPerSample, resnetShareRows } from "../bench/resnet.ts";
import type { BenchRow } from "../bench/bench_row.ts";
import { createLeNet } from "../lib/models/lenet.ts";

Deno.test("LeNet's FLOPs counted from its layers equal the hand table", async () => {
  await tf.setBackend("cpu");
  const model = createLeNet();
  try {
    assert.equal(modelTrainingFlopsPerSample(model), lenetTrainingFlopsPerSample());
  } finally {
    model.dispose();
  }
});

Deno.test("ResNet-20's FLOPs equal its convolutions summed by hand", async () => {
  await tf.setBackend("cpu");
  const conv = (size: number, k: number, cin: number, cout: number) =>
    size * size * k * k * cin * cout;
  // Multiply–accumulates per image: the stem reads the image (no input gradient).
  const stem = conv(28, 3, 1, 16);
  const rest = 6 * conv(28, 3, 16, 16) +
    conv(14, 3, 16, 32) + 5 * conv(14, 3, 32, 32) + conv(14, 1, 16, 32) +
    conv(7, 3, 32, 64) + 5 * conv(7, 3, 64, 64) + conv(7, 1, 32, 64) +
    64 * 10;
  assert.equal(resnet20TrainingFlopsPerSample(), 2 * stem * 2 + 2 * rest * 3);
});

Deno.test("the ResNet-20 share rows divide by the table's best product rate", () => {
  const row = (group: string, name: string, backend: string, metric: string, median: number) =>
    ({ group, name, backend, batch_size: 128, metric, median, unit: "", runs: 3 }) as BenchRow;
  const rows = [
    row("blas_kernels", "matmul_1024", "wasm", "gflops_blas", 200),
    row("machine_limit", "matmul_best", "wasm", "gflops", 30),
    row("resnet20_training", "bnlab", "wasm", "samples_per_s", 500),
    row("resnet20_training", "pytorch_bn", "pytorch_cpu", "samples_per_s", 1000),
    row("resnet20_training", "bnlab", "wasm", "over_pytorch", 0.5),
  ];
  const shares = resnetShareRows(rows, 1e8);
  assert.deepEqual(
    shares.map((r) => [r.name, r.backend, r.metric, r.median]),
    [
      ["bnlab", "wasm", "training_gflops", 50],
      ["bnlab", "wasm", "fraction_of_matmul_limit", 0.25],
      ["pytorch_bn", "pytorch_cpu", "training_gflops", 100],
      ["pytorch_bn", "pytorch_cpu", "fraction_of_matmul_limit", 0.5],
    ],
  );
  assert.deepEqual(resnetShareRows(rows.slice(2), 1e8), []);
});
