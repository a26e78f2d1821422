/**
 * bench/pytorch.ts: the PyTorch worker the bench times beside bnlab. With Debian's PyTorch
 * installed it trains and times blocks and rejects bad requests; without it (as on CI, whose
 * setup does not install PyTorch) startPyTorch says why instead of failing the bench.
 */
import assert from "node:assert/strict";
import { PYTHON, startPyTorch } from "../bench/pytorch.ts";

async function _hasTorch(): Promise<boolean> {
  try {
    const { success } = await new Deno.Command(PYTHON, {
      args: ["-c", "import torch"],
      stdout: "null",
      stderr: "null",
    }).output();
    return success;
  } catch {
    return false;
  }
}

Deno.test("the PyTorch worker times LeNet blocks, or says why it cannot start", async () => {
  const started = await startPyTorch(2);
  if (!(await _hasTorch())) {
    assert.ok("reason" in started, "started without torch");
    assert.match(started.reason, /torch|python3/i);
    return;
  }
  assert.ok("worker" in started, "reason" in started ? started.reason : "");
  const { worker } = started;
  try {
    assert.match(worker.version, /^\d+\.\d+/);
    assert.equal(worker.threads, 2);
    for (const variant of ["none", "bn"] as const) {
      const seconds = await worker.block(variant, 4, 2);
      assert.ok(seconds > 0 && seconds < 60, `${variant}: ${seconds} s`);
    }
    await assert.rejects(
      () => worker.block("x" as "bn", 4, 2),
      { message: /variant must be "none" or "bn", received 'x'/ },
    );
    await assert.rejects(() => worker.block("bn", 4, 0), {
      message: /steps must be a positive integer, received 0/,
    });
  } finally {
    await worker.close();
  }
});

Deno.test("the PyTorch worker times ResNet-20 blocks too", async () => {
  if (!(await _hasTorch())) return;
  const started = await startPyTorch(2, { model: "resnet20" });
  assert.ok("worker" in started, "reason" in started ? started.reason : "");
  const { worker } = started;
  try {
    for (const variant of ["none", "bn"] as const) {
      const seconds = await worker.block(variant, 2, 1);
      assert.ok(seconds > 0 && seconds < 60, `${variant}: ${seconds} s`);
    }
  } finally {
    await worker.close();
  }
  const unknown = await startPyTorch(2, { model: "vgg" as "lenet" });
  assert.ok("reason" in unknown);
  assert.equal(
    unknown.reason,
    'startPyTorch: model must be one of lenet, resnet20, received "vgg"',
  );
});
