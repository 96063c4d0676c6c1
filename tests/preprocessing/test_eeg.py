"""EEG preprocessing end to end on simulated raw recordings: epochs against the simulator's truth, the release
format, the cache and training, and clear errors for bad input."""

import numpy as np
import pytest

from eegdecode.data.cache import open_cache
from eegdecode.data.channels import POSTERIOR_17, THINGS_EEG2_CHANNELS
from eegdecode.data.simulate import Preset, Subject, World
from eegdecode.data.simulate_raw import (
    RawDesign,
    raw_file,
    simulate_raw_dataset,
    simulate_session,
    write_things_raw,
)
from eegdecode.data.things_eeg2 import read_preprocessed_file
from eegdecode.errors import DataFormatError
from eegdecode.preprocessing.eeg import (
    LAYOUTS,
    epoch_recording,
    preprocess_eeg_subject,
    read_brainvision,
    read_things_raw,
    sort_repetitions,
)

PRESET = Preset(
    n_train_concepts=6, images_per_concept=2, n_train_reps=2, n_test_concepts=4, n_test_reps=8, image_size=32
)
DESIGN = RawDesign(n_sessions=2, train_reps_per_session=2, test_reps_per_session=4)


@pytest.fixture(scope="module")
def raw_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    simulate_raw_dataset(root, PRESET, n_subjects=1, design=DESIGN, seed=0)
    return root


@pytest.fixture(scope="module")
def session():
    world = World(PRESET, 0)
    order = list(reversed(THINGS_EEG2_CHANNELS))  # recording order differs from the release order
    return simulate_session(
        Subject(world, 0), "training", np.arange(1, 13), 2, DESIGN, np.random.default_rng(1), order
    )


def test_raw_file_matches_the_real_release_layout(raw_root):
    obj = np.load(raw_file(raw_root, 1, 1, "training"), allow_pickle=True).item()
    assert sorted(obj) == ["ch_names", "ch_types", "highpass", "lowpass", "raw_eeg_data", "sfreq"]
    assert (
        obj["raw_eeg_data"].shape[0] == 64 and obj["ch_names"][-1] == "stim" and obj["ch_types"][-1] == "stim"
    )
    assert obj["sfreq"] == 1000.0 and sorted(obj["ch_names"][:-1]) == sorted(THINGS_EEG2_CHANNELS)
    stim = obj["raw_eeg_data"][-1]
    codes = set(np.unique(stim[stim > 0]).astype(int))
    assert 99999 in codes and codes - {99999} == set(
        range(1, 7)
    )  # session 1 shows the first half of 12 images
    assert 5e-6 < np.std(obj["raw_eeg_data"][:-1]) < 1e-4  # volts, EEG-sized


@pytest.mark.parametrize("fmt", ["things", "brainvision"])
def test_epochs_match_the_simulators_own_epochs(session, tmp_path, fmt):
    from eegdecode.data.simulate_raw import write_brainvision

    if fmt == "things":
        rec = read_things_raw(write_things_raw(tmp_path / "raw.npy", session))
    else:
        rec = read_brainvision(write_brainvision(tmp_path / "bv" / "s_eeg.vhdr", session))
    data, codes, times, names = epoch_recording(rec)
    keep = session.codes != 99999
    assert names == list(THINGS_EEG2_CHANNELS) and data.shape == (keep.sum(), 63, 300)
    np.testing.assert_array_equal(codes, session.codes[keep])
    np.testing.assert_allclose(times[[0, 50, -1]], [-0.2, 0.0, 0.996], atol=1e-9)
    truth = session.epochs[keep]
    corr = [np.corrcoef(a.ravel(), b.ravel())[0, 1] for a, b in zip(data, truth)]
    assert min(corr) > 0.99
    np.testing.assert_allclose(np.std(data), np.std(truth), rtol=0.01)  # volts in, volts out


def test_gifford_layout_picks_17_posterior_channels_at_100hz(session, tmp_path):
    rec = read_things_raw(write_things_raw(tmp_path / "raw.npy", session))
    data, _, times, names = epoch_recording(rec, LAYOUTS["100hz"])
    assert sorted(names) == sorted(POSTERIOR_17) and data.shape[1:] == (17, 100)
    assert names == [c for c in session.ch_names if c in POSTERIOR_17]  # file order, as Gifford's regexp pick
    np.testing.assert_allclose(times[[0, -1]], [-0.2, 0.79], atol=1e-9)


def test_sort_repetitions_is_seeded_and_keeps_max_rep():
    codes = np.array([2, 1, 2, 1, 2, 1, 2])
    data = np.arange(7.0)[:, None, None]
    a, cond = sort_repetitions(data, codes, 2, np.random.default_rng(5), None)
    b, _ = sort_repetitions(data, codes, 2, np.random.default_rng(5), None)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (2, 2, 1, 1) and cond.tolist() == [1, 2]
    assert (
        set(a[0].ravel()) <= {1, 3, 5} and set(a[1].ravel()) <= {0, 2, 4, 6} and len(set(a[1].ravel())) == 2
    )
    with pytest.raises(DataFormatError, match="too few repetitions of condition 1"):
        sort_repetitions(data, codes, 4, np.random.default_rng(5), "ses-01/raw_eeg_test.npy")


