"""MEG raw BIDS route: simulated raw runs -> mne-bids -> the official steps -> the same ATM layout as the derivative.

The simulator cuts its derivative from the very recording it writes as BIDS runs (see simulate_meg), so the raw route
must give back the derivative's epochs, trial by trial, up to the 0.1-40 Hz band-pass (the signal lies in 0.3-32 Hz).
Runs are about 15 s here (real ones about 6 min), shorter than the 0.1 Hz high-pass filter: MNE warns about that.
"""

import pickle
import shutil

import numpy as np
import pytest

from eegdecode.cli import main
from eegdecode.data.simulate import Preset
from eegdecode.data.simulate_meg import simulate_meg_dataset
from eegdecode.data.things_eeg2 import split_file
from eegdecode.errors import DataFormatError, MissingFileError
from eegdecode.preprocessing.meg import preprocess_meg_subject
from eegdecode.preprocessing.meg_bids import (
    decimation_factor,
    epochs_from_bids,
    find_meg_runs,
    read_events_tsv,
    replace_dropout,
)

pytestmark = pytest.mark.filterwarnings("ignore:filter_length.*is longer than the signal:RuntimeWarning")

# 4 training + 2 test concepts x 2 images, 2 test images x 12 repetitions, 3 catch: 39 trials, 2 sessions x 2 runs.
DESIGN = Preset(n_train_concepts=4, images_per_concept=2, n_train_reps=1, n_test_concepts=2, n_test_reps=12,
                image_size=32)  # fmt: skip
RAW_SFREQ = 600.0  # the real 1200 Hz works the same (decimation 6 instead of 3); 600 keeps the test fast


def _row_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.reshape(len(a), -1) - a.reshape(len(a), -1).mean(1, keepdims=True)
    b = b.reshape(len(b), -1) - b.reshape(len(b), -1).mean(1, keepdims=True)
    return (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))


@pytest.fixture(scope="module")
def raw_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("megraw")
    bids = root / "ds004212"
    simulate_meg_dataset(bids, DESIGN, participant=1, seed=3, write_raw=True, raw_sfreq=RAW_SFREQ)
    for route, out in (("raw", "out_raw"), ("derivative", "out_derivative")):
        argv = ["preprocess", "meg", "--bids-root", str(bids), "--data-root", str(root / out), "--participant", "1",
                "--dtype", "float32"]  # fmt: skip
        if route == "raw":
            argv += ["--from", "raw", "--n-sessions", "2"]
        assert main(argv) == 0
    return root


def _pickles(root, out):
    sub = root / out / "Preprocessed_MEG_200Hz" / "sub-01"
    return [
        pickle.load(open(sub / f, "rb"))
        for f in ("preprocessed_meg_training.pkl", "preprocessed_meg_zs_test.pkl")
    ]


def test_raw_route_gives_the_derivative_layout_and_trials(raw_root):
    for raw, derivative in zip(_pickles(raw_root, "out_raw"), _pickles(raw_root, "out_derivative")):
        assert sorted(raw) == sorted(derivative) == ["ch_names", "meg_data", "times"]
        assert raw["meg_data"].shape == derivative["meg_data"].shape
        assert raw["ch_names"] == derivative["ch_names"] and "MRO11-1609" not in raw["ch_names"]
        np.testing.assert_array_equal(raw["times"], derivative["times"])
        r = _row_correlation(
            raw["meg_data"].reshape(-1, 271, 201), derivative["meg_data"].reshape(-1, 271, 201)
        )
        # Measured: min 0.995, mean 0.998 (the same design at 1200 Hz: 0.993, 0.998). Onsets shifted by one 600 Hz
        # sample give mean 0.994, by 5 ms 0.96, the trigger onsets (20 ms early) 0.61.
        assert r.min() > 0.98 and r.mean() > 0.996, (r.min(), r.mean())
    train, test = _pickles(raw_root, "out_raw")
    assert train["meg_data"].shape == (4, 2, 1, 271, 201) and test["meg_data"].shape == (2, 1, 12, 271, 201)
    for split in ("train", "test"):  # the release-format files agree too
        a, b = (split_file(raw_root / out / "Preprocessed_MEG_200Hz" / "sub-01", split)
                for out in ("out_raw", "out_derivative"))  # fmt: skip
        assert pickle.load(open(a, "rb"))["preprocessed_eeg_data"].shape == (
            pickle.load(open(b, "rb"))["preprocessed_eeg_data"].shape
        )


