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

``read_preprocessed_file(..., mmap=True)`` (what ``prepare`` uses) does not load the array: numpy pickles an array as
its raw bytes (protocols 3-4: the state of ``_reconstruct``; protocol 5: the in-band buffer of ``_frombuffer``), and
``pickle.dump`` writes a large payload unframed and contiguous, so a pure-Python unpickler can note where the
payload starts, skip it, and return an ``np.memmap`` of it instead. Anything else (protocol 0-2, a payload inside a
frame, object arrays, a pickle that is not a dict) is read whole as before, with a log line.
"""

from __future__ import annotations

import functools
import logging
import mmap as _mmap
import os
import pickle
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eegdecode.data.channels import THINGS_EEG2_CHANNELS
from eegdecode.errors import DataFormatError, MissingFileError
from eegdecode.io import atomic_path

log = logging.getLogger(__name__)

SPLIT_FILES = {"train": "preprocessed_eeg_training.npy", "test": "preprocessed_eeg_test.npy"}
KEYS = ("preprocessed_eeg_data", "ch_names", "times")

MAP_MIN_BYTES = 1 << 20  # payloads at least this large are mapped, smaller ones read
BLOCK_BYTES = 32 << 20  # bytes of one block when an array is scanned or converted in blocks
_RECONSTRUCT = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")}
_FROMBUFFER = {("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer")}


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


class _Payload:
    """A large bytes payload left in the file: its offset and size."""

    __slots__ = ("offset", "size", "used")

    def __init__(self, offset: int, size: int):
        self.offset, self.size, self.used = offset, size, False


class _PendingArray:
    """What numpy's ``_reconstruct`` gives here: an array whose state (dtype, shape, bytes) comes with BUILD."""

    def __init__(self, reconstruct, args):
        self.reconstruct, self.args = reconstruct, args


class _MappingUnpickler(pickle._Unpickler):
    """Unpickler that leaves large byte payloads in the file and maps the numpy arrays built from them.

    Globals are resolved exactly as ``pickle``/``np.load`` resolve them (this is no safer than ``allow_pickle``).
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, path: Path, min_bytes: int):
        super().__init__(file)
        self._fileobj, self._path, self._min_bytes = file, path, min_bytes
        self._size = os.fstat(file.fileno()).st_size
        self.payloads: list[_Payload] = []

    # -- large payloads --------------------------------------------------------------------------------------
    def _payload(self, n: int):
        if n < self._min_bytes:
            return self.read(n)
        frame = self._unframer.current_frame
        if frame is not None:
            with frame.getbuffer() as buf:
                left = len(buf) - frame.tell()
            if left:  # the payload sits inside a frame already in memory: nothing to gain
                return self.read(n)
            self._unframer.current_frame = None
        offset = self._fileobj.tell()
        if offset + n > self._size:
            raise pickle.UnpicklingError("pickle data was truncated")
        self._fileobj.seek(n, os.SEEK_CUR)
        payload = _Payload(offset, n)
        self.payloads.append(payload)
        return payload

    def _read_payload(self, payload: _Payload) -> bytes:
        payload.used = True
        parts, done = [], 0
        while done < payload.size:
            part = os.pread(self._fileobj.fileno(), payload.size - done, payload.offset + done)
            if not part:
                raise pickle.UnpicklingError("pickle data was truncated")
            parts.append(part)
            done += len(part)
        return b"".join(parts)

    def load_binbytes(self):
        (n,) = struct.unpack("<I", self.read(4))
        self.append(self._payload(n))

    def load_binbytes8(self):
        (n,) = struct.unpack("<Q", self.read(8))
        if n > sys.maxsize:
            raise pickle.UnpicklingError(f"BINBYTES8 exceeds the maximum size of {sys.maxsize} bytes")
        self.append(self._payload(n))

    def load_bytearray8(self):
        (n,) = struct.unpack("<Q", self.read(8))
        if n > sys.maxsize:
            raise pickle.UnpicklingError(f"BYTEARRAY8 exceeds the maximum size of {sys.maxsize} bytes")
        data = self._payload(n)
        self.append(data if isinstance(data, _Payload) else bytearray(data))

    dispatch[pickle.BINBYTES[0]] = load_binbytes
    dispatch[pickle.BINBYTES8[0]] = load_binbytes8
    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8

    # -- numpy's array reconstruction ------------------------------------------------------------------------
    def find_class(self, module, name):
        obj = super().find_class(module, name)
        if (module, name) in _RECONSTRUCT:
            return functools.partial(self._reconstruct, obj)
        if (module, name) in _FROMBUFFER:
            return functools.partial(self._frombuffer, obj)
        return obj

    @staticmethod
    def _reconstruct(real, subtype, *args):
        if subtype is np.ndarray:
            return _PendingArray(real, (subtype, *args))
        return real(subtype, *args)

    def _frombuffer(self, real, buf, dtype, shape, order):
        if isinstance(buf, _Payload):
            arr = self._map(buf, dtype, shape, order)
            if arr is not None:
                return arr
            buf = bytearray(self._read_payload(buf))
        return real(buf, dtype, shape, order)

    def _map(self, payload: _Payload, dtype, shape, order) -> np.memmap | None:
        if not isinstance(dtype, np.dtype) or dtype.hasobject or order not in ("C", "F"):
            return None
        if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
            return None
        if int(np.prod(shape, dtype=np.int64)) * dtype.itemsize != payload.size:
            return None
        payload.used = True
        return np.memmap(self._path, dtype=dtype, mode="r", offset=payload.offset, shape=shape, order=order)

    def load_build(self):
        if len(self.stack) < 2 or not isinstance(self.stack[-2], _PendingArray):
            return super().load_build()
        state = self.stack.pop()
        pending = self.stack[-1]
        arr = None
        if isinstance(state, tuple) and len(state) == 5 and isinstance(state[4], _Payload):
            version, shape, dtype, fortran, payload = state
            if version == 1 and isinstance(fortran, bool):
                arr = self._map(payload, dtype, shape, "F" if fortran else "C")
            if arr is None:
                state = (*state[:4], self._read_payload(payload))
        if arr is None:
            arr = pending.reconstruct(*pending.args)
            arr.__setstate__(state)
        self.stack[-1] = arr
        for key, value in self.memo.items():
            if value is pending:
                self.memo[key] = arr

    dispatch[pickle.BUILD[0]] = load_build


def load_pickled_dict_mapped(path: str | Path, min_bytes: int = MAP_MIN_BYTES) -> dict | None:
    """Unpickle a dict of arrays with its large arrays memory-mapped from the file (read-only), not read.

    Maps the arrays of ``pickle.dump`` files (protocols 3-5) and of ``np.save`` of a dict (a 0-d object array,
    protocol 3); in protocol 0-2 files bytes are not a payload, so their arrays are read, not mapped.
    Returns ``None`` when the file holds something else or a large payload could not be mapped (the caller then
    reads it whole). Arrays smaller than ``min_bytes`` are read as usual.
    """
    path = Path(path)
    with open(path, "rb") as f:
        if f.read(6) == b"\x93NUMPY":
            f.seek(0)
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                return None
            if shape != () or dtype != np.dtype(object):
                return None
        else:
            f.seek(0)
        unpickler = _MappingUnpickler(f, path, min_bytes)
        obj = unpickler.load()
    if isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == ():
        obj = obj.item()
    if not isinstance(obj, dict) or not all(p.used for p in unpickler.payloads):
        return None
    if any(isinstance(v, _PendingArray) for v in obj.values()):  # an array without its state: not numpy's
        return None
    return obj


def release_pages(arr: np.ndarray) -> None:
    """Drop the pages of a memory-mapped array from this process's resident set (they stay in the page cache and
    are read again on the next access); a no-op for other arrays. Scanning a mapped file block by block with this
    after each block keeps the resident memory at one block instead of the file's size."""
    mm = getattr(arr, "_mmap", None)
    if mm is None or not hasattr(mm, "madvise") or not hasattr(_mmap, "MADV_DONTNEED"):
        return
    try:
        mm.madvise(_mmap.MADV_DONTNEED)
    except (ValueError, OSError):  # closed or not supported: only memory is at stake
        pass