def test_preprocess_writes_the_release_format_the_cache_and_trains(raw_root, tmp_path):
    out = tmp_path / "out"
    res = preprocess_eeg_subject(raw_root, out, 1, n_sessions=2, test_reps=4, cache_dtype="float32")
    train = read_preprocessed_file(
        out / "Preprocessed_data_250Hz" / "sub-01" / "preprocessed_eeg_training.npy"
    )
    test = read_preprocessed_file(out / "Preprocessed_data_250Hz" / "sub-01" / "preprocessed_eeg_test.npy")
    # 12 training images, each in one of the 2 sessions x 2 reps; 4 test images x 2 sessions x 4 reps.
    assert train.data.shape == (12, 2, 63, 250) and test.data.shape == (4, 8, 63, 250)
    assert train.data.dtype == np.float64 and train.ch_names == list(THINGS_EEG2_CHANNELS)
    raw_obj = np.load(
        out / "Preprocessed_data_250Hz" / "sub-01" / "preprocessed_eeg_training.npy", allow_pickle=True
    )
    assert sorted(raw_obj) == ["ch_names", "preprocessed_eeg_data", "times"] and len(raw_obj["times"]) == 300
    # Whitened with the training covariance: training noise is about unit variance per channel.
    assert 0.5 < train.data.var() < 2.0
    cache = open_cache(out / "cache" / "Preprocessed_data_250Hz" / "sub-01", "float32")
    np.testing.assert_allclose(cache.train, train.data.astype(np.float32))
    assert res["shapes"] == {"train": [12, 2, 63, 250], "test": [4, 8, 63, 250]}
    # Same seed, same numbers.
    again = preprocess_eeg_subject(raw_root, tmp_path / "again", 1, test_reps=4, cache=False)
    again_train = read_preprocessed_file(again["subject_dir"] + "/preprocessed_eeg_training.npy")
    np.testing.assert_array_equal(again_train.data, train.data)
    # ... and it trains through the normal pipeline (the simulator wrote matching reference features).
    import shutil

    from eegdecode.data.datasets import DataOptions, make_folds
    from eegdecode.data.paths import DatasetPaths
    from eegdecode.training.trainer import TrainConfig, train_fold

    shutil.copytree(raw_root / "features", out / "features")
    cfg = TrainConfig(model="NICE_EEG", epochs=1, batch_size=8, device="cpu", eval_draws=5,
                      data=DataOptions(val_fraction=0.2, dtype="float32"))  # fmt: skip
    result = train_fold(cfg, DatasetPaths(out), make_folds("intra", [1])[0], tmp_path / "run", progress=False)
    assert "kway" in result


def test_bad_input_is_refused_with_the_file_and_condition(session, raw_root, tmp_path):
    base = np.load(raw_file(raw_root, 1, 1, "training"), allow_pickle=True).item()

    def write(name, **changes):
        obj = {**base, **changes}
        path = tmp_path / name
        np.save(path, np.asarray(obj, dtype=object), allow_pickle=True)
        return path

    no_stim = write("nostim.npy", raw_eeg_data=base["raw_eeg_data"][:-1], ch_names=base["ch_names"][:-1],
                    ch_types=base["ch_types"][:-1])  # fmt: skip
    with pytest.raises(DataFormatError, match="nostim.npy: no stim channel"):
        read_things_raw(no_stim)
    with pytest.raises(DataFormatError, match="wrong sampling rate; expected 1000 Hz; found 500 Hz"):
        read_things_raw(write("sfreq.npy", sfreq=500.0))
    data = base["raw_eeg_data"].copy()
    stim = data[-1]
    first = np.flatnonzero(np.diff(np.r_[0, stim]) > 0)[0]
    stim[first : first + 20] = 777
    with pytest.raises(DataFormatError, match=r"unknown.npy: unknown event codes.*\[777\]"):
        epoch_recording(read_things_raw(write("unknown.npy", raw_eeg_data=data)), n_conditions=12)
    rec = read_things_raw(raw_file(raw_root, 1, 1, "training"))
    rec.events = np.concatenate([rec.events, rec.events[:1]])
    with pytest.raises(DataFormatError, match="duplicated events"):
        epoch_recording(rec)
    with pytest.raises(DataFormatError, match="sessions missing"):
        preprocess_eeg_subject(raw_root, tmp_path / "o", 1, n_sessions=4, cache=False)
    with pytest.raises(DataFormatError, match=r"raw_eeg_training.npy: too few repetitions of condition \d+"):
        preprocess_eeg_subject(raw_root, tmp_path / "o", 1, train_reps=3, cache=False)
