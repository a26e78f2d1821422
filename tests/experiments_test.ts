/**
 * The plan / trial / collect split, grid sweeps, user models and datasets through the runner,
 * old `custom` results directories, worker bounds and lazy loading, checks before writing.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { collect } from "../lib/experiments/collect.ts";
import { type ExperimentConfig, resolveConfig, upgradeConfig } from "../lib/experiments/config.ts";
import { readPlan } from "../lib/experiments/plan.ts";
import {
  checkBuiltinParts,
  prepareSweep,
  prepareTrain,
  runExperiment,
  runLocal,
  runSweep,
  WORKER_MEMORY_BYTES,
  workerCount,
} from "../lib/experiments/runner.ts";
import { readRunResult } from "../lib/experiments/results_dir.ts";
import { gridSweep, parseGrids, SWEEPS, writeSweepOutputs } from "../lib/experiments/sweeps.ts";
import { writeExperimentOutputs } from "../lib/experiments/report_files.ts";
import {
  channelStatistics,
  checkBatches,
  type ExperimentEvent,
  loadTrialData,
  runTrial,
} from "../lib/experiments/trial.ts";
import { type Dataset, loadMnist } from "../lib/data/mnist.ts";
import { normalizationLayer } from "../lib/norms/normalization.ts";
import { readCsv } from "../lib/output/csv.ts";

const TINY: Partial<ExperimentConfig> = {
  limit: 200,
  testLimit: 100,
  epochs: 1,
  logEvery: 5,
  variants: ["none", "bnlab"],
};

const exists = (path: string) => Deno.stat(path).then(() => true, () => false);

Deno.test("plan.json, runTrial and collect: the contract", async () => {
  const out = await Deno.makeTempDir({ prefix: "bnlab-plan-" });
  const plan = await prepareTrain(resolveConfig("smoke", TINY), out);
  const saved = JSON.parse(await Deno.readTextFile(`${out}/plan.json`));
  assert.equal(saved.format, 1);
  assert.equal(saved.kind, "train");
  assert.ok(!Number.isNaN(Date.parse(saved.created)));
  assert.deepEqual(
    saved.trials.map((t: { index: number; id: string; dir: string }) => [t.index, t.id, t.dir]),
    [[0, "none-seed0", "runs/none-seed0"], [1, "bnlab-seed0", "runs/bnlab-seed0"]],
  );
  assert.deepEqual(saved.trials[1].config, {
    ...resolveConfig("smoke", TINY),
    variants: ["bnlab"],
  });
  assert.deepEqual(plan, await readPlan(out));

  // Collect never fails on missing trials.
  assert.deepEqual(await collect(out), { kind: "train", finished: 0, total: 2 });
  const result = await runTrial(out, 1);
  assert.equal(result.variant, "bnlab");
  assert.ok(typeof result.train_accuracy === "number");
  const trial = JSON.parse(await Deno.readTextFile(`${out}/runs/bnlab-seed0/trial.json`));
  assert.equal(trial.starts.length, 1);
  // Idempotent: a finished trial returns its result without training.
  const started = performance.now();
  assert.deepEqual(await runTrial(out, 1), result);
  assert.ok(performance.now() - started < 1000);
  assert.deepEqual(await collect(out), { kind: "train", finished: 1, total: 2 });
  const summary = await readCsv(`${out}/summary.csv`);
  assert.deepEqual(summary.map((r) => r.variant), ["bnlab"]);
  const history = await readCsv(`${out}/history.csv`);
  assert.ok(history.some((r) => typeof r.train_accuracy === "number"));

  // A failure leaves error.json, and a success removes it.
  await Deno.mkdir(`${out}/runs/none-seed0/checkpoint`, { recursive: true });
  await Deno.writeTextFile(`${out}/runs/none-seed0/checkpoint/checkpoint.json`, "{broken");
  await assert.rejects(() => runTrial(out, 0), /checkpoint\.json/);
  const error = JSON.parse(await Deno.readTextFile(`${out}/runs/none-seed0/error.json`));
  assert.match(error.message, /checkpoint\.json/);
  assert.ok(!Number.isNaN(Date.parse(error.at)));
  await Deno.remove(`${out}/runs/none-seed0/checkpoint`, { recursive: true });
  await runTrial(out, 0);
  assert.equal(await exists(`${out}/runs/none-seed0/error.json`), false);
  await assert.rejects(() => runTrial(out, 2), {
    message: "runTrial: index must be an integer in [0, 1], received 2",
  });
});

Deno.test("a 2×2 grid with 2 seeds writes sweep.csv, sweep_table.csv and sweep.svg", async () => {
  const out = await Deno.makeTempDir({ prefix: "bnlab-grid-" });
  const base = resolveConfig("smoke", { ...TINY, variants: ["none"], seeds: 2 });
  const sweep = gridSweep(parseGrids(["lr=0.1,0.01", "batch-size=20,40"]));
  const { rows, table } = await runSweep(sweep, base, { out });
  assert.equal(rows.length, 8);
  const csv = await readCsv(`${out}/sweep.csv`);
  assert.deepEqual(Object.keys(csv[0]).slice(0, 5), [
    "trial",
    "lr",
    "batch_size",
    "variant",
    "seed",
  ]);
  assert.ok(Object.keys(csv[0]).includes("test_accuracy"));
  assert.deepEqual(csv.map((r) => [r.trial, r.seed]).slice(0, 3), [
    ["lr-0.1_batch-size-20", 0],
    ["lr-0.1_batch-size-20", 1],
    ["lr-0.1_batch-size-40", 0],
  ]);
  assert.deepEqual(csv.map((r) => r.batch_size), [20, 20, 40, 40, 20, 20, 40, 40]);
  const summary = await readCsv(`${out}/sweep_table.csv`);
  assert.equal(summary.length, 4);
  assert.equal(table.length, 4);
  for (const row of summary) {
    assert.equal(row.n, 2);
    assert.ok(typeof row.test_accuracy_mean === "number");
    assert.ok(typeof row.test_accuracy_std === "number");
  }
  assert.match(await Deno.readTextFile(`${out}/sweep.svg`), /^<svg/);
  // Each point's seeds train with their own seed; the batch size reaches the training.
  const plan = (await readPlan(out))!;
  assert.equal(plan.kind, "sweep");
  assert.deepEqual(plan.trials[3].point, { lr: 0.1, batchSize: 40 });
  assert.equal(plan.trials[3].config.seed, 1);
  const result = await readRunResult(`${out}/${plan.trials[3].dir}`);
  assert.equal(result?.batch_size, 40);

  // Resuming with another base config is refused before anything is written.
  const before = await Deno.readTextFile(`${out}/sweep.json`);
  await assert.rejects(
    () => prepareSweep(sweep, { ...base, epochs: 3 }, out, {}),
    /sweep\.json was written with a different sweep config.*epochs: 1 → 3/,
  );
  assert.equal(await Deno.readTextFile(`${out}/sweep.json`), before);
  assert.deepEqual(await readPlan(out), plan);
});

Deno.test("grid specs: unknown fields and bad values are rejected before anything is made", async () => {
  assert.throws(() => parseGrids(["colour=1,2"]), /--grid: unknown field "colour"; fields: model/);
  assert.throws(() => parseGrids(["lr"]), {
    message: '--grid expects FIELD=v1,v2,..., received "lr"',
  });
  assert.throws(() => parseGrids(["lr=0.1,x"]), { message: '--lr expects a number, received "x"' });
  assert.throws(() => parseGrids(["lr=0.1,,0.2"]), {
    message: '--grid lr: empty value in "0.1,,0.2"',
  });
  assert.throws(() => parseGrids(["lr=0.1", "lr=0.2"]), {
    message: "--grid: field lr is given twice",
  });
  const out = `${await Deno.makeTempDir()}/sweep`;
  const sweep = gridSweep(parseGrids(["batch-size=20,0"]));
  await assert.rejects(
    () => prepareSweep(sweep, resolveConfig("smoke", TINY), out),
    /sweep point batch-size-0: config: batchSize must be an integer in \[1, 1000000\], received 0/,
  );
  assert.equal(await exists(out), false);
  assert.deepEqual(parseGrids(["variants=bnlab;none,tfjs"])[0].values, [["bnlab"], [
    "none",
    "tfjs",
  ]]);
});

Deno.test("an old results directory (bnlab named custom, no plan.json) resumes in place", async () => {
  const config = resolveConfig("smoke", { ...TINY, variants: ["bnlab"], epochs: 2 });
  // The uninterrupted run.
  const fresh = await Deno.makeTempDir({ prefix: "bnlab-fresh-" });
  const [expected] = await runExperiment({ ...config, lastBatch: "keep" }, { out: fresh });
  // A run stopped after epoch 1 (a crash right after its checkpoint), in the layout of old
  // versions.
  const old = await Deno.makeTempDir({ prefix: "bnlab-old-" });
  const crash = (event: ExperimentEvent) => {
    if (event.type === "train" && event.event.type === "epoch") throw new Error("crash");
  };
  await assert.rejects(
    () => runExperiment({ ...config, lastBatch: "keep" }, { out: old, onEvent: crash }),
    /crash/,
  );
  await Deno.rename(`${old}/runs/bnlab-seed0`, `${old}/runs/custom-seed0`);
  for (
    const file of ["plan.json", "runs/custom-seed0/error.json", "runs/custom-seed0/trial.json"]
  ) {
    await Deno.remove(`${old}/${file}`);
  }
  const { model: _m, lastBatch: _l, normalizeInput: _n, hidden: _h, sgdMomentum: _s, ...legacy } =
    config;
  const record = JSON.parse(await Deno.readTextFile(`${old}/config.json`));
  for (const key of Object.keys(record.config)) {
    if (
      !(key in legacy) || ["nesterov", "weightDecay", "lrSchedule", "warmupEpochs"].includes(key)
    ) {
      delete record.config[key];
    }
  }
  record.config.variants = ["custom"];
  record.config.epochs = 2; // stopped after epoch 1 of 2
  await Deno.writeTextFile(`${old}/config.json`, JSON.stringify(record));

  const [resumed] = await runExperiment(upgradeConfig(record.config), { out: old });
  assert.equal(await exists(`${old}/runs/bnlab-seed0`), false);
  assert.equal((await readPlan(old))!.trials[0].dir, "runs/custom-seed0");
  const { wall_seconds: _a, ...got } = resumed;
  const { wall_seconds: _b, ...want } = expected;
  assert.deepEqual(got, want);
  assert.deepEqual(await readCsv(`${old}/history.csv`), await readCsv(`${fresh}/history.csv`));
});

Deno.test("results/report (written with custom) loads into a plan and the same summary", async () => {
  const source = new URL("../results/report", import.meta.url).pathname;
  if (!(await exists(`${source}/config.json`))) return;
  const copy = await Deno.makeTempDir({ prefix: "bnlab-report-" });
  await new Deno.Command("cp", { args: ["-r", `${source}/.`, copy] }).output();
  const record = JSON.parse(await Deno.readTextFile(`${copy}/config.json`));
  const plan = await prepareTrain(upgradeConfig(record.config), copy);
  assert.deepEqual(plan.trials.map((t) => t.dir), [
    "runs/none-seed0",
    "runs/custom-seed0",
    "runs/tfjs-seed0",
  ]);
  await runLocal(copy, plan);
  const before = await readCsv(`${source}/summary.csv`);
  const after = await readCsv(`${copy}/summary.csv`);
  assert.deepEqual(after.map((r) => r.variant), ["none", "bnlab", "tfjs"]);
  for (const [i, row] of before.entries()) {
    for (const [key, value] of Object.entries(row)) {
      if (key !== "variant") assert.equal(after[i][key], value, key);
    }
  }
});

Deno.test("a user's model factory and dataset go through runExperiment like built-ins", async () => {
  // 3-channel 6×6 toy images of two classes; the class is the brightness of channel 0.
  const toy = (count: number, split: "train" | "test"): Dataset => {
    const images = new Float32Array(count * 6 * 6 * 3);
    const labels = new Uint8Array(count);
    for (let i = 0; i < count; i++) {
      labels[i] = i % 2;
      for (let p = 0; p < 36; p++) {
        images[(i * 36 + p) * 3] = labels[i] ? 0.9 : 0.1;
        images[(i * 36 + p) * 3 + 1] = ((i * 7 + p) % 10) / 10;
      }
    }
    return {
      name: "toy",
      split,
      count,
      height: 6,
      width: 6,
      channels: 3,
      numClasses: 2,
      images,
      labels,
    };
  };
  const calls: string[] = [];
  const model = (normalization: "none" | "bnlab" | string, config: ExperimentConfig) => {
    calls.push(`${normalization}/${config.seed}`);
    const norm = normalizationLayer(normalization as "none", { epsilon: config.epsilon });
    return tf.sequential({
      layers: [
        tf.layers.flatten({ inputShape: [6, 6, 3] }),
        tf.layers.dense({
          units: 8,
          kernelInitializer: tf.initializers.glorotUniform({ seed: config.seed }),
        }),
        ...(norm ? [norm] : []),
        tf.layers.reLU(),
        tf.layers.dense({
          units: 2,
          kernelInitializer: tf.initializers.glorotUniform({ seed: config.seed }),
        }),
      ],
    });
  };
  const config = resolveConfig("smoke", { ...TINY, seeds: 2, batchSize: 10, lr: 0.1 });
  const data = { train: toy(60, "train"), test: toy(20, "test") };
  const out = await Deno.makeTempDir({ prefix: "bnlab-factory-" });
  const results = await runExperiment(config, { out, model, data });
  assert.deepEqual(calls, ["none/0", "none/1", "bnlab/0", "bnlab/1"]);
  assert.deepEqual(results.map((r) => [r.variant, r.seed, r.model, r.train_images]), [
    ["none", 0, "custom-factory", 60],
    ["none", 1, "custom-factory", 60],
    ["bnlab", 0, "custom-factory", 60],
    ["bnlab", 1, "custom-factory", 60],
  ]);
  assert.ok(results.every((r) => r.status === "done" && r.test_accuracy >= 0));
  assert.equal((await readCsv(`${out}/table.csv`)).length, 2);
  assert.ok(await exists(`${out}/runs/bnlab-seed1/checkpoint/checkpoint.json`));
  // A second pass only reads; tensors stay flat over a whole experiment.
  const again = await runExperiment(config, { out, model, data });
  assert.deepEqual(again, results);
  const before = tf.memory().numTensors;
  await runExperiment(config, { out: await Deno.makeTempDir(), model, data });
  assert.equal(tf.memory().numTensors, before);
  await assert.rejects(
    async () => runExperiment(config, { out: await Deno.makeTempDir(), model, data, workers: 2 }),
    /cannot cross into worker processes/,
  );
});

Deno.test("workers are bounded by the trials left and by memory; finished trials load no data", async () => {
  assert.equal(workerCount(100, 3, 64 * WORKER_MEMORY_BYTES), 3);
  assert.equal(workerCount(8, 10, 2 * WORKER_MEMORY_BYTES), 2);
  assert.equal(workerCount(4, 0, 64 * WORKER_MEMORY_BYTES), 1);
  assert.ok(workerCount(1000, 1000) < 1000);

  // An idx: dataset of 200 MNIST images, the label files gzipped.
  const dir = await Deno.makeTempDir({ prefix: "bnlab-idx-" });
  for (const [split, prefix, count] of [["train", "train", 200], ["test", "t10k", 100]] as const) {
    const data = await loadMnist({ split, limit: count });
    const images = new Uint8Array(16 + count * 784);
    new DataView(images.buffer).setUint32(0, 0x803);
    new DataView(images.buffer).setUint32(4, count);
    new DataView(images.buffer).setUint32(8, 28);
    new DataView(images.buffer).setUint32(12, 28);
    for (let i = 0; i < count * 784; i++) images[16 + i] = Math.round(data.images[i] * 255);
    const labels = new Uint8Array(8 + count);
    new DataView(labels.buffer).setUint32(0, 0x801);
    new DataView(labels.buffer).setUint32(4, count);
    labels.set(data.labels, 8);
    await Deno.writeFile(`${dir}/${prefix}-images-idx3-ubyte`, images);
    const gz = new Blob([labels]).stream().pipeThrough(new CompressionStream("gzip"));
    await Deno.writeFile(`${dir}/${prefix}-labels-idx1-ubyte.gz`, gz);
  }
  const config = resolveConfig("smoke", { ...TINY, variants: ["none"], dataset: `idx:${dir}` });
  // A user's training files are read whole before anything is written: a truncated images
  // file, or a label out of range, fails the start.
  for (
    const [fault, change, message] of [
      [
        "truncated",
        (
          images: Uint8Array,
          labels: Uint8Array,
        ) => [images.subarray(0, images.length - 100), labels],
        /train-images-idx3-ubyte is truncated/,
      ],
      [
        "label 42",
        (
          images: Uint8Array,
          labels: Uint8Array,
        ) => [images, labels.map((v, i) => i === 20 ? 42 : v)],
        /label 12 is 42; expected a class index in \[0, 9\]/,
      ],
    ] as const
  ) {
    const bad = await Deno.makeTempDir({ prefix: "bnlab-idx-bad-" });
    for (const name of ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte.gz"]) {
      await Deno.copyFile(`${dir}/${name}`, `${bad}/${name}`);
    }
    const gunzip = (bytes: Uint8Array<ArrayBuffer>) =>
      new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip")))
        .arrayBuffer().then((b) => new Uint8Array(b));
    const [images, labels] = change(
      await Deno.readFile(`${dir}/train-images-idx3-ubyte`),
      await gunzip(await Deno.readFile(`${dir}/train-labels-idx1-ubyte.gz`)),
    );
    await Deno.writeFile(`${bad}/train-images-idx3-ubyte`, images);
    await Deno.writeFile(`${bad}/train-labels-idx1-ubyte`, labels);
    const never = `${await Deno.makeTempDir()}/never`;
    await assert.rejects(
      () => prepareTrain({ ...config, dataset: `idx:${bad}` }, never),
      (error: Error) => {
        assert.match(error.message, new RegExp(`^dataset idx:${bad}: `), fault);
        assert.match(error.message, message, fault);
        return true;
      },
    );
    assert.equal(await exists(never), false, fault);
    await Deno.remove(bad, { recursive: true });
  }
  const out = await Deno.makeTempDir({ prefix: "bnlab-lazy-" });
  const [first] = await runExperiment(config, { out });
  assert.equal(first.train_images, 200);
  // With the training files gone, a finished trial still returns: it loads nothing.
  await Deno.remove(`${dir}/train-images-idx3-ubyte`);
  assert.deepEqual(await runTrial(out, 0), first);
  // A failed start (the dataset cannot be read) creates nothing.
  const missing = `${await Deno.makeTempDir()}/never`;
  await assert.rejects(
    () => prepareTrain({ ...config, dataset: "idx:/nonexistent" }, missing),
    /dataset idx:\/nonexistent: loadIdxDir: \/nonexistent has neither t10k-images-idx3-ubyte/,
  );
  assert.equal(await exists(missing), false);
});

Deno.test("a directory trained with a given model resumes only with one, never as the config's model", async () => {
  const config = resolveConfig("smoke", { ...TINY, variants: ["none"], limit: 40, testLimit: 20 });
  const model = () =>
    tf.sequential({
      layers: [tf.layers.flatten({ inputShape: [28, 28, 1] }), tf.layers.dense({ units: 10 })],
    });
  const out = await Deno.makeTempDir({ prefix: "bnlab-supplied-" });
  const [first] = await runExperiment(config, { out, model });
  const record = JSON.parse(await Deno.readTextFile(`${out}/config.json`));
  assert.deepEqual(record.supplied, ["model"]);
  const before = await Deno.readTextFile(`${out}/config.json`);
  // The CLI's path (the config's LeNet) is refused, before anything is written.
  await assert.rejects(() => prepareTrain({ ...config, variants: ["none", "bnlab"] }, out), {
    message: `${out}/config.json was trained with a model factory (\`model\`) given to ` +
      "runExperiment or runSweep, and this start has the config's own model and dataset: " +
      "resume it by calling runExperiment or runSweep with the same again (the CLI would build " +
      "the config's model and load its dataset in their place)",
  });
  await assert.rejects(() => checkBuiltinParts(out), /was trained with a model factory/);
  assert.equal(await Deno.readTextFile(`${out}/config.json`), before);
  // With the model again it resumes (the finished trial is read back).
  assert.deepEqual(await runExperiment(config, { out, model }), [first]);
  // A record without the field: the trials' results tell (model "custom-factory").
  const { supplied: _, ...unrecorded } = JSON.parse(await Deno.readTextFile(`${out}/config.json`));
  await Deno.writeTextFile(`${out}/config.json`, JSON.stringify(unrecorded));
  await assert.rejects(() => prepareTrain(config, out), /was trained with a model factory/);
  await assert.rejects(() => checkBuiltinParts(out), /was trained with a model factory/);
  assert.deepEqual(await runExperiment(config, { out, model }), [first]);
  // A directory of the config's model refuses a given one.
  const builtin = await Deno.makeTempDir({ prefix: "bnlab-builtin-" });
  await prepareTrain(config, builtin);
  assert.deepEqual(JSON.parse(await Deno.readTextFile(`${builtin}/config.json`)).supplied, []);
  await assert.rejects(
    () => runExperiment(config, { out: builtin, model }),
    /was trained with the config's own model and dataset, and this start has a model factory/,
  );
  await checkBuiltinParts(builtin);
  await Deno.remove(out, { recursive: true });
  await Deno.remove(builtin, { recursive: true });
});

Deno.test("a batch of one is rejected before training when normalizations need batch statistics", () => {
  const config = (lastBatch: "merge" | "drop" | "keep", batchSize = 9) =>
    resolveConfig("smoke", { variants: ["bnlab"], batchSize, lastBatch });
  assert.throws(() => checkBatches(config("keep"), { train: 19, test: 18 }), {
    message: "bnlab-seed0: lastBatch keep leaves a training batch of 1 image (19 images, batch " +
      "size 9); bnlab normalizes with batch statistics and needs at least 2 per batch: change " +
      "--batch-size, --limit/--test-limit or use --last-batch merge",
  });
  checkBatches(config("merge"), { train: 19, test: 10 });
  checkBatches(config("drop"), { train: 19, test: 10 });
  assert.throws(() => checkBatches(config("merge", 1), { train: 19, test: 10 }), /batch of 1/);
  assert.throws(() => checkBatches(config("merge"), { train: 1, test: 10 }), /training batch of 1/);
  assert.throws(() => checkBatches(config("keep"), { train: 18, test: 10 }), /test batch of 1/);
  checkBatches({ ...config("keep"), variants: ["none"] }, { train: 19, test: 10 });
  assert.throws(() => checkBatches(config("keep"), { train: 0, test: 10 }), {
    message: "bnlab-seed0: the dataset is empty (training images 0, test images 10)",
  });
});

Deno.test("the momentum sweep keeps its points, ids and columns", async () => {
  const base = resolveConfig("smoke", { ...TINY, limit: 100, testLimit: 40 });
  const out = await Deno.makeTempDir({ prefix: "bnlab-momentum-" });
  const plan = await prepareSweep(SWEEPS.momentum, base, out);
  assert.equal(plan.sweep, "momentum");
  assert.deepEqual(plan.trials.map((t) => t.pointId).slice(0, 6), [
    "keras-0.01",
    "keras-0.1",
    "keras-0.5",
    "keras-0.9",
    "keras-0.99",
    "pytorch-0.01",
  ]);
  assert.ok(plan.trials.every((t) => t.config.variants[0] === "bnlab"));
  await runTrial(out, 1);
  await runTrial(out, 8); // pytorch-0.9, keras-0.1's twin
  await collect(out);
  const rows = await readCsv(`${out}/sweep.csv`);
  assert.deepEqual(Object.keys(rows[0]), [
    "trial",
    "seed",
    "momentum",
    "momentum_convention",
    "keras_momentum",
    "test_accuracy_running",
    "test_accuracy_batch",
    "test_loss_running",
    "train_loss",
    "epochs",
    "wall_seconds",
    "backend",
    "status",
  ]);
  assert.deepEqual(rows.map((r) => r.trial), ["keras-0.1", "pytorch-0.9"]);
  assert.equal(rows[0].test_accuracy_running, rows[1].test_accuracy_running);
  assert.equal((await readCsv(`${out}/sweep_table.csv`)).length, 2);
});

Deno.test("results/momentum in the old layout (no plan.json, custom runs) collects to the same sweep.csv", async () => {
  const source = new URL("../results/momentum", import.meta.url).pathname;
  if (!(await exists(`${source}/sweep.json`))) return;
  const copy = await Deno.makeTempDir({ prefix: "bnlab-momentum-old-" });
  await new Deno.Command("cp", { args: ["-r", `${source}/.`, copy] }).output();
  // The layout of old versions: no plan.json, bnlab's runs named custom.
  await Deno.remove(`${copy}/sweep.csv`);
  await Deno.remove(`${copy}/plan.json`);
  for await (const trial of Deno.readDir(`${copy}/trials`)) {
    const runs = `${copy}/trials/${trial.name}/runs`;
    await Deno.rename(`${runs}/bnlab-seed0`, `${runs}/custom-seed0`);
  }
  const { rows } = await writeSweepOutputs(copy);
  assert.equal(rows.length, 10);
  assert.deepEqual(await readCsv(`${copy}/sweep.csv`), await readCsv(`${source}/sweep.csv`));
  assert.equal(await exists(`${copy}/plan.json`), false); // read-only
  // The same files as a train directory: results/report through its config.json alone.
  const report = new URL("../results/report", import.meta.url).pathname;
  const reportCopy = await Deno.makeTempDir({ prefix: "bnlab-report-old-" });
  await new Deno.Command("cp", { args: ["-r", `${report}/.`, reportCopy] }).output();
  const outputs = await writeExperimentOutputs(reportCopy);
  assert.deepEqual(outputs.results.map((r) => r.variant), ["none", "bnlab", "tfjs"]);
});

Deno.test("a limit beyond the dataset is refused before anything is written", async () => {
  const out = `${await Deno.makeTempDir()}/never`;
  await assert.rejects(
    () => prepareTrain(resolveConfig("smoke", { limit: 70000 }), out),
    { message: "dataset mnist: limit 70000 is more than the 60000 training images" },
  );
  await assert.rejects(
    () => prepareTrain(resolveConfig("smoke", { testLimit: 10001 }), out),
    { message: "dataset mnist: testLimit 10001 is more than the 10000 test images" },
  );
  assert.equal(await exists(out), false);
});

Deno.test("a corrupt result.json or plan.json is named in the error", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/result.json`, "{not json");
  await assert.rejects(() => readRunResult(dir), (error: Error) => {
    assert.match(error.message, new RegExp(`^${dir}/result\\.json is not valid JSON`));
    return true;
  });
  await Deno.writeTextFile(`${dir}/plan.json`, "[");
  await assert.rejects(() => collect(dir), new RegExp(`${dir}/plan\\.json is not valid JSON`));
});

Deno.test("an idx: directory of 3-channel images trains a built-in model with that input shape", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bnlab-rgb-" });
  for (const [prefix, count] of [["train", 40], ["t10k", 20]] as const) {
    const images = new Uint8Array(20 + count * 16 * 16 * 3);
    const view = new DataView(images.buffer);
    view.setUint32(0, 0x804);
    [count, 16, 16, 3].forEach((d, i) => view.setUint32(4 + 4 * i, d));
    for (let i = 20; i < images.length; i++) images[i] = (i * 37) % 256;
    const labels = new Uint8Array(8 + count);
    new DataView(labels.buffer).setUint32(0, 0x801);
    new DataView(labels.buffer).setUint32(4, count);
    for (let i = 0; i < count; i++) labels[8 + i] = i % 10;
    await Deno.writeFile(`${dir}/${prefix}-images-idx3-ubyte`, images);
    await Deno.writeFile(`${dir}/${prefix}-labels-idx1-ubyte`, labels);
  }
  const config = resolveConfig("smoke", {
    dataset: `idx:${dir}`,
    variants: ["bnlab"],
    limit: null,
    testLimit: null,
    batchSize: 10,
    logEvery: 2,
    normalizeInput: "auto",
  });
  const out = await Deno.makeTempDir({ prefix: "bnlab-rgb-out-" });
  const [result] = await runExperiment(config, { out });
  assert.equal(result.train_images, 40);
  assert.equal(result.status, "done");
});

Deno.test("a grid over names (variants, optimizer) plots them at positions", async () => {
  const out = await Deno.makeTempDir({ prefix: "bnlab-names-" });
  const base = resolveConfig("smoke", { ...TINY, limit: 60, testLimit: 20 });
  const sweep = gridSweep(parseGrids(["variants=none;bnlab", "optimizer=sgd,adam"]));
  const { rows, table } = await runSweep(sweep, base, { out });
  assert.equal(rows.length, 4);
  assert.deepEqual(rows.map((r) => [r.variants, r.optimizer, r.variant]), [
    ["none", "sgd", "none"],
    ["none", "adam", "none"],
    ["bnlab", "sgd", "bnlab"],
    ["bnlab", "adam", "bnlab"],
  ]);
  assert.equal(table.length, 4);
  assert.match(await Deno.readTextFile(`${out}/sweep.svg`), /variants \(0: none, 1: bnlab\)/);
});

Deno.test("lib/experiments, lib/train and lib/data import no module that imports them back", async () => {
  const root = new URL("../", import.meta.url);
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", new URL("mod.ts", root).pathname],
    stdout: "piped",
    stderr: "null",
  }).output();
  const graph = JSON.parse(new TextDecoder().decode(output.stdout)) as {
    modules: { specifier: string; dependencies?: { code?: { specifier: string } }[] }[];
  };
  const lib = new URL("lib/", root).href;
  const edges = new Map(
    graph.modules.filter((m) => m.specifier.startsWith(lib)).map((m) => [
      m.specifier,
      (m.dependencies ?? []).map((d) => d.code?.specifier).filter((s): s is string =>
        !!s && s.startsWith(lib)
      ),
    ]),
  );
  const mine = [...edges.keys()].filter((s) => /lib\/(experiments|train|data)\//.test(s));
  assert.ok(mine.length > 10);
  const reaches = (from: string, to: string) => {
    const seen = new Set<string>();
    const stack = [...(edges.get(from) ?? [])];
    while (stack.length) {
      const next = stack.pop()!;
      if (next === to) return true;
      if (seen.has(next)) continue;
      seen.add(next);
      stack.push(...(edges.get(next) ?? []));
    }
    return false;
  };
  const cyclic = mine.filter((m) => reaches(m, m)).map((m) => m.slice(lib.length));
  assert.deepEqual(cyclic, []);
});

Deno.test("normalizeInput standardizes both splits per channel with given or training statistics", async () => {
  const base = resolveConfig("smoke", { limit: 50, testLimit: 10 });
  const raw = await loadTrialData(base);
  const given = await loadTrialData({ ...base, normalizeInput: "0.5,0.25" });
  assert.equal(given.train.images[200], Math.fround((raw.train.images[200] - 0.5) / 0.25));
  assert.equal(given.test.images[300], Math.fround((raw.test.images[300] - 0.5) / 0.25));
  const auto = await loadTrialData({ ...base, normalizeInput: "auto" });
  const { mean, std } = channelStatistics(auto.train);
  assert.ok(Math.abs(mean[0]) < 1e-6 && Math.abs(std[0] - 1) < 1e-5, `${mean} ${std}`);
  assert.notEqual(auto.test.images[300], raw.test.images[300]);
  await assert.rejects(() => loadTrialData({ ...base, normalizeInput: "0.1,0.2,0.3,0.4" }), {
    message: "normalizeInput: mnist has 1 channels, received 2 means and 2 standard deviations",
  });
});

const RESUME_CASES: [string, Partial<ExperimentConfig>][] = [
  ["sgd with a step schedule", { lrSchedule: "step", lrStepEvery: 1, lrStepGamma: 0.5 }],
  [
    "nesterov momentum, weight decay, cosine with warm-up",
    {
      sgdMomentum: 0.9,
      nesterov: true,
      weightDecay: 1e-3,
      lrSchedule: "cosine",
      warmupEpochs: 1,
    },
  ],
  ["adam", { optimizer: "adam", lr: 0.001 }],
];

for (const [name, fields] of RESUME_CASES) {
  Deno.test(`a trial stopped after an epoch resumes to the uninterrupted numbers: ${name}`, async () => {
    const config = resolveConfig("smoke", { ...TINY, variants: ["bnlab"], epochs: 3, ...fields });
    const full = await Deno.makeTempDir({ prefix: "bnlab-full-" });
    const [expected] = await runExperiment(config, { out: full });
    const stopped = await Deno.makeTempDir({ prefix: "bnlab-stopped-" });
    await prepareTrain(config, stopped);
    let epochs = 0;
    await assert.rejects(
      () =>
        runTrial(stopped, 0, {
          afterEpoch: () => {
            if (++epochs === 1) throw new Error("stopped after epoch 1");
          },
        }),
      { message: "stopped after epoch 1" },
    );
    assert.match(
      await Deno.readTextFile(`${stopped}/runs/bnlab-seed0/error.json`),
      /stopped after epoch 1/,
    );
    const resumed = await runTrial(stopped, 0);
    const { wall_seconds: _a, ...got } = resumed;
    const { wall_seconds: _b, ...want } = expected;
    assert.deepEqual(got, want);
    await collect(stopped);
    assert.deepEqual(await readCsv(`${stopped}/history.csv`), await readCsv(`${full}/history.csv`));
    assert.equal(await exists(`${stopped}/runs/bnlab-seed0/error.json`), false);
  });
}

Deno.test("a model that cannot be built is refused before the directory is created", async () => {
  const out = `${await Deno.makeTempDir()}/never`;
  const config = resolveConfig("smoke", { ...TINY, variants: ["none"], dataset: "mnist" });
  // 28×28 MNIST images are built for; LeNet on them builds. A model over images that are too
  // small for it cannot be built: an idx: set of 8×8 images.
  const dir = await Deno.makeTempDir({ prefix: "bnlab-small-" });
  for (const [prefix, count] of [["train", 4], ["t10k", 4]] as const) {
    const images = new Uint8Array(16 + count * 64);
    const view = new DataView(images.buffer);
    [0x803, count, 8, 8].forEach((d, i) => view.setUint32(4 * i, d));
    const labels = new Uint8Array(8 + count);
    new DataView(labels.buffer).setUint32(0, 0x801);
    new DataView(labels.buffer).setUint32(4, count);
    await Deno.writeFile(`${dir}/${prefix}-images-idx3-ubyte`, images);
    await Deno.writeFile(`${dir}/${prefix}-labels-idx1-ubyte`, labels);
  }
  await assert.rejects(
    () => prepareTrain({ ...config, dataset: `idx:${dir}`, limit: 4, testLimit: 4 }, out),
    /none-seed0: cannot build the model: Negative dimension size/,
  );
  assert.equal(await exists(out), false);
});
