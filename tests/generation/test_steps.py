"""Generation steps on a trained tiny run: step 1 embeddings with provenance, step 2 prior + images + manifest."""

import json

import numpy as np
import pytest

from eegdecode.data.datasets import DataOptions, make_folds
from eegdecode.data.paths import DatasetPaths
from eegdecode.errors import DataFormatError, MissingFileError, OutputExistsError
from eegdecode.generation.prior import PriorConfig
from eegdecode.generation.steps import extract_embeddings, generate_from_run
from eegdecode.io import sha256_file
from eegdecode.training.checkpoint import checkpoint_files
from eegdecode.training.trainer import TrainConfig, train_fold


@pytest.fixture(scope="module")
def trained_run(tiny_root, tmp_path_factory):
    run = tmp_path_factory.mktemp("gen") / "run"
    cfg = TrainConfig(model="NICE_EEG", epochs=1, batch_size=64, device="cpu", eval_draws=5,
                      data=DataOptions(channels="posterior17", time_window=(0.0, 0.6), train_unit="average", val_fraction=0.1))  # fmt: skip
    train_fold(cfg, DatasetPaths(tiny_root), make_folds("intra", [1])[0], run, progress=False)
    return run


def test_step1_then_step2_write_embeddings_images_and_manifest(trained_run, tmp_path):
    with pytest.raises(MissingFileError, match="eegdecode extract"):
        generate_from_run(trained_run, tmp_path, tiny=True)
    emb = extract_embeddings(trained_run, device="cpu")
    meta = json.loads((emb / "embeddings.json").read_text())
    train, index, test = (np.load(emb / f) for f in ("eeg_train.npy", "train_index.npy", "eeg_test.npy"))
    assert train.shape == (240 * 4, 1024) and index.shape == (960, 2) and test.shape == (20, 1024)
    assert index[:5].tolist() == [[0, 0], [0, 1], [0, 2], [0, 3], [1, 0]]
    assert meta["space"] == {"kind": "encoder output", "dim": 1024}
    assert meta["checkpoint_sha256"] == sha256_file(
        checkpoint_files(trained_run / "checkpoints", "best")["weights"]
    )
    with pytest.raises(OutputExistsError):
        extract_embeddings(trained_run, device="cpu")

    manifest = generate_from_run(trained_run, tmp_path, tiny=True, prior_epochs=1, prior_batch_size=256, size=64,
                                 device="cpu", max_images=3)  # fmt: skip
    m = json.loads(manifest.read_text())
    assert m["random_weights"] is True and m["model"] == "NICE_EEG" and m["subject"] == "sub-01"
    assert sorted({i["source"] for i in m["images"]}) == ["eeg", "image", "prior"] and len(m["images"]) == 9
    assert all((manifest.parent / i["path"]).stat().st_size > 100 for i in m["images"])
    assert len(m["ground_truth"]) == 3
    assert (trained_run / "prior" / "prior.json").exists()
    assert m["provenance"]["embeddings"]["checkpoint_sha256"] == meta["checkpoint_sha256"]
    # The default prior (x0 prediction, standardised: PriorConfig's) is recorded in the manifest and the checkpoint.
    assert m["provenance"]["prior"]["prediction_type"] == PriorConfig().prediction_type == "sample"
    assert m["provenance"]["prior"]["normalisation"] == PriorConfig().normalisation == "standardise"
    state = json.loads((trained_run / "prior" / "prior.json").read_text())
    assert (state["config"]["prediction_type"], state["normalisation"]["mode"]) == ("sample", "standardise")
    # The trained prior is reused; asking for another setting is an error, not a silent reuse.
    for other in ({"prior_prediction": "epsilon"}, {"prior_normalisation": "unit"}):
        with pytest.raises(
            DataFormatError,
            match="other settings than asked.*found prediction sample, normalisation standardise",
        ):
            generate_from_run(trained_run, tmp_path / "again", tiny=True, size=64, device="cpu", max_images=1,
                              **other)  # fmt: skip
    # Asking explicitly for the settings it has reuses it.
    again = generate_from_run(trained_run, tmp_path / "same", tiny=True, size=64, device="cpu", max_images=1,
                              prior_prediction="sample", prior_normalisation="standardise")  # fmt: skip
    assert json.loads(again.read_text())["provenance"]["prior"]["normalisation"] == "standardise"


def test_lowlevel_path_adds_img2img_images(trained_run, tmp_path):
    if not (trained_run / "embeddings" / "embeddings.json").exists():
        extract_embeddings(trained_run, device="cpu")
    manifest = generate_from_run(trained_run, tmp_path, tiny=True, size=64, device="cpu", max_images=2,
                                 sources=("eeg",), lowlevel=True, strength=0.5)  # fmt: skip
    m = json.loads(manifest.read_text())
    assert sorted({i["source"] for i in m["images"]}) == ["eeg", "lowlevel"]
    latents = np.load(trained_run / "lowlevel" / "latents_train_64px.npy")
    assert latents.shape == (240, 4, 8, 8)  # unscaled SDXL-VAE latents of every training image
    assert m["provenance"]["lowlevel"] == {"strength": 0.5}


def test_generate_command_defaults_to_the_prior_config_defaults():
    import argparse

    from eegdecode.commands import generate
    from eegdecode.generation.prior import NORMALISATIONS, PREDICTION_TYPES

    parser = argparse.ArgumentParser()
    generate.add_arguments(parser)
    args = parser.parse_args(["RUN"])
    # None: generate_from_run takes PriorConfig's defaults, so the command and the demo cannot drift from them.
    assert args.prior_prediction is None and args.prior_normalisation is None
    choices = {a.dest: tuple(a.choices) for a in parser._actions if a.dest.startswith("prior_") and a.choices}
    assert choices == {"prior_prediction": PREDICTION_TYPES, "prior_normalisation": NORMALISATIONS}
