/**
 * PNG renditions of the SVG charts, rasterized by resvg (`@resvg/resvg-wasm`), and a notebook
 * display bundle that carries both: viewers that drop inline SVG (nbconvert's HTML export among
 * them) show the PNG.
 *
 * resvg in WebAssembly cannot read the system's fonts by itself; the text is drawn with the
 * DejaVu fonts of Debian's `fonts-dejavu-core` (`/usr/share/fonts/truetype/dejavu/`), or with
 * the font files the caller names.
 *
 * @module
 */
import { initWasm, Resvg } from "@resvg/resvg-wasm";
import { fileURLToPath } from "node:url";
import { writeFileAtomic } from "./atomic.ts";
import { writeSvg } from "./plot.ts";

/** Where Debian's `fonts-dejavu-core` installs its fonts. */
export const DEJAVU_FONT_DIR = "/usr/share/fonts/truetype/dejavu";

/** Options of {@linkcode svgToPng}. */
export interface SvgToPngOptions {
  /**
   * Pixels per SVG unit: 2 draws a 640-unit-wide chart 1280 pixels wide, sharp on high-density
   * screens.
   * @default {2}
   */
  scale?: number;
  /**
   * Font files (TrueType or OpenType) to draw the text with; the first one's family stands
   * in for `sans-serif` and `system-ui`.
   * @default {DejaVuSans.ttf and DejaVuSans-Bold.ttf from {@linkcode DEJAVU_FONT_DIR}}
   */
  fontFiles?: readonly string[];
}

/** A Jupyter display bundle with both renditions of a chart. */
export interface ChartBundle {
  /** The SVG document. */
  "image/svg+xml": string;
  /** The PNG, base64-encoded as Jupyter expects. */
  "image/png": string;
}

let _ready: Promise<void> | undefined;
const _fonts = new Map<string, Uint8Array>();

/**
 * Rasterizes an SVG document to PNG bytes.
 *
 * @param svg The SVG, as the chart functions of `plot.ts` return it.
 * @param options Scale and fonts.
 * @returns The PNG file's bytes.
 * @throws If `svg` is not an SVG document, `scale` is not a positive number, or a font file
 * cannot be read (the message names the file and the Debian package that provides it).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { svgToPng } from "./png.ts";
 *
 * const png = await svgToPng(
 *   '<svg xmlns="http://www.w3.org/2000/svg" width="20" height="10"><rect width="5" height="5"/></svg>',
 *   { scale: 1 },
 * );
 * assert.deepEqual([...png.slice(1, 4)], [80, 78, 71]); // "PNG"
 * ```
 */
export async function svgToPng(svg: string, options: SvgToPngOptions = {}): Promise<Uint8Array> {
  if (!/^\s*(?:<\?xml[^>]*\?>\s*)?<svg[\s>]/.test(svg)) {
    throw new Error(
      `svgToPng: expected an SVG document, received text starting ${
        JSON.stringify(svg.slice(0, 40))
      }`,
    );
  }
  const scale = options.scale ?? 2;
  if (!Number.isFinite(scale) || scale <= 0) {
    throw new Error(`svgToPng: scale must be a positive number, received ${scale}`);
  }
  const files = options.fontFiles ??
    [`${DEJAVU_FONT_DIR}/DejaVuSans.ttf`, `${DEJAVU_FONT_DIR}/DejaVuSans-Bold.ttf`];
  const fontBuffers = await Promise.all(files.map(_font));
  await _init();
  const resvg = new Resvg(svg, {
    fitTo: { mode: "zoom", value: scale },
    font: {
      fontBuffers,
      defaultFontFamily: "DejaVu Sans",
      sansSerifFamily: "DejaVu Sans",
    },
  });
  try {
    const image = resvg.render();
    try {
      return image.asPng();
    } finally {
      image.free();
    }
  } finally {
    resvg.free();
  }
}

