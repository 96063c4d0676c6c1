"""The feature store: image and text embeddings of an image set, as plain arrays with a JSON sidecar.

Layout of a feature folder (no pickle)::

    features.json                 provenance (source, model, weights, image lists, dim, ...)
    image_features_train.npy      (n_train_images, dim) float32, unnormalised
    text_features_train.npy       (n_train_concepts, dim) float32, unnormalised
    image_features_test.npy       (n_test_images, dim)
    text_features_test.npy        (n_test_concepts, dim)

Rows follow the sorted image-set walk (concept-major), the same order as the EEG conditions. Features are stored
unnormalised; ``load_features(..., normalise=True)`` L2-normalises on load. Both real open_clip features
(``eegdecode features``) and the simulator's reference embeddings use this layout, so everything downstream is
the same whichever produced them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eegdecode.errors import DataFormatError, MissingFileError
from eegdecode.io import read_json, save_npy, write_json

FORMAT = "eegdecode-features/1"
SPLITS = ("train", "test")


@dataclass
class FeatureSet:
    """Embeddings of one split. ``image`` rows are images, ``text`` rows are concepts."""

    image: np.ndarray
    text: np.ndarray
    meta: dict[str, Any]


def image_list_digest(names: Iterable[str]) -> str:
    """A digest of an ordered list of image names (relative paths), recorded as provenance."""
    h = hashlib.sha256()
    for n in names:
        h.update(str(n).encode())
        h.update(b"\n")
    return h.hexdigest()


def save_features(
    folder: str | Path,
    splits: dict[str, tuple[np.ndarray, np.ndarray]],
    meta: dict[str, Any],
) -> Path:
    """Write ``{split: (image_features, text_features)}`` and the sidecar atomically (sidecar last)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dims = set()
    split_meta = {}
    for split, (img, txt) in splits.items():
        if split not in SPLITS:
            raise ValueError(f"Invalid value for split: {split!r}; allowed values are {list(SPLITS)}")
        img = np.asarray(img, dtype=np.float32)
        txt = np.asarray(txt, dtype=np.float32)
        if img.ndim != 2 or txt.ndim != 2 or img.shape[1] != txt.shape[1]:
            raise ValueError(
                f"features of split {split!r} must be 2-D with equal widths, got {img.shape}, {txt.shape}"
            )
        if not (np.isfinite(img).all() and np.isfinite(txt).all()):
            raise ValueError(f"features of split {split!r} contain NaN or Inf")
        dims.add(img.shape[1])
        save_npy(folder / f"image_features_{split}.npy", img)
        save_npy(folder / f"text_features_{split}.npy", txt)
        split_meta[split] = {"n_images": img.shape[0], "n_concepts": txt.shape[0]}
    if len(dims) != 1:
        raise ValueError(f"all splits must share one feature width, got {sorted(dims)}")
    full = {"format": FORMAT, "dim": dims.pop(), "normalised": False, **meta}
    full["splits"] = {**meta.get("splits", {})}
    for split, m in split_meta.items():
        full["splits"][split] = {**full["splits"].get(split, {}), **m}
    return write_json(folder / "features.json", full)


def read_feature_meta(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / "features.json"
    if not path.exists():
        raise MissingFileError(
            path, "Create it with `eegdecode features` (CLIP) or `eegdecode simulate` (reference embeddings)."
        )
    meta = read_json(path)
    if meta.get("format") != FORMAT:
        raise DataFormatError(path, "unknown feature store format", FORMAT, meta.get("format"))
    return meta


def load_features(folder: str | Path, split: str, normalise: bool = False, mmap: bool = False) -> FeatureSet:
    """Load one split; ``normalise`` L2-normalises every row (a fresh array, the files stay unnormalised)."""
    if split not in SPLITS:
        raise ValueError(f"Invalid value for split: {split!r}; allowed values are {list(SPLITS)}")
    folder = Path(folder)
    meta = read_feature_meta(folder)
    arrays = []
    for kind in ("image", "text"):
        path = folder / f"{kind}_features_{split}.npy"
        if not path.exists():
            raise MissingFileError(path, f"the feature store {folder} has no {split!r} split")
        arr = np.load(path, mmap_mode="r" if mmap and not normalise else None, allow_pickle=False)
        if arr.ndim != 2 or arr.shape[1] != meta["dim"]:
            raise DataFormatError(path, "feature array has the wrong shape", f"(n, {meta['dim']})", arr.shape)
        expected_rows = meta["splits"].get(split, {}).get(f"n_{'images' if kind == 'image' else 'concepts'}")
        if expected_rows is not None and arr.shape[0] != expected_rows:
            raise DataFormatError(path, "row count disagrees with features.json", expected_rows, arr.shape[0])
        if normalise:
            arr = arr / np.maximum(np.linalg.norm(arr, axis=1, keepdims=True), 1e-12)
        arrays.append(arr)
    return FeatureSet(image=arrays[0], text=arrays[1], meta=meta)
