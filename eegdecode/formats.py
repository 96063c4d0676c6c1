"""Every artefact's file name, format string and typed reader, in one place.

A run folder (``eegdecode train``) holds ``config.json`` (the resolved configuration plus facts about the data),
``metrics.jsonl`` (one line per epoch), ``results.json`` (format ``eegdecode-results/1``, the completion marker),
``checkpoints/best.json`` and, once ``eegdecode report`` has computed them, ``profiles.json`` (format
``eegdecode-profiles/1``). Generation writes ``gen/<model>/<subject>/manifest.json`` (``eegdecode-generation/1``)
and ``eegdecode metrics`` writes ``metrics.json`` (``eegdecode-metrics/1``) and ``metrics.csv`` beside it. A
simulated data root holds ``simulation.json`` (``eegdecode-simulation/1``) and ``ceiling.json``
(``eegdecode-ceiling/1``).

The readers check what a consumer relies on and raise :class:`~eegdecode.errors.DataFormatError` naming the file,
the expected and the found value; they return plain dictionaries (or the small records below), never half-checked
data. Nothing here imports torch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eegdecode.errors import DataFormatError, MissingFileError

CONFIG_NAME = "config.json"
RESULTS_NAME = "results.json"
METRICS_LOG_NAME = "metrics.jsonl"
CHECKPOINT_INFO = "checkpoints/best.json"
PROFILES_NAME = "profiles.json"
MANIFEST_NAME = "manifest.json"
METRICS_JSON_NAME = "metrics.json"
METRICS_CSV_NAME = "metrics.csv"
SIMULATION_NAME = "simulation.json"
CEILING_NAME = "ceiling.json"

RESULTS_FORMAT = "eegdecode-results/1"
PROFILES_FORMAT = "eegdecode-profiles/1"
GENERATION_FORMAT = "eegdecode-generation/1"
METRICS_FORMAT = "eegdecode-metrics/1"
SIMULATION_FORMAT = "eegdecode-simulation/1"
CEILING_FORMAT = "eegdecode-ceiling/1"


def _read(path: str | Path, what: str) -> Any:
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(path, f"expected {what}")
    try:
        return json.loads(path.read_text())
    except ValueError as err:
        raise DataFormatError(path, "not valid JSON", expected=what, found=str(err)) from err


def _object(path: Path, data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise DataFormatError(path, "top level is not an object", expected=what, found=type(data).__name__)
    return data


def _format(path: Path, data: dict[str, Any], expected: str, required: bool = True) -> None:
    found = data.get("format")
    if found is None and not required:
        return
    if found != expected:
        raise DataFormatError(path, "wrong format", expected=expected, found=found)


def _keys(path: Path, data: dict[str, Any], keys: Iterable[str]) -> None:
    missing = [k for k in keys if k not in data]
    if missing:
        raise DataFormatError(path, f"missing key(s) {missing}", expected=list(keys), found=sorted(data))


# ----------------------------------------------------------------------------------------------------------
# Run folders
# ----------------------------------------------------------------------------------------------------------


@dataclass
class RunResults:
    """The content of one ``results.json`` a consumer relies on; ``raw`` keeps the whole file.

    ``kway`` and ``ceiling`` are :meth:`eegdecode.evaluation.kway.KWayResult.to_dict` dictionaries (``ceiling`` is
    None on real data). ``subjects`` maps each test subject to its own ``{"kway": ..., "ceiling": ...}``.
    """

    path: Path
    model: str
    protocol: str
    subject: str | None
    seed: int | None
    kway: dict[str, Any]
    ceiling: dict[str, Any] | None = None
    fold: str | None = None
    selected_epoch: int | None = None
    selected_by: str | None = None
    val_top1: float | None = None
    test_reps: int | None = None
    simulated: bool = False
    subjects: dict[str, dict[str, Any]] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def run_dir(self) -> Path:
        return self.path.parent


def _check_kway(path: Path, kway: Any, where: str) -> None:
    if not isinstance(kway, dict) or not isinstance(kway.get("k"), dict) or not kway["k"]:
        raise DataFormatError(
            path,
            f"{where!r} has no per-k scores",
            expected="KWayResult.to_dict() with a 'k' object",
            found=kway,
        )
    for k, score in kway["k"].items():
        if not isinstance(score, dict) or "top1_mean" not in score or "chance_top1" not in score:
            raise DataFormatError(
                path,
                f"'{where}.k.{k}' lacks top1_mean/chance_top1",
                expected="KWayScore.to_dict()",
                found=score,
            )


def read_results(path: str | Path) -> RunResults:
    """One ``results.json`` (a file, or the run folder holding it), checked.

    Files without a ``format`` key (older runs, hand-written tables) are accepted when they carry ``model`` and
    ``kway``; a different ``format`` is refused.
    """
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_NAME
    data = _object(path, _read(path, "a results.json written by a run"), "a JSON object")
    _format(path, data, RESULTS_FORMAT, required=False)
    _keys(path, data, ("model", "kway"))
    _check_kway(path, data["kway"], "kway")
    if data.get("ceiling") is not None:
        _check_kway(path, data["ceiling"], "ceiling")
    val = data.get("val_top1")
    return RunResults(
        path=path,
        model=str(data["model"]),
        protocol=str(data.get("protocol") or ""),
        subject=None if data.get("subject") is None else str(data["subject"]),
        seed=None if data.get("seed") is None else int(data["seed"]),
        kway=data["kway"],
        ceiling=data.get("ceiling"),
        fold=data.get("fold"),
        selected_epoch=data.get("selected_epoch"),
        selected_by=data.get("selected_by"),
        val_top1=None if val is None or (isinstance(val, float) and math.isnan(val)) else float(val),
        test_reps=data.get("test_reps"),
        simulated=bool(data.get("simulated", False)),
        subjects=dict(data.get("subjects") or {}),
        raw=data,
    )


def read_config(run_dir: str | Path) -> dict[str, Any]:
    """A run's ``config.json`` (the resolved configuration), checked for the keys a report relies on."""
    path = Path(run_dir) / CONFIG_NAME
    data = _object(path, _read(path, "the config.json a training run writes"), "a JSON object")
    _keys(path, data, ("model", "data", "fold"))
    return data


