"""The scores behind the eight reconstruction metrics, written once.

* **PixCorr**: both images resized to 425 x 425 (bilinear, antialias), flattened (3 x 425 x 425 values), Pearson r per
  ground-truth / reconstruction pair.
* **SSIM**: resized to 425 x 425, converted to grayscale with ``skimage.color.rgb2gray``, then
  ``skimage.metrics.structural_similarity`` with Gaussian weights (sigma 1.5), ``use_sample_covariance=False`` and
  ``data_range=1``. Two variants (``ssim(..., variant=...)``):

  - ``"skimage"`` (default): 2-D SSIM of the grey image, as current scikit-image computes it.
  - ``"legacy-columnwise"``: what the published protocol computed. The MindEye reconstruction-metrics notebook that
    ATM adapted (``MedARC-AI/fMRI-reconstruction-NSD``, ``dongyangli-del/EEG_Image_decode``) passes
    ``multichannel=True`` with 2-D grey images; scikit-image <= 0.19 then treats the last axis (the 425 columns) as
    channels, computes a 1-D SSIM down each column (Gaussian window along the rows only) and averages the columns.
    Current scikit-image ignores the flag on grey images. The column-wise value is higher on natural images (about
    +0.09 on a test set), so compare with published tables only under ``"legacy-columnwise"``.
* **Two-way identification** (AlexNet(2), AlexNet(5), InceptionV3, CLIP): ``r[i, j] = corr(GT_i, Rec_j)`` on flattened
  features; reconstruction ``j`` scores the fraction of the ``N - 1`` other ground-truth images that correlate *less*
  with it than its own ground truth does. Chance is 0.5; identical sets score 1.
* **Correlation distance** (EffNet-B, SwAV): ``1 - corr(GT_i, Rec_i)`` per pair (``scipy.spatial.distance.correlation``);
  lower is better, identical features give 0.

Every function returns one value per image (``numpy`` float64); the metric is the mean over images. Correlations are
accumulated in float64 over column chunks, so wide features (AlexNet ``features.4`` has 184,512 values per image)
never need a full float64 copy; they are computed on whatever device the features live on.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from skimage.color import rgb2gray
from skimage.metrics import structural_similarity
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from eegdecode.errors import DataFormatError, check_option

logger = logging.getLogger(__name__)

PIXCORR_SIZE = 425
SSIM_SIZE = 425
SSIM_SIGMA = 1.5
SSIM_VARIANTS = ("skimage", "legacy-columnwise")
_CHUNK = 16384


def _as_features(x: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    """Flatten everything after the first axis; features stay on their device and in their dtype."""
    t = torch.as_tensor(x)
    if t.ndim < 2:
        raise DataFormatError(None, f"{name} must have one row per image", "shape (N, ...)", tuple(t.shape))
    return t.reshape(t.shape[0], -1)


def _check_pair(gt: torch.Tensor, rec: torch.Tensor, min_n: int = 1) -> None:
    if gt.shape != rec.shape:
        raise DataFormatError(
            None,
            "ground-truth and reconstruction features must be paired",
            f"equal shapes {tuple(gt.shape)}",
            tuple(rec.shape),
        )
    if gt.shape[0] < min_n:
        raise DataFormatError(None, "too few images", f"at least {min_n}", gt.shape[0])


def _centred_chunks(a: torch.Tensor, b: torch.Tensor, chunk_size: int):
    """Yield float64 column chunks of ``a`` and ``b`` with each row's mean removed."""
    a_mean = a.mean(dim=1, dtype=torch.float64)[:, None]
    b_mean = b.mean(dim=1, dtype=torch.float64)[:, None]
    for start in range(0, a.shape[1], chunk_size):
        yield (
            a[:, start : start + chunk_size].to(torch.float64) - a_mean,
            b[:, start : start + chunk_size].to(torch.float64) - b_mean,
        )


def _warn_constant_rows(sum_sq: torch.Tensor, name: str) -> None:
    n_constant = int((sum_sq == 0).sum())
    if n_constant:
        logger.warning(
            "%d %s feature vector(s) are constant: their correlations are undefined (NaN) and count as failures",
            n_constant,
            name,
        )


