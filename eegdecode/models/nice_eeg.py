"""NICE_EEG: temporal-spatial shallow convolution ("ShallowNet" patch embedding) and a projection head.

Architecture, for an epoch of ``n_chans`` x ``n_times`` (63 x 250):

1. **TS-conv** - Conv(1 -> 40, 1 x 25) over time, AvgPool (1 x 51, stride 5), BatchNorm, ELU,
   Conv(40 -> 40, n_chans x 1) over all channels, BatchNorm, ELU, Dropout 0.5, 1 x 1 Conv(40 -> 40):
   36 tokens of width 40 (:mod:`eegdecode.models.convolutions`).
2. **Flatten** (36 x 40 = 1440) and **projection head** - Linear(1440 -> 1024), residual GELU-Linear-Dropout
   block, LayerNorm.

``subject_idx`` is accepted and ignored.

Parameters at 63 x 250, logit scale included: 2,630,913 (TS-conv 103,680, projection 2,527,232, logit scale 1).

Source: class ``NICE`` in ``Retrieval/contrast_insuject_NICE.py`` / ``NICE_insubject_retrieval.py`` of
``ChiShengChen/EEG_gen_img_NECOMIMI``, after Song et al., "Decoding Natural Images from EEG for Object
Recognition" (NICE-EEG, ICLR 2024, ``eeyhsong/NICE-EEG``).
"""

from __future__ import annotations

import torch

from eegdecode.models.base import EEGEncoder
from eegdecode.models.convolutions import TemporalSpatialConv
from eegdecode.models.projection_head import ProjectionHead


class NICE_EEG(EEGEncoder):  # the published model name
    """Temporal-spatial shallow convolution -> projection head.

    Parameters
    ----------
    n_chans, n_times : int
        Input size (63 x 250 for THINGS-EEG2).
    n_outputs : int
        Embedding size (1024).
    n_subjects : int
        Accepted for a uniform signature; unused.
    n_filters : int
        Number of convolution filters = token width (40).
    drop_prob : float
        Dropout of the convolution block and of the projection head (0.5).
    """

    def __init__(
        self,
        n_chans: int,
        n_times: int,
        n_outputs: int = 1024,
        n_subjects: int = 1,
        *,
        n_filters: int = 40,
        drop_prob: float = 0.5,
    ):
        super().__init__(n_chans, n_times, n_outputs, n_subjects)
        self.ts_conv = TemporalSpatialConv(n_chans, n_times, n_filters, drop_prob, projection=True)
        self.projection = ProjectionHead(self.ts_conv.out_features, n_outputs, drop_prob)

    def forward(self, x: torch.Tensor, subject_idx: torch.Tensor | None = None) -> torch.Tensor:
        self._check_input(x, subject_idx)
        return self.projection(self.ts_conv(x.unsqueeze(1)).flatten(1))
