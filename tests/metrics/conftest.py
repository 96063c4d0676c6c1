"""Fixtures for the metrics tests: structured test images, a tiny CLIP, a generation folder with a manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from metrics_test_helpers import make_structured_images, save_png


@pytest.fixture
def structured_images():
    return make_structured_images


@pytest.fixture
def tiny_clip():
    """An OpenCLIP CLIP with a one-layer 32-px image tower (the real class, random weights)."""
    import open_clip

    torch.manual_seed(0)
    return open_clip.CLIP(
        embed_dim=32,
        vision_cfg={"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
        text_cfg={"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    ).eval()


@pytest.fixture
def generation_folder(tmp_path):
    """Write ``gen/Model/sub-01/`` with ground truth (THINGS layout), sources eeg (2 rounds) and image (1 round).

    eeg round 0 is the ground truth itself, eeg round 1 the ground truth in reverse order; image round 0 is noise.
    Returns (manifest path, ground-truth tensor as written).
    """

    def build(n: int = 6, size: int = 48, random_weights: bool = True) -> tuple[Path, torch.Tensor]:
        images = make_structured_images(n, size, seed=1)
        noise = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(2))
        root = tmp_path / "gen" / "Model" / "sub-01"
        gt_root = tmp_path / "test_images"
        ground_truth, entries = [], []
        for i in range(n):
            concept = f"{i + 1:05d}_thing{i}"
            gt_path = save_png(gt_root / concept / f"thing{i}_01s.png", images[i])
            ground_truth.append(
                {
                    "index": i,
                    "concept": concept,
                    "path": str(Path("..") / ".." / ".." / gt_path.relative_to(tmp_path)),
                }
            )
            for source, round_, image in (
                ("eeg", 0, images[i]),
                ("eeg", 1, images[n - 1 - i]),
                ("image", 0, noise[i]),
            ):
                rel = f"{source}/{i:04d}_{concept}_r{round_}.png"
                save_png(root / rel, image)
                entries.append(
                    {
                        "index": i,
                        "concept": concept,
                        "source": source,
                        "round": round_,
                        "seed": 7,
                        "path": rel,
                    }
                )
        manifest = {
            "format": "eegdecode-generation/1",
            "random_weights": random_weights,
            "model": "Model",
            "subject": "sub-01",
            "ground_truth": ground_truth,
            "images": entries,
        }
        path = root / "manifest.json"
        path.write_text(json.dumps(manifest))
        return path, images

    return build
