"""The simulated THINGS-EEG2: same layout as the release, deterministic, realistic enough to mean something."""

import filecmp

import numpy as np
import pytest
from PIL import Image

from eegdecode.data.channels import THINGS_EEG2_CHANNELS
from eegdecode.data.paths import DatasetPaths
from eegdecode.data.simulate import (
    PRESETS,
    Preset,
    Subject,
    ceiling_scores,
    load_simulation,
    simulate_dataset,
)
from eegdecode.data.things_eeg2 import read_preprocessed_file
from eegdecode.embeddings.store import load_features
from eegdecode.errors import OutputExistsError


def test_layout_matches_the_real_release(tiny_root):
    p = PRESETS["tiny"]
    paths = DatasetPaths(tiny_root)
    assert paths.subjects() == ["sub-01", "sub-02"]
    train_file = paths.subject_dir(1) / "preprocessed_eeg_training.npy"
    raw = np.load(train_file, allow_pickle=True)  # how ATM/NICE read it
    raw = raw.item() if isinstance(raw, np.ndarray) else raw
    assert sorted(raw) == ["ch_names", "preprocessed_eeg_data", "times"]
    assert raw["preprocessed_eeg_data"].dtype == np.float64
    assert len(raw["times"]) == 300 and raw["times"][50] == 0.0
    train = read_preprocessed_file(train_file)
    test = read_preprocessed_file(paths.subject_dir(1) / "preprocessed_eeg_test.npy")
    assert train.shape == (p.n_train_concepts * p.images_per_concept, p.n_train_reps, 63, 250)
    assert test.shape == (p.n_test_concepts, p.n_test_reps, 63, 250)
    assert train.ch_names == list(THINGS_EEG2_CHANNELS)
    # Whitened data: noise of about unit variance per channel, like MVNN output.
    assert 0.5 < float(train.data.std()) < 2.0

    img_dir = paths.image_set_dir
    train_folders = sorted(d.name for d in (img_dir / "training_images").iterdir())
    test_folders = sorted(d.name for d in (img_dir / "test_images").iterdir())
    assert len(train_folders) == p.n_train_concepts and len(test_folders) == p.n_test_concepts
    assert train_folders[0].startswith("00001_") and train_folders[-1].startswith(
        f"{p.n_train_concepts:05d}_"
    )
    concept = lambda f: f.split("_", 1)[1]  # noqa: E731
    assert not {concept(f) for f in train_folders} & {concept(f) for f in test_folders}
    first = sorted((img_dir / "training_images" / train_folders[0]).iterdir())
    assert len(first) == p.images_per_concept
    with Image.open(first[0]) as im:
        assert im.format == "JPEG" and im.size == (p.image_size, p.image_size)
    meta = np.load(img_dir / "image_metadata.npy", allow_pickle=True).item()
    assert sorted(meta) == sorted(
        [
            "train_img_concepts",
            "train_img_files",
            "train_img_concepts_THINGS",
            "test_img_concepts",
            "test_img_files",
            "test_img_concepts_THINGS",
        ]
    )
    assert len(meta["train_img_files"]) == train.shape[0] and meta["train_img_files"][0] == first[0].name

    feats = load_features(paths.features_dir("reference"), "train")
    assert feats.image.shape == (train.shape[0], 1024) and feats.text.shape == (p.n_train_concepts, 1024)
    assert feats.meta["source"] == "simulator"


def test_same_seed_same_files_other_seed_other_data(tmp_path):
    preset = Preset(6, 2, 2, 4, 3, 16)
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        simulate_dataset(tmp_path / name, preset, n_subjects=1, seed=seed, progress=False)
    rel = "Preprocessed_data_250Hz/sub-01/preprocessed_eeg_training.npy"
    assert filecmp.cmp(tmp_path / "a" / rel, tmp_path / "b" / rel, shallow=False)
    assert filecmp.cmp(
        tmp_path / "a/features/reference/image_features_train.npy",
        tmp_path / "b/features/reference/image_features_train.npy",
        shallow=False,
    )
    a = read_preprocessed_file(tmp_path / "a" / rel).data
    c = read_preprocessed_file(tmp_path / "c" / rel).data
    assert not np.allclose(a, c)
    with pytest.raises(OutputExistsError):
        simulate_dataset(tmp_path / "a", preset, n_subjects=1, seed=3, progress=False)


def test_single_trials_are_noisy_and_averaging_raises_the_ceiling(tiny_root):
    world, desc = load_simulation(tiny_root)
    snr = desc["subjects"]["sub-01"]["snr"]
    # Single-trial EEG is dominated by background activity, and image-specific signal is a small part of the evoked one.
    assert snr["evoked_power_over_noise"] < 0.1
    assert snr["image_specific_power_over_noise"] < 0.3 * snr["evoked_power_over_noise"]
    subject = Subject(world, 0)
    test = read_preprocessed_file(DatasetPaths(tiny_root).subject_dir(1) / "preprocessed_eeg_test.npy").data
    n = test.shape[0]
    top1 = {}
    for reps in (1, test.shape[1]):
        scores = ceiling_scores(subject, test[:, :reps].mean(axis=1))
        top1[reps] = float(np.mean(scores.argmax(axis=1) == np.arange(n)))
    assert top1[test.shape[1]] > top1[1]
    assert top1[test.shape[1]] >= 0.9


