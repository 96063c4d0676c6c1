"""Training losses: contrastive (CLIP / InfoNCE) alignment of EEG embeddings with image and text embeddings.

The total loss of a batch is::

    scale * (w_img * CLIP(eeg, img) + w_txt * CLIP(eeg, txt) + w_mse * MSE(eeg, img))

with three presets (``LOSS_PRESETS``):

- ``"retrieval"`` (default): 0.99 image + 0.01 text contrastive, no MSE; the weights of the seed retrieval scripts.
- ``"generation"``: ATM's generation-oriented recipe ``10 * (0.9 * MSE + 0.1 * CLIP_img)``
  (``Generation/ATM_S_reconstruction_scale*.py`` of ``dongyangli-del/EEG_Image_decode``). The MSE compares the EEG
  embedding with the image embedding *as passed*, unnormalised: the point of this preset is an embedding that can
  be fed to IP-Adapter, which was trained on unnormalised CLIP image embeddings, and ATM's maintainer advises not
  to normalise CLIP features on the generation path (``dongyangli-del/EEG_Image_decode`` issue #10). So pass the feature store's unnormalised image features
  (``load_features(..., normalise=False)``); the contrastive term normalises internally and does not care.
  ``mse_normalise=True`` switches to MSE between L2-normalised vectors for users who want it.
- ``"seed-loss"``: the original code's contrastive form with 0.99 / 0.01, kept only for comparisons
  (see :func:`seed_clip_loss`).

The standard contrastive form (:func:`clip_loss`) L2-normalises both sides and multiplies the cosine similarities
by ``exp(logit_scale)`` clamped at 100, the learnable log-temperature of CLIP, initialised at ``ln(1 / 0.07)``
(``LOGIT_SCALE_INIT``). The encoders own that parameter (it counts in their parameter totals); the loss receives it.
Three options (``loss_options``) give the forms of later papers; their defaults are the standard form:

- ``temperature``: ``"exp"`` (default), ``"softplus"``: the multiplier is ``softplus(logit_scale)``, unclamped
  (UBP, ``HaitaoWuTJU/Uncertainty-aware-Blur-Prior`` ``main.py``; SAMGA, ``LinJiang8/SAMGA``
  ``module/loss.py:ContrastiveLoss`` with ``--softplus``); the parameter keeps its initialisation ``ln(1 / 0.07)``,
  as in both codes, so the multiplier starts at ``softplus(ln(1 / 0.07)) = ln(1 + 1 / 0.07)`` = 2.727, not 14.29; or a positive
  number: a fixed temperature ``t``, multiplier ``1 / t``, the parameter not used.
- ``learn_temperature``: ``false`` fixes the ``exp`` or ``softplus`` multiplier at its value at the initialisation
  ``ln(1 / 0.07)`` (the codes' ``--t_learnable`` not set); the encoder's parameter is not used.
- ``normalise``: ``"both"`` (default) or ``"target"``: only the image / text side is L2-normalised and the EEG
  embeddings enter as they are (UBP, SAMGA and NeuroBridge: ``--img_l2norm`` without ``--eeg_l2norm``).
The losses are computed in float32 (autocast off) even when the embeddings come out of a bf16 autocast region:
with a multiplier up to 100, bf16's 8-bit mantissa would round logits by up to about 0.4.

Optional ``labels`` remove in-batch false negatives. In THINGS-EEG2 the 4 training repetitions of one image, and
about 40 trials of one concept (10 images x 4 repetitions), can share a batch of 1024; the plain loss pushes them
apart as if they were different items, and for the text target (one caption per concept) the "negatives" are
literally the same vector as the positive. With ``labels`` (an image index, or a concept index), pairs that share a
label are removed from the softmax denominators; each sample's own pair stays the positive. It is off by default
because the seed and ATM recipes did not use it (``ChiShengChen/EEG_gen_img_NECOMIMI``, its ``ClipLoss``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from eegdecode.errors import ConfigError, check_option

LOGIT_SCALE_INIT: float = math.log(1 / 0.07)
FORMS: tuple[str, ...] = ("standard", "seed")
#: named temperature forms (``temperature`` may also be a positive number: a fixed temperature)
TEMPERATURES: tuple[str, ...] = ("exp", "softplus")
#: which sides :func:`clip_loss` L2-normalises
NORMALISATIONS: tuple[str, ...] = ("both", "target")

LOSS_PRESETS: dict[str, dict[str, Any]] = {
    "retrieval": {"w_img": 0.99, "w_txt": 0.01, "w_mse": 0.0, "form": "standard", "scale": 1.0},
    "generation": {
        "w_img": 0.1,
        "w_txt": 0.0,
        "w_mse": 0.9,
        "form": "standard",
        "scale": 10.0,
        "mse_normalise": False,
    },
    "seed-loss": {"w_img": 0.99, "w_txt": 0.01, "w_mse": 0.0, "form": "seed", "scale": 1.0},
}


def _check_pair(x: torch.Tensor, y: torch.Tensor, names: tuple[str, str] = ("x", "y")) -> None:
    if x.ndim != 2 or y.ndim != 2:
        raise ConfigError(
            f"{names[0]} and {names[1]} must be 2-D (batch, dim); found shapes {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if x.shape != y.shape:
        raise ConfigError(
            f"{names[0]} and {names[1]} must have the same shape (row i of each is a positive pair); "
            f"found {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if x.shape[0] < 1:
        raise ConfigError(f"{names[0]} must hold at least one sample; found batch size 0")


def _full_precision(*tensors: torch.Tensor) -> list[torch.Tensor]:
    """Half-precision inputs promoted to float32 (the logits of a 1024 batch need more than bf16's 8 bits)."""
    return [t.float() if t.dtype in (torch.float16, torch.bfloat16) else t for t in tensors]


def _symmetric_cross_entropy(logits: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """Mean of the row-wise and column-wise cross-entropies with the diagonal as targets."""
    batch = logits.shape[0]
    if labels is not None:
        labels = torch.as_tensor(labels, device=logits.device)
        if labels.shape != (batch,):
            raise ConfigError(
                f"labels must have shape ({batch},), one per sample; found {tuple(labels.shape)}"
            )
        same = labels[:, None] == labels[None, :]
        same.fill_diagonal_(False)
        # The mask is symmetric, so the same entries leave the row (x -> y) and the column (y -> x) softmaxes.
        logits = logits.masked_fill(same, float("-inf"))
    targets = torch.arange(batch, device=logits.device)
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets))


