"""The simulated raw recordings follow the real THINGS-EEG2 design by default, and that output goes through Gifford's
repetition draw, our preprocessing (both raw formats, both layouts) and the ``simulate --raw`` command."""

import inspect

import numpy as np
import pytest

from eegdecode.cli import main
from eegdecode.data.cache import open_cache
from eegdecode.data.channels import POSTERIOR_17, THINGS_EEG2_CHANNELS
from eegdecode.data.simulate import Preset, World
from eegdecode.data.simulate_raw import (
    RawDesign,
    brainvision_file,
    raw_file,
    session_conditions,
    simulate_raw_dataset,
)
from eegdecode.data.things_eeg2 import read_preprocessed_file
from eegdecode.io import read_json
from eegdecode.preprocessing.eeg import preprocess_eeg_subject, read_brainvision, read_things_raw

# Few images, the real repetition design: 6 training images (3 per session), 2 test images x 20 per session.
SMALL = Preset(
    n_train_concepts=3, images_per_concept=2, n_train_reps=4, n_test_concepts=2, n_test_reps=80, image_size=16
)
CLI_COUNTS = [
    "--preset",
    "tiny",
    "--train-concepts",
    "3",
    "--images-per-concept",
    "2",
    "--test-concepts",
    "2",
]


def test_default_design_is_the_real_things_eeg2_design():
    d = RawDesign()
    # Gifford et al. 2022: 4 sessions; per session 2 repetitions of half the training images, 20 of every test image.
    assert (d.n_sessions, d.train_reps_per_session, d.test_reps_per_session) == (4, 2, 20)
    assert (d.train_reps_total, d.test_reps_total) == (4, 80)
    assert inspect.signature(simulate_raw_dataset).parameters["design"].default == d
    world = World(Preset(1654, 10, 4, 200, 80, 16), 0)
    shown = np.zeros(16540, dtype=int)
    for ses in range(1, 5):
        train = session_conditions(world, d, ses, "training")
        assert len(train) == 8270
        shown[train - 1] += 1
        np.testing.assert_array_equal(session_conditions(world, d, ses, "test"), np.arange(1, 201))
    assert (shown == 2).all()  # every training image in exactly 2 of the 4 sessions: 2 x 2 = 4 repetitions
    assert RawDesign.from_totals(4, 80) == d
    with pytest.raises(ValueError, match="test_reps: expected a multiple of 4.*found 30"):
        RawDesign.from_totals(4, 30)
    with pytest.raises(ValueError, match="n_sessions: expected 1 or an even number.*found 3"):
        RawDesign(n_sessions=3)


@pytest.fixture(scope="module")
def default_raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw_default")
    simulate_raw_dataset(root, SMALL, n_subjects=1, seed=0)  # the default design and both formats
    return root


def _gifford_draw(events: np.ndarray, max_rep: int) -> None:
    """Gifford's step: per condition ``sklearn.utils.shuffle(idx, random_state=seed, n_samples=max_rep)``."""
    from sklearn.utils import shuffle

    codes = events[:, 2][events[:, 2] != 99999]
    for c in np.unique(codes):
        shuffle(np.flatnonzero(codes == c), random_state=20200220, n_samples=max_rep)


