/** Runs the project's CLI scripts (`scripts/<name>.ts`) in a child Deno process, for the CLI tests. */

/** The path of `scripts/<name>.ts`. */
export const script = (name: string) => new URL(`../scripts/${name}.ts`, import.meta.url).pathname;

/** Runs `scripts/<name>.ts` with every permission; its exit code and decoded output. */
export async function run(name: string, args: string[]) {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", script(name), ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: output.code,
    stdout: new TextDecoder().decode(output.stdout),
    stderr: new TextDecoder().decode(output.stderr),
  };
}

/** The `--allow-*` flags of a task in deno.json (e.g. `train`, whose flags workers and Slurm share). */
export async function taskPermissions(task: string): Promise<string[]> {
  const config = JSON.parse(
    await Deno.readTextFile(new URL("../deno.json", import.meta.url)),
  ) as { tasks: Record<string, string> };
  return config.tasks[task].split(/\s+/).filter((arg) => arg.startsWith("--allow-"));
}
