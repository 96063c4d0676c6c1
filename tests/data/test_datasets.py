"""Datasets on the cache: selections, units, splits, protocols, memory-light reads."""

import numpy as np
import pytest
import torch

from eegdecode.data.datasets import (
    DataOptions,
    SubjectData,
    TrialDataset,
    averaged_eeg,
    image_concepts_from_counts,
    images_of,
    make_folds,
    make_loader,
    split_concepts,
)
from eegdecode.data.paths import DatasetPaths
from eegdecode.data.simulate import PRESETS
from eegdecode.data.things_eeg2 import read_preprocessed_file

P = PRESETS["tiny"]


@pytest.fixture(scope="module")
def subjects(tiny_root, tmp_path_factory):
    import shutil

    root = tmp_path_factory.mktemp("ds")
    shutil.copytree(tiny_root / "Preprocessed_data_250Hz", root / "Preprocessed_data_250Hz")
    return DatasetPaths(root)


def test_selection_and_reads_match_the_source(subjects, tiny_root):
    opts = DataOptions(channels="posterior17", time_window=(0.1, 0.5))
    s1 = SubjectData.open(subjects, 1, opts)
    assert s1.n_chans == 17 and s1.n_times == 100 and s1.times[0] == pytest.approx(0.1)
    src = read_preprocessed_file(DatasetPaths(tiny_root).subject_dir(1) / "preprocessed_eeg_training.npy")
    expected = src.data[[5, 2], [1, 3]][:, s1.ch_idx][:, :, 25:125]
    np.testing.assert_allclose(s1.read("train", np.array([5, 2]), np.array([1, 3])), expected, atol=3e-3)
    avg = averaged_eeg(s1, "test", n_reps=4)
    test = read_preprocessed_file(DatasetPaths(tiny_root).subject_dir(1) / "preprocessed_eeg_test.npy").data
    np.testing.assert_allclose(avg, test[:, :4].mean(1)[:, s1.ch_idx][:, :, 25:125], atol=3e-3)
    with pytest.raises(ValueError, match="only 20 repetitions"):
        averaged_eeg(s1, "test", n_reps=21)


def test_validation_split_is_seeded_disjoint_and_about_5_percent():
    tr, va = split_concepts(1654, 0.05, seed=0)
    assert va.size == 83 and tr.size == 1571 and not np.intersect1d(tr, va).size
    tr2, va2 = split_concepts(1654, 0.05, seed=0)
    np.testing.assert_array_equal(va, va2)
    assert not np.array_equal(va, split_concepts(1654, 0.05, seed=1)[1])


def test_trial_and_average_units_and_subject_index(subjects):
    s = [SubjectData.open(subjects, i) for i in (1, 2)]
    concept = image_concepts_from_counts(P.n_train_concepts * P.images_per_concept, P.n_train_concepts)
    tr_c, va_c = split_concepts(P.n_train_concepts, 0.1, seed=0)
    imgs = images_of(tr_c, concept)
    trials = TrialDataset(s, imgs, concept, subject_layers=[0, 1], unit="trial")
    assert len(trials) == 2 * imgs.size * P.n_train_reps
    avg = TrialDataset(s, imgs, concept, unit="average")
    assert len(avg) == 2 * imgs.size
    loader = make_loader(trials, batch_size=64, shuffle=True, seed=1)
    batch = next(iter(loader))
    assert batch["eeg"].shape == (64, 63, 250) and batch["eeg"].dtype == torch.float32
    assert set(batch["subject"].tolist()) <= {0, 1}
    assert not np.isin(batch["concept"].numpy(), va_c).any()
    np.testing.assert_array_equal(batch["concept"].numpy(), concept[batch["image"].numpy()])
    again = next(iter(make_loader(trials, batch_size=64, shuffle=True, seed=1)))
    assert torch.equal(batch["image"], again["image"]) and torch.equal(batch["eeg"], again["eeg"])
    # Two processes each get half of every global batch: together, exactly the single-process batch.
    halves = [
        next(iter(make_loader(trials, batch_size=64, shuffle=True, seed=1, rank=r, world=2))) for r in (0, 1)
    ]
    assert torch.equal(torch.cat([h["image"] for h in halves]), batch["image"])
    assert (
        next(iter(make_loader(trials, batch_size=64, seed=1, epoch=1)))["image"].tolist()
        != batch["image"].tolist()
    )
    item = avg[0]
    np.testing.assert_allclose(item["eeg"].numpy(), s[0].read("train", np.array([imgs[0]]))[0])


def test_protocol_folds():
    intra = make_folds("intra", [1, 2, 3])
    assert [f.train_subjects for f in intra] == [["sub-01"], ["sub-02"], ["sub-03"]]
    loso = make_folds("loso", [1, 2, 3], targets=[2])
    assert loso[0].train_subjects == ["sub-01", "sub-03"] and loso[0].test_subjects == ["sub-02"]
    assert loso[0].n_subject_layers == 1
    joint = make_folds("joint", [1, 2, 3])
    assert len(joint) == 1 and joint[0].subject_layer == {"sub-01": 0, "sub-02": 1, "sub-03": 2}
    with pytest.raises(ValueError, match="allowed values"):
        make_folds("across", [1, 2])
    with pytest.raises(ValueError, match="at least two"):
        make_folds("loso", [1])


def test_averaged_queries_are_exact_and_independent_of_the_chunk(subjects):
    """The queries equal the plain mean over the whole array (float32, same summation order), whatever the
    chunk; the default chunk of a full-scale test set (80 x 63 x 250) is 6 images (one 32 MiB float32 block)."""
    s1 = SubjectData.open(subjects, 1, DataOptions(channels="posterior17", time_window=(0.1, 0.5)))
    arr = s1.cache.test
    for n_reps in (None, 3):
        reps = slice(0, n_reps or arr.shape[1])
        expected = np.asarray(arr)[:, reps].astype(np.float32).mean(axis=1)[:, s1.ch_idx][:, :, 25:125]
        for chunk in (None, 1, 7, 1000):
            got = averaged_eeg(s1, "test", n_reps=n_reps, chunk=chunk)
            assert got.dtype == np.float32 and np.array_equal(got, expected), (n_reps, chunk)
    images = np.array([9, 0, 4])
    assert np.array_equal(averaged_eeg(s1, "train", images, chunk=2), averaged_eeg(s1, "train")[images])


def test_averaged_queries_read_one_block_at_a_time(subjects, monkeypatch):
    """Full-scale test shape: the default chunk holds 6 images (a 32 MiB float32 block), not 64 (0.5 GB), and only
    the repetitions averaged are read."""
    from eegdecode.data import datasets

    s1 = SubjectData.open(subjects, 1)
    shape = (200, 80, s1.n_chans, s1.n_times)
    reads = []

    def fake_gather(arr, images, reps=None):
        reads.append((np.unique(images).size, np.unique(reps).size))
        return np.zeros((len(images), *shape[2:]), dtype=np.float16)

    monkeypatch.setattr(s1, "split_array", lambda split: np.broadcast_to(np.float16(0), shape))
    monkeypatch.setattr(datasets, "gather", fake_gather)
    assert datasets.averaged_eeg(s1, "test").shape == (200, *shape[2:])
    assert max(n for n, _ in reads) == 6 and sum(n for n, _ in reads) == 200 and {r for _, r in reads} == {80}
    reads.clear()
    datasets.averaged_eeg(s1, "test", n_reps=4)
    assert {r for _, r in reads} == {4} and max(n for n, _ in reads) == 133  # 32 MiB / (4 x 63 x 250 x 4 B)
