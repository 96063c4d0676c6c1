"""Distributed set-up in one place: the process group under ``torchrun``, this process's rank, and the
differentiable all-gather the contrastive losses use.

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
