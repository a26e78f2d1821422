import assert from "node:assert/strict";
import { DEFAULTS, kerasMomentum, PRESETS, resolveConfig } from "../lib/experiments/config.ts";
import { flagName, helpText, parseFlags } from "../lib/experiments/flags.ts";

Deno.test("resolveConfig applies defaults, then the preset, then overrides", () => {
  const config = resolveConfig("smoke", { epochs: 3 });
  assert.equal(config.preset, "smoke");
  assert.equal(config.epochs, 3); // override beats the preset's 1
  assert.equal(config.limit, PRESETS.smoke.overrides.limit);
  assert.equal(config.batchSize, PRESETS.smoke.overrides.batchSize);
  assert.equal(config.dataset, DEFAULTS.dataset);
});

Deno.test("the report preset is the report's protocol", () => {
  const config = resolveConfig("report");
  assert.deepEqual(
    [config.limit, config.epochs, config.batchSize, config.lr, config.optimizer],
    [null, 20, 20, 0.001, "sgd"],
  );
  assert.deepEqual(config.variants, ["none", "custom", "tfjs"]);
  // Sigmoid reproduces the report's no-BN plateau at ln 10 (see README, "Reproducing the report").
  assert.equal(config.activation, "sigmoid");
  assert.equal(resolveConfig("modern").activation, "relu");
  // bnlab's BN gets the report's hand-written momentum (0.1, Keras form); tfjs's gets PyTorch's
  // default (0.1 in the PyTorch form = 0.9 in the Keras form), the report's framework BN.
  assert.deepEqual([config.momentum, config.momentumConvention, config.tfjsMomentum], [
    0.1,
    "keras",
    0.9,
  ]);
});

Deno.test("the report-b512 preset is the report's protocol at the batch size of its log", () => {
  const config = resolveConfig("report-b512");
  const report = resolveConfig("report");
  // The report's log counts 14848, 30208 and 45568 images seen at PyTorch's MNIST example's
  // logging points (batch index + 1 a multiple of 30): 29, 59 and 89 batches of 512 each.
  for (const [seen, batchIndex] of [[14848, 29], [30208, 59], [45568, 89]]) {
    assert.equal(seen / config.batchSize, batchIndex);
    assert.equal((batchIndex + 1) % 30, 0);
    assert.notEqual(seen % report.batchSize, 0); // not a multiple of 20
  }
  assert.deepEqual(
    [config.limit, config.epochs, config.lr, config.optimizer, config.activation, config.loss],
    [null, 20, 0.001, "sgd", "sigmoid", "xent"],
  );
  assert.deepEqual(
    [config.momentum, config.momentumConvention, config.tfjsMomentum],
    [report.momentum, report.momentumConvention, report.tfjsMomentum],
  );
});

Deno.test("resolveConfig rejects unknown presets, keys and bad values with clear messages", () => {
  assert.throws(() => resolveConfig("smoke", { bnGradient: "numeric" as never }), {
    message:
      'config: bnGradient must be one of analytic, autodiff, constant-statistics, received "numeric"',
  });
  assert.throws(() => resolveConfig("huge"), {
    message:
      'config: preset must be one of smoke, quick, report, report-b512, modern, received "huge"',
  });
  assert.throws(
    () => resolveConfig("smoke", { epoch: 2 } as never),
    /config: unknown key "epoch" in overrides; allowed keys: preset, dataset/,
  );
  assert.throws(() => resolveConfig("smoke", { lr: -1 }), {
    message: "config: lr must be a positive number, received -1",
  });
  assert.throws(() => resolveConfig("smoke", { momentum: 1.5 }), {
    message: "config: momentum must be a number in [0, 1], received 1.5",
  });
  assert.throws(() => resolveConfig("smoke", { variants: ["none", "bn"] as never }), {
    message: 'config: variants must be one of none, custom, tfjs, received "bn"',
  });
  assert.throws(() => resolveConfig("smoke", { batchSize: 2.5 }), {
    message: "config: batchSize must be a positive integer, received 2.5",
  });
});

Deno.test("kerasMomentum converts PyTorch's convention", () => {
  const base = resolveConfig("smoke");
  assert.equal(kerasMomentum({ ...base, momentum: 0.1, momentumConvention: "pytorch" }), 0.9);
  assert.equal(kerasMomentum({ ...base, momentum: 0.1, momentumConvention: "keras" }), 0.1);
});

Deno.test("parseFlags maps kebab-case flags onto fields and rejects unknown flags", () => {
  assert.equal(flagName("batchSize"), "batch-size");
  const { config, out, help } = parseFlags([
    "--preset=smoke",
    "--batch-size",
    "32",
    "--variants",
    "none,tfjs",
    "--limit",
    "all",
    "--out",
    "/tmp/x",
  ]);
  assert.equal(config.batchSize, 32);
  assert.deepEqual(config.variants, ["none", "tfjs"]);
  assert.equal(config.limit, null);
  assert.equal(out, "/tmp/x");
  assert.equal(help, false);
  assert.throws(() => parseFlags(["--epochz", "3"]), /Unknown option '--epochz'.*--help/);
  assert.throws(() => parseFlags(["--epochs", "three"]), {
    message: '--epochs expects a number, received "three"',
  });
});

Deno.test("parseFlags with a saved config keeps it and lets flags change it", () => {
  const saved = resolveConfig("smoke", { epochs: 4 });
  const { config } = parseFlags(["--variants", "custom"], saved);
  assert.equal(config.epochs, 4);
  assert.equal(config.preset, "smoke");
  assert.deepEqual(config.variants, ["custom"]);
});

Deno.test("helpText lists every field and preset", () => {
  const text = helpText("deno task train");
  for (const key of Object.keys(DEFAULTS).filter((k) => k !== "preset")) {
    assert.ok(text.includes(`--${flagName(key)}`), key);
  }
  for (const name of Object.keys(PRESETS)) assert.ok(text.includes(name), name);
  // Choices are listed with the default in brackets.
  assert.match(text, /--loss +xent \| mse .*\[xent\]/);
  assert.match(text, /--bn-gradient +analytic \| autodiff \| constant-statistics .*\[analytic\]/);
  assert.match(text, /--variants +comma-separated, of none, custom, tfjs .*\[none,custom,tfjs\]/);
});
