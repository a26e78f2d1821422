"""PyTorch's side of the bench's ResNet-20 rows: lib/models/resnet20.ts's network, trained the
same way, block by block (the step, the batches and the protocol are bench/pytorch_worker.py's).

conv 3x3 16 -> [BN] -> ReLU; three stages of three basic blocks (16, 32, 64 channels, the
first block of stages 2 and 3 with stride 2); a basic block is conv 3x3 -> [BN] -> ReLU ->
conv 3x3 -> [BN], plus the shortcut (identity, or conv 1x1 stride 2 -> [BN] where the shape
changes), then ReLU; global average pool -> dense 10. Convolutions before a BN have no bias;
3x3 convolutions pad 1 on each side (tfjs's `same` at stride 2 pads bottom/right only: the
same sizes and work, positions shifted by one pixel).
"""

from torch import nn

from pytorch_worker import serve


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, bn: bool):
        super().__init__()

        def norm(c: int) -> nn.Module:
            return nn.BatchNorm2d(c) if bn else nn.Identity()

        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=not bn),
            norm(cout),
            nn.ReLU(),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=not bn),
            norm(cout),
        )
        self.shortcut = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=not bn), norm(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.body(x) + self.shortcut(x))


def resnet20(bn: bool) -> nn.Module:
    layers: list = [
        nn.Conv2d(1, 16, 3, 1, 1, bias=not bn),
        nn.BatchNorm2d(16) if bn else nn.Identity(),
        nn.ReLU(),
    ]
    cin = 16
    for stage, cout in enumerate((16, 32, 64)):
        for block in range(3):
            stride = 2 if stage > 0 and block == 0 else 1
            layers.append(BasicBlock(cin, cout, stride, bn))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10)]
    return nn.Sequential(*layers)


if __name__ == "__main__":
    serve(resnet20)
