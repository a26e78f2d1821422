/**
 * Several charts side by side in one SVG document, each drawn by the chart functions of
 * `plot.ts` and placed as a nested `<svg>` (which browsers and the PNG renderer both read).
 *
 * @module
 */

/** Options of {@linkcode sideBySide}. */
export interface SideBySideOptions {
  /** Title drawn above the panels (and stored as the SVG's `<title>`). @default {none} */
  title?: string;
}

/**
 * Places chart SVGs side by side, left to right, in one SVG whose width is the sum of theirs
 * and whose height is the tallest one's (plus the title's).
 *
 * @param panels Standalone SVG documents, as the chart functions return them.
 * @param options The title.
 * @returns The combined SVG document.
 * @throws {Error} When there is no panel, or a panel is not an SVG document with a width and height.
 *
 * @example
 * ```ts
 * import { sideBySide } from "./panels.ts";
 * import { lineChart } from "./plot.ts";
 * const chart = lineChart([{ x: 0, y: 1 }, { x: 1, y: 2 }], { x: "x", y: "y", width: 300 });
 * const svg = sideBySide([chart, chart], { title: "Two panels" });
 * console.log(svg.match(/width="(\d+)"/)?.[1]); // 600
 * ```
 */
export function sideBySide(panels: readonly string[], options: SideBySideOptions = {}): string {
  if (panels.length === 0) throw new Error("sideBySide: expected at least one panel, received 0");
  const sizes = panels.map((svg, i) => {
    const head = svg.match(/^<svg [^>]*>/)?.[0] ?? "";
    const width = Number(head.match(/ width="(\d+(?:\.\d+)?)"/)?.[1]);
    const height = Number(head.match(/ height="(\d+(?:\.\d+)?)"/)?.[1]);
    if (!(width > 0 && height > 0)) {
      throw new Error(
        `sideBySide: panel ${i} must be an SVG document with a width and a height, received ${
          JSON.stringify(svg.slice(0, 60))
        }`,
      );
    }
    return { width, height };
  });
  const titleHeight = options.title ? 28 : 0;
  const full = sizes.reduce((sum, s) => sum + s.width, 0);
  const total = Math.max(...sizes.map((s) => s.height)) + titleHeight;
  const title = options.title
    ? `<title>${_escape(options.title)}</title><text aria-label="title" x="${full / 2}" y="19" ` +
      `text-anchor="middle" font-size="15" font-weight="bold">${_escape(options.title)}</text>`
    : "";
  let x = 0;
  const nested = panels.map((svg, i) => {
    const placed = svg.replace(/^<svg /, `<svg x="${x}" y="${titleHeight}" `);
    x += sizes[i].width;
    return placed;
  }).join("");
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${full}" height="${total}" ` +
    `viewBox="0 0 ${full} ${total}" font-family="DejaVu Sans, sans-serif">` +
    `<rect width="100%" height="100%" fill="white"/>${title}${nested}</svg>`;
}

function _escape(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}
