"""NervformerV1: the dual-branch NervFormer and a projection head, without channel attention.

Architecture, for an epoch of ``n_chans`` x ``n_times`` (63 x 250):

1. **NervFormer** - instance norm of the whole map, a temporal-first and a spatial-first shallow convolution
   branch (36 tokens of width 40 each), self-attention within each branch (5 heads), attention over the 72 joint
   tokens (8 heads, attention dropout 0.75), feed-forward block 2880 -> 2048 -> 1440
   (:mod:`eegdecode.models.nervformer_core`).
2. **Projection head** - Linear(1440 -> 1024), residual GELU-Linear-Dropout block, LayerNorm.

No channel attention and no subject layer: ``subject_idx`` is accepted and ignored.

Parameters at 63 x 250, logit scale included: 11,542,801 (NervFormer 9,015,568, projection 2,527,232, logit
scale 1). The original's unused image projection head (2,101,248) is not built.

Source: class ``NervFormerV1`` in ``Retrieval/NervformerV1_insubject_retrieval.py`` /
``Retrieval/NervformerV2_insubject_retrieval.py`` of ``ChiShengChen/EEG_gen_img_NECOMIMI`` (Chen et al.,
NECOMIMI, arXiv 2410.00712).
"""

from __future__ import annotations

import torch

from eegdecode.models.base import EEGEncoder
from eegdecode.models.nervformer_core import NervFormerCore
from eegdecode.models.projection_head import ProjectionHead


class NervformerV1(EEGEncoder):
    """NervFormer -> projection head.

    Parameters
    ----------
    n_chans, n_times : int
        Input size (63 x 250 for THINGS-EEG2).
    n_outputs : int
        Embedding size (1024).
    n_subjects : int
        Accepted for a uniform signature; unused.
    n_filters : int
        Token width of the convolution branches (40).
    drop_prob : float
        Dropout of the convolutions, the feed-forward block and the projection head (0.5).
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
        self.nervformer = NervFormerCore(n_chans, n_times, n_filters=n_filters, drop_prob=drop_prob)
        self.projection = ProjectionHead(self.nervformer.out_features, n_outputs, drop_prob)

    def forward(self, x: torch.Tensor, subject_idx: torch.Tensor | None = None) -> torch.Tensor:
        self._check_input(x, subject_idx)
        return self.projection(self.nervformer(x.unsqueeze(1)))
