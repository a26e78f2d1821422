import assert from "node:assert/strict";
import { type GitFacts, provenanceProblems } from "../scripts/mark_provenance.ts";

const CONFIG_AT = 'export const PRESETS = {\n  smoke: {\n  },\n  "report-b512": {\n  },\n};\n';

function facts(overrides: Partial<GitFacts> = {}): GitFacts {
  return {
    commitTime: () => "2026-01-01T00:00:00Z",
    fileAt: () => CONFIG_AT,
    codeChanges: () => [],
    lastCommitOf: () => "b".repeat(40),
    ...overrides,
  };
}

const good = {
  config: { preset: "report-b512" },
  provenance: { gitCommit: "a".repeat(40), cpuModel: "AMD EPYC" },
  started: "2026-01-02T00:00:00Z",
  starts: [],
};

Deno.test("provenanceProblems: a sound record has none", () => {
  assert.deepEqual(provenanceProblems(good, facts(), { path: "results/x/config.json" }), []);
});

Deno.test("provenanceProblems: each rule, in the record's words", () => {
  const path = { path: "results/x/config.json" };
  assert.deepEqual(
    provenanceProblems({ ...good, provenance: { cpuModel: "unknown" } }, facts(), path),
    [
      "No git commit is recorded, so the code that produced these results is unknown.",
      "The CPU model is not recorded.",
    ],
  );
  assert.match(
    provenanceProblems(good, facts({ commitTime: () => "2026-01-03T00:00:00Z" }), path)[0],
    /^The recorded commit aaaaaaa was made at 2026-01-03T00:00:00Z, after the run started at 2026-01-02T00:00:00Z/,
  );
  assert.match(
    provenanceProblems({ ...good, config: { preset: "modern" } }, facts(), path)[0],
    /^The preset "modern" is not in lib\/experiments\/config.ts or lib\/experiments\/studies.ts at the recorded commit aaaaaaa/,
  );
  const studies = facts({
    fileAt: (_, file) => file.endsWith("studies.ts") ? "  figure1: {\n" : CONFIG_AT,
  });
  assert.deepEqual(
    provenanceProblems({ ...good, config: { preset: "figure1" } }, studies, path),
    [],
    "a preset defined in lib/experiments/studies.ts is a committed preset",
  );
  const { starts: _, ...noStarts } = good;
  assert.deepEqual(provenanceProblems(noStarts, facts(), path), [
    "There is no starts list: the processes that started and resumed the run are not recorded.",
  ]);
  assert.deepEqual(
    provenanceProblems(good, facts({ codeChanges: () => ["bench/pytorch.ts"] }), {
      path: "bench/results.json",
    }),
    [
      "The code committed with these results (bbbbbbb) differs from the recorded commit " +
      "aaaaaaa in bench/pytorch.ts: the results came from uncommitted code.",
    ],
  );
});

Deno.test("the committed result records carry the notes the script writes", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-run", "scripts/mark_provenance.ts", "--check"],
    cwd: new URL("..", import.meta.url),
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
});
