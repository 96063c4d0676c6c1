"""``eegdecode features``: vision features of an image set (targets), cached with provenance.

Examples::

    eegdecode features --image-set data/image_set --clip-weights weights/open_clip_pytorch_model.bin
    EEGDECODE_DATA=data eegdecode features                  # data/image_set -> data/features/ViT-H-14
    eegdecode features --open-clip-config my_model.json --model my_model --clip-weights my_model.bin

    # targets (eegdecode.targets): any layer, pooling and blur variant -> data/targets/<key>/
    eegdecode features --backbone open_clip:RN50 --clip-weights weights/RN50.bin --blur ubp
    eegdecode features --backbone open_clip:ViT-H-14 --layer block:20 --layer block:24 --pooling mean
    eegdecode features --backbone hf:weights/dinov2-base --layer embedding --layer block:-4 --no-text
    eegdecode features --backbone open_clip:ViT-H-14 --list-layers     # needs no weights

Without ``--backbone``/``--layer``/``--blur`` the command writes the final open_clip embedding into the feature
store the trainer reads (``eegdecode.embeddings.store``). With them it writes a target store
(``eegdecode.targets.store``). Either way a second run with the same model, weights and images does nothing; a
changed weights file or image list rebuilds what it affects (``--no-rebuild``: fail instead).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
from pathlib import Path

from eegdecode.errors import MissingFileError

log = logging.getLogger(__name__)

DATA_ENV = "EEGDECODE_DATA"
DEFAULT_MODEL = "ViT-H-14"  # kept equal to clip_features.DEFAULT_MODEL without importing torch for --help


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``features`` options to ``parser``."""
    parser.add_argument(
        "--data-root",
        type=Path,
        default=None,
        help=f"data folder holding image_set/ and features/ (default: ${DATA_ENV})",
    )
    parser.add_argument(
        "--image-set", type=Path, default=None, help="the image_set folder (default: <data-root>/image_set)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="feature store folder (default: <data-root>/features/<model>, or next to the image set); with "
        "targets, the folder holding the target stores (default: <data-root>/targets)",
    )
    parser.add_argument("--model", default=DEFAULT_MODEL, help="open_clip model name (default: %(default)s)")
    parser.add_argument(
        "--clip-weights",
        default=None,
        help="local weights file (open_clip state dict), or a pretrained tag already in the local Hugging Face "
        "cache (default for ViT-H-14: laion2b_s32b_b79k); nothing is downloaded",
    )
    parser.add_argument(
        "--batch-size", type=int, default=64, help="images per forward pass (default: %(default)s)"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    parser.add_argument(
        "--num-workers",
        type=int,
        default=None,
        help="JPEG-decoding worker processes (default: 0 on CPU, up to 8 on GPU)",
    )
    parser.add_argument(
        "--splits", nargs="+", choices=("train", "test"), default=["train", "test"], help="splits to compute"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="recompute even if the cache matches; replace a store of another source",
    )
    parser.add_argument(
        "--hash-weights", action="store_true", help="also record and compare the SHA-256 of the weights file"
    )
    parser.add_argument(
        "--open-clip-config",
        type=Path,
        action="append",
        default=[],
        metavar="JSON",
        help="register an extra open_clip model config file (its file name, without .json, is the model name); "
        "repeatable",
    )
    targets = parser.add_argument_group("targets (any layer, pooling and blur variant; eegdecode.targets)")
    targets.add_argument(
        "--backbone",
        default=None,
        help="open_clip:NAME (weights from --clip-weights) or hf:PATH (a local Hugging Face folder: DINOv2, "
        "SigLIP, CLIP vision); default open_clip:<--model> when --layer or --blur is given",
    )
    targets.add_argument(
        "--layer",
        action="append",
        default=None,
        help="embedding (final), block:I (0-based, negative from the end) or a module name; repeatable "
        "(default: embedding)",
    )
    targets.add_argument(
        "--pooling", default="cls", help="for block layers: cls, mean or tokens:N (default: %(default)s)"
    )
    targets.add_argument(
        "--blur",
        action="append",
        default=None,
        help="image variant: none, gaussian:K, fovea:K[:G] (UBP), multiblur12 (12 Gaussian levels), ubp[:K:C] "
        "(foveated K-C, K, K+C), noise:S, lowres:F, mosaic:P (NeuroBridge's augmentations); repeatable "
        "(default: none)",
    )
    targets.add_argument(
        "--blur-size", type=int, default=224, help="square size blurred images are rendered at (default: 224)"
    )
    targets.add_argument("--no-text", action="store_true", help="skip the prompt features (always for hf:)")
    targets.add_argument(
        "--no-rebuild",
        action="store_true",
        help="fail instead of rebuilding targets whose provenance changed",
    )
    targets.add_argument(
        "--export",
        type=Path,
        default=None,
        metavar="DIR",
        help="also write the one computed array (one --layer, one --blur) as a feature store the trainer reads "
        "today (`eegdecode train --features DIR`)",
    )
    targets.add_argument(
        "--list-layers",
        action="store_true",
        help="print the layers of the backbone (name, module, class, output shape) and exit",
    )
    targets.add_argument(
        "--all-modules", action="store_true", help="with --list-layers: also list every named module"
    )


def _data_root(args: argparse.Namespace) -> Path | None:
    if args.data_root is not None:
        return args.data_root
    env = os.environ.get(DATA_ENV)
    return Path(env) if env else None


def resolve_paths(args: argparse.Namespace) -> tuple[Path, Path]:
    """The image-set folder and the output folder implied by the flags and ``$EEGDECODE_DATA``."""
    data_root = _data_root(args)
    image_set = args.image_set
    if image_set is None:
        if data_root is None:
            raise MissingFileError(
                "image set",
                f"Pass --image-set PATH, --data-root PATH, or set ${DATA_ENV} to the data folder.",
            )
        image_set = data_root / "image_set"
    out = args.out
    if out is None:
        base = data_root if data_root is not None else image_set.parent
        # Model names can carry characters that are awkward in folder names (e.g. ``hf-hub:org/name``).
        out = base / "features" / re.sub(r"[^A-Za-z0-9._-]+", "_", args.model)
    return image_set, out


def _target_spec(args: argparse.Namespace):
    from eegdecode.targets.spec import TargetSpec

    backbone = args.backbone or f"open_clip:{args.model}"
    is_open_clip = backbone.startswith("open_clip:")
    return TargetSpec(
        backbone=backbone,
        weights=args.clip_weights if is_open_clip else None,
        layers=tuple(args.layer or ("embedding",)),
        pooling=args.pooling,
        blur=tuple(args.blur or ("none",)),
        text=is_open_clip and not args.no_text,
        blur_size=args.blur_size,
    )


def _list_layers(args: argparse.Namespace) -> int:
    from eegdecode.targets.extractors import build_extractor

    spec = _target_spec(args)
    # Listing needs the architecture only: open_clip without --clip-weights builds random weights.
    extractor = build_extractor(
        spec, "cpu", load_weights=spec.source != "open_clip" or args.clip_weights is not None
    )
    print(f"{'layer':<14} {'module':<40} {'class':<28} output shape (one image)")
    for info in extractor.layers(modules=args.all_modules):
        print(info.line())
    return 0


def _run_targets(args: argparse.Namespace) -> int:
    from eegdecode.targets.compute import compute_targets

    spec = _target_spec(args)
    if args.export is not None and (len(spec.layers) != 1 or len(spec.blur) != 1):
        raise ValueError(
            f"Invalid value for --export: {str(args.export)!r}; it takes one --layer and one --blur variant, "
            f"got layers {list(spec.layers)} and variants {list(spec.blur)}"
        )
    image_set, _ = resolve_paths(args)
    root = args.out
    if root is None:
        data_root = _data_root(args)
        root = (data_root if data_root is not None else image_set.parent) / "targets"
    store = compute_targets(
        image_set,
        root,
        spec,
        device=args.device,
        batch_size=args.batch_size,
        splits=tuple(args.splits),
        force=args.force,
        rebuild=not args.no_rebuild,
        num_workers=args.num_workers,
        hash_weights=args.hash_weights,
    )
    log.info("target store: %s", store.folder)
    print(store.folder)
    if args.export is not None:
        layer = store.layer_names[spec.layers[0]]
        store.export_features(args.export, layer, spec.pooling, spec.blur[0], force=args.force)
        log.info("feature store for the trainer: %s", args.export)
        print(args.export)
    return 0


def run(args: argparse.Namespace) -> int:
    """Compute (or reuse) the features, or list the layers; returns 0."""
    from eegdecode.embeddings.clip_features import compute_features, register_open_clip_config

    for config in args.open_clip_config:
        register_open_clip_config(config)
    if getattr(args, "list_layers", False):
        return _list_layers(args)
    if getattr(args, "backbone", None) or getattr(args, "layer", None) or getattr(args, "blur", None):
        return _run_targets(args)
    image_set, out = resolve_paths(args)
    compute_features(
        image_set,
        out,
        model=args.model,
        weights=args.clip_weights,
        batch_size=args.batch_size,
        device=args.device,
        splits=tuple(args.splits),
        force=args.force,
        num_workers=args.num_workers,
        hash_weights=args.hash_weights,
    )
    log.info("feature store: %s", out)
    return 0
