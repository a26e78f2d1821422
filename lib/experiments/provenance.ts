/**
 * Where a result came from: software versions and the machine, written beside every result.
 *
 * @module
 */
import os from "node:os";
import * as tf from "@tensorflow/tfjs";
import denoConfig from "../../deno.json" with { type: "json" };

/** Versions and machine facts recorded with results. */
export interface Provenance {
  /** bnlab's version from deno.json. */
  bnlab: string;
  /** Deno, V8 and TypeScript versions. */
  deno: string;
  /** V8's version. */
  v8: string;
  /** TypeScript's version. */
  typescript: string;
  /** tfjs-core version. */
  tfjs: string;
  /** Operating system, architecture, logical CPUs, memory and CPU model. */
  os: string;
  /** CPU architecture, e.g. `x86_64`. */
  arch: string;
  /** Logical CPUs. */
  cpus: number;
  /** Total memory in GiB. */
  memoryGiB: number;
  /** CPU model name. */
  cpuModel: string;
  /** Host name, so runs on different machines are told apart. */
  hostname: string;
  /** The git commit checked out when the run started ("unknown" outside a git checkout). */
  gitCommit: string;
}

/**
 * Reads the versions and machine facts of this process.
 *
 * @returns The provenance record.
 *
 * @example
 * ```ts
 * import { provenance } from "./provenance.ts";
 * console.log(provenance().tfjs); // "4.22.0"
 * ```
 */
export function provenance(): Provenance {
  let cpuModel = "unknown";
  try {
    // Deno 2 reads /proc/cpuinfo only with --allow-all; os.cpus() needs --allow-sys.
    cpuModel = os.cpus()[0]?.model ?? cpuModel;
  } catch {
    // No --allow-sys: the model stays unknown.
  }
  let memoryGiB = 0;
  try {
    memoryGiB = Math.round(Deno.systemMemoryInfo().total / 2 ** 30 * 10) / 10;
  } catch {
    // Needs --allow-sys.
  }
  let hostname = "unknown";
  try {
    hostname = Deno.hostname();
  } catch {
    // Needs --allow-sys.
  }
  return {
    bnlab: denoConfig.version,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    typescript: Deno.version.typescript,
    tfjs: tf.version.tfjs,
    os: Deno.build.os,
    arch: Deno.build.arch,
    cpus: navigator.hardwareConcurrency,
    memoryGiB,
    cpuModel,
    hostname,
    gitCommit: gitCommit(),
  };
}

/**
 * The commit of the git checkout this module lives in, read from `.git/` (no git process).
 *
 * @returns A 40-hex commit id, or "unknown".
 *
 * @example
 * ```ts
 * import { gitCommit } from "./provenance.ts";
 * console.log(/^([0-9a-f]{40}|unknown)$/.test(gitCommit())); // true
 * ```
 */
export function gitCommit(): string {
  try {
    const git = new URL("../../.git/", import.meta.url);
    const head = Deno.readTextFileSync(new URL("HEAD", git)).trim();
    if (!head.startsWith("ref: ")) return head;
    const ref = head.slice(5);
    try {
      return Deno.readTextFileSync(new URL(ref, git)).trim();
    } catch {
      const packed = Deno.readTextFileSync(new URL("packed-refs", git));
      return packed.split("\n").find((line) => line.endsWith(` ${ref}`))?.split(" ")[0] ??
        "unknown";
    }
  } catch {
    return "unknown";
  }
}
