"""The memory-mapped cache: conversion, round trip, staleness, dtype/shape checks, no half-written files."""

import os
import shutil

import numpy as np
import pytest

from eegdecode.data.cache import cache_status, open_cache, prepare_subject
from eegdecode.data.paths import DatasetPaths
from eegdecode.data.things_eeg2 import read_preprocessed_file
from eegdecode.errors import DataFormatError


@pytest.fixture
def subject_copy(tiny_root, tmp_path):
    src = DatasetPaths(tiny_root).subject_dir(1)
    dst = tmp_path / "Preprocessed_data_250Hz" / "sub-01"
    shutil.copytree(src, dst)
    return dst


def test_prepare_round_trip_float16_and_float32(subject_copy, tmp_path):
    ref = read_preprocessed_file(subject_copy / "preprocessed_eeg_training.npy")
    for dtype, tol in (("float16", 2e-3), ("float32", 1e-6)):
        cache_dir = tmp_path / f"cache_{dtype}"
        meta = prepare_subject(subject_copy, cache_dir, dtype=dtype)
        cache = open_cache(cache_dir, dtype)
        assert isinstance(cache.train, np.memmap) and cache.train.dtype == dtype
        assert list(cache.train.shape) == meta["shapes"]["train"] == list(ref.shape)
        assert cache.times.size == 250 and cache.times[0] == 0.0
        np.testing.assert_allclose(
            cache.train.astype(np.float64), ref.data, rtol=tol, atol=tol * np.abs(ref.data).max()
        )
        assert not [p for p in cache_dir.iterdir() if p.name.startswith(".")]


def test_up_to_date_cache_is_not_rebuilt_and_stale_cache_is(subject_copy, tmp_path):
    cache_dir = tmp_path / "cache"
    prepare_subject(subject_copy, cache_dir)
    mtime = (cache_dir / "train.npy").stat().st_mtime_ns
    assert cache_status(subject_copy, cache_dir, "float16") == "ok"
    prepare_subject(subject_copy, cache_dir)
    assert (cache_dir / "train.npy").stat().st_mtime_ns == mtime
    # The source changes (a new preprocessing run): the cache is stale and gets rebuilt.
    src = subject_copy / "preprocessed_eeg_test.npy"
    os.utime(src, ns=(src.stat().st_atime_ns, src.stat().st_mtime_ns + 10**9))
    assert cache_status(subject_copy, cache_dir, "float16") == "stale"
    prepare_subject(subject_copy, cache_dir)
    assert cache_status(subject_copy, cache_dir, "float16") == "ok"
    assert cache_status(subject_copy, cache_dir, "float32") == "other-dtype"


def test_cache_with_wrong_dtype_or_shape_is_refused(subject_copy, tmp_path):
    cache_dir = tmp_path / "cache"
    prepare_subject(subject_copy, cache_dir)
    with pytest.raises(DataFormatError, match="another dtype.*expected float32.*found float16"):
        open_cache(cache_dir, "float32")
    np.save(cache_dir / "test.npy", np.zeros((2, 2, 63, 250), dtype=np.float16))
    with pytest.raises(DataFormatError, match=r"test.npy: array shape disagrees"):
        open_cache(cache_dir)


def test_a_test_file_that_fails_validation_leaves_no_array(subject_copy, tmp_path):
    """Both splits convert into temporaries first: a bad test file leaves neither train.npy nor test.npy."""
    from eegdecode.data.things_eeg2 import write_preprocessed_file

    test_path = subject_copy / "preprocessed_eeg_test.npy"
    good = read_preprocessed_file(test_path)
    data = good.data.copy()
    data[0, 0, 0, 0] = np.nan
    write_preprocessed_file(test_path, data, good.ch_names, good.times)
    cache_dir = tmp_path / "cache"
    with pytest.raises(DataFormatError, match="NaN"):
        prepare_subject(subject_copy, cache_dir)
    assert sorted(p.name for p in cache_dir.iterdir()) == ["prepare.lock"]


