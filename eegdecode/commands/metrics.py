"""``eegdecode metrics``: score reconstructions against the test images and write metrics.json / metrics.csv.

Input is a generation manifest (``--manifest gen/<model>/<subject>/manifest.json``) or two folders (``--gt-dir``,
``--recon-dir``). Weights come only from local files (``$TORCH_HOME/hub/checkpoints`` or the ``--*-weights``
flags); a metric without weights is skipped and named. ``Generation/metrics.py`` is an alias of this command.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from eegdecode.metrics.image_sets import BASE_SIZE, SOURCES, pair_folders, read_generation_manifest
from eegdecode.metrics.networks import DEFAULT_CLIP_MODEL, NETWORKS
from eegdecode.metrics.results import check_outputs_free, format_table, write_report
from eegdecode.metrics.scores import SSIM_VARIANTS
from eegdecode.metrics.suite import MetricSuite, evaluate_set

DESCRIPTION = "score reconstructions: PixCorr, SSIM, AlexNet(2), AlexNet(5), InceptionV3, CLIP, EffNet-B, SwAV (FID optional)"
logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``metrics`` options to ``parser``."""
    source = parser.add_argument_group("input: a generation manifest, or two folders")
    source.add_argument("--manifest", type=Path, help="gen/<model>/<subject>/manifest.json (or its folder)")
    source.add_argument(
        "--gt-dir", type=Path, help="ground-truth images (flat, or THINGS-style concept sub-folders)"
    )
    source.add_argument(
        "--recon-dir",
        type=Path,
        help="reconstructions, paired with --gt-dir by sorted order (sub-folders = rounds)",
    )
    source.add_argument(
        "--sources", help=f"comma list of manifest sources to score ({', '.join(SOURCES)}); default all"
    )

    output = parser.add_argument_group("output")
    output.add_argument(
        "--out", type=Path, help="folder for metrics.json and metrics.csv (default: the manifest's folder)"
    )
    output.add_argument(
        "--overwrite", action="store_true", help="replace existing metrics.json / metrics.csv"
    )

    choice = parser.add_argument_group("metrics")
    choice.add_argument(
        "--metrics",
        default="published",
        help="comma list of pixcorr, ssim, alexnet2, alexnet5, inceptionv3, clip, effnet, swav, fid; "
        "'published' (default) = the eight published metrics, 'all' = those plus FID",
    )
    choice.add_argument(
        "--base-size",
        type=int,
        default=BASE_SIZE,
        help=f"square side every image is resized to on loading (published protocol: {BASE_SIZE})",
    )
    choice.add_argument(
        "--ssim-variant",
        default="skimage",
        choices=SSIM_VARIANTS,
        help="'skimage' (default): 2-D SSIM of the grey images; 'legacy-columnwise': the column-wise SSIM of "
        "scikit-image <= 0.19 with multichannel=True, which published tables (MindEye/ATM notebook) report: "
        "use it to compare with them",
    )

    weights = parser.add_argument_group(
        "weights (local files only; default $TORCH_HOME/hub/checkpoints/<file>)"
    )
    for name, spec in NETWORKS.items():
        weights.add_argument(
            f"--{name}-weights", type=Path, metavar="PATH", help=f"{spec.title}: {spec.weights_file}"
        )
    weights.add_argument(
        "--fid-weights",
        type=Path,
        metavar="PATH",
        help="torch-fidelity Inception: weights-inception-2015-12-05-6726825d.pth",
    )
    weights.add_argument(
        "--clip-model",
        default=DEFAULT_CLIP_MODEL,
        help=f"OpenCLIP configuration for --clip-weights (default {DEFAULT_CLIP_MODEL}, right for OpenAI weights)",
    )
    weights.add_argument(
        "--random-weights",
        action="store_true",
        help="random-weight metric networks, for tests and the demo only (the report is labelled)",
    )

    run_group = parser.add_argument_group("running")
    run_group.add_argument("--device", help="cuda, cuda:N, cpu, ... (default: the GPU if there is one)")
    run_group.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="images per forward pass (default 32 on a GPU, 8 on a CPU)",
    )
    run_group.add_argument(
        "--seed", type=int, default=0, help="seed of --random-weights networks (default 0)"
    )


def _split(text: str | None) -> list[str] | None:
    return None if text is None else [s.strip() for s in text.split(",") if s.strip()]


def run(args: argparse.Namespace) -> int:
    """Run the metrics, print the table, write metrics.json and metrics.csv. Returns the exit status."""
    from eegdecode.errors import ConfigError

    if args.manifest is not None and (args.gt_dir is not None or args.recon_dir is not None):
        raise ConfigError("give either --manifest or --gt-dir/--recon-dir, not both")
    if args.manifest is None and (args.gt_dir is None or args.recon_dir is None):
        raise ConfigError("give --manifest, or both --gt-dir and --recon-dir")
    if args.manifest is not None:
        evaluation_set = read_generation_manifest(args.manifest, sources=_split(args.sources))
        out_dir = args.out or Path(evaluation_set.origin["manifest"]).parent
    else:
        if args.sources:
            raise ConfigError("--sources applies to --manifest input only")
        if args.out is None:
            raise ConfigError("--out is required with --gt-dir/--recon-dir")
        evaluation_set = pair_folders(args.gt_dir, args.recon_dir)
        out_dir = args.out
    check_outputs_free(out_dir, args.overwrite)

    weights = {name: getattr(args, f"{name}_weights") for name in [*NETWORKS, "fid"]}
    suite = MetricSuite(
        args.metrics,
        weights={k: v for k, v in weights.items() if v is not None},
        random_weights=args.random_weights,
        seed=args.seed,
        device=args.device,
        batch_size=args.batch_size,
        base_size=args.base_size,
        clip_model=args.clip_model,
        ssim_variant=args.ssim_variant,
    )
    if not suite.computed_metrics:
        logger.error("nothing to compute: every requested metric was skipped (see the messages above)")
        return 1
    report = evaluate_set(suite, evaluation_set)
    print(format_table(report))
    json_path, csv_path = write_report(report, out_dir, overwrite=args.overwrite)
    print(f"wrote {json_path} and {csv_path}")
    return 0
