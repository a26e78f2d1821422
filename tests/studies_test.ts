/**
 * The studies (named presets and sweeps), the learning-rate–batch link, the diagnostics
 * (observational: training is bitwise identical with them on; the file's columns; no leaks)
 * and Figure 1 from a tiny run.
 */
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../lib/backend.ts";
import type { Dataset } from "../lib/data/dataset.ts";
import { resolveConfig } from "../lib/experiments/config.ts";
import { parseFlags } from "../lib/experiments/flags.ts";
import { prepareTrain } from "../lib/experiments/runner.ts";
import {
  GHOST_MIN_BATCH,
  linearLr,
  SMALL_BATCH_SIZES,
  STUDY_PRESETS,
  STUDY_SWEEPS,
} from "../lib/experiments/studies.ts";
import { SWEEPS, sweepTrials } from "../lib/experiments/sweeps.ts";
import { runTrial } from "../lib/experiments/trial.ts";
import { createModel } from "../lib/models/create_model.ts";
import { readCsv } from "../lib/output/csv.ts";
import { sideBySide } from "../lib/output/panels.ts";
import {
  FIGURE1_COLUMNS,
  figure1Chart,
  figure1Rows,
  writeFigure1,
} from "../lib/experiments/figure1.ts";
import {
  appendDiagnostics,
  DIAGNOSTICS_COLUMNS,
  diagnosticsChart,
  DiagnosticsRecorder,
  type DiagnosticsRow,
  parseDiagnostics,
  percentile,
  readDiagnostics,
  truncateDiagnostics,
} from "../lib/train/diagnostics.ts";
import { train } from "../lib/train/loop.ts";

await initBackend("wasm");

/** Trial counts the studies' docs state. */
const SWEEP_TRIALS: Record<string, number> = {
  "small-batch": 99,
  "learning-rate": 84,
  "unbiased-variance": 18,
};
const PRESET_TRIALS: Record<string, number> = {
  figure1: 6,
  resnet: 8,
  "report-normalized": 3,
  "report-example-optimizer": 3,
};

Deno.test("every study sweep resolves with its preset to the trial count its doc states", async () => {
  assert.deepEqual(Object.keys(STUDY_SWEEPS).sort(), Object.keys(SWEEP_TRIALS).sort());
  for (const [name, count] of Object.entries(SWEEP_TRIALS)) {
    assert.equal(SWEEPS[name], STUDY_SWEEPS[name], `${name} is registered`);
    const trials = await sweepTrials(SWEEPS[name], resolveConfig(name), "/nonexistent");
    assert.equal(trials.length, count, name);
    assert.match(SWEEPS[name].description, new RegExp(`${count} trials`));
    assert.equal(new Set(trials.map((t) => t.id)).size, count, `${name}: ids are unique`);
  }
});

Deno.test("every study preset resolves to the trial count its doc states", () => {
  for (const [name, count] of Object.entries(PRESET_TRIALS)) {
    const config = resolveConfig(name);
    assert.equal(config.variants.length * config.seeds, count, name);
  }
  for (const name of Object.keys(STUDY_PRESETS)) assert.equal(resolveConfig(name).preset, name);
  const normalized = resolveConfig("report-normalized");
  const report = resolveConfig("report");
  assert.deepEqual(
    { ...normalized, preset: "", normalizeInput: "" },
    { ...report, preset: "", normalizeInput: "" },
  );
  assert.equal(normalized.normalizeInput, "0.1307,0.3081");
  const optimizer = resolveConfig("report-example-optimizer");
  assert.deepEqual([optimizer.sgdMomentum, optimizer.lr], [0.5, 0.01]);
  assert.deepEqual({ ...optimizer, preset: "", sgdMomentum: 0, lr: 0 }, {
    ...report,
    preset: "",
    sgdMomentum: 0,
    lr: 0,
  });
  const figure1 = resolveConfig("figure1");
  assert.deepEqual(
    [figure1.model, figure1.hidden, figure1.activation, figure1.batchSize],
    ["mlp", [100, 100, 100], "sigmoid", 60],
  );
  assert.deepEqual(parseDiagnostics(figure1.diagnostics), { every: 100, probe: 1000 });
  const resnet = resolveConfig("resnet");
  assert.deepEqual([resnet.model, resnet.dataset], ["resnet20", "fashion-mnist"]);
});

