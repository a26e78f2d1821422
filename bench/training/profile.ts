/**
 * Where a training step's time goes on wasm, kernel by kernel (`tf.profile`).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../../lib/backend.ts";
import { median } from "../machine.ts";
import {
  blockSeconds,
  type Trainer,
  trainer,
  TRAINING_VARIANTS,
  type TrainingVariant,
} from "./trainer.ts";

/**
 * Milliseconds and calls per step of each kernel over `steps` profiled wasm steps, and the
 * median wall time of a step over three unprofiled blocks of `steps` steps run just before.
 *
 * @param variant The LeNet variant.
 * @param options The batch size and the steps profiled.
 * @returns Each kernel's milliseconds and calls per step, slowest first, and the step's time.
 *
 * @example
 * ```ts
 * import { profileSteps } from "./profile.ts";
 *
 * const { kernels, stepMs } = await profileSteps("none", { batchSize: 2, steps: 1 });
 * console.log(kernels.size > 0 && stepMs > 0); // true
 * ```
 */
export async function profileSteps(
  variant: TrainingVariant,
  options: { batchSize: number; steps: number },
): Promise<{ kernels: Map<string, { ms: number; calls: number }>; stepMs: number }> {
  const { batchSize, steps } = options;
  await initBackend("wasm");
  return await profileTrainer(() => trainer(variant, batchSize), { steps });
}

/**
 * {@linkcode profileSteps} for any trainer: `make` builds it on the active backend (wasm) and
 * it is disposed after.
 *
 * @param make Builds the trainer.
 * @param options The steps profiled.
 * @returns Each kernel's milliseconds and calls per step, slowest first, and the step's time.
 *
 * @example
 * ```ts
 * import { initBackend } from "../../lib/backend.ts";
 * import { profileTrainer } from "./profile.ts";
 * import { trainer } from "./trainer.ts";
 *
 * await initBackend("wasm");
 * const { stepMs } = await profileTrainer(() => trainer("none", 2), { steps: 1 });
 * console.log(stepMs > 0); // true
 * ```
 */
export async function profileTrainer(
  make: () => Trainer,
  options: { steps: number },
): Promise<{ kernels: Map<string, { ms: number; calls: number }>; stepMs: number }> {
  const { steps } = options;
  const { kernels, stepMs } = await _profiledSteps(make, steps);
  const byKernel = new Map<string, { ms: number; calls: number }>();
  for (const kernel of kernels) {
    const entry = byKernel.get(kernel.name) ?? { ms: 0, calls: 0 };
    entry.ms += (kernel.kernelTimeMs as number) / steps;
    entry.calls += 1 / steps;
    byKernel.set(kernel.name, entry);
  }
  return { kernels: new Map([...byKernel].sort((a, b) => b[1].ms - a[1].ms)), stepMs };
}

/**
 * The kernel calls of `steps` profiled steps of the trainer `make` builds (disposed after),
 * and the median wall time of a step over three unprofiled blocks of `steps` run before.
 */
async function _profiledSteps(
  make: () => Trainer,
  steps: number,
): Promise<{ kernels: Awaited<ReturnType<typeof tf.profile>>["kernels"]; stepMs: number }> {
  const t = make();
  try {
    await blockSeconds(t, 2); // warm-up
    const seconds = [];
    for (let i = 0; i < 3; i++) seconds.push(await blockSeconds(t, steps));
    const stepMs = (1000 * median(seconds)) / steps;
    const info = await tf.profile(() => {
      for (let i = 0; i < steps - 1; i++) t.step(false);
      return t.step(true)!;
    });
    (info.result as tf.Tensor).dispose();
    // tf.profile also lists ops with a custom gradient (`fusedConv2d__op`): they are not
    // kernels, and their time is that of the kernels they run, listed too.
    const kernels = info.kernels.filter((kernel) =>
      tf.getKernel(kernel.name, "wasm") !== undefined
    );
    return { kernels, stepMs };
  } finally {
    t.dispose();
  }
}

