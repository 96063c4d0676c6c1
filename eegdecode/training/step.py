"""One optimisation step, with nothing read back to the host.

:class:`TrainStep` runs forward (bf16 autocast on CUDA), the loss on the global batch (differentiable all-gather
under DDP), backward, optional gradient clipping, the optimiser and the scheduler, and adds the detached loss parts
to running sums on the device. :meth:`TrainStep.epoch_means` reads them once per epoch: the only host
synchronisation of an epoch, apart from the progress bar's occasional loss value.
"""

from __future__ import annotations

import math

import torch

from eegdecode.models.heads import LayerRouter
from eegdecode.training.distributed import gather


def lr_lambda(warmup_steps: int, total_steps: int, cosine: bool):
    def factor(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        if cosine:
            progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return 1.0

    return factor


def make_optimizer(
    model: torch.nn.Module,
    lr: float,
    weight_decay: float,
    device: torch.device,
    router_lr: float | None = None,
    betas: tuple[float, float] = (0.9, 0.999),
    exclude=(),
):
    """AdamW with the fused kernel (one kernel for all parameters, on CUDA and CPU; no host reads per step).

    ``router_lr``: the parameters of the model's :class:`~eegdecode.models.heads.LayerRouter` (global logits,
    subject biases) in a second group at this learning rate (same weight decay; the scheduler scales both);
    ``None``: one group, as SAMGA's single AdamW. ``betas``: AdamW's coefficients (``TrainConfig.betas``; with
    ``weight_decay`` 0 this is Adam, as NICE's ``Adam(betas=(0.5, 0.999))``). ``exclude``: parameters left out
    (SAMGA's stage-2 optimizer without the frozen shared projector)."""
    fused = device.type in ("cuda", "cpu")
    excluded = {id(p) for p in exclude}
    params = [p for p in model.parameters() if id(p) not in excluded]
    if router_lr is not None:
        routed = {id(p) for m in model.modules() if isinstance(m, LayerRouter) for p in m.parameters()}
        if not routed:
            raise ValueError("router_lr is set but the model has no LayerRouter")
        params = [{"params": [p for p in params if id(p) not in routed]},
                  {"params": [p for p in params if id(p) in routed], "lr": router_lr}]  # fmt: skip
    return torch.optim.AdamW(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay, fused=fused)


class TrainStep:
    """``step(batch)`` trains on one :class:`~eegdecode.training.batches.Batch`; returns the loss (on the device).

    ``targets`` (:class:`~eegdecode.training.targets.TrainTargets`) gives the batch its targets; a model with a
    target side (router head) maps them into its space. ``loss_fn`` may be swapped between epochs (loss stages).
    """

    def __init__(
        self, model, forward, targets, loss_fn, optimizer, scheduler, grad_clip: float | None, amp: bool
    ):
        self.model, self.forward, self.targets, self.loss_fn = model, forward, targets, loss_fn
        self.optimizer, self.scheduler, self.grad_clip, self.amp = optimizer, scheduler, grad_clip, amp
        self.count = 0
        self._keys: list[str] | None = None
        self._sums: torch.Tensor | None = None
        self._n = 0

    def __call__(self, batch) -> torch.Tensor:
        img, txt = self.targets.rows(batch)
        with torch.autocast(batch.eeg.device.type, dtype=torch.bfloat16, enabled=self.amp):
            out = self.forward(batch.eeg, batch.subject)
        out = out.float()
        if hasattr(self.model, "encode_targets"):
            img = self.model.encode_targets(img, batch.subject)
        total, parts = self.loss_fn(gather(out), gather(img), self.model.logit_scale,
                                    txt=None if txt is None else gather(txt))  # fmt: skip
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.targets.observe(batch, out, img)
        keys = sorted(parts)
        if keys != self._keys:  # a new loss stage: new parts
            self._keys, self._sums, self._n = keys, None, 0
        vec = torch.stack([parts[k].double() for k in keys])
        self._sums = vec if self._sums is None else self._sums + vec
        self._n += 1
        self.count += 1
        return total.detach()

    def epoch_means(self) -> dict[str, float]:
        """Mean of each loss part over the epoch's steps (one read from the device); resets the sums."""
        if self._sums is None:
            return {}
        means = (self._sums / self._n).tolist()
        out = dict(zip(self._keys, means))
        self._sums, self._n = None, 0
        return out
