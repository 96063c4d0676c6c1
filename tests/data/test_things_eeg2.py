"""Reader of the pickled THINGS-EEG2 files: real layout, quirks, and errors that name the problem."""

import pickle

import numpy as np
import pytest

from eegdecode.data.channels import POSTERIOR_17, REGIONS, THINGS_EEG2_CHANNELS, resolve_channels
from eegdecode.data.things_eeg2 import (
    check_finite,
    load_pickled_dict_mapped,
    read_preprocessed_file,
    write_preprocessed_file,
)
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


# -- the mapped reader (prepare reads the array bytes from the file instead of loading them) -----------------------


def _big(seed=2, n=12):
    """A (n, 4, 63, 250) float64 array: 6 MiB for n=12, above MAP_MIN_BYTES."""
    return np.random.default_rng(seed).normal(size=(n, 4, 63, 250))


def _np_load_data(path):
    raw = np.load(path, allow_pickle=True)
    raw = raw.item() if isinstance(raw, np.ndarray) else raw
    return raw["preprocessed_eeg_data"]


@pytest.mark.parametrize("protocol", [4, 5])
@pytest.mark.parametrize("writer", ["write_preprocessed_file", "pickle.dump"])
def test_mapped_array_equals_np_load(tmp_path, protocol, writer):
    data = _big()
    path = tmp_path / "preprocessed_eeg_training.npy"
    if writer == "write_preprocessed_file":
        write_preprocessed_file(path, data, list(THINGS_EEG2_CHANNELS), TIMES_300, protocol=protocol)
    else:
        obj = {"preprocessed_eeg_data": data, "ch_names": list(THINGS_EEG2_CHANNELS), "times": TIMES_300}
        with open(path, "wb") as f:
            pickle.dump(obj, f, protocol=protocol)
    eeg = read_preprocessed_file(path, mmap=True)
    assert isinstance(eeg.data, np.memmap) and not eeg.data.flags.writeable
    np.testing.assert_array_equal(eeg.data, _np_load_data(path))
    np.testing.assert_array_equal(eeg.data, data)
    assert eeg.ch_names == list(THINGS_EEG2_CHANNELS) and eeg.times.size == 250 and eeg.sfreq == 250.0


@pytest.mark.parametrize("variant", ["fortran", "big-endian", "float32"])
def test_mapped_array_keeps_order_and_dtype_of_the_pickle(tmp_path, variant):
    data = {
        "fortran": np.asfortranarray(_big()),
        "big-endian": _big().astype(">f8"),
        "float32": _big().astype(np.float32),
    }[variant]
    path = _write(tmp_path / "x.npy", data=data)
    mapped = load_pickled_dict_mapped(path)["preprocessed_eeg_data"]
    assert isinstance(mapped, np.memmap) and mapped.dtype == data.dtype
    assert mapped.flags.f_contiguous == data.flags.f_contiguous
    np.testing.assert_array_equal(mapped, data)


def test_mapped_reader_reads_gifford_np_save_dict(tmp_path):
    path = tmp_path / "preprocessed_eeg_test.npy"
    data = _big(n=40)[:, :, :17, :100].copy()  # 100 Hz / 17 channels, 2 MiB
    np.save(
        path,
        {"preprocessed_eeg_data": data, "ch_names": list(POSTERIOR_17), "times": np.arange(-20, 80) / 100},
    )
    eeg = read_preprocessed_file(path, mmap=True)
    assert isinstance(eeg.data, np.memmap)
    np.testing.assert_array_equal(eeg.data, data)


