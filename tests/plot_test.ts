import assert from "node:assert/strict";
import { DOMParser } from "linkedom";
import {
  accuracyChart,
  dotChart,
  histogramChart,
  historyAccuracyChart,
  historyLossChart,
  lineChart,
  lossChart,
  sweepChart,
  sweepFieldsChart,
  writeSvg,
} from "../lib/output/plot.ts";
import { VARIANT_COLORS } from "../lib/output/plot_style.ts";

/** The few DOM calls the tests use (Deno's types have no DOM; linkedom provides one). */
interface _Node {
  readonly tagName: string;
  readonly textContent: string | null;
  getAttribute(name: string): string | null;
  querySelector(selector: string): _Node | null;
  querySelectorAll(selector: string): ArrayLike<_Node>;
}

function _parse(svg: string): _Node {
  const document = new DOMParser().parseFromString(svg, "image/svg+xml") as unknown as {
    documentElement: _Node;
  };
  const root = document.documentElement;
  assert.equal(root.tagName.toLowerCase(), "svg");
  assert.equal(root.getAttribute("xmlns"), "http://www.w3.org/2000/svg");
  return root;
}

function _count(root: _Node, selector: string): number {
  return root.querySelectorAll(selector).length;
}

function _text(root: _Node, selector: string): string {
  return root.querySelector(selector)?.textContent ?? "";
}

// Later series start at earlier steps, so the legend's order must come from the rows, not from x.
const _CURVES = ["none", "custom", "tfjs"].flatMap((variant, v) =>
  [3, 0, 1, 2].map((step) => ({ step: step + 2 - v, train_loss: 2.3 / (step + 1 + v), variant }))
);

Deno.test("lineChart draws one path per series, a legend, a title and axis labels", () => {
  const root = _parse(lineChart(_CURVES, {
    x: "step",
    y: "train_loss",
    series: "variant",
    title: "Loss <per> step & variant",
    xLabel: "step",
    yLabel: "training loss",
  }));
  assert.equal(_count(root, 'g[aria-label="line"] path'), 3);
  assert.deepEqual(
    Array.from(
      root.querySelectorAll('g[aria-label="legend item"] text'),
      (node) => node.textContent,
    ),
    ["none", "custom", "tfjs"],
  );
  assert.equal(_text(root, "title"), "Loss <per> step & variant");
  assert.equal(_text(root, 'text[aria-label="title"]'), "Loss <per> step & variant");
  assert.match(_text(root, 'g[aria-label="x-axis label"]'), /step/);
  assert.match(_text(root, 'g[aria-label="y-axis label"]'), /training loss/);
  assert.equal(root.getAttribute("width"), "640");
  assert.equal(root.getAttribute("height"), "400");
});

Deno.test("lineChart sorts points by x, so a line never runs backwards", () => {
  const root = _parse(lineChart(_CURVES.filter((row) => row.variant === "none"), {
    x: "step",
    y: "train_loss",
  }));
  const d = root.querySelector('g[aria-label="line"] path')?.getAttribute("d") ?? "";
  const xs = [...d.matchAll(/[ML]([\d.]+),/g)].map((match) => Number(match[1]));
  assert.equal(xs.length, 4);
  assert.deepEqual(xs, [...xs].sort((a, b) => a - b));
  assert.equal(_count(root, 'g[aria-label="legend"]'), 0, "one unnamed series needs no legend");
});

Deno.test("lineChart leaves a gap for null, NaN and infinite losses, and supports log axes", () => {
  const rows = [
    { step: 1, loss: 1 },
    { step: 2, loss: null },
    { step: 3, loss: Infinity },
    { step: 4, loss: 0.5 },
  ];
  assert.equal(
    _count(_parse(lineChart(rows, { x: "step", y: "loss" })), 'g[aria-label="line"] path'),
    1,
  );
  const log = _parse(lineChart(rows, { x: "step", y: "loss", logX: true, logY: true }));
  assert.equal(_count(log, 'g[aria-label="line"] path'), 1);
  assert.throws(() => lineChart([{ step: 0, loss: 1 }], { x: "step", y: "loss", logX: true }), {
    message: 'lineChart: a log axis needs positive values, received 0 in column "step", row 0; ' +
      "filter such rows out or use a linear axis",
  });
});

