"""Helpers shared by the metrics tests (a distinct module name, so it never collides with other test folders)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

# Small network inputs for the tests that need many forward passes (the documented sizes are tested separately).
SMALL_INPUTS = {"alexnet": 64, "inception": 80, "effnet": 64, "swav": 64, "clip": 32}


def make_structured_images(n: int, size: int, seed: int) -> torch.Tensor:
    """Smooth random colour fields plus a little noise: distinct images that random networks tell apart."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 4, 4, generator=g)
    images = F.interpolate(low, size=(size, size), mode="bicubic", align_corners=False)
    return (images + 0.15 * torch.rand(n, 3, size, size, generator=g)).clamp(0, 1)


def save_png(path: Path, image: torch.Tensor) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    array = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(array).save(path)
    return path
