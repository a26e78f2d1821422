/**
 * A small seeded pseudo-random generator, so data order is the same on every machine.
 *
 * @module
 */

/**
 * Creates mulberry32, a 32-bit generator returning floats in [0, 1).
 *
 * @param seed Any integer; equal seeds give equal sequences.
 * @returns The generator.
 *
 * @example
 * ```ts
 * import { createRng } from "./random.ts";
 * const a = createRng(1), b = createRng(1);
 * console.log(a() === b()); // true
 * ```
 */
export function createRng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A seeded Fisher–Yates permutation of 0…n−1.
 *
 * @param n Length.
 * @param seed Seed of the shuffle.
 * @returns The permutation.
 *
 * @example
 * ```ts
 * import { shuffledIndices } from "./random.ts";
 * console.log(shuffledIndices(5, 0).length); // 5
 * ```
 */
export function shuffledIndices(n: number, seed: number): Uint32Array {
  const indices = new Uint32Array(n);
  for (let i = 0; i < n; i++) indices[i] = i;
  const random = createRng(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const t = indices[i];
    indices[i] = indices[j];
    indices[j] = t;
  }
  return indices;
}
