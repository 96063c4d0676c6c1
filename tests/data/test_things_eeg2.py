"""Reader of the pickled THINGS-EEG2 files: real layout, quirks, and errors that name the problem."""

import pickle

import numpy as np
import pytest

from eegdecode.data.channels import POSTERIOR_17, REGIONS, THINGS_EEG2_CHANNELS, resolve_channels
from eegdecode.data.things_eeg2 import read_preprocessed_file, write_preprocessed_file
from eegdecode.errors import DataFormatError, MissingFileError

TIMES_300 = np.round(np.arange(-50, 250) / 250.0, 6)


def _write(path, data=None, ch_names=None, times=None, **extra):
    data = np.random.default_rng(0).normal(size=(6, 2, 63, 250)) if data is None else data
    obj = {
        "preprocessed_eeg_data": data,
        "ch_names": list(THINGS_EEG2_CHANNELS) if ch_names is None else ch_names,
        "times": TIMES_300 if times is None else times,
        **extra,
    }
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=4)
    return path


def test_reads_250hz_layout_and_drops_first_50_times(tmp_path):
    eeg = read_preprocessed_file(_write(tmp_path / "preprocessed_eeg_training.npy"))
    assert eeg.shape == (6, 2, 63, 250)
    assert eeg.data.dtype == np.float64
    assert eeg.times.size == 250 and eeg.times[0] == 0.0 and eeg.times[-1] == pytest.approx(0.996)
    assert eeg.sfreq == 250.0
    assert eeg.ch_names == list(THINGS_EEG2_CHANNELS)


def test_reads_gifford_np_save_dict_100hz(tmp_path):
    path = tmp_path / "preprocessed_eeg_test.npy"
    data = np.zeros((3, 5, 17, 100))
    np.save(
        path,
        {"preprocessed_eeg_data": data, "ch_names": list(POSTERIOR_17), "times": np.arange(-20, 80) / 100},
    )
    eeg = read_preprocessed_file(path)
    assert eeg.shape == (3, 5, 17, 100) and eeg.sfreq == 100.0 and eeg.times[0] == pytest.approx(-0.2)


def test_writer_round_trip(tmp_path):
    data = np.random.default_rng(1).normal(size=(4, 3, 63, 250))
    path = write_preprocessed_file(tmp_path / "x.npy", data, list(THINGS_EEG2_CHANNELS), TIMES_300)
    raw = np.load(path, allow_pickle=True)  # exactly how the original loaders read it
    raw = raw.item() if isinstance(raw, np.ndarray) else raw
    assert sorted(raw) == ["ch_names", "preprocessed_eeg_data", "times"]
    np.testing.assert_array_equal(raw["preprocessed_eeg_data"], data)
    assert len(raw["times"]) == 300
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"ch_names": list(THINGS_EEG2_CHANNELS[:-1])}, "disagrees with the data's channel axis"),
        ({"ch_names": [*THINGS_EEG2_CHANNELS[:-1], "XYZ"]}, "unknown channel names"),
        ({"times": TIMES_300[::-1]}, "not strictly increasing"),
        ({"times": TIMES_300[:100]}, "shorter than the data"),
        ({"data": np.zeros((6, 63, 250))}, "wrong shape"),
    ],
)
def test_bad_files_name_file_expected_and_found(tmp_path, kwargs, message):
    path = _write(tmp_path / "bad.npy", **kwargs)
    with pytest.raises(DataFormatError, match=message) as err:
        read_preprocessed_file(path)
    assert str(path) in str(err.value) and "expected" in str(err.value) and "found" in str(err.value)


def test_missing_key_and_nan_and_missing_file(tmp_path):
    path = tmp_path / "nokey.npy"
    with open(path, "wb") as f:
        pickle.dump({"preprocessed_eeg_data": np.zeros((1, 1, 63, 250)), "times": TIMES_300}, f)
    with pytest.raises(DataFormatError, match="missing keys \\['ch_names'\\]"):
        read_preprocessed_file(path)
    data = np.zeros((3, 2, 63, 250))
    data[2, 1, 5, 7] = np.nan
    with pytest.raises(DataFormatError, match=r"NaN at index \(2, 1, 5, 7\)"):
        read_preprocessed_file(_write(tmp_path / "nan.npy", data=data))
    with pytest.raises(MissingFileError, match="not found"):
        read_preprocessed_file(tmp_path / "absent.npy")


def test_channel_subsets():
    chans = list(THINGS_EEG2_CHANNELS)
    assert resolve_channels("all", chans) == list(range(63))
    post = resolve_channels("posterior17", chans)
    assert [chans[i] for i in post] == list(POSTERIOR_17)
    assert sum(len(v) for v in REGIONS.values()) == 63
    assert sorted(c for v in REGIONS.values() for c in v) == sorted(chans)
    occ = resolve_channels("occipital", chans)
    assert [chans[i] for i in occ] == ["PO7", "PO3", "POz", "PO4", "PO8", "O1", "Oz", "O2"]
    assert resolve_channels(["oz", "Fp1"], chans) == [chans.index("Oz"), 0]
    assert resolve_channels("O1,O2", chans) == [60, 62]
    with pytest.raises(ValueError, match=r"\['Fz'\] are not in the data"):
        resolve_channels(["Fz"], chans)
