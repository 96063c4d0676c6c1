"""THINGS-MEG (OpenNeuro ds004212): the official epochs derivative (or the raw runs) -> ATM's layout and the cache.

Steps of ATM's ``MEG-preprocessing/pre_possess.ipynb`` (reference notes: seed codebase 7.2, data formats B):

1. read ``derivatives/preprocessed/preprocessed_P{n}-epo.fif`` (MNE follows split files ``-epo-1.fif`` ...): 271
   sensors, -100 ... 1300 ms at 200 Hz, already band-passed 0.1-40 Hz and baseline z-scored by the official pipeline;
   or, with ``source="raw"``, make the same epochs from the raw BIDS runs (:mod:`eegdecode.preprocessing.meg_bids`);
   from here on both routes share every step;
2. crop 0 ... 1.0 s (201 samples); drop catch trials (999999);
3. test images = event codes occurring exactly ``n_test_reps`` (12) times, sorted by code;
4. training = every other epoch, minus those whose concept (``image_concept_index.csv``) is a test concept, grouped
   by concept in THINGS order (1654 concepts x 12 images x 1 repetition);
5. written as ATM's pickles (``preprocessed_meg_training.pkl`` (1654, 12, 1, 271, 201) and
   ``preprocessed_meg_zs_test.pkl`` (200, 1, 12, 271, 201), keys ``meg_data``, ``ch_names``, ``times``) and, for
   the trainer, in the release format under ``Preprocessed_MEG_200Hz/sub-XX/`` (training (n_images, 1, 271, 201),
   test (n_test, 12, 271, 201)) plus the cache ``cache/Preprocessed_MEG_200Hz/sub-XX/`` (release name ``meg``).

Bad input raises :class:`eegdecode.errors.DataFormatError` naming the file and, where it applies, the concept.
"""

from __future__ import annotations

import logging
import pickle
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from eegdecode.data.paths import DatasetPaths, subject_name
from eegdecode.data.things_eeg2 import split_file, write_preprocessed_file
from eegdecode.errors import DataFormatError, MissingFileError, check_option
from eegdecode.io import atomic_path

log = logging.getLogger(__name__)

CATCH_CODE = 999999


def read_concept_index(path: str | Path) -> np.ndarray:
    """1-based concept index of every THINGS image (``image_concept_index.csv``: one integer per line)."""
    path = Path(path)
    if not path.exists():
        raise MissingFileError(path, "expected THINGS' Metadata/Concept-specific/image_concept_index.csv")
    try:
        values = np.loadtxt(path, dtype=np.int64, delimiter=",", ndmin=1)
    except ValueError as exc:
        raise DataFormatError(path, f"not a column of integers ({exc})") from exc
    return values.ravel()


def split_meg_epochs(
    data: np.ndarray,
    codes: np.ndarray,
    concept_index: np.ndarray,
    n_test_reps: int = 12,
    path: Path | None = None,
) -> dict[str, Any]:
    """ATM's split of cropped, catch-free epochs (n, ch, t) with 1-based image codes.

    Returns ``train`` (n_concepts, n_images, 1, ch, t), ``test`` (n_test, 1, n_test_reps, ch, t), ``train_codes``,
    ``test_codes`` and ``train_concepts`` (1-based).
    """
    if codes.max() > concept_index.size:
        raise DataFormatError(
            path, "event codes beyond the image list", f"<= {concept_index.size}", int(codes.max())
        )
    uniq, counts = np.unique(codes, return_counts=True)
    test_codes = uniq[counts == n_test_reps]
    if test_codes.size == 0:
        raise DataFormatError(
            path, "no test images", f"codes repeated {n_test_reps} times", f"max count {counts.max()}"
        )
    order = np.argsort(codes, kind="stable")
    is_test = np.isin(codes[order], test_codes)
    test = data[order[is_test]].reshape(test_codes.size, n_test_reps, *data.shape[1:])[:, None]
    test_concepts = np.unique(concept_index[test_codes - 1])
    train_idx = order[~is_test]
    train_codes = codes[train_idx]
    keep = ~np.isin(concept_index[train_codes - 1], test_concepts)
    train_idx, train_codes = train_idx[keep], train_codes[keep]
    if np.unique(train_codes).size != train_codes.size:
        dup = train_codes[np.flatnonzero(np.diff(train_codes) == 0)[0]]
        raise DataFormatError(
            path, f"training image {int(dup)} shown more than once", "1 repetition", "several"
        )
    concepts, per = np.unique(concept_index[train_codes - 1], return_counts=True)
    if (per != per[0]).any():
        c = int(concepts[np.flatnonzero(per != per[0])[0]])
        raise DataFormatError(
            path,
            f"concept {c} has another number of training images",
            int(per[0]),
            int(per[per != per[0]][0]),
        )
    train = data[train_idx].reshape(concepts.size, int(per[0]), 1, *data.shape[1:])
    return {"train": train, "test": test, "train_codes": train_codes, "test_codes": test_codes,
            "train_concepts": concepts}  # fmt: skip


def _dump_pickle(path: Path, obj: dict) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        pickle.dump(obj, f, protocol=4)