Deno.test("charts reject empty or malformed input with clear messages", () => {
  assert.throws(() => lineChart([], { x: "step", y: "loss" }), {
    message: "lineChart: nothing to plot; received no rows",
  });
  assert.throws(() => lineChart([{ step: 1, loss: 2 }], { x: "step", y: "los" }), {
    message: 'lineChart: row 0 has no column "los" (the y column); its columns are step, loss',
  });
  assert.throws(() => dotChart([{ m: "0.9", acc: 1 }], { x: "m", y: "acc" }), {
    message: 'dotChart: column "m" must hold numbers, received "0.9" in row 0',
  });
  assert.throws(() => sweepChart([{ m: 1, acc: NaN }], { x: "m", y: "acc" }), {
    message: 'sweepChart: nothing to plot; no row has finite numbers in both "m" and "acc"',
  });
  assert.throws(() => histogramChart({}), {
    message: "histogramChart: nothing to plot; received no series (an empty object)",
  });
  assert.throws(() => histogramChart({ a: [], b: [NaN] }), {
    message: "histogramChart: nothing to plot; series a, b hold no finite values",
  });
  assert.throws(() => histogramChart({ a: [1] }, { bins: 0 }), {
    message: "histogramChart: bins must be a positive integer, received 0",
  });
  assert.throws(() => lineChart([{ x: 1, y: 1 }], { x: "x", y: "y", width: 10 }), {
    message: "lineChart: width must be a number of pixels ≥ 100, received 10",
  });
});

Deno.test("sweepChart draws every dot, a mean line per series and panel, and facet panels", () => {
  const rows = [];
  for (const optimizer of ["sgd", "adam"]) {
    for (const variant of ["custom", "tfjs"]) {
      for (const momentum of [0.5, 0.9, 0.99]) {
        for (const seed of [0, 1]) {
          rows.push({ optimizer, variant, momentum, seed, acc: 0.9 + seed / 100 });
        }
      }
    }
  }
  const root = _parse(sweepChart(rows, {
    x: "momentum",
    y: "acc",
    series: "variant",
    facet: "optimizer",
    title: "Accuracy vs momentum",
  }));
  assert.equal(_count(root, 'g[aria-label="dot"] circle'), 24);
  assert.equal(_count(root, 'g[aria-label="line"] path'), 4); // 2 variants × 2 panels
  assert.equal(_count(root, 'g[aria-label="legend item"]'), 2);
  assert.match(_text(root, 'g[aria-label="fx-axis tick label"]'), /sgd|adam/);
  const dots = _parse(dotChart(rows, { x: "momentum", y: "acc", series: "variant" }));
  // custom and tfjs coincide here: tfjs's dots take another symbol.
  assert.equal(_count(dots, 'g[aria-label="dot"] circle'), 12);
  assert.equal(_count(dots, 'g[aria-label="dot"] path'), 12);
  assert.equal(_count(dots, 'g[aria-label="line"]'), 0);
});

Deno.test("histogramChart overlays series on shared bins; normalize makes each series sum to 1", () => {
  const values = { "with BN": new Float32Array([0, 0, 1, 1, 1, 2]), "without BN": [5, 6, NaN] };
  const root = _parse(histogramChart(values, { bins: 10, title: "Activations" }));
  assert.equal(_count(root, 'g[aria-label="legend item"]'), 2);
  assert.ok(_count(root, 'g[aria-label="rect"] rect') >= 4);
  assert.match(_text(root, 'g[aria-label="y-axis label"]'), /count/);
  // Bars are drawn from zero (not stacked): with normalize, the tallest bars of both series
  // (1/2 of "with BN" at 1, and each half of "without BN") share one height.
  const normalized = _parse(histogramChart(values, { bins: 10, normalize: true }));
  const heights = Array.from(
    normalized.querySelectorAll('g[aria-label="rect"] rect'),
    (rect) => Number(rect.getAttribute("height")),
  );
  const tallest = Math.max(...heights);
  assert.equal(heights.filter((h) => Math.abs(h - tallest) < 1e-6).length, 3);
  assert.match(_text(normalized, 'g[aria-label="y-axis label"]'), /share of values/);
});

