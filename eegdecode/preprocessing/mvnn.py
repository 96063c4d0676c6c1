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
(16,540 calls per full session in 'epochs' mode); here the matrices go through in batches: one batched Gram matrix
per chunk (``torch.bmm``, any device), the Ledoit-Wolf shrinkage intensity of every matrix from closed-form sums,
and the shrunk covariances summed without ever forming them one by one. When a matrix has fewer rows than columns
('time' mode: 2 repetitions x 63 channels) the shrinkage uses the small row Gram and the sum is one large matrix
product. The result agrees with the looped ``_cov`` reference to floating-point precision (tests check 1e-6).
"""

from __future__ import annotations

import numpy as np
import torch

from eegdecode.errors import check_option

MVNN_DIMS = ("epochs", "time")


def _shrinkage(beta_: torch.Tensor, delta_: torch.Tensor, trace: torch.Tensor, n: int, p: int):
    """Ledoit-Wolf intensity and ``mu`` from sklearn's sums (``ledoit_wolf_shrinkage``), for a batch."""
    mu = trace / p
    beta = (beta_ / n - delta_) / (p * n)
    delta = (delta_ - 2.0 * mu * trace + p * mu**2) / p
    beta = torch.minimum(beta, delta)
    safe_delta = torch.where(delta == 0, torch.ones_like(delta), delta)
    return torch.where(beta == 0, torch.zeros_like(beta), beta / safe_delta), mu


def _scale(var: torch.Tensor, mean: torch.Tensor, n: int) -> torch.Tensor:
    """StandardScaler's variances, with its own test for constant columns (left unscaled: variance 1)."""
    eps = torch.finfo(var.dtype).eps
    constant = var <= n * eps * var + (n * mean * eps) ** 2
    return torch.where(constant, torch.ones_like(var), var), constant


def _batch_covariance_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum over the batch of ``_cov(x[b].T, shrinkage='auto')``; ``x`` is (B, n_features, n_samples), float64.

    ``_cov`` standardises the columns, takes the Ledoit-Wolf covariance of the standardised data and scales it
    back: ``(1 - s) * C / n + s * mu * diag(var)`` with ``C`` the centred Gram matrix. Everything ``s`` needs comes
    from ``C`` (p <= n) or the small sample Gram (p > n) and the squared row norms of the standardised data.
    """
    p, n = x.shape[1], x.shape[2]
    mean = x.sum(dim=2) / n  # (B, p)
    if p <= n:
        # Centred Gram from the raw Gram: no centred copy of the data is ever formed.
        gram = torch.bmm(x, x.transpose(1, 2)) - n * mean[:, :, None] * mean[:, None, :]
        var, constant = _scale(torch.diagonal(gram, dim1=1, dim2=2) / n, mean, n)
        inv_var = torch.where(constant, torch.zeros_like(var), 1.0 / var)
        inv_sd = inv_var.sqrt()
        zgram = gram * (inv_sd[:, :, None] * inv_sd[:, None, :])
        delta_ = (zgram * zgram).sum(dim=(1, 2)) / n**2
        # Squared norm of each standardised sample: sum_i (x_ik - m_i)^2 / var_i, expanded.
        w = inv_var[:, None, :]
        row_norms = (
            torch.bmm(w, x * x)
            - 2.0 * torch.bmm(w * mean[:, None, :], x)
            + (w * mean[:, None, :] ** 2).sum(-1, keepdim=True)
        ).squeeze(1)
        trace = (torch.diagonal(gram, dim1=1, dim2=2) / n * inv_var).sum(dim=1)
        beta_ = (row_norms * row_norms).sum(dim=1)
        shrink, mu = _shrinkage(beta_, delta_, trace, n, p)
        total = torch.einsum("b,bpq->pq", (1.0 - shrink) / n, gram)
    else:
        xc = x - mean[:, :, None]
        var, constant = _scale((xc * xc).mean(dim=2), mean, n)
        z = xc * var.rsqrt()[:, :, None]
        z2 = z * z
        trace = z2.sum(dim=(1, 2)) / n
        row_norms = z2.sum(dim=1)  # (B, n)
        beta_ = (row_norms * row_norms).sum(dim=1)
        zgram = torch.bmm(z.transpose(1, 2), z)  # (B, n, n): the Frobenius norm of z z.T
        delta_ = (zgram * zgram).sum(dim=(1, 2)) / n**2
        shrink, mu = _shrinkage(beta_, delta_, trace, n, p)
        weighted = xc * ((1.0 - shrink) / n).sqrt()[:, None, None]
        flat = weighted.transpose(1, 2).reshape(-1, p)
        total = flat.T @ flat
    return total + torch.diag(((shrink * mu)[:, None] * var).sum(dim=0))


def mean_shrinkage_covariance(
    data: np.ndarray,
    mvnn_dim: str = "epochs",
    chunk: int = 16,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """The MVNN covariance of one partition: the mean Ledoit-Wolf shrinkage covariance over conditions.

    Parameters
    ----------
    data
        Epochs sorted by condition, (n_conditions, n_repetitions, n_channels, n_times).
    mvnn_dim
        ``'epochs'``: one covariance per repetition (time points as samples); ``'time'``: one per time point
        (repetitions as samples).
    chunk
        Conditions per batch. Small batches stay in the CPU cache, which matters more than batch size here.
    device
        Torch device for the batched products (``'cuda'`` when available speeds up full sessions).

    Returns
    -------
    np.ndarray
        (n_channels, n_channels) float64.
    """
    check_option("mvnn_dim", mvnn_dim, MVNN_DIMS)
    if data.ndim != 4:
        raise ValueError(f"data must be (conditions, repetitions, channels, times); found shape {data.shape}")
    n_cond, n_rep, n_ch, n_t = data.shape
    if mvnn_dim == "time" and n_rep < 2:
        raise ValueError("mvnn_dim='time' needs at least 2 repetitions per condition")
    device = torch.device(device)
    total = torch.zeros((n_ch, n_ch), dtype=torch.float64, device=device)
    for start in range(0, n_cond, chunk):
        block = torch.as_tensor(np.asarray(data[start : start + chunk]), device=device).to(torch.float64)
        if mvnn_dim == "epochs":
            x = block.reshape(-1, n_ch, n_t)  # (B, channels, times): samples are time points
        else:
            x = block.permute(0, 3, 2, 1).reshape(-1, n_ch, n_rep)  # (B, channels, repetitions)
        total += _batch_covariance_sum(x)
    n_mats = n_cond * (n_rep if mvnn_dim == "epochs" else n_t)
    return (total / n_mats).cpu().numpy()


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