def test_epochs_from_bids_matches_the_derivative_epochs(raw_root):
    import mne

    bids = raw_root / "ds004212"
    epochs = epochs_from_bids(bids, 1, n_sessions=2)
    official = mne.read_epochs(bids / "derivatives/preprocessed/preprocessed_P1-epo.fif", verbose=False)
    assert epochs.get_data().shape == official.get_data().shape == (39, 271, 281)
    assert epochs.info["sfreq"] == 200.0 and epochs.info["highpass"] == 0.1 and epochs.info["lowpass"] == 40.0
    np.testing.assert_allclose(epochs.times, official.times, atol=1e-9)
    np.testing.assert_array_equal(
        epochs.events[:, 2], official.events[:, 2]
    )  # catch 'n/a' -> 999999, in order
    assert (epochs.events[:, 2] == 999999).sum() == 3
    assert (
        np.unique(epochs.events[:, 0]).size == 39
    )  # samples offset per run, as concatenate_epochs(add_offset)
    assert _row_correlation(epochs.get_data(), official.get_data()).min() > 0.98


def test_split_derivative_is_read_whole(tmp_path):
    whole, split = tmp_path / "whole", tmp_path / "split"
    simulate_meg_dataset(whole, DESIGN, participant=1, seed=5)
    desc = simulate_meg_dataset(split, DESIGN, participant=1, seed=5, split_size="4MB")
    files = sorted(p.name for p in (split / "derivatives" / "preprocessed").glob("*.fif"))
    assert desc["derivative_files"] == len(files) >= 3  # 39 x 271 x 281 float32 = 11.9 MB
    assert files[0] == "preprocessed_P1-epo-1.fif" and files[-1] == "preprocessed_P1-epo.fif"
    results = [preprocess_meg_subject(r, r / "out", 1, cache=False) for r in (whole, split)]
    assert results[0]["atm_shapes"] == results[1]["atm_shapes"] == {
        "train": [4, 2, 1, 271, 201], "test": [2, 1, 12, 271, 201]}  # fmt: skip
    for a, b in zip(_pickles(whole, "out"), _pickles(split, "out")):
        np.testing.assert_array_equal(a["meg_data"], b["meg_data"])


def _touch_run(root, ses, run, events=True):
    meg = root / "sub-BIGMEG1" / f"ses-{ses:02d}" / "meg"
    meg.mkdir(parents=True, exist_ok=True)
    stem = f"sub-BIGMEG1_ses-{ses:02d}_task-main_run-{run:02d}"
    (meg / f"{stem}_meg.fif").touch()
    if events:
        (meg / f"{stem}_events.tsv").write_text("onset\tduration\tvalue\tsample\n")


def test_missing_sessions_runs_and_events_are_named(tmp_path):
    with pytest.raises(MissingFileError, match="sub-BIGMEG1"):
        find_meg_runs(tmp_path, 1)
    _touch_run(tmp_path, 1, 1)
    _touch_run(tmp_path, 1, 2)
    _touch_run(tmp_path, 2, 1)
    assert [(r.session, r.run) for r in find_meg_runs(tmp_path, 1, n_sessions=0)] == [
        ("01", 1),
        ("01", 2),
        ("02", 1),
    ]
    with pytest.raises(MissingFileError, match=r"ses-03.*1 of the 3 expected sessions missing \(03\)"):
        find_meg_runs(tmp_path, 1, n_sessions=3)
    _touch_run(tmp_path, 2, 3)  # run-02 of session 2 missing
    with pytest.raises(MissingFileError, match=r"ses-02_task-main_run-02_meg.fif.*missing run\(s\) \[2\]"):
        find_meg_runs(tmp_path, 1, n_sessions=2)
    _touch_run(tmp_path, 2, 2, events=False)
    with pytest.raises(MissingFileError, match="ses-02_task-main_run-02_events.tsv"):
        find_meg_runs(tmp_path, 1, n_sessions=2)
    with pytest.raises(MissingFileError, match="no runs of task 'rest'"):
        find_meg_runs(tmp_path, 1, n_sessions=2, task="rest")


