"""Channel-attention transformer of ATM and NervFormerV2 (the original ``EEGAttention``).

The epoch is read as a sequence over time: each of the ``n_times`` samples is a token whose features are the
``n_chans`` channel values. A sinusoidal position code over time is added, then one post-norm transformer
encoder layer (model width ``n_chans``, one head, feed-forward width 2048, ReLU, dropout 0.1) mixes the tokens,
and the result is returned in the input layout ``(batch, n_chans, n_times)``.

Two defects of the original are fixed here:

* the original's position code only worked for an odd number of channels (63); :func:`sinusoidal_positions`
  gives identical values for odd widths and the standard code for even ones (17 channels, 271 MEG sensors and
  64-channel montages all work);
* the original kept the template ``TransformerEncoderLayer`` as an attribute next to the ``TransformerEncoder``
  that deep-copies it, so 276,539 dead parameters (at 63 channels) sat in the optimizer and the state dict.
  Only the layer that runs is built here.

Source: ``EEGAttention`` and ``PositionalEncoding`` in ``Retrieval/NervformerV2_insubject_retrieval.py`` of
``ChiShengChen/EEG_gen_img_NECOMIMI`` (from ATM, ``dongyangli-del/EEG_Image_decode``).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal_positions(n_positions: int, width: int) -> torch.Tensor:
    """Sinusoidal position code of Vaswani et al. for any width.

    ``code[t, 2i] = sin(t * w_i)`` and ``code[t, 2i + 1] = cos(t * w_i)`` with ``w_i = 10000 ** (-2i / width)``.
    For an odd width the last column is a sine (the original's behaviour at 63 channels).

    Parameters
    ----------
    n_positions : int
        Number of positions (time samples).
    width : int
        Feature width (number of channels).

    Returns
    -------
    torch.Tensor
        ``(n_positions, width)`` float32.
    """
    position = torch.arange(n_positions, dtype=torch.float64).unsqueeze(1)
    frequencies = torch.exp(torch.arange(0, width, 2, dtype=torch.float64) * (-math.log(10000.0) / width))
    code = torch.zeros(n_positions, width, dtype=torch.float64)
    code[:, 0::2] = torch.sin(position * frequencies)
    code[:, 1::2] = torch.cos(position * frequencies[: width // 2])
    return code.float()


class ChannelAttention(nn.Module):
    """One transformer encoder layer over time tokens whose features are the channels.

    Parameters
    ----------
    n_chans : int
        Number of channels = model width of the transformer.
    n_times : int
        Number of time samples = number of tokens (length of the position code).
    n_heads : int
        Attention heads (1 in the original; must divide ``n_chans``).
    ff_dim : int
        Feed-forward width (2048, PyTorch's default, in the original).
    dropout : float
        Dropout inside the transformer layer (0.1 in the original).

    Shapes
    ------
    ``(batch, n_chans, n_times)`` -> ``(batch, n_chans, n_times)``.
    """

    def __init__(
        self, n_chans: int, n_times: int, n_heads: int = 1, ff_dim: int = 2048, dropout: float = 0.1
    ):
        super().__init__()
        if n_chans % n_heads:
            raise ValueError(
                f"Invalid value for n_heads: {n_heads}; it must divide the number of channels ({n_chans})"
            )
        # A derived constant, not state: kept out of the state dict so checkpoints do not depend on it.
        self.register_buffer("positions", sinusoidal_positions(n_times, n_chans), persistent=False)
        self.layer = nn.TransformerEncoderLayer(
            d_model=n_chans,
            nhead=n_heads,
            dim_feedforward=ff_dim,
            dropout=dropout,
            activation="relu",
            batch_first=True,
            norm_first=False,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.transpose(1, 2) + self.positions.to(x.dtype)
        return self.layer(tokens).transpose(1, 2)