def rows_per_block(data: np.ndarray, block_bytes: int = BLOCK_BYTES) -> int:
    """How many rows (first axis) of ``data`` fit in ``block_bytes`` (at least one)."""
    row = int(np.prod(data.shape[1:], dtype=np.int64)) * data.dtype.itemsize
    return max(1, block_bytes // max(1, row))


def _load_pickled_dict(path: Path, mmap: bool = False) -> dict:
    if not path.exists():
        raise MissingFileError(path, "expected a THINGS-EEG2 preprocessed file (pickled dict)")
    log.info("reading pickled file %s (only `prepare` opens pickles; training uses the cache)", path)
    if mmap:
        try:
            obj = load_pickled_dict_mapped(path)
        except Exception as exc:  # corrupt or foreign: the normal reader below reports it
            log.info("%s: cannot be mapped (%s: %s); reading it whole", path, type(exc).__name__, exc)
            obj = None
        if obj is not None:
            if not isinstance(obj.get("preprocessed_eeg_data"), np.memmap):
                log.info(
                    "%s: 'preprocessed_eeg_data' is not mapped (small or unusual); read into memory", path
                )
            return obj
        log.info("%s: not a pickled dict of mappable arrays; reading it whole with np.load", path)
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


def check_finite(data: np.ndarray, path: Path, chunk: int | None = None, first_row: int = 0) -> None:
    """Raise if any value is NaN/Inf, naming the first bad index; works in chunks to bound memory.

    ``chunk``: rows per block (default: :data:`BLOCK_BYTES` worth); a memory-mapped ``data`` has its pages released
    after each block. ``first_row``: index of ``data[0]`` in the whole array (for the message, when ``data`` is a
    block of it).
    """
    chunk = chunk or rows_per_block(data)
    for start in range(0, data.shape[0], chunk):
        block = data[start : start + chunk]
        bad = ~np.isfinite(block)
        if bad.any():
            idx = np.argwhere(bad)[0]
            kind = "NaN" if np.isnan(block[tuple(idx)]) else "Inf"
            first = (int(idx[0]) + start + first_row, *(int(i) for i in idx[1:]))
            raise DataFormatError(
                path,
                f"data contain {int(bad.sum())}+ non-finite values",
                "finite values",
                f"{kind} at index {first}",
            )
        del block, bad
        release_pages(data)


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
    mmap: bool = False,
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
    mmap
        Return the data as a read-only ``np.memmap`` of the pickle's array bytes instead of loading them (see the
        module docstring; falls back to loading, with a log line, for pickles it cannot map).
    """
    path = Path(path)
    obj = _load_pickled_dict(path, mmap=mmap)
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
