"""Closed-form ridge regression from flattened EEG to the embedding: the floor every deep encoder must beat.

Model: ``y = intercept + z @ coef`` where ``z`` is the flattened epoch (optionally averaged over bins of
``time_bin`` samples first) standardised with the training mean and standard deviation of each feature.
:class:`RidgeEncoder` keeps the encoder contract (``forward(x, subject_idx) -> (batch, n_outputs)``) so an
evaluation can treat it like any trained network; its weights are buffers, saved in the state dict.

Fitting (:meth:`RidgeEncoder.fit`) is built to run on a whole THINGS-EEG2 subject (66,160 trials x 63 x 250,
p = 15,750 features) read from a float16 memory map without ever holding a float64 ``(n, p)`` copy:

1. one pass over the training trials in chunks computes each feature's mean and variance (chunk statistics
   merged exactly, in float64) and the mean target;
2. the problem is diagonalised once, in whichever form is smaller (``solver="auto"``):

   - **primal** (n >= p): a second pass accumulates the centred, standardised covariance ``G = Z^T Z / n`` and
     cross product ``Z^T Y / n`` (float32 chunk products summed into float64, p x p and p x k), and
     ``G = V diag(l) V^T``; then ``coef(alpha) = V diag(1 / (l + alpha)) V^T Z^T Y / n`` and the validation
     predictions are ``(Z_val V) diag(1 / (l + alpha)) (V^T Z^T Y / n)``;
   - **dual** (n < p): the second pass keeps the standardised rows once in float32 (n x p, smaller than the
     primal's p x p float64 since n < p) and forms the kernel ``K = Z Z^T / n = U diag(l) U^T`` (n x n); by
     the push-through identity ``(Z^T Z / n + alpha I)^-1 Z^T / n = Z^T / n (K + alpha I)^-1`` the same
     solution is ``coef(alpha) = Z^T U diag(1 / (l + alpha)) U^T Y / n`` and the validation predictions are
     ``(Z_val Z^T U / n) diag(1 / (l + alpha)) (U^T Y)``;

3. every alpha then costs only matrix products with the eigenvectors.

Alpha is on the scale of the standardised covariance ``G`` (unit diagonal, mean eigenvalue 1); the objective is
``mean_i ||y_i - intercept - z_i coef||^2 + alpha ||coef||^2``. The regularisation is chosen on the validation
split only, by default by **top-1 retrieval accuracy** (each validation prediction is compared by cosine
similarity with the distinct validation targets; ties are broken by lower validation MSE), the quantity the deep
encoders are selected on; ``criterion="mse"`` selects by validation mean squared error instead. The final model
is the training-split fit at the chosen alpha (it is not refitted on training + validation).

Cost at full resolution (p = 15,750): with n >= p (single trials of a whole subject, n = 66,160) about 2 GB
for the float64 covariance and as much for its eigenvectors, and an eigendecomposition of a 15,750 x 15,750
matrix (minutes on a few CPU cores; pass ``device="cuda"`` to use a GPU); ``time_bin=5`` (50 Hz bins,
p = 3,150) makes it a matter of seconds and loses little of the evoked response. With n < p (the simulator's
presets, a subset of images, averaged repetitions) the dual costs ``n^2 p`` for the kernel and an n x n
eigendecomposition: the ``tiny`` preset (960 trials x 15,750 features) fits in seconds.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from eegdecode.models.base import EEGEncoder

logger = logging.getLogger(__name__)

DEFAULT_ALPHAS: tuple[float, ...] = tuple(float(a) for a in np.logspace(-2, 5, 15))
CRITERIA = ("top1", "mse")
SOLVERS = ("auto", "primal", "dual")
#: Feature columns per float32 block product of the dual form (bounds the float32 rounding as the primal's
#: trial chunks do, and the temporary memory).
FEATURE_BLOCK = 2048


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


def _blocked_products(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b.T`` in float64, from float32 products over blocks of :data:`FEATURE_BLOCK` feature columns."""
    out = torch.zeros(a.shape[0], b.shape[0], dtype=torch.float64, device=a.device)
    for start in range(0, a.shape[1], FEATURE_BLOCK):
        stop = start + FEATURE_BLOCK
        out += (a[:, start:stop] @ b[:, start:stop].T).double()
    return out


