"""The two shallow convolution front ends shared by the NICE, ATM, MUSE and NervFormer encoders.

Both turn an epoch ``(batch, 1, n_chans, n_times)`` into a short sequence of tokens ``(batch, n_tokens, 40)``:

* :class:`TemporalSpatialConv` ("TS-conv", NICE's ShallowNet-derived ``PatchEmbedding``): a temporal
  convolution (1 x 25) shared by all channels, average pooling over time (window 51, stride 5), batch norm, ELU,
  then a spatial convolution spanning all ``n_chans`` channels (n_chans x 1), batch norm, ELU, dropout.
* :class:`SpatialTemporalConv` ("ST-conv", MUSE's ``STConvEEGModel``): the same pieces in the other order,
  spatial first (n_chans x 1), then temporal (1 x 25) and the same pooling.

Either may end in a 1 x 1 convolution ("projection", used by NICE, ATM and MUSE; NervFormer leaves it out).
With 250 samples the pooled sequence has 36 tokens: 250 - 25 + 1 = 226 samples, (226 - 51) // 5 + 1 = 36.
Every size here is computed from ``n_chans`` and ``n_times``.

Sources: Song et al., NICE-EEG (ICLR 2024) ``Enc_eeg``/``PatchEmbedding``; Li et al., ATM (NeurIPS 2024);
Chen et al., MUSE (``ChiShengChen/MUSE_EEG``); as used in ``ChiShengChen/EEG_gen_img_NECOMIMI``.
"""

from __future__ import annotations

import torch
from torch import nn

TEMPORAL_KERNEL = 25
POOL_KERNEL = 51
POOL_STRIDE = 5


def pooled_length(
    n_times: int,
    temporal_kernel: int = TEMPORAL_KERNEL,
    pool_kernel: int = POOL_KERNEL,
    pool_stride: int = POOL_STRIDE,
) -> int:
    """Number of tokens left after the temporal convolution and pooling.

    Parameters
    ----------
    n_times : int
        Input length in samples.
    temporal_kernel, pool_kernel, pool_stride : int
        Temporal convolution width, pooling window and pooling stride (valid padding everywhere).

    Returns
    -------
    int
        ``(n_times - temporal_kernel + 1 - pool_kernel) // pool_stride + 1``.

    Raises
    ------
    ValueError
        If ``n_times`` is shorter than ``temporal_kernel + pool_kernel - 1`` samples.
    """
    minimum = temporal_kernel + pool_kernel - 1
    if n_times < minimum:
        raise ValueError(
            f"Invalid value for n_times: {n_times}; the shallow convolution (kernel {temporal_kernel}, "
            f"pooling {pool_kernel}) needs at least {minimum} samples"
        )
    return (n_times - temporal_kernel + 1 - pool_kernel) // pool_stride + 1


class _ShallowConv(nn.Module):
    """Shared plumbing: the token reshaping and the optional 1 x 1 projection."""

    def __init__(self, n_chans: int, n_times: int, n_filters: int, projection: bool):
        super().__init__()
        self.n_filters = n_filters
        self.n_tokens = pooled_length(n_times)
        self.out_features = self.n_tokens * n_filters
        self.projection = nn.Conv2d(n_filters, n_filters, (1, 1)) if projection else None

    def _to_tokens(self, features: torch.Tensor) -> torch.Tensor:
        if self.projection is not None:
            features = self.projection(features)
        # (batch, filters, 1, tokens) -> (batch, tokens, filters): flattening this later gives the original
        # token-major order "b (h w) e".
        return features.flatten(2).transpose(1, 2)


class TemporalSpatialConv(_ShallowConv):
    """Temporal-then-spatial shallow convolution ("TS-conv").

    Parameters
    ----------
    n_chans, n_times : int
        Input size; the spatial kernel spans all ``n_chans`` channels.
    n_filters : int
        Number of temporal and spatial filters (token width), 40 in the original.
    drop_prob : float
        Dropout after the spatial convolution.
    projection : bool
        Append a 1 x 1 convolution (NICE/ATM: yes; NervFormer: no).

    Shapes
    ------
    ``(batch, 1, n_chans, n_times)`` -> ``(batch, n_tokens, n_filters)``.
    """

    def __init__(
        self, n_chans: int, n_times: int, n_filters: int = 40, drop_prob: float = 0.5, projection: bool = True
    ):
        super().__init__(n_chans, n_times, n_filters, projection)
        self.convs = nn.Sequential(
            nn.Conv2d(1, n_filters, (1, TEMPORAL_KERNEL)),
            nn.AvgPool2d((1, POOL_KERNEL), (1, POOL_STRIDE)),
            nn.BatchNorm2d(n_filters),
            nn.ELU(),
            nn.Conv2d(n_filters, n_filters, (n_chans, 1)),
            nn.BatchNorm2d(n_filters),
            nn.ELU(),
            nn.Dropout(drop_prob),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._to_tokens(self.convs(x))


class SpatialTemporalConv(_ShallowConv):
    """Spatial-then-temporal shallow convolution ("ST-conv").

    Parameters
    ----------
    n_chans, n_times : int
        Input size; the first (spatial) kernel spans all ``n_chans`` channels.
    n_filters : int
        Number of spatial and temporal filters (token width), 40 in the original.
    drop_prob : float
        Dropout at the end of the block.
    projection : bool
        Append a 1 x 1 convolution (MUSE: yes; NervFormer: no).

    Shapes
    ------
    ``(batch, 1, n_chans, n_times)`` -> ``(batch, n_tokens, n_filters)``.
    """

    def __init__(
        self, n_chans: int, n_times: int, n_filters: int = 40, drop_prob: float = 0.5, projection: bool = True
    ):
        super().__init__(n_chans, n_times, n_filters, projection)
        self.convs = nn.Sequential(
            nn.Conv2d(1, n_filters, (n_chans, 1)),
            nn.BatchNorm2d(n_filters),
            nn.ELU(),
            nn.Conv2d(n_filters, n_filters, (1, TEMPORAL_KERNEL)),
            nn.AvgPool2d((1, POOL_KERNEL), (1, POOL_STRIDE)),
            nn.BatchNorm2d(n_filters),
            nn.ELU(),
            nn.Dropout(drop_prob),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._to_tokens(self.convs(x))