/** One kernel at one set of input shapes, per training step: a row of {@linkcode profileByShape}. */
export interface ShapeProfileRow {
  /** The kernel's name. */
  kernel: string;
  /** Its inputs' shapes, and its outputs', as `[[20, 24, 24, 20], [20]] -> [[20, 24, 24, 20]]`. */
  shapes: string;
  /** Calls per step. */
  calls: number;
  /** The median milliseconds of one call. */
  medianMs: number;
  /** `calls` × `medianMs`: the kernel's milliseconds per step, robust to a pause in one call. */
  msPerStep: number;
}

/**
 * Where a training step's time goes on wasm, kernel by kernel and shape by shape: each
 * kernel call of `steps` profiled steps, grouped by kernel and input shapes, with the median
 * time of a call (a garbage-collection pause inside one call does not move it), slowest
 * first; and the median wall time of a step over three unprofiled blocks.
 *
 * @param make Builds the trainer on the active backend (wasm); it is disposed after.
 * @param options The steps profiled.
 * @returns The rows, slowest first, and the step's time.
 *
 * @example
 * ```ts
 * import { initBackend } from "../../lib/backend.ts";
 * import { profileByShape } from "./profile.ts";
 * import { trainer } from "./trainer.ts";
 *
 * await initBackend("wasm");
 * const { rows, stepMs } = await profileByShape(() => trainer("none", 2), { steps: 1 });
 * console.log(rows.length > 0 && stepMs > 0); // true
 * ```
 */
export async function profileByShape(
  make: () => Trainer,
  options: { steps: number },
): Promise<{ rows: ShapeProfileRow[]; stepMs: number }> {
  const { steps } = options;
  const { kernels, stepMs } = await _profiledSteps(make, steps);
  const calls = new Map<string, { kernel: string; shapes: string; ms: number[] }>();
  for (const kernel of kernels) {
    const shapes = `${JSON.stringify(kernel.inputShapes)} -> ${
      JSON.stringify(kernel.outputShapes)
    }`;
    const key = `${kernel.name} ${shapes}`;
    const entry = calls.get(key) ?? { kernel: kernel.name, shapes, ms: [] as number[] };
    entry.ms.push(kernel.kernelTimeMs as number);
    calls.set(key, entry);
  }
  const rows = [...calls.values()].map(({ kernel, shapes, ms }) => {
    const medianMs = median(ms);
    return {
      kernel,
      shapes,
      calls: ms.length / steps,
      medianMs,
      msPerStep: medianMs * ms.length / steps,
    };
  });
  return { rows: rows.sort((a, b) => b.msPerStep - a.msPerStep), stepMs };
}

if (import.meta.main) {
  // `deno run -A bench/training/profile.ts [variant] [steps]`: a step of the bench's LeNet (ReLU)
  // at batch 20, kernel by kernel and shape by shape (BNLAB_BLAS_THREADS=1 for a worker of
  // `--workers 2`); variant none, tfjs, custom_analytic or custom_autodiff.
  const [variantArg = "none", stepsArg = "200"] = Deno.args;
  if (!(TRAINING_VARIANTS as readonly string[]).includes(variantArg)) {
    console.error(
      `profile.ts: variant must be one of ${TRAINING_VARIANTS.join(", ")}, received ` +
        JSON.stringify(variantArg),
    );
    Deno.exit(2);
  }
  const steps = Number(stepsArg);
  if (!Number.isInteger(steps) || steps < 1) {
    console.error(
      `profile.ts: steps must be a positive integer, received ${JSON.stringify(stepsArg)}`,
    );
    Deno.exit(2);
  }
  const variant = variantArg as TrainingVariant;
  await initBackend("wasm");
  const { rows, stepMs } = await profileByShape(() => trainer(variant, 20), { steps });
  const total = rows.reduce((sum, row) => sum + row.msPerStep, 0);
  console.log(`${variant}: step ${stepMs.toFixed(3)} ms, kernels ${total.toFixed(3)} ms`);
  for (const row of rows) {
    if (row.msPerStep < 0.005) continue;
    console.log(
      `${row.msPerStep.toFixed(3)} ms  ${row.calls.toFixed(1)} × ${
        (1000 * row.medianMs).toFixed(1)
      } µs  ${row.kernel} ${row.shapes}`,
    );
  }
}
