/**
 * bnlab: batch normalization on TensorFlow.js, in Deno.
 *
 * @module
 */
export * from "./lib/backend.ts";
