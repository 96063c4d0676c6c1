"""Heads between the encoder and the loss: SAMGA's per-subject layer router and its shared projector, and the
heads of a single target (linear projectors, a learned mixture of blur variants).

SAMGA aligns the EEG with a mixture of several intermediate layers of a vision model instead of one final
embedding, the mixture weighted per subject:

* :class:`LayerRouter` - softmax weights over ``L`` target layers, ``w = softmax((g + b_s) / T)``: learnable
  global logits ``g`` (initialised by :func:`centred_layer_logits`, a profile peaked on one layer: -2, -1, 0, -1,
  -2 for layers 20, 24, 28, 32, 36 centred on 28) plus a learnable bias ``b_s`` per subject (initialised at zero,
  so every subject starts from the global profile). During training each sample's subject bias is dropped with
  probability ``subject_dropout`` (0.3), which keeps the global logits a good mixture for any subject; the global
  weights alone (``subject=None``) are what SAMGA uses at evaluation and what an unseen subject (leave-one-
  subject-out) gets. :meth:`LayerRouter.combine` mixes ``(batch, L, dim)`` layer targets into ``(batch, dim)``.
* :class:`MultiTargetHead` - the projections around the router: each layer target goes through a pre-projector
  shared by all layers (Linear ``target_dim -> mid_dim``) and a projector of its own (Linear ``mid_dim ->
  embed_dim``), the router mixes them, and a **shared projector** (Linear ``embed_dim -> embed_dim``) maps both the
  mixed target and the EEG embedding (after its own Linear ``eeg_dim -> embed_dim``) into the space the loss
  compares. SAMGA trains it with a coarse MMD stage and then freezes the shared projector
  (``head.shared.requires_grad_(False)``) for the InfoNCE stage. With ``normalize_layers`` each projected layer is
  L2-normalised before the mix (not in SAMGA; see below).

Both are plain modules, so a trainer saves them in the checkpoint beside the encoder, and ``extract`` /
``generate`` can rebuild the EEG side (:meth:`MultiTargetHead.encode_eeg`) and the test gallery
(:meth:`MultiTargetHead.encode_targets` with the global weights) from it.

Defaults are SAMGA's (``LinJiang8/SAMGA``, ``train.py`` ``SubjectAwareLayerMixer`` and ``intra.sh``: layers
20/24/28/32/36 of InternViT-6B, centre 28, strength 1, temperature 1, subject dropout 0.3, linear projectors,
``mid_dim`` 1024, ``embed_dim`` 512): Jiang et al., "Subject-Aware Multi-Granularity Alignment for Zero-Shot
EEG-to-Image Retrieval" (arXiv 2604.17782).

**Why SAMGA's weights barely move, and the two options that make them learnable.** Two facts of SAMGA's
``train.py`` keep the learned weights near the depth prior:

1. *The weights are not identifiable.* Each layer has a projector of its own and no normalisation before the
   mix (``img_projectors[i]``, then ``torch.sum(projected_layers * layer_weights)``; ``--img_l2norm`` normalises
   only the mixed target, in the loss). Scaling layer ``l``'s projector by ``c`` is the same model as multiplying
   its weight by ``c``, so any weighting is matched by the projectors' scales and the loss has no preference.
2. *The logits move at most about ``lr`` per step.* One AdamW holds every parameter (``build_optimizer``: lr
   1e-4, then 5e-5 after stage 1); Adam's step is bounded by about the learning rate, so SAMGA's ~2,000 steps
   (16,540 averaged images, batch 512, 60 epochs) move a logit by at most ~0.13, against the prior's steps of 1.

Measured on the simulator (``tests/training/test_learning.py``: blocks 0 / 5 / 11 of ``simulator:vision``, whose
image-specific variance the noise-free EEG explains 0.31 / 0.40 / 0.51; uniform start, MUSE_EEG, 4 epochs on
single trials, seed 0): SAMGA's form ends at 0.334 / 0.330 / 0.336; a router lr of 0.05 alone at 0.370 / 0.286 /
0.344 (the weights move, to block 0); normalisation alone does not move them (blocks 0 / 11: 0.491 / 0.509);
both end at 0.293 / 0.343 / 0.365, the ground truth's order (blocks 0 / 11 alone: 0.383 / 0.617, against
0.496 / 0.504 in SAMGA's form and 0.403 / 0.597 with the lr alone). So :class:`MultiTargetHead` has
``normalize_layers`` (each projected layer L2-normalised before the mix: a unit vector per layer, so only the
weights set each layer's share; parameter-free, the state-dict keys are unchanged and existing checkpoints load)
and the trainer a ``router.lr`` (the router parameters' own AdamW group). Both are off by default, SAMGA's
form; results of runs without them record the prior, not a preference.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

SAMGA_LAYERS: tuple[int, ...] = (20, 24, 28, 32, 36)
SAMGA_CENTRE = 28


def centred_layer_logits(layer_ids: Sequence[int], centre: float, strength: float = 1.0) -> torch.Tensor:
    """SAMGA's initial router logits: ``-strength * |layer - centre| / step``.

    Parameters
    ----------
    layer_ids : sequence of int
        Indices of the target layers, in the order the targets are stacked.
    centre : float
        The layer the profile peaks on (28 in SAMGA).
    strength : float
        Slope of the profile (1).

    Returns
    -------
    torch.Tensor
        ``(len(layer_ids),)`` float32; ``step`` is the smallest positive gap between the sorted layer indices
        (1 for a single layer), so layers 20, 24, 28, 32, 36 centred on 28 give -2, -1, 0, -1, -2.
    """
    ids = [float(i) for i in layer_ids]
    if not ids:
        raise ValueError("Invalid value for layer_ids: []; expected at least one layer")
    gaps = [b - a for a, b in zip(sorted(ids), sorted(ids)[1:]) if b > a]
    step = min(gaps) if gaps else 1.0
    return -strength * (torch.tensor(ids) - float(centre)).abs() / step


class LayerRouter(nn.Module):
    """Per-subject softmax weights over target layers (global logits plus a per-subject bias).

    Parameters
    ----------
    n_layers : int
        Number of target layers ``L``.
    n_subjects : int
        Number of subjects with a bias of their own.
    init_logits : sequence of float or tensor, optional
        Initial global logits ``(L,)``; default :func:`centred_layer_logits` of SAMGA's layers when
        ``n_layers == 5``, zeros (uniform weights) otherwise.
    temperature : float
        Softmax temperature (1).
    subject_dropout : float
        Probability, during training only, of dropping a sample's subject bias (0.3).

    Shapes
    ------
    ``weights(subject (batch,))`` -> ``(batch, L)``; ``weights(None)`` -> ``(L,)`` (global weights);
    ``combine(layer_targets (batch, L, dim), subject)`` -> ``(batch, dim)``.
    """

    def __init__(
        self,
        n_layers: int,
        n_subjects: int = 1,
        init_logits: Sequence[float] | torch.Tensor | None = None,
        *,
        temperature: float = 1.0,
        subject_dropout: float = 0.3,
    ):
        super().__init__()
        for name, value in (("n_layers", n_layers), ("n_subjects", n_subjects)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Invalid value for {name}: {value!r}; expected a positive integer")
        if not temperature > 0:
            raise ValueError(f"Invalid value for temperature: {temperature!r}; expected a positive number")
        if not 0.0 <= subject_dropout <= 1.0:
            raise ValueError(
                f"Invalid value for subject_dropout: {subject_dropout!r}; expected a number in [0, 1]"
            )
        if init_logits is None:
            if n_layers == len(SAMGA_LAYERS):
                init_logits = centred_layer_logits(SAMGA_LAYERS, SAMGA_CENTRE)
            else:
                init_logits = torch.zeros(n_layers)
        init = torch.as_tensor(init_logits, dtype=torch.float32).detach().clone()
        if init.shape != (n_layers,):
            raise ValueError(
                f"Invalid value for init_logits: expected shape ({n_layers},), found {tuple(init.shape)}"
            )
        self.n_layers, self.n_subjects = n_layers, n_subjects
        self.temperature, self.subject_dropout = float(temperature), float(subject_dropout)
        self.global_logits = nn.Parameter(init)
        self.subject_bias = nn.Parameter(torch.zeros(n_subjects, n_layers))

    def extra_repr(self) -> str:
        return (
            f"n_layers={self.n_layers}, n_subjects={self.n_subjects}, temperature={self.temperature}, "
            f"subject_dropout={self.subject_dropout}"
        )

    def _check_subject(self, subject: torch.Tensor) -> torch.Tensor:
        if not isinstance(subject, torch.Tensor):
            subject = torch.as_tensor(subject)
        if subject.ndim != 1 or subject.is_floating_point() or subject.dtype == torch.bool:
            raise ValueError(
                f"LayerRouter subject: expected an integer tensor of shape (batch,), found {subject.dtype} "
                f"{tuple(subject.shape)}"
            )
        # Checked on the host only when it costs no device synchronisation; on a GPU the indexing asserts.
        if (
            subject.device.type == "cpu"
            and subject.numel()
            and (int(subject.min()) < 0 or int(subject.max()) >= self.n_subjects)
        ):
            raise ValueError(
                f"LayerRouter subject: expected values in [0, {self.n_subjects - 1}] "
                f"(n_subjects={self.n_subjects}), found [{int(subject.min())}, {int(subject.max())}]"
            )
        return subject.to(device=self.global_logits.device, dtype=torch.long)

    def logits(self, subject: torch.Tensor | None = None) -> torch.Tensor:
        """Router logits before the temperature: ``(L,)`` global, or ``(batch, L)`` with each subject's bias."""
        if subject is None:
            return self.global_logits
        subject = self._check_subject(subject)
        bias = self.subject_bias[subject]
        if self.training and self.subject_dropout > 0:
            keep = torch.rand(bias.shape[0], 1, device=bias.device) >= self.subject_dropout
            bias = bias * keep
        return self.global_logits + bias

    def weights(self, subject: torch.Tensor | None = None) -> torch.Tensor:
        """Softmax weights over the layers, ``(L,)`` global or ``(batch, L)`` per sample; each row sums to 1."""
        return torch.softmax(self.logits(subject) / self.temperature, dim=-1)

    def combine(self, layer_targets: torch.Tensor, subject: torch.Tensor | None = None) -> torch.Tensor:
        """Weighted sum of the layer targets ``(batch, L, dim)`` -> ``(batch, dim)``."""
        if layer_targets.ndim != 3 or layer_targets.shape[1] != self.n_layers:
            raise ValueError(
                f"LayerRouter layer_targets: expected shape (batch, {self.n_layers}, dim), "
                f"found {tuple(layer_targets.shape)}"
            )
        if subject is not None and len(subject) != layer_targets.shape[0]:
            raise ValueError(
                f"LayerRouter subject: expected shape ({layer_targets.shape[0]},), found {tuple(subject.shape)}"
            )
        w = self.weights(subject).to(layer_targets.dtype)
        if w.ndim == 1:
            return torch.einsum("l,bld->bd", w, layer_targets)
        return torch.einsum("bl,bld->bd", w, layer_targets)

    def forward(self, layer_targets: torch.Tensor, subject: torch.Tensor | None = None) -> torch.Tensor:
        return self.combine(layer_targets, subject)


