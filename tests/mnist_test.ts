import assert from "node:assert/strict";
import { FASHION_MNIST_DIR, loadDataset, loadFashionMnist, loadMnist } from "../lib/data/mnist.ts";

function countOf(labels: Uint8Array, label: number): number {
  return labels.reduce((n, l) => n + (l === label ? 1 : 0), 0);
}

Deno.test("MNIST: 60,000 training and 10,000 test images of 28×28 in [0, 1]", async () => {
  const train = await loadMnist({ split: "train" });
  const test = await loadMnist({ split: "test" });
  assert.deepEqual([train.count, test.count], [60000, 10000]);
  assert.deepEqual([train.height, train.width, train.numClasses], [28, 28, 10]);
  assert.equal(train.images.length, 60000 * 784);
  let min = Infinity, max = -Infinity;
  for (const v of test.images) (min = Math.min(min, v)), (max = Math.max(max, v));
  assert.deepEqual([min, max], [0, 1]);
  assert.ok(test.labels.every((l) => l <= 9));
  // The report's no-BN run scored 1135/10000: exactly the number of 1s in the test split.
  assert.equal(countOf(test.labels, 1), 1135);
  // The first training labels of the original files (LeCun's MNIST): 5 0 4 1 9 2 1 3 1 4.
  assert.deepEqual(Array.from(train.labels.subarray(0, 10)), [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
  // Per-class test counts from the same files, summing to 10,000.
  const counts = Array.from({ length: 10 }, (_, k) => countOf(test.labels, k));
  assert.deepEqual(counts, [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
});

Deno.test("loadMnist limit takes the first N images and validates N", async () => {
  const full = await loadMnist({ split: "test" });
  const few = await loadMnist({ split: "test", limit: 7 });
  assert.equal(few.count, 7);
  assert.deepEqual(few.images, full.images.subarray(0, 7 * 784));
  await assert.rejects(() => loadMnist({ split: "test", limit: 0 }), {
    message: "load mnist: limit must be an integer in [1, 10000], received 0",
  });
  await assert.rejects(() => loadMnist({ split: "test", limit: 10001 }), /received 10001/);
  await assert.rejects(() => loadMnist({ split: "val" as never }), {
    message: 'load mnist: split must be "train" or "test", received "val"',
  });
  await assert.rejects(() => loadDataset("cifar" as never, { split: "test" }), {
    message: 'loadDataset: name must be mnist, fashion-mnist or idx:<dir>, received "cifar"',
  });
});

const hasFashion = await Deno.stat(`${FASHION_MNIST_DIR}/t10k-images-idx3-ubyte.gz`).then(
  () => true,
  () => false,
);

Deno.test({
  name: `Fashion-MNIST from ${FASHION_MNIST_DIR}: 60,000 + 10,000 images, 1,000 per test class`,
  ignore: !hasFashion,
  async fn() {
    const train = await loadFashionMnist({ split: "train" });
    const test = await loadDataset("fashion-mnist", { split: "test" });
    assert.deepEqual([train.count, test.count, test.height, test.width], [60000, 10000, 28, 28]);
    // Fashion-MNIST's test split is balanced: 1,000 images per class (Xiao et al., 2017).
    for (let k = 0; k < 10; k++) assert.equal(countOf(test.labels, k), 1000);
  },
});
