"""The EEG cache: each subject's pickled release files converted once into plain memory-mapped arrays.

Layout of ``<root>/cache/<release>/sub-XX/``::

    meta.json     format, dtype, shapes, channel names, data times, sfreq, and the size/mtime of each source file
    train.npy     (n_images, n_reps, n_chans, n_times), float16 (default) or float32, no pickle
    test.npy      (n_test_images, n_test_reps, n_chans, n_times)

Training opens the arrays with ``mmap_mode='r'`` and reads only the rows of a batch, so a full-scale subject never
sits in RAM as float64 or float32. The cache is rebuilt when a source file's size or modification time changes.
Converting maps the pickle's array bytes instead of loading them (see :mod:`eegdecode.data.things_eeg2`) and writes
the float16 copy block by block through a temporary file, so ``prepare`` holds one block, not the float64 array.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import mmap
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.format import dtype_to_descr, write_array_header_1_0

from eegdecode import __version__
from eegdecode.data.channels import THINGS_EEG2_CHANNELS
from eegdecode.data.things_eeg2 import (
    SPLIT_FILES,
    check_finite,
    read_preprocessed_file,
    release_pages,
    rows_per_block,
    split_file,
)
from eegdecode.errors import DataFormatError, MissingFileError, check_option
from eegdecode.io import _UMASK, file_stamp, read_json, write_json

log = logging.getLogger(__name__)

FORMAT = "eegdecode-eeg-cache/1"
DTYPES = ("float16", "float32")
_F16_MAX = float(np.finfo(np.float16).max)


@dataclass
class SubjectCache:
    """Memory-mapped arrays of one subject (``train``/``test``) and their sidecar."""

    train: np.ndarray
    test: np.ndarray
    meta: dict[str, Any]
    path: Path

    @property
    def ch_names(self) -> list[str]:
        return list(self.meta["ch_names"])

    @property
    def times(self) -> np.ndarray:
        return np.asarray(self.meta["times"], dtype=np.float64)

    @property
    def sfreq(self) -> float:
        return float(self.meta["sfreq"])


def gather(arr: np.ndarray, images: np.ndarray, reps: np.ndarray | None = None) -> np.ndarray:
    """``arr[images]`` (``reps`` None) or ``arr[images, reps]``, a copy in ``arr``'s dtype.

    From a memory-mapped ``.npy`` array (as :func:`open_cache` opens them) the rows are read from the file with
    positional reads (``os.preadv``, one per row, safe from several threads) rather than through the mapping: the
    same bytes, but no page of the file enters the process's resident set. Through the mapping, a page fault maps
    the file's whole page-cache folio around the address (up to about 1 MB on recent kernels), so a batch of 1024
    random trials (31.5 kB each) made up to 1 GB of the file resident. Other arrays are indexed as usual.
    Indices must lie in range (no negative indices).
    """
    images = np.asarray(images, dtype=np.int64)
    if not _preadable(arr):
        return np.array(arr[images] if reps is None else arr[images, np.asarray(reps, dtype=np.int64)])
    flat = images
    if reps is not None:
        reps = np.asarray(reps, dtype=np.int64)
        if reps.size and (reps.min() < 0 or reps.max() >= arr.shape[1]):
            raise IndexError(f"repetition index out of range 0..{arr.shape[1] - 1} of {arr.filename}")
        flat = images * arr.shape[1] + reps
    if images.size and (images.min() < 0 or images.max() >= arr.shape[0]):
        raise IndexError(f"image index out of range 0..{arr.shape[0] - 1} of {arr.filename}")
    out = np.empty((flat.size, *arr.shape[1 if reps is None else 2 :]), dtype=arr.dtype)
    row_bytes = out.nbytes // max(1, flat.size)
    with open(arr.filename, "rb", buffering=0) as f:
        fd = f.fileno()
        for i, row in enumerate(flat.tolist()):
            if os.preadv(fd, [out[i]], arr.offset + row * row_bytes) != row_bytes:
                raise DataFormatError(
                    arr.filename, "the file ends before a row of its header's shape", arr.shape
                )
    return out


def _preadable(arr: np.ndarray) -> bool:
    """A whole memory-mapped array (not a view of one) laid out in its file as C-ordered rows."""
    return (
        isinstance(arr, np.memmap)
        and isinstance(arr.base, mmap.mmap)
        and arr.filename is not None
        and arr.flags.c_contiguous
        and arr.ndim >= 2
    )


def _source_stamps(source_dir: Path) -> dict[str, dict]:
    stamps = {}
    for split in SPLIT_FILES:
        path = split_file(source_dir, split)
        if not path.exists():
            raise MissingFileError(path, "expected a THINGS-EEG2 preprocessed file")
        st = file_stamp(path)
        stamps[split] = {"file": path.name, "size": st["size"], "mtime_ns": st["mtime_ns"]}
    return stamps


def _cache_only(source_dir: Path, cache_dir: Path) -> bool:
    """The subject folder holds neither preprocessed file, and the cache's sidecar exists."""
    return (
        source_dir.is_dir()
        and not any(split_file(source_dir, split).exists() for split in SPLIT_FILES)
        and (cache_dir / "meta.json").exists()
    )


