"""Multivariate noise normalisation (MVNN), vectorised.

THINGS-EEG2 preprocessing (Gifford et al. 2022; NICE/ATM's 250 Hz release) whitens each session's epochs with
``Sigma^-1/2``, where ``Sigma`` is the mean of many Ledoit-Wolf shrinkage covariances computed with
``sklearn.discriminant_analysis._cov(X, shrinkage='auto')``: standardise the columns of ``X``, take the Ledoit-Wolf
covariance of the standardised data, scale it back. Two ways of cutting the data into matrices ``X``:

- ``'epochs'`` (NICE/ATM, the default here): one matrix per repetition, ``X = epoch.T`` (time points x channels);
  covariances averaged over repetitions, then over image conditions;
- ``'time'`` (Gifford's default): one matrix per condition and time point, ``X`` = repetitions x channels;
  averaged over time points, then over conditions.

With the same number of repetitions per condition both averages equal the plain mean over all matrices, which is
what :func:`mean_shrinkage_covariance` computes. The original code calls ``_cov`` once per matrix in a Python loop
(16,540 calls per full session in 'epochs' mode); here the matrices go through in small batches. For matrices with
at least as many samples as channels ('epochs' mode) a batch costs one pass to centre the data, one batched Gram
product of the centred data (the only step that is not memory-bound: about 20 GFLOP per full session in float64,
40 without the symmetry) and one pass for the squared norms of the standardised samples; everything else is done on
the small channels x channels Gram matrices, and the shrunk covariances are summed without ever being formed one by
one. When a matrix has fewer samples than channels ('time' mode: 2 repetitions x 63 channels) the shrinkage uses the
small sample Gram and the sum is one large matrix product. The result agrees with the looped ``_cov`` reference to
floating-point precision (about 1e-15 relative; tests check 1e-6).

The same code runs on numpy arrays (CPU) or torch tensors (any other device): on the CPU numpy's OpenBLAS computes
these small batched Gram products (as ``dsyrk``) about 1.4x faster than torch's MKL on the development machine.

Measured with ``python bench/bench_mvnn.py --repeats 5`` on a full training partition (8270 conditions x 2 x 63 x
300, float64) on the 2-core development machine (AMD EPYC, no GPU, shared with other jobs), both methods on one
thread, medians over three runs: 'epochs' mode 1.35-1.53 s against 18.8-21.1 s for the looped reference (13.8-14.9x;
the previous torch version, one raw Gram per matrix with a mean correction, took 2.4-3.2 s: 7-9x); 'time' mode 4.9 s
against about 37 minutes (scaled from 30 conditions; about 450x, previously 11.7 s). In 'epochs' mode the Gram
products take about 0.9 s (the floor), reading and centring the 2.3 GiB about 0.3 s, the sample norms about 0.1 s;
a second thread does not help.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np
import torch

from eegdecode.errors import check_option

MVNN_DIMS = ("epochs", "time")

_EPS = float(np.finfo(np.float64).eps)


def _shrinkage(beta_, delta_, trace, n: int, p: int, xp: ModuleType):
    """Ledoit-Wolf intensity and ``mu`` from sklearn's sums (``ledoit_wolf_shrinkage``), for a batch."""
    mu = trace / p
    beta = (beta_ / n - delta_) / (p * n)
    delta = (delta_ - 2.0 * mu * trace + p * mu**2) / p
    beta = xp.minimum(beta, delta)
    safe_delta = xp.where(delta == 0, 1.0, delta)
    return xp.where(beta == 0, 0.0, beta / safe_delta), mu


def _feature_variances(var, mean, n: int, xp: ModuleType):
    """StandardScaler's variances: constant columns (its own test) are left unscaled, i.e. variance 1."""
    constant = var <= n * _EPS * var + (n * _EPS * mean) ** 2
    return xp.where(constant, 1.0, var)


def _sum_tall(x, buffer, xp: ModuleType):
    """Sum over the batch of ``_cov(x[b].T, shrinkage='auto')`` for ``n_samples >= n_features``.

    ``x`` is (B, n_features, n_samples), float64; ``buffer`` at least as large, overwritten. ``_cov`` standardises
    the columns of ``x[b].T``, takes the Ledoit-Wolf covariance of the standardised data and scales it back:
    ``(1 - s) * C / n + s * mu * diag(var)`` with ``C`` the centred Gram matrix. ``s`` needs ``C`` and the squared
    norms of the standardised samples, nothing else.
    """
    p, n = x.shape[1], x.shape[2]
    centred = buffer[: x.shape[0]]
    mean = x.sum(2) / n
    # Centre before the product: the Gram of centred data needs no cancelling correction, whatever the offsets.
    xp.subtract(x, mean[:, :, None], out=centred)
    gram = xp.matmul(centred, centred.mT)
    var = _feature_variances(gram.diagonal(0, 1, 2) / n, mean, n, xp)
    inv_var = (1.0 / var)[:, None, :]  # (B, 1, p)
    # Squared norm of each standardised sample: sum_i (x_ik - m_i)^2 / var_i, squaring in place.
    xp.square(centred, out=centred)
    row_norms = xp.matmul(inv_var, centred)[:, 0]
    beta_ = xp.einsum("bk,bk->b", row_norms, row_norms)
    # Squared Frobenius norm of the standardised Gram D^-1/2 C D^-1/2 as the quadratic form w (C o C) w, w = 1/var:
    # two matrix-vector products of positive terms instead of a scaled copy of every Gram matrix.
    delta_ = xp.matmul(xp.matmul(inv_var, gram * gram), inv_var.mT)[:, 0, 0] / n**2
    trace = (gram.diagonal(0, 1, 2) * inv_var[:, 0]).sum(1) / n
    shrink, mu = _shrinkage(beta_, delta_, trace, n, p, xp)
    total = (((1.0 - shrink) / n) @ gram.reshape(-1, p * p)).reshape(p, p)
    return total + xp.diag((shrink * mu) @ var)


