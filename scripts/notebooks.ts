/**
 * Executes the Jupyter notebooks headless on Deno's kernel (`deno task notebooks`).
 *
 * ```sh
 * deno run --allow-all scripts/notebooks.ts [--inplace] [--timeout SECONDS] [NOTEBOOK.ipynb ...]
 * ```
 *
 * Without paths it runs every `notebooks/*.ipynb`, in name order. Each notebook runs in a fresh
 * kernel whose working directory is the notebook's directory, so `../lib/...` imports work and
 * Deno finds the repository's `deno.json` (its import map and `nodeModulesDir`). The kernel
 * inherits the environment, e.g. `BNLAB_PRESET`. The executed copy goes to `.executed/` beside
 * the notebook (git-ignored), or, with `--inplace`, back into the notebook itself when it ran
 * without error. Prints one line per notebook with its wall time; when a cell fails, prints the
 * cell and its error and exits with 1.
 *
 * Execution uses Jupyter's `nbclient` through Debian's Python (`/usr/bin/python3`, or
 * `$BNLAB_PYTHON`). The `deno` kernel is registered with `deno jupyter --install` when
 * `jupyter kernelspec list` lacks it.
 *
 * @module
 */
import { basename, dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { readEnv } from "../lib/env.ts";

/** Options of {@linkcode runNotebooks}. */
export interface RunNotebooksOptions {
  /**
   * Seconds a notebook may run, kernel start included; past it the running cell fails.
   * @default {600}
   */
  timeoutSeconds?: number;
  /**
   * Write the executed notebook back over the source when it ran without error (to commit
   * notebooks with real outputs). A failed run still goes to `outDir`, leaving the source as it was.
   * @default {false}
   */
  inplace?: boolean;
  /**
   * Directory for executed copies.
   * @default {`.executed` in each notebook's directory}
   */
  outDir?: string;
  /**
   * Python with `nbclient` and `jupyter_client`.
   * @default {`$BNLAB_PYTHON`, else `/usr/bin/python3` when it exists, else `python3`}
   */
  python?: string;
  /** Jupyter kernel name. @default {"deno"} */
  kernel?: string;
  /** Variables added to the inherited environment of the kernel. @default {{}} */
  env?: Record<string, string>;
  /** Receives the one-line report of each notebook. @default {console.log} */
  log?: (line: string) => void;
}

/** Where and how a notebook failed. */
export interface NotebookFailure {
  /** `error` (a cell threw), `timeout`, `dead` (the kernel died) or `setup` (it never ran). */
  kind: "error" | "timeout" | "dead" | "setup";
  /** The failing cell's position in the notebook, from 1, markdown cells counted; 0 if none. */
  cell: number;
  /** The failing cell's source (empty if none). */
  source: string;
  /** Error name, e.g. `TypeError`. */
  ename: string;
  /** Error message. */
  evalue: string;
  /** The traceback, without terminal colors. */
  traceback: string;
}

/** The outcome of one notebook. */
export interface NotebookResult {
  /** The notebook, as given. */
  path: string;
  /** Where the executed notebook was written (empty if nothing was written). */
  output: string;
  /** Whether every cell ran without error. */
  ok: boolean;
  /** Wall time, kernel start and shutdown included. */
  seconds: number;
  /** Set when `ok` is false. */
  failure?: NotebookFailure;
}

/**
 * Lists `*.ipynb` files of a directory, in name order (hidden files and subdirectories left out).
 *
 * @param dir Directory to look in.
 * @returns Paths of the notebooks, `dir` joined with each name.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { findNotebooks } from "./notebooks.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/b.ipynb`, "{}");
 * await Deno.writeTextFile(`${dir}/a.ipynb`, "{}");
 * await Deno.writeTextFile(`${dir}/notes.md`, "");
 * assert.deepEqual(await findNotebooks(dir), [`${dir}/a.ipynb`, `${dir}/b.ipynb`]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function findNotebooks(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && entry.name.endsWith(".ipynb") && !entry.name.startsWith(".")) {
      names.push(entry.name);
    }
  }
  return names.sort().map((name) => join(dir, name));
}

/**
 * Executes notebooks one after the other, each in a fresh kernel, and reports each outcome.
 *
 * A failing notebook does not stop the others. Before the first notebook it checks that Python
 * has `nbclient` and that the kernel is registered; for the `deno` kernel it registers it
 * (`deno jupyter --install`, said on stderr) when missing.
 *
 * @param paths Notebooks to run.
 * @param options Timeout, output place, Python and kernel.
 * @returns One result per notebook, in order.
 * @throws If no Python with `nbclient` is found, the kernel is not registered (and cannot be),
 * or a path is not an `.ipynb` file.
 *
 * @example Run nothing (a real run starts Jupyter: see tests/notebooks_test.ts)
 * ```ts
 * import assert from "node:assert/strict";
 * import { runNotebooks } from "./notebooks.ts";
 *
 * assert.deepEqual(await runNotebooks([]), []);
 * ```
 */
export async function runNotebooks(
  paths: readonly string[],
  options: RunNotebooksOptions = {},
): Promise<NotebookResult[]> {
  if (paths.length === 0) return [];
  const timeoutSeconds = options.timeoutSeconds ?? 600;
  if (!(timeoutSeconds > 0)) {
    throw new Error(
      `runNotebooks: timeoutSeconds must be a positive number, received ${timeoutSeconds}`,
    );
  }
  for (const path of paths) {
    if (!path.endsWith(".ipynb")) {
      throw new Error(`runNotebooks: expected .ipynb files, received ${JSON.stringify(path)}`);
    }
    await Deno.stat(path).catch(() => {
      throw new Error(`runNotebooks: notebook not found: ${path}`);
    });
  }
  const python = options.python ?? _defaultPython();
  const kernel = options.kernel ?? "deno";
  const log = options.log ?? console.log;
  await _ensureKernel(python, kernel);

  const results: NotebookResult[] = [];
  for (const path of paths) {
    const result = await _runOne(path, {
      python,
      kernel,
      timeoutSeconds,
      inplace: options.inplace ?? false,
      outDir: options.outDir ?? join(dirname(path), ".executed"),
      env: options.env ?? {},
    });
    results.push(result);
    log(_summaryLine(result));
  }
  return results;
}

/**
 * Formats a failure for the terminal: the notebook, the cell, its source and its traceback.
 *
 * @param result A failed notebook's result.
 * @returns Several lines of text.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { describeFailure } from "./notebooks.ts";
 *
 * const text = describeFailure({
 *   path: "notebooks/x.ipynb", output: "", ok: false, seconds: 1,
 *   failure: { kind: "error", cell: 2, source: "throw new Error('boom')", ename: "Error",
 *     evalue: "boom", traceback: "Error: boom" },
 * });
 * assert.match(text, /^notebooks\/x\.ipynb: cell 2 failed: Error: boom/);
 * ```
 */
export function describeFailure(result: NotebookResult): string {
  const failure = result.failure;
  if (!failure) return `${result.path}: ok`;
  const where = failure.cell > 0 ? `cell ${failure.cell} ` : "";
  const what = failure.kind === "timeout"
    ? "timed out"
    : failure.kind === "dead"
    ? "failed: the kernel died"
    : "failed";
  const lines = [`${result.path}: ${where}${what}: ${failure.ename}: ${failure.evalue}`];
  if (failure.source) {
    lines.push("--- cell source ---", failure.source.trimEnd(), "--- error ---");
  }
  if (failure.traceback) lines.push(failure.traceback.trimEnd());
  if (result.output) lines.push(`(executed copy: ${result.output})`);
  return lines.join("\n");
}

interface _RunOneOptions {
  python: string;
  kernel: string;
  timeoutSeconds: number;
  inplace: boolean;
  outDir: string;
  env: Record<string, string>;
}

async function _runOne(path: string, options: _RunOneOptions): Promise<NotebookResult> {
  const executed = join(options.outDir, basename(path));
  const okOutput = options.inplace ? path : executed;
  await Deno.mkdir(options.outDir, { recursive: true });
  const work = await Deno.makeTempDir({ prefix: "bnlab-notebook-" });
  const resultFile = join(work, "result.json");
  const started = performance.now();
  try {
    const command = new Deno.Command(options.python, {
      args: [
        _DRIVER,
        "run",
        path,
        okOutput,
        executed,
        resultFile,
        String(options.timeoutSeconds),
        options.kernel,
        resolve(dirname(path)),
      ],
      env: options.env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      // nbclient stops the cell at the deadline; this only guards against a hung Jupyter.
      signal: AbortSignal.timeout((options.timeoutSeconds + 60) * 1000),
    });
    let output: Deno.CommandOutput;
    try {
      output = await command.output();
    } catch (error) {
      if ((error as Error).name !== "AbortError" && (error as Error).name !== "TimeoutError") {
        throw error;
      }
      const seconds = (performance.now() - started) / 1000;
      const evalue = `Jupyter did not finish within ${
        options.timeoutSeconds + 60
      } s and was stopped`;
      const failure: NotebookFailure = {
        kind: "timeout",
        cell: 0,
        source: "",
        ename: "TimeoutError",
        evalue,
        traceback: "",
      };
      return { path, output: "", ok: false, seconds, failure };
    }
    const seconds = (performance.now() - started) / 1000;
    const report = await _readReport(resultFile);
    if (report?.ok && output.code === 0) return { path, output: okOutput, ok: true, seconds };
    const decoder = new TextDecoder();
    const logs = _strip(decoder.decode(output.stdout) + decoder.decode(output.stderr)).trim();
    const lastLine = logs.split("\n").filter((line) => line.trim()).at(-1);
    const failure: NotebookFailure = report && !report.ok ? report.failure : {
      kind: "setup",
      cell: 0,
      source: "",
      ename: "JupyterError",
      evalue: lastLine ?? `the Jupyter driver exited with code ${output.code}`,
      traceback: "",
    };
    // The driver's and the kernel's logs explain failures that left no traceback of their own.
    failure.traceback = _strip(failure.traceback) ||
      logs.split("\n").slice(-30).join("\n");
    const written = report?.written ? executed : "";
    return { path, output: written, ok: false, seconds, failure };
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}

type _Report = { ok: true; written: boolean } | {
  ok: false;
  written: boolean;
  failure: NotebookFailure;
};

async function _readReport(path: string): Promise<_Report | undefined> {
  try {
    return JSON.parse(await Deno.readTextFile(path)) as _Report;
  } catch {
    return undefined;
  }
}

async function _ensureKernel(python: string, kernel: string): Promise<void> {
  const kernels = await _listKernels(python);
  if (kernels.includes(kernel)) return;
  if (kernel !== "deno") {
    throw new Error(
      `runNotebooks: the Jupyter kernel "${kernel}" is not registered; ` +
        `registered kernels: ${kernels.join(", ") || "none"}`,
    );
  }
  console.error(
    "notebooks: the deno Jupyter kernel is not registered; running `deno jupyter --install`",
  );
  const install = await new Deno.Command(Deno.execPath(), {
    args: ["jupyter", "--install"],
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!install.success || !(await _listKernels(python)).includes("deno")) {
    throw new Error(
      "runNotebooks: could not register the deno Jupyter kernel with `deno jupyter --install` " +
        `(exit code ${install.code}); \`jupyter kernelspec list\` must show "deno"`,
    );
  }
}

async function _listKernels(python: string): Promise<string[]> {
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command(python, {
      args: [_DRIVER, "kernels"],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (error) {
    throw new Error(
      `runNotebooks: cannot start Python at ${JSON.stringify(python)} (${
        (error as Error).message
      }); ` +
        "install Jupyter (bash scripts/setup.sh) or set BNLAB_PYTHON to a Python with nbclient",
      { cause: error },
    );
  }
  const text = new TextDecoder().decode(output.stdout).trim().split("\n").at(-1) ?? "";
  if (!output.success || !text.startsWith("[")) {
    const detail = _strip(new TextDecoder().decode(output.stderr)).trim().split("\n").at(-1);
    throw new Error(
      `runNotebooks: ${python} cannot run notebooks (${detail}); it needs the nbclient and ` +
        "jupyter_client modules: run bash scripts/setup.sh, or set BNLAB_PYTHON",
    );
  }
  return JSON.parse(text) as string[];
}

function _defaultPython(): string {
  const fromEnv = readEnv("BNLAB_PYTHON");
  if (fromEnv) return fromEnv;
  try {
    Deno.statSync("/usr/bin/python3");
    return "/usr/bin/python3";
  } catch {
    return "python3";
  }
}

function _summaryLine(result: NotebookResult): string {
  const status = result.ok ? "ok  " : "FAIL";
  const tail = result.failure
    ? `  ${result.failure.cell > 0 ? `cell ${result.failure.cell}: ` : ""}` +
      `${result.failure.ename}: ${result.failure.evalue.split("\n")[0]}`
    : "";
  return `${status} ${result.path}  ${result.seconds.toFixed(1)}s${tail}`;
}

function _strip(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/\x1b\[[0-9;]*[A-Za-z]/g, "");
}

/**
 * The Python side (`notebook_driver.py` beside this file): `kernels` prints the registered
 * kernel names as JSON; `run` executes one notebook with nbclient and writes a JSON report.
 */
const _DRIVER: string = fileURLToPath(new URL("./notebook_driver.py", import.meta.url));

async function _main(args: string[]): Promise<number> {
  const paths: string[] = [];
  const options: RunNotebooksOptions = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--inplace") options.inplace = true;
    else if (arg === "--timeout" || arg.startsWith("--timeout=")) {
      const text = arg.includes("=") ? arg.slice(arg.indexOf("=") + 1) : args[++i];
      const seconds = Number(text);
      if (!(seconds > 0)) {
        console.error(
          `notebooks: --timeout expects a positive number of seconds, received ${text}`,
        );
        return 2;
      }
      options.timeoutSeconds = seconds;
    } else if (arg === "--help" || arg === "-h") {
      console.log(
        "usage: deno task notebooks [--inplace] [--timeout SECONDS] [NOTEBOOK.ipynb ...]\n" +
          "Runs notebooks/*.ipynb (or the given notebooks) headless on Deno's Jupyter kernel.",
      );
      return 0;
    } else if (arg.startsWith("-")) {
      console.error(
        `notebooks: unknown option ${arg}; allowed: --inplace, --timeout SECONDS, --help`,
      );
      return 2;
    } else paths.push(arg);
  }
  if (paths.length === 0) {
    const dir = relative(Deno.cwd(), fileURLToPath(new URL("../notebooks", import.meta.url)));
    paths.push(...await findNotebooks(dir || "."));
  }
  if (paths.length === 0) {
    console.error("notebooks: no notebooks to run");
    return 1;
  }
  const results = await runNotebooks(paths, options);
  const failed = results.filter((result) => !result.ok);
  for (const result of failed) console.error("\n" + describeFailure(result));
  if (failed.length) {
    console.error(`\nnotebooks: ${failed.length} of ${results.length} failed`);
    return 1;
  }
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await _main(Deno.args));
  } catch (error) {
    console.error(error instanceof Error ? error.message : error);
    Deno.exit(1);
  }
}
