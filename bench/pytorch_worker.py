"""The request loop and training step shared by bench/pytorch_lenet.py and
bench/pytorch_resnet20.py: each builds its model and calls `serve` with it.

bench/pytorch.ts starts one of those scripts with Debian's python3 and PyTorch and asks for
timed blocks between its own, so that both see the machine in the same state.

A step is `optimizer.zero_grad(); loss = cross_entropy(model(x), y); loss.backward();
optimizer.step()` with SGD (learning rate 0.01); a block runs `steps` steps over four fixed
random batches of 28x28x1 images (NCHW, PyTorch's layout) and reads the loss once, at its end,
as the tfjs blocks do.

Protocol (one line each way, on stdin/stdout):
  -> {"threads": 2}                                  <- {"torch": "1.13.1", "threads": 2}
  -> {"variant": "bn", "batch": 20, "steps": 25}     <- {"seconds": 0.161}
  -> {"quit": true}                                  (exits)
A variant is "none" or "bn". Errors come back as {"error": "..."}.
"""

import json
import sys
import time
from typing import Callable

import torch
from torch import nn


class Trainer:
    """A model of one variant trained by SGD on four fixed random batches of `batch` images."""

    def __init__(self, build: Callable[[bool], nn.Module], variant: str, batch: int):
        if variant not in ("none", "bn"):
            raise ValueError(f'variant must be "none" or "bn", received {variant!r}')
        if not (isinstance(batch, int) and batch > 0):
            raise ValueError(f"batch must be a positive integer, received {batch!r}")
        generator = torch.Generator().manual_seed(1)
        self.model = build(variant == "bn").train()
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


def serve(build: Callable[[bool], nn.Module]) -> None:
    """Answers the protocol's requests on stdin/stdout; `build(bn)` makes a fresh model."""
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
                    trainers[key] = Trainer(build, *key)
                reply = {"seconds": trainers[key].block(request["steps"])}
        except Exception as error:  # noqa: BLE001 - reported to the caller
            reply = {"error": f"{type(error).__name__}: {error}"}
        print(json.dumps(reply), flush=True)