def test_channel_count_and_trigger_mismatch_are_named(raw_root, tmp_path):
    bids = raw_root / "ds004212"
    with pytest.raises(DataFormatError, match=r"ses-01_task-main_run-01_meg.fif.*expected 271; found 272"):
        epochs_from_bids(bids, 1, n_sessions=2, drop_channels=())  # the malfunctioning sensor kept
    with pytest.raises(
        DataFormatError, match=r"run-01_meg.fif: sampling rate.*multiple of 250 Hz; found 600 Hz"
    ):
        epochs_from_bids(bids, 1, n_sessions=2, output_sfreq=250.0)
    # one run copied with the last row of its events.tsv removed: 9 or 10 rows against one more trigger
    meg = tmp_path / "sub-BIGMEG1" / "ses-01" / "meg"
    meg.mkdir(parents=True)
    for f in (bids / "sub-BIGMEG1" / "ses-01" / "meg").glob("*"):
        if "run-02" not in f.name:
            shutil.copy(f, meg / f.name)
    for name in ("dataset_description.json", "participants.tsv"):
        shutil.copy(bids / name, tmp_path / name)
    events = meg / "sub-BIGMEG1_ses-01_task-main_run-01_events.tsv"
    lines = events.read_text().splitlines()
    events.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(
        DataFormatError, match=rf"run-01_events.tsv.*expected {len(lines) - 1} rows; found {len(lines) - 2}"
    ):
        epochs_from_bids(tmp_path, 1, n_sessions=1)


def test_decimation_factor_and_simulator_rate():
    assert [decimation_factor(f) for f in (1200.0, 600.0, 200.0)] == [6, 3, 1]
    for bad in (250.0, 1000.0 / 3, 100.0):
        with pytest.raises(DataFormatError, match=r"run.ds: sampling rate"):
            decimation_factor(bad, path="run.ds")
    with pytest.raises(ValueError, match="raw_sfreq"):
        simulate_meg_dataset("unused", DESIGN, write_raw=True, raw_sfreq=250.0)


def test_read_events_tsv(tmp_path):
    f = tmp_path / "events.tsv"
    f.write_text(
        "onset\tduration\ttrial_type\tvalue\tsample\n1.0\t0.5\texp\t7\t1201\n2.5\t0.5\tcatch\tn/a\t3000\n"
    )
    assert read_events_tsv(f, 1200.0, 5000).tolist() == [
        [1201, 7],
        [3000, 999999],
    ]  # 'sample' wins over 'onset'
    f.write_text("onset\tvalue\n1.0\t7.0\n2.5\t\n")
    assert read_events_tsv(f, 600.0, 5000).tolist() == [[600, 7], [1500, 999999]]  # no 'sample': onset x rate
    f.write_text("onset\tvalue\n1.0\tcat\n")
    with pytest.raises(DataFormatError, match="events.tsv: line 2: not a number"):
        read_events_tsv(f, 600.0, 5000)
    f.write_text("onset\tvalue\n9.0\t3\n")
    with pytest.raises(
        DataFormatError, match=r"line 2: onset sample outside the run; expected 0 ... 4999; found 5400"
    ):
        read_events_tsv(f, 600.0, 5000)
    f.write_text("onset\tsample\n1.0\t600\n")
    with pytest.raises(DataFormatError, match="'value'"):
        read_events_tsv(f, 600.0, 5000)


def test_replace_dropout_uses_channel_medians():
    import mne

    rng = np.random.default_rng(0)
    data = rng.normal(size=(2, 1200 * 20))
    raw = mne.io.RawArray(data.copy(), mne.create_info(["a", "b"], 1200.0, "mag"), verbose=False)
    replace_dropout(raw, 13.4)
    out = raw.get_data()
    # the official patch: int(0.2 / (1 / 1200)) = 240 samples from the sample nearest 13.4 s (16080)
    changed = np.flatnonzero((out != data).any(0))
    assert changed.tolist() == list(range(16080, 16320))
    np.testing.assert_array_equal(out[:, 16080:16320], np.repeat(np.median(data, 1)[:, None], 240, 1))
