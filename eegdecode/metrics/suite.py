"""Run the reconstruction metrics: build the networks once, score the ground truth once, then every round.

:class:`MetricSuite` holds the chosen metrics and their networks (from local weights, injected modules, or random
weights for tests and the demo). :meth:`MetricSuite.prepare_reference` loads the ground-truth features (and FID
statistics) once; :meth:`MetricSuite.score_round` scores one set of N reconstructions against them. The functions
:func:`evaluate_set` (a manifest or folder pair) and :func:`evaluate_tensors` (images already in memory) loop over
sources and rounds and return a :class:`~eegdecode.metrics.results.MetricsReport`.

Feature networks run in batches on the GPU when there is one; correlations are computed on the same device.
"""

from __future__ import annotations

import logging
import re
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from eegdecode.errors import DataFormatError, check_option
from eegdecode.io import file_stamp
from eegdecode.metrics import scores
from eegdecode.metrics.fid import (
    FID_INPUT_SIZE,
    FidScorer,
    fid_bias_warning,
    fid_unavailable_reason,
    random_fid_network,
    resolve_fid_weights,
)
from eegdecode.metrics.image_sets import BASE_SIZE, EvaluationSet, load_images
from eegdecode.metrics.networks import (
    DEFAULT_CLIP_MODEL,
    METRIC_NETWORK,
    NETWORKS,
    FeatureExtractor,
    build_backbone,
    missing_weights_message,
    resolve_weights,
)
from eegdecode.metrics.results import (
    ALL_METRICS,
    COLUMNS,
    PUBLISHED_METRICS,
    MetricsReport,
    RoundScores,
    SourceResult,
)

logger = logging.getLogger(__name__)

TWO_WAY_METRICS = frozenset({"alexnet2", "alexnet5", "inceptionv3", "clip"})
CORRELATION_DISTANCE_METRICS = frozenset({"effnet", "swav"})
_ALIASES = {"effnetb": "effnet", "efficientnet": "effnet", "inception": "inceptionv3"}
_WEIGHT_KEYS = (*NETWORKS, "fid")


def parse_metrics(metrics: str | Sequence[str]) -> tuple[str, ...]:
    """Turn ``"published"``, ``"all"`` or a comma list (ids or column names) into metric ids, published order.

    ``published`` is the eight published metrics; ``all`` adds FID. Names are matched case-insensitively and
    without punctuation, so ``AlexNet(2)``, ``alexnet2`` and ``EffNet-B`` all work.
    """
    items = metrics.split(",") if isinstance(metrics, str) else list(metrics)
    chosen: set[str] = set()
    for item in items:
        key = re.sub(r"[^a-z0-9]", "", str(item).lower())
        if not key:
            continue
        if key == "published":
            chosen.update(PUBLISHED_METRICS)
        elif key == "all":
            chosen.update(ALL_METRICS)
        else:
            key = _ALIASES.get(key, key)
            if key not in ALL_METRICS:
                allowed = [*ALL_METRICS, "published", "all"]
                raise ValueError(
                    f"Invalid value for metrics: {str(item).strip()!r}; allowed values are {allowed}"
                )
            chosen.add(key)
    if not chosen:
        raise ValueError(f"Invalid value for metrics: {metrics!r}; name at least one of {list(ALL_METRICS)}")
    return tuple(m for m in ALL_METRICS if m in chosen)