def pearson_matrix(
    a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray, chunk_size: int = _CHUNK
) -> torch.Tensor:
    """Pearson correlation of every row of ``a`` with every row of ``b``.

    Parameters
    ----------
    a, b : array of shape (Na, ...) and (Nb, ...)
        Features, flattened after the first axis; both must have the same number of values per row.
    chunk_size : int
        Columns converted to float64 at a time (bounds the memory).

    Returns
    -------
    torch.Tensor
        ``r`` of shape (Na, Nb), float64, ``r[i, j] = corr(a_i, b_j)`` (the ``[:Na, Na:]`` block of ``np.corrcoef``).
    """
    a, b = _as_features(a, "a"), _as_features(b, "b")
    if a.shape[1] != b.shape[1]:
        raise DataFormatError(None, "feature widths differ", a.shape[1], b.shape[1])
    b = b.to(a.device)
    gram = torch.zeros(a.shape[0], b.shape[0], dtype=torch.float64, device=a.device)
    a_ss = torch.zeros(a.shape[0], dtype=torch.float64, device=a.device)
    b_ss = torch.zeros(b.shape[0], dtype=torch.float64, device=a.device)
    for ac, bc in _centred_chunks(a, b, chunk_size):
        gram += ac @ bc.T
        a_ss += (ac * ac).sum(dim=1)
        b_ss += (bc * bc).sum(dim=1)
    _warn_constant_rows(a_ss, "first-set")
    _warn_constant_rows(b_ss, "second-set")
    return gram / torch.sqrt(a_ss[:, None] * b_ss[None, :])


def paired_pearson(
    a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray, chunk_size: int = _CHUNK
) -> np.ndarray:
    """Pearson r of each pair of rows ``(a_i, b_i)``, without forming the full matrix.

    Returns
    -------
    numpy.ndarray
        Shape (N,), float64.
    """
    a = _as_features(a, "a")
    b = _as_features(b, "b").to(a.device)
    _check_pair(a, b)
    cross = torch.zeros(a.shape[0], dtype=torch.float64, device=a.device)
    a_ss = torch.zeros_like(cross)
    b_ss = torch.zeros_like(cross)
    for ac, bc in _centred_chunks(a, b, chunk_size):
        cross += (ac * bc).sum(dim=1)
        a_ss += (ac * ac).sum(dim=1)
        b_ss += (bc * bc).sum(dim=1)
    _warn_constant_rows(a_ss, "ground-truth")
    _warn_constant_rows(b_ss, "reconstruction")
    return (cross / torch.sqrt(a_ss * b_ss)).cpu().numpy()


def two_way_from_correlation(r: torch.Tensor | np.ndarray) -> np.ndarray:
    """Two-way identification score of each reconstruction from a GT x reconstruction correlation matrix.

    Parameters
    ----------
    r : array of shape (N, N)
        ``r[i, j] = corr(GT_i, Rec_j)``.

    Returns
    -------
    numpy.ndarray
        Shape (N,): for reconstruction ``j``, the fraction of the ``N - 1`` ground-truth images ``i != j`` with
        ``r[i, j] < r[j, j]``. The metric is the mean (chance 0.5). NaN correlations count as failures.
    """
    r = torch.as_tensor(r)
    if r.ndim != 2 or r.shape[0] != r.shape[1] or r.shape[0] < 2:
        raise DataFormatError(None, "correlation matrix must be square with N >= 2", "(N, N)", tuple(r.shape))
    own = torch.diagonal(r)
    # The diagonal compares r[j, j] < r[j, j], which is False, so it never counts as a success.
    success = r < own[None, :]
    return (success.sum(dim=0).to(torch.float64) / (r.shape[0] - 1)).cpu().numpy()


def two_way_identification(
    gt_features: torch.Tensor | np.ndarray, rec_features: torch.Tensor | np.ndarray
) -> np.ndarray:
    """Two-way identification of paired feature sets (one row per image, flattened).

    Returns
    -------
    numpy.ndarray
        Shape (N,), per reconstruction; see :func:`two_way_from_correlation`.
    """
    gt, rec = _as_features(gt_features, "gt_features"), _as_features(rec_features, "rec_features")
    _check_pair(gt, rec.to(gt.device), min_n=2)
    return two_way_from_correlation(pearson_matrix(gt, rec))