@dataclass
class _Spectral:
    """A ridge problem diagonalised once, solved for any alpha by matrix products.

    Validation predictions are ``project(z_val) @ weights(alpha) + y_mean`` and the coefficients
    ``coefficients(weights(alpha))``, with ``weights(alpha) = rotated / (eigenvalues + alpha)``.
    """

    solver: str
    eigenvalues: torch.Tensor  # (r,)
    rotated: torch.Tensor  # (r, k)
    project: Callable[[torch.Tensor], torch.Tensor]  # (c, p) standardised features -> (c, r)
    coefficients: Callable[[torch.Tensor], torch.Tensor]  # (r, k) -> (p, k)

    def weights(self, alpha: float) -> torch.Tensor:
        return self.rotated / (self.eigenvalues + alpha)[:, None]


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

    def _statistics(self, X, Y, n: int, chunk_size: int, device):
        """Feature means and (population) standard deviations and the mean target, in one chunked pass."""
        p, k = self.n_features, self.n_outputs
        mean = torch.zeros(p, dtype=torch.float64, device=device)
        m2 = torch.zeros(p, dtype=torch.float64, device=device)
        y_sum = torch.zeros(k, dtype=torch.float64, device=device)
        seen = 0
        for start in range(0, n, chunk_size):
            stop = min(start + chunk_size, n)
            features = self.flatten_features(_rows(X, start, stop).to(device)).double()
            count = stop - start
            chunk_mean = features.mean(dim=0)
            chunk_m2 = ((features - chunk_mean) ** 2).sum(dim=0)
            delta = chunk_mean - mean
            total = seen + count
            mean += delta * (count / total)
            m2 += chunk_m2 + delta**2 * (seen * count / total)
            seen = total
            y_sum += _rows(Y, start, stop).to(device).double().sum(dim=0)
        scale = torch.sqrt(m2 / n)
        # A constant feature carries no information; a unit scale keeps it at zero instead of dividing by 0.
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        return mean, scale, y_sum / n

    def _primal_system(self, X, Y, n, mean, scale, y_mean, chunk_size, device) -> _Spectral:
        """Eigendecomposition of the ``(p, p)`` covariance ``Z^T Z / n`` (the form for n >= p)."""
        p, k = self.n_features, self.n_outputs
        gram = torch.zeros(p, p, dtype=torch.float64, device=device)
        cross = torch.zeros(p, k, dtype=torch.float64, device=device)
        for start in range(0, n, chunk_size):
            stop = min(start + chunk_size, n)
            z = self._standardised(X, start, stop, mean, scale, device)
            y = (_rows(Y, start, stop).to(device).double() - y_mean).float()
            gram += (z.T @ z).double()
            cross += (z.T @ y).double()
        gram /= n
        cross /= n
        eigenvalues, eigenvectors = torch.linalg.eigh(gram)
        del gram
        rotated = eigenvectors.T @ cross  # (p, k)
        del cross

        def project(z_val: torch.Tensor) -> torch.Tensor:
            return z_val.double() @ eigenvectors

        def coefficients(weights: torch.Tensor) -> torch.Tensor:
            return eigenvectors @ weights

        return _Spectral("primal", eigenvalues.clamp_min(0.0), rotated, project, coefficients)

    def _dual_system(self, X, Y, n, mean, scale, y_mean, chunk_size, device) -> _Spectral:
        """Eigendecomposition of the ``(n, n)`` kernel ``Z Z^T / n`` (the form for n < p).

        Holds the standardised training features once in float32 (``n * p * 4`` bytes, less than the
        ``p * p * 8`` of the primal covariance since n < p); products over features are taken in float32
        blocks of :data:`FEATURE_BLOCK` columns summed into float64, as the primal form sums its chunks.
        """
        p, k = self.n_features, self.n_outputs
        z_train = torch.empty(n, p, dtype=torch.float32, device=device)
        y_centred = torch.empty(n, k, dtype=torch.float64, device=device)
        for start in range(0, n, chunk_size):
            stop = min(start + chunk_size, n)
            z_train[start:stop] = self._standardised(X, start, stop, mean, scale, device)
            y_centred[start:stop] = _rows(Y, start, stop).to(device).double() - y_mean
        kernel = _blocked_products(z_train, z_train) / n
        eigenvalues, eigenvectors = torch.linalg.eigh(kernel)
        del kernel
        rotated = eigenvectors.T @ y_centred  # (n, k)
        del y_centred

        def project(z_val: torch.Tensor) -> torch.Tensor:
            return _blocked_products(z_val, z_train) @ eigenvectors / n

        def coefficients(weights: torch.Tensor) -> torch.Tensor:
            dual = eigenvectors @ weights / n  # (n, k): coef = Z^T dual
            coef = torch.zeros(p, k, dtype=torch.float64, device=device)
            for start in range(0, n, chunk_size):
                stop = min(start + chunk_size, n)
                coef += z_train[start:stop].T.double() @ dual[start:stop]
            return coef

        return _Spectral("dual", eigenvalues.clamp_min(0.0), rotated, project, coefficients)

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
        solver: str = "auto",
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
        solver : {"auto", "primal", "dual"}
            ``"primal"`` eigendecomposes the ``(p, p)`` feature covariance, ``"dual"`` the ``(n, n)`` trial
            kernel; both give the same solution. ``"auto"`` takes the dual when there are fewer training
            trials than features (n < p), the primal otherwise.

        Returns
        -------
        RidgeEncoder
            ``self``, fitted; ``self.fit_report_`` lists every alpha's validation top-1 and MSE and the solver.
        """
        if criterion not in CRITERIA:
            raise ValueError(
                f"Invalid value for criterion: {criterion!r}; allowed values are {list(CRITERIA)}"
            )
        if solver not in SOLVERS:
            raise ValueError(f"Invalid value for solver: {solver!r}; allowed values are {list(SOLVERS)}")
        alphas = [float(a) for a in alphas]
        if not alphas or any(not math.isfinite(a) or a <= 0 for a in alphas):
            raise ValueError(f"Invalid value for alphas: {alphas}; expected one or more positive numbers")
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"Invalid value for chunk_size: {chunk_size!r}; expected a positive integer")
        n_train = self._check_pair("training", X_train, Y_train)
        n_val = self._check_pair("validation", X_val, Y_val)
        device = torch.device(device)
        p, k = self.n_features, self.n_outputs
        if solver == "auto":
            solver = "dual" if n_train < p else "primal"

        mean, scale, y_mean = self._statistics(X_train, Y_train, n_train, chunk_size, device)
        build = self._dual_system if solver == "dual" else self._primal_system
        system = build(X_train, Y_train, n_train, mean, scale, y_mean, chunk_size, device)

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
            projected = system.project(self._standardised(X_val, start, stop, mean, scale, device))
            for i, alpha in enumerate(alphas):
                predictions = (projected @ system.weights(alpha) + y_mean).float()
                squared_error[i] += float(((predictions - val_targets[start:stop]) ** 2).sum())
                hits[i] += _top1_hits(predictions, gallery, target_index[start:stop])
        val_top1 = [h / n_val for h in hits]
        val_mse = [e / (n_val * k) for e in squared_error]
        if criterion == "top1":
            best = max(range(len(alphas)), key=lambda i: (val_top1[i], -val_mse[i]))
        else:
            best = min(range(len(alphas)), key=lambda i: val_mse[i])
        alpha = alphas[best]

        coef = system.coefficients(system.weights(alpha))
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
            "solver": solver,
        }
        logger.info(
            "ridge (%s): alpha %.3g chosen by validation %s (top-1 %.4f over %d targets, MSE %.5f)",
            solver,
            alpha,
            criterion,
            val_top1[best],
            gallery.shape[0],
            val_mse[best],
        )
        return self
