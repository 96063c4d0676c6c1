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

**Fused forward (CPU).** The temporal convolution and the average pooling after it are both linear, with
nothing between them, so together they are one convolution of width ``25 + 51 - 1 = 75`` and stride 5 whose
kernel is the stored kernel box-filtered (:func:`box_filtered_kernel`); the (n_chans x 1) spatial convolution,
the 1 x 1 projection and a 1-input-channel convolution over windows are matrix products. On CPU both blocks
run that way (:meth:`_ShallowConv.fused_forward`): the same function of the same parameters (float rounding
aside; tests compare outputs, input and parameter gradients and the batch-norm statistics with the
layer-by-layer forward), computed from the stored weights at every call so the state dict, the parameters and
their gradients are unchanged, and about 3x faster for TS-conv on a 2-core CPU (the convolutions, mostly
oneDNN's backward of the 1-input-channel 1 x 25 one over the full 226-sample output, were 46% of a
NervformerV2 training step). Dropout draws the same mask as the layer-by-layer forward from the same seed (it
runs on a contiguous copy of the same feature map). Other devices keep the layer-by-layer forward (not
measured there); ``set_fused(model, False)`` (or ``fused = False`` on a block) forces it everywhere.

Sources: Song et al., NICE-EEG (ICLR 2024) ``Enc_eeg``/``PatchEmbedding``; Li et al., ATM (NeurIPS 2024);
Chen et al., MUSE (``ChiShengChen/MUSE_EEG``); as used in ``ChiShengChen/EEG_gen_img_NECOMIMI``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

TEMPORAL_KERNEL = 25
POOL_KERNEL = 51
POOL_STRIDE = 5


def box_filtered_kernel(weight: torch.Tensor, pool_kernel: int) -> torch.Tensor:
    """Kernel of a temporal convolution followed by an average pooling, as one convolution.

    ``avg_pool(conv(x, w), p, s) = conv(x, w * box_p, stride=s)``: the effective kernel is the full
    convolution of ``w`` with a box of ``p`` taps of height ``1 / p`` (width ``k + p - 1``). The bias passes
    through the pooling unchanged.

    Parameters
    ----------
    weight : torch.Tensor
        ``(out, in, 1, k)`` convolution weight.
    pool_kernel : int
        Pooling window ``p``.

    Returns
    -------
    torch.Tensor
        ``(out, in, k + p - 1)``, differentiable in ``weight``.
    """
    n_out, n_in, _, width = weight.shape
    box = weight.new_full((1, 1, pool_kernel), 1.0 / pool_kernel)
    # The box is symmetric, so PyTorch's cross-correlation with full padding is the convolution.
    kernel = F.conv1d(weight.reshape(n_out * n_in, 1, width), box, padding=pool_kernel - 1)
    return kernel.reshape(n_out, n_in, width + pool_kernel - 1)


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


def set_fused(model: nn.Module, enabled: bool) -> int:
    """Switch the fused CPU forward of every shallow convolution block in ``model`` on or off.

    Parameters
    ----------
    model : nn.Module
        Any module; its :class:`TemporalSpatialConv` and :class:`SpatialTemporalConv` blocks are switched.
    enabled : bool
        True: the fused forward on CPU (the default); False: the original layer-by-layer forward everywhere.

    Returns
    -------
    int
        Number of blocks switched.
    """
    blocks = [m for m in model.modules() if isinstance(m, _ShallowConv)]
    for block in blocks:
        block.fused = enabled
    return len(blocks)


class _ShallowConv(nn.Module):
    """Shared plumbing: the token reshaping and the optional 1 x 1 projection."""

    def __init__(self, n_chans: int, n_times: int, n_filters: int, projection: bool):
        super().__init__()
        self.n_filters = n_filters
        self.n_tokens = pooled_length(n_times)
        self.out_features = self.n_tokens * n_filters
        self.projection = nn.Conv2d(n_filters, n_filters, (1, 1)) if projection else None
        #: use :meth:`fused_forward` on CPU (the same function; see the module docstring)
        self.fused = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused and x.device.type == "cpu":
            return self.fused_forward(x)
        return self._to_tokens(self.convs(x))

    def fused_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block as a strided box-filtered convolution and matrix products (same function as ``convs``).

        Parameters
        ----------
        x : torch.Tensor
            ``(batch, 1, n_chans, n_times)``.

        Returns
        -------
        torch.Tensor
            ``(batch, n_tokens, n_filters)``, as :meth:`forward`.
        """
        raise NotImplementedError

    def _pooled_windows(self, conv: nn.Conv2d, pool: nn.AvgPool2d) -> tuple[torch.Tensor, int]:
        """Box-filtered kernel ``(out, in * width)`` of ``conv`` then ``pool``, and the window stride."""
        kernel = box_filtered_kernel(conv.weight, pool.kernel_size[1])
        return kernel.reshape(kernel.shape[0], -1), pool.stride[1]

    @staticmethod
    def _norm_elu(norm: nn.BatchNorm2d, elu: nn.ELU, h: torch.Tensor) -> torch.Tensor:
        """Batch norm (statistics over every position, as on the feature map) and ELU of ``(..., F)``."""
        shape = h.shape
        return elu(norm(h.reshape(-1, shape[-1], 1, 1))).reshape(shape)

    def _drop_to_tokens(self, dropout: nn.Dropout, h: torch.Tensor) -> torch.Tensor:
        """Dropout of ``(batch, n_tokens, n_filters)`` on the layer-by-layer forward's (contiguous) feature
        map, so that it draws the same mask from the same seed, then the projection as a matrix product."""
        h = dropout(h.transpose(1, 2).unsqueeze(2).contiguous()).squeeze(2).transpose(1, 2)
        if self.projection is not None:
            h = F.linear(h, self.projection.weight.flatten(1), self.projection.bias)
        return h

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

    def fused_forward(self, x: torch.Tensor) -> torch.Tensor:
        temporal, pool, norm1, elu1, spatial, norm2, elu2, dropout = self.convs
        batch, _, n_chans, n_times = x.shape
        kernel, stride = self._pooled_windows(temporal, pool)
        # (batch, n_chans, n_tokens, width) windows -> (batch, n_tokens, n_chans, n_filters)
        windows = x.reshape(batch, n_chans, n_times).unfold(-1, kernel.shape[1], stride).transpose(1, 2)
        h = self._norm_elu(norm1, elu1, F.linear(windows, kernel, temporal.bias))
        # spatial (n_chans x 1) convolution: one product over (channel, filter)
        weight = spatial.weight.squeeze(-1).transpose(1, 2).reshape(spatial.out_channels, -1)
        h = F.linear(h.flatten(2), weight, spatial.bias)
        return self._drop_to_tokens(dropout, self._norm_elu(norm2, elu2, h))


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

    def fused_forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial, norm1, elu1, temporal, pool, norm2, elu2, dropout = self.convs
        batch, _, n_chans, n_times = x.shape
        # spatial (n_chans x 1) convolution from one input map: (batch, n_times, n_filters)
        h = F.linear(
            x.reshape(batch, n_chans, n_times).transpose(1, 2), spatial.weight.flatten(1), spatial.bias
        )
        h = self._norm_elu(norm1, elu1, h)
        kernel, stride = self._pooled_windows(temporal, pool)
        # (batch, n_tokens, n_filters, width) windows -> one product over (filter, tap)
        windows = h.unfold(1, temporal.kernel_size[1] + pool.kernel_size[1] - 1, stride)
        h = F.linear(windows.flatten(2), kernel, temporal.bias)
        return self._drop_to_tokens(dropout, self._norm_elu(norm2, elu2, h))
