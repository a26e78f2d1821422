/**
 * bnlab's acceleration layer behind one door: {@linkcode installKernels} registers every
 * kernel of `lib/kernels/` from one table, {@linkcode KERNEL_TABLE}, and says what it
 * installed. `lib/backend.ts` calls it when it sets a backend up; nothing else in `lib/`
 * imports from `lib/kernels/`. Layers call bnlab's own kernels by the names of
 * `lib/named_kernels.ts`, and tfjs's by tfjs's names, never asking what runs them.
 *
 * The table holds four kinds of entries:
 * - `gradient`: replaces tfjs's gradient of a kernel, for every backend (`gradients.ts`);
 * - `kernel`: registers a kernel a backend lacks (left alone when one of that name exists);
 * - `replacement`: replaces one of tfjs's wasm kernels, keeping it as the fallback. The matrix
 *   products and convolutions run on an optimized BLAS through FFI when one is loaded
 *   (`blas_kernels.ts`, `blas.ts`): their entries wrap our wasm replacement (or tfjs's kernel,
 *   or for `Conv2DBackpropFilter` the `kernel` entry before it) in a BLAS kernel that falls
 *   back to it whenever BLAS is off or the case is not one it handles;
 * - `setting`: a switch of the layer turned on for a backend (`fused_conv_training.ts`).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { batchMatMulWasmConfig, fusedMatMulWasmConfig } from "./batch_mat_mul.ts";
import { BATCH_NORM_KERNEL_CONFIGS } from "./batch_norm_native.ts";
import { type BlasInfo, blasInfo } from "./blas.ts";
import { blasConfig } from "./blas_kernels.ts";
import { conv2dBackpropFilterWasmConfig } from "./conv2d_backprop_filter.ts";
import { conv2dBackpropInputWasmConfig } from "./conv2d_backprop_input.ts";
import {
  binaryWasmConfig,
  fusedBatchNormWasmConfig,
  reluGradWasmConfig,
  reluWasmConfig,
  sigmoidGradWasmConfig,
  sigmoidWasmConfig,
  squareGradWasmConfig,
} from "./elementwise.ts";
import { setUnfusedConvTraining } from "./fused_conv_training.ts";
import { GRADIENT_REPLACEMENTS, type GradientReplacement } from "./gradients.ts";
import { GROUP_NORM_KERNEL_CONFIGS } from "./group_norm_native.ts";
import { castWasmConfig, identityWasmConfig } from "./identity.ts";
import { maxPoolWasmConfig } from "./max_pool.ts";
import { maxPoolGradWasmConfig } from "./max_pool_grad.ts";
import { type NativeInfo, nativeInfo } from "./native_library.ts";
import { leadingSumToWasmConfig, reduceLeadingWasmConfig } from "./reduce_leading.ts";
import { RUNNING_AVERAGE_CONFIGS } from "./running_average.ts";
import { setLeanSavedTensors } from "./saved_tensors.ts";
import { sgdUpdateWasmConfig } from "./sgd_update.ts";
import { broadcastLeadingWasmConfig, tileWasmConfig } from "./tile.ts";
import {
  softmaxCrossEntropyGradWasmConfig,
  softmaxCrossEntropyWasmConfig,
} from "./softmax_cross_entropy.ts";
import {
  setFusedTfjsBatchNorm,
  tfjsBatchNormTrainingGradWasmConfig,
  tfjsBatchNormTrainingWasmConfig,
} from "./tfjs_batch_norm.ts";
import type { WasmKernelReplacement } from "./wasm_kernel.ts";

export type { BlasInfo, NativeInfo, WasmKernelReplacement };
export { setBlasPoolThreads } from "./blas.ts";

/** A backend bnlab sets up. */
export type KernelBackend = "wasm" | "cpu" | "webgpu";