Deno.test("writeSvg writes a file a browser opens, and refuses what is not SVG", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const svg = lineChart(_CURVES, { x: "step", y: "train_loss", series: "variant" });
    await writeSvg(`${dir}/plots/curves.svg`, svg);
    const text = await Deno.readTextFile(`${dir}/plots/curves.svg`);
    assert.equal(text, svg + "\n");
    _parse(text);
    await assert.rejects(() => writeSvg(`${dir}/x.svg`, "<figure></figure>"), {
      message:
        `writeSvg: expected an SVG document for ${dir}/x.svg, received text starting "<figure></figure>"`,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** The colour of a legend entry's swatch (its stroke, or its fill when it has no stroke). */
function _swatchColor(item: _Node): string {
  const swatch = item.querySelector("line, circle, rect");
  assert.ok(swatch, "every legend entry has a swatch");
  const stroke = swatch.getAttribute("stroke");
  return stroke && stroke !== "none" ? stroke : swatch.getAttribute("fill") ?? "";
}

/** Asserts every legend entry's colour is a real colour that a mark of the plot is drawn in. */
function _assertVisibleLegend(svg: string, names: string[]): void {
  const root = _parse(svg);
  const items = Array.from(root.querySelectorAll('g[aria-label="legend item"]'));
  assert.deepEqual(items.map((item) => item.querySelector("text")?.textContent), names);
  const plot = root.querySelector('g[aria-label="plot"]')!;
  const colors = items.map(_swatchColor);
  for (const [i, color] of colors.entries()) {
    assert.match(color, /^#[0-9a-f]{6}$/, `legend entry ${names[i]} has colour ${color}`);
    assert.notEqual(color, "#ffffff");
    const marks = Array.from(
      plot.querySelectorAll(`[stroke="${color}"], [fill="${color}"]`),
    ).filter((mark) =>
      /^(path|circle|rect|line)$/i.test(mark.tagName) ||
      mark.querySelectorAll("path, circle, rect, line").length > 0
    );
    assert.ok(marks.length > 0, `a mark of the plot is drawn in ${names[i]}'s colour ${color}`);
  }
  assert.equal(new Set(colors).size, colors.length, "each series has its own colour");
  // Lines have fill="none"; a stroke of "none" would hide one.
  for (
    const selector of [
      '[stroke="none"]',
      '[stroke="red"], [fill="red"]',
      '[stroke="blue"], [fill="blue"]',
    ]
  ) {
    assert.equal(
      plot.querySelectorAll(selector).length,
      0,
      `no mark is drawn in a CSS colour named by a series (${selector})`,
    );
  }
}

Deno.test("series named none, red and blue are drawn in the scale's colours, in every chart", () => {
  const names = ["none", "red", "blue"];
  const rows = names.flatMap((series, s) =>
    [1, 2, 3].flatMap((x) =>
      [0, 1].map((seed) => ({ x, y: 0.5 + s / 10 + x / 100 + seed / 1000, series, seed }))
    )
  );
  _assertVisibleLegend(
    lineChart(rows.filter((r) => r.seed === 0), { x: "x", y: "y", series: "series" }),
    names,
  );
  _assertVisibleLegend(dotChart(rows, { x: "x", y: "y", series: "series" }), names);
  _assertVisibleLegend(sweepChart(rows, { x: "x", y: "y", series: "series" }), names);
  _assertVisibleLegend(
    lossChart(rows.filter((r) => r.seed === 0), { x: "x", y: "y", series: "series" }),
    names,
  );
  _assertVisibleLegend(
    histogramChart({ none: [1, 2, 2], red: [3, 4], blue: [5, 5, 6] }, { bins: 6 }),
    names,
  );
  _assertVisibleLegend(
    accuracyChart(Object.fromEntries(names.map((name, i) => [
      name,
      [0, 1].map((epoch) => ({ epoch, test: { accuracy: 0.9 + i / 100 + epoch / 1000 } })),
    ]))),
    names,
  );
});

Deno.test("a variant has the same colour in every chart, whatever the other series", () => {
  const a = _parse(lineChart(
    ["tfjs", "bnlab"].map((variant) => ({ step: 1, loss: variant.length, variant })),
    { x: "step", y: "loss", series: "variant" },
  ));
  const b = _parse(lineChart(
    ["x", "bnlab (seed 3)", "none"].map((variant, i) => ({ step: 1, loss: i, variant })),
    { x: "step", y: "loss", series: "variant" },
  ));
  const colorOf = (root: _Node, index: number) =>
    _swatchColor(root.querySelectorAll('g[aria-label="legend item"]')[index]);
  assert.equal(colorOf(a, 1), VARIANT_COLORS.bnlab);
  assert.equal(colorOf(b, 1), VARIANT_COLORS.bnlab);
  assert.equal(colorOf(a, 0), VARIANT_COLORS.tfjs);
  assert.equal(colorOf(b, 2), VARIANT_COLORS.none);
  assert.equal(VARIANT_COLORS.custom, VARIANT_COLORS.bnlab);
  assert.equal(new Set(Object.values(VARIANT_COLORS)).size, Object.keys(VARIANT_COLORS).length - 1);
});

Deno.test("identical series are drawn with distinct dashes and a caption says they overlap", () => {
  const rows = ["none", "bnlab", "tfjs"].flatMap((variant) =>
    [1, 2, 3].map((step) => ({
      step,
      loss: variant === "none" ? 3 / step : 2 / step,
      variant,
    }))
  );
  const root = _parse(
    lineChart(rows, { x: "step", y: "loss", series: "variant", yLabel: "training loss" }),
  );
  const captions = Array.from(
    root.querySelectorAll('text[aria-label="caption"]'),
    (n) => n.textContent,
  );
  assert.deepEqual(captions, ["bnlab and tfjs overlap: identical training loss"]);
  const dashes = Array.from(
    root.querySelectorAll('g[aria-label="legend item"] line'),
    (line) => line.getAttribute("stroke-dasharray") ?? "",
  );
  assert.equal(dashes[1], "");
  assert.notEqual(dashes[2], "", "the later of two identical series is dashed");
  assert.ok(_count(root, `g[aria-label="plot"] [stroke-dasharray="${dashes[2]}"]`) > 0);
  // One differing value is no overlap.
  const apart = rows.map((row) =>
    row.variant === "tfjs" && row.step === 3 ? { ...row, loss: 0.1 } : row
  );
  assert.equal(
    _count(
      _parse(lineChart(apart, { x: "step", y: "loss", series: "variant" })),
      'text[aria-label="caption"]',
    ),
    0,
  );
  // Values within half a percent of the y extent overlap; the caption gives the difference.
  const close = rows.map((row) =>
    row.variant === "tfjs" && row.step === 3 ? { ...row, loss: row.loss + 0.0061 } : row
  );
  assert.equal(
    _text(
      _parse(lineChart(close, { x: "step", y: "loss", series: "variant" })),
      'text[aria-label="caption"]',
    ),
    "bnlab and tfjs overlap: loss identical to within 0.0061",
  );
  assert.equal(
    _count(
      _parse(lineChart(close, { x: "step", y: "loss", series: "variant", overlapTolerance: 0 })),
      'text[aria-label="caption"]',
    ),
    0,
  );
  assert.throws(
    () => lineChart(close, { x: "step", y: "loss", series: "variant", overlapTolerance: -1 }),
    { message: "lineChart: overlapTolerance must be a fraction ≥ 0 of the y extent, received -1" },
  );
  // Sweeps compare the means at each x.
  const sweep = _parse(sweepChart(rows, { x: "step", y: "loss", series: "variant" }));
  assert.match(
    _text(sweep, 'text[aria-label="caption"]'),
    /^bnlab and tfjs overlap: identical loss$/,
  );
});

Deno.test("lossChart draws epochs, a faint raw and a smoothed line per series, and chance at ln 10", () => {
  const rows = ["bnlab", "none"].flatMap((variant) =>
    Array.from({ length: 200 }, (_, i) => ({
      step: i + 1,
      loss: 2.3 / (1 + i / 20) + (i % 2) / 10 + (variant === "none" ? 0.2 : 0),
      variant,
    }))
  );
  const root = _parse(lossChart(rows, {
    x: "step",
    y: "loss",
    series: "variant",
    stepsPerEpoch: 100,
    logY: true,
    title: "LeNet on MNIST, batch 64, lr 0.01, relu, 2 epochs",
  }));
  assert.equal(_count(root, 'g[aria-label="line"] path'), 4);
  const faint = root.querySelectorAll('g[aria-label="line"][stroke-opacity="0.2"]');
  assert.equal(faint.length, 2);
  assert.match(_text(root, 'g[aria-label="x-axis label"]'), /epoch/);
  const ticks = Array.from(
    root.querySelectorAll('g[aria-label="x-axis tick label"] text'),
    (n) => Number(n.textContent),
  );
  assert.ok(Math.max(...ticks) <= 2 && Math.max(...ticks) >= 1.5, `x ticks in epochs: ${ticks}`);
  assert.match(_text(root, 'g[aria-label="text"]'), /^chance: ln 10 ≈ 2\.303$/);
  assert.equal(_count(root, 'g[aria-label="rule"]'), 1);
  // The smoothed line is the debiased EMA: its first point is the first value.
  const noChance = _parse(lossChart(rows.slice(0, 3), { x: "step", y: "loss", classes: 0 }));
  assert.equal(_count(noChance, 'g[aria-label="rule"]'), 0);
  assert.equal(_count(noChance, 'g[aria-label="line"] path'), 1, "3 points need no smoothing");
  assert.throws(() => lossChart(rows, { x: "step", y: "loss", smoothing: 1 }), {
    message: "lossChart: smoothing must be in [0, 1), received 1",
  });
  assert.throws(() => lossChart(rows, { x: "step", y: "loss", stepsPerEpoch: 0 }), {
    message: "lossChart: stepsPerEpoch must be a positive number, received 0",
  });
  assert.throws(() => lossChart(rows, { x: "step", y: "loss", classes: 1 }), {
    message: "lossChart: classes must be 0 or an integer ≥ 2, received 1",
  });
});

Deno.test("historyLossChart reads steps per epoch from the rows; one curve per variant and seed", () => {
  const history = [0, 1].flatMap((seed) =>
    [1, 2].flatMap((epoch) => [
      {
        variant: "tfjs",
        seed,
        epoch,
        step: epoch * 50 - 25,
        train_loss: 2 / epoch + seed,
        test_accuracy: null,
      },
      {
        variant: "tfjs",
        seed,
        epoch,
        step: epoch * 50,
        train_loss: 1.5 / epoch,
        test_accuracy: 0.9 + epoch / 100 + seed / 200,
      },
    ])
  );
  const root = _parse(historyLossChart(history, { title: "t" }));
  assert.deepEqual(
    Array.from(root.querySelectorAll('g[aria-label="legend item"] text'), (n) => n.textContent),
    ["tfjs (seed 0)", "tfjs (seed 1)"],
  );
  const ticks = Array.from(
    root.querySelectorAll('g[aria-label="x-axis tick label"] text'),
    (n) => Number(n.textContent),
  );
  assert.ok(Math.max(...ticks) <= 1.5, `x in epochs (last point at step 75 = epoch 1.5): ${ticks}`);
  const accuracy = _parse(historyAccuracyChart(history));
  assert.equal(_count(accuracy, 'g[aria-label="rule"] line'), 2, "error bars over the two seeds");
  assert.match(
    _text(accuracy, 'text[aria-label="caption"]'),
    /^y axis starts at 90%, not 0; bars: mean ± one standard deviation over seeds$/,
  );
});

Deno.test("accuracyChart states where its y axis starts and rejects what it cannot draw", () => {
  const records = {
    bnlab: [{ epoch: 0, test: { accuracy: 0.981 } }, { epoch: 1, test: { accuracy: 0.987 } }],
    none: [{ epoch: 0, test: { accuracy: 0.975 } }, { epoch: 1 }],
  };
  const root = _parse(accuracyChart(records, { yFrom: 0.9, title: "Test accuracy per epoch" }));
  assert.equal(_text(root, 'text[aria-label="caption"]'), "y axis starts at 90%, not 0");
  assert.equal(
    _count(root, 'g[aria-label="dot"] circle'),
    3,
    "the record without a test is left out",
  );
  const ticks = Array.from(
    root.querySelectorAll('g[aria-label="y-axis tick label"] text'),
    (n) => Number(n.textContent),
  );
  assert.equal(Math.min(...ticks), 90);
  const zero = _parse(accuracyChart(records, { yFrom: 0 }));
  assert.equal(_count(zero, 'text[aria-label="caption"]'), 0);
  assert.throws(() => accuracyChart({ a: [{ epoch: 0 }] }), {
    message: "accuracyChart: nothing to plot; no record of a has a finite test accuracy",
  });
  assert.throws(() => accuracyChart(records, { yFrom: 90 }), {
    message: "accuracyChart: yFrom must be a fraction in [0, 1), received 90",
  });
});

Deno.test("sweepChart draws error bars and marks diverged runs; sweepFieldsChart groups fields", () => {
  const rows = [0.01, 0.1, 1].flatMap((lr) =>
    [32, 64].flatMap((batch) =>
      [0, 1].map((seed) => ({
        lr,
        batch,
        seed,
        acc: lr === 1 && batch === 32 ? null : 0.9 + seed / 100 + batch / 1e4,
        diverged: lr === 1 && batch === 32,
      }))
    )
  );
  const root = _parse(sweepFieldsChart(rows, {
    fields: ["lr", "batch"],
    y: "acc",
    logX: true,
    diverged: "diverged",
    title: "Accuracy vs learning rate",
  }));
  assert.deepEqual(
    Array.from(root.querySelectorAll('g[aria-label="legend item"] text'), (n) => n.textContent),
    ["batch=32", "batch=64"],
  );
  assert.equal(_count(root, 'g[aria-label="dot"] circle'), 10, "one dot per finished run");
  assert.equal(_count(root, 'g[aria-label="rule"] line'), 5, "an error bar per series and x");
  const crosses = root.querySelectorAll('g[aria-label="dot"][stroke-width="2.5"] path');
  assert.equal(crosses.length, 2, "a × per diverged run");
  const captions = Array.from(
    root.querySelectorAll('text[aria-label="caption"]'),
    (n) => n.textContent,
  );
  assert.ok(captions.includes("× at the top: 2 runs diverged (no result)"), String(captions));
  assert.match(_text(root, 'g[aria-label="x-axis tick label"]'), /^0\.01/);
  assert.throws(() => sweepFieldsChart(rows, { fields: [], y: "acc" }), {
    message: "sweepFieldsChart: fields must name at least one column, received []",
  });
  assert.throws(() => sweepFieldsChart(rows, { fields: ["momentum"], y: "acc" }), {
    message:
      'sweepFieldsChart: row 0 has no field "momentum"; its columns are lr, batch, seed, acc, diverged',
  });
});
