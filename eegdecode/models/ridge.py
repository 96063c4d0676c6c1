"""Closed-form ridge regression from flattened EEG to the embedding: the floor every deep encoder must beat.

Model: ``y = intercept + z @ coef`` where ``z`` is the flattened epoch (optionally averaged over bins of
``time_bin`` samples first) standardised with the training mean and standard deviation of each feature.
:class:`RidgeEncoder` keeps the encoder contract (``forward(x, subject_idx) -> (batch, n_outputs)``) so an
evaluation can treat it like any trained network; its weights are buffers, saved in the state dict.

Fitting (:meth:`RidgeEncoder.fit`) is built to run on a whole THINGS-EEG2 subject (66,160 trials x 63 x 250,
p = 15,750 features) read from a float16 memory map without ever holding a float64 ``(n, p)`` copy:

1. one pass over the training trials in chunks computes each feature's mean and variance (chunk statistics
   merged exactly, in float64) and the mean target;
2. a second pass accumulates the centred, standardised Gram matrix ``Z^T Z`` and cross product ``Z^T Y``
   (float32 chunk products summed into float64, p x p and p x k);
3. the Gram matrix divided by n is eigendecomposed once, ``G = V diag(l) V^T``; then for every alpha the
   solution ``coef(alpha) = V diag(1 / (l + alpha)) V^T Z^T Y / n`` costs only matrix products, and the
   validation predictions are ``(Z_val V) diag(1 / (l + alpha)) (V^T Z^T Y / n)``.

Alpha is on the scale of the standardised covariance ``G`` (unit diagonal, mean eigenvalue 1); the objective is
``mean_i ||y_i - intercept - z_i coef||^2 + alpha ||coef||^2``. The regularisation is chosen on the validation
split only, by default by **top-1 retrieval accuracy** (each validation prediction is compared by cosine
similarity with the distinct validation targets; ties are broken by lower validation MSE), the quantity the deep
encoders are selected on; ``criterion="mse"`` selects by validation mean squared error instead. The final model
is the training-split fit at the chosen alpha (it is not refitted on training + validation).

Cost at full resolution (p = 15,750): about 2 GB for the float64 Gram matrix and as much for its eigenvectors,
and an eigendecomposition of a 15,750 x 15,750 matrix (minutes on a few CPU cores; pass ``device="cuda"`` to use
a GPU). ``time_bin=5`` (50 Hz bins, p = 3,150) makes it a matter of seconds and loses little of the evoked
response. The dual (n x n) form is never used: n is larger than p for THINGS-EEG2.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from eegdecode.models.base import EEGEncoder

logger = logging.getLogger(__name__)

DEFAULT_ALPHAS: tuple[float, ...] = tuple(float(a) for a in np.logspace(-2, 5, 15))
CRITERIA = ("top1", "mse")


def time_bin_matrix(n_times: int, time_bin: int) -> torch.Tensor:
    """Averaging matrix ``(n_times, n_bins)`` over consecutive bins of ``time_bin`` samples.

    The last bin averages the samples left over when ``time_bin`` does not divide ``n_times``.
    """
    n_bins = math.ceil(n_times / time_bin)
    bins = torch.arange(n_times) // time_bin
    matrix = torch.zeros(n_times, n_bins, dtype=torch.float64)
    matrix[torch.arange(n_times), bins] = 1.0
    return matrix / matrix.sum(dim=0, keepdim=True)


def _rows(array, start: int, stop: int) -> torch.Tensor:
    """Rows ``start:stop`` of a numpy array, memory map or tensor as a float32 CPU tensor."""
    if isinstance(array, torch.Tensor):
        return array[start:stop].detach().to("cpu", torch.float32)
    return torch.from_numpy(np.asarray(array[start:stop], dtype=np.float32))


def _top1_hits(predictions: torch.Tensor, gallery: torch.Tensor, targets: torch.Tensor) -> int:
    """Number of predictions whose most cosine-similar gallery row is their own target."""
    scores = F.normalize(predictions, dim=1) @ gallery.T
    return int((scores.argmax(dim=1) == targets).sum())


class RidgeEncoder(EEGEncoder):
    """Closed-form ridge regression EEG -> embedding with the encoder interface.

    Parameters
    ----------
    n_chans, n_times : int
        Input size.
    n_outputs : int
        Embedding size (1024).
    n_subjects : int
        Accepted for a uniform signature; unused.
    time_bin : int
        Average the signal over bins of this many samples before flattening (1 = no pooling, p = n_chans x
        n_times; 5 at 250 Hz gives 50 Hz bins, p = n_chans x 50).

    Notes
    -----
    Call :meth:`fit` before ``forward``. After fitting, ``fit_report_`` holds the validation score of every
    alpha tried.
    """

    def __init__(
        self, n_chans: int, n_times: int, n_outputs: int = 1024, n_subjects: int = 1, *, time_bin: int = 1
    ):
        super().__init__(n_chans, n_times, n_outputs, n_subjects)
        if isinstance(time_bin, bool) or not isinstance(time_bin, int) or not 1 <= time_bin <= n_times:
            raise ValueError(
                f"Invalid value for time_bin: {time_bin!r}; expected an integer in [1, {n_times}]"
            )
        self.time_bin = time_bin
        self.n_bins = math.ceil(n_times / time_bin)
        self.n_features = n_chans * self.n_bins
        self.register_buffer("time_bins", time_bin_matrix(n_times, time_bin).float(), persistent=False)
        self.register_buffer("feature_mean", torch.zeros(self.n_features))
        self.register_buffer("feature_scale", torch.ones(self.n_features))
        self.register_buffer("coef", torch.zeros(self.n_features, n_outputs))
        self.register_buffer("intercept", torch.zeros(n_outputs))
        self.register_buffer("alpha", torch.tensor(float("nan")))
        self.register_buffer("fitted", torch.tensor(False))
        self.fit_report_: dict | None = None

    def extra_repr(self) -> str:
        return super().extra_repr() + f", time_bin={self.time_bin}, n_features={self.n_features}"

    def flatten_features(self, x: torch.Tensor) -> torch.Tensor:
        """Time-binned, flattened (not standardised) features ``(batch, n_features)`` of ``x``."""
        if self.time_bin > 1:
            x = x @ self.time_bins.to(device=x.device, dtype=x.dtype)
        return x.reshape(x.shape[0], -1)

    def forward(self, x: torch.Tensor, subject_idx: torch.Tensor | None = None) -> torch.Tensor:
        self._check_input(x, subject_idx)
        if not bool(self.fitted):
            raise RuntimeError(
                "RidgeEncoder has not been fitted; call fit(X_train, Y_train, X_val, Y_val) first"
            )
        z = (self.flatten_features(x.float()) - self.feature_mean) / self.feature_scale
        return torch.addmm(self.intercept, z, self.coef).to(x.dtype)

    # ------------------------------------------------------------------ fitting

    def _check_pair(self, name: str, X, Y) -> int:
        shape_x, shape_y = tuple(X.shape), tuple(Y.shape)
        if len(shape_x) != 3 or shape_x[1:] != (self.n_chans, self.n_times):
            raise ValueError(
                f"{name} EEG: expected shape (n, {self.n_chans}, {self.n_times}), found {shape_x}"
            )
        if len(shape_y) != 2 or shape_y != (shape_x[0], self.n_outputs):
            raise ValueError(
                f"{name} targets: expected shape ({shape_x[0]}, {self.n_outputs}), found {shape_y}"
            )
        if shape_x[0] < 1:
            raise ValueError(f"{name} EEG: expected at least one trial, found 0")
        return shape_x[0]

    def _standardised(self, X, start: int, stop: int, mean, scale, device) -> torch.Tensor:
        features = self.flatten_features(_rows(X, start, stop).to(device)).double()
        return ((features - mean) / scale).float()

    @torch.no_grad()
    def fit(
        self,
        X_train,
        Y_train,
        X_val,
        Y_val,
        alphas: Sequence[float] = DEFAULT_ALPHAS,
        criterion: str = "top1",
        chunk_size: int = 2048,
        device: str | torch.device = "cpu",
    ) -> RidgeEncoder:
        """Fit on the training split and choose alpha on the validation split.

        Parameters
        ----------
        X_train, X_val : array-like ``(n, n_chans, n_times)``
            EEG trials: numpy arrays, memory maps (float16 is fine) or tensors; read in chunks.
        Y_train, Y_val : array-like ``(n, n_outputs)``
            Target embeddings (e.g. CLIP image features) of each trial.
        alphas : sequence of float
            Positive regularisation strengths to try, on the scale of the standardised feature covariance.
        criterion : {"top1", "mse"}
            Validation score used to pick alpha: top-1 retrieval accuracy among the distinct validation
            targets (ties broken by lower MSE), or mean squared error.
        chunk_size : int
            Trials read at a time.
        device : str or torch.device
            Where the accumulation and the eigendecomposition run.

        Returns
        -------
        RidgeEncoder
            ``self``, fitted; ``self.fit_report_`` lists every alpha's validation top-1 and MSE.
        """
        if criterion not in CRITERIA:
            raise ValueError(
                f"Invalid value for criterion: {criterion!r}; allowed values are {list(CRITERIA)}"
            )
        alphas = [float(a) for a in alphas]
        if not alphas or any(not math.isfinite(a) or a <= 0 for a in alphas):
            raise ValueError(f"Invalid value for alphas: {alphas}; expected one or more positive numbers")
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"Invalid value for chunk_size: {chunk_size!r}; expected a positive integer")
        n_train = self._check_pair("training", X_train, Y_train)
        n_val = self._check_pair("validation", X_val, Y_val)
        device = torch.device(device)
        p, k = self.n_features, self.n_outputs

        # Pass 1: feature means/variances (exact merge of chunk statistics) and target mean.
        mean = torch.zeros(p, dtype=torch.float64, device=device)
        m2 = torch.zeros(p, dtype=torch.float64, device=device)
        y_sum = torch.zeros(k, dtype=torch.float64, device=device)
        seen = 0
        for start in range(0, n_train, chunk_size):
            stop = min(start + chunk_size, n_train)
            features = self.flatten_features(_rows(X_train, start, stop).to(device)).double()
            count = stop - start
            chunk_mean = features.mean(dim=0)
            chunk_m2 = ((features - chunk_mean) ** 2).sum(dim=0)
            delta = chunk_mean - mean
            total = seen + count
            mean += delta * (count / total)
            m2 += chunk_m2 + delta**2 * (seen * count / total)
            seen = total
            y_sum += _rows(Y_train, start, stop).to(device).double().sum(dim=0)
        y_mean = y_sum / n_train
        scale = torch.sqrt(m2 / n_train)
        # A constant feature carries no information; a unit scale keeps it at zero instead of dividing by 0.
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))

        # Pass 2: standardised Gram matrix and cross product.
        gram = torch.zeros(p, p, dtype=torch.float64, device=device)
        cross = torch.zeros(p, k, dtype=torch.float64, device=device)
        for start in range(0, n_train, chunk_size):
            stop = min(start + chunk_size, n_train)
            z = self._standardised(X_train, start, stop, mean, scale, device)
            y = (_rows(Y_train, start, stop).to(device).double() - y_mean).float()
            gram += (z.T @ z).double()
            cross += (z.T @ y).double()
        gram /= n_train
        cross /= n_train

        eigenvalues, eigenvectors = torch.linalg.eigh(gram)
        del gram
        eigenvalues = eigenvalues.clamp_min(0.0)
        rotated_cross = eigenvectors.T @ cross  # (p, k)
        del cross

        # Validation: predictions for every alpha from one projection of each chunk onto the eigenvectors.
        val_targets = torch.cat(
            [_rows(Y_val, s, min(s + chunk_size, n_val)) for s in range(0, n_val, chunk_size)]
        )
        gallery, target_index = torch.unique(val_targets, dim=0, return_inverse=True)
        gallery = F.normalize(gallery.to(device), dim=1)
        target_index = target_index.to(device)
        val_targets = val_targets.to(device)
        hits = [0] * len(alphas)
        squared_error = [0.0] * len(alphas)
        for start in range(0, n_val, chunk_size):
            stop = min(start + chunk_size, n_val)
            projected = self._standardised(X_val, start, stop, mean, scale, device).double() @ eigenvectors
            for i, alpha in enumerate(alphas):
                predictions = (projected @ (rotated_cross / (eigenvalues + alpha)[:, None]) + y_mean).float()
                squared_error[i] += float(((predictions - val_targets[start:stop]) ** 2).sum())
                hits[i] += _top1_hits(predictions, gallery, target_index[start:stop])
        val_top1 = [h / n_val for h in hits]
        val_mse = [e / (n_val * k) for e in squared_error]
        if criterion == "top1":
            best = max(range(len(alphas)), key=lambda i: (val_top1[i], -val_mse[i]))
        else:
            best = min(range(len(alphas)), key=lambda i: val_mse[i])
        alpha = alphas[best]

        coef = eigenvectors @ (rotated_cross / (eigenvalues + alpha)[:, None])
        buffer_device = self.coef.device
        self.feature_mean.copy_(mean.to(buffer_device))
        self.feature_scale.copy_(scale.to(buffer_device))
        self.coef.copy_(coef.to(buffer_device))
        self.intercept.copy_(y_mean.to(buffer_device))
        self.alpha.fill_(alpha)
        self.fitted.fill_(True)
        self.fit_report_ = {
            "criterion": criterion,
            "alpha": alpha,
            "alphas": alphas,
            "val_top1": val_top1,
            "val_mse": val_mse,
            "n_train": n_train,
            "n_val": n_val,
            "n_gallery": int(gallery.shape[0]),
            "n_features": p,
            "time_bin": self.time_bin,
        }
        logger.info(
            "ridge: alpha %.3g chosen by validation %s (top-1 %.4f over %d targets, MSE %.5f)",
            alpha,
            criterion,
            val_top1[best],
            gallery.shape[0],
            val_mse[best],
        )
        return self
