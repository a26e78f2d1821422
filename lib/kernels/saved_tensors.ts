/**
 * Tensors saved for a gradient, kept without a kernel call or a tape node of their own where
 * nothing differentiates the gradient itself.
 *
 * While gradients are recorded, tfjs's engine keeps, for each kernel whose gradient needs
 * them, a copy of its inputs or outputs (`clone`), which runs the `Identity` kernel (on wasm
 * bnlab's shares the data, `identity.ts`) and pushes a tape node whose own gradient links the
 * copy to the original, for higher-order gradients; functions with a custom gradient
 * (`tf.customGrad`: tfjs's softmax cross-entropy and fused products, bnlab's batch-norm op)
 * save theirs through the same `clone`. A LeNet step makes 33 such copies without batch norm
 * (10 of them for custom gradients), 46 with bnlab's and 101 with tfjs's: as many kernel
 * dispatches and tape nodes, which the gradient pass then filters out again, for nothing but
 * the shared data.
 *
 * {@linkcode setLeanSavedTensors} replaces the engine's `saveTensorsForBackwardMode` and
 * `clone` with ones that, on wasm and at first order (one gradient being recorded, so that
 * the backward pass runs untaped and nothing reads the copies' tape nodes), make each copy as
 * that `Identity` does — a new tensor over the same data, whose reference count goes up by
 * one — without the dispatch or the tape node. Everywhere else (other backends, nested
 * gradients, strings) they call tfjs's. The saved tensors hold the same data either way, so
 * every float is the same; `initBackend("wasm")` turns it on.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { WasmBackend } from "./wasm_kernel.ts";

/** The parts of tfjs's engine this module reads and replaces. */
interface _Engine {
  state: { gradientDepth: number };
  backendName: string;
  backend: unknown;
  saveTensorsForBackwardMode(tensors: tf.Tensor[]): tf.Tensor[];
  clone(x: tf.Tensor): tf.Tensor;
  makeTensorFromTensorInfo(info: tf.TensorInfo, backend?: unknown): tf.Tensor;
  keep<T extends tf.Tensor>(tensor: T): T;
}

const _engine = tf.engine() as unknown as _Engine;

/** tfjs's own `saveTensorsForBackwardMode`, as it was when this module loaded. */
const _tfjsSave = _engine.saveTensorsForBackwardMode;

/** tfjs's own `clone` (an `Identity` and a tape node), as it was when this module loaded. */
const _tfjsClone = _engine.clone;

/** Whether `tensors` can be saved as shared copies: on wasm, at first order, no strings. */
function _leanApplies(engine: _Engine, tensors: tf.Tensor[]): boolean {
  return engine.backendName === "wasm" && engine.state.gradientDepth === 1 &&
    tensors.every((t) => t instanceof tf.Tensor && t.dtype !== "string");
}

/** A new tensor over `t`'s data (its reference count + 1), as `Identity` on wasm makes it. */
function _sharedCopy(engine: _Engine, t: tf.Tensor): tf.Tensor {
  const backend = engine.backend as WasmBackend;
  backend.incRef(t.dataId);
  return engine.makeTensorFromTensorInfo(
    { dataId: t.dataId, shape: [...t.shape], dtype: t.dtype },
    backend,
  );
}

/** Copies of `tensors` over the same data, kept, as `Identity` on wasm would make them. */
function _shared(this: _Engine, tensors: tf.Tensor[]): tf.Tensor[] {
  if (!_leanApplies(this, tensors)) return _tfjsSave.call(this, tensors);
  return tensors.map((t) => this.keep(_sharedCopy(this, t)));
}

/** The engine's `clone` of a tensor a custom gradient saves (the caller keeps it). */
function _sharedClone(this: _Engine, x: tf.Tensor): tf.Tensor {
  if (!_leanApplies(this, [x])) return _tfjsClone.call(this, x);
  return _sharedCopy(this, x);
}

/**
 * Turns the lean saved tensors on (the default once `initBackend("wasm")` has run) or off
 * (tfjs's clones everywhere); the gradients are the same either way.
 *
 * @param enabled Whether saved tensors skip the clone's dispatch and tape node where they can.
 * @returns Whether they did before the call.
 *
 * @example The same gradient either way
 * ```ts
 * import assert from "node:assert/strict";
 * import * as tf from "@tensorflow/tfjs";
 * import { initBackend } from "../backend.ts";
 * import { setLeanSavedTensors } from "./saved_tensors.ts";
 *
 * await initBackend("wasm");
 * const x = tf.tensor1d([0.5, -2, 3]);
 * const gradient = () => tf.grad((v: tf.Tensor) => tf.sum(tf.mul(tf.sigmoid(v), v)))(x);
 * const lean = await gradient().data();
 * const previous = setLeanSavedTensors(false);
 * assert.deepEqual(await gradient().data(), lean);
 * setLeanSavedTensors(previous);
 * ```
 */
export function setLeanSavedTensors(enabled: boolean): boolean {
  const previous = _engine.saveTensorsForBackwardMode === _shared;
  _engine.saveTensorsForBackwardMode = enabled ? _shared : _tfjsSave;
  _engine.clone = enabled ? _sharedClone : _tfjsClone;
  return previous;
}