def test_subjects_differ_but_share_structure(tiny_root):
    world, _ = load_simulation(tiny_root)
    t0 = Subject(world, 0).templates(world.test_latent)
    t1 = Subject(world, 1).templates(world.test_latent)
    r = np.corrcoef(t0.ravel(), t1.ravel())[0, 1]
    assert 0.2 < r < 0.99


def test_ridge_from_eeg_to_embeddings_beats_chance(tiny_root):
    """A linear map learnt on averaged training EEG retrieves test images zero-shot above chance."""
    paths = DatasetPaths(tiny_root)
    train = read_preprocessed_file(paths.subject_dir(1) / "preprocessed_eeg_training.npy").data.mean(axis=1)
    test = read_preprocessed_file(paths.subject_dir(1) / "preprocessed_eeg_test.npy").data.mean(axis=1)
    pool = lambda x: x.reshape(len(x), 63, 25, 10).mean(-1).reshape(len(x), -1)  # noqa: E731  (40 ms bins)
    xtr, xte = pool(train), pool(test)
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    ytr = load_features(paths.features_dir("reference"), "train", normalise=True).image
    yte = load_features(paths.features_dir("reference"), "test", normalise=True).image
    w = np.linalg.solve(xtr.T @ xtr + 1e3 * np.eye(xtr.shape[1]), xtr.T @ (ytr - ytr.mean(0)))
    pred = xte @ w
    pred /= np.linalg.norm(pred, axis=1, keepdims=True)
    top1 = float(np.mean((pred @ (yte - ytr.mean(0)).T).argmax(1) == np.arange(len(yte))))
    chance = 1 / len(yte)
    assert top1 >= 3 * chance, f"ridge top-1 {top1:.2f} vs chance {chance:.2f}"


def test_custom_counts_override_the_preset():
    from eegdecode.data.simulate import custom_preset

    name, p = custom_preset("tiny", n_train_concepts=3, n_test_reps=80, images_per_concept=None)
    assert name == "custom" and p == Preset(3, 4, 4, 20, 80, 32)
    assert custom_preset("tiny", n_train_reps=4) == ("tiny", PRESETS["tiny"])  # unchanged: the preset's name
    with pytest.raises(ValueError, match="Preset.n_test_concepts: expected an integer >= 2; found 1"):
        custom_preset("tiny", n_test_concepts=1)
    with pytest.raises(ValueError, match="Invalid count 'n_images'"):
        custom_preset("tiny", n_images=3)


BAD_OPTIONS = [
    (["--test-reps", "30", "--raw", "things"], "--test-reps: expected a multiple of 4 with --raw"),
    (["--train-reps", "3", "--raw", "brainvision"], "--train-reps: expected a multiple of 2 with --raw"),
    (["--test-concepts", "1"], "--test-concepts: expected an integer >= 2; found 1"),
    (["--train-concepts", "0"], "--train-concepts: expected an integer >= 1; found 0"),
    (["--images-per-concept", "-1"], "--images-per-concept: expected an integer >= 1; found -1"),
    (["--subjects", "0"], "--subjects: expected an integer >= 1; found 0"),
    (["--train-concepts", "1", "--images-per-concept", "1", "--raw", "both"], "at least 2 training images"),
    (["--raw", "edf"], "argument --raw: invalid choice: 'edf'"),
    (["--layout", "500hz"], "argument --layout: invalid choice: '500hz'"),
    (["--test-reps", "many"], "argument --test-reps: invalid int value: 'many'"),
]


@pytest.mark.parametrize("options, message", BAD_OPTIONS)
def test_simulate_cli_refuses_bad_options_in_one_line_before_any_work(tmp_path, capsys, options, message):
    from eegdecode.cli import main

    out = tmp_path / "sim"
    try:
        code = main(["simulate", "--out", str(out), "--preset", "tiny", *options])
    except SystemExit as exc:  # argparse's own checks (choices, types)
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert err.startswith("eegdecode simulate: error: ") and "Traceback" not in err
    assert not out.exists()  # nothing written


def test_simulate_cli_refuses_an_existing_data_set(tmp_path, capsys):
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "simulation_raw.json").write_text("{}")
    before = sorted(tmp_path.rglob("*"))
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-m", "eegdecode", "simulate", "--out", str(tmp_path), "--preset", "tiny", "--raw", "things"],
        capture_output=True, text=True, cwd=repo, env={**__import__("os").environ, "PYTHONPATH": str(repo)},
    )  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "simulation_raw.json already exists; pass --overwrite" in proc.stderr
    assert sorted(tmp_path.rglob("*")) == before