Deno.test("small-batch links lr to the batch (lr = base·B/32) and trains ghost only from batch 8", async () => {
  assert.equal(linearLr(0.05, 32), 0.05);
  assert.equal(linearLr(0.05, 2), 0.003125);
  assert.equal(linearLr(0.05, 128), 0.2);
  assert.equal(linearLr(0.1, 8, { referenceBatch: 16 }), 0.05);
  assert.throws(() => linearLr(0.1, 8, { referenceBatch: 0 }), {
    message: "linearLr: referenceBatch must be a positive integer, received 0",
  });
  assert.throws(() => linearLr(0, 2), {
    message: "linearLr: baseLr must be a positive finite number, received 0",
  });
  assert.throws(() => linearLr(0.1, 2.5), {
    message: "linearLr: batchSize must be a positive integer, received 2.5",
  });
  for (const base of [0.05, 0.08]) {
    const trials = await sweepTrials(
      SWEEPS["small-batch"],
      resolveConfig("small-batch", { lr: base }),
      "/nonexistent",
    );
    for (const batch of SMALL_BATCH_SIZES) {
      const at = trials.filter((t) => t.config.batchSize === batch);
      assert.ok(at.length > 0);
      for (const t of at) {
        assert.equal(t.config.lr, Number((base * batch / 32).toPrecision(12)), t.id);
        assert.equal(t.point?.lr, t.config.lr);
      }
      const ghost = at.filter((t) => t.config.variants[0] === "ghost");
      assert.equal(ghost.length, batch >= GHOST_MIN_BATCH ? 3 : 0, `batch ${batch}`);
      for (const t of ghost) assert.equal(t.config.virtualBatchSize, 4);
      for (const t of at.filter((t) => t.config.variants[0] === "group")) {
        assert.equal(t.config.groups, 10);
      }
    }
  }
  const unbiased = await sweepTrials(
    SWEEPS["unbiased-variance"],
    resolveConfig("unbiased-variance"),
    "/nonexistent",
  );
  for (const t of unbiased) assert.equal(t.config.lr, linearLr(0.05, t.config.batchSize));
  // The sweep sets lr at every point, so a flag for it is refused by `deno task sweep`.
  assert.ok(SWEEPS["small-batch"].fields.includes("lr"));
});

Deno.test("the diagnostics field parses every=N[,probe=M] and rejects anything else", () => {
  assert.equal(parseDiagnostics("none"), null);
  assert.deepEqual(parseDiagnostics("every=7"), { every: 7, probe: 500 });
  assert.deepEqual(
    parseFlags(["--diagnostics", "every=3,probe=20"]).config.diagnostics,
    "every=3,probe=20",
  );
  for (const bad of ["every=0", "every=x", "each=5", "every=5,probe=0", ""]) {
    assert.throws(() => resolveConfig("smoke", { diagnostics: bad }), {
      message: `config: diagnostics must be none or every=N[,probe=M] with N, M positive ` +
        `integers, received ${JSON.stringify(bad)}`,
    });
  }
});

Deno.test("percentile interpolates between order statistics as NumPy does", () => {
  const sorted = new Float32Array([1, 2, 3, 4, 10]);
  assert.equal(percentile(sorted, 0), 1);
  assert.equal(percentile(sorted, 50), 3);
  assert.ok(Math.abs(percentile(sorted, 85) - 6.4) < 1e-12); // h = 4·0.85 = 3.4: 4 + 0.4·6
  assert.ok(Math.abs(percentile(sorted, 15) - 1.6) < 1e-12); // h = 0.6
  assert.ok(Number.isNaN(percentile(new Float32Array(0), 50)));
  assert.throws(() => percentile(sorted, 101), {
    message: "percentile: p must be in [0, 100], received 101",
  });
});

/** 4×4 images, two classes told apart by which half is brighter. */
function toyData(count: number, seed: number): Dataset {
  let state = seed + 1;
  const random = () => (state = (state * 1103515245 + 12345) % 2147483648) / 2147483648;
  const images = new Float32Array(count * 16);
  const labels = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    labels[i] = random() < 0.5 ? 0 : 1;
    for (let p = 0; p < 16; p++) {
      images[i * 16 + p] = random() * 0.5 + ((p % 4 < 2) === (labels[i] === 1) ? 0.5 : 0);
    }
  }
  return { name: "toy", split: "train", images, labels, count, height: 4, width: 4, numClasses: 2 };
}

