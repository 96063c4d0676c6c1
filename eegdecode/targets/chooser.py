"""``BlurChooser``: the blur level of each training sample, fixed, random or by UBP's uncertainty-aware rule.

The target of a sample is the feature of its image under one of ``n_levels`` precomputed blur variants (ordered
from least to most blurred). All state lives in buffers on the module's device and every step is tensor
arithmetic, so choosing and updating never synchronise with the host.

Rules:

``fixed``
    Always level ``level`` (default: the middle one).
``random``
    A level drawn uniformly per sample and step from a counter-based hash of ``(seed, step, sample index)``: the
    same seed gives the same levels on any device and for any batching.
``uncertainty``
    UBP, "Bridging the Vision-Brain Gap with an Uncertainty-Aware Blur Prior" (Wu et al., CVPR 2025;
    github.com/HaitaoWuTJU/Uncertainty-aware-Blur-Prior), with three levels (low, medium, high blur; UBP: foveated
    kernels 45, 51, 57). Every sample keeps a running similarity ``s_i`` (initially 1). After a step with the
    matched EEG-image similarities ``d_i`` (UBP uses the diagonal of the scaled logits) of the batch's samples:
    ``s_i <- gamma * d_i + (1 - gamma) * s_i`` (``gamma = 0.3``); over the batch, the mean ``m`` and the standard
    deviation ``sd`` (ddof 1) of the updated ``s`` give the band ``m +- z * sd`` with ``z`` the two-sided normal
    quantile of ``alpha = 0.05`` (1.96). A sample whose ``d_i`` lies above the band (a confident match) gets the
    low blur next time, below it (an uncertain match) the high blur, inside it the medium one. Every sample starts
    at the medium level, and evaluation uses the medium level. (UBP hands the new levels to its data set at the
    end of each epoch; here a sample's new level applies the next time it is drawn, which for one pass per epoch
    is the same.)
"""

from __future__ import annotations

import statistics

import torch
from torch import nn

from eegdecode.errors import check_option

RULES = ("fixed", "random", "uncertainty")
_MASK = (1 << 31) - 1


def _mix(x: torch.Tensor) -> torch.Tensor:
    """An integer hash of int64 ``x`` into [0, 2**31) (xorshift-multiply, kept in 31 bits to avoid overflow)."""
    x = x & _MASK
    x = ((x >> 16) ^ x) * 0x45D9F3B & _MASK
    x = ((x >> 16) ^ x) * 0x45D9F3B & _MASK
    return (x >> 16) ^ x


class BlurChooser(nn.Module):
    """Per-sample blur levels; see the module docstring.

    Parameters
    ----------
    n_samples : int
        Number of training samples (the indices passed to :meth:`choose` and :meth:`update`).
    n_levels : int
        Number of blur variants, ordered from least to most blurred (3 for ``uncertainty``).
    rule : {"fixed", "random", "uncertainty"}
    level : int, optional
        The level of ``fixed`` (default the middle one, ``n_levels // 2``).
    seed : int
        Seed of ``random``.
    gamma, alpha : float
        UBP's running-similarity weight (0.3) and band level (0.05).
    """

    def __init__(self, n_samples: int, n_levels: int, rule: str = "fixed", level: int | None = None,
                 seed: int = 0, gamma: float = 0.3, alpha: float = 0.05):  # fmt: skip
        super().__init__()
        check_option("rule", rule, RULES)
        if n_samples < 1 or n_levels < 1:
            raise ValueError(f"Invalid value for n_samples/n_levels: {n_samples}, {n_levels}; expected >= 1")
        if rule == "uncertainty" and n_levels != 3:
            raise ValueError(
                f"Invalid value for n_levels: {n_levels}; the uncertainty rule uses 3 (low, medium, high)"
            )
        level = n_levels // 2 if level is None else int(level)
        if not 0 <= level < n_levels:
            raise ValueError(f"Invalid value for level: {level}; allowed values are 0 .. {n_levels - 1}")
        if not 0 < gamma <= 1 or not 0 < alpha < 1:
            raise ValueError(
                f"Invalid value for gamma/alpha: {gamma}, {alpha}; expected 0 < gamma <= 1, 0 < alpha < 1"
            )
        self.rule, self.n_levels, self.level, self.seed = rule, n_levels, level, int(seed)
        self.gamma, self.alpha = float(gamma), float(alpha)
        self.z = statistics.NormalDist().inv_cdf(1 - alpha / 2)
        self.register_buffer("similarity", torch.ones(n_samples))
        self.register_buffer("levels", torch.full((n_samples,), level, dtype=torch.long))
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def choose(self, idx: torch.Tensor, train: bool = True) -> torch.Tensor:
        """Levels ``(batch,)`` long of the samples ``idx`` (on the module's device); evaluation gets ``level``.

        ``random`` advances its step counter on every training call.
        """
        idx = idx.to(self.levels.device, torch.long)
        if not train or self.rule == "fixed":
            return torch.full_like(idx, self.level)
        if self.rule == "uncertainty":
            return self.levels[idx]
        h = _mix(_mix(idx * 0x9E3779B1 + self.step * 0x85EBCA77 + self.seed) + self.seed)
        self.step += 1
        return h % self.n_levels

    @torch.no_grad()
    def update(self, idx: torch.Tensor, matched_similarity: torch.Tensor) -> None:
        """UBP's update after a training step (no-op for the other rules); ``idx`` must not repeat in a batch."""
        if self.rule != "uncertainty":
            return
        idx = idx.to(self.levels.device, torch.long)
        d = matched_similarity.detach().to(self.similarity.device, torch.float32)
        s = self.gamma * d + (1 - self.gamma) * self.similarity[idx]
        mean, sd = s.mean(), s.std(correction=1)
        new = torch.ones_like(idx)
        new = torch.where(d > mean + self.z * sd, torch.zeros_like(new), new)
        new = torch.where(d < mean - self.z * sd, torch.full_like(new, 2), new)
        self.similarity[idx] = s
        self.levels[idx] = new

    def select(self, stack: torch.Tensor, rows: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
        """Gather targets from ``stack`` ``(n_levels, n_rows, dim)`` (on the device): row ``rows[i]`` at level
        ``levels[i]``."""
        return stack[levels, rows]

    def extra_repr(self) -> str:
        return f"rule={self.rule!r}, n_levels={self.n_levels}, level={self.level}, seed={self.seed}"