def test_default_raw_output_has_the_real_counts_and_passes_giffords_draw(default_raw, tmp_path):
    desc = read_json(default_raw / "simulation_raw.json")
    assert desc["design"]["n_sessions"] == 4 and desc["reps_per_image"] == {"train": 4, "test": 80}
    train_counts = np.zeros(6, dtype=int)
    for ses in range(1, 5):
        for part, max_rep in (("training", 2), ("test", 20)):
            rec = read_things_raw(raw_file(default_raw, 1, ses, part))
            codes = rec.events[:, 2][rec.events[:, 2] != 99999]
            conds, counts = np.unique(codes, return_counts=True)
            # the documented repetitions, plus one extra presentation of the session's first condition
            assert sorted(counts.tolist()) == [max_rep] * (len(conds) - 1) + [max_rep + 1]
            if part == "training":
                assert len(conds) == 3
                train_counts[conds - 1] += 1
            else:
                assert conds.tolist() == [1, 2]
            _gifford_draw(rec.events, max_rep)
    assert train_counts.tolist() == [2] * 6
    # The same events in the BrainVision copy.
    bv = read_brainvision(brainvision_file(default_raw, 1, 4, "test"))
    np.testing.assert_array_equal(
        bv.events[:, 2], read_things_raw(raw_file(default_raw, 1, 4, "test")).events[:, 2]
    )
    # The old default (2 sessions, 4 test repetitions per session) is what Gifford's code refused.
    old = tmp_path / "old"
    simulate_raw_dataset(old, SMALL, design=RawDesign(2, 2, 4), formats=("things",), write_features=False)
    with pytest.raises(ValueError, match="Cannot sample 20 out of arrays with dim 5"):
        _gifford_draw(read_things_raw(raw_file(old, 1, 1, "test")).events, 20)


@pytest.mark.parametrize("source", ["things", "brainvision"])
def test_default_raw_output_preprocesses_with_the_defaults(default_raw, tmp_path, source):
    out = tmp_path / "pre"
    res = preprocess_eeg_subject(default_raw, out, 1, n_sessions=4, source=source, cache_dtype="float32")
    assert res["sessions"] == [1, 2, 3, 4]
    assert res["shapes"] == {"train": [6, 4, 63, 250], "test": [2, 80, 63, 250]}
    train = read_preprocessed_file(
        out / "Preprocessed_data_250Hz" / "sub-01" / "preprocessed_eeg_training.npy"
    )
    assert train.ch_names == list(THINGS_EEG2_CHANNELS) and train.data.shape == (6, 4, 63, 250)
    cache = open_cache(out / "cache" / "Preprocessed_data_250Hz" / "sub-01", "float32")
    assert cache.test.shape == (2, 80, 63, 250)


def test_default_raw_output_preprocesses_into_giffords_100hz_layout(default_raw, tmp_path):
    out = tmp_path / "pre100"
    res = preprocess_eeg_subject(default_raw, out, 1, layout="100hz", n_sessions=4, cache=False)
    assert res["shapes"] == {"train": [6, 4, 17, 100], "test": [2, 80, 17, 100]}
    test = read_preprocessed_file(out / "preprocessed_data" / "sub-01" / "preprocessed_eeg_test.npy")
    assert sorted(test.ch_names) == sorted(POSTERIOR_17) and test.sfreq == 100.0


def test_simulate_cli_writes_raw_recordings_that_preprocess(tmp_path, capsys):
    root = tmp_path / "sim"
    assert main(["simulate", "--out", str(root), *CLI_COUNTS, "--no-images", "--raw", "both"]) == 0
    printed = capsys.readouterr().out
    assert "eegdecode preprocess eeg --raw-root" in printed and "--train-reps" not in printed
    # With --raw the preprocessed release takes the real totals too: 4 training and 80 test repetitions.
    test = read_preprocessed_file(root / "Preprocessed_data_250Hz" / "sub-01" / "preprocessed_eeg_test.npy")
    assert test.data.shape == (2, 80, 63, 250)
    assert sorted(p.name for p in (root / "raw_data" / "sub-01").iterdir()) == [
        f"ses-0{i}" for i in range(1, 5)
    ]
    assert all(brainvision_file(root, 1, s, p).exists() for s in range(1, 5) for p in ("training", "test"))
    assert read_json(root / "simulation_raw.json")["formats"] == ["things", "brainvision"]
    # The command line's own preprocessing, with its defaults (4 sessions, 2 / 20 repetitions per session).
    pre = tmp_path / "pre"
    assert (
        main(["preprocess", "eeg", "--raw-root", str(root), "--data-root", str(pre), "--subject", "1"]) == 0
    )
    cache = open_cache(pre / "cache" / "Preprocessed_data_250Hz" / "sub-01")
    assert cache.train.shape == (6, 4, 63, 250) and cache.test.shape == (2, 80, 63, 250)