def test_mapped_reader_falls_back_to_reading_whole(tmp_path, caplog):
    data = _big()
    obj = {"preprocessed_eeg_data": data, "ch_names": list(THINGS_EEG2_CHANNELS), "times": TIMES_300}
    # Protocol 2 pickles bytes through a function call, not as a payload: the array is read, with a log line.
    old = tmp_path / "protocol2.npy"
    with open(old, "wb") as f:
        pickle.dump(obj, f, protocol=2)
    with caplog.at_level("INFO", logger="eegdecode.data.things_eeg2"):
        eeg = read_preprocessed_file(old, mmap=True)
    assert not isinstance(eeg.data, np.memmap)
    np.testing.assert_array_equal(eeg.data, data)
    assert "'preprocessed_eeg_data' is not mapped" in caplog.text
    # A large payload that no array uses (raw bytes among the values): read whole with np.load, with a log line.
    raw = _write(tmp_path / "raw.npy", data=data, blob=bytes(2 << 20))
    assert load_pickled_dict_mapped(raw) is None
    with caplog.at_level("INFO", logger="eegdecode.data.things_eeg2"):
        eeg = read_preprocessed_file(raw, mmap=True)
    assert not isinstance(eeg.data, np.memmap)
    np.testing.assert_array_equal(eeg.data, data)
    assert "not a pickled dict of mappable arrays; reading it whole" in caplog.text
    # A pickle that is not a dict: same error as the normal reader.
    listed = tmp_path / "list.npy"
    with open(listed, "wb") as f:
        pickle.dump([data], f, protocol=4)
    assert load_pickled_dict_mapped(listed) is None
    with pytest.raises(DataFormatError, match="wrong content.*found list"):
        read_preprocessed_file(listed, mmap=True)
    # An object array among the values is unpickled as usual; the data are still mapped.
    odd = _write(tmp_path / "odd.npy", data=data, extra=np.array([{"a": 1}, None], dtype=object))
    loaded = load_pickled_dict_mapped(odd)
    assert isinstance(loaded["preprocessed_eeg_data"], np.memmap) and loaded["extra"][0] == {"a": 1}
    # A truncated file is reported by the normal reader.
    cut = tmp_path / "cut.npy"
    cut.write_bytes(_write(tmp_path / "whole.npy", data=data).read_bytes()[:-3000])
    with pytest.raises(DataFormatError, match="cannot be read as a pickled dict"):
        read_preprocessed_file(cut, mmap=True)


def test_mapped_reader_finds_nan_in_a_later_block(tmp_path):
    data = _big()
    data[9, 3, 62, 249] = np.inf
    path = _write(tmp_path / "inf.npy", data=data)
    with pytest.raises(DataFormatError, match=r"Inf at index \(9, 3, 62, 249\)"):
        read_preprocessed_file(path, mmap=True)
    eeg = read_preprocessed_file(path, mmap=True, check_values=False)
    with pytest.raises(DataFormatError, match=r"Inf at index \(9, 3, 62, 249\)"):
        check_finite(eeg.data, path, chunk=2)


def test_mapped_reader_reads_binbytes8_payloads(tmp_path):
    """The release's 7.76 GiB training array is pickled (protocol 4) as BINBYTES8, the opcode for payloads over
    4 GiB; here a small payload is re-encoded with that opcode to cover it."""
    import pickletools
    import struct

    data = _big()
    obj = {"preprocessed_eeg_data": data, "ch_names": list(THINGS_EEG2_CHANNELS), "times": TIMES_300}
    blob = pickle.dumps(obj, protocol=4)
    ops = list(pickletools.genops(blob))
    at = next(pos for op, arg, pos in ops if op.name == "BINBYTES" and len(arg) == data.nbytes)
    frame = max(pos for op, arg, pos in ops if op.name == "FRAME" and pos < at)
    (size,) = struct.unpack("<Q", blob[frame + 1 : frame + 9])
    assert frame + 9 + size == at  # the frame closes before the opcode: opcode and payload are unframed
    blob = blob[:at] + b"\x8e" + struct.pack("<Q", data.nbytes) + blob[at + 5 :]
    path = tmp_path / "binbytes8.npy"
    path.write_bytes(blob)
    assert any(op.name == "BINBYTES8" for op, _, _ in pickletools.genops(blob))
    np.testing.assert_array_equal(_np_load_data(path), data)
    eeg = read_preprocessed_file(path, mmap=True)
    assert isinstance(eeg.data, np.memmap)
    np.testing.assert_array_equal(eeg.data, data)
