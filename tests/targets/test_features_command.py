"""``eegdecode features`` with targets: ``--list-layers`` on the tiny models, and a DINOv2 target store with a
blur variant computed through the command line."""

import argparse

import numpy as np
import pytest
import torch
from conftest import VIT
from transformers import AutoImageProcessor, Dinov2Model

from eegdecode.commands import features as features_command
from eegdecode.data.image_set import ImageSet
from eegdecode.targets.blur import blur_image
from eegdecode.targets.store import TargetStore


def _run(argv):
    parser = argparse.ArgumentParser()
    features_command.add_arguments(parser)
    return features_command.run(parser.parse_args(argv))


def test_list_layers_open_clip_without_weights_and_dinov2(tiny_open_clip, tiny_dinov2, capsys):
    config = tiny_open_clip["folder"] / f"{VIT}.json"
    assert _run(["--open-clip-config", str(config), "--backbone", f"open_clip:{VIT}", "--list-layers"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["layer", "module", "class"]
    rows = [line.split() for line in lines[1:]]
    assert [r[0] for r in rows] == ["embedding", "block:0", "block:1", "block:2"]
    assert rows[1][1:] == ["visual.transformer.resblocks.0", "ResidualAttentionBlock", "1x17x32"]
    assert rows[0][-1] == "1x24"
    assert _run(["--backbone", f"hf:{tiny_dinov2}", "--list-layers", "--all-modules"]) == 0
    out = capsys.readouterr().out
    assert "block:1" in out and "encoder.layer.1" in out and "Dinov2Layer" in out
    assert "embeddings.patch_embeddings" in out  # --all-modules


def test_dinov2_targets_through_the_command(tiny_dinov2, image_root, tmp_path, capsys):
    argv = ["--image-set", str(image_root), "--out", str(tmp_path / "targets"), "--backbone", f"hf:{tiny_dinov2}",
            "--layer", "embedding", "--layer", "block:-1", "--pooling", "mean", "--blur", "none", "--blur",
            "fovea:9", "--blur-size", "48", "--device", "cpu", "--batch-size", "4"]  # fmt: skip
    assert _run(argv) == 0
    folder = capsys.readouterr().out.strip().splitlines()[-1]
    store = TargetStore(folder)
    assert store.folder.parent == tmp_path / "targets" and store.folder.name.startswith("hf_dinov2-tiny-")
    assert store.text("train") is None
    arr = store.image("test", "block:1", "mean", "fovea:9:3")
    assert arr.shape == (2, 32) and arr.dtype == np.float16
    assert (
        store.meta()["weights"]["kind"] == "hf_folder" and store.meta()["weights"]["model_type"] == "dinov2"
    )

    model = Dinov2Model.from_pretrained(tiny_dinov2).eval()
    processor = AutoImageProcessor.from_pretrained(tiny_dinov2)
    path = ImageSet(image_root).split("test").image_paths[1]
    from PIL import Image

    with Image.open(path) as img, torch.no_grad():
        pixels = processor(images=blur_image(img.convert("RGB"), "fovea:9", size=48), return_tensors="pt")
        hidden = model(**pixels, output_hidden_states=True).hidden_states[2]
    np.testing.assert_allclose(arr[1], hidden[0, 1:].mean(dim=0).numpy(), rtol=2e-3, atol=2e-3)
    fs = store.feature_set("train", "embedding")
    assert (
        fs.image.shape == (9, 32) and fs.text.shape == (3, 32) and fs.meta["target"]["text"] == "concept_mean"
    )
    # --no-rebuild on an unchanged store is a no-op; --no-text is implied for hf:
    assert _run([*argv, "--no-rebuild"]) == 0


def test_bad_target_options_fail_with_the_option_named(tiny_dinov2, image_root, tmp_path):
    base = ["--image-set", str(image_root), "--out", str(tmp_path), "--device", "cpu"]
    with pytest.raises(ValueError, match="Invalid value for pooling"):
        _run([*base, "--backbone", f"hf:{tiny_dinov2}", "--pooling", "max"])
    with pytest.raises(ValueError, match="Invalid value for blur"):
        _run([*base, "--backbone", f"hf:{tiny_dinov2}", "--blur", "gaussian:4"])
    with pytest.raises(ValueError, match="Invalid value for backbone"):
        _run([*base, "--backbone", "timm:vit"])


def test_export_gives_a_feature_store_the_trainer_reads(tiny_open_clip, image_root, tmp_path, capsys):
    from eegdecode.embeddings.store import load_features
    from eegdecode.errors import OutputExistsError

    config = tiny_open_clip["folder"] / f"{VIT}.json"
    argv = ["--open-clip-config", str(config), "--image-set", str(image_root), "--out", str(tmp_path / "targets"),
            "--backbone", f"open_clip:{VIT}", "--clip-weights", str(tiny_open_clip["vit"]), "--layer", "block:-1",
            "--blur", "gaussian:5", "--blur-size", "32", "--export", str(tmp_path / "features"), "--device", "cpu"]  # fmt: skip
    assert _run(argv) == 0
    store = TargetStore(capsys.readouterr().out.strip().splitlines()[-2])
    train = load_features(tmp_path / "features", "train")
    assert train.image.shape == (9, 32) and train.text.shape == (3, 32) and train.image.dtype == np.float32
    np.testing.assert_array_equal(
        train.image, store.image("train", "block:2", "cls", "gaussian:5").astype(np.float32)
    )
    assert train.meta["source"] == "targets" and train.meta["target"]["array"] == "block:2/cls/gaussian:5"
    before = (tmp_path / "features" / "features.json").stat().st_mtime_ns
    assert _run(argv) == 0  # the same array again: nothing rewritten
    assert (tmp_path / "features" / "features.json").stat().st_mtime_ns == before
    other = [*argv[:-4], "--pooling", "mean", *argv[-4:]]
    with pytest.raises(OutputExistsError, match="--force"):
        _run(other)
    with pytest.raises(ValueError, match="one --layer and one --blur"):
        _run([*argv, "--layer", "embedding"])
