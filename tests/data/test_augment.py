"""EEG smoothing augmentation (``DataOptions.augment``): known answers, a fixed seeded choice of trials, the same
samples in every epoch and from both batch sources, p = 0 as no augmentation, one-line errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from eegdecode.data.augment import Smoothing, moving_average, parse_augment
from eegdecode.data.datasets import DataOptions, SubjectData, TrialDataset, make_folds
from eegdecode.data.paths import DatasetPaths
from eegdecode.errors import ConfigError
from eegdecode.training.batches import make_batch_source
from eegdecode.training.config import TrainConfig
from eegdecode.training.trainer import load_fold_data

SMOOTH = {"smooth": {"kernel": 5, "p": 0.3}}


def _loop_reference(x: np.ndarray, kernel: int) -> np.ndarray:
    """The moving average written as a loop over time: the mean of the samples within kernel // 2 that exist."""
    out = np.empty_like(x)
    h = kernel // 2
    for t in range(x.shape[-1]):
        out[..., t] = x[..., max(0, t - h) : t + h + 1].mean(axis=-1)
    return out


def test_moving_average_known_answer_and_edges():
    x = np.arange(1.0, 7.0)
    np.testing.assert_array_equal(moving_average(x, 5), [2.0, 2.5, 3.0, 4.0, 4.5, 5.0])
    np.testing.assert_array_equal(moving_average(x, 3), [1.5, 2.0, 3.0, 4.0, 5.0, 5.5])
    np.testing.assert_array_equal(moving_average(x, 1), x)
    # a kernel wider than the signal averages everything that exists
    np.testing.assert_array_equal(moving_average(np.array([1.0, 3.0]), 7), [2.0, 2.0])
    rng = np.random.default_rng(0)
    y = rng.standard_normal((3, 4, 50))
    np.testing.assert_allclose(moving_average(y, 5), _loop_reference(y, 5), rtol=0, atol=1e-12)
    assert moving_average(y.astype(np.float16), 5).dtype == np.float16
    with pytest.raises(ValueError, match="odd"):
        moving_average(y, 4)


def test_smoothing_choice_is_seeded_fixed_and_independent_of_the_batch():
    s = Smoothing(5, 0.3, seed=0)
    images, reps, ch = np.repeat(np.arange(500), 4), np.tile(np.arange(4), 500), np.arange(63)
    mask = s.chosen("sub-01", images, reps, ch)
    assert mask.shape == (2000, 63) and mask.dtype == bool
    assert abs(mask.mean() - 0.3) < 0.01  # 126,000 draws: sd 0.0013
    # the same answer for any subset, order and channel selection of the same (image, rep, channel)
    pick = np.array([1999, 3, 700, 3])
    np.testing.assert_array_equal(
        s.chosen("sub-01", images[pick], reps[pick], ch[[5, 40]]), mask[pick][:, [5, 40]]
    )
    np.testing.assert_array_equal(s.chosen("sub-01", images, reps, ch), mask)
    # another seed, subject, repetition or the repetition mean: another draw
    for other in (
        Smoothing(5, 0.3, seed=1).chosen("sub-01", images, reps, ch),
        s.chosen("sub-02", images, reps, ch),
        s.chosen("sub-01", images, (reps + 1) % 4, ch),
        s.chosen("sub-01", images, None, ch),
    ):
        assert 0.1 < (other != mask).mean() < 0.6
    assert not Smoothing(5, 0.0).chosen("sub-01", images, reps, ch).any()
    assert Smoothing(5, 1.0).chosen("sub-01", images, reps, ch).all()


def test_apply_smooths_the_chosen_channels_only():
    rng = np.random.default_rng(1)
    block = rng.standard_normal((6, 4, 30)).astype(np.float32)
    chosen = np.zeros((6, 4), dtype=bool)
    chosen[0, 1] = chosen[5, 3] = True
    out = Smoothing(5, 0.3).apply(block, chosen)
    np.testing.assert_array_equal(out[~chosen], block[~chosen])
    np.testing.assert_allclose(out[chosen], _loop_reference(block[chosen], 5), atol=1e-6)
    assert out is not block and not np.array_equal(out, block)
    # float16 trials: smoothed in float32, rounded once to float16; a float32 read rounded the same agrees
    half = Smoothing(5, 0.3).apply(block.astype(np.float16), chosen)
    full = Smoothing(5, 0.3).apply(block.astype(np.float16).astype(np.float32), chosen, np.float16)
    np.testing.assert_array_equal(half.astype(np.float32), full)
    assert Smoothing(5, 0.3).apply(block, np.zeros((6, 4), dtype=bool)) is block


@pytest.mark.parametrize(
    "value, message",
    [
        ("smooth", "expected a mapping"),
        ({"blur": {}}, r"the keys \['smooth'\]; found \['blur'\]"),
        ({"smooth": 5}, "smooth to be a mapping"),
        ({"smooth": {"kernel": 5}}, "keys kernel, p"),
        ({"smooth": {"kernel": 5, "p": 0.3, "q": 1}}, "keys kernel, p"),
        ({"smooth": {"kernel": 4, "p": 0.3}}, "odd integer >= 1"),
        ({"smooth": {"kernel": 5.0, "p": 0.3}}, "odd integer >= 1"),
        ({"smooth": {"kernel": 5, "p": 1.5}}, "0 <= p <= 1; found 1.5"),
        ({"smooth": {"kernel": 5, "p": 0.3, "seed": -1}}, "seed an integer >= 0"),
    ],
)
def test_bad_options_are_one_line_naming_data_augment(value, message):
    with pytest.raises(ConfigError, match=message) as err:
        DataOptions(augment=value)
    assert str(err.value).startswith("Invalid value for data.augment: ") and "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="data.augment"):
        TrainConfig.from_dict({"model": "EEGProject", "data": {"augment": value}})