def correlation_distance(
    gt_features: torch.Tensor | np.ndarray, rec_features: torch.Tensor | np.ndarray
) -> np.ndarray:
    """Correlation distance ``1 - corr(GT_i, Rec_i)`` per pair (``scipy.spatial.distance.correlation``).

    Returns
    -------
    numpy.ndarray
        Shape (N,), float64; 0 for identical features, lower is better.
    """
    return 1.0 - paired_pearson(gt_features, rec_features)


def resize_square(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize (antialias on, as torchvision's tensor default since 0.17) of a batch to ``size`` x ``size``.

    On the square base images this equals ``transforms.Resize(size)`` of the published protocol.
    """
    return TF.resize(images, [size, size], interpolation=InterpolationMode.BILINEAR, antialias=True)


def _check_images(gt: torch.Tensor, rec: torch.Tensor) -> None:
    if gt.ndim != 4 or gt.shape[1] != 3:
        raise DataFormatError(None, "images must be a float batch", "shape (N, 3, H, W)", tuple(gt.shape))
    if gt.shape[0] != rec.shape[0]:
        raise DataFormatError(
            None, "ground truth and reconstructions must be paired", gt.shape[0], rec.shape[0]
        )


def pixcorr(
    gt_images: torch.Tensor, rec_images: torch.Tensor, size: int = PIXCORR_SIZE, batch_size: int = 16
) -> np.ndarray:
    """PixCorr per pair: Pearson r of the flattened RGB images after a bilinear resize to ``size`` x ``size``.

    Parameters
    ----------
    gt_images, rec_images : torch.Tensor
        (N, 3, H, W) floats in [0, 1], paired by row.
    size : int
        Side after resizing (425 in the published protocol).
    batch_size : int
        Pairs resized at a time (memory bound: 425 px is 2.2 MB per image).

    Returns
    -------
    numpy.ndarray
        Shape (N,), float64.
    """
    _check_images(gt_images, rec_images)
    values = []
    for start in range(0, gt_images.shape[0], batch_size):
        gt = resize_square(gt_images[start : start + batch_size], size)
        rec = resize_square(rec_images[start : start + batch_size].to(gt.device), size)
        values.append(paired_pearson(gt, rec))
    return np.concatenate(values)


def ssim(
    gt_images: torch.Tensor, rec_images: torch.Tensor, size: int = SSIM_SIZE, variant: str = "skimage"
) -> np.ndarray:
    """SSIM per pair on grayscale images resized to ``size`` x ``size`` (Gaussian weights, sigma 1.5).

    Parameters
    ----------
    gt_images, rec_images : torch.Tensor
        (N, 3, H, W) floats in [0, 1], paired by row.
    size : int
        Side after resizing (425 in the published protocol).
    variant : {"skimage", "legacy-columnwise"}
        ``"skimage"``: 2-D SSIM of the grey images. ``"legacy-columnwise"``: scikit-image <= 0.19 with
        ``multichannel=True`` on grey images, as in the published tables: the mean over columns of a 1-D SSIM down
        each column (see the module description).

    Returns
    -------
    numpy.ndarray
        Shape (N,), float64; 1 for identical images.
    """
    check_option("SSIM variant", variant, SSIM_VARIANTS)
    _check_images(gt_images, rec_images)
    # Columns as "channels": each is scored as a 1-D signal down the rows and the channel scores are averaged.
    channel_axis = -1 if variant == "legacy-columnwise" else None
    values = np.empty(gt_images.shape[0], dtype=np.float64)
    for i in range(gt_images.shape[0]):
        pair = resize_square(torch.stack([gt_images[i], rec_images[i].to(gt_images.device)]), size)
        gt_gray, rec_gray = (rgb2gray(img.permute(1, 2, 0).cpu().numpy().astype(np.float64)) for img in pair)
        values[i] = structural_similarity(
            rec_gray,
            gt_gray,
            gaussian_weights=True,
            sigma=SSIM_SIGMA,
            use_sample_covariance=False,
            data_range=1.0,
            channel_axis=channel_axis,
        )
    return values
