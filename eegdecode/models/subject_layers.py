"""Subject-specific linear layers, indexed by each sample's subject.

ATM and NervFormerV2 apply a per-subject ``Linear(n_times -> n_times)`` to the time axis of every channel. The
original kept a list of such layers but always used the first one, whatever the subject. Here the weights of all
subjects are stacked in one tensor ``(n_subjects, out_features, in_features)`` and each sample goes through its
own subject's layer. On CPU a batch is processed with one matrix product per subject present in it (at most
``n_subjects`` products, not one per sample), so a joint multi-subject batch costs about the same as a
single-subject one. On an accelerator, and under ``torch.compile``, the forward never reads device values back
(no ``unique().tolist()``, which would stall the GPU every step and break the compiled graph): with one subject layer
it is one product; with several, every layer runs on the whole batch and each row keeps its own subject's output
(the same values, at ``n_subjects`` times this layer's cost, which is small against the encoder).

Source: ``subject_wise_linear`` in ``ChiShengChen/EEG_gen_img_NECOMIMI`` / ATM (``dongyangli-del/EEG_Image_decode``),
whose scripts always applied ``subject_wise_linear[0]`` whatever the subject.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class SubjectLinear(nn.Module):
    """One affine map of the last axis per subject.

    Parameters
    ----------
    n_subjects : int
        Number of subjects (one layer each).
    in_features, out_features : int
        Sizes of the last axis before and after the map.

    Shapes
    ------
    ``x (batch, ..., in_features)`` and ``subject_idx (batch,)`` -> ``(batch, ..., out_features)``.

    Notes
    -----
    Each subject's layer is initialised like ``nn.Linear`` (uniform in +-1/sqrt(in_features)).
    """

    def __init__(self, n_subjects: int, in_features: int, out_features: int):
        super().__init__()
        self.n_subjects = n_subjects
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(n_subjects, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(n_subjects, out_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.in_features)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor, subject_idx: torch.Tensor | None = None) -> torch.Tensor:
        if subject_idx is None or subject_idx.numel() == 0 or self.n_subjects == 1:
            if subject_idx is not None and subject_idx.numel() and self._eager_checks(x):
                self._check_range(subject_idx)
            return F.linear(x, self.weight[0], self.bias[0])
        if not self._eager_checks(x):
            return self._forward_masked(x, subject_idx)
        present = self._check_range(subject_idx)
        if len(present) == 1:
            return F.linear(x, self.weight[present[0]], self.bias[present[0]])
        pieces = []
        for subject in present:
            rows = torch.nonzero(subject_idx == subject, as_tuple=True)[0]
            pieces.append((rows, F.linear(x[rows], self.weight[subject], self.bias[subject])))
        # Allocate after the products so the result takes their dtype (bfloat16 under autocast).
        out = pieces[0][1].new_empty(*x.shape[:-1], self.out_features)
        for rows, piece in pieces:
            out = out.index_copy(0, rows, piece)
        return out

    @staticmethod
    def _eager_checks(x: torch.Tensor) -> bool:
        """On CPU, outside torch.compile, reading indices costs nothing: group the batch by subject and check
        the range. On an accelerator (or compiled) the forward never reads device values back to the host."""
        return x.device.type == "cpu" and not torch.compiler.is_compiling()

    def _check_range(self, subject_idx: torch.Tensor) -> list[int]:
        present = torch.unique(subject_idx).tolist()
        if present[0] < 0 or present[-1] >= self.n_subjects:
            raise ValueError(
                f"subject_idx: expected values in [0, {self.n_subjects - 1}] (n_subjects={self.n_subjects}), "
                f"found {present}"
            )
        return present

    def _forward_masked(self, x: torch.Tensor, subject_idx: torch.Tensor) -> torch.Tensor:
        """Every subject's layer on the whole batch, each row kept from its own subject's: no host
        synchronisation and no graph break, at ``n_subjects`` times this layer's cost."""
        torch._assert_async(((subject_idx >= 0) & (subject_idx < self.n_subjects)).all())
        shape = (-1,) + (1,) * (x.ndim - 1)
        out = F.linear(x, self.weight[0], self.bias[0])
        for subject in range(1, self.n_subjects):
            mine = (subject_idx == subject).view(shape)
            out = torch.where(mine, F.linear(x, self.weight[subject], self.bias[subject]), out)
        return out

    def extra_repr(self) -> str:
        return (
            f"n_subjects={self.n_subjects}, in_features={self.in_features}, out_features={self.out_features}"
        )
