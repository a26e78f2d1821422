/**
 * A reader for the IDX format of the MNIST files (Yann LeCun's), raw or gzipped.
 *
 * An IDX file is a 4-byte magic number — two zero bytes, a dtype code, the rank — then one
 * big-endian uint32 per dimension, then the data in row-major order. Only unsigned bytes
 * (dtype 0x08) are supported: the type of every MNIST-style file.
 *
 * @module
 */

/** Dtype code of unsigned bytes, the third byte of the magic number. */
export const IDX_DTYPE_UBYTE = 0x08;
/** Magic number of a label file: ubyte, rank 1. */
export const IDX_MAGIC_LABELS = 0x00000801;
/** Magic number of an image file: ubyte, rank 3. */
export const IDX_MAGIC_IMAGES = 0x00000803;
/** Bytes of the magic number. */
export const IDX_MAGIC_BYTES = 4;
/** Bytes of each dimension in the header. */
export const IDX_DIM_BYTES = 4;
/** The first two bytes of a gzip stream. */
const _GZIP_MAGIC = [0x1f, 0x8b] as const;

/** A parsed IDX file. */
export interface IdxArray {
  /** Dimensions, e.g. [60000, 28, 28]. */
  dims: number[];
  /** The values, row-major, length = product of dims. */
  data: Uint8Array;
}

/** Options of {@linkcode parseIdx}. */
export interface ParseIdxOptions {
  /** Expected rank; a different rank is an error. */
  rank?: number;
}

/**
 * Parses the bytes of an (uncompressed) IDX file, validating magic, dtype, rank, dimensions
 * and the exact byte count.
 *
 * @param bytes The file contents.
 * @param source The path shown in error messages.
 * @param options The expected rank.
 * @returns Dimensions and data (a view of `bytes`).
 *
 * @example
 * ```ts
 * import { parseIdx } from "./idx.ts";
 * const bytes = new Uint8Array([0, 0, 8, 1, 0, 0, 0, 2, 7, 3]);
 * console.log(parseIdx(bytes, "labels").dims); // [ 2 ]
 * ```
 */
export function parseIdx(
  bytes: Uint8Array,
  source: string,
  options: ParseIdxOptions = {},
): IdxArray {
  if (bytes.byteLength === 0) {
    throw new Error(
      `IDX file ${source} is empty; expected at least a ${IDX_MAGIC_BYTES}-byte magic number`,
    );
  }
  if (bytes.byteLength < IDX_MAGIC_BYTES) {
    throw new Error(
      `IDX file ${source} is truncated: ${bytes.byteLength} bytes, shorter than its ${IDX_MAGIC_BYTES}-byte magic number`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, false);
  const dtype = bytes[2];
  const rank = bytes[3];
  if (bytes[0] !== 0 || bytes[1] !== 0 || dtype !== IDX_DTYPE_UBYTE) {
    throw new Error(
      `IDX file ${source} has magic number 0x${magic.toString(16).padStart(8, "0")}; expected ` +
        `0x0000${
          IDX_DTYPE_UBYTE.toString(16).padStart(2, "0")
        }RR (unsigned bytes, rank RR), e.g. ` +
        `0x${IDX_MAGIC_IMAGES.toString(16).padStart(8, "0")} for images`,
    );
  }
  if (rank === 0 || (options.rank !== undefined && rank !== options.rank)) {
    throw new Error(
      `IDX file ${source} has rank ${rank}; expected ${options.rank ?? "at least 1"}`,
    );
  }
  const headerBytes = IDX_MAGIC_BYTES + IDX_DIM_BYTES * rank;
  if (bytes.byteLength < headerBytes) {
    throw new Error(
      `IDX file ${source} is truncated: ${bytes.byteLength} bytes, shorter than its ${headerBytes}-byte header`,
    );
  }
  const dims: number[] = [];
  for (let i = 0; i < rank; i++) {
    const dim = view.getUint32(IDX_MAGIC_BYTES + IDX_DIM_BYTES * i, false);
    if (dim === 0) throw new Error(`IDX file ${source} has dimension ${i} of size 0; expected > 0`);
    dims.push(dim);
  }
  const expected = headerBytes + dims.reduce((a, b) => a * b, 1);
  if (bytes.byteLength !== expected) {
    const what = bytes.byteLength < expected ? "truncated" : "too long (trailing bytes)";
    throw new Error(
      `IDX file ${source} is ${what}: ${bytes.byteLength} bytes, expected ${expected} ` +
        `(${headerBytes}-byte header + ${dims.join("×")} values)`,
    );
  }
  return { dims, data: bytes.subarray(headerBytes) };
}

/**
 * Reads an IDX file, raw or gzip-compressed (detected by its first two bytes).
 *
 * @param path File path or URL.
 * @param options The expected rank.
 * @returns Dimensions and data.
 *
 * @example
 * ```ts
 * import { readIdx } from "./idx.ts";
 * const path = await Deno.makeTempFile();
 * await Deno.writeFile(path, new Uint8Array([0, 0, 8, 1, 0, 0, 0, 1, 9]));
 * console.log((await readIdx(path)).data); // Uint8Array(1) [ 9 ]
 * ```
 */
export async function readIdx(
  path: string | URL,
  options: ParseIdxOptions = {},
): Promise<IdxArray> {
  const source = path instanceof URL ? path.pathname : path;
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (error) {
    throw new Error(`cannot read IDX file ${source}: ${(error as Error).message}`);
  }
  if (bytes[0] === _GZIP_MAGIC[0] && bytes[1] === _GZIP_MAGIC[1]) {
    try {
      const stream = new Blob([bytes as BlobPart]).stream().pipeThrough(
        new DecompressionStream("gzip"),
      );
      bytes = new Uint8Array(await new Response(stream).arrayBuffer());
    } catch (error) {
      throw new Error(`IDX file ${source} is not valid gzip: ${(error as Error).message}`);
    }
  }
  return parseIdx(bytes, source, options);
}
