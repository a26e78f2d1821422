import assert from "node:assert/strict";
import {
  momentumGapConclusion,
  REPORT_GAP_POINTS,
  sweepMomentumConclusion,
} from "../lib/experiments/momentum_gap.ts";
import type { SweepRow } from "../lib/experiments/sweeps.ts";

const row = (seed: number, momentum: number, accuracy: number, loss = 0.1) =>
  ({
    seed,
    keras_momentum: momentum,
    momentum_convention: "keras",
    test_accuracy_running: accuracy,
    test_accuracy_batch: 0.97,
    train_loss: loss,
  }) as unknown as SweepRow;

Deno.test("sweepMomentumConclusion ranks momenta by their mean over seeds, not by single trials", () => {
  // Seed 1 alone would put momentum 0.1 lowest (0.960) and seed 0 alone highest (0.990): the
  // means (0.975 and 0.9775) are what the range is made of.
  const rows = [
    row(0, 0.1, 0.99),
    row(1, 0.1, 0.96, 0.2),
    row(0, 0.9, 0.975),
    row(1, 0.9, 0.98, 0.2),
  ];
  const text = sweepMomentumConclusion(rows);
  assert.match(text, /^No: /);
  assert.match(text, /\(the mean over 2 seeds \(0, 1\)\) ranges from 97\.50% \(momentum 0\.1\)/);
  assert.match(text, /to 97\.75% \(momentum 0\.9\), 0\.25 percentage points/);
  assert.match(text, /identical for every momentum within each seed/);
  assert.doesNotMatch(text, /With one seed/);
});

Deno.test("sweepMomentumConclusion says when it rests on one seed, and answers Yes for a wide range", () => {
  const wide = REPORT_GAP_POINTS / 100;
  const text = sweepMomentumConclusion([row(3, 0.1, 0.9), row(3, 0.9, 0.9 + wide)]);
  assert.match(text, /^Yes: .*\(seed 3\)/);
  assert.match(
    text,
    /With one seed, how far these accuracies move from seed to seed is not measured/,
  );
  assert.throws(() => sweepMomentumConclusion([row(0, 0.1, NaN)]), /finite running-statistics/);
});

Deno.test("momentumGapConclusion names the seed its settings ran", () => {
  const text = momentumGapConclusion([{
    setting: "report",
    epochs: 20,
    maxTrainLossGap: 1e-5,
    runningGapPoints: 0.4,
    batchGapPoints: 0.01,
  }]);
  assert.match(text, /^No: over 1 setting \(report; seed 0 of each\)/);
});
