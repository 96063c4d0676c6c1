"""BlurEEGEncoder: the multi-blur paper's EEG encoder, a non-negative spatial filter bank and a temporal MLP.

Architecture, for an epoch of ``n_chans`` x ``n_times`` (63 x 250 in the paper's THINGS-EEG2 recipe):

1. **Non-negative spatial filters** - 25 filters, each a weighted sum of all channels with weights >= 0 and no
   bias (the original's ``Conv2d(1 -> 25, n_chans x 1)`` with its weight made non-negative): ``(batch, 25,
   n_times)``. The filters are sums of electrodes, never differences, so each reads like a scalp map of where
   the signal comes from.
2. **BatchNorm** over the 25 filters (statistics over the batch and time).
3. **Temporal MLP**, shared by all filters and applied along time: Linear(n_times -> 200), ELU, Dropout 0.25,
   Linear(200 -> 200), ELU, Dropout 0.65: ``(batch, 25, 200)``.
4. **Flatten filter by filter** (25 x 200 = 5,000 values, all 200 features of filter 0 first) and one
   Linear(5000 -> n_outputs). No normalisation at the end.

``subject_idx`` is accepted and ignored (no subject layer).

**Non-negativity.** The original keeps an ordinary weight and, at the start of every forward call, overwrites its
stored value with its absolute value (``weight.data = abs(weight.data)``); the optimiser then updates it as if it
were unconstrained, and the next forward folds any weight that stepped below zero back to the positive side.
Here the stored parameter ``spatial_weight`` is left alone and the forward pass uses ``spatial_weight.abs()``
(:attr:`BlurEEGEncoder.spatial_filters`), so forward mutates no parameter and the trainer needs no special case:
the filters the model applies are non-negative after any optimiser step. The parameter is initialised as in the original
(PyTorch's default convolution init, ``U(-1/sqrt(n_chans), 1/sqrt(n_chans))``) and folded once, so the stored and
applied weights coincide at the start. The training dynamics are the original's exactly for plain SGD (a test
checks it step by step, with weights crossing zero): ``|w - lr * sign(w) g| = ||w| - lr g|``. With Adam(W) they
are the same as long as a weight does not cross zero (Adam is sign-equivariant per coordinate, and decoupled
weight decay shrinks ``|w|`` alike); after a crossing the stored value keeps its new sign here, so the gradient
reaching it flips sign while Adam's running moments do not, whereas the original's folded weight keeps the
moments' sign.

The paper's ``Brain_Visual_Encoder_MEG`` (THINGS-MEG) is this network with 50 filters, a 150-wide MLP, an
unconstrained spatial weight and no BatchNorm: ``BlurEEGEncoder(271, 201, n_filters=50, hidden_dim=150,
non_negative=False, batch_norm=False)``.

Parameters, logit scale included: 5,213,050 at 63 x 250 and 5,211,900 at 17 x 250 (spatial ``25 * n_chans``,
BatchNorm 50, MLP ``(n_times + 1) * 200 + 201 * 200``, head ``5000 * 1024 + 1024``, logit scale 1).

Source: ``Brain_Visual_Encoder_EEG`` (with ``Conv2dWithAbs``) in ``models/Encoder.py`` of
``makeitperfect/VisualEEGDecoding`` (Liu et al., "Leveraging Visual Blur Perception Characteristics for EEG
Decoding", AAAI 2026), built by ``main_eeg.py`` as ``Brain_Visual_Encoder_EEG(63, 1024, 250)``. Only the EEG
branch is here: the original class also holds the image side (a learned softmax mixing of the 12 blur levels'
CLIP features and an image adapter MLP), which is not part of an encoder in this package. The original has no
logit scale: its loss multiplies unnormalised EEG embeddings by normalised image features with a fixed
multiplier of 1; the learnable ``logit_scale`` here is the package's uniform encoder contract, read (or not) by
the loss.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from eegdecode.errors import ConfigError
from eegdecode.models.base import EEGEncoder, _check_positive_int


def _check_dropout(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ConfigError(f"Invalid value for {name}: {value!r}; expected a number in [0, 1)")
    return float(value)


class BlurEEGEncoder(EEGEncoder):
    """Non-negative spatial filters -> BatchNorm -> temporal MLP -> linear head (Liu et al., AAAI 2026).

    Parameters
    ----------
    n_chans, n_times : int
        Input size (63 x 250 in the paper's recipe).
    n_outputs : int
        Embedding size (1024, CLIP RN50's embedding in the paper).
    n_subjects : int
        Accepted for a uniform signature; unused.
    n_filters : int
        Number of spatial filters (25).
    hidden_dim : int
        Width of the temporal MLP (200).
    first_dropout, second_dropout : float
        Dropout after the first and the second MLP layer (0.25 and 0.65).
    non_negative : bool
        Apply the spatial weights' absolute values (True, the EEG encoder); False leaves them unconstrained (the
        paper's MEG encoder).
    batch_norm : bool
        BatchNorm after the spatial filters (True for EEG, False in the paper's MEG encoder).
    """

    def __init__(
        self,
        n_chans: int,
        n_times: int,
        n_outputs: int = 1024,
        n_subjects: int = 1,
        *,
        n_filters: int = 25,
        hidden_dim: int = 200,
        first_dropout: float = 0.25,
        second_dropout: float = 0.65,
        non_negative: bool = True,
        batch_norm: bool = True,
    ):
        super().__init__(n_chans, n_times, n_outputs, n_subjects)
        self.n_filters = _check_positive_int("n_filters", n_filters)
        self.hidden_dim = _check_positive_int("hidden_dim", hidden_dim)
        first_dropout = _check_dropout("first_dropout", first_dropout)
        second_dropout = _check_dropout("second_dropout", second_dropout)
        for name, value in (("non_negative", non_negative), ("batch_norm", batch_norm)):
            if not isinstance(value, bool):
                raise ConfigError(f"Invalid value for {name}: {value!r}; expected true or false")
        self.non_negative = non_negative
        # PyTorch's default Conv2d init for a (n_chans x 1) kernel on one input plane: U(-1/sqrt(fan_in), ...),
        # fan_in = n_chans; folded to |w| when constrained, as the original's first forward call does.
        weight = torch.empty(self.n_filters, n_chans)
        nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
        self.spatial_weight = nn.Parameter(weight.abs() if non_negative else weight)
        self.spatial_norm = nn.BatchNorm1d(self.n_filters) if batch_norm else nn.Identity()
        self.temporal = nn.Sequential(
            nn.Linear(n_times, self.hidden_dim),
            nn.ELU(),
            nn.Dropout(first_dropout),
            nn.Linear(self.hidden_dim, self.hidden_dim),
            nn.ELU(),
            nn.Dropout(second_dropout),
        )
        self.head = nn.Linear(self.n_filters * self.hidden_dim, n_outputs)

    @property
    def spatial_filters(self) -> torch.Tensor:
        """The spatial weights the forward pass applies, ``(n_filters, n_chans)``; non-negative by default."""
        return self.spatial_weight.abs() if self.non_negative else self.spatial_weight

    def forward(self, x: torch.Tensor, subject_idx: torch.Tensor | None = None) -> torch.Tensor:
        self._check_input(x, subject_idx)
        h = torch.matmul(self.spatial_filters, x)  # (batch, n_filters, n_times)
        h = self.temporal(self.spatial_norm(h))  # (batch, n_filters, hidden_dim)
        return self.head(h.flatten(1))

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, n_filters={self.n_filters}, hidden_dim={self.hidden_dim}, "
            f"non_negative={self.non_negative}"
        )