async function trainToy(
  model: "mlp" | "lenet",
  normalization: "none" | "bnlab",
  every: number | null,
) {
  const tensorsBefore = tf.memory().numTensors;
  const data = model === "lenet" ? _mnistLike(24, 3) : toyData(24, 3);
  const test = model === "lenet" ? _mnistLike(10, 4) : toyData(10, 4);
  const net = createModel(model, {
    normalization,
    activation: "sigmoid",
    seed: 5,
    hidden: [6, 5],
    inputShape: [data.height, data.width, 1],
    numClasses: data.numClasses,
  });
  const recorder = every
    ? new DiagnosticsRecorder(net, { every, probe: test, probeSize: 7, chunk: 3 })
    : undefined;
  const records = await train(net, data, {
    epochs: 2,
    batchSize: 4,
    lr: 0.5,
    seed: 1,
    logEvery: 1,
    test,
    observer: recorder?.observer,
  });
  const weights = await Promise.all(net.getWeights().map((w) => w.data()));
  const rows = recorder?.takeRows() ?? [];
  recorder?.dispose();
  net.dispose();
  assert.equal(tf.memory().numTensors, tensorsBefore, `${model} ${normalization}: tensors leaked`);
  return { records: records.map((r) => ({ ...r, seconds: 0 })), weights, rows };
}

function _mnistLike(count: number, seed: number): Dataset {
  const small = toyData(count, seed);
  const images = new Float32Array(count * 28 * 28);
  for (let i = 0; i < count; i++) {
    for (let p = 0; p < 28 * 28; p++) {
      images[i * 784 + p] = small.images[i * 16 + (Math.floor(p / 28 / 7) * 4 + (p % 28 >> 3 & 3))];
    }
  }
  return { ...small, images, height: 28, width: 28 };
}

Deno.test("diagnostics leave training bitwise identical (weights, losses, running statistics)", async () => {
  for (
    const [model, normalization] of [["mlp", "bnlab"], ["mlp", "none"], ["lenet", "bnlab"]] as const
  ) {
    const plain = await trainToy(model, normalization, null);
    const observed = await trainToy(model, normalization, 2);
    assert.deepEqual(observed.records, plain.records, `${model} ${normalization}: records`);
    assert.equal(observed.weights.length, plain.weights.length);
    for (const [i, w] of plain.weights.entries()) {
      assert.deepEqual(observed.weights[i], w, `${model} ${normalization}: weight ${i}`);
    }
    // 24 images / batch 4 = 6 steps per epoch, 12 steps, a point every 2 → 6 points.
    const sites = model === "mlp" ? 3 : 4; // mlp: 2 hidden + logits; lenet: 2 conv, dense 500, logits
    assert.equal(observed.rows.length, 6 * sites, `${model} ${normalization}: rows`);
    assert.deepEqual([...new Set(observed.rows.map((r) => r.step))], [2, 4, 6, 8, 10, 12]);
    for (const row of observed.rows) {
      assert.ok(row.input_p15 <= row.input_p50 && row.input_p50 <= row.input_p85);
      assert.ok(row.input_variance >= 0 && Number.isFinite(row.input_mean));
      assert.ok(row.grad_norm > 0, `${model} ${normalization}: grad norm at ${row.step}`);
      const last = row.site === sites - 1;
      assert.equal(row.norm, normalization === "bnlab" && !last ? "BatchNorm" : "none");
      assert.equal(row.running_mean_gap === null, row.norm === "none");
      assert.equal(row.norm_grad_norm === null, row.norm === "none");
      assert.ok(row.probe_accuracy >= 0 && row.probe_accuracy <= 1);
    }
  }
});

