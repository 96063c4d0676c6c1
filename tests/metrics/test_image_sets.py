"""Pairing images: generation manifests, folder pairs, loading and resizing."""

import json
from pathlib import Path

import pytest
import torch
from metrics_test_helpers import save_png

from eegdecode.errors import DataFormatError, MissingFileError
from eegdecode.metrics import load_image, load_images, pair_folders, read_generation_manifest


def test_manifest_is_read_per_source_and_round(generation_folder):
    manifest, _ = generation_folder(n=5)
    evaluation_set = read_generation_manifest(manifest)
    assert evaluation_set.n_images == 5
    assert [r.index for r in evaluation_set.ground_truth] == [0, 1, 2, 3, 4]
    assert sorted(evaluation_set.reconstructions) == ["eeg", "image"]
    assert sorted(evaluation_set.reconstructions["eeg"]) == [0, 1]
    round1 = evaluation_set.reconstructions["eeg"][1]
    assert [r.index for r in round1] == [0, 1, 2, 3, 4]
    assert round1[2].path == manifest.parent / "eeg" / "0002_00003_thing2_r1.png"
    assert evaluation_set.ground_truth[0].path.resolve().parent.name == "00001_thing0"
    assert evaluation_set.generator_random_weights is True
    assert evaluation_set.origin["model"] == "Model" and evaluation_set.origin["subject"] == "sub-01"
    only_eeg = read_generation_manifest(manifest.parent, sources=["eeg"])
    assert list(only_eeg.reconstructions) == ["eeg"]


def _edit_manifest(manifest: Path, edit) -> Path:
    data = json.loads(manifest.read_text())
    edit(data)
    manifest.write_text(json.dumps(data))
    return manifest


def test_incomplete_round_names_the_missing_indices(generation_folder):
    manifest, _ = generation_folder(n=4)
    # entries go (eeg round 0, eeg round 1, image round 0) per index, so entry 3 is index 1 of eeg round 0
    _edit_manifest(manifest, lambda d: d["images"].pop(3))
    with pytest.raises(DataFormatError, match=r"round 0 does not cover .*missing indices \[1\]"):
        read_generation_manifest(manifest)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(format="other/1"), "unknown manifest format"),
        (lambda d: d["images"][0].update(source="sdxl"), "unknown source"),
        (lambda d: d["images"][0].update(concept="00009_other"), "concept differs"),
        (lambda d: d["images"][0].update(index=99), "no ground-truth image"),
        (lambda d: d["images"][0].pop("round"), "lacks the key 'round'"),
    ],
)
def test_bad_manifests_are_rejected(generation_folder, edit, message):
    manifest, _ = generation_folder(n=3)
    with pytest.raises(DataFormatError, match=message):
        read_generation_manifest(_edit_manifest(manifest, edit))


def test_missing_image_file_is_named(generation_folder):
    manifest, _ = generation_folder(n=3)
    (manifest.parent / "eeg" / "0001_00002_thing1_r1.png").unlink()
    with pytest.raises(MissingFileError, match="0001_00002_thing1_r1.png"):
        read_generation_manifest(manifest)


def test_flat_folders_pair_by_leading_number(tmp_path, structured_images):
    images = structured_images(11, 16, seed=0)
    for i in range(11):
        save_png(tmp_path / "gt" / f"{i}_gt.png", images[i])
        save_png(tmp_path / "rec" / f"{i:03d}_rec.png", images[i])
    evaluation_set = pair_folders(tmp_path / "gt", tmp_path / "rec")
    pairs = [
        (g.path.name, r.path.name)
        for g, r in zip(evaluation_set.ground_truth, evaluation_set.reconstructions["recon"][0])
    ]
    assert pairs[2] == ("2_gt.png", "002_rec.png") and pairs[10] == ("10_gt.png", "010_rec.png")
    (tmp_path / "rec" / "010_rec.png").unlink()
    with pytest.raises(DataFormatError, match=r"does not match the ground truth.*expected 11; found 10"):
        pair_folders(tmp_path / "gt", tmp_path / "rec")


def test_concept_folders_give_rounds(tmp_path, structured_images):
    images = structured_images(3, 16, seed=0)
    for i, concept in enumerate(["00001_a", "00002_b", "00003_c"]):
        save_png(tmp_path / "test_images" / concept / f"{concept}_01s.jpg", images[i])
        for k in range(2):
            save_png(tmp_path / "generated" / concept / f"{k}.png", images[i])
    evaluation_set = pair_folders(tmp_path / "test_images", tmp_path / "generated")
    assert [r.concept for r in evaluation_set.ground_truth] == ["00001_a", "00002_b", "00003_c"]
    assert sorted(evaluation_set.reconstructions["recon"]) == [0, 1]
    assert evaluation_set.reconstructions["recon"][1][2].path == tmp_path / "generated" / "00003_c" / "1.png"
    (tmp_path / "generated" / "00002_b" / "1.png").unlink()
    with pytest.raises(DataFormatError, match="same number of images"):
        pair_folders(tmp_path / "test_images", tmp_path / "generated")


def test_load_image_resizes_to_the_base_size(tmp_path):
    image = torch.zeros(3, 40, 60)
    image[0] = 1.0  # pure red
    path = save_png(tmp_path / "red.png", image)
    loaded = load_image(path)
    assert loaded.shape == (3, 256, 256) and loaded.dtype == torch.float32
    torch.testing.assert_close(loaded[:, 100, 100], torch.tensor([1.0, 0.0, 0.0]))
    assert load_image(path, base_size=None).shape == (3, 40, 60)
    save_png(tmp_path / "other.png", torch.zeros(3, 20, 20))
    assert load_images([path, tmp_path / "other.png"]).shape == (2, 3, 256, 256)
    with pytest.raises(DataFormatError, match="differ in size"):
        load_images([path, tmp_path / "other.png"], base_size=None)
