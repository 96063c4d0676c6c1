"""The image-set reader walks the real THINGS-EEG2 layout in EEG row order and rejects malformed sets loudly."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eegdecode.data.image_set import (
    METADATA_KEYS,
    ImageSet,
    build_image_metadata,
    concept_name,
    read_image_metadata,
    write_image_metadata,
)
from eegdecode.errors import DataFormatError, MissingFileError

TRAIN_CONCEPTS = ["00001_aardvark", "00002_abacus", "00003_ice_cream_cone"]
TEST_CONCEPTS = ["00001_aircraft_carrier", "00002_antelope"]


def _jpeg(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(path, format="JPEG")


def make_image_set(root: Path, train=TRAIN_CONCEPTS, test=TEST_CONCEPTS, n_train=3, n_test=1) -> Path:
    """A small image set in the real layout with real JPEGs; file names deliberately created out of order."""
    seed = 0
    for split_folder, concepts, n in (("training_images", train, n_train), ("test_images", test, n_test)):
        for concept in reversed(concepts):
            stem = concept[6:]
            for j in reversed(range(n)):
                seed += 1
                _jpeg(root / split_folder / concept / f"{stem}_{j + 1:02d}{'bs'[j % 2]}.jpg", seed)
    return root


@pytest.fixture
def image_root(tmp_path):
    return make_image_set(tmp_path / "image_set")


def test_walk_is_sorted_concept_major(image_root):
    train = ImageSet(image_root).split("train")
    assert train.concepts == tuple(TRAIN_CONCEPTS)
    assert train.n_images == 9 and train.n_concepts == 3 and train.images_per_concept == 3
    assert train.relative_names[:4] == (
        "training_images/00001_aardvark/aardvark_01b.jpg",
        "training_images/00001_aardvark/aardvark_02s.jpg",
        "training_images/00001_aardvark/aardvark_03b.jpg",
        "training_images/00002_abacus/abacus_01b.jpg",
    )
    assert train.image_concept_index.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert train.image_concept_index.dtype == np.int64
    assert all(p.is_file() for p in train.image_paths)
    assert train.image_paths[4] == image_root / "training_images/00002_abacus/abacus_02s.jpg"
    assert train.image_files[8] == "ice_cream_cone_03b.jpg"
    test = ImageSet(image_root).split("test")
    assert test.concepts == tuple(TEST_CONCEPTS) and test.images_per_concept == 1 and test.n_images == 2


def test_concept_names_and_prompts_turn_underscores_into_spaces(image_root):
    images = ImageSet(image_root)
    assert images.split("train").concept_names == ("aardvark", "abacus", "ice cream cone")
    assert images.split("test").prompts() == ("This picture is aircraft carrier", "This picture is antelope")
    assert images.split("test").prompts("a photo of {}.")[0] == "a photo of aircraft carrier."
    assert concept_name("01654_zucchini") == "zucchini"
    with pytest.raises(ValueError, match="aardvark"):
        concept_name("aardvark")


def test_hidden_entries_and_stray_files_are_ignored(image_root):
    (image_root / "training_images" / ".DS_Store").write_bytes(b"x")
    (image_root / "training_images" / "00001_aardvark" / "notes.txt").write_text("not an image")
    (image_root / "training_images" / "00001_aardvark" / "._aardvark_01b.jpg").write_bytes(b"resource fork")
    train = ImageSet(image_root).split("train")
    assert train.n_images == 9


def test_missing_root_and_split_folder(tmp_path, image_root):
    with pytest.raises(MissingFileError, match="eegdecode simulate"):
        ImageSet(tmp_path / "nowhere")
    (image_root / "test_images").rename(image_root / "elsewhere")
    images = ImageSet(image_root)
    assert images.split("train").n_images == 9  # train alone still reads
    with pytest.raises(MissingFileError, match="test_images"):
        images.split("test")
    with pytest.raises(ValueError, match="split"):
        images.split("validation")


def test_bad_concept_folder_name(image_root):
    (image_root / "training_images" / "aardvark2").mkdir()
    with pytest.raises(DataFormatError, match=r"aardvark2.*NNNNN_<concept>"):
        ImageSet(image_root).split("train")


def test_duplicate_concept_number(image_root):
    _jpeg(image_root / "training_images" / "00002_abacus_two" / "a_01.jpg", 1)
    for j in (2, 3):
        _jpeg(image_root / "training_images" / "00002_abacus_two" / f"a_0{j}.jpg", j)
    with pytest.raises(DataFormatError, match="00002_abacus and 00002_abacus_two"):
        ImageSet(image_root).split("train")


def test_unequal_image_counts_name_the_folder(image_root):
    (image_root / "training_images" / "00002_abacus" / "abacus_03b.jpg").unlink()
    with pytest.raises(DataFormatError, match=r"00002_abacus.*expected 3 images.*found 2"):
        ImageSet(image_root).split("train")


def test_empty_concept_folder(image_root):
    (image_root / "test_images" / "00003_zebra").mkdir()
    with pytest.raises(DataFormatError, match="00003_zebra.*no images"):
        ImageSet(image_root).split("test")


def test_overlapping_train_and_test_concepts(tmp_path):
    root = make_image_set(tmp_path / "image_set", test=["00001_abacus", "00002_antelope"])
    with pytest.raises(DataFormatError, match=r"disjoint.*1 shared: 00002_abacus / 00001_abacus"):
        ImageSet(root).split("test")
    with pytest.raises(DataFormatError, match="disjoint"):
        ImageSet(root).split("train")


def test_metadata_round_trip_matches_the_real_pickled_dict(image_root):
    images = ImageSet(image_root)
    things_test = ["00010_aircraft_carrier", "00027_antelope"]
    metadata = build_image_metadata(images, test_concepts_things=things_test)
    path = write_image_metadata(image_root / "image_metadata.npy", metadata)
    # Read exactly as the official release is read by every peer codebase.
    raw = np.load(path, allow_pickle=True).item()
    assert isinstance(raw, dict) and sorted(raw) == sorted(METADATA_KEYS)
    assert raw["train_img_concepts"][3] == "00002_abacus"
    assert raw["train_img_files"][3] == "abacus_01b.jpg"
    assert raw["train_img_concepts_THINGS"] == raw["train_img_concepts"]
    assert raw["test_img_concepts_THINGS"] == things_test
    assert len(raw["train_img_files"]) == 9 and len(raw["test_img_files"]) == 2
    assert images.read_metadata() == metadata
    assert not list(image_root.glob(".image_metadata*"))  # no temporary file left behind


def test_metadata_length_mismatch_names_file_expected_and_found(image_root):
    images = ImageSet(image_root)
    metadata = build_image_metadata(images)
    for key in ("train_img_concepts", "train_img_files", "train_img_concepts_THINGS"):
        metadata[key] = metadata[key][:-1]
    path = write_image_metadata(image_root / "image_metadata.npy", metadata)
    with pytest.raises(
        DataFormatError, match=r"image_metadata\.npy.*train_img_concepts.*expected 9 .*found 8"
    ) as err:
        read_image_metadata(path, image_set=images)
    assert err.value.path == path
    read_image_metadata(path)  # without folders only the internal consistency is checked


def test_metadata_order_mismatch_names_the_entry(image_root):
    images = ImageSet(image_root)
    metadata = build_image_metadata(images)
    metadata["test_img_files"] = metadata["test_img_files"][::-1]
    write_image_metadata(image_root / "image_metadata.npy", metadata)
    with pytest.raises(DataFormatError, match=r"test_img_files\[0\].*expected aircraft_carrier_01b\.jpg"):
        images.read_metadata()


def test_metadata_missing_keys_and_ragged_lists(image_root, tmp_path):
    images = ImageSet(image_root)
    metadata = build_image_metadata(images)
    broken = {k: v for k, v in metadata.items() if k != "test_img_files"}
    with pytest.raises(DataFormatError, match="test_img_files"):
        write_image_metadata(tmp_path / "m.npy", broken)
    ragged = {**metadata, "test_img_concepts_THINGS": ["00010_aircraft_carrier"]}
    with pytest.raises(DataFormatError, match="test metadata lists differ in length"):
        write_image_metadata(tmp_path / "m.npy", ragged)
    assert not (tmp_path / "m.npy").exists()
    np.save(tmp_path / "list.npy", np.arange(3))
    with pytest.raises(DataFormatError, match=r"list\.npy.*dict"):
        read_image_metadata(tmp_path / "list.npy")
    with pytest.raises(MissingFileError, match="image_metadata.npy"):
        images.read_metadata()
    with pytest.raises(ValueError, match="one name per concept"):
        build_image_metadata(images, train_concepts_things=["00001_aardvark"])
