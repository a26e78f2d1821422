import assert from "node:assert/strict";
import { IDX_MAGIC_IMAGES, IDX_MAGIC_LABELS, parseIdx, readIdx } from "../lib/data/idx.ts";
import { readImageLabelPair } from "../lib/data/mnist.ts";

/** Builds an IDX file: magic (ubyte dtype), big-endian dims, then the data bytes. */
function idxBytes(magic: number, dims: number[], data: number[] | Uint8Array): Uint8Array {
  const header = new Uint8Array(4 + 4 * dims.length);
  const view = new DataView(header.buffer);
  view.setUint32(0, magic, false);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  const out = new Uint8Array(header.length + data.length);
  out.set(header);
  out.set(data, header.length);
  return out;
}

async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as BlobPart]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

const dir = await Deno.makeTempDir({ prefix: "bnlab-idx-" });
async function write(name: string, bytes: Uint8Array): Promise<string> {
  const path = `${dir}/${name}`;
  await Deno.writeFile(path, bytes);
  return path;
}

Deno.test("readIdx reads a raw and a gzipped image file identically", async () => {
  const pixels = Array.from({ length: 2 * 3 * 2 }, (_, i) => i * 10);
  const bytes = idxBytes(IDX_MAGIC_IMAGES, [2, 3, 2], pixels);
  for (const path of [await write("ok.idx", bytes), await write("ok.idx.gz", await gzip(bytes))]) {
    const idx = await readIdx(path, { rank: 3 });
    assert.deepEqual(idx.dims, [2, 3, 2]);
    assert.deepEqual(Array.from(idx.data), pixels);
  }
});

Deno.test("readIdx rejects bad files naming the path and the mismatch", async () => {
  const good = idxBytes(IDX_MAGIC_LABELS, [3], [1, 2, 3]);
  const cases: [string, Uint8Array, RegExp][] = [
    ["empty.idx", new Uint8Array(0), /empty\.idx is empty; expected at least a 4-byte magic/],
    ["short.idx", good.subarray(0, 2), /short\.idx is truncated: 2 bytes/],
    [
      "header.idx",
      good.subarray(0, 6),
      /header\.idx is truncated: 6 bytes, shorter than its 8-byte header/,
    ],
    ["truncated.idx", good.subarray(0, 10), /truncated\.idx is truncated: 10 bytes, expected 11/],
    [
      "trailing.idx",
      idxBytes(IDX_MAGIC_LABELS, [3], [1, 2, 3, 4]),
      /trailing\.idx is too long \(trailing bytes\): 12 bytes, expected 11/,
    ],
    [
      "magic.idx",
      idxBytes(0x00000c01, [3], [1, 2, 3]),
      /magic\.idx has magic number 0x00000c01; expected 0x000008RR/,
    ],
    [
      "zero.idx",
      idxBytes(IDX_MAGIC_IMAGES, [0, 28, 28], []),
      /zero\.idx has dimension 0 of size 0/,
    ],
  ];
  for (const [name, bytes, message] of cases) {
    const path = await write(name, bytes);
    await assert.rejects(() => readIdx(path), (error: Error) => {
      assert.match(error.message, message);
      assert.ok(error.message.includes(path), `${error.message} names ${path}`);
      return true;
    });
  }
  const rank = await write("rank.idx", good);
  await assert.rejects(() => readIdx(rank, { rank: 3 }), /rank\.idx has rank 1; expected 3/);
  await assert.rejects(() => readIdx(`${dir}/missing.idx`), /cannot read IDX file .*missing\.idx/);
  const gz = await write("truncated.gz", (await gzip(good)).subarray(0, 12));
  await assert.rejects(() => readIdx(gz), /truncated\.gz is not valid gzip/);
});

Deno.test("parseIdx never returns partial data", () => {
  const bytes = idxBytes(IDX_MAGIC_IMAGES, [2, 2, 2], [1, 2, 3, 4, 5, 6, 7]);
  assert.throws(() => parseIdx(bytes, "mem"), /mem is truncated: 23 bytes, expected 24/);
});

Deno.test("readImageLabelPair rejects an image/label count mismatch", async () => {
  const images = await write("pair-images.idx", idxBytes(IDX_MAGIC_IMAGES, [2, 1, 1], [0, 255]));
  const labels = await write("pair-labels.idx", idxBytes(IDX_MAGIC_LABELS, [3], [0, 1, 2]));
  await assert.rejects(
    () => readImageLabelPair({ images, labels }, { name: "toy", split: "test" }),
    /image\/label count mismatch: .*pair-images\.idx has 2 images but .*pair-labels\.idx has 3 labels/,
  );
  const labels2 = await write("pair-labels2.idx", idxBytes(IDX_MAGIC_LABELS, [2], [0, 1]));
  const data = await readImageLabelPair({ images, labels: labels2 }, {
    name: "toy",
    split: "test",
  });
  assert.deepEqual(Array.from(data.images), [0, 1]);
});

Deno.test("readImageLabelPair refuses a label beyond the class count, naming file, index and value", async () => {
  // The class count was once inferred from the largest label, so label 12 made 13 classes.
  const images = await write("bad-images.idx", idxBytes(IDX_MAGIC_IMAGES, [3, 1, 1], [0, 9, 255]));
  const labels = await write("bad-labels.idx", idxBytes(IDX_MAGIC_LABELS, [3], [0, 12, 1]));
  await assert.rejects(
    () => readImageLabelPair({ images, labels }, { name: "toy", split: "test" }),
    { message: `${labels}: label 1 is 12; expected a class index in [0, 9] (10 classes)` },
  );
  const three = await readImageLabelPair(
    { images, labels: await write("ok-labels.idx", idxBytes(IDX_MAGIC_LABELS, [3], [0, 2, 1])) },
    { name: "toy", split: "test", numClasses: 3 },
  );
  assert.equal(three.numClasses, 3);
  const ten = await readImageLabelPair(
    { images, labels: await write("ok-labels10.idx", idxBytes(IDX_MAGIC_LABELS, [3], [0, 2, 1])) },
    { name: "toy", split: "test" },
  );
  assert.equal(ten.numClasses, 10);
});
