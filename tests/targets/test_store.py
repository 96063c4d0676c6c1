"""Target store: float16 memory-mapped round trip, provenance, reuse, invalidation (weights, image list, rebuild
refused), one more layer computed alone, and the FeatureSet view the trainer reads."""

import logging
import shutil

import numpy as np
import open_clip
import pytest
import torch
from conftest import VIT
from PIL import Image

from eegdecode.data.image_set import ImageSet
from eegdecode.embeddings.store import image_list_digest
from eegdecode.errors import DataFormatError, MissingFileError
from eegdecode.targets import compute as compute_module
from eegdecode.targets.blur import blur_image
from eegdecode.targets.compute import compute_targets
from eegdecode.targets.spec import TargetSpec
from eegdecode.targets.store import StaleTargetsError, TargetStore, write_reference_targets

LOGGER = "eegdecode.targets.compute"


def _spec(weights, **kw):
    kw = {"layers": ("embedding", "block:1"), "pooling": "cls", "blur": ("none", "gaussian:9"), **kw}
    return TargetSpec(f"open_clip:{VIT}", weights=str(weights), **kw)


def _compute(image_root, root, spec, **kw):
    return compute_targets(image_root, root, spec, device="cpu", batch_size=4, **kw)


def _mtimes(folder):
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.iterdir())}


