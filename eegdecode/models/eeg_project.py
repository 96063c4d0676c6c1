"""EEGProject: the flattened epoch through one projection head (UBP's and NeuroBridge's EEG encoder).

Architecture, for an epoch of ``n_chans`` x ``n_times`` (17 x 250 in the papers' intra-subject recipes):

1. **Flatten** the epoch channel by channel: ``n_chans * n_times`` values (4,250 at 17 x 250).
2. **Projection head** - Linear(n_chans * n_times -> n_outputs), a residual block GELU -> Linear(n_outputs ->
   n_outputs) -> Dropout 0.3 added to it, LayerNorm (:class:`~eegdecode.models.projection_head.ProjectionHead`
   with ``drop_prob=0.3``).

No convolution, no subject layer: every parameter but the residual block sits in the first linear map, so the
model is a regularised linear read-out of the whole epoch with one nonlinear refinement. ``subject_idx`` is
accepted and ignored.

Parameters, logit scale included: 17,180,673 at 63 x 250 and 5,404,673 at 17 x 250 (first linear map
``n_chans * n_times * 1024 + 1024``, residual block 1,049,600, LayerNorm 2,048, logit scale 1).

Sources: ``EEGProjectLayer`` in ``base/eeg_backbone.py`` of ``HaitaoWuTJU/Uncertainty-aware-Blur-Prior`` (Wu et
al., "Bridging the Vision-Brain Gap with an Uncertainty-Aware Blur Prior", CVPR 2025) and ``EEGProject`` in
``module/eeg_encoder/model.py`` of ``feroooooo/NeuroBridge`` (Zhang et al., "NeuroBridge: Bio-Inspired
Self-Supervised EEG-to-Image Decoding via Cognitive Priors and Bidirectional Semantic Alignment", arXiv
2511.06836, AAAI 2026), the default EEG encoder of both and of ``LinJiang8/SAMGA`` (Jiang et al., arXiv
2604.17782). Both originals use dropout 0.3 and a learnable logit scale
initialised at ln(1/0.07); UBP passes it through a softplus in its loss, which is the loss's business here.
"""

from __future__ import annotations

import torch

from eegdecode.models.base import EEGEncoder
from eegdecode.models.projection_head import ProjectionHead


class EEGProject(EEGEncoder):
    """Flattened epoch -> linear projection with a residual GELU block and LayerNorm.

    Parameters
    ----------
    n_chans, n_times : int
        Input size (17 x 250 in UBP's and NeuroBridge's intra-subject recipes, 63 x 250 with all channels).
    n_outputs : int
        Embedding size (1024).
    n_subjects : int
        Accepted for a uniform signature; unused.
    drop_prob : float
        Dropout inside the residual block (0.3 in both originals).
    """

    def __init__(
        self,
        n_chans: int,
        n_times: int,
        n_outputs: int = 1024,
        n_subjects: int = 1,
        *,
        drop_prob: float = 0.3,
    ):
        super().__init__(n_chans, n_times, n_outputs, n_subjects)
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f"Invalid value for drop_prob: {drop_prob!r}; expected a number in [0, 1)")
        self.projection = ProjectionHead(n_chans * n_times, n_outputs, drop_prob)

    def forward(self, x: torch.Tensor, subject_idx: torch.Tensor | None = None) -> torch.Tensor:
        self._check_input(x, subject_idx)
        return self.projection(x.flatten(1))