/** One entry of {@linkcode KERNEL_TABLE}. */
export type KernelEntry =
  | {
    readonly kind: "gradient";
    readonly kernelName: string;
    readonly replace: (original: tf.GradConfig) => GradientReplacement;
  }
  | { readonly kind: "kernel"; readonly config: tf.KernelConfig }
  | {
    readonly kind: "replacement";
    readonly kernelName: string;
    readonly replace: (original: tf.KernelConfig) => WasmKernelReplacement;
  }
  | {
    readonly kind: "setting";
    readonly name: string;
    readonly backendName: KernelBackend;
    readonly set: (enabled: boolean) => boolean;
  };

const _replacement = (
  kernelName: string,
  replace: (original: tf.KernelConfig) => WasmKernelReplacement,
): KernelEntry => ({ kind: "replacement", kernelName, replace });

/**
 * Every kernel bnlab installs, in the order {@linkcode installKernels} installs them.
 *
 * @example The wasm replacements, by kernel name
 * ```ts
 * import assert from "node:assert/strict";
 * import { KERNEL_TABLE } from "./mod.ts";
 *
 * const replaced = KERNEL_TABLE.flatMap((e) => e.kind === "replacement" ? [e.kernelName] : []);
 * assert.deepEqual(replaced.slice(0, 3), ["Conv2DBackpropInput", "BatchMatMul", "_FusedMatMul"]);
 * ```
 */
export const KERNEL_TABLE: readonly KernelEntry[] = [
  // Faster gradients with tfjs's floats (gradients.ts), for every backend.
  ...GRADIENT_REPLACEMENTS.map(([kernelName, replace]): KernelEntry => ({
    kind: "gradient",
    kernelName,
    replace,
  })),
  // Batch norm's running-average update as one kernel, cpu and wasm (running_average.ts).
  ...RUNNING_AVERAGE_CONFIGS.map((config): KernelEntry => ({ kind: "kernel", config })),
  // Plain SGD's update of a step's variables in one call, one native pass each (sgd_update.ts).
  { kind: "kernel", config: sgdUpdateWasmConfig },
  // Kernels tfjs's wasm backend lacks.
  { kind: "kernel", config: conv2dBackpropFilterWasmConfig },
  { kind: "kernel", config: reluGradWasmConfig },
  { kind: "kernel", config: sigmoidGradWasmConfig },
  { kind: "kernel", config: squareGradWasmConfig },
  { kind: "kernel", config: broadcastLeadingWasmConfig },
  { kind: "kernel", config: leadingSumToWasmConfig },
  // The training loss and its gradient as one kernel each (softmax_cross_entropy.ts).
  { kind: "kernel", config: softmaxCrossEntropyWasmConfig },
  { kind: "kernel", config: softmaxCrossEntropyGradWasmConfig },
  // Replacements of tfjs's slow wasm kernels, which they keep as fallbacks. A kernel has one
  // entry: a BLAS kernel wraps the wasm replacement inside the same entry.
  _replacement(
    tf.Conv2DBackpropInput,
    (o) => blasConfig(conv2dBackpropInputWasmConfig(o)),
  ),
  _replacement(tf.BatchMatMul, (o) => blasConfig(batchMatMulWasmConfig(o))),
  _replacement(tf._FusedMatMul, (o) => blasConfig(fusedMatMulWasmConfig(o))),
  _replacement(tf.Tile, tileWasmConfig),
  _replacement(tf.MaxPoolGrad, maxPoolGradWasmConfig),
  _replacement(tf.Conv2D, blasConfig),
  _replacement(tf.FusedConv2D, blasConfig),
  // Wraps conv2d_backprop_filter.ts, the `kernel` entry above.
  _replacement(tf.Conv2DBackpropFilter, blasConfig),
  // Batch normalization's per-channel sums and means (reduce_leading.ts).
  _replacement(tf.Sum, reduceLeadingWasmConfig),
  _replacement(tf.Mean, reduceLeadingWasmConfig),
  // Clones (the tensors kernels save for their gradients) share data (identity.ts).
  _replacement(tf.Identity, identityWasmConfig),
  _replacement(tf.Cast, castWasmConfig),
  // Element-wise arithmetic with per-channel or scalar operands, tfjs's batch norm, in C
  // (elementwise.ts).
  _replacement(tf.Add, binaryWasmConfig),
  _replacement(tf.Sub, binaryWasmConfig),
  _replacement(tf.Multiply, binaryWasmConfig),
  _replacement(tf.RealDiv, binaryWasmConfig),
  _replacement(tf.FusedBatchNorm, fusedBatchNormWasmConfig),
  // Exact 2×2 pools in C (max_pool.ts).
  _replacement(tf.MaxPool, maxPoolWasmConfig),
  // ReLU and the sigmoid in C (elementwise.ts).
  _replacement(tf.Relu, reluWasmConfig),
  _replacement(tf.Sigmoid, sigmoidWasmConfig),
  // The first conv layer's input gradient is skipped (fused_conv_training.ts).
  {
    kind: "setting",
    name: "unfusedConvTraining",
    backendName: "wasm",
    set: setUnfusedConvTraining,
  },
  // Saved tensors without a clone's dispatch and tape node at first order (saved_tensors.ts).
  { kind: "setting", name: "leanSavedTensors", backendName: "wasm", set: setLeanSavedTensors },
  // tfjs's BatchNormalization layer's training step and its gradient as one native kernel
  // each, with its floats (tfjs_batch_norm.ts).
  { kind: "kernel", config: tfjsBatchNormTrainingWasmConfig },
  { kind: "kernel", config: tfjsBatchNormTrainingGradWasmConfig },
  { kind: "setting", name: "fusedTfjsBatchNorm", backendName: "wasm", set: setFusedTfjsBatchNorm },
  // bnlab's batch norm as native kernels, called by the names of lib/named_kernels.ts
  // (batch_norm_native.ts).
  ...BATCH_NORM_KERNEL_CONFIGS.map((config): KernelEntry => ({ kind: "kernel", config })),
  // Group and layer normalization as native kernels, by the names of lib/named_kernels.ts
  // (group_norm_native.ts).
  ...GROUP_NORM_KERNEL_CONFIGS.map((config): KernelEntry => ({ kind: "kernel", config })),
];

