"""Run folders: where a run lives, when it may be reused, and what ``--resume`` may change.

One function, :func:`run_dir`, builds the path ``<out>/<model or recipe>/<protocol>/<fold>/seed<seed>`` for ``train``,
``extract``, ``generate`` and the demo. ``results.json`` marks a finished run.

``--resume`` continues a run with the configuration it was started with. The command's configuration is compared
with the stored ``config.json``; any difference is refused with the differing keys named, except the keys in
:data:`RESUME_SAFE_KEYS`:

- ``epochs``: extends (or shortens) a run; recorded in ``config.json`` under ``changes`` with the epoch from which
  it applies. Refused together with ``cosine`` decay, whose schedule depends on the total number of epochs.
- ``device``, ``num_workers``, ``wandb``, ``eval_test_every_epoch``, ``batches``, ``checkpoint_every``,
  ``compile``: where, how fast and how watched the run is, not what it computes (``eval_test_every_epoch`` only logs
  test monitoring columns, never used for selection).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from eegdecode.data.paths import subject_name
from eegdecode.errors import ConfigError, OutputExistsError
from eegdecode.io import json_text, read_json

#: TrainConfig keys that ``--resume`` may change (see the module docstring).
RESUME_SAFE_KEYS = ("epochs", "device", "num_workers", "wandb", "eval_test_every_epoch", "batches", "checkpoint_every",
                    "compile", "channels_last")  # fmt: skip


def run_dir(
    out: str | Path, model: str, protocol: str, fold: str, seed: int, recipe: str | None = None
) -> Path:
    """``<out>/<model>/<protocol>/<fold>/seed<seed>``; ``fold`` is a subject (``1``, ``sub-01``) or ``joint``.

    A run started from a recipe is named after it instead of its encoder (two recipes may share one encoder):
    ``<out>/<recipe>/<protocol>/<fold>/seed<seed>``."""
    from eegdecode.models import resolve_encoder_name

    fold = fold if fold == "joint" else subject_name(fold)
    return Path(out) / (recipe or resolve_encoder_name(model)) / protocol / fold / f"seed{seed}"


def check_run_dir(path: Path, overwrite: bool, resume: bool) -> None:
    """Refuse a used run folder unless ``overwrite`` or ``resume``; refuse ``resume`` of a folder with no run."""
    if overwrite and resume:
        raise ConfigError("--overwrite and --resume exclude each other: start again, or continue")
    used = path.exists() and any(path.iterdir())
    if used and not (overwrite or resume):
        raise OutputExistsError(path, "--overwrite (start again) or --resume (continue)")


def prepare_run_dir(path: Path, overwrite: bool) -> None:
    if overwrite and path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)


def _flat(config: dict[str, Any]) -> dict[str, Any]:
    """One level of nesting flattened (``data.channels``), values as JSON stores them."""
    plain = json.loads(json_text(config))
    out = {}
    for k, v in plain.items():
        if isinstance(v, dict) and k == "data":
            out.update({f"{k}.{kk}": vv for kk, vv in v.items()})
        else:
            out[k] = v
    return out


def _option_defaults() -> dict[str, Any]:
    import dataclasses

    from eegdecode.training.config import TrainConfig

    return {
        f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING
    }


def resume_changes(path: Path, config: dict[str, Any], start_epoch: int) -> list[dict[str, Any]]:
    """Changes of training configuration ``config`` (``TrainConfig.to_dict()``) against the stored
    ``config.json`` of run ``path`` that ``--resume`` accepts.

    Returns the list to record in ``config.json`` (``[{"key", "from", "to", "from_epoch"}]``, earlier changes
    first); raises :class:`ConfigError` naming every other differing key, before anything is written.
    """
    stored_path = path / "config.json"
    if not stored_path.exists():
        return []
    stored = read_json(stored_path)
    after = _flat(config)
    # a key the stored run lacks was made by a version without that option: it ran as the option's default
    defaults = _option_defaults()
    before = _flat({k: stored[k] if k in stored else defaults.get(k) for k in config})
    differing = [k for k in after if before.get(k) != after.get(k)]
    unsafe = [k for k in differing if k not in RESUME_SAFE_KEYS]
    if "epochs" in differing and after.get("cosine"):
        unsafe.append("epochs")
    if unsafe:
        detail = ", ".join(f"{k} {before.get(k)!r} -> {after.get(k)!r}" for k in dict.fromkeys(unsafe))
        raise ConfigError(
            f"{stored_path}: --resume with a changed configuration ({detail}); --resume may change only "
            f"{', '.join(RESUME_SAFE_KEYS)} (epochs not with cosine decay). Repeat the original options, or start "
            "a new run (another --out, or --overwrite)"
        )
    changes = list(stored.get("changes", []))
    changes += [
        {"key": k, "from": before.get(k), "to": after.get(k), "from_epoch": start_epoch} for k in differing
    ]
    return changes