def copy_meg_images(things_root: Path, image_paths: list[str], split: dict[str, Any], concept_index: np.ndarray,
                    out_image_set: Path) -> int:  # fmt: skip
    """Copy the images into the THINGS-EEG2 layout (``training_images/NNNNN_concept/file``, ``test_images/...``),
    numbered in output order; returns the number copied."""
    n = 0
    for folder, codes in (("training_images", split["train_codes"]), ("test_images", split["test_codes"])):
        concepts = [concept_index[c - 1] for c in codes]
        number = {c: i + 1 for i, c in enumerate(dict.fromkeys(concepts))}
        for code, concept in zip(codes, concepts):
            src = things_root / image_paths[code - 1]
            if not src.exists():
                raise MissingFileError(src, "expected the THINGS image listed in image_paths.csv")
            dst = out_image_set / folder / f"{number[concept]:05d}_{src.parent.name}" / src.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            n += 1
    return n


def preprocess_meg_subject(
    bids_root: str | Path,
    out_root: str | Path,
    participant: int,
    concept_index_csv: str | Path | None = None,
    image_paths_csv: str | Path | None = None,
    n_test_reps: int = 12,
    tmin: float = 0.0,
    tmax: float = 1.0,
    cache: bool = True,
    cache_dtype: str = "float16",
    copy_images: bool = False,
    source: str = "derivative",
    n_sessions: int | None = 12,
    task: str = "main",
) -> dict[str, Any]:
    """Convert participant ``P{n}``'s epochs into ATM's pickles, the release format and the cache.

    Parameters
    ----------
    bids_root
        The ds004212 folder: ``derivatives/preprocessed/preprocessed_P{n}-epo.fif`` (``source="derivative"``) or
        the raw runs ``sub-BIGMEG{n}/ses-XX/meg/`` (``source="raw"``).
    out_root
        Data root to write: ``Preprocessed_MEG_200Hz/sub-0n/`` (+ ATM's ``.pkl`` files there), ``cache/``, and
        with ``copy_images`` the ``image_set/`` in the THINGS-EEG2 layout.
    concept_index_csv, image_paths_csv
        THINGS metadata; default ``<bids_root>/sourcedata/image_concept_index.csv`` / ``image_paths.csv``.
    source
        ``"derivative"``: the official epochs; ``"raw"``: the raw runs through
        :func:`eegdecode.preprocessing.meg_bids.epochs_from_bids` (the official steps, same epochs).
    n_sessions, task
        Raw route only: sessions expected (``None``/0: every one found) and the BIDS task label.
    """
    import mne

    check_option("source", source, ("derivative", "raw"))
    bids_root, out_root = Path(bids_root), Path(out_root)
    if source == "derivative":
        origin = bids_root / "derivatives" / "preprocessed" / f"preprocessed_P{participant}-epo.fif"
        if not origin.exists():
            raise MissingFileError(
                origin,
                "expected the official THINGS-MEG epochs derivative (OpenNeuro ds004212); "
                "for the raw runs use source='raw' (--from raw)",
            )
    else:
        from eegdecode.preprocessing.meg_bids import bids_subject, find_meg_runs

        origin = bids_root / f"sub-{bids_subject(participant)}"
        # missing sessions, runs or events fail here, before anything is read
        find_meg_runs(bids_root, participant, n_sessions, task)
    concept_csv = Path(concept_index_csv or bids_root / "sourcedata" / "image_concept_index.csv")
    concept_index = read_concept_index(concept_csv)
    if source == "derivative":
        epochs = mne.read_epochs(origin, preload=True, verbose=False)
    else:
        from eegdecode.preprocessing.meg_bids import epochs_from_bids

        epochs = epochs_from_bids(bids_root, participant, n_sessions=n_sessions, task=task)
    if abs(epochs.info["sfreq"] - 200.0) > 1e-6:
        raise DataFormatError(origin, "epochs sampling rate", "200 Hz", f"{epochs.info['sfreq']:g} Hz")
    epochs.crop(tmin, tmax)
    epochs.pick("mag")
    codes = epochs.events[:, 2]
    keep = codes != CATCH_CODE
    data, codes = epochs.get_data(copy=False)[keep], codes[keep]
    split = split_meg_epochs(data, codes, concept_index, n_test_reps, origin)
    ch_names, times = list(epochs.ch_names), np.round(epochs.times, 6)
    sub = subject_name(participant)
    paths = DatasetPaths(out_root, "meg")
    subject_dir = paths.subject_dir(sub)
    _dump_pickle(
        subject_dir / "preprocessed_meg_training.pkl",
        {"meg_data": split["train"], "ch_names": ch_names, "times": times},
    )
    _dump_pickle(
        subject_dir / "preprocessed_meg_zs_test.pkl",
        {"meg_data": split["test"], "ch_names": ch_names, "times": times},
    )
    train = split["train"].reshape(-1, 1, *split["train"].shape[3:])  # one row per image, concept-major
    test = split["test"][:, 0]
    write_preprocessed_file(split_file(subject_dir, "train"), train, ch_names, times)
    write_preprocessed_file(split_file(subject_dir, "test"), test, ch_names, times)
    result: dict[str, Any] = {"subject_dir": str(subject_dir), "atm_shapes": {"train": list(split["train"].shape),
                              "test": list(split["test"].shape)}, "shapes": {"train": list(train.shape),
                              "test": list(test.shape)}, "n_channels": len(ch_names), "source": source}  # fmt: skip
    if copy_images:
        lines = Path(image_paths_csv or bids_root / "sourcedata" / "image_paths.csv").read_text().split()
        result["images_copied"] = copy_meg_images(bids_root, lines, split, concept_index, paths.image_set_dir)
    if cache:
        from eegdecode.data.cache import prepare_subject

        result["cache"] = prepare_subject(
            subject_dir, paths.cache_dir(sub), cache_dtype, force=True, expected_channels=None
        )
    return result
