"""Tiny random backbones for the target tests: an open_clip ViT and ResNet registered from configs and saved as
local weights files, and a DINOv2 saved with ``save_pretrained`` (plus its image processor) into a folder."""

import json
import sys
from pathlib import Path

import open_clip
import pytest
import torch

from eegdecode.embeddings.clip_features import register_open_clip_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from test_image_set import make_image_set  # noqa: E402

VIT = "eegdecode-test-targets-vit"
RN = "eegdecode-test-targets-rn"
VIT_CONFIG = {
    "embed_dim": 24,
    "vision_cfg": {"image_size": 32, "layers": 3, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
RN_CONFIG = {
    "embed_dim": 24,
    "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="session")
def tiny_open_clip(tmp_path_factory):
    """``{"vit": weights file, "rn": weights file, "folder": config folder}`` with the configs registered."""
    folder = tmp_path_factory.mktemp("targets_open_clip")
    out = {"folder": folder}
    for name, cfg, key in ((VIT, VIT_CONFIG, "vit"), (RN, RN_CONFIG, "rn")):
        (folder / f"{name}.json").write_text(json.dumps(cfg))
        register_open_clip_config(folder / f"{name}.json")
        torch.manual_seed(1)
        model = open_clip.create_model(name)
        # Random weights are too uniform for some checks: spread the class token and positions.
        with torch.no_grad():
            for p in model.visual.parameters():
                p.add_(0.02 * torch.randn_like(p))
        torch.save(model.state_dict(), folder / f"{key}.bin")
        out[key] = folder / f"{key}.bin"
    return out


@pytest.fixture(scope="session")
def tiny_dinov2(tmp_path_factory):
    """A local folder with a tiny random DINOv2 (2 blocks, width 32, patch 8, 32 x 32) and its processor."""
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    folder = tmp_path_factory.mktemp("targets_dinov2") / "dinov2-tiny"
    cfg = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                       image_size=32, patch_size=8)  # fmt: skip
    torch.manual_seed(2)
    Dinov2Model(cfg).save_pretrained(folder)
    BitImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}, do_center_crop=True,
        image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
    ).save_pretrained(folder)  # fmt: skip
    return folder


@pytest.fixture
def image_root(tmp_path):
    return make_image_set(tmp_path / "image_set")
