"""Known answers of the metric scores (no networks): two-way identification, correlations, PixCorr, SSIM."""

import logging

import numpy as np
import pytest
import torch
from scipy.spatial.distance import correlation as scipy_correlation
from skimage.color import rgb2gray
from skimage.metrics import structural_similarity
from torchvision.transforms import functional as TF

from eegdecode.errors import DataFormatError
from eegdecode.metrics import scores


def test_two_way_on_hand_built_3x3_matrix():
    # r[i, j] = corr(GT_i, Rec_j). Column 0: own 0.9 beats 0.3 but not 0.95 -> 1/2. Column 1: own 0.1 beats
    # neither 0.2 nor 0.4 -> 0. Column 2: own 0.7 beats 0.5 and 0.6 -> 1. Mean = 0.5.
    r = np.array([[0.90, 0.2, 0.5], [0.30, 0.1, 0.6], [0.95, 0.4, 0.7]])
    per_rec = scores.two_way_from_correlation(r)
    np.testing.assert_allclose(per_rec, [0.5, 0.0, 1.0])
    assert per_rec.mean() == pytest.approx(0.5)


def test_two_way_matches_the_published_broadcast_formula():
    rng = np.random.default_rng(3)
    gt = rng.normal(size=(9, 40))
    rec = gt + rng.normal(scale=4.0, size=gt.shape)
    n = len(gt)
    r = np.corrcoef(gt, rec)[:n, n:]
    expected = np.mean(np.sum(r < np.diag(r), axis=0) / (n - 1))  # MindEye/ATM notebook
    got = scores.two_way_identification(torch.from_numpy(gt), torch.from_numpy(rec))
    assert got.mean() == pytest.approx(expected, abs=1e-12)
    assert 0.0 < expected < 1.0  # a case that exercises both outcomes


def test_pearson_matrix_equals_corrcoef_across_chunks():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 3, 7)), rng.normal(size=(4, 21)) + 3.0
    r = scores.pearson_matrix(torch.from_numpy(a), torch.from_numpy(b), chunk_size=4).numpy()
    expected = np.corrcoef(a.reshape(5, -1), b)[:5, 5:]
    np.testing.assert_allclose(r, expected, atol=1e-12)


def test_identical_features_give_two_way_one_and_distance_zero():
    feats = torch.randn(12, 300)
    assert scores.two_way_identification(feats, feats.clone()).tolist() == [1.0] * 12
    np.testing.assert_allclose(scores.correlation_distance(feats, feats.clone()), 0.0, atol=1e-12)


def test_correlation_distance_equals_scipy():
    rng = np.random.default_rng(1)
    gt, rec = rng.normal(size=(6, 50)), rng.normal(size=(6, 50))
    got = scores.correlation_distance(torch.from_numpy(gt), torch.from_numpy(rec))
    np.testing.assert_allclose(got, [scipy_correlation(g, r) for g, r in zip(gt, rec)], atol=1e-12)


def test_two_way_of_shuffled_random_features_is_near_chance():
    # 200 images, a random derangement: each reconstruction's own GT is a random distractor, so the expected score
    # is exactly 0.5; sd of the mean of 200 uniform ranks is about 0.02, tolerance 0.06 (3 sd).
    g = torch.Generator().manual_seed(5)
    feats = torch.randn(200, 64, generator=g)
    perm = torch.roll(torch.randperm(200, generator=g), 1)
    shuffled = torch.empty_like(feats)
    shuffled[perm] = feats[torch.roll(perm, 1)]
    assert not (shuffled == feats).all(dim=1).any()
    assert abs(scores.two_way_identification(feats, shuffled).mean() - 0.5) < 0.06


def test_constant_features_count_as_failures_and_warn(caplog):
    feats = torch.randn(4, 10)
    rec = feats.clone()
    rec[2] = 1.0  # zero variance: correlation undefined
    with caplog.at_level(logging.WARNING, logger="eegdecode.metrics.scores"):
        per_rec = scores.two_way_identification(feats, rec)
    assert per_rec[2] == 0.0 and per_rec[0] == 1.0
    assert "constant" in caplog.text


def test_pairs_must_match():
    with pytest.raises(DataFormatError, match="paired"):
        scores.two_way_identification(torch.randn(4, 10), torch.randn(5, 10))
    with pytest.raises(DataFormatError, match="N >= 2"):
        scores.two_way_from_correlation(np.ones((1, 1)))


