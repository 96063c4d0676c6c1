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
    assert sorted(p.name for p in cache_dir.iterdir()) == ["meta.json", "prepare.lock", "test.npy", "train.npy"]
    open_cache(cache_dir)  # the rebuilt arrays agree with their sidecar
