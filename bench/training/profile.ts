/**
 * Where a training step's time goes on wasm, kernel by kernel (`tf.profile`).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../../lib/backend.ts";
import { median } from "../machine.ts";
import { blockSeconds, type Trainer, trainer, type TrainingVariant } from "./trainer.ts";

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
    const byKernel = new Map<string, { ms: number; calls: number }>();
    for (const kernel of info.kernels) {
      // tf.profile also lists ops with a custom gradient (`fusedConv2d__op`): they are not
      // kernels, and their time is that of the kernels they run, listed too.
      if (tf.getKernel(kernel.name, "wasm") === undefined) continue;
      const entry = byKernel.get(kernel.name) ?? { ms: 0, calls: 0 };
      entry.ms += (kernel.kernelTimeMs as number) / steps;
      entry.calls += 1 / steps;
      byKernel.set(kernel.name, entry);
    }
    return { kernels: new Map([...byKernel].sort((a, b) => b[1].ms - a[1].ms)), stepMs };
  } finally {
    t.dispose();
  }
}
