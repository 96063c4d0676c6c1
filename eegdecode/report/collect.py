"""Find what a report is built from: run folders, generation manifests and metrics results under some folders.

Everything is read through :mod:`eegdecode.formats`. A ``results.json`` marks a finished retrieval run (its
folder's ``config.json``, ``metrics.jsonl``, ``checkpoints/best.json`` and ``profiles.json`` come with it); a
``manifest.json`` of format ``eegdecode-generation/1`` marks generation outputs, with the ``metrics.json`` beside
it when ``eegdecode metrics`` has scored them. Files that cannot be read are listed as problems, not skipped
silently.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eegdecode import formats
from eegdecode.errors import EEGDecodeError, MissingFileError


@dataclass
class Run:
    """One finished retrieval run."""

    results: formats.RunResults
    config: dict[str, Any]
    log: list[dict[str, Any]]
    checkpoint: dict[str, Any] | None
    profiles: dict[str, Any] | None

    @property
    def dir(self) -> Path:
        return self.results.run_dir

    @property
    def model(self) -> str:
        return self.results.model

    @property
    def data_root(self) -> Path | None:
        root = self.config.get("data_root")
        return None if root is None else Path(root)


@dataclass
class Generation:
    """One generation output folder: its manifest and, when scored, its metrics."""

    path: Path
    manifest: dict[str, Any]
    metrics: dict[str, Any] | None
    metrics_path: Path | None = None

    @property
    def folder(self) -> Path:
        return self.path.parent


@dataclass
class Collection:
    roots: list[Path]
    runs: list[Run] = field(default_factory=list)
    generations: list[Generation] = field(default_factory=list)
    simulations: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def simulated(self) -> bool:
        return bool(self.simulations) or any(r.results.simulated for r in self.runs)


def _walk(root: Path, name: str) -> list[Path]:
    return sorted(p for p in root.rglob(name) if p.is_file() and ".ipynb_checkpoints" not in p.parts)


def collect(roots: Iterable[str | Path]) -> Collection:
    """Everything a report can show under ``roots`` (folders), sorted by path.

    Raises
    ------
    MissingFileError
        If a root does not exist.
    """
    roots = [Path(r) for r in roots]
    for root in roots:
        if not root.is_dir():
            raise MissingFileError(root, "pass folders of run folders (for example demo_out/ or runs/)")
    found = Collection(roots=roots)
    seen: set[Path] = set()
    for root in roots:
        for path in _walk(root, formats.RESULTS_NAME):
            if path.resolve() in seen:
                continue
            seen.add(path.resolve())
            try:
                results = formats.read_results(path)
                config = formats.read_config(path.parent)
                run = Run(results, config, formats.read_metrics_log(path.parent),
                          formats.read_checkpoint_info(path.parent), formats.read_profiles(path.parent))  # fmt: skip
            except EEGDecodeError as err:
                found.problems.append(str(err))
                continue
            found.runs.append(run)
        for path in _walk(root, formats.MANIFEST_NAME):
            if path.resolve() in seen or not formats.is_format(path, formats.GENERATION_FORMAT):
                continue
            seen.add(path.resolve())
            try:
                manifest = formats.read_generation_manifest(path)
                mpath = path.parent / formats.METRICS_JSON_NAME
                metrics = formats.read_metrics_result(mpath) if mpath.is_file() else None
            except EEGDecodeError as err:
                found.problems.append(str(err))
                continue
            found.generations.append(Generation(path, manifest, metrics, mpath if metrics else None))
    for run in found.runs:
        root = run.data_root
        if root is not None and str(root) not in found.simulations and root.is_dir():
            try:
                sim = formats.read_simulation(root)
            except EEGDecodeError as err:
                found.problems.append(str(err))
                sim = None
            if sim is not None:
                found.simulations[str(root)] = sim
    return found
