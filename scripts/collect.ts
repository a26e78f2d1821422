/**
 * `deno task collect DIR`: rebuilds an experiment's outputs (summary.csv, table.csv,
 * history.csv, curves.svg; or sweep.csv, sweep_table.csv, sweep.svg) from whatever trials of
 * its plan finished, and says how many did.
 *
 * @module
 */
import { collect } from "../lib/experiments/collect.ts";

if (import.meta.main) {
  const [dir, ...rest] = Deno.args;
  if (!dir || rest.length || dir.startsWith("-")) {
    console.error("Usage: deno task collect DIR");
    Deno.exit(2);
  }
  try {
    const { kind, finished, total } = await collect(dir);
    console.log(`bnlab collect: ${kind} ${dir}: ${finished} of ${total} trials finished`);
  } catch (error) {
    console.error(`bnlab collect: ${(error as Error).message}`);
    Deno.exit(2);
  }
}
