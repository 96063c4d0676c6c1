"""Checkpoints: model weights in safetensors, a readable JSON state, and the optimizer/RNG state in a tensor file
that loads with ``torch.load(weights_only=True)``.

A checkpoint named ``last`` in folder ``ckpt`` is three files::

    ckpt/last-e0007-1a2b3c4d.safetensors   model weights (no pickle); the name carries the epoch and a digest
    ckpt/last-e0007-1a2b3c4d.state.pt      optimizer, scheduler and RNG states: tensors, numbers and strings only
    ckpt/last.json                         epoch, step, best score, config digest, ... and the names and SHA-256
                                           digests of the two files above

Crash safety: the data files get new names every time their content changes and are written atomically; the JSON
is written last (atomic rename), and only then are the previous version's files removed. So at any instant
``last.json`` names files that exist and match its digests: a process killed anywhere inside
:func:`save_checkpoint` leaves the previous checkpoint intact (plus, at most, unreferenced new files that the next
save removes). :func:`load_checkpoint` verifies the digests and refuses a checkpoint whose files disagree with its
JSON, naming both files.
"""

from __future__ import annotations

import hashlib
import io
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load, save

from eegdecode import faults
from eegdecode.errors import DataFormatError, MissingFileError
from eegdecode.io import atomic_path, read_json, write_json


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch RNG states in a form ``torch.load(weights_only=True)`` accepts."""
    py = random.getstate()
    np_state = np.random.get_state()  # noqa: NPY002  (third-party code may use the legacy global RNG)
    state = {
        "python": [py[0], torch.tensor(py[1], dtype=torch.int64), py[2] if py[2] is not None else -1.0],
        "numpy": [
            np_state[0],
            torch.from_numpy(np_state[1].astype(np.int64)),
            int(np_state[2]),
            int(np_state[3]),
            float(np_state[4]),
        ],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    v, internal, gauss = state["python"]
    random.setstate((v, tuple(int(x) for x in internal.tolist()), None if gauss == -1.0 else gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path, suffix=path.suffix) as tmp:
        tmp.write_bytes(data)


def _versioned(folder: Path, name: str, info: dict[str, Any], digest: str, suffix: str) -> Path:
    epoch = info.get("epoch")
    tag = f"e{int(epoch):04d}-" if isinstance(epoch, int) else ""
    return folder / f"{name}-{tag}{digest[:8]}{suffix}"


def _remove_unreferenced(folder: Path, name: str, keep: set[str]) -> None:
    """Delete earlier versions of checkpoint ``name`` (and files a killed save left), keeping ``keep``."""
    for pattern in (f"{name}-*.safetensors", f"{name}-*.state.pt", f"{name}.safetensors", f"{name}.state.pt"):
        for path in folder.glob(pattern):
            if path.name not in keep:
                path.unlink(missing_ok=True)


def save_checkpoint(
    folder: str | Path,
    name: str,
    model: torch.nn.Module | Mapping[str, torch.Tensor],
    info: dict[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    extra_state: dict[str, Any] | None = None,
) -> Path:
    """Write checkpoint ``name`` (e.g. ``last``, ``best``) into ``folder``; returns the weights path.

    Write boundaries (for fault injection, :mod:`eegdecode.faults`): ``{name}.weights``, ``{name}.state``,
    ``{name}.json``, ``{name}.cleanup``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = model if isinstance(model, Mapping) else _unwrap(model).state_dict()
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    blob = save(tensors, metadata={"format": "eegdecode-checkpoint/1"})
    digest = hashlib.sha256(blob).hexdigest()
    weights = _versioned(folder, name, info, digest, ".safetensors")
    _write_bytes(weights, blob)
    faults.boundary(f"{name}.weights")
    record = {**info, "weights": weights.name, "weights_sha256": digest}
    if optimizer is not None or scheduler is not None or extra_state:
        state = {"rng": rng_state(), **(extra_state or {})}
        if optimizer is not None:
            state["optimizer"] = optimizer.state_dict()
        if scheduler is not None:
            state["scheduler"] = scheduler.state_dict()
        buffer = io.BytesIO()
        torch.save(state, buffer)
        state_blob = buffer.getvalue()
        state_digest = hashlib.sha256(state_blob).hexdigest()
        state_path = _versioned(folder, name, info, state_digest, ".state.pt")
        _write_bytes(state_path, state_blob)
        faults.boundary(f"{name}.state")
        record.update(state_file=state_path.name, state_sha256=state_digest)
    write_json(folder / f"{name}.json", record)
    faults.boundary(f"{name}.json")
    _remove_unreferenced(folder, name, {weights.name, record.get("state_file", "")})
    faults.boundary(f"{name}.cleanup")
    return weights


def tidy_checkpoint(folder: str | Path, name: str) -> None:
    """Remove the files of checkpoint ``name`` that its JSON does not name (left by a save killed after its JSON
    was written, before the old version was removed)."""
    folder = Path(folder)
    if (folder / f"{name}.json").exists():
        files = checkpoint_files(folder, name)
        _remove_unreferenced(folder, name, {files["weights"].name, files.get("state", Path()).name})


def checkpoint_files(folder: str | Path, name: str) -> dict[str, Path]:
    """The files of checkpoint ``name`` as its JSON names them: ``{"json", "weights"[, "state"]}``."""
    folder = Path(folder)
    info_path = folder / f"{name}.json"
    if not info_path.exists():
        raise MissingFileError(info_path, f"no complete checkpoint {name!r} in {folder}")
    info = read_json(info_path)
    files = {"json": info_path, "weights": folder / info["weights"]}
    if info.get("state_file"):
        files["state"] = folder / info["state_file"]
    elif (folder / f"{name}.state.pt").exists():  # written before the state file was versioned
        files["state"] = folder / f"{name}.state.pt"
    return files


def _read_verified(path: Path, info_path: Path, digest: str | None) -> bytes:
    if not path.exists():
        raise MissingFileError(path, f"named by {info_path}; the checkpoint is incomplete")
    data = path.read_bytes()
    if digest is not None:
        found = hashlib.sha256(data).hexdigest()
        if found != digest:
            raise DataFormatError(
                path, f"SHA-256 disagrees with {info_path}: the checkpoint is inconsistent", digest, found
            )
    return data


def load_checkpoint(
    folder: str | Path,
    name: str,
    model: torch.nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    restore_rng: bool = False,
    map_location: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Load checkpoint ``name``: weights into ``model`` (strict), states into ``optimizer``/``scheduler``.

    Every file read is checked against the digest its JSON records; a mismatch is an error naming both files.
    Returns the JSON info (plus ``"state"``: the tensor state file's content when it is read).
    """
    files = checkpoint_files(folder, name)
    info = read_json(files["json"])
    if model is not None:
        blob = _read_verified(files["weights"], files["json"], info.get("weights_sha256"))
        tensors = {k: v.to(map_location) for k, v in load(blob).items()}
        try:
            _unwrap(model).load_state_dict(tensors, strict=True)
        except RuntimeError as exc:
            raise DataFormatError(files["weights"], f"weights do not fit the model ({exc})") from exc
    if "state" in files and (optimizer is not None or scheduler is not None or restore_rng):
        blob = _read_verified(files["state"], files["json"], info.get("state_sha256"))
        state = torch.load(io.BytesIO(blob), map_location=map_location, weights_only=True)
        if optimizer is not None and "optimizer" in state:
            optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and "scheduler" in state:
            scheduler.load_state_dict(state["scheduler"])
        if restore_rng:
            set_rng_state(state["rng"])
        info["state"] = state
    return info
