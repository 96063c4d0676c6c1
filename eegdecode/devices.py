"""Which torch device a step runs on: one rule for every command."""

from __future__ import annotations

import torch

from eegdecode.errors import ConfigError


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` or ``None`` -> CUDA when available, else CPU; anything else must be a valid torch device that
    exists here (``"cuda"`` without CUDA is an error, not a silent fall-back)."""
    if isinstance(device, torch.device):
        resolved = device
    elif device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            resolved = torch.device(device)
        except (RuntimeError, TypeError) as err:
            raise ConfigError(
                f"Invalid value for device: {device!r}; expected 'auto', 'cpu', 'cuda' or 'cuda:N'"
            ) from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"Invalid value for device: {device!r}; CUDA is not available here, use 'cpu' or 'auto'"
        )
    return resolved
