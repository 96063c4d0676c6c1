"""Checks that run before a training run writes anything: a run that would fail, fails in its first second.

Every check raises an error that names the file or option, the expected and the found value:

- :func:`eegdecode.data.image_set.check_eeg_against_image_set`: each split's EEG rows (images) against the image
  set's folders, when the data root has an image set (``eegdecode prepare`` runs it too);
- :func:`check_features_against_image_set`: the feature store's recorded image-list digest of each split against
  the image set it is used with (a store computed for another image list has the right counts and the wrong rows);
- :func:`check_features_against_eeg`: feature rows against the EEG's training and test images, test concepts,
  and the number of test repetitions asked for against those recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eegdecode.data.image_set import ImageSet
from eegdecode.embeddings.store import image_list_digest
from eegdecode.errors import ConfigError, DataFormatError

log = logging.getLogger(__name__)


def _recorded_digest(meta: dict[str, Any], split: str) -> str | None:
    info = meta.get("splits", {}).get(split, {})
    # eegdecode features records image_list_digest; the simulator's reference store image_list_sha256
    return info.get("image_list_digest") or info.get("image_list_sha256")


def check_features_against_image_set(images: ImageSet, feats_dir: Path, meta: dict[str, Any]) -> None:
    """The feature store was computed for this image set's image lists (when it records a digest)."""
    for split in ("train", "test"):
        recorded = _recorded_digest(meta, split)
        if recorded is None:
            log.warning("%s records no image-list digest for %s; rows not checked", feats_dir, split)
            continue
        actual = image_list_digest(images.split(split).relative_names)
        if recorded != actual:
            raise DataFormatError(
                Path(feats_dir) / "features.json",
                f"the {split} features were computed for another image list than {images.root} (image-list "
                "digest); recompute them with `eegdecode features` or pick the right --features",
                actual[:16],
                recorded[:16],
            )


def check_features_against_eeg(
    feats_dir: Path,
    train_feats,
    test_feats,
    train_subjects: Sequence,
    test_subjects: Sequence,
    test_reps: int | None,
) -> None:
    """Feature rows against the EEG of every subject of the fold, and ``test_reps`` against the recordings."""
    feats_dir = Path(feats_dir)
    for s in train_subjects:
        n = s.cache.train.shape[0]
        if train_feats.image.shape[0] != n:
            raise DataFormatError(
                feats_dir / "image_features_train.npy",
                f"feature rows disagree with the training images of {s.name} ({s.cache.path / 'train.npy'})",
                n,
                train_feats.image.shape[0],
            )
    for s in test_subjects:
        n_img, n_reps = s.cache.test.shape[:2]
        if test_feats.image.shape[0] != n_img:
            raise DataFormatError(
                feats_dir / "image_features_test.npy",
                f"feature rows disagree with the test images of {s.name} ({s.cache.path / 'test.npy'})",
                n_img,
                test_feats.image.shape[0],
            )
        if test_feats.text.shape[0] > n_img or n_img % test_feats.text.shape[0]:
            raise DataFormatError(
                feats_dir / "text_features_test.npy",
                f"test concepts do not fit the {n_img} test images of {s.name}",
                f"a divisor of {n_img}",
                test_feats.text.shape[0],
            )
        if test_reps is not None and test_reps > n_reps:
            raise ConfigError(
                f"Invalid value for --test-reps: {test_reps}; {s.name}'s test file "
                f"({s.cache.path / 'test.npy'}) holds {n_reps} repetitions per image"
            )
