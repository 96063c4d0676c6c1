"""MVNN: the batched shrinkage covariance against the looped sklearn reference, and the whitening."""

import numpy as np
import pytest
import torch
from sklearn.discriminant_analysis import _cov

from eegdecode.preprocessing.mvnn import (
    _mean_covariance,
    apply_whitening,
    mean_shrinkage_covariance,
    whitening_matrix,
)


def reference_mvnn_covariance(data: np.ndarray, mvnn_dim: str) -> np.ndarray:
    """The original per-condition loop (Gifford / NICE ``mvnn``): ``_cov(shrinkage='auto')`` per matrix."""
    sigma_cond = []
    for cond in data:
        if mvnn_dim == "epochs":
            sigma = np.mean([_cov(rep.T, shrinkage="auto") for rep in cond], axis=0)
        else:
            sigma = np.mean([_cov(cond[:, :, t], shrinkage="auto") for t in range(cond.shape[2])], axis=0)
        sigma_cond.append(sigma)
    return np.mean(sigma_cond, axis=0)


def _correlated(shape, seed):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(shape[2], shape[2])) + 3 * np.eye(shape[2])
    x = np.einsum("cd,...dt->...ct", mix, rng.normal(size=shape))
    return x * 1e-6 + 2e-6  # volts, with an offset: centring and scaling matter


@pytest.mark.parametrize("mvnn_dim", ["epochs", "time"])
def test_batched_covariance_equals_the_looped_reference(mvnn_dim):
    data = _correlated((7, 3, 9, 40), seed=1)
    ref = reference_mvnn_covariance(data, mvnn_dim)
    got = mean_shrinkage_covariance(data, mvnn_dim, chunk=3)  # chunks that do not divide the conditions
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6 * np.abs(ref).max())


def _assert_matches_reference(got, ref):
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6 * np.abs(ref).max())


def _session_scale(shape, seed, offset_scale):
    """63 correlated channels at about 1e-5 V, each with its own offset (``offset_scale`` V)."""
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(shape[2], shape[2])) + 3 * np.eye(shape[2])
    offsets = rng.normal(scale=offset_scale, size=(shape[2], 1))
    return np.einsum("cd,...dt->...ct", mix, rng.normal(size=shape)) * 1e-5 + offsets


@pytest.mark.parametrize(
    "offset_scale", [2e-5, 1e-2]
)  # baseline-corrected-like, and raw DC offsets 1000x the signal
def test_full_size_epochs_match_the_reference_on_both_array_modules(offset_scale):
    data = _session_scale((5, 2, 63, 300), seed=4, offset_scale=offset_scale)  # 10 matrices of 300 x 63
    ref = reference_mvnn_covariance(data, "epochs")
    _assert_matches_reference(mean_shrinkage_covariance(data, "epochs", chunk=2), ref)  # numpy (the CPU path)
    # The torch code path (what runs on a GPU), on the CPU.
    _assert_matches_reference(_mean_covariance(data, "epochs", 3, torch.device("cpu"), torch), ref)


def test_full_size_time_mode_matches_the_reference_on_both_array_modules():
    data = _session_scale((3, 2, 63, 30), seed=5, offset_scale=2e-5)  # 90 matrices of 2 x 63
    ref = reference_mvnn_covariance(data, "time")
    _assert_matches_reference(mean_shrinkage_covariance(data, "time", chunk=2), ref)
    _assert_matches_reference(_mean_covariance(data, "time", 2, torch.device("cpu"), torch), ref)


def test_time_mode_with_more_repetitions_than_channels():
    data = _correlated((3, 12, 5, 4), seed=6)  # each matrix 12 repetitions x 5 channels: the tall branch
    ref = reference_mvnn_covariance(data, "time")
    for xp in (np, torch):
        _assert_matches_reference(_mean_covariance(data, "time", 2, torch.device("cpu"), xp), ref)


def test_more_channels_than_samples_and_a_constant_channel():
    data = _correlated((4, 2, 12, 8), seed=2)  # 'epochs': 8 time points x 12 channels (rank deficient)
    data[:, :, 5, :] = 3e-6
    for dim in ("epochs", "time"):
        ref = reference_mvnn_covariance(data, dim)
        np.testing.assert_allclose(
            mean_shrinkage_covariance(data, dim), ref, rtol=1e-6, atol=1e-6 * np.abs(ref).max()
        )


def test_whitening_gives_identity_covariance():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(5, 5))
    cov = a @ a.T + np.eye(5)
    w = whitening_matrix(cov)
    np.testing.assert_allclose(w @ cov @ w, np.eye(5), atol=1e-10)
    np.testing.assert_allclose(w, w.T, atol=1e-12)
    x = rng.normal(size=(2, 3, 5, 4))
    np.testing.assert_allclose(apply_whitening(x, w)[1, 2], w @ x[1, 2])


def test_bad_arguments():
    with pytest.raises(ValueError, match="mvnn_dim"):
        mean_shrinkage_covariance(np.zeros((2, 2, 3, 4)), "channels")
    with pytest.raises(ValueError, match="chunk"):
        mean_shrinkage_covariance(np.zeros((2, 2, 3, 4)), "epochs", chunk=0)
    with pytest.raises(ValueError, match="at least 2 repetitions"):
        mean_shrinkage_covariance(np.ones((2, 1, 3, 4)), "time")
    with pytest.raises(ValueError, match="positive definite"):
        whitening_matrix(np.zeros((3, 3)))
