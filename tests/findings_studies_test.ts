/**
 * The studies' findings sections and charts: "not yet run" without results, verdicts computed
 * from hand-made CSVs with known answers, the quotes verbatim in the source documents, and
 * each study's chart written by collect's hook.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { resolveConfig } from "../lib/experiments/config.ts";
import { buildPlan, trainTrials, writePlan } from "../lib/experiments/plan.ts";
import { SWEEPS, sweepTrials } from "../lib/experiments/sweeps.ts";
import { writeCsv } from "../lib/output/csv.ts";
import {
  percentCell,
  stats,
  STUDY_FINDINGS_SECTIONS,
  STUDY_SECTIONS,
  studyFindings,
} from "../lib/experiments/findings_studies.ts";
import { writeStudyChart } from "../lib/experiments/study_charts.ts";

const SEEDS = Deno.env.get("BNLAB_SEEDS_DIR") ??
  fileURLToPath(new URL("../../shared/seeds/", import.meta.url));
const HAVE_SEEDS = await Deno.stat(SEEDS).then(() => true, () => false);

Deno.test("every section says 'not yet run' with the command when its results are absent", async () => {
  const root = await Deno.makeTempDir();
  for (const [name, section] of Object.entries(STUDY_SECTIONS)) {
    const text = await section(root);
    assert.match(text, /^## /, name);
    assert.match(text, /not yet run/i, name);
    assert.match(text, /\*\*Claim\*\*/, name);
  }
  assert.match(
    await studyFindings("small-batch", { root }),
    /deno task sweep small-batch --preset small-batch/,
  );
  await Deno.remove(root, { recursive: true });
});

Deno.test({
  name: "the Chinese quotes of the claims are verbatim in the source documents",
  ignore: !HAVE_SEEDS,
  fn: async () => {
    const sources = await Promise.all(
      [...Deno.readDirSync(SEEDS)].filter((e) => e.name.endsWith(".txt"))
        .map((e) => Deno.readTextFile(`${SEEDS}/${e.name}`)),
    );
    const root = await Deno.makeTempDir();
    let checked = 0;
    for (const section of Object.values(STUDY_SECTIONS)) {
      for (const [, quote] of (await section(root)).matchAll(/“([^”]*)”/g)) {
        if (!/[\u4e00-\u9fff]/.test(quote)) continue; // English sources are not in seeds/
        assert.ok(sources.some((s) => s.includes(quote)), `not verbatim: ${quote}`);
        checked++;
      }
    }
    assert.ok(checked >= 5, `checked ${checked} quotes`);
    await Deno.remove(root, { recursive: true });
  },
});

Deno.test("stats and percentCell: sample std, non-finite values left out", () => {
  const s = stats([0.9, 0.95, NaN, 1]);
  assert.equal(s.n, 3);
  assert.ok(Math.abs(s.mean - 0.95) < 1e-12 && Math.abs(s.std - 0.05) < 1e-12);
  assert.equal(percentCell(stats([0.9, 1])), "95.00 ± 7.07");
  assert.equal(percentCell(stats([0.9])), "90.00 (n = 1)");
  assert.equal(percentCell(stats([NaN])), "–");
});

/** A sweep directory with its plan and a hand-made sweep.csv. */
async function sweepDir(name: string, rows: Record<string, unknown>[]): Promise<string> {
  const root = await Deno.makeTempDir();
  const dir = `${root}/results/${name}`;
  await Deno.mkdir(dir, { recursive: true });
  const trials = await sweepTrials(SWEEPS[name], resolveConfig(name), dir);
  await writePlan(dir, buildPlan("sweep", trials, undefined, name));
  await writeCsv(`${dir}/sweep.csv`, rows);
  return root;
}