def test_pixcorr_is_pearson_of_425px_images(structured_images):
    gt, rec = structured_images(3, 40, seed=0), structured_images(3, 40, seed=1)
    assert scores.pixcorr(gt, gt.clone()) == pytest.approx([1.0] * 3, abs=1e-12)
    got = scores.pixcorr(gt, rec, batch_size=2)
    big_gt, big_rec = (
        TF.resize(x, [425, 425], antialias=True).flatten(1).double().numpy() for x in (gt, rec)
    )
    expected = [np.corrcoef(a, b)[0, 1] for a, b in zip(big_gt, big_rec)]
    np.testing.assert_allclose(got, expected, atol=1e-9)
    # the resize matters: at the original 40 px the values differ
    at_40 = [
        np.corrcoef(a, b)[0, 1]
        for a, b in zip(gt.flatten(1).double().numpy(), rec.flatten(1).double().numpy())
    ]
    assert np.abs(np.asarray(at_40) - expected).max() > 1e-4


def test_ssim_is_gaussian_grayscale_ssim_at_425px(structured_images):
    gt, rec = structured_images(2, 40, seed=0), structured_images(2, 40, seed=1)
    assert scores.ssim(gt, gt.clone()) == pytest.approx([1.0, 1.0], abs=1e-9)
    got = scores.ssim(gt, rec)
    expected = []
    for a, b in zip(gt, rec):
        ga, gb = (
            rgb2gray(TF.resize(x, [425, 425], antialias=True).permute(1, 2, 0).double().numpy())
            for x in (a, b)
        )
        assert ga.shape == (425, 425)
        expected.append(
            structural_similarity(
                gb, ga, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0
            )
        )
    np.testing.assert_allclose(got, expected, atol=1e-9)
    assert (got < 0.99).all()


def _gray_425(x):
    return rgb2gray(TF.resize(x, [425, 425], antialias=True).permute(1, 2, 0).double().numpy())


def test_legacy_ssim_is_the_columnwise_ssim_of_old_scikit_image(structured_images):
    """scikit-image <= 0.19 with ``multichannel=True`` on a grey (H, W) image took the W columns as channels: the
    legacy variant is the mean over columns of a 1-D SSIM down each column, and differs from 2-D SSIM."""
    gt, rec = structured_images(2, 40, seed=0), structured_images(2, 40, seed=1)
    legacy = scores.ssim(gt, rec, variant="legacy-columnwise")
    plain = scores.ssim(gt, rec)
    kwargs = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0)
    expected = []
    for a, b in zip(gt, rec):
        ga, gb = _gray_425(a), _gray_425(b)
        expected.append(np.mean([structural_similarity(gb[:, j], ga[:, j], **kwargs) for j in range(425)]))
    np.testing.assert_allclose(legacy, expected, atol=1e-9)
    assert np.abs(legacy - plain).min() > 0.01
    assert scores.ssim(gt, gt.clone(), variant="legacy-columnwise") == pytest.approx([1.0, 1.0], abs=1e-9)
    with pytest.raises(ValueError, match="SSIM variant.*'columnwise'"):
        scores.ssim(gt, rec, variant="columnwise")


def test_legacy_ssim_known_answer_on_column_constant_images():
    """Images constant down every column: each 1-D column SSIM is its luminance term alone,
    (2 a b + C1) / (a^2 + b^2 + C1) with C1 = (0.01 * data_range)^2, so the legacy score is its column mean.
    2-D SSIM sees the structure across columns and gives another value."""
    cols_a = 0.1 + 0.8 * torch.rand(425, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    cols_b = 1.0 - cols_a  # the negative: 2-D SSIM sees anti-correlated structure across columns
    gt = cols_a.expand(1, 3, 425, 425).clone()
    rec = cols_b.expand(1, 3, 425, 425).clone()
    a, b = _gray_425(gt[0])[0], _gray_425(rec[0])[0]  # one row: the column values after the (identity) resize
    np.testing.assert_allclose(a, cols_a.numpy(), atol=1e-6)
    c1 = 0.01**2
    expected = np.mean((2 * a * b + c1) / (a**2 + b**2 + c1))
    assert scores.ssim(gt, rec, variant="legacy-columnwise")[0] == pytest.approx(expected, abs=1e-9)
    assert scores.ssim(gt, rec)[0] < expected - 0.5
