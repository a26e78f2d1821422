/**
 * The layering of lib/: only lib/backend.ts and lib/kernels/ itself import lib/kernels/ (the
 * acceleration layer's one door is `installKernels`), every import between lib/ modules is
 * one that the table of docs/architecture.md allows (read from that file, so the document and
 * the test cannot drift), and lib/ has no import cycle. The checker reads the static imports of
 * every .ts file under lib/; its own tests feed it injected graphs, so that it can be seen to
 * fail.
 */
import assert from "node:assert/strict";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const _ROOT = fileURLToPath(new URL("..", import.meta.url));

/** Module → the modules it imports, as paths relative to the repository root. */
type ImportGraph = Map<string, string[]>;

/** The relative specifiers of a module's static imports and re-exports (code, not comments). */
function importSpecifiers(source: string): string[] {
  const found: string[] = [];
  // Block comments that open a line (doc comments, whose examples import too).
  const code = source.replace(/^[ \t]*\/\*[\s\S]*?\*\//gm, "");
  const patterns = [
    /^(?:import|export)\b[^;]*?\bfrom\s*["']([^"']+)["']/gms,
    /^import\s*["']([^"']+)["']/gm,
  ];
  for (const pattern of patterns) {
    for (const match of code.matchAll(pattern)) found.push(match[1]);
  }
  return found.filter((specifier) => specifier.startsWith("."));
}

async function _libGraph(): Promise<ImportGraph> {
  const graph: ImportGraph = new Map();
  const walk = async (dir: string) => {
    for await (const entry of Deno.readDir(dir)) {
      const path = join(dir, entry.name);
      if (entry.isDirectory) await walk(path);
      else if (entry.name.endsWith(".ts")) {
        const source = await Deno.readTextFile(path);
        graph.set(
          relative(_ROOT, path),
          importSpecifiers(source).map((s) => relative(_ROOT, resolve(dirname(path), s))),
        );
      }
    }
  };
  await walk(join(_ROOT, "lib"));
  return graph;
}

/** The modules allowed to import lib/kernels/. */
const _KERNEL_IMPORTERS = (module: string) =>
  module === "lib/backend.ts" || module.startsWith("lib/kernels/");

/** "a imports b" for each import of lib/kernels/ from a module not allowed to. */
function kernelImportViolations(graph: ImportGraph): string[] {
  const violations: string[] = [];
  for (const [module, imports] of graph) {
    if (_KERNEL_IMPORTERS(module)) continue;
    for (const target of imports) {
      if (target.startsWith("lib/kernels/")) violations.push(`${module} imports ${target}`);
    }
  }
  return violations;
}

/** The import cycles among the graph's modules, each as "a → b → … → a" (a DFS). */
function importCycles(graph: ImportGraph): string[] {
  const cycles: string[] = [];
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (module: string) => {
    state.set(module, "open");
    stack.push(module);
    for (const target of graph.get(module) ?? []) {
      if (!graph.has(target)) continue;
      const seen = state.get(target);
      if (seen === "open") {
        cycles.push([...stack.slice(stack.indexOf(target)), target].join(" → "));
      } else if (seen === undefined) visit(target);
    }
    stack.pop();
    state.set(module, "done");
  };
  for (const module of [...graph.keys()].sort()) if (!state.has(module)) visit(module);
  return cycles;
}

Deno.test("only lib/backend.ts and lib/kernels/ import lib/kernels/", async () => {
  const graph = await _libGraph();
  assert.ok(graph.has("lib/kernels/mod.ts") && graph.has("lib/backend.ts"));
  assert.deepEqual(kernelImportViolations(graph), []);
});

Deno.test("lib/ has no import cycle", async () => {
  assert.deepEqual(importCycles(await _libGraph()), []);
});

Deno.test("the checker finds an injected import of lib/kernels/ and an injected cycle", () => {
  const graph: ImportGraph = new Map([
    ["lib/backend.ts", ["lib/kernels/mod.ts"]],
    ["lib/kernels/mod.ts", ["lib/kernels/blas.ts"]],
    ["lib/kernels/blas.ts", []],
    ["lib/norms/batch_norm.ts", ["lib/kernels/blas.ts", "lib/norms/batch_norm_ops.ts"]],
    ["lib/norms/batch_norm_ops.ts", ["lib/norms/batch_norm.ts"]],
  ]);
  assert.deepEqual(kernelImportViolations(graph), [
    "lib/norms/batch_norm.ts imports lib/kernels/blas.ts",
  ]);
  assert.deepEqual(importCycles(graph), [
    "lib/norms/batch_norm.ts → lib/norms/batch_norm_ops.ts → lib/norms/batch_norm.ts",
  ]);
});

/** A module's row in the layer table: its directory (`lib/norms/`) or its file (`lib/env.ts`). */
function layerOf(module: string): string {
  const parts = module.split("/");
  return parts.length > 2 ? `${parts[0]}/${parts[1]}/` : module;
}

/** The table "Which module may import which" of docs/architecture.md: row → allowed rows. */
function layerTable(markdown: string): Map<string, string[]> {
  const section = markdown.split(/^## /m).find((s) => s.startsWith("Which module may import"));
  if (!section) {
    throw new Error(
      'layerTable: expected a section "## Which module may import which" in docs/architecture.md',
    );
  }
  const table = new Map<string, string[]>();
  for (const line of section.split("\n")) {
    const cells = line.split("|").map((c) => c.trim());
    const row = /^`([^`]+)`$/.exec(cells[1] ?? "");
    if (!row) continue;
    table.set(row[1], [...(cells[2] ?? "").matchAll(/`([^`]+)`/g)].map((m) => m[1]));
  }
  return table;
}