def clip_loss(
    x: torch.Tensor,
    y: torch.Tensor,
    logit_scale: torch.Tensor | float,
    normalise: bool = True,
    max_scale: float | None = 100.0,
    labels: torch.Tensor | None = None,
    temperature: str | float = "exp",
) -> torch.Tensor:
    """Symmetric InfoNCE (CLIP) loss between two batches whose row i is a positive pair.

    Parameters
    ----------
    x, y : torch.Tensor, shape (batch, dim)
        Embeddings, e.g. EEG and image features.
    logit_scale : torch.Tensor or float
        Log of the multiplier (inverse temperature); the logits are ``exp(logit_scale)`` times the similarities,
        with the multiplier clamped at ``max_scale``. Gradients flow into it below the clamp.
    normalise : bool or {"both", "target"}
        ``True`` / ``"both"``: L2-normalise ``x`` and ``y`` first, so the similarities are cosines (standard
        CLIP); ``"target"``: normalise ``y`` only; ``False``: neither.
    max_scale : float or None
        Upper bound of ``exp(logit_scale)`` (100 as in CLIP); None disables the clamp.
    labels : torch.Tensor of shape (batch,), optional
        Sample identities; off-diagonal pairs with equal labels are not used as negatives (see module text).
    temperature : {"exp", "softplus"} or float
        The multiplier: ``exp(logit_scale)`` (clamped), ``softplus(logit_scale)`` (not clamped), or ``1 / t`` for a
        fixed temperature ``t`` (``logit_scale`` unused).

    Returns
    -------
    torch.Tensor
        Scalar: the mean of the cross-entropy of ``x -> y`` and of ``y -> x`` with targets ``arange(batch)``.
    """
    _check_pair(x, y)
    x, y = _full_precision(x, y)
    check_option("normalise", normalise, (True, False, *NORMALISATIONS))
    logit_scale = torch.as_tensor(logit_scale, dtype=x.dtype, device=x.device)
    with torch.autocast(device_type=x.device.type, enabled=False):
        if normalise is True or normalise == "both":
            x = F.normalize(x, dim=-1)
            y = F.normalize(y, dim=-1)
        elif normalise == "target":
            y = F.normalize(y, dim=-1)
        if temperature == "exp":
            multiplier = logit_scale.exp()
            if max_scale is not None:
                multiplier = multiplier.clamp(max=max_scale)
        elif temperature == "softplus":
            multiplier = F.softplus(logit_scale)
        else:
            multiplier = torch.as_tensor(
                1.0 / _fixed_temperature(temperature), dtype=x.dtype, device=x.device
            )
        logits = multiplier * (x @ y.T)
        return _symmetric_cross_entropy(logits, labels)


