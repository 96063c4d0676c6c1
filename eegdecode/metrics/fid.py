"""Fréchet Inception Distance (optional), through torchmetrics, with local weights only.

FID compares Gaussians fitted to Inception pool features (2048-d) of the ground-truth set and of one round of
reconstructions: ``|mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))``. With the THINGS-EEG2 test set there are only
200 images per set, far fewer than the 2048 feature dimensions: the covariances are rank-deficient and FID is strongly
biased upwards. Use it only to compare methods evaluated with the same N, and always report N (the report does).

The real network is torch-fidelity's TF-ported Inception (what torchmetrics uses by default), read from the local
file ``weights-inception-2015-12-05-6726825d.pth`` via ``feature_extractor_weights_path``; it needs the
``torch-fidelity`` package. In random-weight mode (tests, demo) a random torchvision Inception-v3 ``avgpool`` at
299 px stands in, and any ``nn.Module`` mapping [0, 1] images to (B, D) features can be injected.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
from pathlib import Path

import torch
from torch import nn

from eegdecode.errors import WeightsNotFoundError
from eegdecode.metrics.networks import NETWORKS, FeatureExtractor, build_backbone, checkpoint_dir

logger = logging.getLogger(__name__)

FID_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + FID_WEIGHTS_FILE
FID_INPUT_SIZE = 299
_STATE_NAMES = ("real_features_sum", "real_features_cov_sum", "real_features_num_samples")


def fid_bias_warning(n_images: int) -> str:
    """The sentence printed whenever FID is reported."""
    return (
        f"FID from N={n_images} images per set is strongly biased (2048-d covariances estimated from {n_images} "
        "samples); compare it only between methods evaluated with the same N"
    )


def resolve_fid_weights(explicit: str | Path | None = None) -> Path | None:
    """The torch-fidelity Inception weights: ``explicit`` (must exist) or ``checkpoint_dir()/<file>`` if present."""
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(
                path, f"given as the FID weights; expected the file {FID_WEIGHTS_FILE}"
            )
        return path
    default = checkpoint_dir() / FID_WEIGHTS_FILE
    return default if default.is_file() else None


def fid_unavailable_reason(weights_path: Path | None) -> str | None:
    """Why real-weight FID cannot run here (missing package or file), or None if it can."""
    reasons = []
    if importlib.util.find_spec("torch_fidelity") is None:
        reasons.append("the torch-fidelity package is not installed (pip install torch-fidelity)")
    if weights_path is None:
        reasons.append(
            f"weights not found: put {FID_WEIGHTS_FILE} (from {FID_WEIGHTS_URL}) in {checkpoint_dir()} "
            "or pass --fid-weights PATH"
        )
    return "; ".join(reasons) or None


class _PoolFeatures(nn.Module):
    """Wrap a :class:`FeatureExtractor` so it returns one (B, D) tensor, as torchmetrics expects."""

    def __init__(self, extractor: FeatureExtractor, metric: str, num_features: int):
        super().__init__()
        self.extractor = extractor
        self.metric = metric
        self.num_features = num_features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.extractor(images)[self.metric]


def random_fid_network() -> nn.Module:
    """Random-weight torchvision Inception-v3 ``avgpool`` at 299 px (2048-d), for tests and the demo."""
    backbone = build_backbone("inception", random_weights=True)
    return _PoolFeatures(
        FeatureExtractor(NETWORKS["inception"], backbone, FID_INPUT_SIZE), "inceptionv3", 2048
    )


class FidScorer:
    """FID of reconstruction rounds against one ground-truth set; real statistics are computed once.

    Parameters
    ----------
    weights_path : path, optional
        torch-fidelity Inception weights (real mode).
    network : torch.nn.Module, optional
        A feature network mapping [0, 1] images (B, 3, H, W) to (B, D); used instead of the real Inception.
    device : torch.device
    batch_size : int
    """

    def __init__(
        self,
        weights_path: str | Path | None = None,
        network: nn.Module | None = None,
        device: torch.device | str = "cpu",
        batch_size: int = 32,
    ):
        from torchmetrics.image.fid import FrechetInceptionDistance

        self.batch_size = batch_size
        self.device = torch.device(device)
        if network is not None:
            self.metric = FrechetInceptionDistance(feature=network, normalize=True, reset_real_features=False)
        else:
            self.metric = FrechetInceptionDistance(
                feature=2048,
                normalize=True,
                reset_real_features=False,
                feature_extractor_weights_path=str(weights_path),
            )
        self.metric = self.metric.to(self.device)

    def _update(self, images: torch.Tensor, real: bool) -> None:
        for start in range(0, images.shape[0], self.batch_size):
            self.metric.update(images[start : start + self.batch_size].to(self.device), real=real)

    @torch.no_grad()
    def real_statistics(self, gt_images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Accumulate the ground-truth statistics (returned so a reference can restore them later)."""
        self.metric.reset_real_features = True
        self.metric.reset()
        self.metric.reset_real_features = False
        self._update(gt_images, real=True)
        return {name: copy.deepcopy(getattr(self.metric, name)) for name in _STATE_NAMES}

    @torch.no_grad()
    def score(self, real_statistics: dict[str, torch.Tensor], rec_images: torch.Tensor) -> float:
        """FID of one round of reconstructions against the ground truth summarised by ``real_statistics``."""
        self.metric.reset()
        for name, value in real_statistics.items():
            setattr(self.metric, name, value.clone())
        self._update(rec_images, real=False)
        return float(self.metric.compute())