class MultiTargetHead(nn.Module):
    """Layer targets and EEG embedding into one shared space, the targets mixed by a :class:`LayerRouter`.

    Parameters
    ----------
    n_layers : int
        Number of target layers ``L``.
    target_dim : int
        Width of every layer target (3,200 for InternViT-6B).
    eeg_dim : int
        Width of the encoder's output (1024).
    embed_dim : int
        Width of the shared space the loss compares (512).
    mid_dim : int
        Width after the pre-projector shared by the layers (1024).
    n_subjects, init_logits, temperature, subject_dropout
        Passed to the :class:`LayerRouter`.
    normalize_layers : bool
        L2-normalise each projected layer target before the router mixes them (``False``: SAMGA's form, where
        a layer's projector can absorb its weight; see the module docstring).

    Shapes
    ------
    ``encode_eeg((batch, eeg_dim))`` -> ``(batch, embed_dim)``;
    ``encode_targets((batch, L, target_dim), subject)`` -> ``(batch, embed_dim)``.
    """

    def __init__(
        self,
        n_layers: int,
        target_dim: int,
        eeg_dim: int = 1024,
        embed_dim: int = 512,
        mid_dim: int = 1024,
        n_subjects: int = 1,
        init_logits: Sequence[float] | torch.Tensor | None = None,
        *,
        temperature: float = 1.0,
        subject_dropout: float = 0.3,
        normalize_layers: bool = False,
    ):
        super().__init__()
        if not isinstance(normalize_layers, bool):
            raise ValueError(
                f"Invalid value for normalize_layers: {normalize_layers!r}; expected true or false"
            )
        for name, value in (
            ("target_dim", target_dim),
            ("eeg_dim", eeg_dim),
            ("embed_dim", embed_dim),
            ("mid_dim", mid_dim),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Invalid value for {name}: {value!r}; expected a positive integer")
        self.router = LayerRouter(
            n_layers, n_subjects, init_logits, temperature=temperature, subject_dropout=subject_dropout
        )
        self.target_dim, self.eeg_dim, self.embed_dim = target_dim, eeg_dim, embed_dim
        self.normalize_layers = normalize_layers
        self.target_pre = nn.Linear(target_dim, mid_dim)
        self.target_layers = nn.ModuleList(nn.Linear(mid_dim, embed_dim) for _ in range(n_layers))
        self.eeg = nn.Linear(eeg_dim, embed_dim)
        self.shared = nn.Linear(embed_dim, embed_dim)

    def project_layers(self, layer_targets: torch.Tensor) -> torch.Tensor:
        """Each layer target through the shared pre-projector and its own projector: ``(batch, L, embed_dim)``,
        each row L2-normalised with ``normalize_layers``."""
        n_layers = self.router.n_layers
        if layer_targets.ndim != 3 or tuple(layer_targets.shape[1:]) != (n_layers, self.target_dim):
            raise ValueError(
                f"MultiTargetHead layer_targets: expected shape (batch, {n_layers}, {self.target_dim}), "
                f"found {tuple(layer_targets.shape)}"
            )
        mid = self.target_pre(layer_targets)
        out = torch.stack([layer(mid[:, i]) for i, layer in enumerate(self.target_layers)], dim=1)
        return torch.nn.functional.normalize(out, dim=-1) if self.normalize_layers else out

    def encode_targets(
        self, layer_targets: torch.Tensor, subject: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The router's mixture of the projected layer targets, through the shared projector.

        ``subject=None`` uses the global weights (SAMGA's evaluation mode, and any subject never trained).
        """
        return self.shared(self.router.combine(self.project_layers(layer_targets), subject))

    def encode_eeg(self, eeg_embedding: torch.Tensor) -> torch.Tensor:
        """The encoder's output through the EEG projector and the shared projector."""
        if eeg_embedding.ndim != 2 or eeg_embedding.shape[1] != self.eeg_dim:
            raise ValueError(
                f"MultiTargetHead eeg_embedding: expected shape (batch, {self.eeg_dim}), "
                f"found {tuple(eeg_embedding.shape)}"
            )
        return self.shared(self.eeg(eeg_embedding))

    def forward(
        self, eeg_embedding: torch.Tensor, layer_targets: torch.Tensor, subject: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(encode_eeg(eeg_embedding), encode_targets(layer_targets, subject))``, the pair the loss compares."""
        return self.encode_eeg(eeg_embedding), self.encode_targets(layer_targets, subject)


class BlurMixer(nn.Module):
    """Learned softmax mixture of a target's blur variants, one weight per variant and feature dimension.

    ``mix(x)[b, d] = sum_v softmax(logits[:, d])[v] * x[b, v, d]``: Liu et al.'s mixing of the 12 blur levels'
    features, trained with the encoder ("Leveraging Visual Blur Perception Characteristics for EEG Decoding",
    AAAI 2026; ``makeitperfect/VisualEEGDecoding``, ``models/Encoder.py``
    ``Brain_Visual_Encoder_EEG.get_image_feature``: a ``learned_scale`` of shape ``(levels, dim)``, softmax over
    the levels). The logits start at zero, so the initial mixture is the variants' mean exactly (the ``mean``
    blur rule); theirs start at ``U[0, 1)`` and also mix four learned extra vectors, which this module does not.

    Parameters
    ----------
    n_variants : int
        Number of blur variants ``V`` (at least 2).
    dim : int
        Width of each variant's features.

    Shapes
    ------
    ``forward((batch, V, dim))`` -> ``(batch, dim)``; ``weights()`` -> ``(V, dim)``, each column sums to 1;
    ``level_weights()`` -> ``(V,)``, the weights averaged over the dimensions (sums to 1).
    """

    def __init__(self, n_variants: int, dim: int):
        super().__init__()
        for name, value, low in (("n_variants", n_variants, 2), ("dim", dim, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"Invalid value for {name}: {value!r}; expected an integer >= {low}")
        self.n_variants, self.dim = n_variants, dim
        self.logits = nn.Parameter(torch.zeros(n_variants, dim))

    def extra_repr(self) -> str:
        return f"n_variants={self.n_variants}, dim={self.dim}"

    def weights(self) -> torch.Tensor:
        """Softmax over the variants, per dimension: ``(V, dim)``."""
        return torch.softmax(self.logits, dim=0)

    def level_weights(self) -> torch.Tensor:
        """Each variant's weight averaged over the feature dimensions: ``(V,)``."""
        return self.weights().mean(dim=1)

    def forward(self, variant_targets: torch.Tensor) -> torch.Tensor:
        if variant_targets.ndim != 3 or tuple(variant_targets.shape[1:]) != (self.n_variants, self.dim):
            raise ValueError(
                f"BlurMixer variant_targets: expected shape (batch, {self.n_variants}, {self.dim}), "
                f"found {tuple(variant_targets.shape)}"
            )
        return (variant_targets * self.weights().to(variant_targets.dtype)).sum(dim=1)


class SingleTargetHead(nn.Module):
    """The head of a one-layer (or concatenated) target: an optional :class:`BlurMixer` of its blur variants, then
    optional linear projectors of both sides into a shared space.

    * ``embed_dim``: a linear projector (with bias) of the EEG embedding and one of the (mixed) image target, each
      into ``embed_dim`` dimensions; the loss compares the two (and L2-normalises them). This is NeuroBridge's
      ``--projector linear --feature_dim 512`` (Zhang et al., AAAI 2026; ``feroooooo/NeuroBridge``,
      ``module/projector.py`` ``ProjectorLinear`` and ``train.py``: ``eeg_projector`` and ``img_projector``, both
      ``nn.Linear(feature_dim, 512)``, applied before the loss's normalisation, and the test gallery is the test
      images' features through ``img_projector``) and the "linear semantic projector" of Shallow Alignment
      (Du et al., arXiv 2601.21948). ``None``: no projection, both sides stay in the target's space.
    * ``n_variants``: the target arrives as ``(batch, V, target_dim)``, every blur variant's features, and a
      :class:`BlurMixer` makes one target of them before the projector. ``None``: ``(batch, target_dim)``.

    Parameters
    ----------
    target_dim : int
        Width of the target (of each variant).
    eeg_dim : int
        Width of the encoder's output.
    embed_dim : int, optional
        Width of the shared space; ``None`` keeps both sides as they are (then ``eeg_dim`` must be ``target_dim``).
    n_variants : int, optional
        Blur variants mixed by a learned :class:`BlurMixer`.

    Shapes
    ------
    ``encode_eeg((batch, eeg_dim))`` -> ``(batch, embed_dim or eeg_dim)``;
    ``encode_targets((batch, [V,] target_dim))`` -> ``(batch, embed_dim or target_dim)``.
    """

    def __init__(
        self, target_dim: int, eeg_dim: int, embed_dim: int | None = None, n_variants: int | None = None
    ):
        super().__init__()
        for name, value in (("target_dim", target_dim), ("eeg_dim", eeg_dim), ("embed_dim", embed_dim)):
            if value is None and name == "embed_dim":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Invalid value for {name}: {value!r}; expected a positive integer")
        if embed_dim is None and eeg_dim != target_dim:
            raise ValueError(
                f"SingleTargetHead without embed_dim compares the EEG with the target directly: eeg_dim "
                f"({eeg_dim}) must equal target_dim ({target_dim})"
            )
        if embed_dim is None and n_variants is None:
            raise ValueError("SingleTargetHead needs embed_dim, n_variants or both; found neither")
        self.target_dim, self.eeg_dim, self.embed_dim = target_dim, eeg_dim, embed_dim
        self.mixer = None if n_variants is None else BlurMixer(n_variants, target_dim)
        self.eeg = None if embed_dim is None else nn.Linear(eeg_dim, embed_dim)
        self.target = None if embed_dim is None else nn.Linear(target_dim, embed_dim)

    def encode_targets(self, targets: torch.Tensor, subject: torch.Tensor | None = None) -> torch.Tensor:
        """The (mixed) target through the target projector; ``subject`` is accepted for the trainer's call and
        unused (the head is the same for every subject)."""
        if self.mixer is not None:
            targets = self.mixer(targets)
        elif targets.ndim != 2 or targets.shape[1] != self.target_dim:
            raise ValueError(
                f"SingleTargetHead targets: expected shape (batch, {self.target_dim}), found {tuple(targets.shape)}"
            )
        return targets if self.target is None else self.target(targets)

    def encode_eeg(self, eeg_embedding: torch.Tensor) -> torch.Tensor:
        """The encoder's output through the EEG projector (unchanged without ``embed_dim``)."""
        if eeg_embedding.ndim != 2 or eeg_embedding.shape[1] != self.eeg_dim:
            raise ValueError(
                f"SingleTargetHead eeg_embedding: expected shape (batch, {self.eeg_dim}), "
                f"found {tuple(eeg_embedding.shape)}"
            )
        return eeg_embedding if self.eeg is None else self.eeg(eeg_embedding)

    def forward(
        self, eeg_embedding: torch.Tensor, targets: torch.Tensor, subject: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(encode_eeg(eeg_embedding), encode_targets(targets))``, the pair the loss compares."""
        return self.encode_eeg(eeg_embedding), self.encode_targets(targets, subject)


class AlignedEncoder(nn.Module):
    """An encoder and a head (:class:`MultiTargetHead` or :class:`SingleTargetHead`): EEG and targets into the
    head's space.

    ``forward(x, subject)`` is the EEG side (``head.encode_eeg(encoder(x, subject))``); :meth:`encode_targets` the
    target side. The encoder's ``logit_scale`` is the model's. State-dict keys are ``encoder.*`` and ``head.*``.
    """

    def __init__(self, encoder: nn.Module, head: MultiTargetHead | SingleTargetHead):
        super().__init__()
        self.encoder, self.head = encoder, head

    @property
    def logit_scale(self) -> nn.Parameter:
        return self.encoder.logit_scale

    def forward(self, x: torch.Tensor, subject_idx: torch.Tensor | None = None) -> torch.Tensor:
        return self.head.encode_eeg(self.encoder(x, subject_idx))

    def encode_targets(
        self, layer_targets: torch.Tensor, subject: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.head.encode_targets(layer_targets, subject)
