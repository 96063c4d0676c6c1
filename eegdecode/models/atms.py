"""ATMS_50 (ATM-S): channel attention, subject layer, temporal-spatial shallow convolution, projection head.

Architecture (as in the ATM figure), for an epoch of ``n_chans`` x ``n_times`` (63 x 250):

1. **Channel attention** - one transformer encoder layer whose tokens are the time samples and whose features
   are the channels (width 63, one head, feed-forward 2048), with a sinusoidal position code over time
   (:mod:`eegdecode.models.channel_attention`).
2. **Subject layer** - a ``Linear(n_times -> n_times)`` over the time axis of every channel, one per subject,
   chosen by each sample's subject index (:mod:`eegdecode.models.subject_layers`).
3. **TS-conv** - the NICE patch embedding: Conv(1 x 25), AvgPool(1 x 51, stride 5), BatchNorm, ELU,
   Conv(n_chans x 1), BatchNorm, ELU, Dropout 0.5, 1 x 1 Conv: 36 tokens of width 40, flattened to 1440.
4. **Projection head** - Linear(1440 -> 1024), residual GELU-Linear-Dropout block, LayerNorm.

Parameters at 63 x 250, one subject, logit scale included: **2,970,202** (channel attention 276,539, subject
layer 62,750, TS-conv 103,680, projection 2,527,232, logit scale 1); each further subject adds 62,750.
The figure usually quoted for the original, 3,246,741, is this plus 276,539: the original's ``EEGAttention``
registered its template transformer layer next to the ``TransformerEncoder`` copy that runs, exactly as in
NervformerV2 (where the quoted 11,882,090 already leaves it out). That dead layer is not built here.

Other differences from the original: the subject layer follows each sample's subject (the original always used
the first); the unused image projection head is not built; the position code works for any channel count; every
size is derived from ``n_chans`` and ``n_times`` (the original's region variants hard-coded them).

Source: class ``ATMS_50`` (= ``ATM_S_insubject_retrieval_All``) in ``Retrieval/ATM_S_insubject_retrieval.py`` of
``ChiShengChen/EEG_gen_img_NECOMIMI``, from Li et al., "Visual Decoding and Reconstruction via EEG Embeddings with
Guided Diffusion" (ATM, NeurIPS 2024, ``dongyangli-del/EEG_Image_decode``).
"""

from __future__ import annotations

import torch

from eegdecode.models.base import EEGEncoder
from eegdecode.models.channel_attention import ChannelAttention
from eegdecode.models.convolutions import TemporalSpatialConv
from eegdecode.models.projection_head import ProjectionHead
from eegdecode.models.subject_layers import SubjectLinear


class ATMS_50(EEGEncoder):  # the published model name
    """ATM-S encoder: channel attention -> subject layer -> TS-conv -> projection head.

    Parameters
    ----------
    n_chans, n_times : int
        Input size (63 x 250 for THINGS-EEG2).
    n_outputs : int
        Embedding size (1024).
    n_subjects : int
        Number of subject layers; ``forward`` picks each sample's layer from ``subject_idx``.
    n_filters : int
        Number of convolution filters = token width (40).
    attention_ff_dim : int
        Feed-forward width of the channel-attention layer (2048).
    attention_dropout : float
        Dropout inside the channel-attention layer (0.1).
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
        attention_ff_dim: int = 2048,
        attention_dropout: float = 0.1,
        drop_prob: float = 0.5,
    ):
        super().__init__(n_chans, n_times, n_outputs, n_subjects)
        self.channel_attention = ChannelAttention(
            n_chans, n_times, ff_dim=attention_ff_dim, dropout=attention_dropout
        )
        self.subject_layer = SubjectLinear(n_subjects, n_times, n_times)
        self.ts_conv = TemporalSpatialConv(n_chans, n_times, n_filters, drop_prob, projection=True)
        self.projection = ProjectionHead(self.ts_conv.out_features, n_outputs, drop_prob)

    def forward(self, x: torch.Tensor, subject_idx: torch.Tensor | None = None) -> torch.Tensor:
        subject_idx = self._check_input(x, subject_idx)
        x = self.channel_attention(x)
        x = self.subject_layer(x, subject_idx)
        return self.projection(self.ts_conv(x.unsqueeze(1)).flatten(1))
