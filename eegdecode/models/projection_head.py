"""Projection head shared by the NICE, ATM, MUSE and NervFormer encoders (the original ``Proj_eeg``).

A linear map from the flattened features to the embedding, a residual block (GELU -> Linear -> Dropout 0.5)
added to it, and a final LayerNorm:

    h = W1 f + b1;  out = LayerNorm(h + Dropout(W2 GELU(h) + b2))

The original's image-side twin ``Proj_img`` (2.1 M parameters whose forward returned its input unchanged) is
not built anywhere in this package: image features go to the loss as they are.

Source: ``Proj_eeg`` / ``Proj_eeg_Muse`` in ``ChiShengChen/EEG_gen_img_NECOMIMI`` (from NICE-EEG,
``eeyhsong/NICE-EEG``, and ATM, ``dongyangli-del/EEG_Image_decode``).
"""

from __future__ import annotations

import torch
from torch import nn


class ProjectionHead(nn.Module):
    """Linear projection plus a residual GELU-Linear-Dropout block and LayerNorm.

    Parameters
    ----------
    in_features : int
        Width of the flattened input features.
    out_features : int
        Embedding size.
    drop_prob : float
        Dropout inside the residual block (0.5 in the original).

    Shapes
    ------
    ``(batch, in_features)`` -> ``(batch, out_features)``.
    """

    def __init__(self, in_features: int, out_features: int, drop_prob: float = 0.5):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.residual = nn.Sequential(nn.GELU(), nn.Linear(out_features, out_features), nn.Dropout(drop_prob))
        self.norm = nn.LayerNorm(out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.linear(x)
        return self.norm(h + self.residual(h))