def test_leftovers_of_a_killed_build_are_removed(subject_copy, tmp_path):
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    leftover = cache_dir / ".train.npy.abc123.npy"  # what a kill inside the conversion leaves
    leftover.write_bytes(b"\0" * 1024)
    orphan = cache_dir / "test.npy"  # an array without its sidecar
    orphan.write_bytes(b"\0" * 16)
    prepare_subject(subject_copy, cache_dir)
    assert not leftover.exists()
    assert sorted(p.name for p in cache_dir.iterdir()) == [
        "meta.json",
        "prepare.lock",
        "test.npy",
        "train.npy",
    ]
    open_cache(cache_dir)  # the rebuilt arrays agree with their sidecar


# VmHWM, not getrusage: ru_maxrss keeps the high-water mark of the forking parent (pytest) across exec.
PREPARE_PEAK = """
import json, sys
from eegdecode.data.cache import prepare_subject

def status_mb(key):
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return int(fields[key].split()[0]) / 1024

before = status_mb("VmRSS")
prepare_subject(sys.argv[1], sys.argv[2])
print(json.dumps({"before_mb": before, "peak_mb": status_mb("VmHWM")}))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_prepare_peak_memory_stays_far_below_the_float64_array(tmp_path):
    """A 403 MB float64 training pickle converts with well under its size of extra resident memory (mapped,
    block by block), where loading it whole would add at least 403 MB."""
    import json
    import pickle
    import subprocess
    import sys
    from pathlib import Path

    from eegdecode.data.channels import THINGS_EEG2_CHANNELS
    from eegdecode.data.things_eeg2 import write_preprocessed_file

    subject = tmp_path / "sub-01"
    subject.mkdir()
    times = np.round(np.arange(-50, 250) / 250.0, 6)
    base = np.random.default_rng(0).normal(size=(8, 4, 63, 250))
    train = np.tile(base, (100, 1, 1, 1))  # (800, 4, 63, 250) float64
    assert train.nbytes > 400e6
    obj = {"preprocessed_eeg_data": train, "ch_names": list(THINGS_EEG2_CHANNELS), "times": times}
    with open(subject / "preprocessed_eeg_training.npy", "wb") as f:
        pickle.dump(obj, f, protocol=4)
    del obj, train
    write_preprocessed_file(
        subject / "preprocessed_eeg_test.npy", base[:2], list(THINGS_EEG2_CHANNELS), times
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", PREPARE_PEAK, str(subject), str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    mem = json.loads(out.stdout.strip().splitlines()[-1])
    extra = mem["peak_mb"] - mem["before_mb"]
    assert extra < 150, mem
    cache = open_cache(tmp_path / "cache")
    np.testing.assert_allclose(
        cache.train[::97].astype(np.float64), np.tile(base, (100, 1, 1, 1))[::97], atol=2e-3
    )


def test_mapped_conversion_names_a_nan_in_a_later_block(tmp_path):
    """The conversion checks each block as it goes: the index in the message is the index in the whole array."""
    from eegdecode.data.cache import _convert_split
    from eegdecode.data.channels import THINGS_EEG2_CHANNELS
    from eegdecode.data.things_eeg2 import write_preprocessed_file

    data = np.random.default_rng(3).normal(size=(12, 4, 63, 250))
    data[7, 2, 40, 3] = np.nan
    src = write_preprocessed_file(
        tmp_path / "x.npy", data, list(THINGS_EEG2_CHANNELS), np.round(np.arange(-50, 250) / 250.0, 6)
    )
    with pytest.raises(DataFormatError, match=r"NaN at index \(7, 2, 40, 3\)"):
        _convert_split(src, tmp_path / "out.npy", "float16", chunk=2)
    data[7, 2, 40, 3] = 0.0
    write_preprocessed_file(src, data, list(THINGS_EEG2_CHANNELS), np.round(np.arange(-50, 250) / 250.0, 6))
    part = _convert_split(src, tmp_path / "out.npy", "float32", chunk=5)
    assert part["shape"] == [12, 4, 63, 250]
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), data.astype(np.float32))


def test_atomic_writes_get_the_usual_file_mode(tmp_path):
    """mkstemp makes 0600 files; results must be readable as any file the user writes (0666 minus umask)."""
    from eegdecode.io import _UMASK, write_json

    path = write_json(tmp_path / "r.json", {"a": 1})
    assert (path.stat().st_mode & 0o777) == 0o666 & ~_UMASK


def test_a_cache_only_subject_is_used_when_both_source_files_were_deleted(subject_copy, tmp_path):
    from eegdecode.data.cache import ensure_cache
    from eegdecode.errors import MissingFileError

    cache_dir = tmp_path / "cache"
    built = ensure_cache(subject_copy, cache_dir)
    train = np.asarray(built.train).copy()
    # Deleting both pickles (to save disk) keeps the subject usable from its cache ...
    for name in ("preprocessed_eeg_training.npy", "preprocessed_eeg_test.npy"):
        (subject_copy / name).unlink()
    np.testing.assert_array_equal(np.asarray(ensure_cache(subject_copy, cache_dir).train), train)
    # ... but one pickle left alone is a damaged subject folder, and is refused, naming the missing file.
    shutil.rmtree(cache_dir)
    (subject_copy / "preprocessed_eeg_test.npy").write_bytes(b"")
    with pytest.raises(MissingFileError, match="preprocessed_eeg_training.npy"):
        ensure_cache(subject_copy, tmp_path / "cache2")


def test_prepare_keeps_a_cache_only_subject_and_refuses_to_rebuild_it(subject_copy, tmp_path):
    from eegdecode.errors import MissingFileError

    cache_dir = tmp_path / "cache"
    meta = prepare_subject(subject_copy, cache_dir)
    for name in ("preprocessed_eeg_training.npy", "preprocessed_eeg_test.npy"):
        (subject_copy / name).unlink()
    assert prepare_subject(subject_copy, cache_dir) == meta
    with pytest.raises(MissingFileError, match="source files were deleted"):
        prepare_subject(subject_copy, cache_dir, force=True)
    with pytest.raises(MissingFileError, match="as float32"):
        prepare_subject(subject_copy, cache_dir, "float32")


def test_gather_reads_the_same_values_as_indexing_the_mapping(tmp_path):
    """Positional reads of a mapped .npy give exactly what fancy indexing gives: rows (images), single trials
    (images and repetitions, in any order, repeated), empty selections; views and plain arrays are indexed."""
    from eegdecode.data.cache import _preadable, gather

    data = np.random.default_rng(0).normal(size=(9, 3, 4, 5)).astype(np.float16)
    np.save(tmp_path / "a.npy", data)
    arr = np.load(tmp_path / "a.npy", mmap_mode="r")
    assert _preadable(arr) and not _preadable(arr[2:]) and not _preadable(data)
    images, reps = np.array([8, 0, 3, 3, 5]), np.array([2, 0, 1, 1, 2])
    for a in (arr, data, arr[:]):
        for got, want in ((gather(a, images), data[images]), (gather(a, images, reps), data[images, reps]),
                          (gather(a, images[:0], reps[:0]), data[images[:0], reps[:0]])):  # fmt: skip
            assert got.dtype == np.float16 and got.shape == want.shape and np.array_equal(got, want)
    view = arr[2:]
    assert np.array_equal(
        gather(view, np.array([0, 6])), data[[2, 8]]
    )  # a view's own offsets, not the file's
    with pytest.raises(IndexError, match="out of range"):
        gather(arr, np.array([9]))
    with pytest.raises(IndexError, match="out of range"):
        gather(arr, np.array([0]), np.array([3]))


def test_gather_names_a_truncated_file(tmp_path):
    from eegdecode.data.cache import gather

    np.save(tmp_path / "a.npy", np.zeros((4, 2, 3), dtype=np.float32))
    arr = np.load(tmp_path / "a.npy", mmap_mode="r")
    size = os.path.getsize(tmp_path / "a.npy")
    os.truncate(
        tmp_path / "a.npy", size - 8
    )  # the mapping was made before: only the reads see the short file
    assert np.array_equal(gather(arr, np.array([0, 2])), np.zeros((2, 2, 3)))
    with pytest.raises(DataFormatError, match="a.npy: the file ends before"):
        gather(arr, np.array([3]))


def test_cache_arrays_get_the_usual_file_mode(subject_copy, tmp_path):
    """The cache's arrays go through mkstemp (0600) too; they must end with the mode of any file the user writes."""
    from eegdecode.io import _UMASK

    cache_dir = tmp_path / "cache"
    prepare_subject(subject_copy, cache_dir)
    for name in ("train.npy", "test.npy", "meta.json"):
        assert ((cache_dir / name).stat().st_mode & 0o777) == 0o666 & ~_UMASK, name
