"""The NervFormer feature extractor shared by NervformerV1 and NervformerV2 (the original ``NervFormer_EEG``).

Input ``(batch, 1, n_chans, n_times)``; output ``(batch, out_features)``.

1. Instance normalisation (no affine) of each sample's whole channels x time map.
2. Two convolution branches on the normalised map, both without the 1 x 1 projection:
   temporal-first (TS-conv) and spatial-first (ST-conv), each giving ``n_tokens`` tokens of width 40
   (36 tokens at 250 samples).
3. Per-branch self-attention (40 wide, 5 heads), residual, LayerNorm.
4. The two token sequences are concatenated (72 tokens at 250 samples) and a second self-attention
   (8 heads, attention dropout 0.75) runs over all of them ("cross" attention in the original's naming: the
   branches attend to each other), residual, LayerNorm.
5. Flatten (72 x 40 = 2880) -> Linear(2880 -> 2048) -> ReLU -> Dropout 0.5 -> Linear(2048 -> out_features).

``out_features`` is ``n_tokens * 40`` (1440 at 250 samples), the width the original's projection head expected
(``Proj_eeg_Muse(embedding_dim=36*40)``); both ``2 * n_tokens * 40`` and it follow ``n_times``.

Source: ``NervFormer_EEG`` in ``Retrieval/NervformerV2_insubject_retrieval.py`` of
``ChiShengChen/EEG_gen_img_NECOMIMI`` (Chen et al., NECOMIMI, arXiv 2410.00712).
9,015,568 parameters at 63 x 250.
"""

from __future__ import annotations

import torch
from torch import nn

from eegdecode.models.convolutions import SpatialTemporalConv, TemporalSpatialConv


class NervFormerCore(nn.Module):
    """Dual-branch convolution + attention feature extractor.

    Parameters
    ----------
    n_chans, n_times : int
        Input size.
    n_filters : int
        Token width of both convolution branches (40 in the original).
    branch_heads : int
        Heads of the per-branch self-attention (5).
    joint_heads : int
        Heads of the attention over both branches' tokens (8).
    joint_attention_dropout : float
        Attention dropout of the joint attention (0.75).
    hidden_dim : int
        Width of the feed-forward hidden layer (2048).
    out_features : int or None
        Output width; None means ``n_tokens * n_filters`` (1440 at 250 samples).
    drop_prob : float
        Dropout of the convolution branches and of the feed-forward block (0.5).
    """

    def __init__(
        self,
        n_chans: int,
        n_times: int,
        n_filters: int = 40,
        branch_heads: int = 5,
        joint_heads: int = 8,
        joint_attention_dropout: float = 0.75,
        hidden_dim: int = 2048,
        out_features: int | None = None,
        drop_prob: float = 0.5,
    ):
        super().__init__()
        self.instance_norm = nn.InstanceNorm2d(1)
        self.ts_conv = TemporalSpatialConv(n_chans, n_times, n_filters, drop_prob, projection=False)
        self.st_conv = SpatialTemporalConv(n_chans, n_times, n_filters, drop_prob, projection=False)
        self.ts_attention = nn.MultiheadAttention(n_filters, branch_heads, batch_first=True)
        self.st_attention = nn.MultiheadAttention(n_filters, branch_heads, batch_first=True)
        self.joint_attention = nn.MultiheadAttention(
            n_filters, joint_heads, dropout=joint_attention_dropout, batch_first=True
        )
        self.ts_norm = nn.LayerNorm(n_filters)
        self.st_norm = nn.LayerNorm(n_filters)
        self.joint_norm = nn.LayerNorm(n_filters)
        n_tokens = self.ts_conv.n_tokens
        self.out_features = out_features if out_features is not None else n_tokens * n_filters
        self.feed_forward = nn.Sequential(
            nn.Linear(2 * n_tokens * n_filters, hidden_dim),
            nn.ReLU(),
            nn.Dropout(drop_prob),
            nn.Linear(hidden_dim, self.out_features),
        )

    @staticmethod
    def _self_attend(
        attention: nn.MultiheadAttention, norm: nn.LayerNorm, tokens: torch.Tensor
    ) -> torch.Tensor:
        attended, _ = attention(tokens, tokens, tokens, need_weights=False)
        return norm(attended + tokens)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.instance_norm(x)
        ts_tokens = self._self_attend(self.ts_attention, self.ts_norm, self.ts_conv(x))
        st_tokens = self._self_attend(self.st_attention, self.st_norm, self.st_conv(x))
        joint = torch.cat((ts_tokens, st_tokens), dim=1)
        joint = self._self_attend(self.joint_attention, self.joint_norm, joint)
        return self.feed_forward(joint.flatten(1))