/**
 * How to replace wasm kernels, by kernel name: the `replacement` entries of
 * {@linkcode KERNEL_TABLE}, for benchmarks that compare them with the kernels they replaced.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { WASM_KERNEL_REPLACEMENTS } from "./mod.ts";
 *
 * assert.deepEqual(
 *   WASM_KERNEL_REPLACEMENTS.map(([name]) => name),
 *   [
 *     "Conv2DBackpropInput",
 *     "BatchMatMul",
 *     "_FusedMatMul",
 *     "Tile",
 *     "MaxPoolGrad",
 *     "Conv2D",
 *     "FusedConv2D",
 *     "Conv2DBackpropFilter",
 *     "Sum",
 *     "Mean",
 *     "Identity",
 *     "Cast",
 *     "Add",
 *     "Sub",
 *     "Multiply",
 *     "RealDiv",
 *     "FusedBatchNorm",
 *     "MaxPool",
 *     "Relu",
 *     "Sigmoid",
 *   ],
 * );
 * ```
 */
export const WASM_KERNEL_REPLACEMENTS: ReadonlyArray<
  readonly [string, (original: tf.KernelConfig) => WasmKernelReplacement]
> = KERNEL_TABLE.flatMap((entry) =>
  entry.kind === "replacement" ? [[entry.kernelName, entry.replace] as const] : []
);

/** Options of {@linkcode installKernels}. */
export interface InstallKernelsOptions {
  /** The backend whose kernels to install (gradients are installed for every backend). */
  backend: KernelBackend;
}

/** What {@linkcode installKernels} installed, by kernel name. */
export interface InstalledKernels {
  /** Gradients replaced (this call or an earlier one). */
  readonly gradients: readonly string[];
  /** Kernels registered for the backend (this call or an earlier one). */
  readonly kernels: readonly string[];
  /** tfjs kernels replaced for the backend (this call or an earlier one). */
  readonly replaced: readonly string[];
  /** Settings turned on. */
  readonly settings: readonly string[];
  /** Whether OpenBLAS runs the products, and which library (wasm only). */
  readonly blas?: BlasInfo;
  /** Whether the native kernels run, and which library (wasm only). */
  readonly native?: NativeInfo;
}

