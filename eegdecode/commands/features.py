"""``eegdecode features``: open_clip image and text features of an image set, cached with provenance.

Examples::

    eegdecode features --image-set data/image_set --clip-weights weights/open_clip_pytorch_model.bin
    EEGDECODE_DATA=data eegdecode features                  # data/image_set -> data/features/ViT-H-14
    eegdecode features --open-clip-config my_model.json --model my_model --clip-weights my_model.bin

A second run with the same model, weights and images does nothing; a changed weights file or image list rebuilds
the store. The simulator writes its reference embeddings in the same store format, so this step is only needed
for real CLIP features.
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
        help="feature store folder (default: <data-root>/features/<model>, or next to the image set)",
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


def run(args: argparse.Namespace) -> int:
    """Compute (or reuse) the features; returns 0."""
    from eegdecode.embeddings.clip_features import compute_features, register_open_clip_config

    for config in args.open_clip_config:
        register_open_clip_config(config)
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