def _fixed_temperature(value: object) -> float:
    """``value`` as a fixed temperature (a finite positive number), or a :class:`ConfigError` naming the forms."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (math.isfinite(value) and value > 0)
    ):
        raise ConfigError(
            f"Invalid value for temperature: {value!r}; expected one of {list(TEMPERATURES)} or a positive "
            "number (a fixed temperature, e.g. 0.07)"
        )
    return float(value)


def seed_clip_loss(
    x: torch.Tensor,
    y: torch.Tensor,
    logit_scale: torch.Tensor | float,
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """The seed code's contrastive loss, reproduced for comparisons only.

    As in the seed code's ``ClipLoss`` (``ChiShengChen/EEG_gen_img_NECOMIMI``, inherited from ATM): the logits are
    ``logit_scale * x @ y.T`` with the *raw* parameter as the multiplier (about 2.66 at its initialisation
    ``ln(1 / 0.07)``, not its exponential, and unbounded), the EEG embeddings ``x`` are *not* normalised (LayerNorm
    outputs, norm about 32 at initialisation), and the targets ``y`` are unit-norm. In the seed code the targets were
    unit-norm because the cached CLIP features were L2-normalised when computed; here ``y`` is L2-normalised
    inside, so the function reproduces the seed whether it is given normalised or raw (feature-store) targets.
    The loss is the mean of the two cross-entropies with diagonal targets, as in :func:`clip_loss`.

    Parameters
    ----------
    x : torch.Tensor, shape (batch, dim)
        EEG embeddings, used as they are.
    y : torch.Tensor, shape (batch, dim)
        Image or text embeddings, L2-normalised here.
    logit_scale : torch.Tensor or float
        Used directly as the multiplier.
    labels : torch.Tensor of shape (batch,), optional
        As in :func:`clip_loss` (not part of the seed recipe; default off).
    """
    _check_pair(x, y)
    x, y = _full_precision(x, y)
    logit_scale = torch.as_tensor(logit_scale, dtype=x.dtype, device=x.device)
    with torch.autocast(device_type=x.device.type, enabled=False):
        y = F.normalize(y, dim=-1)
        logits = logit_scale * (x @ y.T)
        return _symmetric_cross_entropy(logits, labels)


class EEGClipLoss(nn.Module):
    """Weighted sum of image and text contrastive losses and an image MSE, times an overall scale.

    ``loss = scale * (w_img * CLIP(eeg, img) + w_txt * CLIP(eeg, txt) + w_mse * MSE(eeg, img))``.

    Parameters
    ----------
    w_img, w_txt, w_mse : float
        Weights of the image contrastive, text contrastive and image MSE terms (non-negative). Terms with weight 0
        are not computed, so ``txt`` may be omitted when ``w_txt == 0``.
    form : {"standard", "seed"}
        ``"standard"``: :func:`clip_loss` (normalised, exponentiated and clamped scale). ``"seed"``:
        :func:`seed_clip_loss` (the original raw-multiplier form).
    scale : float
        Overall multiplier (10 in ATM's generation recipe).
    max_scale : float or None
        Clamp of ``exp(logit_scale)`` in the standard form.
    mse_normalise : bool
        MSE between L2-normalised vectors instead of the raw ones (default raw; see module text).
    temperature : {"exp", "softplus"} or float
        The contrastive multiplier's form (standard form only; see module text): ``exp(logit_scale)`` clamped at
        ``max_scale`` (default), ``softplus(logit_scale)``, or a fixed temperature ``t`` (multiplier ``1 / t``).
    learn_temperature : bool
        ``False``: the ``exp`` / ``softplus`` multiplier is fixed at its value for ``LOGIT_SCALE_INIT``; the
        encoder's ``logit_scale`` is not used (and the trainer freezes it).
    normalise : {"both", "target"}
        L2-normalise both sides (default) or only the image / text side.
    """

    def __init__(
        self,
        w_img: float = 0.99,
        w_txt: float = 0.01,
        w_mse: float = 0.0,
        form: str = "standard",
        scale: float = 1.0,
        max_scale: float | None = 100.0,
        mse_normalise: bool = False,
        temperature: str | float = "exp",
        learn_temperature: bool = True,
        normalise: str = "both",
    ):
        super().__init__()
        check_option("form", form, FORMS)
        if temperature not in TEMPERATURES:
            temperature = _fixed_temperature(temperature)
        if not isinstance(learn_temperature, bool):
            raise ConfigError(
                f"Invalid value for learn_temperature: {learn_temperature!r}; expected true or false"
            )
        check_option("normalise", normalise, NORMALISATIONS)
        if form == "seed" and (temperature, learn_temperature, normalise) != ("exp", True, "both"):
            raise ConfigError(
                "form 'seed' fixes its own temperature (the raw parameter) and normalisation (targets only); "
                f"found temperature={temperature!r}, learn_temperature={learn_temperature}, normalise={normalise!r}"
            )
        for name, value in (("w_img", w_img), ("w_txt", w_txt), ("w_mse", w_mse), ("scale", scale)):
            if not math.isfinite(float(value)) or float(value) < 0:
                raise ConfigError(f"{name} must be a finite, non-negative number; found {value!r}")
        if w_img == 0 and w_txt == 0 and w_mse == 0:
            raise ConfigError("at least one of w_img, w_txt, w_mse must be positive; found all 0")
        self.w_img = float(w_img)
        self.w_txt = float(w_txt)
        self.w_mse = float(w_mse)
        self.form = form
        self.scale = float(scale)
        self.max_scale = max_scale
        self.mse_normalise = bool(mse_normalise)
        self.temperature = temperature
        self.learn_temperature = learn_temperature
        self.normalise = normalise

    @property
    def learns_temperature(self) -> bool:
        """Whether the loss uses (and trains) the encoder's ``logit_scale``."""
        return self.form == "seed" or (self.learn_temperature and self.temperature in TEMPERATURES)

    def extra_repr(self) -> str:
        return (
            f"w_img={self.w_img}, w_txt={self.w_txt}, w_mse={self.w_mse}, form={self.form!r}, "
            f"scale={self.scale}, max_scale={self.max_scale}, mse_normalise={self.mse_normalise}, "
            f"temperature={self.temperature!r}, learn_temperature={self.learn_temperature}, "
            f"normalise={self.normalise!r}"
        )

    def config(self) -> dict[str, Any]:
        """The constructor arguments, for the run's ``config.json``."""
        return {
            "w_img": self.w_img,
            "w_txt": self.w_txt,
            "w_mse": self.w_mse,
            "form": self.form,
            "scale": self.scale,
            "max_scale": self.max_scale,
            "mse_normalise": self.mse_normalise,
            "temperature": self.temperature,
            "learn_temperature": self.learn_temperature,
            "normalise": self.normalise,
        }

    def _contrastive(self, eeg, target, logit_scale, labels) -> torch.Tensor:
        if self.form == "seed":
            return seed_clip_loss(eeg, target, logit_scale, labels=labels)
        if not self.learns_temperature:
            logit_scale = LOGIT_SCALE_INIT
        return clip_loss(eeg, target, logit_scale, normalise=self.normalise, max_scale=self.max_scale,
                         labels=labels, temperature=self.temperature)  # fmt: skip

    def forward(
        self,
        eeg: torch.Tensor,
        img: torch.Tensor,
        logit_scale: torch.Tensor | float,
        txt: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        txt_labels: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and its parts.

        Parameters
        ----------
        eeg, img : torch.Tensor, shape (batch, dim)
            EEG embeddings and the image embeddings of the same samples.
        logit_scale : torch.Tensor or float
            The encoder's learnable logit scale.
        txt : torch.Tensor, shape (batch, dim), optional
            Text embeddings of each sample's concept; required when ``w_txt > 0``.
        labels : torch.Tensor, shape (batch,), optional
            Identities masked out of the image term's negatives (e.g. image index).
        txt_labels : torch.Tensor, shape (batch,), optional
            Identities masked out of the text term's negatives (e.g. concept index); defaults to ``labels``.

        Returns
        -------
        total : torch.Tensor
            Scalar loss to back-propagate.
        parts : dict of str to torch.Tensor
            Detached unweighted terms (``"img"``, ``"txt"``, ``"mse"`` where computed) and ``"total"``, for logging.
        """
        _check_pair(eeg, img, ("eeg", "img"))
        parts: dict[str, torch.Tensor] = {}
        total = eeg.new_zeros((), dtype=torch.promote_types(eeg.dtype, torch.float32))
        if self.w_img > 0:
            parts["img"] = self._contrastive(eeg, img, logit_scale, labels)
            total = total + self.w_img * parts["img"]
        if self.w_txt > 0:
            if txt is None:
                raise ConfigError(f"txt embeddings are required when w_txt > 0 (w_txt={self.w_txt})")
            _check_pair(eeg, txt, ("eeg", "txt"))
            parts["txt"] = self._contrastive(
                eeg, txt, logit_scale, labels if txt_labels is None else txt_labels
            )
            total = total + self.w_txt * parts["txt"]
        if self.w_mse > 0:
            prediction, target = _full_precision(eeg, img)
            if self.mse_normalise:
                prediction, target = F.normalize(prediction, dim=-1), F.normalize(target, dim=-1)
            parts["mse"] = F.mse_loss(prediction, target)
            total = total + self.w_mse * parts["mse"]
        total = self.scale * total
        parts = {name: value.detach() for name, value in parts.items()}
        parts["total"] = total.detach()
        return total, parts


def build_loss(preset: str = "retrieval", **overrides: Any) -> EEGClipLoss:
    """An :class:`EEGClipLoss` from a named preset, with any constructor argument overridden.

    Parameters
    ----------
    preset : {"retrieval", "generation", "seed-loss"}
        Named recipe from ``LOSS_PRESETS``.
    **overrides
        Constructor arguments of :class:`EEGClipLoss` that replace the preset's values (e.g. ``w_txt=0``).
    """
    check_option("preset", preset, LOSS_PRESETS)
    allowed = ("w_img", "w_txt", "w_mse", "form", "scale", "max_scale", "mse_normalise", "temperature",
               "learn_temperature", "normalise")  # fmt: skip
    for name in overrides:
        check_option("loss override", name, allowed)
    return EEGClipLoss(**{**LOSS_PRESETS[preset], **overrides})


def mmd_loss(
    eeg: torch.Tensor, img: torch.Tensor, logit_scale=None, txt: torch.Tensor | None = None, **_: object
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Squared maximum mean discrepancy between the batch's EEG and target embeddings (L2-normalised), with a
    sum of Gaussian kernels at bandwidths 0.5, 1 and 2 times the median pairwise distance: the coarse,
    distribution-level alignment stage SAMGA runs before InfoNCE (Jiang et al., arXiv 2604.17782). Same call
    signature as :class:`EEGClipLoss` (``logit_scale`` and ``txt`` are ignored)."""
    x, y = F.normalize(eeg.float(), dim=-1), F.normalize(img.float(), dim=-1)
    z = torch.cat([x, y])
    d2 = torch.cdist(z, z).pow(2)
    scale = d2.detach().median().clamp_min(1e-6)
    k = sum(torch.exp(-d2 / (f * scale)) for f in (0.5, 1.0, 2.0))
    n = x.shape[0]
    mmd = k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean()
    return mmd, {"mmd": mmd.detach(), "total": mmd.detach()}


class MMDMix:
    """``weight * MMD + (1 - weight) * contrastive``: SAMGA's stage-1 loss, with the MMD weight of one epoch
    (``LinJiang8/SAMGA`` ``train.py``, ``mmd_w * mmd_rbf(...) + contrast_w * criterion(...)``; the MMD here is
    :func:`mmd_loss`). Same call signature as :class:`EEGClipLoss`; the parts are the contrastive ones plus
    ``"mmd"`` and ``"mmd_weight"``.

    Parameters
    ----------
    weight : float
        The MMD weight, in [0, 1].
    contrastive : EEGClipLoss
        The contrastive loss of the run.
    """

    def __init__(self, weight: float, contrastive: EEGClipLoss):
        if not 0.0 <= weight <= 1.0:
            raise ConfigError(f"the MMD weight must be in [0, 1]; found {weight!r}")
        self.weight, self.contrastive = float(weight), contrastive

    def __call__(
        self, eeg: torch.Tensor, img: torch.Tensor, logit_scale, txt: torch.Tensor | None = None, **kw: object
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        mmd, _ = mmd_loss(eeg, img)
        contrastive, parts = self.contrastive(eeg, img, logit_scale, txt=txt, **kw)
        total = self.weight * mmd + (1.0 - self.weight) * contrastive
        return total, {**parts, "mmd": mmd.detach(), "mmd_weight": mmd.new_tensor(self.weight, dtype=torch.float64),
                       "total": total.detach()}  # fmt: skip
