/**
 * `deno task docs [--check]`: renders `docs/findings.md` and `docs/performance.md` from the
 * committed results (CSV and JSON files only). With `--check` it writes nothing and fails
 * when a committed document differs from what it renders.
 *
 * @module
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { FINDINGS } from "./docs/findings.ts";
import { fileContext, type GeneratedDoc, renderDoc } from "./docs/markdown.ts";
import { PERFORMANCE } from "./docs/performance.ts";

/** The generated documents. */
export const DOCS: readonly GeneratedDoc[] = [FINDINGS, PERFORMANCE];

/** The repository root. */
export const ROOT: string = fileURLToPath(new URL("..", import.meta.url));

/**
 * Renders every generated document from the files under `root`.
 *
 * @param root The repository root.
 * @returns Path (relative to `root`) → Markdown.
 *
 * @example
 * ```ts
 * import { renderDocs, ROOT } from "./docs.ts";
 * const docs = await renderDocs(ROOT);
 * console.log([...docs.keys()]); // [ "docs/findings.md", "docs/performance.md" ]
 * ```
 */
export async function renderDocs(root: string): Promise<Map<string, string>> {
  const context = fileContext(root);
  const out = new Map<string, string>();
  for (const doc of DOCS) out.set(doc.path, await renderDoc(doc, context));
  return out;
}

/**
 * The documents under `root` that differ from what {@linkcode renderDocs} renders, each with
 * its first differing line.
 *
 * @param root The repository root.
 * @returns One message per stale document; empty when all are current.
 *
 * @example
 * ```ts
 * import { staleDocs } from "./docs.ts";
 * const root = await Deno.makeTempDir();
 * console.log(await staleDocs(root)); // [ "docs/findings.md is missing", "docs/performance.md is missing" ]
 * ```
 */
export async function staleDocs(root: string): Promise<string[]> {
  const messages: string[] = [];
  for (const [path, text] of await renderDocs(root)) {
    let committed: string;
    try {
      committed = await Deno.readTextFile(join(root, path));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        messages.push(`${path} is missing`);
        continue;
      }
      throw error;
    }
    if (committed === text) continue;
    const a = committed.split("\n");
    const b = text.split("\n");
    const line = a.findIndex((l, i) => l !== b[i]);
    const at = line === -1 ? Math.min(a.length, b.length) : line;
    messages.push(
      `${path} differs from what deno task docs renders at line ${at + 1}: expected ` +
        `${JSON.stringify(b[at] ?? "(end of file)")}, received ${
          JSON.stringify(a[at] ?? "(end of file)")
        }`,
    );
  }
  return messages;
}

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { check: { type: "boolean" }, help: { type: "boolean", short: "h" } },
    strict: true,
  });
  if (values.help) {
    console.log(
      "Usage: deno task docs [--check]\n\nRenders docs/findings.md and docs/performance.md " +
        "from the committed results.\n--check writes nothing and fails when a document is stale.",
    );
    return 0;
  }
  if (values.check) {
    const stale = await staleDocs(ROOT);
    for (const message of stale) console.error(message);
    if (stale.length) console.error("Run `deno task docs` and commit the documents.");
    return stale.length ? 1 : 0;
  }
  await Deno.mkdir(join(ROOT, "docs"), { recursive: true });
  for (const [path, text] of await renderDocs(ROOT)) {
    await Deno.writeTextFile(join(ROOT, path), text);
    console.log(`Written: ${path}`);
  }
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (error) {
    console.error(`bnlab docs: ${(error as Error).message}`);
    Deno.exit(2);
  }
}