def test_options_are_written_out_in_full():
    assert parse_augment(None) is None and parse_augment({}) is None and DataOptions().augment is None
    full = {"smooth": {"kernel": 5, "p": 0.3, "seed": 0}}
    assert DataOptions(augment=SMOOTH).augment == full
    cfg = TrainConfig.from_dict({"model": "EEGProject", "data": {"augment": SMOOTH}})
    assert cfg.to_dict()["data"]["augment"] == full
    assert TrainConfig.from_dict(cfg.to_dict()).data == cfg.data


# ------------------------------------------------------------------------------------------------------------
# On the simulated data set: both batch sources, epochs, units, validation untouched
# ------------------------------------------------------------------------------------------------------------

BASE = DataOptions(channels="posterior17", time_window=(0.0, 0.3), val_fraction=0.1)


def _dataset(root, unit, augment, subjects=(1, 2)):
    cfg = TrainConfig(model="EEGProject", device="cpu", data=dataclasses.replace(BASE, train_unit=unit,
                                                                                  augment=augment))  # fmt: skip
    protocol = "joint" if len(subjects) > 1 else "intra"
    fd = load_fold_data(DatasetPaths(root), make_folds(protocol, list(subjects))[0], cfg)
    layers = list(range(len(subjects)))
    return fd, TrialDataset(
        fd.train_subjects, fd.train_images, fd.image_concept, layers, unit, keep_dtype=True
    )


def _by_sample(source, epoch):
    out = {}
    for b in source.epoch(epoch):
        for i, row in zip(b.sample.tolist(), b.eeg, strict=True):
            out[i] = row
    return out


@pytest.mark.parametrize("unit", ["trial", "average"])
def test_the_same_samples_are_smoothed_in_every_epoch_and_by_both_sources(tiny_root, unit):
    cpu = torch.device("cpu")
    fd, ds = _dataset(tiny_root, unit, SMOOTH)
    _, plain = _dataset(tiny_root, unit, None)
    dev, host = make_batch_source("device", ds, 64, 3, cpu), make_batch_source("host", ds, 64, 3, cpu)
    for epoch in (0, 1):
        for a, b in zip(dev.epoch(epoch), host.epoch(epoch), strict=True):
            assert torch.equal(a.eeg, b.eeg) and torch.equal(a.sample, b.sample)
    first, second = _by_sample(host, 0), _by_sample(host, 1)
    assert first.keys() == second.keys() and len(first) > 0.9 * len(ds)
    assert all(torch.equal(first[i], second[i]) for i in first)
    # each sample: the chosen channels smoothed (after the repetition average), the others as read
    idx = np.array(sorted(first))
    got = torch.stack([first[i] for i in idx]).numpy()
    raw = plain.__getitems__(idx)["eeg"].float().numpy()
    rows = ds.index[idx]
    changed = np.zeros(raw.shape[:2], dtype=bool)
    for si, s in enumerate(ds.subjects):
        sel = rows[:, 0] == si
        reps = None if unit == "average" else rows[sel, 2]
        chosen = s.augment.chosen(s.name, rows[sel, 1], reps, s.ch_idx)
        want = np.where(chosen[..., None], moving_average(raw[sel], 5), raw[sel])
        np.testing.assert_allclose(got[sel], want, rtol=2e-3, atol=2e-3 * np.abs(raw).max())
        np.testing.assert_array_equal(got[sel][~chosen], raw[sel][~chosen])
        changed[sel] = chosen
    assert 0.2 < changed.mean() < 0.4
    # validation queries and test reads are never augmented
    s, p = ds.subjects[0], plain.subjects[0]
    np.testing.assert_array_equal(s.read("train", fd.val_images), p.read("train", fd.val_images))


def test_p_zero_is_bit_identical_to_no_augmentation(tiny_root):
    cpu = torch.device("cpu")
    _, zero = _dataset(tiny_root, "trial", {"smooth": {"kernel": 5, "p": 0.0}}, subjects=(1,))
    _, none = _dataset(tiny_root, "trial", None, subjects=(1,))
    for kind in ("device", "host"):
        a, b = make_batch_source(kind, zero, 64, 0, cpu), make_batch_source(kind, none, 64, 0, cpu)
        for x, y in zip(a.epoch(0), b.epoch(0), strict=True):
            assert torch.equal(x.eeg, y.eeg)


def test_closed_form_rows_and_the_dataset_read_the_same_samples(tiny_root):
    from eegdecode.training.trainer import _TrialRows

    fd, ds = _dataset(tiny_root, "trial", SMOOTH, subjects=(1,))
    rows = _TrialRows(fd.train_subjects[0], fd.train_images, "trial")
    n = 40
    items = ds.__getitems__(np.arange(n))["eeg"].float().numpy()
    np.testing.assert_array_equal(rows[0:n], items)
    assert isinstance(ds.subjects[0], SubjectData) and ds.subjects[0].augment.p == 0.3
