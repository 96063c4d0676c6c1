"""The configuration of a training run: every option, checked when it is made, written in full to ``config.json``.

Options that change how fast a run goes but not what it computes (``batches``, ``checkpoint_every``,
``num_workers``, ``device``, ``compile``) may change on ``--resume`` (see :mod:`eegdecode.training.runs`).

- ``batches``: where training batches come from. ``"device"``: the fold's training EEG is copied once to the
  training device (the GPU, or RAM on CPU) and every batch is gathered there; ``"host"``: batches are gathered from
  the memory-mapped cache on the host, in a background thread, and copied to the device; ``"auto"`` (default):
  ``"device"`` when the data fit in half the device's free memory, else ``"host"``. Both give the same batches in
  the same order, so the same numbers (a test checks it).
- ``checkpoint_every``: ``last`` (and ``best``, kept in memory meanwhile) are written every N epochs and at the
  end; a killed run resumes from the last one written and redoes the epochs after it, with the same result.
- ``compile``: ``torch.compile`` the encoder's training forward pass.
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
