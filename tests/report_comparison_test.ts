import assert from "node:assert/strict";
import {
  compareWithReport,
  inferLogBatchSize,
  REPORT_LOG,
  REPORT_RESULTS,
} from "../lib/experiments/report_comparison.ts";
import { writeCsv } from "../lib/output/csv.ts";

Deno.test("inferLogBatchSize: the report's log lines imply batch 512, and only 512", () => {
  assert.deepEqual(inferLogBatchSize(REPORT_LOG), [512]);
  // Not the 20 of the report's text: 14848 images is not a whole number of batches of 20.
  assert.notEqual(REPORT_LOG[0].seen % 20, 0);
});

Deno.test("inferLogBatchSize recovers the batch size of logs made with a known one", () => {
  // PyTorch's MNIST example logs batch_idx * batch images when (batch_idx + 1) % 30 == 0.
  for (const batch of [20, 64, 128, 512, 1000]) {
    const batches = Math.ceil(60000 / batch);
    const points = [29, 59, 89].filter((i) => i < batches).map((i) => ({
      seen: i * batch,
      percent: Math.round((100 * i) / batches),
    }));
    assert.ok(inferLogBatchSize(points).includes(batch), `batch ${batch}`);
  }
});

Deno.test("inferLogBatchSize rejects empty and impossible input", () => {
  assert.throws(() => inferLogBatchSize([]), {
    message: "inferLogBatchSize: needs at least one log point, received none",
  });
  assert.throws(() => inferLogBatchSize([{ seen: 70000, percent: 10 }]), {
    message: "inferLogBatchSize: seen must be an integer in [0, 60000], received 70000",
  });
  assert.deepEqual(inferLogBatchSize([{ seen: 14848, percent: 90 }]), []);
});

Deno.test("compareWithReport: finished runs from summary.csv, unfinished from history.csv", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = `${dir}/report-b512`;
    await Deno.mkdir(out);
    await Deno.writeTextFile(
      `${out}/config.json`,
      JSON.stringify({
        config: {
          variants: ["none", "custom", "tfjs"],
          activation: "relu",
          batchSize: 512,
          lr: 0.001,
          loss: "xent",
          epochs: 20,
        },
      }),
    );
    await writeCsv(`${out}/summary.csv`, [{
      variant: "none",
      seed: 0,
      test_accuracy: 0.1135,
      test_loss: 2.29,
      test_accuracy_batch_stats: null,
      train_loss: 2.3,
      top_class_share: 1,
      status: "done",
    }]);
    await writeCsv(`${out}/history.csv`, [
      { variant: "none", seed: 0, epoch: 1, step: 118, train_loss: 2.3, test_accuracy: 0.1 },
      { variant: "custom", seed: 0, epoch: 1, step: 50, train_loss: 1.9, test_accuracy: null },
      { variant: "custom", seed: 0, epoch: 1, step: 118, train_loss: 1.7, test_accuracy: 0.75 },
      { variant: "custom", seed: 0, epoch: 2, step: 236, train_loss: 1.1, test_accuracy: 0.85 },
    ]);
    const rows = await compareWithReport([out]);
    assert.equal(rows.length, 2); // tfjs has not finished an epoch: no row
    const [none, custom] = rows;
    assert.equal(custom.variant, "bnlab"); // read under its canonical name
    assert.deepEqual(
      [none.setting, none.variant, none.status, none.epochs_done, none.test_accuracy],
      ["report-b512", "none", "done", 1, 0.1135],
    );
    assert.equal(none.top_class_share, 1);
    assert.equal(none.report_test_accuracy, REPORT_RESULTS.none.testCorrect / 10000);
    assert.deepEqual(
      [custom.status, custom.epochs_done, custom.test_accuracy, custom.train_loss],
      ["unfinished", 2, 0.85, 1.1],
    );
    assert.equal(custom.report_test_accuracy, 0.921);
    // The mean of the report's three logged batch losses of epoch 20.
    assert.ok(Math.abs(custom.report_train_loss! - (0.840055 + 0.836669 + 0.822424) / 3) < 1e-12);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("compareWithReport names a directory that is not a results directory", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(
      () => compareWithReport([dir]),
      (error: Error) =>
        error.message.startsWith(
          `compareWithReport: expected a results directory with config.json, received ${dir} (`,
        ),
    );
  } finally {
    await Deno.remove(dir);
  }
});
