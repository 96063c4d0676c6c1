"""MUSE_EEG: spatial-first shallow convolution and a projection head.

Architecture, for an epoch of ``n_chans`` x ``n_times`` (63 x 250):

1. **ST-conv** - Conv(1 -> 40, n_chans x 1) over all channels, BatchNorm, ELU, Conv(40 -> 40, 1 x 25) over
   time, AvgPool (1 x 51, stride 5), BatchNorm, ELU, Dropout 0.5, 1 x 1 Conv(40 -> 40): 36 tokens of width 40
   (:mod:`eegdecode.models.convolutions`).
2. **Flatten** (36 x 40 = 1440) and **projection head** - Linear(1440 -> 1024), residual GELU-Linear-Dropout
   block, LayerNorm.

No input normalisation: the original defined an ``InstanceNorm2d`` in this model but never applied it (it has no
parameters), so it is left out. ``subject_idx`` is accepted and ignored.

Parameters at 63 x 250, logit scale included: 2,571,633 (ST-conv 44,400, projection 2,527,232, logit scale 1).

Source: class ``MUSE_EEG`` / ``STConvEEGModel`` in ``Retrieval/MUSE_insubject_retrieval.py`` of
``ChiShengChen/EEG_gen_img_NECOMIMI``; first published in ``ChiShengChen/MUSE_EEG`` (Chen et al., "MUSE:
Multimodal Similarity Keeping Contrastive Learning for EEG-to-Image Decoding", 768-d there).
"""

from __future__ import annotations

import torch

from eegdecode.models.base import EEGEncoder
from eegdecode.models.convolutions import SpatialTemporalConv
from eegdecode.models.projection_head import ProjectionHead


class MUSE_EEG(EEGEncoder):  # the published model name
    """Spatial-first shallow convolution -> projection head.

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
        self.st_conv = SpatialTemporalConv(n_chans, n_times, n_filters, drop_prob, projection=True)
        self.projection = ProjectionHead(self.st_conv.out_features, n_outputs, drop_prob)

    def forward(self, x: torch.Tensor, subject_idx: torch.Tensor | None = None) -> torch.Tensor:
        self._check_input(x, subject_idx)
        return self.projection(self.st_conv(x.unsqueeze(1)).flatten(1))
