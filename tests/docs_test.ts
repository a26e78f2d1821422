import assert from "node:assert/strict";
import { join } from "node:path";
import { renderDocs, ROOT, staleDocs } from "../scripts/docs.ts";
import { FINDINGS_SECTIONS, studySection } from "../scripts/docs/findings.ts";
import { fileContext, GENERATED_NOTICE, renderDoc } from "../scripts/docs/markdown.ts";
import { SOURCES } from "../scripts/docs/sources.ts";

/**
 * The numbers in README prose. A number is allowed only inside code (fenced blocks and
 * `inline code`), inside a link target, as part of a name (attached to a word by letters or a
 * hyphen: ResNet-20, SHA-256, float64, Fashion-MNIST), as a version right after a product
 * name (Deno 2.9.6, tfjs 4.22), or as the number of a figure or table of a cited paper
 * (Figure 1). Measured figures belong in the generated docs.
 */
function proseNumbers(markdown: string): string[] {
  const found: string[] = [];
  const text = markdown
    .replace(/^```[\s\S]*?^```/gm, "")
    .replace(/`[^`\n]*`/g, "")
    .replace(/\]\([^)]*\)/g, "]")
    .replace(/<!--[\s\S]*?-->/g, "")
    .replace(/^\|[\s|:-]+\|$/gm, "");
  const version =
    /\b(?:Deno|tfjs|TensorFlow\.js|OpenBLAS|PyTorch|Python|Debian|Node) v?\d+(?:\.\d+)+\b/g;
  text.split("\n").forEach((line, index) => {
    const rest = line.replace(version, "").replace(/\b(?:Figure|Table) \d+\b/g, "");
    for (const match of rest.matchAll(/(?<![\p{L}\d_-])\d[\d,.]*(?:[%×x]|\b)(?![\p{L}_-])/gu)) {
      found.push(`line ${index + 1}: ${match[0]}`);
    }
  });
  return found;
}

/** Words of a development log, out of place in product text. */
const HISTORY_WORDS =
  /\b(stop \d+|this stop|the issue|this issue|now faster|previously|helper|wave \d+)\b/i;

Deno.test("the committed docs equal what deno task docs renders", async () => {
  assert.deepEqual(await staleDocs(ROOT), []);
});

Deno.test("staleDocs names a missing document and the first line that differs", async () => {
  const root = await Deno.makeTempDir();
  assert.deepEqual(await staleDocs(root), [
    "docs/findings.md is missing",
    "docs/performance.md is missing",
  ]);
  await Deno.mkdir(join(root, "docs"));
  for (const [path, text] of await renderDocs(root)) {
    await Deno.writeTextFile(join(root, path), text);
  }
  assert.deepEqual(await staleDocs(root), []);
  const findings = join(root, "docs/findings.md");
  const lines = (await Deno.readTextFile(findings)).split("\n");
  lines[2] = "# Findings, edited by hand";
  await Deno.writeTextFile(findings, lines.join("\n"));
  assert.deepEqual(await staleDocs(root), [
    'docs/findings.md differs from what deno task docs renders at line 3: expected "# Findings", ' +
    'received "# Findings, edited by hand"',
  ]);
});

Deno.test("a section whose results directory is absent says it is not yet run", async () => {
  const root = await Deno.makeTempDir();
  const text = await renderDoc({
    path: "docs/x.md",
    title: "X",
    intro: () => Promise.resolve(""),
    sections: FINDINGS_SECTIONS,
  }, fileContext(root));
  assert.ok(text.startsWith(`${GENERATED_NOTICE}\n\n# X\n\n## Our runs next to the report`));
  for (const section of FINDINGS_SECTIONS) {
    assert.ok(
      text.includes(
        `## ${section.title}\n\nNot yet run: \`${section.source}\` is not in the repository.`,
      ),
      section.title,
    );
  }
});

Deno.test("studySection renders mean ± std and n from table.csv or sweep_table.csv", async () => {
  const root = await Deno.makeTempDir();
  await Deno.mkdir(join(root, "results/s"), { recursive: true });
  await Deno.writeTextFile(
    join(root, "results/s/sweep_table.csv"),
    "trial,batch_size,variant,n,test_accuracy_mean,test_accuracy_std,train_loss_mean,train_loss_std\n" +
      "b2,2,custom,3,0.5,0.25,1.5,NaN\n",
  );
  const body = await studySection({
    title: "S",
    source: "results/s",
    claims: ["smallBatch"],
  }).render(fileContext(root));
  assert.ok(body.startsWith("> batch normalization依赖于batch的大小"), body);
  assert.ok(
    body.includes("| b2 | 2 | bnlab | 3 | 50.00% ± 25.00 | 1.5000 |"),
    body,
  );
});

Deno.test("findings and the README cite the report by its title and source", async () => {
  const findings = await Deno.readTextFile(join(ROOT, "docs/findings.md"));
  const readme = await Deno.readTextFile(join(ROOT, "README.md"));
  // Markdown joins the lines of a paragraph, so a title may be wrapped.
  for (const text of [findings, readme].map((t) => t.replace(/\s+/g, " "))) {
    assert.ok(text.includes(`«${SOURCES.report.title}»`));
    assert.ok(text.includes("github.com/junjunjun-study/pytorch BN"));
  }
});

Deno.test("README prose holds no number but names and versions", async () => {
  const readme = await Deno.readTextFile(join(ROOT, "README.md"));
  assert.deepEqual(proseNumbers(readme), []);
  assert.ok(readme.split("\n").length <= 150, "README.md is at most 150 lines");
});

Deno.test("the README number rule finds figures and lets code, names and versions pass", () => {
  const text = [
    "bnlab's BN reached 98.54% in about 10–15 minutes, 1.34× faster.",
    "Run `deno task train --lr 0.001` on Deno 2.9.6 with tfjs 4.22, ResNet-20 and SHA-256.",
    "Ioffe & Szegedy's Figure 1 at 3 epochs.",
    "```sh\ndeno task sweep --grid batchSize=2,4,8\n```",
    "| a | b |\n| --- | ---: |",
    "See [the docs](docs/findings.md#section-2).",
  ].join("\n");
  assert.deepEqual(proseNumbers(text), [
    "line 1: 98.54%",
    "line 1: 10",
    "line 1: 15",
    "line 1: 1.34×",
    "line 3: 3",
  ]);
});

Deno.test("README and generated docs use no development-history words", async () => {
  for (const path of ["README.md", "docs/findings.md", "docs/performance.md"]) {
    const text = await Deno.readTextFile(join(ROOT, path));
    const line = text.split("\n").findIndex((l) => HISTORY_WORDS.test(l));
    assert.equal(line, -1, `${path}:${line + 1}: ${text.split("\n")[line]}`);
  }
  assert.ok(HISTORY_WORDS.test("as this stop showed"));
});
