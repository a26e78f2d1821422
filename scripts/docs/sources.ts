/**
 * The source documents the findings test, cited by title, and the sentences quoted from them
 * (in the source's words, with an English translation).
 *
 * @module
 */

/** A source document. */
export interface SourceDocument {
  /** The title as the document gives it. */
  title: string;
  /** What it is and who wrote it, as far as the document says. */
  description: string;
}

/** The documents, by the key the sections use. */
export const SOURCES = {
  report: {
    title: "Batch Normalization 实验",
    description: "a lab report; its code is cited in it as " +
      "`https://github.com/junjunjun-study/pytorch BN/` (`myBN.py`, `MNIST_with_BN.py`)",
  },
  weilit: {
    title: "BN层原理及TF中调用方法",
    description: "a blog post by Weilit (程序猿的自我修养)",
  },
  explained: {
    title: "Batch Normalization详解",
    description: "a blog post deriving the backward pass",
  },
  survey: {
    title: "禅与计算机程序设计艺术: 批归一化",
    description: "a loose survey by 禅与计算机程序设计艺术; several of its claims are wrong",
  },
} as const satisfies Record<string, SourceDocument>;

/** A sentence quoted from a source. */
export interface Claim {
  /** The source's key in {@linkcode SOURCES}. */
  source: keyof typeof SOURCES;
  /** Where in the source (section). */
  where: string;
  /** The words of the source. */
  original: string;
  /** The English translation. */
  translation: string;
}

/** The claims quoted by the findings, by the key the sections use. */
export const CLAIMS = {
  reportSetting: {
    source: "report",
    where: "section 3.2",
    original: "CNN采用的基本参数是: learning_rate=0.001; 隐藏层神经元个数为 500; " +
      "输出层神经元个数为 10; 训练次数 Epoch=20; 批分组大小为 batch_size=20。",
    translation: "The CNN's basic parameters are: learning_rate=0.001; 500 hidden neurons; " +
      "10 output neurons; Epoch=20 training passes; batch_size=20.",
  },
  reportGap: {
    source: "report",
    where: "section 3.4",
    original: "从准确性角度而言,同样训练 20 次,ZJKBN 得到的准确率是 92%,而 pytorch 的准确率是 96%",
    translation: "In accuracy, after the same 20 epochs ZJK_BN reaches 92% and PyTorch's BN 96%.",
  },
  reportMomentum: {
    source: "report",
    where: "section 3.4",
    original: "ZJK_BN 里面的 momentum 取值为 0.1 当调整 momentum 的参数后会得到更好的 loss " +
      "终值和更好的网络结构。所以 momentum 的参数选择是影响 ZJK_BN 和 pyBN 之间的差距的一个因素",
    translation: "ZJK_BN uses a momentum of 0.1; adjusting it gives a better final loss and a " +
      "better network. So the choice of momentum is one factor in the gap between ZJK_BN and " +
      "PyTorch's BN.",
  },
  smallBatch: {
    source: "weilit",
    where: "BN层的缺陷",
    original: "batch normalization依赖于batch的大小,当batch值很小时,计算的均值和方差不稳定。",
    translation: "Batch normalization depends on the batch size: when the batch is very " +
      "small, the mean and variance it computes are unstable.",
  },
  learningRate: {
    source: "weilit",
    where: "BN层带来的好处",
    original: "训练更快,可以使用更高的学习率",
    translation: "Training is faster, and a higher learning rate can be used.",
  },
  unbiasedVariance: {
    source: "explained",
    where: "the test-time statistics after the derivation",
    original: "var_{test} = \\frac{m}{m-1} E[var]",
    translation: "At test time the variance is the mean of the batch variances times m/(m−1).",
  },
  covariateShift: {
    source: "report",
    where: "section 1",
    original: "每一层的参数更新会导致上层的输入数据分布发生变化",
    translation: "Each layer's parameter updates change the distribution of the inputs of the " +
      "layers above it.",
  },
  resnet: {
    source: "survey",
    where: "第一步",
    original:
      "我们将训练一个ResNet-20模型 … 通过实验,我们可以看出,使用批归一化能够显著提升模型性能",
    translation: "We train a ResNet-20 model … the experiments show that batch normalization " +
      "improves the model's performance markedly.",
  },
} as const satisfies Record<string, Claim>;

/**
 * A claim as Markdown: the quotation, its source, the translation.
 *
 * @param key The claim's key in {@linkcode CLAIMS}.
 * @returns The Markdown block.
 *
 * @example
 * ```ts
 * import { claim } from "./sources.ts";
 * console.log(claim("learningRate").includes("可以使用更大的学习率")); // true
 * ```
 */
export function claim(key: keyof typeof CLAIMS): string {
  const c: Claim = CLAIMS[key];
  const source = SOURCES[c.source];
  return `> ${c.original}\n>\n> — «${source.title}», ${c.where}\n\n${c.translation}`;
}
