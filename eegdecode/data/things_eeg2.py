"""Reader and writer of the preprocessed THINGS-EEG2 files (the pickled originals).

Each subject folder holds ``preprocessed_eeg_training.npy`` and ``preprocessed_eeg_test.npy``: a pickled dict (NICE
and ATM: ``pickle.dump`` under a ``.npy`` name; Gifford: ``np.save`` of a dict) with keys

- ``preprocessed_eeg_data``: float64 (n_images, n_repetitions, n_channels, n_times),
  training (16540, 4, 63, 250) / test (200, 80, 63, 250) at 250 Hz, (…, 17, 100) in Gifford's 100 Hz release;
- ``ch_names``: the channel names;
- ``times``: seconds. In the 250 Hz release it holds **300** values (-0.2 … 0.996 s) although the data keep only
  the last 250 (0 … 0.996 s); the reader returns the times that belong to the data.

Only ``eegdecode prepare`` opens these pickles (they need ``allow_pickle``, which can run code: open only files you
trust); training reads the memory-mapped cache.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eegdecode.data.channels import THINGS_EEG2_CHANNELS
from eegdecode.errors import DataFormatError, MissingFileError
from eegdecode.io import atomic_path

log = logging.getLogger(__name__)

SPLIT_FILES = {"train": "preprocessed_eeg_training.npy", "test": "preprocessed_eeg_test.npy"}
KEYS = ("preprocessed_eeg_data", "ch_names", "times")


@dataclass
class PreprocessedEEG:
    """One preprocessed file: data (n_images, n_reps, n_chans, n_times), channel names, data times, sfreq."""

    data: np.ndarray
    ch_names: list[str]
    times: np.ndarray
    sfreq: float
    path: Path

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)


def split_file(subject_dir: str | Path, split: str) -> Path:
    if split not in SPLIT_FILES:
        raise ValueError(f"Invalid value for split: {split!r}; allowed values are {list(SPLIT_FILES)}")
    return Path(subject_dir) / SPLIT_FILES[split]


def _load_pickled_dict(path: Path) -> dict:
    if not path.exists():
        raise MissingFileError(path, "expected a THINGS-EEG2 preprocessed file (pickled dict)")
    log.info("reading pickled file %s (only `prepare` opens pickles; training uses the cache)", path)
    try:
        obj = np.load(path, allow_pickle=True)
    except Exception as exc:  # corrupt or foreign file
        raise DataFormatError(
            path, f"cannot be read as a pickled dict ({type(exc).__name__}: {exc})"
        ) from exc
    if isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == ():
        obj = obj.item()
    if not isinstance(obj, dict):
        raise DataFormatError(
            path, "wrong content", "a dict with keys " + ", ".join(KEYS), type(obj).__name__
        )
    return obj


def check_finite(data: np.ndarray, path: Path, chunk: int = 256) -> None:
    """Raise if any value is NaN/Inf, naming the first bad index; works in chunks to bound memory."""
    for start in range(0, data.shape[0], chunk):
        block = data[start : start + chunk]
        bad = ~np.isfinite(block)
        if bad.any():
            idx = np.argwhere(bad)[0]
            kind = "NaN" if np.isnan(block[tuple(idx)]) else "Inf"
            first = (int(idx[0]) + start, *(int(i) for i in idx[1:]))
            raise DataFormatError(
                path,
                f"data contain {int(bad.sum())}+ non-finite values",
                "finite values",
                f"{kind} at index {first}",
            )


def validate_times(times: np.ndarray, n_times: int, path: Path) -> np.ndarray:
    """The times of the data samples: all of ``times`` or, for the 250 Hz quirk, its last ``n_times`` values."""
    times = np.asarray(times, dtype=np.float64).ravel()
    if times.size < n_times:
        raise DataFormatError(
            path, "'times' is shorter than the data", f">= {n_times} values", f"{times.size}"
        )
    times = times[-n_times:]
    diffs = np.diff(times)
    if n_times > 1 and not (diffs > 0).all():
        raise DataFormatError(
            path, "'times' is not strictly increasing", "monotonic times", f"step {diffs.min():.4g} s"
        )
    return times


def read_preprocessed_file(
    path: str | Path,
    expected_channels: tuple[str, ...] | None = THINGS_EEG2_CHANNELS,
    check_values: bool = True,
) -> PreprocessedEEG:
    """Read and validate one preprocessed THINGS-EEG2 file.

    Parameters
    ----------
    path
        ``preprocessed_eeg_training.npy`` or ``preprocessed_eeg_test.npy``.
    expected_channels
        Every channel name must be one of these (the 63 THINGS-EEG2 channels by default); ``None`` skips the check.
    check_values
        Scan the data for NaN/Inf.
    """
    path = Path(path)
    obj = _load_pickled_dict(path)
    missing = [k for k in KEYS if k not in obj]
    if missing:
        raise DataFormatError(path, f"missing keys {missing}", list(KEYS), sorted(obj))
    data = obj["preprocessed_eeg_data"]
    if not isinstance(data, np.ndarray) or data.ndim != 4:
        found = getattr(data, "shape", type(data).__name__)
        raise DataFormatError(
            path,
            "'preprocessed_eeg_data' has the wrong shape",
            "(images, repetitions, channels, times)",
            found,
        )
    if not np.issubdtype(data.dtype, np.floating):
        raise DataFormatError(
            path, "'preprocessed_eeg_data' has the wrong dtype", "float64 or float32", data.dtype
        )
    ch_names = [str(c) for c in obj["ch_names"]]
    if len(ch_names) != data.shape[2]:
        raise DataFormatError(
            path, "'ch_names' disagrees with the data's channel axis", data.shape[2], len(ch_names)
        )
    if len(set(ch_names)) != len(ch_names):
        raise DataFormatError(path, "duplicate channel names", "unique names", ch_names)
    if expected_channels is not None:
        unknown = [c for c in ch_names if c not in expected_channels]
        if unknown:
            raise DataFormatError(
                path, "unknown channel names", f"names from {list(expected_channels)}", unknown
            )
    times = validate_times(obj["times"], data.shape[3], path)
    if check_values:
        check_finite(data, path)
    sfreq = float(np.round(1.0 / np.median(np.diff(times)), 6)) if times.size > 1 else float("nan")
    return PreprocessedEEG(data=data, ch_names=ch_names, times=times, sfreq=sfreq, path=path)


def write_preprocessed_file(
    path: str | Path, data: np.ndarray, ch_names: list[str], times: np.ndarray, protocol: int = 4
) -> Path:
    """Write a preprocessed file exactly as the 250 Hz release does (``pickle.dump`` of the dict), atomically.

    Protocol 4 matches the release; arrays over 2 GiB are written with protocol 5, which ``np.load`` reads the same
    way and which pickles the array buffer without a second in-memory copy.
    """
    if data.nbytes > 2**31 and protocol < 5:
        protocol = 5
    obj = {"preprocessed_eeg_data": data, "ch_names": list(ch_names), "times": np.asarray(times)}
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)
    return path
