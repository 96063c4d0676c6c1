"""The configuration of a training run: every option, checked when it is made, written in full to ``config.json``.

Options that change how fast a run goes but not what it computes (``batches``, ``checkpoint_every``,
``num_workers``, ``device``, ``compile``, ``channels_last``) may change on ``--resume`` (see :mod:`eegdecode.training.runs`).

- ``batches``: where training batches come from. ``"device"``: the fold's training EEG is copied once to the
  training device (the GPU, or RAM on CPU) and every batch is gathered there; ``"host"``: batches are gathered from
  the memory-mapped cache on the host, in a background thread, and copied to the device; ``"auto"`` (default):
  ``"host"`` on the CPU (a copy in RAM would duplicate the page cache for no speed), and on an accelerator
  ``"device"`` when the data fit in half its free memory, else ``"host"``. Both give the same batches in the same
  order, so the same numbers (a test checks it).
- ``checkpoint_every``: ``last`` (and ``best``, kept in memory meanwhile) are written every N epochs and at the
  end; a killed run resumes from the last one written and redoes the epochs after it, with the same result.
- ``compile``: ``torch.compile`` the encoder's training forward pass.
- ``channels_last``: the encoder's 4-D (convolution) weights in channels-last memory format, so oneDNN / cuDNN
  pick channels-last kernels; the same math, other rounding (measured: ``bench/train_throughput.py``).

``target`` (optional) says what the EEG is aligned to, as a :class:`TargetPlan` mapping: the target spec
(``backbone``, ``weights``, ``layers``, ``pooling``, ``blur``) and how training uses it (``combine``, ``blur_rule``,
``blur_level``, ``eval_variant``, ``router``, ``head``). Without it the feature store named by ``features`` is the
target, as before. ``mmd_epochs``: epochs of SAMGA's coarse MMD stage before InfoNCE (router targets only);
``mmd_options`` (optional, with ``mmd_epochs``) makes it SAMGA's schedule (:class:`MMDSchedule`). ``betas``: AdamW's
two coefficients (default ``[0.9, 0.999]``; NICE uses ``[0.5, 0.999]``). ``recipe``: the name of the recipe the
settings started from (``train --recipe``), recorded; run folders are named after it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from eegdecode.data.datasets import DataOptions
from eegdecode.errors import ConfigError, check_option
from eegdecode.models import resolve_encoder_name
from eegdecode.training.losses import build_loss

#: values of ``TrainConfig.batches``
BATCH_SOURCES = ("auto", "device", "host")
#: how several target layers become one target (``target.combine``)
COMBINES = ("concat", "router")
#: how a training sample's blur variant is chosen (``target.blur_rule``); ``mean`` averages the variants' features,
#: ``learned`` mixes them with softmax weights trained with the encoder
BLUR_RULES = ("fixed", "random", "uncertainty", "mean", "learned")
#: heads of a single (or concatenated) target (``target.head.kind``)
HEAD_KINDS = ("linear",)
_TARGET_TRAINING_KEYS = {"combine", "blur_rule", "blur_level", "eval_variant", "router", "head"}
_HEAD_KEYS = {"kind", "embed_dim"}
_MMD_KEYS = ("start", "end", "stage2_lr")
_ROUTER_KEYS = {
    "centre",
    "strength",
    "temperature",
    "subject_dropout",
    "mid_dim",
    "embed_dim",
    "normalize",
    "lr",
}


@dataclass(frozen=True)
class TargetPlan:
    """``TrainConfig.target`` resolved: the :class:`~eegdecode.targets.spec.TargetSpec` (backbone, weights, layers,
    pooling, blur variants) and how training uses it.

    combine: ``concat`` (layer features side by side) or ``router`` (SAMGA's per-subject layer weighting with a
      shared projector, :class:`~eegdecode.models.heads.MultiTargetHead`); a single layer is used as it is.
    blur_rule: ``fixed`` (variant ``blur_level``, default the middle one), ``random`` (uniform per sample and step),
      ``uncertainty`` (UBP's rule; three variants), ``mean`` (the variants' features averaged), ``learned``
      (every variant's features, mixed by softmax weights per variant and dimension trained with the encoder:
      :class:`~eegdecode.models.heads.BlurMixer`; at the start the mixture is ``mean``'s).
    eval_variant: the variant of the validation and test galleries (default: the one ``fixed`` would use; for
      ``mean``, the average; for ``learned``, the learned mixture, and ``eval_variant`` may not be set).
    head: ``None`` (default) or ``{kind: linear, embed_dim: N}``: linear projectors of the EEG embedding and of
      the target into a shared ``N``-d space, trained with the encoder (NeuroBridge's projector;
      :class:`~eegdecode.models.heads.SingleTargetHead`); the galleries go through the target projector. For
      one layer or concatenated layers (not ``combine: router``, which has its own projectors); no text side.
    router: options of the router head (``centre``, ``strength``, ``temperature``, ``subject_dropout``,
      ``mid_dim``, ``embed_dim``; ``normalize``: L2-normalise each projected layer before the mix, ``lr``: the
      router logits' own learning rate; both off by default, as in SAMGA, where the weights stay at their prior:
      :mod:`eegdecode.models.heads`).
    """

    spec: Any
    combine: str = "concat"
    blur_rule: str = "fixed"
    blur_level: int | None = None
    eval_variant: str | None = None
    router: dict[str, Any] = field(default_factory=dict)
    head: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TargetPlan:
        from eegdecode.targets.spec import TargetSpec

        if not isinstance(d, dict) or "backbone" not in d:
            raise ConfigError(f"Invalid value for target: {d!r}; expected a mapping with at least a backbone")
        training = {k: v for k, v in d.items() if k in _TARGET_TRAINING_KEYS}
        try:
            spec = TargetSpec.from_dict({k: v for k, v in d.items() if k not in _TARGET_TRAINING_KEYS})
        except ValueError as err:
            raise ConfigError(f"target: {err}") from None
        plan = cls(spec, **training)
        check_option("target.combine", plan.combine, COMBINES)
        check_option("target.blur_rule", plan.blur_rule, BLUR_RULES)
        n = len(spec.blur)
        if plan.blur_rule == "uncertainty" and n != 3:
            raise ConfigError(
                f"target.blur_rule 'uncertainty' needs 3 blur variants (low, medium, high); found {n}"
            )
        if plan.blur_level is not None and not (
            isinstance(plan.blur_level, int) and 0 <= plan.blur_level < n
        ):
            raise ConfigError(
                f"Invalid value for target.blur_level: {plan.blur_level!r}; expected 0 .. {n - 1}"
            )
        if plan.eval_variant is not None:
            from eegdecode.targets.blur import expand_variants

            try:
                (name,) = expand_variants([plan.eval_variant])
            except ValueError as err:
                raise ConfigError(f"target.eval_variant: {err}") from None
            object.__setattr__(plan, "eval_variant", name)
        unknown = sorted(set(plan.router) - _ROUTER_KEYS)
        if unknown:
            raise ConfigError(
                f"unknown target.router options {unknown}; known options are {sorted(_ROUTER_KEYS)}"
            )
        normalize, router_lr = plan.router.get("normalize", False), plan.router.get("lr")
        if not isinstance(normalize, bool):
            raise ConfigError(
                f"Invalid value for target.router.normalize: {normalize!r}; expected true or false"
            )
        if router_lr is not None and not (
            isinstance(router_lr, int | float)
            and not isinstance(router_lr, bool)
            and math.isfinite(router_lr)
            and router_lr > 0
        ):
            raise ConfigError(
                f"Invalid value for target.router.lr: {router_lr!r}; expected a positive number"
            )
        if plan.combine == "router" and len(spec.layers) < 2:
            raise ConfigError("target.combine 'router' weights several layers; target.layers names one")
        plan._check_head()
        if plan.blur_rule == "learned":
            if n < 2:
                raise ConfigError(f"target.blur_rule 'learned' mixes several blur variants; found {n}")
            for name in ("eval_variant", "blur_level"):
                if getattr(plan, name) is not None:
                    raise ConfigError(
                        f"target.{name} is not used with blur_rule 'learned' (training and galleries use the "
                        f"learned mixture of every variant); found {getattr(plan, name)!r}"
                    )
            if plan.combine == "router":
                raise ConfigError(
                    "target.blur_rule 'learned' is for one layer or concatenated layers, not router"
                )
        return plan

    def _check_head(self) -> None:
        if self.head is None:
            return
        if not isinstance(self.head, dict):
            raise ConfigError(
                f"Invalid value for target.head: {self.head!r}; expected a mapping such as "
                "{kind: linear, embed_dim: 512}"
            )
        unknown = sorted(set(self.head) - _HEAD_KEYS)
        if unknown:
            raise ConfigError(
                f"unknown target.head options {unknown}; known options are {sorted(_HEAD_KEYS)}"
            )
        check_option("target.head.kind", self.head.get("kind"), HEAD_KINDS)
        dim = self.head.get("embed_dim")
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ConfigError(
                f"Invalid value for target.head.embed_dim: {dim!r}; expected a positive integer"
            )
        if self.combine == "router":
            raise ConfigError(
                "target.head is for one layer or concatenated layers; combine 'router' has its own projectors "
                "(target.router.embed_dim)"
            )

    @property
    def train_level(self) -> int:
        """Index of the fixed (and default evaluation) variant."""
        return len(self.spec.blur) // 2 if self.blur_level is None else self.blur_level


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class MMDSchedule:
    """SAMGA's two stages (``LinJiang8/SAMGA`` ``train.py``), from ``mmd_epochs`` and ``mmd_options``.

    Stage 1 is the first ``epochs`` epochs. Without ``start`` / ``end`` its loss is the MMD alone (as before
    ``mmd_options`` existed); with them it is ``w * MMD + (1 - w) * contrastive``, ``w`` linear per epoch from
    ``start`` (first epoch) to ``end`` (last epoch of the stage), as SAMGA's ``get_stage1_weights``
    (``(epoch - 1) / (stage1_epochs - 1)`` of the way for its 1-based epoch; ``end`` for a one-epoch stage).
    Stage 2 is the contrastive loss with the head's shared projector frozen; with ``stage2_lr`` a new AdamW starts
    at that rate without the shared projector's parameters (SAMGA's ``build_optimizer(args.stage2_learning_rate,
    include_share_encoder=False)``), else the stage-1 optimizer goes on.
    """

    epochs: int
    start: float | None = None
    end: float | None = None
    stage2_lr: float | None = None

    @classmethod
    def from_config(cls, mmd_epochs: int, options: dict[str, Any] | None) -> MMDSchedule:
        options = options or {}
        if not isinstance(options, dict):
            raise ConfigError(
                f"Invalid value for mmd_options: {options!r}; expected a mapping with keys {list(_MMD_KEYS)}"
            )
        unknown = sorted(set(options) - set(_MMD_KEYS))
        if unknown:
            raise ConfigError(f"unknown mmd_options {unknown}; known options are {list(_MMD_KEYS)}")
        if options and not mmd_epochs:
            raise ConfigError("mmd_options needs an MMD stage: set mmd_epochs > 0")
        if ("start" in options) != ("end" in options):
            raise ConfigError(
                f"mmd_options.start and mmd_options.end go together (the MMD weight from start to end); found "
                f"only {'start' if 'start' in options else 'end'}"
            )
        for key in ("start", "end"):
            if key in options and not (_is_number(options[key]) and 0 <= options[key] <= 1):
                raise ConfigError(
                    f"Invalid value for mmd_options.{key}: {options[key]!r}; expected a number in [0, 1]"
                )
        lr = options.get("stage2_lr")
        if lr is not None and not (_is_number(lr) and lr > 0):
            raise ConfigError(f"Invalid value for mmd_options.stage2_lr: {lr!r}; expected a positive number")
        start, end = options.get("start"), options.get("end")
        return cls(mmd_epochs, None if start is None else float(start), None if end is None else float(end),
                   None if lr is None else float(lr))  # fmt: skip

    def in_stage1(self, epoch: int) -> bool:
        return epoch < self.epochs

    def weight(self, epoch: int) -> float | None:
        """The MMD weight of ``epoch`` (0-based) when stage 1 mixes MMD and contrastive, else None."""
        if self.start is None or not self.in_stage1(epoch):
            return None
        if self.epochs <= 1:
            return self.end
        return self.start + (self.end - self.start) * (epoch / (self.epochs - 1))

    def new_optimizer_at(self, epoch: int) -> bool:
        """Whether a new optimizer starts at the beginning of ``epoch`` (the first epoch of stage 2)."""
        return self.stage2_lr is not None and epoch == self.epochs

    def lr(self, epoch: int, base: float) -> float:
        """The learning rate the optimizer of ``epoch`` was built with."""
        return base if self.stage2_lr is None or self.in_stage1(epoch) else self.stage2_lr


@dataclass
class TrainConfig:
    """Everything that defines a training run; written in full to ``config.json``."""

    model: str = "NervformerV2"
    model_options: dict[str, Any] = field(default_factory=dict)
    features: str = "reference"
    epochs: int = 40
    batch_size: int = 1024
    lr: float = 3e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_epochs: float = 0.0
    cosine: bool = False
    grad_clip: float | None = None
    loss: str = "retrieval"
    loss_options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    early_stopping: int | None = None
    val_k: int = 200
    eval_draws: int = 100
    eval_test_every_epoch: bool = False
    num_workers: int = 0
    wandb: bool = False
    batches: str = "auto"
    checkpoint_every: int = 5
    compile: bool = False
    channels_last: bool = False
    target: dict[str, Any] | None = None
    mmd_epochs: int = 0
    mmd_options: dict[str, Any] | None = None
    recipe: str | None = None
    data: DataOptions = field(default_factory=DataOptions)

    def __post_init__(self) -> None:
        """Check every option before any work: one :class:`ConfigError` naming the option, value and range."""
        resolve_encoder_name(self.model)
        build_loss(self.loss, **self.loss_options)
        positive_ints = {"epochs": self.epochs, "batch_size": self.batch_size, "val_k": self.val_k,
                         "eval_draws": self.eval_draws}  # fmt: skip
        for name, value in positive_ints.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"Invalid value for {name}: {value!r}; expected a positive integer")
        if not (isinstance(self.lr, int | float) and math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"Invalid value for lr: {self.lr!r}; expected a positive number")
        for name in ("weight_decay", "warmup_epochs"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"Invalid value for {name}: {value!r}; expected a number >= 0")
        betas = self.betas
        if not (
            isinstance(betas, list | tuple)
            and len(betas) == 2
            and all(_is_number(b) and 0 <= b < 1 for b in betas)
        ):
            raise ConfigError(
                f"Invalid value for betas: {betas!r}; expected two numbers in [0, 1), e.g. [0.9, 0.999]"
            )
        self.betas = (float(betas[0]), float(betas[1]))
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ConfigError(f"Invalid value for grad_clip: {self.grad_clip!r}; expected a positive number")
        if self.early_stopping is not None and (
            not isinstance(self.early_stopping, int) or self.early_stopping < 1
        ):
            raise ConfigError(
                f"Invalid value for early_stopping: {self.early_stopping!r}; expected a positive number of epochs"
            )
        if self.num_workers < 0:
            raise ConfigError(f"Invalid value for num_workers: {self.num_workers!r}; expected >= 0")
        check_option("batches", self.batches, BATCH_SOURCES)
        if self.target is not None:
            TargetPlan.from_dict(self.target)
        if (
            isinstance(self.mmd_epochs, bool)
            or not isinstance(self.mmd_epochs, int)
            or not 0 <= self.mmd_epochs
        ):
            raise ConfigError(f"Invalid value for mmd_epochs: {self.mmd_epochs!r}; expected an integer >= 0")
        if self.mmd_epochs and not (self.target and TargetPlan.from_dict(self.target).combine == "router"):
            raise ConfigError(
                "mmd_epochs (SAMGA's MMD stage) needs target.combine 'router' (its shared projector)"
            )
        MMDSchedule.from_config(self.mmd_epochs, self.mmd_options)
        if (
            isinstance(self.checkpoint_every, bool)
            or not isinstance(self.checkpoint_every, int)
            or self.checkpoint_every < 1
        ):
            raise ConfigError(
                f"Invalid value for checkpoint_every: {self.checkpoint_every!r}; expected a positive integer"
            )

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["model"] = resolve_encoder_name(self.model)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        d = dict(d)
        data = d.pop("data", {}) or {}
        if isinstance(data, dict):
            if data.get("time_window") is not None:
                data["time_window"] = tuple(data["time_window"])
            if isinstance(data.get("channels"), list):
                data["channels"] = tuple(data["channels"])
            data_keys = {f.name for f in dataclasses.fields(DataOptions)}
            if set(data) - data_keys:
                raise ConfigError(
                    f"unknown data options {sorted(set(data) - data_keys)}; known options are {sorted(data_keys)}"
                )
            data = DataOptions(**data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown training options {unknown}; known options are {sorted(known)}")
        return cls(**d, data=data)
