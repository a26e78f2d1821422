import assert from "node:assert/strict";
import { DOMParser } from "linkedom";
import { dotChart, histogramChart, lineChart, sweepChart, writeSvg } from "../lib/output/plot.ts";

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
