"""Distributed set-up in one place: the process group under ``torchrun``, this process's rank, and the
differentiable all-gather the contrastive losses use, and the training forward pass (:class:`TrainingForward`: the
model, or its DistributedDataParallel wrapper, which follows the parameters a loss stage freezes).

``torchrun`` sets ``WORLD_SIZE``; :func:`process_group` starts the group when it is above 1 (NCCL when the run
trains on a GPU, gloo otherwise, so ``--device cpu`` works on a GPU machine too) and ends it on exit if it started
it. Outside ``torchrun`` everything here is a no-op with rank 0 of 1.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch
import torch.distributed as dist


def rank_world() -> tuple[int, int]:
    """``(rank, world size)`` of this process; ``(0, 1)`` outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather(x: torch.Tensor) -> torch.Tensor:
    """All-gather along the batch with gradients flowing back to every rank's own slice."""
    _, world = rank_world()
    if world == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x), dim=0)


@contextlib.contextmanager
def process_group(device: str = "auto") -> Iterator[None]:
    """The process group of a ``torchrun`` launch for a run on ``device`` (started here, ended on exit)."""
    started = False
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and str(device) != "cpu" else "gloo"
        dist.init_process_group(backend)
        started = True
    try:
        yield
    finally:
        if started:
            dist.destroy_process_group()


class TrainingForward:
    """The training forward pass of ``model``: the model itself, or under ``torchrun`` its DistributedDataParallel
    wrapper; ``torch.compile``'d when ``compile``.

    DDP reduces the gradients of the parameters that required them when the wrapper was made, and fails on the
    next step if one of them gets none. A loss stage that freezes a part of the model mid-run (SAMGA's stage 2
    freezes the head's shared projector) therefore needs a new wrapper: it is rebuilt whenever the set of
    trainable parameters changes (checked each call: one flag per parameter tensor). The model's parameters and
    buffers are unchanged by a rebuild (DDP broadcasts rank 0's, which every rank already holds).
    """

    def __init__(self, model: torch.nn.Module, device: torch.device, compile: bool = False):
        self.model, self.device, self.compile = model, device, compile
        self._trainable: tuple[bool, ...] | None = None
        self._forward = None
        self.builds = 0

    def _build(self) -> None:
        _, world = rank_world()
        forward = self.model
        if world > 1:
            forward = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        self._forward = torch.compile(forward) if self.compile else forward
        self.builds += 1

    def __call__(self, *args, **kwargs):
        trainable = tuple(p.requires_grad for p in self.model.parameters())
        if trainable != self._trainable:
            if self._forward is None or rank_world()[1] > 1:  # one process: the model follows by itself
                self._build()
            self._trainable = trainable
        return self._forward(*args, **kwargs)
