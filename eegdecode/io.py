"""Atomic file writing and small JSON helpers.

Every writer goes through a temporary file in the destination folder and renames it into place, so a killed
process never leaves a half-written result behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds.

    ``suffix`` keeps an extension that some writers insist on (``np.save`` appends ``.npy``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # mkstemp creates 0600; give the file the mode open() would (0666 minus umask)
            os.chmod(tmp_path, 0o666 & ~_UMASK)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: the process's umask, read once at import (reading it means setting it, which is not thread-safe)
_UMASK = _umask()


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serialisable")


def _finite(obj: Any) -> Any:
    """``obj`` with every NaN/Inf float replaced by ``None`` (strict JSON has no NaN)."""
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if isinstance(obj, np.ndarray) and obj.dtype.kind == "f":
        return _finite(obj.tolist())
    return obj


def json_text(data: Any) -> str:
    """Strict JSON (NaN/Inf written as ``null``), indented."""
    return json.dumps(_finite(data), indent=2, default=_json_default, allow_nan=False)


def json_line(data: Any) -> str:
    """Strict JSON on one line (NaN/Inf written as ``null``), for JSON-lines logs."""
    return json.dumps(_finite(data), default=_json_default, allow_nan=False)


def write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented, strict JSON (NaN/Inf become ``null``), atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json_text(data) + "\n")
    return path


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def save_npy(path: str | Path, array: np.ndarray) -> Path:
    """``np.save`` through a temporary file (no pickle)."""
    path = Path(path)
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, np.asarray(array), allow_pickle=False)
    return path


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def file_stamp(path: str | Path) -> dict[str, Any]:
    """Size and modification time of a file: cheap provenance that detects a changed source."""
    st = Path(path).stat()
    return {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