Deno.test("diagnostics: measured values match a hand computation, and no tensor leaks", async () => {
  const model = tf.sequential({
    layers: [
      tf.layers.flatten({ inputShape: [4, 4, 1] }),
      tf.layers.dense({ units: 2, kernelInitializer: "ones", biasInitializer: "zeros" }),
      tf.layers.activation({ activation: "sigmoid" }),
      tf.layers.dense({ units: 2 }),
    ],
  });
  const probe = toyData(5, 9);
  const recorder = new DiagnosticsRecorder(model, { every: 1, probe, chunk: 2 });
  await recorder.measure(1, 0); // warm up
  recorder.takeRows();
  const before = tf.memory().numTensors;
  await recorder.measure(2, 0);
  const grads = { [(model.trainableWeights[0].read() as tf.Variable).name]: tf.ones([16, 2]) };
  recorder.recordGradients(3, grads);
  await recorder.measure(3, 0);
  tf.dispose(grads);
  assert.equal(tf.memory().numTensors, before);
  const rows = recorder.takeRows();
  // Site 0: every unit is the sum of the image's 16 pixels.
  const sums = Array.from(
    { length: 5 },
    (_, i) => probe.images.subarray(i * 16, i * 16 + 16).reduce((a, b) => a + b, 0),
  );
  const sorted = new Float32Array(sums).sort();
  const site0 = rows.find((r) => r.site === 0 && r.step === 2)!;
  assert.ok(Math.abs(site0.unit0_p50 - percentile(sorted, 50)) < 1e-5);
  assert.ok(
    Math.abs(site0.input_p85 - percentile(new Float32Array([...sums, ...sums]).sort(), 85)) < 1e-5,
  );
  const mean = sums.reduce((a, b) => a + b) / 5;
  assert.ok(Math.abs(site0.input_mean - mean) < 1e-5);
  assert.ok(
    Math.abs(site0.input_variance - sums.reduce((a, x) => a + (x - mean) ** 2, 0) / 5) < 1e-4,
  );
  assert.ok(Number.isNaN(site0.grad_norm)); // no gradients were recorded for step 2
  const withGrads = rows.find((r) => r.site === 0 && r.step === 3)!;
  // ‖ones(16×2)‖; the bias got no gradient here and counts for nothing.
  assert.ok(Math.abs(withGrads.grad_norm - Math.sqrt(32)) < 1e-5);
  recorder.dispose();
  model.dispose();
});

