"""PyTorch's side of `deno task bench`: the same LeNet, trained the same way, block by block
(the step, the batches and the protocol are bench/pytorch_worker.py's).

The model is lib/models/lenet.ts's: conv 20@5x5 -> [BN] -> ReLU -> max-pool 2 -> conv 50@5x5
-> [BN] -> ReLU -> max-pool 2 -> flatten -> dense 500 -> [BN] -> ReLU -> dense 10, the layer
before a BN without bias; inputs NHWC as in tfjs are fed as NCHW (PyTorch's layout).
"""

from torch import nn

from pytorch_worker import serve


def lenet(bn: bool) -> nn.Module:
    def block(layer: nn.Module, features: int, conv: bool) -> list:
        norm = [(nn.BatchNorm2d if conv else nn.BatchNorm1d)(features)] if bn else []
        return [layer, *norm, nn.ReLU()]

    return nn.Sequential(
        *block(nn.Conv2d(1, 20, 5, bias=not bn), 20, True),
        nn.MaxPool2d(2, 2),
        *block(nn.Conv2d(20, 50, 5, bias=not bn), 50, True),
        nn.MaxPool2d(2, 2),
        nn.Flatten(),
        *block(nn.Linear(800, 500, bias=not bn), 500, False),
        nn.Linear(500, 10),
    )


if __name__ == "__main__":
    serve(lenet)
