"""TSConv: NeuroBridge's temporal-spatial convolution encoder (NICE's TS-conv with a projection head).

Architecture, for an epoch of ``n_chans`` x ``n_times`` (63 x 250):

1. **TS-conv** - Conv(1 -> 40, 1 x 25) over time, AvgPool (1 x 51, stride 5), BatchNorm, ELU,
   Conv(40 -> 40, n_chans x 1) over all channels, BatchNorm, ELU, Dropout 0.5, 1 x 1 Conv(40 -> 40)
   (:class:`~eegdecode.models.convolutions.TemporalSpatialConv`): a 40 x 36 feature map at 250 samples.
2. **Flatten filter by filter** (40 x 36 = 1,440 values, all 36 time steps of filter 0 first) and **projection
   head** - Linear(1440 -> 1024), residual GELU -> Linear -> Dropout 0.5 block, LayerNorm.

This is the network of :class:`~eegdecode.models.nice_eeg.NICE_EEG` up to the order in which the feature map is
flattened (filter-major here, as NeuroBridge's ``x.view(batch, -1)``; token-major in NICE): the two compute the
same function once the columns of the first linear map are permuted accordingly (a test checks it). It is kept
under its own name because NeuroBridge's and SAMGA's recipes ask for it by that name and their layout.

Fix: the original computes the flattened width as ``(ceil((n_times - 24 - 51) / 5) + 1) * 40``, which is wrong
whenever ``n_times - 75`` is not a multiple of 5 (e.g. THINGS-MEG's 201 samples); here it is the pooled length
actually produced, ``((n_times - 24 - 51) // 5 + 1) * 40``. ``subject_idx`` is accepted and ignored.

Parameters, logit scale included: 2,630,913 at 63 x 250 and 2,557,313 at 17 x 250.

Source: ``TSConv`` in ``module/eeg_encoder/model.py`` of ``feroooooo/NeuroBridge`` (Zhang et al., NeuroBridge,
arXiv 2511.06836, AAAI 2026; the same class is in ``LinJiang8/SAMGA``), after the TS-conv of Song et al., "Decoding Natural Images from EEG for Object
Recognition" (NICE-EEG, ICLR 2024).
"""

from __future__ import annotations

import torch

from eegdecode.models.nice_eeg import NICE_EEG


class TSConv(NICE_EEG):
    """Temporal-spatial shallow convolution, flattened filter by filter, -> projection head.

    The layers (and the constructor: ``n_chans``, ``n_times``, ``n_outputs``, ``n_subjects``, ``n_filters`` = 40,
    ``drop_prob`` = 0.5) are :class:`~eegdecode.models.nice_eeg.NICE_EEG`'s; only the flattening order differs.
    """

    def forward(self, x: torch.Tensor, subject_idx: torch.Tensor | None = None) -> torch.Tensor:
        self._check_input(x, subject_idx)
        tokens = self.ts_conv(x.unsqueeze(1))  # (batch, n_tokens, n_filters)
        return self.projection(tokens.transpose(1, 2).flatten(1))