Deno.test("diagnostics.csv: the documented columns, truncation for resume", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/diagnostics.csv`;
  const row = (step: number, epoch: number) =>
    ({
      ...Object.fromEntries(
        DIAGNOSTICS_COLUMNS.map((c) => [c, c === "layer" ? "dense" : c === "norm" ? "none" : 0]),
      ),
      step,
      epoch,
    }) as unknown as DiagnosticsRow;
  await appendDiagnostics(path, [row(1, 0)]);
  await appendDiagnostics(path, [row(9, 1)]);
  const header = (await Deno.readTextFile(path)).split("\n")[0];
  assert.equal(header, DIAGNOSTICS_COLUMNS.join(","));
  await truncateDiagnostics(path, 1);
  assert.deepEqual((await readDiagnostics(path)).map((r) => r.step), [1]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a tiny figure1 run writes diagnostics per run and Figure 1 (CSV, SVG with 3 panels, PNG)", async () => {
  const dir = await Deno.makeTempDir();
  const config = resolveConfig("figure1", {
    limit: 120,
    testLimit: 40,
    epochs: 1,
    seeds: 1,
    hidden: [8, 8, 8],
    diagnostics: "every=1,probe=30",
  });
  const plan = await prepareTrain(config, dir);
  for (const trial of plan.trials) await runTrial(dir, trial.index);
  for (const trial of plan.trials) {
    const rows = await readDiagnostics(`${dir}/${trial.dir}/diagnostics.csv`);
    assert.equal(rows.length, 2 * 4, trial.id); // 120/60 = 2 steps × 4 sites
    assert.ok((await Deno.stat(`${dir}/${trial.dir}/diagnostics.svg`)).size > 0);
  }
  const rows = await writeFigure1(dir);
  assert.deepEqual(rows.map((r) => `${r.variant}@${r.step}`), [
    "none@1",
    "none@2",
    "bnlab@1",
    "bnlab@2",
  ]);
  const csv = await readCsv(`${dir}/figure1.csv`);
  assert.deepEqual(Object.keys(csv[0]), [...FIGURE1_COLUMNS]);
  const svg = await Deno.readTextFile(`${dir}/figure1.svg`);
  assert.equal((svg.match(/<svg/g) ?? []).length, 4); // the figure and panels a, b, c
  assert.match(svg, /\(a\) test accuracy/);
  assert.match(svg, /\(b\) none/);
  assert.match(svg, /\(c\) bnlab/);
  assert.ok((await Deno.stat(`${dir}/figure1.png`)).size > 1000);
  // The rows are the last hidden site's (site 2 of 0…3), averaged over seeds.
  const bnlab = await readDiagnostics(`${dir}/${plan.trials[1].dir}/diagnostics.csv`);
  assert.equal(rows[2].p50, bnlab.find((r) => r.site === 2 && r.step === 1)!.unit0_p50);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("figure1Rows averages seeds; figure1Chart refuses no rows", () => {
  const row = (step: number, acc: number, p50: number) =>
    ({
      step,
      site: 1,
      probe_accuracy: acc,
      unit0_p15: 0,
      unit0_p50: p50,
      unit0_p85: 1,
    }) as unknown as DiagnosticsRow;
  const logits = (step: number) => ({ ...row(step, 0, 0), site: 2 }) as DiagnosticsRow;
  const rows = figure1Rows([
    { variant: "bnlab", seed: 0, rows: [row(5, 0.5, 2), logits(5)] },
    { variant: "bnlab", seed: 1, rows: [row(5, 0.7, 4), logits(5)] },
  ]);
  assert.equal(rows.length, 1);
  assert.ok(Math.abs(rows[0].accuracy_mean - 0.6) < 1e-12);
  assert.ok(Math.abs(rows[0].accuracy_std - Math.sqrt(0.02)) < 1e-12);
  assert.equal(rows[0].p50, 3);
  assert.throws(() => figure1Chart([]), { message: "figure1Chart: expected rows, received none" });
});

Deno.test("sideBySide and diagnosticsChart: panels placed left to right, bad input refused", () => {
  const chart = (width: number) =>
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="200"></svg>`;
  const svg = sideBySide([chart(300), chart(200)], { title: "a < b" });
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg" width="500" height="228"/);
  assert.match(svg, /<svg x="300" y="28" /);
  assert.match(svg, /<title>a &lt; b<\/title>/);
  assert.throws(() => sideBySide([]), {
    message: "sideBySide: expected at least one panel, received 0",
  });
  assert.throws(() => sideBySide(["<svg>"]), {
    message:
      'sideBySide: panel 0 must be an SVG document with a width and a height, received "<svg>"',
  });
  assert.throws(() => diagnosticsChart([]), {
    message: "diagnosticsChart: expected rows, received none",
  });
});

Deno.test("a trial resumed after an interruption writes each diagnostic step once, as an uninterrupted one", async () => {
  const config = resolveConfig("figure1", {
    limit: 120,
    testLimit: 30,
    epochs: 3,
    seeds: 1,
    variants: ["bnlab"],
    hidden: [6, 6],
    logEvery: 1,
    diagnostics: "every=1,probe=20",
  });
  const read = async (dir: string) =>
    (await readDiagnostics(`${dir}/runs/bnlab-seed0/diagnostics.csv`)).map(
      ({ layer: _layer, ...row }) => row,
    );
  const whole = await Deno.makeTempDir();
  await prepareTrain(config, whole);
  await runTrial(whole, 0);
  const broken = await Deno.makeTempDir();
  await prepareTrain(config, broken);
  // Interrupted in the middle of the third epoch (2 steps per epoch), after step 5 was measured:
  // the resumed run restarts that epoch from its checkpoint and must not write step 5 twice.
  await assert.rejects(
    () =>
      runTrial(broken, 0, {
        onEvent: (event) => {
          if (event.type === "train" && event.event.type === "step" && event.event.step === 6) {
            throw new Error("interrupted");
          }
        },
      }),
    /interrupted/,
  );
  assert.deepEqual(
    [...new Set((await read(broken)).map((r) => r.step))],
    [1, 2, 3, 4, 5],
  );
  await runTrial(broken, 0);
  const rows = await read(broken);
  assert.equal(rows.length, 3 * 2 * 3); // 3 epochs × 2 steps × 3 sites
  assert.deepEqual(rows, await read(whole));
  await Deno.remove(whole, { recursive: true });
  await Deno.remove(broken, { recursive: true });
});
