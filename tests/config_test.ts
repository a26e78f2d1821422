import assert from "node:assert/strict";
import {
  DEFAULTS,
  kerasMomentum,
  PRESETS,
  resolveConfig,
  upgradeConfig,
} from "../lib/experiments/config.ts";
import { flagName, helpText, parseFlags, resumeFlag } from "../lib/experiments/flags.ts";

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
  assert.deepEqual(config.variants, ["none", "bnlab", "tfjs"]);
  // Sigmoid reproduces the report's no-BN plateau at ln 10 (see docs/findings.md, "What is true").
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
      "config: preset must be one of smoke, quick, report, report-b512, modern, small-batch, learning-rate, unbiased-variance, " +
      'figure1, resnet, report-normalized, report-example-optimizer, received "huge"',
  });
  assert.throws(
    () => resolveConfig("smoke", { epoch: 2 } as never),
    /config: unknown key "epoch" in overrides; allowed keys: preset, model, dataset/,
  );
  assert.throws(() => resolveConfig("smoke", { lr: -1 }), {
    message: "config: lr must be a positive finite number, received -1",
  });
  assert.throws(() => resolveConfig("smoke", { momentum: 1.5 }), {
    message: "config: momentum must be a number in [0, 1] or null, received 1.5",
  });
  assert.throws(() => resolveConfig("smoke", { variants: ["none", "bn"] as never }), {
    message:
      'config: variants must be one of none, bnlab, tfjs, group, layer, renorm, ghost, received "bn"',
  });
  assert.throws(() => resolveConfig("smoke", { batchSize: 2.5 }), {
    message: "config: batchSize must be an integer in [1, 1000000], received 2.5",
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
  assert.deepEqual(config.variants, ["bnlab"]); // the old name is an alias
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
  assert.match(
    text,
    /--variants +comma-separated, of none, bnlab, tfjs, group, layer, renorm, ghost .*\[none,bnlab,tfjs\]/,
  );
  assert.match(text, /--momentum .*none = cumulative average/);
  assert.match(text, /--executor local\|slurm/);
});

Deno.test("every new field's flag parses, and every bad value is rejected with its message", () => {
  const flags = (...args: string[]) => parseFlags(["--preset", "smoke", ...args]).config;
  const c = flags(
    "--model=mlp",
    "--hidden",
    "64,32",
    "--momentum",
    "none",
    "--running-variance",
    "unbiased",
    "--optimizer",
    "sgd",
    "--sgd-momentum",
    "0.9",
    "--nesterov",
    "--weight-decay",
    "5e-4",
    "--lr-schedule",
    "cosine",
    "--warmup-epochs",
    "1",
    "--last-batch",
    "drop",
    "--normalize-input",
    "0.1307,0.3081",
    "--dataset",
    "idx:/data/x",
    "--groups",
    "4",
  );
  assert.deepEqual(
    [c.model, c.hidden, c.momentum, c.runningVariance, c.sgdMomentum, c.nesterov, c.weightDecay],
    ["mlp", [64, 32], null, "unbiased", 0.9, true, 5e-4],
  );
  assert.deepEqual([c.lrSchedule, c.warmupEpochs, c.lastBatch, c.normalizeInput, c.dataset], [
    "cosine",
    1,
    "drop",
    "0.1307,0.3081",
    "idx:/data/x",
  ]);
  assert.equal(c.groups, 4);
  const cases: [string[], string][] = [
    [["--epochs", "1e308"], "--epochs must be an integer in [1, 100000], received 1e+308"],
    [["--batch-size", "0"], "--batch-size must be an integer in [1, 1000000], received 0"],
    [["--seed=-1"], "--seed must be an integer in [0, 2147483647], received -1"],
    [["--model", "vgg"], '--model must be one of lenet, resnet20, mlp, received "vgg"'],
    [["--hidden", "100,0"], "--hidden must be an integer in [1, 1000000], received 0"],
    [["--hidden", "a"], '--hidden expects a number, received "a"'],
    [["--momentum", "x"], '--momentum expects a number or "none", received "x"'],
    [["--momentum", "2"], '--momentum must be a number in [0, 1] or "none", received 2'],
    [
      ["--running-variance", "sample"],
      '--running-variance must be one of biased, unbiased, received "sample"',
    ],
    [["--sgd-momentum", "1"], "--sgd-momentum must be a number in [0, 1), received 1"],
    [
      ["--nesterov"],
      "--nesterov needs --sgd-momentum > 0 with --optimizer sgd, received --sgd-momentum 0",
    ],
    [["--weight-decay=-1"], "--weight-decay must be a number in [0, 1], received -1"],
    [
      ["--lr-schedule", "linear"],
      '--lr-schedule must be one of constant, step, cosine, received "linear"',
    ],
    [["--lr-step-gamma", "0"], "--lr-step-gamma must be a number in (0, 1], received 0"],
    [["--lr-step-every", "0"], "--lr-step-every must be an integer in [1, 100000], received 0"],
    [["--warmup-epochs", "3"], "--warmup-epochs must be at most --epochs (1), received 3"],
    [
      ["--last-batch", "pad"],
      '--last-batch must be one of merge, drop, keep, received "pad"',
    ],
    [["--optimizer", "rmsprop"], '--optimizer must be one of sgd, adam, received "rmsprop"'],
    [
      ["--dataset", "cifar"],
      '--dataset must be mnist, fashion-mnist or idx:<dir>, received "cifar"',
    ],
    [
      ["--normalize-input", "0.1,0"],
      '--normalize-input must be none, auto, "mean,std" or "m1,…,mC,s1,…,sC" with every ' +
      'std > 0, received "0.1,0"',
    ],
    [["--epsilon", "0"], "--epsilon must be a positive finite number, received 0"],
    [["--renorm-r-max", "0.5"], "--renorm-r-max must be a finite number >= 1, received 0.5"],
    [["--renorm-d-max=-1"], "--renorm-d-max must be a finite number >= 0, received -1"],
    [["--groups", "0"], "--groups must be an integer in [1, 100000], received 0"],
    [
      ["--variants", "ghost"],
      "variant ghost needs --virtual-batch-size, received none",
    ],
    [
      ["--variants", "ghost", "--virtual-batch-size", "3"],
      "--virtual-batch-size must divide --batch-size 20, received 3",
    ],
    [["--tfjs-momentum", "1.5"], "--tfjs-momentum must be a number in [0, 1], received 1.5"],
    [["--workers", "0"], "--workers must be an integer in [1, 1024], received 0"],
    [["--workers", "1e9"], "--workers must be an integer in [1, 1024], received 1e9"],
    [["--executor", "pbs"], '--executor must be local or slurm, received "pbs"'],
  ];
  for (const [args, message] of cases) {
    assert.throws(() => flags(...args), { message }, args.join(" "));
  }
});

