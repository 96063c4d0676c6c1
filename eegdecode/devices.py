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


#: allocations of at least this many bytes get pages of their own from the system (see :func:`return_freed_memory`)
HEAP_MMAP_THRESHOLD = 1 << 20


def return_freed_memory(threshold: int = HEAP_MMAP_THRESHOLD) -> bool:
    """Make glibc's allocator give large freed blocks back to the system, for training on the CPU.

    By default glibc raises its threshold for serving an allocation from fresh pages to the size of the last
    such block freed (up to 32 MiB), so the many 1-32 MiB tensors of a CPU training step (activations, gradients,
    a batch) end up in the heap, where freed blocks stay resident and fragment: on a full-scale subject this kept
    about 300 MB more resident after the first epoch than during it. A fixed threshold (``mallopt(M_MMAP_THRESHOLD)``;
    it also stops the adjustment) returns each such block when it is freed. Values are not affected. Returns
    whether the setting was applied (``False`` where the C library is not glibc).
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_mmap_threshold = -3  # glibc's <malloc.h>
    return bool(mallopt(ctypes.c_int(m_mmap_threshold), ctypes.c_int(int(threshold))))
