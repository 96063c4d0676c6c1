"""Which reconstruction belongs to which ground-truth image: generation manifests, folder pairs, image loading.

Two ways in:

* a **generation manifest** ``gen/<model>/<subject>/manifest.json`` (format ``eegdecode-generation/1``) listing the
  ground-truth images by test index and every generated image with its index, ``source`` (``image``, ``eeg``,
  ``prior``, ``lowlevel``) and ``round``; relative paths are relative to the manifest's folder. Each
  (source, round) must cover every ground-truth index exactly once.
* **two folders** (ground truth, reconstructions), paired by sorted file order (numeric when every name starts with a
  number). A folder of concept sub-folders is read as THINGS lays out its test set: the first image of each sorted
  sub-folder is the ground truth; in a reconstruction folder the k-th image of every sub-folder forms round k.

Images are loaded as floats in [0, 1] (8-bit / 255), resized to the square base size (256 x 256 in the published
protocol, bilinear with antialias) and clamped to [0, 1].
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from eegdecode.errors import DataFormatError, MissingFileError
from eegdecode.io import read_json
from eegdecode.metrics.scores import resize_square

MANIFEST_FORMAT = "eegdecode-generation/1"
SOURCES = ("image", "eeg", "prior", "lowlevel")
FOLDER_SOURCE = "recon"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
BASE_SIZE = 256


@dataclass(frozen=True)
class ImageRecord:
    """One image: its test index, concept name and file."""

    index: int
    concept: str
    path: Path


@dataclass
class EvaluationSet:
    """Ground truth and the reconstructions to score against it.

    Attributes
    ----------
    ground_truth : list of ImageRecord
        Sorted by test index.
    reconstructions : dict
        ``source -> {round id: records}``; each round's records are aligned row by row with ``ground_truth``.
    origin : dict
        Where the set came from (mode, manifest or folders, model, subject).
    generator_random_weights : bool or None
        What the manifest says about the generator (None in folder mode: unknown).
    """

    ground_truth: list[ImageRecord]
    reconstructions: dict[str, dict[int, list[ImageRecord]]]
    origin: dict[str, Any] = field(default_factory=dict)
    generator_random_weights: bool | None = None

    @property
    def n_images(self) -> int:
        return len(self.ground_truth)


def _leading_number(name: str) -> int | None:
    match = re.match(r"\d+", name)
    return int(match.group()) if match else None


def sorted_by_name(paths: Sequence[Path]) -> list[Path]:
    """Sort by the leading number of the name when every name has one (``2_x`` before ``10_x``), else by name."""
    paths = list(paths)
    if paths and all(_leading_number(p.name) is not None for p in paths):
        return sorted(paths, key=lambda p: (_leading_number(p.name), p.name))
    return sorted(paths, key=lambda p: p.name)


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def _folder_layout(folder: Path, role: str) -> tuple[list[Path], list[tuple[Path, list[Path]]]]:
    """Return (images directly in ``folder``, [(sub-folder, its images)]); exactly one of the two is non-empty."""
    if not folder.is_dir():
        raise MissingFileError(folder, f"the {role} folder does not exist")
    flat = sorted_by_name([p for p in folder.iterdir() if _is_image(p)])
    nested = [
        (sub, sorted_by_name([p for p in sub.iterdir() if _is_image(p)]))
        for sub in sorted_by_name([p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")])
    ]
    nested = [(sub, images) for sub, images in nested if images]
    if flat and nested:
        raise DataFormatError(
            folder, f"the {role} folder mixes image files and image sub-folders", "one of the two", "both"
        )
    if not flat and not nested:
        raise DataFormatError(
            folder, f"the {role} folder holds no images", f"files ending in {IMAGE_SUFFIXES}", 0
        )
    return flat, nested


def pair_folders(gt_dir: str | Path, recon_dir: str | Path) -> EvaluationSet:
    """Pair a ground-truth folder with a reconstruction folder (see the module description for the layouts).

    Raises
    ------
    DataFormatError
        If the counts disagree (naming both folders and both counts) or sub-folders hold unequal numbers of images.
    """
    gt_dir, recon_dir = Path(gt_dir), Path(recon_dir)
    gt_flat, gt_nested = _folder_layout(gt_dir, "ground-truth")
    if gt_flat:
        ground_truth = [ImageRecord(i, p.stem, p) for i, p in enumerate(gt_flat)]
    else:
        ground_truth = [ImageRecord(i, sub.name, images[0]) for i, (sub, images) in enumerate(gt_nested)]

    rec_flat, rec_nested = _folder_layout(recon_dir, "reconstruction")
    n_found = len(rec_flat) if rec_flat else len(rec_nested)
    if n_found != len(ground_truth):
        raise DataFormatError(
            recon_dir,
            f"the number of reconstructions ({'images' if rec_flat else 'sub-folders'}) does not match the "
            f"ground truth in {gt_dir}",
            len(ground_truth),
            n_found,
        )
    if rec_flat:
        rounds = {0: [ImageRecord(g.index, g.concept, p) for g, p in zip(ground_truth, rec_flat)]}
    else:
        counts = {sub.name: len(images) for sub, images in rec_nested}
        if len(set(counts.values())) != 1:
            raise DataFormatError(
                recon_dir,
                "every sub-folder must hold the same number of images (one per round)",
                "equal counts",
                counts,
            )
        n_rounds = len(rec_nested[0][1])
        rounds = {
            k: [
                ImageRecord(g.index, g.concept, images[k]) for g, (_, images) in zip(ground_truth, rec_nested)
            ]
            for k in range(n_rounds)
        }
    origin = {"mode": "folders", "ground_truth_dir": str(gt_dir), "reconstruction_dir": str(recon_dir)}
    return EvaluationSet(ground_truth, {FOLDER_SOURCE: rounds}, origin, None)


def _require(entry: Any, key: str, kind: type, where: str, path: Path) -> Any:
    if not isinstance(entry, dict) or key not in entry:
        raise DataFormatError(path, f"{where} lacks the key {key!r}", f"an object with {key!r}", entry)
    value = entry[key]
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise DataFormatError(path, f"{where}: {key!r} must be an integer", "int", repr(value))
    if kind is str and not isinstance(value, str):
        raise DataFormatError(path, f"{where}: {key!r} must be a string", "str", repr(value))
    return value


def _preview(values: Sequence[int], limit: int = 8) -> str:
    values = sorted(values)
    return f"{values[:limit]}{' ...' if len(values) > limit else ''} ({len(values)} in all)"


def read_generation_manifest(
    manifest_path: str | Path, sources: Sequence[str] | None = None
) -> EvaluationSet:
    """Read ``manifest.json`` of a generation run and check that every (source, round) is complete.

    Parameters
    ----------
    manifest_path : path
        The manifest file, or the folder holding ``manifest.json``.
    sources : sequence of str, optional
        Keep only these sources (default: all in the manifest).

    Returns
    -------
    EvaluationSet
    """
    path = Path(manifest_path)
    if path.is_dir():
        path = path / "manifest.json"
    if not path.is_file():
        raise MissingFileError(path, "a generation run writes manifest.json next to its images")
    try:
        manifest = read_json(path)
    except ValueError as err:
        raise DataFormatError(path, "is not valid JSON", "a generation manifest", err) from err
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise DataFormatError(path, "unknown manifest format", MANIFEST_FORMAT, found)
    root = path.parent

    ground_truth: dict[int, ImageRecord] = {}
    for k, entry in enumerate(manifest.get("ground_truth") or []):
        where = f"ground_truth[{k}]"
        index = _require(entry, "index", int, where, path)
        if index in ground_truth:
            raise DataFormatError(path, f"{where}: test index {index} appears twice", "unique indices", index)
        concept = _require(entry, "concept", str, where, path)
        ground_truth[index] = ImageRecord(index, concept, root / _require(entry, "path", str, where, path))
    if len(ground_truth) < 2:
        raise DataFormatError(path, "needs at least two ground-truth images", ">= 2", len(ground_truth))

    groups: dict[tuple[str, int], dict[int, ImageRecord]] = {}
    for k, entry in enumerate(manifest.get("images") or []):
        where = f"images[{k}]"
        index = _require(entry, "index", int, where, path)
        source = _require(entry, "source", str, where, path)
        round_ = _require(entry, "round", int, where, path)
        if source not in SOURCES:
            raise DataFormatError(path, f"{where}: unknown source", list(SOURCES), repr(source))
        if index not in ground_truth:
            raise DataFormatError(
                path, f"{where}: test index has no ground-truth image", "a ground_truth index", index
            )
        concept = entry.get("concept", ground_truth[index].concept)
        if concept != ground_truth[index].concept:
            raise DataFormatError(
                path,
                f"{where}: concept differs from the ground truth of index {index}",
                ground_truth[index].concept,
                concept,
            )
        group = groups.setdefault((source, round_), {})
        if index in group:
            raise DataFormatError(
                path, f"{where}: index {index} appears twice in source {source!r} round {round_}"
            )
        group[index] = ImageRecord(index, concept, root / _require(entry, "path", str, where, path))

    wanted = set(sources) if sources is not None else None
    if wanted is not None and not wanted <= {s for s, _ in groups}:
        raise DataFormatError(
            path, "requested sources are not in the manifest", sorted({s for s, _ in groups}), sorted(wanted)
        )
    indices = sorted(ground_truth)
    reconstructions: dict[str, dict[int, list[ImageRecord]]] = {}
    for source, round_ in sorted(groups):
        if wanted is not None and source not in wanted:
            continue
        group = groups[(source, round_)]
        missing = set(indices) - set(group)
        if missing:
            raise DataFormatError(
                path,
                f"source {source!r} round {round_} does not cover every ground-truth image "
                f"(missing indices {_preview(missing)})",
                len(indices),
                len(group),
            )
        reconstructions.setdefault(source, {})[round_] = [group[i] for i in indices]
    if not reconstructions:
        raise DataFormatError(path, "lists no generated images", "a non-empty 'images' list", 0)

    all_paths = [r.path for r in ground_truth.values()] + [
        r.path for rounds in reconstructions.values() for records in rounds.values() for r in records
    ]
    absent = [p for p in all_paths if not p.is_file()]
    if absent:
        raise MissingFileError(absent[0], f"listed in {path} ({len(absent)} listed image(s) missing)")
    origin = {
        "mode": "manifest",
        "manifest": str(path),
        "model": manifest.get("model"),
        "subject": manifest.get("subject"),
    }
    return EvaluationSet(
        [ground_truth[i] for i in indices],
        reconstructions,
        origin,
        bool(manifest.get("random_weights", False)),
    )


def load_image(path: str | Path, base_size: int | None = BASE_SIZE) -> torch.Tensor:
    """Load one image as a (3, S, S) float tensor in [0, 1] (RGB, 8-bit / 255, resized to ``base_size``).

    ``base_size=None`` keeps the original size.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            array = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except OSError as err:
        raise DataFormatError(path, "cannot be read as an image", "a PNG/JPEG file", err) from err
    image = torch.from_numpy(array.copy()).permute(2, 0, 1).float() / 255.0
    if base_size is None:
        return image
    return resize_square(image[None], base_size)[0].clamp(0, 1)


def load_images(
    paths: Sequence[str | Path], base_size: int | None = BASE_SIZE, n_threads: int = 4
) -> torch.Tensor:
    """Load images (decoded in a few threads) into one (N, 3, S, S) tensor; see :func:`load_image`."""
    with ThreadPoolExecutor(max_workers=max(1, n_threads)) as pool:
        images = list(pool.map(lambda p: load_image(p, base_size), paths))
    shapes = {tuple(img.shape) for img in images}
    if len(shapes) > 1:
        raise DataFormatError(
            Path(paths[0]).parent,
            "images differ in size; pass a base size to resize them",
            "one size",
            sorted(shapes),
        )
    return torch.stack(images)
