"""Reconstruction metrics: how close generated images are to the images the subject saw.

The eight published metrics (PixCorr, SSIM, AlexNet(2), AlexNet(5), InceptionV3, CLIP, EffNet-B, SwAV) and an
optional FID, each defined once (``scores``), with their networks built offline from local weights (``networks``),
images paired by test index from a generation manifest or two folders (``image_sets``), rounds of generations scored
against one ground-truth pass (``suite``), and the table / JSON / CSV output (``results``). ``plots`` draws ground truth
next to reconstructions. The command line is ``eegdecode metrics`` (``Generation/metrics.py``).
"""

from eegdecode.metrics.image_sets import (
    EvaluationSet,
    ImageRecord,
    load_image,
    load_images,
    pair_folders,
    read_generation_manifest,
)
from eegdecode.metrics.networks import (
    DEFAULT_CLIP_MODEL,
    NETWORKS,
    FeatureExtractor,
    build_backbone,
    checkpoint_dir,
    resolve_weights,
)
from eegdecode.metrics.results import (
    ALL_METRICS,
    COLUMNS,
    PUBLISHED_METRICS,
    MetricsReport,
    format_table,
    write_report,
)
from eegdecode.metrics.scores import (
    correlation_distance,
    pearson_matrix,
    pixcorr,
    ssim,
    two_way_from_correlation,
    two_way_identification,
)
from eegdecode.metrics.suite import MetricSuite, evaluate_set, evaluate_tensors, parse_metrics

__all__ = [
    "ALL_METRICS",
    "COLUMNS",
    "DEFAULT_CLIP_MODEL",
    "NETWORKS",
    "PUBLISHED_METRICS",
    "EvaluationSet",
    "FeatureExtractor",
    "ImageRecord",
    "MetricSuite",
    "MetricsReport",
    "build_backbone",
    "checkpoint_dir",
    "correlation_distance",
    "evaluate_set",
    "evaluate_tensors",
    "format_table",
    "load_image",
    "load_images",
    "pair_folders",
    "parse_metrics",
    "pearson_matrix",
    "pixcorr",
    "read_generation_manifest",
    "resolve_weights",
    "ssim",
    "two_way_from_correlation",
    "two_way_identification",
    "write_report",
]