def test_arrays_equal_direct_extraction_and_round_trip(tiny_open_clip, image_root, tmp_path):
    spec = _spec(tiny_open_clip["vit"])
    store = _compute(image_root, tmp_path / "targets", spec)
    assert store.folder == tmp_path / "targets" / spec.key and spec.key.startswith(f"open_clip_{VIT}-")
    emb = store.image("train", "embedding")
    assert isinstance(emb, np.memmap) and emb.dtype == np.float16 and emb.shape == (9, 24)
    cls_blur = store.image("train", "block:1", "cls", "gaussian:9")
    assert cls_blur.shape == (9, 32)
    assert store.text("train").shape == (3, 24) and store.text("test").shape == (2, 24)

    model, _, preprocess = open_clip.create_model_and_transforms(VIT, pretrained=str(tiny_open_clip["vit"]))
    model.eval()
    split = ImageSet(image_root).split("train")
    tokens = {}
    hook = model.visual.transformer.resblocks[1].register_forward_hook(lambda m, i, o: tokens.update(x=o))
    with torch.no_grad(), Image.open(split.image_paths[4]) as img:
        img = img.convert("RGB")
        expected_emb = model.encode_image(preprocess(img)[None])[0]
        model.encode_image(preprocess(blur_image(img, "gaussian:9"))[None])
        expected_cls_blur = tokens["x"][0, 0]
        prompt = open_clip.get_tokenizer(VIT)(["This picture is ice cream cone"])
        expected_text = model.encode_text(prompt)[0]
    hook.remove()
    np.testing.assert_allclose(emb[4], expected_emb.numpy(), rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(cls_blur[4], expected_cls_blur.numpy(), rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(store.text("train")[2], expected_text.numpy(), rtol=2e-3, atol=2e-3)
    assert np.abs(store.image("train", "block:1", "cls") - cls_blur).max() > 1e-3  # blur changed the features

    meta = store.meta()
    assert meta["format"] == "eegdecode-targets/1" and meta["backbone"] == f"open_clip:{VIT}"
    assert meta["weights"]["path"] == str(tiny_open_clip["vit"].resolve())
    assert meta["weights"]["size"] == tiny_open_clip["vit"].stat().st_size
    assert meta["splits"]["train"]["image_list_digest"] == image_list_digest(split.relative_names)
    assert "CenterCrop" in meta["transform"] and meta["software"]["open_clip"] == open_clip.__version__
    entry = meta["arrays"]["train/block:1/cls/gaussian:9"]
    assert entry["module"] == "visual.transformer.resblocks.1" and entry["pooling"] == "cls"
    assert entry["blur"] == {"kind": "gaussian", "kernel_size": 9, "sigma": pytest.approx(1.7), "size": 224}
    assert meta["arrays"]["train/embedding/none/none"]["blur"] == {"kind": "none"}
    assert not list(store.folder.glob(".*"))  # no temporary files left


def test_feature_set_is_what_the_trainer_reads(tiny_open_clip, image_root, tmp_path):
    store = _compute(image_root, tmp_path / "t", _spec(tiny_open_clip["vit"]))
    fs = store.feature_set("train")
    assert fs.image.dtype == np.float32 and fs.image.shape == (9, 24) and fs.text.shape == (3, 24)
    np.testing.assert_array_equal(fs.image, store.image("train").astype(np.float32))
    np.testing.assert_array_equal(fs.text, store.text("train").astype(np.float32))
    assert (
        fs.meta["dim"] == 24
        and fs.meta["splits"]["train"]["n_images"] == 9
        and fs.meta["target"]["text"] == "stored"
    )
    inter = store.feature_set("test", "block:1", "cls", "gaussian:9")
    assert inter.image.shape == (2, 32) and inter.meta["target"]["text"] == "concept_mean"
    np.testing.assert_allclose(inter.text, inter.image)  # one test image per concept: its mean is itself
    train_inter = store.feature_set("train", "block:1", "cls")
    np.testing.assert_allclose(train_inter.text[1], train_inter.image[3:6].mean(axis=0), rtol=1e-6)
    with pytest.raises(DataFormatError, match="no text features of width 32"):
        store.feature_set("train", "block:1", "cls", text="stored")
    normed = store.feature_set("train", normalise=True)
    np.testing.assert_allclose(np.linalg.norm(normed.image, axis=1), 1, atol=1e-6)
    raw = store.feature_set("train", dtype=None)
    assert isinstance(raw.image, np.memmap) and raw.image.dtype == np.float16
    with pytest.raises(MissingFileError, match="train/block:0/cls/none"):
        store.feature_set("train", "block:0", "cls")


def test_second_call_reuses_and_a_new_layer_is_computed_alone(
    tiny_open_clip, image_root, tmp_path, monkeypatch, caplog
):
    spec = _spec(tiny_open_clip["vit"])
    store = _compute(image_root, tmp_path / "t", spec)
    before = _mtimes(store.folder)

    def _no_model(*args, **kwargs):
        raise AssertionError("the model was loaded although the cache matches")

    monkeypatch.setattr(compute_module, "build_extractor", _no_model)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        _compute(image_root, tmp_path / "t", spec)
        _compute(image_root, tmp_path / "t", spec, splits=("test",))
    assert _mtimes(store.folder) == before and "reusing" in caplog.text
    monkeypatch.undo()

    more = _spec(tiny_open_clip["vit"], layers=("block:0", "block:1"), blur=("none",), text=False)
    assert more.key == spec.key
    _compute(image_root, tmp_path / "t", more)
    after = _mtimes(store.folder)
    new = {n for n in after if n not in before}
    assert new == {"image__train__block0__cls__none.npy", "image__test__block0__cls__none.npy"}
    assert all(after[n] == before[n] for n in before if n.endswith(".npy"))  # nothing else rewritten
    # mean pooling of the same layer is another array beside it
    _compute(image_root, tmp_path / "t", _spec(tiny_open_clip["vit"], layers=("block:-2",), pooling="mean",
                                               blur=("none",), text=False))  # fmt: skip
    assert store.image("test", "block:1", "mean").shape == (2, 32)


def test_changed_weights_rebuild_or_raise_when_asked_not_to(tiny_open_clip, image_root, tmp_path, caplog):
    weights = shutil.copy(tiny_open_clip["vit"], tmp_path / "vit.bin")
    spec = _spec(weights)
    store = _compute(image_root, tmp_path / "t", spec)
    old = store.image("train", mmap=False).copy()
    torch.manual_seed(5)
    torch.save(open_clip.create_model(VIT).state_dict(), weights)  # same path and size, new content and mtime
    with pytest.raises(StaleTargetsError, match="weights changed"):
        _compute(image_root, tmp_path / "t", spec, rebuild=False)
    np.testing.assert_array_equal(store.image("train"), old)  # untouched
    with caplog.at_level(logging.INFO, logger=LOGGER):
        _compute(image_root, tmp_path / "t", spec)
    assert "rebuilding" in caplog.text and "weights changed" in caplog.text
    assert np.abs(store.image("train").astype(np.float32) - old).max() > 1e-3
    assert store.meta()["weights"]["mtime_ns"] == tmp_path.joinpath("vit.bin").stat().st_mtime_ns


def test_changed_image_list_rebuilds_only_that_split(tiny_open_clip, image_root, tmp_path, caplog):
    spec = _spec(tiny_open_clip["vit"], blur=("none",))
    store = _compute(image_root, tmp_path / "t", spec)
    old_train, old_test = store.image("train", mmap=False).copy(), store.image("test", mmap=False).copy()
    folder = image_root / "training_images" / "00001_aardvark"
    (folder / "aardvark_01b.jpg").rename(folder / "aardvark_04s.jpg")  # same images, new order
    with pytest.raises(StaleTargetsError, match="split train: image_list_digest changed"):
        _compute(image_root, tmp_path / "t", spec, rebuild=False)
    _compute(image_root, tmp_path / "t", spec)
    train = store.image("train")
    np.testing.assert_allclose(train[:2], old_train[1:3], rtol=1e-3, atol=1e-3)  # rows moved up by one
    np.testing.assert_allclose(train[2], old_train[0], rtol=1e-3, atol=1e-3)
    np.testing.assert_array_equal(store.image("test"), old_test)
    names = ImageSet(image_root).split("train").relative_names
    assert store.meta()["splits"]["train"]["image_list_digest"] == image_list_digest(names)


def test_prompt_change_recomputes_text_only(tiny_open_clip, image_root, tmp_path):
    spec = _spec(tiny_open_clip["vit"], blur=("none",))
    store = _compute(image_root, tmp_path / "t", spec)
    before = _mtimes(store.folder)
    old = store.text("test", mmap=False).copy()
    _compute(image_root, tmp_path / "t", spec, prompt_template="a photo of a {}.")
    after = _mtimes(store.folder)
    changed = {n for n in after if after[n] != before.get(n)}
    assert changed == {"targets.json", "text__train.npy", "text__test.npy"}
    assert np.abs(store.text("test").astype(np.float32) - old).max() > 1e-4


def test_store_refuses_bad_arrays_and_reads_damage(tmp_path):
    rows = {"image_list_digest": "abc", "images_per_concept": 2}
    store = write_reference_targets(
        tmp_path, "tiny", {"train": (np.ones((4, 3)), np.ones((2, 3)))}, {"train": rows}
    )
    assert store.folder.name.startswith("simulator_tiny-")
    fs = store.feature_set("train")
    assert fs.image.shape == (4, 3) and fs.meta["target"]["text"] == "stored"
    with pytest.raises(ValueError, match="4 images"):
        store.put_image("train", "embedding", None, "none", np.ones((3, 3)), {})
    with pytest.raises(ValueError, match="NaN"):
        store.put_image("train", "embedding", None, "none", np.full((4, 3), np.nan), {})
    with pytest.raises(ValueError, match="float16"):
        store.put_image("train", "embedding", None, "none", np.full((4, 3), 1e6), {})
    np.save(store.folder / "image__train__embedding__none__none.npy", np.ones((5, 3), np.float16))
    with pytest.raises(DataFormatError, match="row count"):
        store.image("train")
    (store.folder / "targets.json").write_text('{"format": "other"}')
    with pytest.raises(DataFormatError, match="unknown target store format"):
        store.meta()
    assert TargetStore(tmp_path / "nothing").arrays() == {}


def test_a_missing_array_is_named_with_what_the_store_holds_of_its_layer_in_one_short_line(tmp_path):
    """The message lists the stored variants of the asked split and layer (or, when the layer is missing, the stored
    layers), not every array of a store that may hold hundreds."""
    rows = {"image_list_digest": "abc", "images_per_concept": 2}
    store = write_reference_targets(
        tmp_path, "tiny", {"train": (np.ones((4, 3)), np.ones((2, 3)))}, {"train": rows}
    )
    for i in range(40):
        store.put_image("train", f"block:{i}", "cls", "gaussian:3", np.ones((4, 3)), {})
    store.put_image("train", "embedding", None, "gaussian:15", np.ones((4, 3)), {})
    with pytest.raises(MissingFileError) as err:
        store.image("train", "embedding", None, "noise:25")
    text = str(err.value)
    assert "no array 'train/embedding/none/noise:25'" in text
    assert "its variants of train/embedding/none: gaussian:15, none" in text and "42 arrays" in text
    assert "block:7" not in text and "\n" not in text and len(text) < 400
    with pytest.raises(MissingFileError) as err:
        store.image("train", "block:99", "cls", "none")
    assert "no layer 'block:99' in train" in str(err.value) and len(str(err.value)) < 600


def test_spec_key_and_dict_round_trip(tiny_dinov2):
    a = TargetSpec("hf:weights/dinov2-base/", text=False)
    b = TargetSpec("hf:./weights/dinov2-base", text=False)
    assert a.backbone == b.backbone == "hf:weights/dinov2-base" and a.key == b.key
    assert a.key.startswith("hf_dinov2-base-")
    spec = TargetSpec(
        "open_clip:RN50", weights="w.bin", layers=["block:3", "embedding"], blur="ubp", pooling="mean"
    )
    assert spec.blur == ("fovea:45:3", "fovea:51:3", "fovea:57:3") and spec.layers == ("block:3", "embedding")
    assert TargetSpec.from_dict(spec.to_dict()) == spec
    assert TargetSpec("open_clip:RN50", weights="other.bin").key != spec.key
    assert (
        TargetSpec("open_clip:RN50", weights="w.bin", layers=("embedding",)).key == spec.key
    )  # layers: arrays
    with pytest.raises(ValueError, match="Invalid keys"):
        TargetSpec.from_dict({"backbone": "open_clip:RN50", "layer": "x"})
    with pytest.raises(ValueError, match="Invalid value for layers"):
        TargetSpec("open_clip:RN50", layers=("block:x",))
    with pytest.raises(ValueError, match="Invalid value for backbone"):
        TargetSpec("RN50")


def test_changed_blur_size_recomputes_the_blurred_arrays_only(tiny_open_clip, image_root, tmp_path):
    spec = _spec(tiny_open_clip["vit"], blur_size=64, text=False)
    store = _compute(image_root, tmp_path / "t", spec)
    before = _mtimes(store.folder)
    old = store.image("train", "block:1", "cls", "gaussian:9", mmap=False).copy()
    resized = _spec(tiny_open_clip["vit"], blur_size=48, text=False)
    with pytest.raises(StaleTargetsError, match="blur changed"):
        _compute(image_root, tmp_path / "t", resized, rebuild=False)
    _compute(image_root, tmp_path / "t", resized)
    after = _mtimes(store.folder)
    changed = {n for n in after if after[n] != before.get(n)} - {"targets.json"}
    assert changed == {f"image__{s}__{layer}__{pool}__gaussian9.npy" for s in ("train", "test")
                       for layer, pool in (("embedding", "none"), ("block1", "cls"))}  # fmt: skip
    assert store.arrays()["train/block:1/cls/gaussian:9"]["blur"]["size"] == 48
    assert np.abs(store.image("train", "block:1", "cls", "gaussian:9").astype(np.float32) - old).max() > 1e-4


def test_stack_of_blur_levels_for_the_chooser(tiny_open_clip, image_root, tmp_path):
    from eegdecode.targets.chooser import BlurChooser

    spec = _spec(tiny_open_clip["vit"], layers=("embedding",), blur=("ubp:5:2",), blur_size=32, text=False)
    store = _compute(image_root, tmp_path / "t", spec)
    stack = store.stack("train", "embedding", None, "ubp:5:2")
    assert stack.shape == (3, 9, 24) and stack.dtype == np.float32
    np.testing.assert_array_equal(stack[2], store.image("train", variant="fovea:7:3").astype(np.float32))
    chooser = BlurChooser(9, 3, rule="uncertainty")
    rows = torch.tensor([0, 4, 8])
    picked = chooser.select(torch.as_tensor(stack), rows, chooser.choose(rows))
    torch.testing.assert_close(picked, torch.as_tensor(stack[1, [0, 4, 8]]))
