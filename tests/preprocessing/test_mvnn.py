"""MVNN: the batched shrinkage covariance against the looped sklearn reference, and the whitening."""

import numpy as np
import pytest
from sklearn.discriminant_analysis import _cov

from eegdecode.preprocessing.mvnn import apply_whitening, mean_shrinkage_covariance, whitening_matrix


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
    with pytest.raises(ValueError, match="at least 2 repetitions"):
        mean_shrinkage_covariance(np.ones((2, 1, 3, 4)), "time")
    with pytest.raises(ValueError, match="positive definite"):
        whitening_matrix(np.zeros((3, 3)))