/**
 * Writes a chart's PNG rendition to a file atomically; e.g. `curves.png` beside `curves.svg`.
 *
 * @param path File to write, usually ending in `.png`; parent directories are created.
 * @param svg The SVG, as the chart functions return it.
 * @param options Scale and fonts, as for {@linkcode svgToPng}.
 * @throws As {@linkcode svgToPng} does, or if the write fails.
 *
 * @example
 * ```ts
 * import { writePng } from "./png.ts";
 * import { lineChart } from "./plot.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await writePng(`${dir}/loss.png`, lineChart([{ step: 0, loss: 1 }], { x: "step", y: "loss" }));
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writePng(
  path: string,
  svg: string,
  options: SvgToPngOptions = {},
): Promise<void> {
  await writeFileAtomic(path, await svgToPng(svg, options));
}

/**
 * Writes a chart as SVG and, beside it, as PNG: `curves.svg` and `curves.png`.
 *
 * @param svgPath File of the SVG, ending in `.svg`; the PNG takes the same name with `.png`.
 * @param svg The SVG, as the chart functions return it.
 * @param options Scale and fonts of the PNG, as for {@linkcode svgToPng}.
 * @returns The paths written.
 * @throws If `svgPath` does not end in `.svg`, or as {@linkcode svgToPng} and `writeSvg` do.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { writeChart } from "./png.ts";
 * import { lineChart } from "./plot.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const paths = await writeChart(`${dir}/curves.svg`, lineChart([{ step: 0, loss: 1 }], { x: "step", y: "loss" }));
 * assert.equal(paths.png, `${dir}/curves.png`);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeChart(
  svgPath: string,
  svg: string,
  options: SvgToPngOptions = {},
): Promise<{ svg: string; png: string }> {
  if (!svgPath.endsWith(".svg")) {
    throw new Error(`writeChart: expected a path ending in .svg, received ${svgPath}`);
  }
  const pngPath = `${svgPath.slice(0, -4)}.png`;
  const png = await svgToPng(svg, options);
  await writeSvg(svgPath, svg);
  await writeFileAtomic(pngPath, png);
  return { svg: svgPath, png: pngPath };
}

/**
 * A Jupyter display bundle with the SVG and its PNG rendition, for
 * `Deno.jupyter.display(bundle, { raw: true })`: the notebook shows the SVG, and exports that
 * drop inline SVG (nbconvert's HTML) keep the PNG.
 *
 * @param svg The SVG, as the chart functions return it.
 * @param options Scale and fonts of the PNG, as for {@linkcode svgToPng}.
 * @returns The bundle, keyed by MIME type.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { chartBundle } from "./png.ts";
 * import { lineChart } from "./plot.ts";
 *
 * const bundle = await chartBundle(lineChart([{ step: 0, loss: 1 }], { x: "step", y: "loss" }));
 * assert.ok(bundle["image/png"].startsWith("iVBORw0KGgo")); // base64 of the PNG signature
 * ```
 */
export async function chartBundle(
  svg: string,
  options: SvgToPngOptions = {},
): Promise<ChartBundle> {
  return { "image/svg+xml": svg, "image/png": _base64(await svgToPng(svg, options)) };
}

/**
 * Shows a chart in a Jupyter notebook (Deno kernel) as SVG with its PNG rendition; outside a
 * kernel it does nothing.
 *
 * @param svg The SVG, as the chart functions return it.
 * @param options Scale and fonts of the PNG, as for {@linkcode svgToPng}.
 * @returns The bundle it displayed (also outside a kernel).
 *
 * @example
 * ```ts
 * import { displayChart } from "./png.ts";
 * import { lineChart } from "./plot.ts";
 *
 * await displayChart(lineChart([{ step: 0, loss: 1 }], { x: "step", y: "loss" }));
 * ```
 */
export async function displayChart(
  svg: string,
  options: SvgToPngOptions = {},
): Promise<ChartBundle> {
  const bundle = await chartBundle(svg, options);
  let jupyter: { display(obj: unknown, options?: { raw?: boolean }): Promise<void> } | undefined;
  try {
    jupyter = (Deno as unknown as { jupyter?: typeof jupyter }).jupyter;
  } catch {
    // Outside `deno jupyter`, reading Deno.jupyter throws.
  }
  if (jupyter) await jupyter.display(bundle, { raw: true });
  return bundle;
}

async function _font(path: string): Promise<Uint8Array> {
  const cached = _fonts.get(path);
  if (cached) return cached;
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (error) {
    throw new Error(
      `svgToPng: expected a readable font file at ${path} (Debian's fonts-dejavu-core ` +
        `provides DejaVu; run scripts/setup.sh), received ${(error as Error).message}`,
    );
  }
  _fonts.set(path, bytes);
  return bytes;
}

function _init(): Promise<void> {
  // The binary lies beside the package's entry point, wherever the package is installed.
  _ready ??= Deno.readFile(
    fileURLToPath(new URL("index_bg.wasm", import.meta.resolve("@resvg/resvg-wasm"))),
  ).then((bytes) => initWasm(bytes));
  return _ready;
}

function _base64(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}