/** "a imports b" for each import between lib/ modules the table does not allow. */
function layerViolations(graph: ImportGraph, table: Map<string, string[]>): string[] {
  const violations: string[] = [];
  for (const [module, imports] of [...graph].sort(([a], [b]) => a.localeCompare(b))) {
    const from = layerOf(module);
    const allowed = table.get(from);
    if (allowed === undefined) {
      violations.push(`${module} is in no row of the table in docs/architecture.md`);
      continue;
    }
    for (const target of imports) {
      if (!target.startsWith("lib/")) continue;
      const to = layerOf(target);
      if (to !== from && !allowed.includes(to)) {
        violations.push(
          `${module} imports ${target} (${from} may import ${allowed.join(", ") || "nothing"})`,
        );
      }
    }
  }
  return violations;
}

async function _architectureTable(): Promise<Map<string, string[]>> {
  return layerTable(await Deno.readTextFile(join(_ROOT, "docs/architecture.md")));
}

Deno.test("every import between lib/ modules is allowed by docs/architecture.md's table", async () => {
  const table = await _architectureTable();
  assert.ok(table.get("lib/models/")?.includes("lib/norms/"));
  assert.deepEqual(layerViolations(await _libGraph(), table), []);
});

Deno.test("the layer checker finds an import the table forbids and a module it lacks", async () => {
  const table = await _architectureTable();
  const graph: ImportGraph = new Map([
    ["lib/norms/batch_norm.ts", ["lib/norms/batch_norm_ops.ts", "lib/named_kernels.ts"]],
    ["lib/data/mnist.ts", ["lib/experiments/config.ts"]],
    ["lib/output/plot.ts", ["lib/train/loop.ts"]],
    ["lib/new_layer.ts", []],
  ]);
  assert.deepEqual(layerViolations(graph, table), [
    "lib/data/mnist.ts imports lib/experiments/config.ts (lib/data/ may import nothing)",
    "lib/new_layer.ts is in no row of the table in docs/architecture.md",
    "lib/output/plot.ts imports lib/train/loop.ts (lib/output/ may import nothing)",
  ]);
  assert.throws(
    () => layerTable("# Architecture\n"),
    /expected a section "## Which module may import which"/,
  );
});

Deno.test("the checker reads imports and re-exports, not those in doc comments", () => {
  const source = [
    '/** @example\n * import { x } from "./doc.ts";\nimport { y } from "./unprefixed.ts";\n */',
    'import * as tf from "@tensorflow/tfjs";',
    'import {\n  a,\n  b,\n} from "./a.ts";',
    'import type { T } from "../t.ts";',
    'export { c } from "./c.ts";',
    'import "./side_effect.ts";',
  ].join("\n");
  assert.deepEqual(importSpecifiers(source), ["./a.ts", "../t.ts", "./c.ts", "./side_effect.ts"]);
});