def cache_status(source_dir: str | Path, cache_dir: str | Path, dtype: str | None = None) -> str:
    """``"missing"``, ``"stale"`` (a source changed), ``"other-dtype"`` or ``"ok"``."""
    meta_path = Path(cache_dir) / "meta.json"
    if not meta_path.exists():
        return "missing"
    meta = read_json(meta_path)
    if meta.get("format") != FORMAT:
        return "stale"
    if meta.get("source") != _source_stamps(Path(source_dir)):
        return "stale"
    if dtype is not None and meta.get("dtype") != dtype:
        return "other-dtype"
    return "ok"


def _convert_split(
    path: Path,
    tmp: Path,
    dtype: str,
    chunk: int | None = None,
    expected_channels: tuple[str, ...] | None = THINGS_EEG2_CHANNELS,
) -> dict[str, Any]:
    """Convert one pickled file, block by block, into the ``.npy`` file ``tmp``.

    The pickle's array is memory-mapped (``read_preprocessed_file(..., mmap=True)``), so the resident memory stays
    at a block of ``chunk`` rows (default 32 MiB of the source) instead of the whole float64 array; each block is
    checked for NaN/Inf and for the float16 range on the way.
    """
    eeg = read_preprocessed_file(path, expected_channels, check_values=False, mmap=True)
    data = eeg.data
    chunk = chunk or rows_per_block(data)
    header = {"descr": dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": tuple(data.shape)}
    with open(tmp, "wb") as f:
        write_array_header_1_0(f, header)
        for start in range(0, data.shape[0], chunk):
            block = np.asarray(data[start : start + chunk])
            check_finite(block, path, first_row=start)
            if dtype == "float16":
                peak = float(np.abs(block).max())
                if peak > _F16_MAX:
                    raise DataFormatError(
                        path,
                        "values exceed the float16 range",
                        f"|x| <= {_F16_MAX:.0f}",
                        f"{peak:.4g}; use --dtype float32",
                    )
            f.write(np.ascontiguousarray(block, dtype=dtype).data)
            del block
            release_pages(data)
    return {
        "shape": list(data.shape),
        "ch_names": eeg.ch_names,
        "times": eeg.times.tolist(),
        "sfreq": eeg.sfreq,
    }


def _check_splits_agree(source_dir: Path, train: dict[str, Any], test: dict[str, Any]) -> None:
    for key in ("ch_names", "times"):
        if train[key] != test[key]:
            raise DataFormatError(
                split_file(source_dir, "test"),
                f"{key!r} differs from the training file",
                train[key][:5],
                test[key][:5],
            )
    if train["shape"][2:] != test["shape"][2:]:
        raise DataFormatError(
            split_file(source_dir, "test"),
            "channel/time shape differs from the training file",
            train["shape"][2:],
            test["shape"][2:],
        )


def prepare_subject(
    source_dir: str | Path,
    cache_dir: str | Path,
    dtype: str = "float16",
    force: bool = False,
    expected_channels: tuple[str, ...] | None = THINGS_EEG2_CHANNELS,
) -> dict[str, Any]:
    """Convert one subject's two pickled files into the cache (skipped when the cache is up to date).

    ``expected_channels``: names the files may hold (``None`` for MEG sensors: not checked).

    Returns the sidecar. The sidecar is written last, so an interrupted conversion is redone next time.

    A subject folder that holds neither preprocessed file while its cache exists is *cache-only*: the two files
    were deleted after conversion to save the disk (a float64 subject takes ~8 GB, its float16 cache ~2.6 GB).
    Its cache is used as it is, since there is no source left to compare it with; rebuilding it (``force``, another
    dtype) is refused. A folder with one of the two files missing is refused as damaged.
    """
    check_option("dtype", dtype, DTYPES)
    source_dir, cache_dir = Path(source_dir), Path(cache_dir)
    if _cache_only(source_dir, cache_dir):
        meta = read_json(cache_dir / "meta.json")
        if force or meta.get("dtype") != dtype:
            raise MissingFileError(
                split_file(source_dir, "train"),
                f"cannot rebuild the {meta.get('dtype')} cache {cache_dir} as {dtype}: the source files were deleted",
            )
        log.info("%s holds no preprocessed files: using its cache %s as it is", source_dir, cache_dir)
        return meta
    status = cache_status(source_dir, cache_dir, dtype)
    if status == "ok" and not force:
        log.info("cache %s is up to date", cache_dir)
        return read_json(cache_dir / "meta.json")
    if status in ("stale", "other-dtype"):
        log.info("cache %s is %s: rebuilding", cache_dir, status)
    with _cache_lock(cache_dir):
        # Another process may have built it while this one waited for the lock.
        if cache_status(source_dir, cache_dir, dtype) == "ok" and not force:
            return read_json(cache_dir / "meta.json")
        return _build(source_dir, cache_dir, dtype, expected_channels)


@contextlib.contextmanager
def _cache_lock(cache_dir: Path):
    """An exclusive lock on a subject's cache folder (released by the kernel if the process dies), so that one
    process builds it while others (e.g. torchrun ranks) wait, and leftovers of a killed build can be removed."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / "prepare.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_leftovers(cache_dir: Path) -> None:
    """Temporary arrays of a build that was killed (``.train.npy.*``), and arrays without a sidecar."""
    for split in SPLIT_FILES:
        for path in cache_dir.glob(f".{split}.npy.*"):
            log.info("removing %s, left by an interrupted build", path)
            path.unlink(missing_ok=True)
        if not (cache_dir / "meta.json").exists():
            (cache_dir / f"{split}.npy").unlink(missing_ok=True)


def _build(source_dir: Path, cache_dir: Path, dtype: str, expected_channels) -> dict[str, Any]:
    """Convert both splits into temporary files, check them, then rename both into place and write the sidecar
    last: a failure anywhere leaves no array behind, and a kill leaves only temporaries the next build removes."""
    stamps = _source_stamps(source_dir)
    meta_path = cache_dir / "meta.json"
    meta_path.unlink(missing_ok=True)  # invalidate first: arrays and sidecar must never disagree
    _remove_leftovers(cache_dir)
    parts, tmps = {}, {}
    try:
        for split in SPLIT_FILES:
            fd, name = tempfile.mkstemp(prefix=f".{split}.npy.", suffix=".npy", dir=cache_dir)
            os.close(fd)
            tmps[split] = Path(name)
            parts[split] = _convert_split(
                split_file(source_dir, split), tmps[split], dtype, expected_channels=expected_channels
            )
        _check_splits_agree(source_dir, parts["train"], parts["test"])
        for split in SPLIT_FILES:
            os.chmod(tmps[split], 0o666 & ~_UMASK)  # mkstemp made it 0600; the mode open() would give
            os.replace(tmps[split], cache_dir / f"{split}.npy")
    finally:
        for tmp in tmps.values():
            tmp.unlink(missing_ok=True)
    train, test = parts["train"], parts["test"]
    meta = {
        "format": FORMAT,
        "subject": source_dir.name,
        "dtype": dtype,
        "shapes": {"train": train["shape"], "test": test["shape"]},
        "ch_names": train["ch_names"],
        "times": train["times"],
        "sfreq": train["sfreq"],
        "source": stamps,
        "source_dir": str(source_dir),
        "eegdecode_version": __version__,
    }
    write_json(meta_path, meta)
    log.info(
        "cached %s -> %s (%s, train %s, test %s)", source_dir, cache_dir, dtype, train["shape"], test["shape"]
    )
    return meta


def open_cache(cache_dir: str | Path, dtype: str | None = None) -> SubjectCache:
    """Open a subject's cache read-only (memory-mapped) and check it against its sidecar."""
    cache_dir = Path(cache_dir)
    meta_path = cache_dir / "meta.json"
    if not meta_path.exists():
        raise MissingFileError(meta_path, "run `eegdecode prepare` to build the cache")
    meta = read_json(meta_path)
    if meta.get("format") != FORMAT:
        raise DataFormatError(meta_path, "unknown cache format", FORMAT, meta.get("format"))
    if dtype is not None and meta["dtype"] != dtype:
        raise DataFormatError(meta_path, "cache has another dtype", dtype, meta["dtype"])
    arrays = {}
    for split in SPLIT_FILES:
        path = cache_dir / f"{split}.npy"
        if not path.exists():
            raise MissingFileError(path, "the cache is incomplete: run `eegdecode prepare --force`")
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
        if list(arr.shape) != list(meta["shapes"][split]):
            raise DataFormatError(
                path, "array shape disagrees with meta.json", tuple(meta["shapes"][split]), arr.shape
            )
        if str(arr.dtype) != meta["dtype"]:
            raise DataFormatError(path, "array dtype disagrees with meta.json", meta["dtype"], arr.dtype)
        arrays[split] = arr
    if len(meta["ch_names"]) != arrays["train"].shape[2] or len(meta["times"]) != arrays["train"].shape[3]:
        raise DataFormatError(
            meta_path,
            "channel/time lists disagree with the arrays",
            arrays["train"].shape[2:],
            (len(meta["ch_names"]), len(meta["times"])),
        )
    return SubjectCache(train=arrays["train"], test=arrays["test"], meta=meta, path=cache_dir)


def ensure_cache(
    source_dir: str | Path,
    cache_dir: str | Path,
    dtype: str = "float16",
    expected_channels: tuple[str, ...] | None = THINGS_EEG2_CHANNELS,
) -> SubjectCache:
    """Open the cache, (re)building it first when missing or stale.

    A cache-only subject (see :func:`prepare_subject`) is read from its cache alone.
    """
    source_dir = Path(source_dir)
    if _cache_only(source_dir, Path(cache_dir)):
        prepare_subject(source_dir, cache_dir, dtype)  # checks the dtype; logs that the cache is used alone
    elif source_dir.exists():
        if cache_status(source_dir, cache_dir, dtype) != "ok":
            prepare_subject(source_dir, cache_dir, dtype, expected_channels=expected_channels)
    elif not (Path(cache_dir) / "meta.json").exists():
        raise MissingFileError(source_dir, "neither the source files nor a cache exist for this subject")
    return open_cache(cache_dir, dtype)