def default_device() -> torch.device:
    """The GPU when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class Reference:
    """The ground truth as the metrics need it: base images (CPU), features per metric (on device), FID stats."""

    images: torch.Tensor
    features: dict[str, torch.Tensor]
    fid_statistics: dict[str, torch.Tensor] | None = None

    @property
    def n_images(self) -> int:
        return int(self.images.shape[0])


_SSIM_NOTES = {
    "skimage": "SSIM is 2-D SSIM (current scikit-image); published tables used the column-wise SSIM of "
    "scikit-image <= 0.19 (about 0.09 higher): --ssim-variant legacy-columnwise to compare with them",
    "legacy-columnwise": "SSIM is the legacy column-wise SSIM (scikit-image <= 0.19, multichannel=True on grey "
    "images), comparable with published tables, not with 2-D SSIM",
}


class MetricSuite:
    """The chosen metrics with their networks, ready to score rounds of reconstructions.

    Parameters
    ----------
    metrics : str or sequence of str
        See :func:`parse_metrics`; default the eight published metrics.
    weights : mapping, optional
        Weight files by network (``alexnet``, ``inception``, ``clip``, ``effnet``, ``swav``, ``fid``). Missing
        entries are looked up in ``$TORCH_HOME/hub/checkpoints``; a network with no file is skipped (its metrics are
        listed as skipped, with the file to fetch).
    networks : mapping, optional
        Ready modules by the same keys, used instead of files: a torchvision classifier with the documented layers,
        an OpenCLIP model (or image tower) for ``clip``, a :class:`FeatureExtractor`, or for ``fid`` any module mapping
        [0, 1] images to (B, D).
    random_weights : bool
        Build every network that has no injected module with random weights. For tests and the demo only: the
        report is labelled random-weight output.
    seed : int
        Seed of the random weights (same seed, same numbers).
    device : str or torch.device, optional
        Default: the GPU if there is one.
    batch_size : int, optional
        Images per forward pass; default 32 on a GPU and 8 on a CPU (larger CPU batches were slower, cache-bound).
    base_size : int or None
        Square side every image is resized to on loading (256 in the published protocol); None keeps the files'
        size (they must then agree).
    input_sizes : mapping, optional
        Network input sides that replace the documented ones (tests and quick looks; recorded in the report).
    clip_model : str
        OpenCLIP configuration of the CLIP network (``ViT-L-14-quickgelu`` for OpenAI weights).
    ssim_variant : {"skimage", "legacy-columnwise"}
        ``"skimage"`` (default): 2-D SSIM of the grey images. ``"legacy-columnwise"``: the column-wise SSIM that
        published tables computed (scikit-image <= 0.19 with ``multichannel=True`` on grey images; see
        :mod:`eegdecode.metrics.scores`). Use it to compare with published SSIM values.
    """

    def __init__(
        self,
        metrics: str | Sequence[str] = PUBLISHED_METRICS,
        *,
        weights: Mapping[str, str | Path] | None = None,
        networks: Mapping[str, nn.Module] | None = None,
        random_weights: bool = False,
        seed: int = 0,
        device: str | torch.device | None = None,
        batch_size: int | None = None,
        base_size: int | None = BASE_SIZE,
        input_sizes: Mapping[str, int] | None = None,
        clip_model: str = DEFAULT_CLIP_MODEL,
        ssim_variant: str = "skimage",
    ):
        self.metrics = parse_metrics(metrics)
        check_option("ssim_variant", ssim_variant, scores.SSIM_VARIANTS)
        self.ssim_variant = ssim_variant
        weights, networks, input_sizes = dict(weights or {}), dict(networks or {}), dict(input_sizes or {})
        for name, mapping in (("weights", weights), ("networks", networks)):
            for key in mapping:
                check_option(f"{name} key", key, _WEIGHT_KEYS)
        for key in input_sizes:
            check_option("input_sizes key", key, list(NETWORKS))
        self.device = torch.device(device) if device is not None else default_device()
        if batch_size is None:
            batch_size = 32 if self.device.type == "cuda" else 8
        if batch_size < 1:
            raise ValueError(f"Invalid value for batch_size: {batch_size}; expected a positive integer")
        self.batch_size = int(batch_size)
        self.base_size = base_size
        self.random_weights = bool(random_weights)
        self.seed = int(seed)
        self.clip_model = clip_model
        self.skipped: dict[str, str] = {}
        self.extractors: dict[str, FeatureExtractor] = {}
        self.network_info: dict[str, dict[str, Any]] = {}
        self.timings: dict[str, float] = defaultdict(float)
        self.uses_random_weights = False

        wanted_networks = [n for n in NETWORKS if any(METRIC_NETWORK.get(m) == n for m in self.metrics)]
        for k, network in enumerate(wanted_networks):
            self._add_network(
                k, network, weights.get(network), networks.get(network), input_sizes.get(network)
            )
        self.fid: FidScorer | None = None
        if "fid" in self.metrics:
            self._add_fid(weights.get("fid"), networks.get("fid"))

    def _random_build(self, offset: int, builder):
        # Seeded on a forked RNG so building random networks neither depends on nor disturbs the caller's RNG.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed + offset)
            return builder()

    def _add_network(
        self, k: int, network: str, path, module: nn.Module | None, input_size: int | None
    ) -> None:
        spec = NETWORKS[network]
        info: dict[str, Any] = {"title": spec.title, "layers": dict(spec.outputs)}
        if module is not None:
            info["weights"] = f"injected module ({type(module).__name__})"
            self.uses_random_weights = self.uses_random_weights or self.random_weights
        elif self.random_weights:
            module = self._random_build(
                k, lambda: build_backbone(network, random_weights=True, clip_model=self.clip_model)
            )
            info["weights"] = "RANDOM (random_weights=True)"
            self.uses_random_weights = True
        else:
            resolved = resolve_weights(network, path)
            if resolved is None:
                message = missing_weights_message(network)
                for metric in spec.outputs:
                    if metric in self.metrics:
                        self.skipped[metric] = message
                logger.warning("%s skipped: %s", ", ".join(COLUMNS[m] for m in spec.outputs), message)
                return
            module = build_backbone(network, resolved, clip_model=self.clip_model)
            info["weights"] = file_stamp(resolved)
        if network == "clip":
            info["clip_model"] = self.clip_model
        extractor = (
            module if isinstance(module, FeatureExtractor) else FeatureExtractor(spec, module, input_size)
        )
        info["input_size"] = extractor.input_size
        info["documented_input_size"] = spec.input_size
        self.extractors[network] = extractor.to(self.device).eval()
        self.network_info[network] = info

    def _add_fid(self, path, module: nn.Module | None) -> None:
        info: dict[str, Any] = {}
        if module is not None:
            self.fid = FidScorer(network=module, device=self.device, batch_size=self.batch_size)
            info["weights"] = f"injected module ({type(module).__name__})"
            self.uses_random_weights = self.uses_random_weights or self.random_weights
        elif self.random_weights:
            network = self._random_build(len(NETWORKS), random_fid_network)
            self.fid = FidScorer(network=network, device=self.device, batch_size=self.batch_size)
            info["weights"] = (
                f"RANDOM torchvision Inception-v3 avgpool at {FID_INPUT_SIZE} px (random_weights=True)"
            )
            self.uses_random_weights = True
        else:
            resolved = resolve_fid_weights(path)
            reason = fid_unavailable_reason(resolved)
            if reason:
                self.skipped["fid"] = reason
                logger.warning("FID skipped: %s", reason)
                return
            self.fid = FidScorer(weights_path=resolved, device=self.device, batch_size=self.batch_size)
            info["weights"] = file_stamp(resolved)
            info["implementation"] = (
                "torchmetrics FrechetInceptionDistance (torch-fidelity Inception, 2048-d)"
            )
        self.network_info["fid"] = info

    @property
    def computed_metrics(self) -> tuple[str, ...]:
        """The requested metrics that will be computed (not skipped)."""
        return tuple(m for m in self.metrics if m not in self.skipped)

    def settings(self) -> dict[str, Any]:
        """Everything that defines the numbers, for the report."""
        return {
            "base_size": self.base_size,
            "resize": "bilinear, antialias=True, square",
            "pixcorr_size": scores.PIXCORR_SIZE,
            "ssim": {
                "variant": self.ssim_variant,
                "size": scores.SSIM_SIZE,
                "gray": "skimage.color.rgb2gray",
                "gaussian_weights": True,
                "sigma": scores.SSIM_SIGMA,
                "use_sample_covariance": False,
                "data_range": 1.0,
            },
            "networks": self.network_info,
            "device": str(self.device),
            "batch_size": self.batch_size,
            "random_weight_seed": self.seed if self.uses_random_weights else None,
        }

    def _notes(self, n_images: int) -> list[str]:
        notes = []
        for network, info in self.network_info.items():
            if "documented_input_size" in info and info["input_size"] != info["documented_input_size"]:
                notes.append(
                    f"{network} input side {info['input_size']} px instead of the documented "
                    f"{info['documented_input_size']} px: not comparable with published numbers"
                )
        if "ssim" in self.computed_metrics:
            notes.append(_SSIM_NOTES[self.ssim_variant])
        if self.base_size != BASE_SIZE:
            notes.append(f"base size {self.base_size} instead of the published {BASE_SIZE} px")
        if self.fid is not None:
            notes.append(fid_bias_warning(n_images))
        return notes

    @torch.inference_mode()
    def _features(self, network: str, images: torch.Tensor) -> dict[str, torch.Tensor]:
        start_time = time.perf_counter()
        extractor = self.extractors[network]
        chunks: dict[str, list[torch.Tensor]] = defaultdict(list)
        for start in range(0, images.shape[0], self.batch_size):
            batch = images[start : start + self.batch_size].to(self.device, non_blocking=True)
            for metric, value in extractor(batch).items():
                chunks[metric].append(value)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.timings[f"{network} features"] += time.perf_counter() - start_time
        return {metric: torch.cat(values) for metric, values in chunks.items() if metric in self.metrics}

    def _check_images(self, images: torch.Tensor, name: str) -> None:
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[0] < 2:
            raise DataFormatError(
                None, f"{name} must be a batch of RGB images", "(N >= 2, 3, H, W)", tuple(images.shape)
            )
        if images.dtype != torch.float32 or float(images.min()) < 0 or float(images.max()) > 1:
            raise DataFormatError(
                None,
                f"{name} must be float32 in [0, 1]",
                "float32 in [0, 1]",
                f"{images.dtype} in [{float(images.min()):.3g}, {float(images.max()):.3g}]",
            )

    def prepare_reference(self, gt_images: torch.Tensor) -> Reference:
        """Compute what the metrics need from the ground truth, once for all sources and rounds.

        Parameters
        ----------
        gt_images : torch.Tensor
            (N, 3, S, S) float32 in [0, 1], already at the base size (see :func:`~eegdecode.metrics.load_images`).
        """
        self._check_images(gt_images, "gt_images")
        features: dict[str, torch.Tensor] = {}
        for network in self.extractors:
            features.update(self._features(network, gt_images))
        fid_statistics = None
        if self.fid is not None:
            start_time = time.perf_counter()
            fid_statistics = self.fid.real_statistics(gt_images)
            self.timings["fid"] += time.perf_counter() - start_time
        return Reference(gt_images.cpu(), features, fid_statistics)

    def score_round(self, reference: Reference, rec_images: torch.Tensor) -> RoundScores:
        """Score one reconstruction per ground-truth image (same order) against ``reference``."""
        self._check_images(rec_images, "rec_images")
        if rec_images.shape != reference.images.shape:
            raise DataFormatError(
                None,
                "reconstructions must pair with the ground truth",
                tuple(reference.images.shape),
                tuple(rec_images.shape),
            )
        per_image: dict[str, np.ndarray] = {}
        if "pixcorr" in self.computed_metrics:
            start_time = time.perf_counter()
            per_image["pixcorr"] = scores.pixcorr(
                reference.images.to(self.device), rec_images.to(self.device)
            )
            self.timings["pixcorr"] += time.perf_counter() - start_time
        if "ssim" in self.computed_metrics:
            start_time = time.perf_counter()
            per_image["ssim"] = scores.ssim(reference.images, rec_images.cpu(), variant=self.ssim_variant)
            self.timings["ssim"] += time.perf_counter() - start_time
        for network in self.extractors:
            rec_features = self._features(network, rec_images)
            start_time = time.perf_counter()
            for metric, rec in rec_features.items():
                gt = reference.features[metric]
                if metric in TWO_WAY_METRICS:
                    per_image[metric] = scores.two_way_identification(gt, rec)
                else:
                    per_image[metric] = scores.correlation_distance(gt, rec)
            self.timings[f"{network} scores"] += time.perf_counter() - start_time
        values = {m: float(np.mean(per_image[m])) for m in self.computed_metrics if m in per_image}
        if self.fid is not None:
            start_time = time.perf_counter()
            values["fid"] = self.fid.score(reference.fid_statistics, rec_images)
            self.timings["fid"] += time.perf_counter() - start_time
        return RoundScores({m: values[m] for m in self.computed_metrics}, per_image)


def _report(
    suite: MetricSuite,
    sources: dict[str, SourceResult],
    n_images: int,
    origin: dict[str, Any],
    generator_random_weights: bool | None,
    indices: list[int],
    concepts: list[str],
) -> MetricsReport:
    report = MetricsReport(
        n_images=n_images,
        requested=suite.metrics,
        skipped=dict(suite.skipped),
        sources=sources,
        origin=origin,
        random_weights={"generation": generator_random_weights, "metric_networks": suite.uses_random_weights},
        settings=suite.settings(),
        indices=indices,
        concepts=concepts,
        notes=suite._notes(n_images),
    )
    if suite.fid is not None:
        logger.warning(fid_bias_warning(n_images))
    return report


def evaluate_set(suite: MetricSuite, evaluation_set: EvaluationSet, progress: bool = True) -> MetricsReport:
    """Score every source and round of ``evaluation_set`` (from a manifest or a folder pair).

    The ground truth is loaded and featurised once; each round is loaded when it is scored.

    Returns
    -------
    MetricsReport
    """
    if not suite.computed_metrics:
        raise ValueError(f"Every requested metric was skipped: {suite.skipped}")
    gt_images = load_images([r.path for r in evaluation_set.ground_truth], suite.base_size)
    reference = suite.prepare_reference(gt_images)
    jobs = [
        (s, r, records)
        for s, rounds in evaluation_set.reconstructions.items()
        for r, records in rounds.items()
    ]
    results: dict[str, dict[int, RoundScores]] = defaultdict(dict)
    for source, round_id, records in tqdm(jobs, desc="metrics", unit="round", disable=not progress):
        rec_images = load_images([r.path for r in records], suite.base_size)
        results[source][round_id] = suite.score_round(reference, rec_images)
        logger.debug("%s round %d: %s", source, round_id, results[source][round_id].values)
    sources = {s: SourceResult(s, rounds) for s, rounds in results.items()}
    return _report(
        suite,
        sources,
        evaluation_set.n_images,
        evaluation_set.origin,
        evaluation_set.generator_random_weights,
        [r.index for r in evaluation_set.ground_truth],
        [r.concept for r in evaluation_set.ground_truth],
    )


def evaluate_tensors(
    suite: MetricSuite,
    gt_images: torch.Tensor,
    reconstructions: Mapping[str, Sequence[torch.Tensor]] | torch.Tensor,
    generator_random_weights: bool | None = None,
) -> MetricsReport:
    """Score images already in memory.

    Parameters
    ----------
    suite : MetricSuite
    gt_images : torch.Tensor
        (N, 3, S, S) float32 in [0, 1].
    reconstructions : tensor or mapping
        One (N, 3, S, S) tensor (one source ``recon``, one round), or ``{source: [round 0, round 1, ...]}``.
    generator_random_weights : bool, optional
        Whether the reconstructions came from a random-weight generator (labels the report).
    """
    if isinstance(reconstructions, torch.Tensor):
        reconstructions = {"recon": [reconstructions]}
    reference = suite.prepare_reference(gt_images)
    sources = {
        source: SourceResult(source, {k: suite.score_round(reference, rec) for k, rec in enumerate(rounds)})
        for source, rounds in reconstructions.items()
    }
    n = reference.n_images
    return _report(suite, sources, n, {"mode": "tensors"}, generator_random_weights, list(range(n)), [])