Deno.test("small-batch: the verdict is computed from the numbers (BN's rise vs GroupNorm's)", async () => {
  const rows = [];
  const accuracy: Record<string, Record<number, number[]>> = {
    bnlab: { 2: [0.80, 0.82, 0.84], 8: [0.95, 0.96, 0.97] },
    group: { 2: [0.94, 0.94, 0.94], 8: [0.95, 0.95, 0.95] },
  };
  for (const [variant, byBatch] of Object.entries(accuracy)) {
    for (const [batch, values] of Object.entries(byBatch)) {
      for (const [seed, value] of values.entries()) {
        rows.push({
          trial: `batch-${batch}`,
          batch_size: Number(batch),
          lr: 0.05 * Number(batch) / 32,
          variant,
          seed,
          test_accuracy: value,
          test_accuracy_batch_stats: value - 0.1,
          status: "done",
        });
      }
    }
  }
  const root = await sweepDir("small-batch", rows);
  const text = await studyFindings("small-batch", { root });
  assert.match(text, /BN's \(bnlab\) error with running statistics rises 14\.0 points/);
  assert.match(text, /GroupNorm's rises 1\.0 points \(largest seed spread at these points 2\.0/);
  assert.match(text, /Wu & He's pattern is seen/);
  assert.match(text, /\| 2 \| 0\.003125 \| 82\.00 ± 2\.00 \| 94\.00 ± 0\.00 \|/);
  assert.match(text, /2: -10\.0; 8: -10\.0/); // batch minus running statistics
  assert.match(text, /the first 2000 training images, 3 epoch\(s\)/); // the scale, from the plan
  // GroupNorm degrading as much as BN: the pattern is not seen.
  for (const row of rows.filter((r) => r.variant === "group" && r.batch_size === 2)) {
    row.test_accuracy = (row.test_accuracy as number) - 0.13;
  }
  await writeCsv(`${root}/results/small-batch/sweep.csv`, rows);
  assert.match(
    await studyFindings("small-batch", { root }),
    /Wu & He's pattern is not seen at this scale/,
  );
  await Deno.remove(root, { recursive: true });
});

Deno.test("learning-rate: diverged trials are counted, and the usable range decides the verdict", async () => {
  const rows = [];
  for (const lr of [0.01, 0.1, 1]) {
    for (const variant of ["none", "bnlab"]) {
      for (const seed of [0, 1, 2]) {
        const diverged = variant === "none" && lr === 1;
        rows.push({
          trial: `lr-${lr}_relu`,
          lr,
          activation: "relu",
          variant,
          seed,
          test_accuracy: diverged ? null : 0.9 + seed * 0.01,
          status: diverged ? "diverged" : "done",
        });
      }
    }
  }
  const root = await sweepDir("learning-rate", rows);
  const text = await studyFindings("learning-rate", { root });
  assert.match(text, /\| 1 \| – \(3\/3 diverged\) \| 91\.00 ± 1\.00 \|/);
  assert.match(
    text,
    /relu: none works at lr 0\.01, 0\.1 \(best 91\.0% at lr 0\.01\); bnlab works at lr 0\.01, 0\.1, 1 \(best 91\.0% at lr 0\.01\); 3 trial\(s\) diverged\. The largest working learning rate is higher with BN \(1 vs 0\.1\): the claim holds\. At lr 1: none – \(diverged\), bnlab 91\.0%\./,
  );

  await Deno.remove(root, { recursive: true });
});

Deno.test("unbiased-variance: differences are paired by seed", async () => {
  const rows = [];
  for (const running_variance of ["biased", "unbiased"]) {
    for (const seed of [0, 1, 2]) {
      rows.push({
        trial: `batch-2_${running_variance}`,
        batch_size: 2,
        lr: 0.003125,
        running_variance,
        variant: "bnlab",
        seed,
        // Seeds differ a lot; the pairs differ by exactly 3 points.
        test_accuracy: 0.5 + seed * 0.2 + (running_variance === "unbiased" ? 0.03 : 0),
        test_accuracy_batch_stats: 0.9,
        train_loss: seed === 2 && running_variance === "unbiased" ? 0.5 : 0.25,
        status: "done",
      });
    }
  }
  const root = await sweepDir("unbiased-variance", rows);
  const text = await studyFindings("unbiased-variance", { root });
  assert.match(text, /batch 2: 3\.00 points ± 0\.00 \(measurable\)/);
  assert.match(text, /2 of 3 pairs end with the same training loss/);
  await Deno.remove(root, { recursive: true });
});

Deno.test("writeStudyChart draws the named studies' charts and nothing for other experiments", async () => {
  const root = await sweepDir("unbiased-variance", [
    {
      batch_size: 2,
      running_variance: "biased",
      variant: "bnlab",
      seed: 0,
      test_accuracy: 0.9,
      status: "done",
    },
    {
      batch_size: 2,
      running_variance: "unbiased",
      variant: "bnlab",
      seed: 0,
      test_accuracy: 0.8,
      status: "done",
    },
  ]);
  const dir = `${root}/results/unbiased-variance`;
  const plan = buildPlan(
    "sweep",
    await sweepTrials(SWEEPS["unbiased-variance"], resolveConfig("unbiased-variance"), dir),
    undefined,
    "unbiased-variance",
  );
  assert.equal(await writeStudyChart(dir, plan), `${dir}/unbiased_variance.svg`);
  assert.match(
    await Deno.readTextFile(`${dir}/unbiased_variance.svg`),
    /unbiased running variance/,
  );
  assert.ok((await Deno.stat(`${dir}/unbiased_variance.png`)).size > 1000);
  assert.equal(await writeStudyChart(dir, { ...plan, sweep: "momentum" }), undefined);
  await Deno.remove(root, { recursive: true });
});

Deno.test("STUDY_FINDINGS_SECTIONS: registry entries render the sections without their headings", async () => {
  const root = await Deno.makeTempDir();
  assert.deepEqual(
    STUDY_FINDINGS_SECTIONS.map((s) => s.source),
    Object.keys(STUDY_SECTIONS).map((k) =>
      k === "report-seeds" ? "results/report-5seeds" : `results/${k}`
    ),
  );
  for (const [i, entry] of STUDY_FINDINGS_SECTIONS.entries()) {
    const full = await Object.values(STUDY_SECTIONS)[i](root);
    assert.ok(full.startsWith(`## ${entry.title}\n`), entry.title);
    const body = await entry.render({ root });
    assert.ok(!body.startsWith("## "), entry.title);
    assert.ok(full.includes(body), entry.title);
  }
  await Deno.remove(root, { recursive: true });
});

/** A train directory with its plan and hand-made CSVs. */
async function trainDir(
  preset: string,
  files: Record<string, Record<string, unknown>[]>,
): Promise<string> {
  const root = await Deno.makeTempDir();
  const dir = `${root}/results/${preset}`;
  await Deno.mkdir(dir, { recursive: true });
  await writePlan(dir, buildPlan("train", await trainTrials(resolveConfig(preset), dir)));
  for (const [name, rows] of Object.entries(files)) await writeCsv(`${dir}/${name}`, rows);
  return root;
}

Deno.test("resnet: per-epoch table and the verdict against the seed spread", async () => {
  const summary = [];
  const history = [];
  for (const [variant, accuracies] of Object.entries({ none: [0.80, 0.82], bnlab: [0.88, 0.90] })) {
    for (const [seed, accuracy] of accuracies.entries()) {
      summary.push({ variant, seed, test_accuracy: accuracy, test_accuracy_batch_stats: accuracy });
      for (const epoch of [1, 2]) {
        history.push({
          variant,
          seed,
          epoch,
          step: epoch * 10,
          test_accuracy: accuracy - (2 - epoch) * 0.1,
        });
        history.push({ variant, seed, epoch, step: epoch * 10 - 5, test_accuracy: null });
      }
    }
  }
  const root = await trainDir("resnet", { "summary.csv": summary, "history.csv": history });
  const text = await studyFindings("resnet", { root });
  assert.match(text, /\| none \| 71\.00 ± 1\.41 \| 81\.00 ± 1\.41 \| – \|/);
  assert.match(text, /bnlab 89\.00 ± 1\.41 \(8\.0 points vs none\)/);
  assert.match(text, /BN improves ResNet-20 here by more than twice the seed spread/);
  assert.match(text, /resnet20 on fashion-mnist, the first 1500 training images, 4 epoch\(s\)/);
  await Deno.remove(root, { recursive: true });
});

Deno.test("figure1: the verdict compares the drift of the median and the early accuracy", async () => {
  const verdict = async (n: number, std: number) => {
    const rows = [];
    for (let step = 100; step <= 1000; step += 100) {
      rows.push({
        variant: "none",
        step,
        n,
        accuracy_mean: step / 1000,
        accuracy_std: n > 1 ? std : NaN,
        p15: -2,
        p50: -step / 500,
        p85: 0,
      });
      rows.push({
        variant: "bnlab",
        step,
        n,
        accuracy_mean: 0.9,
        accuracy_std: n > 1 ? std : NaN,
        p15: -1,
        p50: 0,
        p85: 1,
      });
    }
    const root = await trainDir("figure1", { "figure1.csv": rows, "summary.csv": [] });
    try {
      return await studyFindings("figure1", { root });
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  };
  const one = await verdict(1, NaN);
  // From step 100 (the first tenth) on, none's median goes from −0.2 to −2: a range of 1.8.
  assert.match(one, /range of 1\.800 without BN and 0\.000 with BN/);
  assert.match(one, /BN's input distribution is the more stable/);
  assert.match(
    one,
    /Probe accuracy at step 200: 90\.0% with BN, 20\.0% without \(1 seed\): one seed has no spread/,
  );
  // 70 points apart; standard error of the difference √(2·0.1²/3) ≈ 0.082: measurable.
  assert.match(
    await verdict(3, 0.1),
    /90\.0 ± 10\.0% with BN, 20\.0 ± 10\.0% without \(3 seeds\) — BN trains faster/,
  );
  // A spread of 0.5 gives a standard error of ≈0.41: 0.7 is within twice that.
  assert.match(
    await verdict(3, 0.5),
    /\(3 seeds\) — the difference is within twice its standard error/,
  );
});

Deno.test("the report section says which of the report's numbers each setting reproduces", async () => {
  const root = await Deno.makeTempDir();
  const dir = `${root}/results/report-5seeds`;
  await Deno.mkdir(dir, { recursive: true });
  // Seeds 0 and 1: none at the report's 11.35%, bnlab 92.10 ± 1.41 (reproduces 92.10),
  // tfjs 98.00 ± 0.00 (5.65 points from the report's 95.65 → not reproduced).
  const row = (variant: string, seed: number, accuracy: number) => ({
    variant,
    seed,
    test_accuracy: accuracy,
    test_accuracy_batch_stats: variant === "none" ? null : accuracy,
    test_loss: 1,
    train_loss: 1,
    status: "done",
  });
  await writeCsv(`${dir}/summary.csv`, [
    row("none", 0, 0.1135),
    row("none", 1, 0.1135),
    row("custom", 0, 0.9110),
    row("custom", 1, 0.9310),
    row("tfjs", 0, 0.98),
    row("tfjs", 1, 0.98),
  ]);
  await Deno.writeTextFile(
    `${dir}/config.json`,
    JSON.stringify({ config: { variants: ["none", "custom", "tfjs"], seeds: 3 } }),
  );
  const text = await STUDY_SECTIONS["report-seeds"](root);
  assert.match(text, /none 11\.35 ± 0\.00 against 11\.35: reproduced/);
  assert.match(text, /bnlab 92\.10 ± 1\.41 against 92\.10: reproduced/);
  assert.match(text, /tfjs 98\.00 ± 0\.00 against 95\.65: 2\.35 points above/);
  // Paired gaps 6.90 and 4.90 points: mean 5.90 ± 1.41; the report's 3.55 is 1.7 std away.
  assert.match(text, /paired by seed: 5\.90 ± 1\.41 points over 2 seeds/);
  assert.match(text, /3\.55 points, 1\.7 standard deviations/);
  assert.match(text, /5 seeds: gives the report's number for none and bnlab only/);
  assert.match(text, /in progress, 6 of 9 trials finished/);
  assert.match(text, /`modern` preset \(relu\)\n\n\*Not yet run\*/);
  await Deno.remove(root, { recursive: true });
});
