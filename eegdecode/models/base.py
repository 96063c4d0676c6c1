"""The contract every encoder in this package keeps.

An encoder maps a batch of epochs ``x`` of shape ``(batch, n_chans, n_times)`` plus each sample's subject index
to a ``(batch, n_outputs)`` embedding. Constructors share braindecode's uniform signature
``(n_chans, n_times, n_outputs=1024, n_subjects=1, **options)`` so encoders are interchangeable in a loop, and
every encoder owns the learnable CLIP logit scale (initialised at ln(1/0.07)) that the contrastive loss reads.
:class:`EEGEncoder` holds that shared part: argument validation, the logit scale and input checks.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from eegdecode.errors import ConfigError

LOGIT_SCALE_INIT = math.log(1 / 0.07)


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"Invalid value for {name}: {value!r}; expected a positive integer")
    return value


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of ``model``, logit scale included.

    Parameters
    ----------
    model : nn.Module
        Any module.
    trainable_only : bool
        Count only parameters with ``requires_grad`` (default), else all.

    Returns
    -------
    int
        The total number of scalar parameters.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


class EEGEncoder(nn.Module):
    """Base class: uniform constructor, logit scale, input validation.

    Parameters
    ----------
    n_chans : int
        Number of EEG/MEG channels of the input.
    n_times : int
        Number of time samples of the input.
    n_outputs : int
        Size of the output embedding (1024 for OpenCLIP ViT-H-14).
    n_subjects : int
        Number of subjects whose samples may appear in a batch; only encoders with subject-specific layers
        use it, the others accept it for a uniform signature.
    """

    def __init__(self, n_chans: int, n_times: int, n_outputs: int = 1024, n_subjects: int = 1):
        super().__init__()
        self.n_chans = _check_positive_int("n_chans", n_chans)
        self.n_times = _check_positive_int("n_times", n_times)
        self.n_outputs = _check_positive_int("n_outputs", n_outputs)
        self.n_subjects = _check_positive_int("n_subjects", n_subjects)
        self.logit_scale = nn.Parameter(torch.tensor(LOGIT_SCALE_INIT))

    def _check_input(self, x: torch.Tensor, subject_idx: torch.Tensor | None) -> torch.Tensor:
        """Validate ``x`` and return ``subject_idx`` as a LongTensor ``(batch,)`` (zeros when None).

        Only shapes and dtypes are checked here (no device synchronisation); subject layers check the values.
        """
        if (
            not isinstance(x, torch.Tensor)
            or x.ndim != 3
            or tuple(x.shape[1:]) != (self.n_chans, self.n_times)
        ):
            found = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ConfigError(
                f"{type(self).__name__} input x: expected shape (batch, {self.n_chans}, {self.n_times}), "
                f"found {found}"
            )
        if not x.is_floating_point():
            raise ConfigError(
                f"{type(self).__name__} input x: expected a floating-point tensor, found {x.dtype}"
            )
        batch = x.shape[0]
        if subject_idx is None:
            return torch.zeros(batch, dtype=torch.long, device=x.device)
        if not isinstance(subject_idx, torch.Tensor):
            subject_idx = torch.as_tensor(subject_idx)
        if subject_idx.ndim != 1 or subject_idx.shape[0] != batch:
            raise ConfigError(
                f"{type(self).__name__} subject_idx: expected shape ({batch},), found {tuple(subject_idx.shape)}"
            )
        if subject_idx.is_floating_point() or subject_idx.dtype == torch.bool:
            raise ConfigError(
                f"{type(self).__name__} subject_idx: expected an integer tensor, found {subject_idx.dtype}"
            )
        return subject_idx.to(device=x.device, dtype=torch.long)

    def extra_repr(self) -> str:
        return (
            f"n_chans={self.n_chans}, n_times={self.n_times}, n_outputs={self.n_outputs}, "
            f"n_subjects={self.n_subjects}"
        )