def _sum_wide(x, xp: ModuleType):
    """Sum over the batch of ``_cov(x[b], shrinkage='auto')`` for ``n_samples < n_features``.

    ``x`` is (B, n_samples, n_features), float64: the samples axis is short, so the features stay contiguous and
    every reduction runs along them. The shrinkage needs the small (n_samples x n_samples) Gram of the standardised
    data, and the sum of the centred Gram matrices is one large product of all the (weighted) samples.
    """
    n, p = x.shape[1], x.shape[2]
    mean = x.sum(1) / n
    centred = x - mean[:, None, :]
    var = _feature_variances((centred * centred).sum(1) / n, mean, n, xp)
    z = centred / xp.sqrt(var)[:, None, :]
    z2 = z * z
    trace = z2.sum((1, 2)) / n
    row_norms = z2.sum(2)  # (B, n)
    beta_ = xp.einsum("bk,bk->b", row_norms, row_norms)
    zgram = xp.matmul(z, z.mT)  # (B, n, n): same Frobenius norm as the feature Gram
    delta_ = xp.einsum("bij,bij->b", zgram, zgram) / n**2
    shrink, mu = _shrinkage(beta_, delta_, trace, n, p, xp)
    weighted = (centred * xp.sqrt((1.0 - shrink) / n)[:, None, None]).reshape(-1, p)
    return weighted.T @ weighted + xp.diag((shrink * mu) @ var)


def _array_module(device: torch.device) -> ModuleType:
    """numpy on the CPU (faster batched float64 products there), torch on any other device."""
    return np if device.type == "cpu" else torch


def _mean_covariance(data: np.ndarray, mvnn_dim: str, chunk: int, device: torch.device, xp: ModuleType):
    """:func:`mean_shrinkage_covariance` with the array module chosen by the caller (tests run both on the CPU)."""
    n_cond, n_rep, n_ch, n_t = data.shape

    def load(block: np.ndarray):
        if xp is np:
            return np.asarray(block, dtype=np.float64)
        return torch.as_tensor(np.asarray(block), device=device).to(torch.float64)

    def empty(shape):
        if xp is np:
            return np.empty(shape, dtype=np.float64)
        return torch.empty(shape, dtype=torch.float64, device=device)

    mats_per_condition, n_samples = (n_rep, n_t) if mvnn_dim == "epochs" else (n_t, n_rep)
    tall = n_samples >= n_ch
    # One scratch array for the centred data, reused by every batch.
    buffer = empty((chunk * mats_per_condition, n_ch, n_samples)) if tall else None
    total = 0.0
    for start in range(0, n_cond, chunk):
        block = load(data[start : start + chunk])
        if mvnn_dim == "epochs":
            x = block.reshape(-1, n_ch, n_t)  # (B, channels, times): samples are time points
        else:
            x = xp.moveaxis(block, 3, 1).reshape(-1, n_rep, n_ch).mT  # (B, channels, repetitions)
        total = total + (_sum_tall(x, buffer, xp) if tall else _sum_wide(x.mT, xp))
    total = total / (n_cond * mats_per_condition)
    return total if xp is np else total.cpu().numpy()


def mean_shrinkage_covariance(
    data: np.ndarray,
    mvnn_dim: str = "epochs",
    chunk: int = 8,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """The MVNN covariance of one partition: the mean Ledoit-Wolf shrinkage covariance over conditions.

    Parameters
    ----------
    data
        Epochs sorted by condition, (n_conditions, n_repetitions, n_channels, n_times); any float dtype, the
        sums are done in float64.
    mvnn_dim
        ``'epochs'``: one covariance per repetition (time points as samples); ``'time'``: one per time point
        (repetitions as samples).
    chunk
        Conditions per batch. On the CPU small batches (a few MB) stay in the cache, which matters more than
        batch size; on a GPU larger ones (hundreds of conditions) fill the device better.
    device
        ``'cpu'`` (numpy) or a torch device such as ``'cuda'`` for the batched products.

    Returns
    -------
    np.ndarray
        (n_channels, n_channels) float64.
    """
    check_option("mvnn_dim", mvnn_dim, MVNN_DIMS)
    if data.ndim != 4:
        raise ValueError(f"data must be (conditions, repetitions, channels, times); found shape {data.shape}")
    if chunk < 1:
        raise ValueError(f"chunk must be a positive number of conditions; found {chunk}")
    if mvnn_dim == "time" and data.shape[1] < 2:
        raise ValueError("mvnn_dim='time' needs at least 2 repetitions per condition")
    device = torch.device(device)
    return _mean_covariance(data, mvnn_dim, chunk, device, _array_module(device))


def whitening_matrix(cov: np.ndarray) -> np.ndarray:
    """``cov^-1/2`` of a symmetric positive definite matrix (what ``fractional_matrix_power(cov, -0.5)`` gives)."""
    cov = np.asarray(cov, dtype=np.float64)
    vals, vecs = np.linalg.eigh((cov + cov.T) / 2)
    if vals.min() <= 0:
        raise ValueError(
            f"the MVNN covariance is not positive definite (smallest eigenvalue {vals.min():.3g})"
        )
    return (vecs / np.sqrt(vals)) @ vecs.T


def apply_whitening(data: np.ndarray, whitening: np.ndarray) -> np.ndarray:
    """Whiten epochs (..., n_channels, n_times) along the channel axis; float64."""
    return np.einsum("cd,...dt->...ct", whitening, np.asarray(data, dtype=np.float64), optimize=True)