Deno.test("a negative number is a flag's value; a flag without its value names what it takes", () => {
  const flags = (...args: string[]) => parseFlags(["--preset", "smoke", ...args]);
  assert.equal(flags("--seed", "3", "--lr", "0.5").config.lr, 0.5);
  // A value that starts with dashes but is no flag of ours: sbatch's own options.
  assert.equal(flags("--slurm-extra", "--mem=4G").slurm.extra, "--mem=4G");
  assert.equal(flags("--out", "-").out, "-");
  const cases: [string[], string | RegExp][] = [
    [["--lr", "-1"], "--lr must be a positive finite number, received -1"],
    [["--lr", "-.5"], "--lr must be a positive finite number, received -0.5"],
    [["--lr", "-Infinity"], "--lr must be a positive finite number, received -Infinity"],
    [["--workers", "-1"], "--workers must be an integer in [1, 1024], received -1"],
    // A value the user typed stays as typed, even where it names a field.
    [["--loss", "lr"], '--loss must be one of xent, mse, received "lr"'],
    [["--weight-decay", "-1"], "--weight-decay must be a number in [0, 1], received -1"],
    [["--lr"], /^--lr expects a value: learning rate.*, received nothing\. Run with --help/],
    [
      ["--out", "--quiet"],
      /^--out expects a value, received the flag --quiet \(write --out=--quiet for a value that starts with dashes\)\. Run with --help/,
    ],
    // A field's name inside a listed value (a preset's name) stays as it is.
    [["--preset", "nope"], /report-example-optimizer, received "nope"$/],
    [
      ["--variants", "bnlab,,group"],
      '--variants expects comma-separated values, none empty, received "bnlab,,group"',
    ],
  ];
  for (const [args, message] of cases) {
    assert.throws(() => flags(...args), { message }, args.join(" "));
  }
  const presets = Object.keys(PRESETS).join(", ");
  assert.throws(() => parseFlags(["--preset", "--epochs", "2"]), {
    message: `--preset expects a preset name (${presets}), received the flag --epochs (write ` +
      "--preset=--epochs for a value that starts with dashes). Run with --help to list the flags.",
  });
  // A field the flags did not set keeps the config's own terms.
  assert.throws(
    () => parseFlags(["--epochs", "2"], { ...resolveConfig("smoke"), batchSize: 0 }),
    { message: "config: batchSize must be an integer in [1, 1000000], received 0" },
  );
  // The help writes an absent value as the flags take it.
  assert.match(
    helpText("deno task train"),
    /--limit +training images used, the first N \(none: all\) \[none\]/,
  );
});

Deno.test("--resume=DIR and --resume DIR are both read; a missing value is an error", () => {
  assert.equal(resumeFlag(["--resume=results/x", "--quiet"]), "results/x");
  assert.equal(resumeFlag(["--quiet", "--resume", "results/y"]), "results/y");
  assert.equal(resumeFlag(["--quiet"]), undefined);
  assert.throws(() => resumeFlag(["--resume"]), {
    message: "--resume expects a results directory, e.g. --resume results/x",
  });
  assert.equal(parseFlags(["--resume=results/x"]).resume, "results/x");
});

Deno.test("upgradeConfig reads old configs: custom, optimizer momentum, missing fields", () => {
  const old = {
    preset: "report",
    dataset: "mnist",
    variants: ["none", "custom", "tfjs"],
    optimizer: "momentum",
    epochs: 20,
  };
  const config = upgradeConfig(old);
  assert.deepEqual(config.variants, ["none", "bnlab", "tfjs"]);
  assert.deepEqual([config.optimizer, config.sgdMomentum], ["sgd", 0.9]);
  // A final partial batch was kept as a smaller batch before lastBatch existed.
  assert.equal(config.lastBatch, "keep");
  assert.equal(DEFAULTS.lastBatch, "merge");
  assert.equal(config.model, "lenet");
  assert.throws(() => upgradeConfig({ ...old, colour: 1 }), /unknown key "colour" in saved config/);
});

Deno.test("renormWarmupSteps is validated", () => {
  assert.throws(() => resolveConfig("smoke", { renormWarmupSteps: 0.5 }), {
    message: "config: renormWarmupSteps must be an integer in [0, 1000000000], received 0.5",
  });
});
