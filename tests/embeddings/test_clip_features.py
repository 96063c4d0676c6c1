"""CLIP features: the tiny open_clip model loaded through ``pretrained=PATH`` like real weights, the deterministic
transform, the prompts, the cache (reuse and every kind of invalidation) and the errors about missing weights."""

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from eegdecode.commands import features as features_command
from eegdecode.data.image_set import ImageSet
from eegdecode.embeddings import clip_features
from eegdecode.embeddings.clip_features import (
    compute_features,
    register_open_clip_config,
    resolve_clip_weights,
)
from eegdecode.embeddings.store import image_list_digest, load_features, read_feature_meta, save_features
from eegdecode.errors import DataFormatError, MissingFileError, OutputExistsError, WeightsNotFoundError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from test_image_set import make_image_set  # noqa: E402

TINY = "eegdecode-test-tiny-clip"
TINY_WIDE = "eegdecode-test-tiny-clip-wide"
TINY_CONFIG = {
    "embed_dim": 1024,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
LOGGER = "eegdecode.embeddings.clip_features"


def _save_weights(model_name: str, path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    torch.save(open_clip.create_model(model_name).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Two tiny configs registered at run time, and weights of the first saved to a local file."""
    folder = tmp_path_factory.mktemp("tiny_clip")
    (folder / f"{TINY}.json").write_text(json.dumps(TINY_CONFIG))
    wide = {**TINY_CONFIG, "vision_cfg": {**TINY_CONFIG["vision_cfg"], "width": 64}}
    (folder / f"{TINY_WIDE}.json").write_text(json.dumps(wide))
    assert register_open_clip_config(folder / f"{TINY}.json") == TINY
    register_open_clip_config(folder / f"{TINY_WIDE}.json")
    return {"folder": folder, "weights": _save_weights(TINY, folder / "tiny.bin", seed=1)}


@pytest.fixture
def image_root(tmp_path):
    return make_image_set(tmp_path / "image_set")


def _compute(image_root, out, weights, **kw):
    kw = {"model": TINY, "weights": weights, "device": "cpu", "batch_size": 4, **kw}
    return compute_features(image_root, out, **kw)


def _mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.iterdir())}


def test_shapes_provenance_and_known_answer(tiny, image_root, tmp_path):
    out = _compute(image_root, tmp_path / "features", tiny["weights"])
    train, test = load_features(out, "train"), load_features(out, "test")
    assert train.image.shape == (9, 1024) and train.text.shape == (3, 1024)
    assert test.image.shape == (2, 1024) and test.text.shape == (2, 1024)
    assert train.image.dtype == np.float32
    meta = train.meta
    assert meta["source"] == "open_clip" and meta["model"] == TINY and meta["normalised"] is False
    assert meta["weights"]["kind"] == "file" and meta["weights"]["path"] == str(tiny["weights"].resolve())
    assert meta["weights"]["size"] == tiny["weights"].stat().st_size
    assert meta["prompt_template"] == "This picture is {}"
    split = ImageSet(image_root).split("train")
    assert meta["splits"]["train"]["image_list_digest"] == image_list_digest(split.relative_names)
    assert meta["splits"]["train"]["precision"] == "float32"
    assert "CenterCrop" in meta["transform"] and "Random" not in meta["transform"]

    # Independent computation: same weights file, open_clip's evaluation transform, open_clip's tokenizer.
    model, _, preprocess_val = open_clip.create_model_and_transforms(TINY, pretrained=str(tiny["weights"]))
    model.eval()
    with torch.no_grad(), Image.open(split.image_paths[4]) as img:
        expected_image = model.encode_image(preprocess_val(img.convert("RGB"))[None])[0].numpy()
        expected_text = model.encode_text(open_clip.get_tokenizer(TINY)(["This picture is ice cream cone"]))[
            0
        ].numpy()
    assert split.relative_names[4] == "training_images/00002_abacus/abacus_02s.jpg"
    np.testing.assert_allclose(train.image[4], expected_image, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(train.text[2], expected_text, rtol=1e-5, atol=1e-6)
    # Stored unnormalised: the raw encoder norms, not 1.
    assert not np.allclose(np.linalg.norm(train.image, axis=1), 1.0, atol=1e-2)
    np.testing.assert_allclose(
        np.linalg.norm(load_features(out, "train", normalise=True).image, axis=1), 1, atol=1e-6
    )


def test_two_runs_are_identical_and_batching_keeps_order(tiny, image_root, tmp_path):
    first = load_features(_compute(image_root, tmp_path / "a", tiny["weights"]), "train")
    second = load_features(_compute(image_root, tmp_path / "b", tiny["weights"]), "train")
    np.testing.assert_array_equal(first.image, second.image)
    np.testing.assert_array_equal(first.text, second.text)
    other_batches = load_features(
        _compute(image_root, tmp_path / "c", tiny["weights"], batch_size=2), "train"
    )
    np.testing.assert_allclose(other_batches.image, first.image, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(other_batches.text, first.text, rtol=1e-4, atol=1e-5)
    with_workers = load_features(
        _compute(image_root, tmp_path / "d", tiny["weights"], num_workers=1), "train"
    )
    np.testing.assert_array_equal(with_workers.image, first.image)
    # The rows differ from image to image, so an order mix-up would have shown.
    assert np.abs(first.image[0] - first.image[1]).max() > 1e-3


def test_second_call_reuses_the_store_without_loading_the_model(
    tiny, image_root, tmp_path, monkeypatch, caplog
):
    out = _compute(image_root, tmp_path / "features", tiny["weights"])
    before = _mtimes(out)

    def _no_model(*args, **kwargs):
        raise AssertionError("the model was loaded although the cache matches")

    monkeypatch.setattr(clip_features, "load_clip_model", _no_model)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert _compute(image_root, out, tiny["weights"], batch_size=3) == out
        assert _compute(image_root, out, tiny["weights"], splits=("test",)) == out
    assert _mtimes(out) == before
    assert "reusing" in caplog.text


def test_changed_image_list_rebuilds_only_that_split(tiny, image_root, tmp_path, caplog):
    out = _compute(image_root, tmp_path / "features", tiny["weights"])
    old_train = load_features(out, "train").image.copy()
    old_test = load_features(out, "test").image.copy()
    folder = image_root / "training_images" / "00001_aardvark"
    (folder / "aardvark_01b.jpg").rename(folder / "aardvark_04s.jpg")  # same images, new list and order
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=LOGGER):
        _compute(image_root, out, tiny["weights"])
    assert "computing train features" in caplog.text and "image list changed" in caplog.text
    assert "computing test features" not in caplog.text
    train = load_features(out, "train")
    names = ImageSet(image_root).split("train").relative_names
    assert train.meta["splits"]["train"]["image_list_digest"] == image_list_digest(names)
    np.testing.assert_allclose(train.image[:2], old_train[1:3], rtol=1e-5, atol=1e-6)  # rows moved up by one
    np.testing.assert_allclose(train.image[2], old_train[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(load_features(out, "test").image, old_test)
    assert not list(out.glob(".features-rebuild-*"))


def test_image_rewritten_in_place_rebuilds(tiny, image_root, tmp_path, caplog):
    out = _compute(image_root, tmp_path / "features", tiny["weights"])
    old = load_features(out, "test").image.copy()
    path = image_root / "test_images" / "00002_antelope" / "antelope_01b.jpg"
    Image.fromarray(np.full((40, 30, 3), 200, dtype=np.uint8)).save(path, format="JPEG", quality=95)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        _compute(image_root, out, tiny["weights"])
    assert "image files changed" in caplog.text
    new = load_features(out, "test").image
    np.testing.assert_array_equal(new[0], old[0])
    assert np.abs(new[1] - old[1]).max() > 1e-4


def test_changed_weights_file_rebuilds_everything(tiny, image_root, tmp_path, caplog):
    weights = Path(shutil.copy(tiny["weights"], tmp_path / "weights.bin"))
    out = _compute(image_root, tmp_path / "features", weights)
    old = load_features(out, "train").image.copy()
    _save_weights(TINY, weights, seed=2)  # same path and size, new content and mtime
    with caplog.at_level(logging.INFO, logger=LOGGER):
        _compute(image_root, out, weights)
    assert "weights changed" in caplog.text
    assert "computing train features" in caplog.text and "computing test features" in caplog.text
    assert np.abs(load_features(out, "train").image - old).max() > 1e-3
    assert read_feature_meta(out)["weights"]["mtime_ns"] == weights.stat().st_mtime_ns


def test_prompt_template_change_and_force_rebuild(tiny, image_root, tmp_path, caplog):
    out = _compute(image_root, tmp_path / "features", tiny["weights"])
    old_text = load_features(out, "test").text.copy()
    with caplog.at_level(logging.INFO, logger=LOGGER):
        _compute(image_root, out, tiny["weights"], prompt_template="a photo of a {}.")
    assert "prompt_template changed" in caplog.text
    assert np.abs(load_features(out, "test").text - old_text).max() > 1e-4
    before = _mtimes(out)
    _compute(image_root, out, tiny["weights"], prompt_template="a photo of a {}.", force=True)
    assert _mtimes(out) != before


def test_missing_split_is_added_and_stored_split_kept(tiny, image_root, tmp_path, caplog):
    out = _compute(image_root, tmp_path / "features", tiny["weights"], splits=("test",))
    assert set(read_feature_meta(out)["splits"]) == {"test"}
    with pytest.raises(MissingFileError, match="train"):
        load_features(out, "train")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=LOGGER):
        _compute(image_root, out, tiny["weights"])
    assert "computing train features in" in caplog.text and "computing test features" not in caplog.text
    assert set(read_feature_meta(out)["splits"]) == {"train", "test"}


def test_failed_rebuild_leaves_the_old_store_intact(tiny, image_root, tmp_path, monkeypatch):
    weights = Path(shutil.copy(tiny["weights"], tmp_path / "weights.bin"))
    out = _compute(image_root, tmp_path / "features", weights)
    old = load_features(out, "train").image.copy()
    _save_weights(TINY, weights, seed=3)

    def _disk_full(folder, splits, meta):
        (Path(folder) / "image_features_train.npy").write_bytes(b"partial")
        raise OSError("No space left on device")

    monkeypatch.setattr(clip_features, "save_features", _disk_full)
    with pytest.raises(OSError, match="No space"):
        _compute(image_root, out, weights)
    np.testing.assert_array_equal(load_features(out, "train").image, old)
    assert not list(out.glob(".features-rebuild-*"))


def test_refuses_to_overwrite_a_simulator_store(tiny, image_root, tmp_path):
    out = tmp_path / "features"
    rng = np.random.default_rng(0)
    save_features(
        out, {"test": (rng.normal(size=(2, 1024)), rng.normal(size=(2, 1024)))}, {"source": "simulator"}
    )
    assert load_features(out, "test").meta["source"] == "simulator"
    with pytest.raises(OutputExistsError, match="--force"):
        _compute(image_root, out, tiny["weights"])
    _compute(image_root, out, tiny["weights"], force=True)
    assert read_feature_meta(out)["source"] == "open_clip"


def test_missing_or_wrong_weights_give_clear_errors(tiny, image_root, tmp_path):
    missing = tmp_path / "nowhere" / "open_clip_pytorch_model.bin"
    with pytest.raises(WeightsNotFoundError, match=r"nowhere/open_clip_pytorch_model\.bin.*--clip-weights"):
        _compute(image_root, tmp_path / "features", missing)
    assert not (tmp_path / "features").exists()
    with pytest.raises(WeightsNotFoundError, match="No default weights"):
        resolve_clip_weights(TINY, None)
    with pytest.raises(WeightsNotFoundError, match="Neither a file nor a pretrained tag"):
        resolve_clip_weights(TINY, "laion2b_s32b_b79k")
    with pytest.raises(WeightsNotFoundError, match="not a folder"):
        resolve_clip_weights(TINY, tmp_path)
    with pytest.raises(DataFormatError, match=rf"tiny\.bin.*{TINY_WIDE}"):
        _compute(image_root, tmp_path / "features", tiny["weights"], model=TINY_WIDE)
    with pytest.raises(ValueError, match="not an open_clip model config"):
        resolve_clip_weights("no-such-model", tiny["weights"])


def test_default_tag_needs_the_local_hugging_face_cache(tmp_path):
    with pytest.raises(WeightsNotFoundError) as err:
        resolve_clip_weights("ViT-H-14", None, hf_cache_dir=tmp_path / "empty_cache")
    message = str(err.value)
    assert "laion/CLIP-ViT-H-14-laion2B-s32B-b79K" in message and "open_clip_pytorch_model.bin" in message
    assert "--clip-weights" in message and "HF_HUB_OFFLINE=1" in message

    # A Hugging Face cache laid out as `hf download` leaves it resolves to the cached file, without loading it.
    repo = tmp_path / "hub" / "models--laion--CLIP-ViT-H-14-laion2B-s32B-b79K"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd")
    cached = repo / "snapshots" / "0123abcd" / "open_clip_pytorch_model.bin"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"not really weights")
    resolved = resolve_clip_weights("ViT-H-14", "laion2b_s32b_b79k", hf_cache_dir=tmp_path / "hub")
    assert resolved.path == cached
    assert resolved.provenance["kind"] == "tag" and resolved.provenance["tag"] == "laion2b_s32b_b79k"
    assert resolved.provenance["size"] == len(b"not really weights")
    assert resolved.load_kwargs["image_interpolation"] == "bicubic"
    assert (
        "sha256"
        in resolve_clip_weights("ViT-H-14", None, hf_cache_dir=tmp_path / "hub", hash_weights=True).provenance
    )


def _parse(argv):
    parser = argparse.ArgumentParser()
    features_command.add_arguments(parser)
    return parser.parse_args(argv)


def test_command_defaults_come_from_the_data_root(tiny, tmp_path, monkeypatch):
    make_image_set(tmp_path / "data" / "image_set")
    monkeypatch.setenv("EEGDECODE_DATA", str(tmp_path / "data"))
    args = _parse(
        ["--model", TINY, "--clip-weights", str(tiny["weights"]), "--device", "cpu", "--batch-size", "5",
         "--open-clip-config", str(tiny["folder"] / f"{TINY}.json")]
    )  # fmt: skip
    assert features_command.resolve_paths(args) == (
        tmp_path / "data" / "image_set",
        tmp_path / "data" / "features" / TINY,
    )
    assert features_command.run(args) == 0
    meta = read_feature_meta(tmp_path / "data" / "features" / TINY)
    assert meta["model"] == TINY and meta["splits"]["train"]["batch_size"] == 5

    monkeypatch.delenv("EEGDECODE_DATA")
    with pytest.raises(MissingFileError, match="EEGDECODE_DATA"):
        features_command.resolve_paths(_parse([]))
    args = _parse(["--image-set", str(tmp_path / "x" / "image_set"), "--model", "hf-hub:org/name"])
    assert features_command.resolve_paths(args)[1] == tmp_path / "x" / "features" / "hf-hub_org_name"
    bad_config = tmp_path / "bad.json"
    bad_config.write_text(json.dumps({"embed_dim": 8}))
    with pytest.raises(DataFormatError, match=r"bad\.json.*vision_cfg"):
        features_command.run(_parse(["--open-clip-config", str(bad_config), "--image-set", str(tmp_path)]))


def test_bad_arguments_name_the_parameter(tiny, image_root, tmp_path):
    with pytest.raises(ValueError, match=r"'ViT-H14'.*close names: \[.*'ViT-H-14'"):
        clip_features.check_model("ViT-H14")
    with pytest.raises(ValueError, match="device: 'gpu'"):
        _compute(image_root, tmp_path / "f", tiny["weights"], device="gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            clip_features.resolve_device("cuda")
    with pytest.raises(ValueError, match="batch_size"):
        _compute(image_root, tmp_path / "f", tiny["weights"], batch_size=0)
    with pytest.raises(ValueError, match="splits"):
        _compute(image_root, tmp_path / "f", tiny["weights"], splits=("validation",))
    with pytest.raises(ValueError, match="prompt_template"):
        _compute(image_root, tmp_path / "f", tiny["weights"], prompt_template="This picture is")
    assert not (tmp_path / "f").exists()


def test_corrupt_image_names_the_file(tiny, image_root, tmp_path):
    bad = image_root / "test_images" / "00002_antelope" / "antelope_01b.jpg"
    bad.write_bytes(b"this is not a JPEG")
    with pytest.raises(DataFormatError, match=r"antelope_01b\.jpg.*cannot be read as an image"):
        _compute(image_root, tmp_path / "features", tiny["weights"])
    assert not (tmp_path / "features" / "features.json").exists()
