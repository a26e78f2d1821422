/**
 * PyTorch on CPU measured beside bnlab in one bench run: a long-lived `python3` child running
 * `bench/pytorch_lenet.py` or `bench/pytorch_resnet20.py` (the same network and training
 * step; their request loop is `bench/pytorch_worker.py`) answers one timed block at a time,
 * so the bench can interleave PyTorch's blocks with its own and compare the two under the
 * same machine state. Needs Debian's PyTorch (`apt-get install python3-torch`; not part of
 * the setup, which CI runs): without it {@linkcode startPyTorch} says why and the bench leaves
 * PyTorch out.
 *
 * @module
 */
/** The Python that has Debian's packages (the `python3` first on PATH may not). */
export const PYTHON = "/usr/bin/python3";

/** The worker script of each network. */
export const PYTORCH_SCRIPTS: Readonly<Record<PyTorchModel, URL>> = Object.freeze({
  lenet: new URL("./pytorch_lenet.py", import.meta.url),
  resnet20: new URL("./pytorch_resnet20.py", import.meta.url),
});

/** The networks PyTorch trains beside bnlab: LeNet, or ResNet-20. */
export type PyTorchModel = "lenet" | "resnet20";

/** A running PyTorch worker of one network. */
export interface PyTorchLeNet {
  /** PyTorch's version, as `torch.__version__` reports it. */
  readonly version: string;
  /** Its intra-op threads. */
  readonly threads: number;
  /**
   * Seconds for `steps` training steps of the network (`"none"`, or `"bn"`: BatchNorm at each
   * norm site) at `batch`, the loss read once at the end.
   */
  block(variant: "none" | "bn", batch: number, steps: number): Promise<number>;
  /** Ends the worker. */
  close(): Promise<void>;
}

/**
 * Starts the PyTorch worker with `threads` intra-op threads.
 *
 * @param threads PyTorch's intra-op threads (2, as in the reference figures of `bench/derived.ts`).
 * @param options The network. @default {{ model: "lenet" }}
 * @returns The worker, or why none could start (no python3, no PyTorch).
 */
export async function startPyTorch(
  threads = 2,
  options: { model?: PyTorchModel } = {},
): Promise<{ worker: PyTorchLeNet } | { reason: string }> {
  const model = options.model ?? "lenet";
  const script = PYTORCH_SCRIPTS[model];
  if (script === undefined) {
    return {
      reason: `startPyTorch: model must be one of ${Object.keys(PYTORCH_SCRIPTS).join(", ")}, ` +
        `received ${JSON.stringify(model)}`,
    };
  }
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(PYTHON, {
      args: [decodeURIComponent(script.pathname)],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (error) {
    return { reason: `could not start ${PYTHON}: ${(error as Error).message}` };
  }
  const writer = child.stdin.getWriter();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  const readLine = async (): Promise<string | null> => {
    for (let end = buffered.indexOf("\n"); end < 0; end = buffered.indexOf("\n")) {
      const { value, done } = await reader.read();
      if (done) return null;
      buffered += value;
    }
    const end = buffered.indexOf("\n");
    const line = buffered.slice(0, end);
    buffered = buffered.slice(end + 1);
    return line;
  };
  const stderr = new Response(child.stderr).text();
  const encoder = new TextEncoder();
  const ask = async (request: Record<string, unknown>) => {
    await writer.write(encoder.encode(JSON.stringify(request) + "\n"));
    const line = await readLine();
    if (line === null) {
      throw new Error(`PyTorch worker exited: ${(await stderr).trim().slice(-500)}`);
    }
    const reply = JSON.parse(line);
    if (reply.error) throw new Error(`PyTorch worker: ${reply.error}`);
    return reply;
  };
  const close = async () => {
    try {
      await writer.write(encoder.encode(JSON.stringify({ quit: true }) + "\n"));
      await writer.close();
    } catch {
      // Already gone.
    }
    await reader.cancel().catch(() => {});
    await child.status;
    await stderr.catch(() => "");
  };
  let hello: { torch: string; threads: number };
  try {
    hello = await ask({ threads });
  } catch (error) {
    await close();
    return { reason: (error as Error).message.split("\n").slice(-1)[0] };
  }
  return {
    worker: {
      version: hello.torch,
      threads: hello.threads,
      block: async (variant, batch, steps) => (await ask({ variant, batch, steps })).seconds,
      close,
    },
  };
}