def read_metrics_log(run_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of a run's ``metrics.jsonl`` (one per epoch); an empty list when the file does not exist."""
    path = Path(run_dir) / METRICS_LOG_NAME
    if not path.is_file():
        return []
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as err:
            raise DataFormatError(
                path, f"line {number} is not valid JSON", "one JSON object per line", line[:80]
            ) from err
        if not isinstance(row, dict) or "epoch" not in row:
            raise DataFormatError(path, f"line {number} has no 'epoch'", "an object with 'epoch'", row)
        rows.append(row)
    return rows


def read_checkpoint_info(run_dir: str | Path) -> dict[str, Any] | None:
    """``checkpoints/best.json`` (epoch, fit report of closed-form models, ...), or None when absent."""
    path = Path(run_dir) / CHECKPOINT_INFO
    if not path.is_file():
        return None
    return _object(path, _read(path, "checkpoint information"), "a JSON object")


def read_profiles(run_dir: str | Path) -> dict[str, Any] | None:
    """A run's ``profiles.json`` (see :mod:`eegdecode.evaluation.profiles`), or None when absent."""
    path = Path(run_dir) / PROFILES_NAME
    if not path.is_file():
        return None
    data = _object(path, _read(path, "occlusion profiles"), "a JSON object")
    _format(path, data, PROFILES_FORMAT)
    _keys(path, data, ("model", "measure", "subjects", "settings"))
    for name, sub in data["subjects"].items():
        _keys(path, sub, ("baseline", "temporal", "spatial", "regions"))
        if len(sub["spatial"]["channels"]) != len(sub["spatial"]["masked"]):
            raise DataFormatError(
                path, f"subjects.{name}.spatial: one masked score per channel",
                len(sub["spatial"]["channels"]), len(sub["spatial"]["masked"]),
            )  # fmt: skip
    return data


# ----------------------------------------------------------------------------------------------------------
# Generation and metrics
# ----------------------------------------------------------------------------------------------------------


def read_generation_manifest(path: str | Path) -> dict[str, Any]:
    """A generation ``manifest.json`` (file or folder), checked; image paths stay relative to its folder."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    data = _object(path, _read(path, "a generation manifest"), "a JSON object")
    _format(path, data, GENERATION_FORMAT)
    _keys(path, data, ("random_weights", "model", "subject", "ground_truth", "images", "provenance"))
    return data


def read_metrics_result(path: str | Path) -> dict[str, Any]:
    """A ``metrics.json`` written by ``eegdecode metrics`` (file or folder), checked."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_JSON_NAME
    data = _object(path, _read(path, "a metrics.json written by eegdecode metrics"), "a JSON object")
    _format(path, data, METRICS_FORMAT)
    _keys(path, data, ("columns", "results", "skipped", "random_weights", "n_images"))
    return data


def is_format(path: str | Path, expected: str) -> bool:
    """Whether a JSON file declares format ``expected`` (False for unreadable or foreign files)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("format") == expected


# ----------------------------------------------------------------------------------------------------------
# Data roots
# ----------------------------------------------------------------------------------------------------------


def read_simulation(root: str | Path) -> dict[str, Any] | None:
    """A simulated data set's ``simulation.json`` (components with their latencies, sizes, seed), or None."""
    path = Path(root) / SIMULATION_NAME
    if not path.is_file():
        return None
    data = _object(path, _read(path, "a simulation description"), "a JSON object")
    _format(path, data, SIMULATION_FORMAT)
    return data


def read_ceiling(root: str | Path) -> dict[str, Any] | None:
    """A simulated data set's ``ceiling.json`` (per-subject ideal-decoder k-way results), or None."""
    path = Path(root) / CEILING_NAME
    if not path.is_file():
        return None
    data = _object(path, _read(path, "the simulator's retrieval ceiling"), "a JSON object")
    _format(path, data, CEILING_FORMAT)
    _keys(path, data, ("subjects",))
    return data
