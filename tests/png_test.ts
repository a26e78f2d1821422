import assert from "node:assert/strict";
import { inflateSync } from "node:zlib";
import { chartBundle, displayChart, svgToPng, writeChart, writePng } from "../lib/output/png.ts";
import { lineChart } from "../lib/output/plot.ts";

/** Decodes an 8-bit RGBA or RGB, non-interlaced PNG (what resvg writes) to its pixels. */
function _decode(
  png: Uint8Array,
): { width: number; height: number; channels: number; pixels: Uint8Array } {
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat: Uint8Array[] = [];
  for (let at = 8; at < png.length;) {
    const length = view.getUint32(at);
    const type = new TextDecoder().decode(png.subarray(at + 4, at + 8));
    const data = png.subarray(at + 8, at + 8 + length);
    if (type === "IHDR") {
      width = view.getUint32(at + 8);
      height = view.getUint32(at + 12);
      assert.equal(data[8], 8, "bit depth 8");
      channels = ({ 6: 4, 2: 3 } as Record<number, number>)[data[9]];
      assert.ok(channels, `colour type ${data[9]} is RGB or RGBA`);
      assert.equal(data[12], 0, "not interlaced");
    }
    if (type === "IDAT") idat.push(data);
    at += 12 + length;
  }
  const raw = new Uint8Array(inflateSync(new Uint8Array(idat.flatMap((chunk) => [...chunk]))));
  const stride = width * channels;
  const pixels = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    for (let x = 0; x < stride; x++) {
      const value = raw[y * (stride + 1) + 1 + x];
      const a = x >= channels ? pixels[y * stride + x - channels] : 0;
      const b = y > 0 ? pixels[(y - 1) * stride + x] : 0;
      const c = x >= channels && y > 0 ? pixels[(y - 1) * stride + x - channels] : 0;
      let predicted = 0;
      if (filter === 1) predicted = a;
      else if (filter === 2) predicted = b;
      else if (filter === 3) predicted = (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c;
        const [pa, pb, pc] = [Math.abs(p - a), Math.abs(p - b), Math.abs(p - c)];
        predicted = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      pixels[y * stride + x] = (value + predicted) & 255;
    }
  }
  return { width, height, channels, pixels };
}

const _SVG = lineChart(
  [1, 2, 3].flatMap((step) =>
    ["none", "bnlab"].map((variant) => ({ step, loss: 2 / step + variant.length, variant }))
  ),
  { x: "step", y: "loss", series: "variant", title: "Loss" },
);

Deno.test("svgToPng draws the chart: PNG signature, the SVG's size times scale, coloured lines and text", async () => {
  const png = await svgToPng(_SVG, { scale: 1.5 });
  assert.deepEqual([...png.subarray(0, 8)], [137, 80, 78, 71, 13, 10, 26, 10]);
  const { width, height, channels, pixels } = _decode(png);
  assert.equal(width, 960);
  assert.equal(height, 600);
  let dark = 0;
  let noneGrey = 0;
  let bnlabBlue = 0;
  for (let i = 0; i < pixels.length; i += channels) {
    const [r, g, b] = [pixels[i], pixels[i + 1], pixels[i + 2]];
    if (r < 60 && g < 60 && b < 60) dark++; // text and axes
    if (Math.abs(r - 0x4d) < 8 && Math.abs(g - 0x4d) < 8 && Math.abs(b - 0x4d) < 8) noneGrey++;
    if (Math.abs(r - 0x1f) < 12 && Math.abs(g - 0x77) < 12 && Math.abs(b - 0xb4) < 12) bnlabBlue++;
  }
  assert.ok(dark > 500, `text and axes are drawn (${dark} dark pixels)`);
  assert.ok(noneGrey > 200, `the series "none" is drawn in its grey (${noneGrey} pixels)`);
  assert.ok(bnlabBlue > 200, `the series "bnlab" is drawn in its blue (${bnlabBlue} pixels)`);
  const white = _decode(
    await svgToPng(_SVG.replace(/<g aria-label="plot"[^]*<\/g>/, ""), { scale: 0.5 }),
  );
  assert.equal(white.width, 320);
});

Deno.test("svgToPng rejects what is not SVG, a bad scale and a missing font with clear messages", async () => {
  await assert.rejects(() => svgToPng("<figure></figure>"), {
    message: 'svgToPng: expected an SVG document, received text starting "<figure></figure>"',
  });
  await assert.rejects(() => svgToPng(_SVG, { scale: 0 }), {
    message: "svgToPng: scale must be a positive number, received 0",
  });
  await assert.rejects(
    () => svgToPng(_SVG, { fontFiles: ["/nonexistent/font.ttf"] }),
    (error: Error) => {
      assert.match(
        error.message,
        /^svgToPng: expected a readable font file at \/nonexistent\/font\.ttf \(Debian's fonts-dejavu-core provides DejaVu; run scripts\/setup\.sh\), received /,
      );
      return true;
    },
  );
});

Deno.test("writePng writes curves.png beside curves.svg; chartBundle and displayChart carry both", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writePng(`${dir}/curves.png`, _SVG);
    const bytes = await Deno.readFile(`${dir}/curves.png`);
    assert.equal(_decode(bytes).width, 1280);
    assert.deepEqual(await writeChart(`${dir}/plots/loss.svg`, _SVG, { scale: 1 }), {
      svg: `${dir}/plots/loss.svg`,
      png: `${dir}/plots/loss.png`,
    });
    assert.equal(await Deno.readTextFile(`${dir}/plots/loss.svg`), _SVG + "\n");
    assert.equal(_decode(await Deno.readFile(`${dir}/plots/loss.png`)).width, 640);
    await assert.rejects(() => writeChart(`${dir}/loss.png`, _SVG), {
      message: `writeChart: expected a path ending in .svg, received ${dir}/loss.png`,
    });
    const bundle = await chartBundle(_SVG, { scale: 1 });
    assert.equal(bundle["image/svg+xml"], _SVG);
    const decoded = Uint8Array.from(atob(bundle["image/png"]), (ch) => ch.charCodeAt(0));
    assert.equal(_decode(decoded).width, 640);
    assert.deepEqual(Object.keys(await displayChart(_SVG, { scale: 1 })), [
      "image/svg+xml",
      "image/png",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
