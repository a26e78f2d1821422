"""PyTorch's side of `deno task bench`: the same LeNet, trained the same way, block by block.

bench/pytorch.ts starts this with Debian's python3 and PyTorch (`apt-get install
python3-torch`, not part of the setup: the bench skips PyTorch when it is absent) and asks
for timed blocks between its own, so that both see the machine in the same state.

The model is lib/models/lenet.ts's: conv 20@5x5 -> [BN] -> ReLU -> max-pool 2 -> conv 50@5x5
-> [BN] -> ReLU -> max-pool 2 -> flatten -> dense 500 -> [BN] -> ReLU -> dense 10, the layer
before a BN without bias; inputs NHWC as in tfjs are fed as NCHW (PyTorch's layout). A step
is `optimizer.zero_grad(); loss = cross_entropy(model(x), y); loss.backward();
optimizer.step()` with SGD; a block runs `steps` steps over four fixed random batches and
reads the loss once, at its end, as the tfjs blocks do.

Protocol (one line each way, on stdin/stdout):
  -> {"threads": 2}                                  <- {"torch": "1.13.1", "threads": 2}
  -> {"variant": "bn", "batch": 20, "steps": 25}     <- {"seconds": 0.161}
  -> {"quit": true}                                  (exits)
A variant is "none" or "bn". Errors come back as {"error": "..."}.
"""

import json
import sys
import time

import torch
from torch import nn


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


class Trainer:
    def __init__(self, variant: str, batch: int):
        if variant not in ("none", "bn"):
            raise ValueError(f'variant must be "none" or "bn", received {variant!r}')
        if not (isinstance(batch, int) and batch > 0):
            raise ValueError(f"batch must be a positive integer, received {batch!r}")
        generator = torch.Generator().manual_seed(1)
        self.model = lenet(variant == "bn").train()
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01)
        self.batches = [
            (
                torch.rand(batch, 1, 28, 28, generator=generator),
                torch.randint(0, 10, (batch,), generator=generator),
            )
            for _ in range(4)
        ]
        self.step_count = 0

    def step(self) -> torch.Tensor:
        x, y = self.batches[self.step_count % 4]
        self.step_count += 1
        self.optimizer.zero_grad()
        loss = nn.functional.cross_entropy(self.model(x), y)
        loss.backward()
        self.optimizer.step()
        return loss

    def block(self, steps: int) -> float:
        if not (isinstance(steps, int) and steps > 0):
            raise ValueError(f"steps must be a positive integer, received {steps!r}")
        start = time.perf_counter()
        for _ in range(steps - 1):
            self.step()
        self.step().item()
        return time.perf_counter() - start


def main() -> None:
    trainers: dict = {}
    for line in sys.stdin:
        try:
            request = json.loads(line)
            if request.get("quit"):
                return
            if "threads" in request:
                torch.set_num_threads(int(request["threads"]))
                reply = {"torch": torch.__version__, "threads": torch.get_num_threads()}
            else:
                key = (request["variant"], request["batch"])
                if key not in trainers:
                    trainers[key] = Trainer(*key)
                reply = {"seconds": trainers[key].block(request["steps"])}
        except Exception as error:  # noqa: BLE001 - reported to the caller
            reply = {"error": f"{type(error).__name__}: {error}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
