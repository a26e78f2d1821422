/**
 * Builds bnlab's native helper kernels (`lib/kernels/native/bnlab_kernels.c` and
 * `thread_pool.c`, one library) for this machine with the system's C compiler (`CC`, else
 * `cc`); `scripts/setup.sh` runs it.
 *
 * ```sh
 * deno task build-native [--force]
 * ```
 *
 * @module
 */
import { buildNativeKernels } from "../lib/kernels/native_library.ts";

if (import.meta.main) {
  const unknown = Deno.args.filter((arg) => arg !== "--force");
  if (unknown.length > 0) {
    console.error(`build-native: expected no arguments or --force, received ${unknown.join(" ")}`);
    Deno.exit(2);
  }
  const { path, built } = await buildNativeKernels({ force: Deno.args.includes("--force") });
  console.log(built ? `build-native: built ${path}` : `build-native: up to date (${path})`);
}