def test_simulate_cli_100hz_layout_custom_counts_and_raw(tmp_path, capsys):
    """Gifford's 100 Hz release from the command line, with its own ceiling, custom counts and raw output."""
    from eegdecode.data.cache import prepare_subject
    from eegdecode.data.paths import DatasetPaths
    from eegdecode.data.simulate import Subject, ceiling_scores, load_simulation
    from eegdecode.evaluation.ceiling import load_ceiling

    root = tmp_path / "sim"
    counts = [*CLI_COUNTS, "--test-concepts", "6", "--train-reps", "2", "--test-reps", "8"]
    assert (
        main(["simulate", "--out", str(root), *counts, "--no-images", "--raw", "things", "--layout", "100hz"])
        == 0
    )
    printed = capsys.readouterr().out
    assert "--layout 100hz --train-reps 1 --test-reps 2" in printed  # the flags this design needs
    assert read_json(root / "simulation_raw.json")["design"]["test_reps_per_session"] == 2
    world, desc = load_simulation(root)
    assert desc["layout"] == "100hz" and desc["preset"] == "custom" and desc["sfreq"] == 100.0
    # Gifford's release: preprocessed_data/, np.save of the dict (read with .item()), 17 channels, 100 samples.
    paths = DatasetPaths(root, "100hz")
    obj = np.load(paths.subject_dir(1) / "preprocessed_eeg_training.npy", allow_pickle=True).item()
    assert sorted(obj) == ["ch_names", "preprocessed_eeg_data", "times"]
    assert obj["preprocessed_eeg_data"].shape == (6, 2, 17, 100) and obj["ch_names"] == list(POSTERIOR_17)
    np.testing.assert_allclose(obj["times"][[0, 20, -1]], [-0.2, 0.0, 0.79])
    assert not (root / "Preprocessed_data_250Hz").exists()
    test = read_preprocessed_file(paths.subject_dir(1) / "preprocessed_eeg_test.npy")
    assert test.shape == (6, 8, 17, 100) and test.sfreq == 100.0
    assert 0.5 < float(test.data.std()) < 2.0  # whitened: noise of about unit variance
    assert abs(float(test.data[..., :20].mean())) < 0.05  # baseline-corrected on the 200 ms before onset
    meta = prepare_subject(paths.subject_dir(1), paths.cache_dir(1), "float32")
    assert meta["shapes"] == {"train": [6, 2, 17, 100], "test": [6, 8, 17, 100]} and meta["sfreq"] == 100.0
    np.testing.assert_allclose(open_cache(paths.cache_dir(1), "float32").test, test.data.astype(np.float32))
    # The ideal decoder works in the same 17 x 100 space: averaging beats single trials, and ceiling.json agrees.
    subject = Subject(world, 0, desc["layout"])
    assert subject.templates(world.test_latent).shape == (6, 17, 100)
    averaged = float(np.mean(ceiling_scores(subject, test.data.mean(axis=1)).argmax(axis=1) == np.arange(6)))
    single = ceiling_scores(subject, test.data.reshape(48, 17, 100)).argmax(axis=1)
    assert averaged >= 0.5 and averaged > float(np.mean(single == np.repeat(np.arange(6), 8)))
    assert load_ceiling(root, 1)[0].scores[6].top1_mean == pytest.approx(averaged)
    # The raw recordings through the preprocessing with the flags the command printed.
    res = preprocess_eeg_subject(root, tmp_path / "pre", 1, layout="100hz", n_sessions=4, train_reps=1, test_reps=2,
                                 cache=False)  # fmt: skip
    assert res["shapes"] == {"train": [6, 2, 17, 100], "test": [6, 8, 17, 100]}
