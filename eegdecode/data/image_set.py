"""TEMPORARY stand-in until the image-set reader lands (write_image_metadata only)."""

from pathlib import Path

import numpy as np

from eegdecode.io import atomic_path


def write_image_metadata(path, meta: dict) -> Path:
    path = Path(path)
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, {k: list(v) for k, v in meta.items()}, allow_pickle=True)
    return path
