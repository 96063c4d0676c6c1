"""Checkpoints: model weights in safetensors, a readable JSON state, and the optimizer/RNG state in a tensor file
that loads with ``torch.load(weights_only=True)``.

A checkpoint named ``last`` in folder ``ckpt`` is three files::

    ckpt/last.safetensors     model weights (no pickle)
    ckpt/last.json            epoch, step, best score, config digest, ... (anything JSON)
    ckpt/last.state.pt        optimizer, scheduler and RNG states: tensors, numbers and strings only

Each file is written atomically and the JSON last, so a checkpoint whose JSON exists is complete.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from eegdecode.errors import DataFormatError, MissingFileError
from eegdecode.io import atomic_path, read_json, sha256_file, write_json


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


def save_checkpoint(
    folder: str | Path,
    name: str,
    model: torch.nn.Module,
    info: dict[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    extra_state: dict[str, Any] | None = None,
) -> Path:
    """Write checkpoint ``name`` (e.g. ``last``, ``best``) into ``folder``; returns the weights path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / f"{name}.safetensors"
    tensors = {k: v.detach().cpu().contiguous() for k, v in _unwrap(model).state_dict().items()}
    with atomic_path(weights, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata={"format": "eegdecode-checkpoint/1"})
    state_path = folder / f"{name}.state.pt"
    if optimizer is not None or scheduler is not None or extra_state:
        state = {"rng": rng_state(), **(extra_state or {})}
        if optimizer is not None:
            state["optimizer"] = optimizer.state_dict()
        if scheduler is not None:
            state["scheduler"] = scheduler.state_dict()
        with atomic_path(state_path, suffix=".pt") as tmp:
            torch.save(state, tmp)
    write_json(
        folder / f"{name}.json", {**info, "weights": weights.name, "weights_sha256": sha256_file(weights)}
    )
    return weights


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

    Returns the JSON info (plus ``"state"``: the tensor state file's content when it exists).
    """
    folder = Path(folder)
    info_path = folder / f"{name}.json"
    if not info_path.exists():
        raise MissingFileError(info_path, f"no complete checkpoint {name!r} in {folder}")
    info = read_json(info_path)
    weights = folder / info["weights"]
    if model is not None:
        tensors = load_file(str(weights), device=str(map_location))
        try:
            _unwrap(model).load_state_dict(tensors, strict=True)
        except RuntimeError as exc:
            raise DataFormatError(weights, f"weights do not fit the model ({exc})") from exc
    state_path = folder / f"{name}.state.pt"
    if state_path.exists():
        state = torch.load(state_path, map_location=map_location, weights_only=True)
        if optimizer is not None and "optimizer" in state:
            optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and "scheduler" in state:
            scheduler.load_state_dict(state["scheduler"])
        if restore_rng:
            set_rng_state(state["rng"])
        info["state"] = state
    return info
