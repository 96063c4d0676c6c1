"""MEG route end to end on a simulated THINGS-MEG: the official epochs .fif -> ATM's layout -> cache -> training."""

import pickle

import numpy as np
import pytest
import torch

from eegdecode.data.simulate import Preset
from eegdecode.data.simulate_meg import simulate_meg_dataset
from eegdecode.errors import DataFormatError
from eegdecode.models import build_encoder, list_encoders
from eegdecode.preprocessing.meg import preprocess_meg_subject, split_meg_epochs

PRESET = Preset(
    n_train_concepts=16,
    images_per_concept=3,
    n_train_reps=1,
    n_test_concepts=6,
    n_test_reps=12,
    image_size=32,
)


@pytest.fixture(scope="module")
def meg_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("meg")
    simulate_meg_dataset(root / "ds004212", PRESET, participant=1, seed=0, write_images=True)
    res = preprocess_meg_subject(root / "ds004212", root / "data", 1, cache_dtype="float32", copy_images=True)
    return root, res


def test_atm_layout_cache_and_images(meg_root):
    root, res = meg_root
    sub = root / "data" / "Preprocessed_MEG_200Hz" / "sub-01"
    train = pickle.load(open(sub / "preprocessed_meg_training.pkl", "rb"))
    test = pickle.load(open(sub / "preprocessed_meg_zs_test.pkl", "rb"))
    assert sorted(train) == ["ch_names", "meg_data", "times"]
    # 16 training concepts x 3 images x 1 rep (the 6 test concepts' training images removed); 6 test x 12 reps.
    assert train["meg_data"].shape == (16, 3, 1, 271, 201) and test["meg_data"].shape == (6, 1, 12, 271, 201)
    assert len(train["ch_names"]) == 271 and train["times"][0] == 0.0 and train["times"][-1] == 1.0
    assert res["cache"]["shapes"] == {"train": [48, 1, 271, 201], "test": [6, 12, 271, 201]}
    assert len(list((root / "data" / "image_set" / "training_images").glob("*/*.jpg"))) == 48
    assert len(list((root / "data" / "image_set" / "test_images").glob("*/*.jpg"))) == 6


def test_split_rules_and_errors():
    # images 1-3 concept 1, 4-6 concept 2; image 6 is a test image (2 reps); concept 2 is a test concept.
    concept_index = np.array([1, 1, 1, 2, 2, 2])
    codes = np.array([6, 1, 2, 3, 4, 6, 5])
    data = codes[:, None, None].astype(float)
    out = split_meg_epochs(data, codes, concept_index, n_test_reps=2)
    assert out["test_codes"].tolist() == [6] and out["test"].shape == (1, 1, 2, 1, 1)
    assert out["train_codes"].tolist() == [1, 2, 3] and out["train"][0, :, 0, 0, 0].tolist() == [1, 2, 3]
    with pytest.raises(DataFormatError, match="training image 1 shown more than once"):
        dup = np.array([6, 6, 6, 1, 1, 2, 3])
        split_meg_epochs(dup[:, None, None].astype(float), dup, concept_index, 3)
    with pytest.raises(DataFormatError, match="no test images"):
        split_meg_epochs(data, codes, concept_index, n_test_reps=5)


@pytest.mark.parametrize("name", [n for n in list_encoders() if n != "ridge"])  # ridge: fitted, not stepped
def test_encoders_take_meg_shapes(name):
    model = build_encoder(name, 271, 201)
    x = torch.randn(2, 271, 201)
    out = (
        model(x, torch.zeros(2, dtype=torch.long))
        if "subject" in model.forward.__code__.co_varnames
        else model(x)
    )
    out.float().pow(2).mean().backward()
    assert out.shape[0] == 2 and out.shape[-1] == 1024


def test_meg_learning_beats_chance(meg_root, tmp_path):
    import shutil

    from eegdecode.data.datasets import DataOptions, make_folds
    from eegdecode.data.paths import DatasetPaths
    from eegdecode.training.trainer import TrainConfig, train_fold

    root, _ = meg_root
    if not (root / "data" / "features").exists():  # the simulator wrote the image set's reference embeddings
        shutil.copytree(root / "ds004212" / "features", root / "data" / "features")
    cfg = TrainConfig(
        model="NICE_EEG",
        epochs=8,
        batch_size=16,
        lr=1e-3,
        device="cpu",
        eval_draws=50,
        data=DataOptions(val_fraction=0.2, dtype="float32"),
    )
    res = train_fold(
        cfg, DatasetPaths(root / "data", "meg"), make_folds("intra", [1])[0], tmp_path / "run", progress=False
    )
    k = res["kway"]["k"]["6"]
    print("MEG 6-way top-1", k["top1_mean"], "chance", k["chance_top1"])
    assert k["top1_mean"] > k["chance_top1"] + 0.15