/** The replacement configs registered, so that a repeated call does not wrap them again. */
const _replacements = new WeakSet<tf.KernelConfig>();

/**
 * Installs the entries of {@linkcode KERNEL_TABLE} for `backend`, once: a repeated call finds
 * them installed and changes nothing. A kernel tfjs itself provides (in a later version) wins
 * over a `kernel` entry. For wasm, call it after importing `@tensorflow/tfjs-backend-wasm`
 * (which registers the kernels replaced) and before the backend starts.
 *
 * @param options The backend.
 * @returns What is installed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { installKernels } from "./mod.ts";
 *
 * const installed = installKernels({ backend: "cpu" });
 * assert.deepEqual(installed.kernels, ["BnlabRunningAverage"]);
 * assert.deepEqual(installed.gradients, [
 *   "Sum",
 *   "Mean",
 *   "Add",
 *   "Sub",
 *   "Square",
 *   "FusedBatchNorm",
 *   "Relu",
 *   "Sigmoid",
 * ]);
 * ```
 */
export function installKernels(options: InstallKernelsOptions): InstalledKernels {
  const { backend } = options;
  const gradients: string[] = [], kernels: string[] = [], replaced: string[] = [];
  const settings: string[] = [];
  for (const entry of KERNEL_TABLE) {
    switch (entry.kind) {
      case "gradient": {
        const current = tf.getGradient(entry.kernelName) as
          | Partial<GradientReplacement>
          | undefined;
        if (current === undefined) break;
        if (current.original === undefined) {
          tf.registerGradient(entry.replace(current as tf.GradConfig));
        }
        gradients.push(entry.kernelName);
        break;
      }
      case "kernel": {
        const { kernelName, backendName } = entry.config;
        if (backendName !== backend) break;
        if (tf.getKernel(kernelName, backendName) === undefined) tf.registerKernel(entry.config);
        if (tf.getKernel(kernelName, backendName) === entry.config) kernels.push(kernelName);
        break;
      }
      case "replacement": {
        if (backend !== "wasm") break;
        const original = tf.getKernel(entry.kernelName, "wasm");
        if (original === undefined) break;
        if (!_replacements.has(original)) {
          const replacement = entry.replace(original);
          tf.unregisterKernel(entry.kernelName, "wasm");
          tf.registerKernel(replacement);
          _replacements.add(replacement);
        }
        replaced.push(entry.kernelName);
        break;
      }
      case "setting":
        if (entry.backendName !== backend) break;
        entry.set(true);
        settings.push(entry.name);
        break;
    }
  }
  return Object.freeze({
    gradients,
    kernels,
    replaced,
    settings,
    ...(backend === "wasm" && { blas: blasInfo(), native: nativeInfo() }),
  });
}

/**
 * The tfjs wasm kernel that one of ours replaced, for comparisons; undefined when `kernelName`
 * has not been replaced (say, before `initBackend("wasm")`).
 *
 * @param kernelName A kernel name, e.g. `"BatchMatMul"`.
 * @returns The replaced kernel's config, or undefined.
 *
 * @example Time tfjs's own transposed matrix product against ours
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { initBackend } from "../backend.ts";
 * import { replacedWasmKernel } from "./mod.ts";
 *
 * await initBackend("wasm");
 * const original = replacedWasmKernel("BatchMatMul");
 * assert.ok(original !== undefined);
 * const a = tf.ones([3, 2]);
 * const b = tf.ones([3, 4]);
 * const info = original.kernelFunc({
 *   inputs: { a, b },
 *   backend: tf.backend(),
 *   attrs: { transposeA: true, transposeB: false },
 * }) as tf.TensorInfo;
 * const out = tf.engine().makeTensorFromTensorInfo(info);
 * assert.deepEqual(out.shape, [2, 4]);
 * tf.dispose([a, b, out]);
 * ```
 */
export function replacedWasmKernel(kernelName: string): tf.KernelConfig | undefined {
  const current = tf.getKernel(kernelName, "wasm") as Partial<WasmKernelReplacement> | undefined;
  return current?.original;
}
