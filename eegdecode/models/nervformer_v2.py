"""NervformerV2 (NERV): channel attention, subject layer, dual-branch NervFormer, projection head.

Architecture (as in the NECOMIMI encoder figure), for an epoch of ``n_chans`` x ``n_times`` (63 x 250):

1. **Channel attention** - one transformer encoder layer whose tokens are the time samples and whose features
   are the channels, with a sinusoidal position code over time (:mod:`eegdecode.models.channel_attention`).
2. **Subject layer** - a ``Linear(n_times -> n_times)`` over the time axis of every channel, one per subject,
   chosen by each sample's subject index (:mod:`eegdecode.models.subject_layers`).
3. **NervFormer** - instance norm, a temporal-first and a spatial-first shallow convolution branch (36 tokens
   of width 40 each), self-attention within each branch, attention over the 72 joint tokens, and a feed-forward
   block 2880 -> 2048 -> 1440 (:mod:`eegdecode.models.nervformer_core`).
4. **Projection head** - Linear(1440 -> 1024), residual GELU-Linear-Dropout block, LayerNorm
   (:mod:`eegdecode.models.projection_head`).

Parameters at 63 x 250, one subject, logit scale included: 11,882,090 (channel attention 276,539, subject layer
62,750, NervFormer 9,015,568, projection 2,527,232, logit scale 1). Each further subject adds 62,750
(``n_times * (n_times + 1)``).

Differences from the original: the subject layer follows each sample's subject (the original always used the
first); the dead duplicate transformer layer (276,539 parameters; the original counted 12,158,629) and the unused
image projection head are not built; the position code works for any channel count; every size is derived from
``n_chans`` and ``n_times``.

Source: class ``NervFormerV2`` in ``Retrieval/NervformerV2_insubject_retrieval.py`` of
``ChiShengChen/EEG_gen_img_NECOMIMI`` (Chen et al., "NECOMIMI: Neural-Cognitive Multimodal EEG-Informed Image
Generation with Diffusion Models", arXiv 2410.00712).
"""

from __future__ import annotations

import torch

from eegdecode.models.base import EEGEncoder
from eegdecode.models.channel_attention import ChannelAttention
from eegdecode.models.nervformer_core import NervFormerCore
from eegdecode.models.projection_head import ProjectionHead
from eegdecode.models.subject_layers import SubjectLinear


class NervformerV2(EEGEncoder):
    """NERV encoder: channel attention -> subject layer -> NervFormer -> projection head.

    Parameters
    ----------
    n_chans, n_times : int
        Input size (63 x 250 for THINGS-EEG2).
    n_outputs : int
        Embedding size (1024).
    n_subjects : int
        Number of subject layers; ``forward`` picks each sample's layer from ``subject_idx``.
    n_filters : int
        Token width of the convolution branches (40).
    attention_ff_dim : int
        Feed-forward width of the channel-attention layer (2048).
    attention_dropout : float
        Dropout inside the channel-attention layer (0.1).
    drop_prob : float
        Dropout of the convolutions, the NervFormer feed-forward block and the projection head (0.5).

    Notes
    -----
    ``forward(x, subject_idx=None)`` takes ``x`` ``(batch, n_chans, n_times)`` and ``subject_idx`` a LongTensor
    ``(batch,)`` (None: subject 0) and returns ``(batch, n_outputs)``; the output is not L2-normalised.
    """

    def __init__(
        self,
        n_chans: int,
        n_times: int,
        n_outputs: int = 1024,
        n_subjects: int = 1,
        *,
        n_filters: int = 40,
        attention_ff_dim: int = 2048,
        attention_dropout: float = 0.1,
        drop_prob: float = 0.5,
    ):
        super().__init__(n_chans, n_times, n_outputs, n_subjects)
        self.channel_attention = ChannelAttention(
            n_chans, n_times, ff_dim=attention_ff_dim, dropout=attention_dropout
        )
        self.subject_layer = SubjectLinear(n_subjects, n_times, n_times)
        self.nervformer = NervFormerCore(n_chans, n_times, n_filters=n_filters, drop_prob=drop_prob)
        self.projection = ProjectionHead(self.nervformer.out_features, n_outputs, drop_prob)

    def forward(self, x: torch.Tensor, subject_idx: torch.Tensor | None = None) -> torch.Tensor:
        subject_idx = self._check_input(x, subject_idx)
        x = self.channel_attention(x)
        x = self.subject_layer(x, subject_idx)
        return self.projection(self.nervformer(x.unsqueeze(1)))
