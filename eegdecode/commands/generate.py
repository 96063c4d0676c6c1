"""``eegdecode generate``: generation step 2, diffusion prior (trained if missing) + SDXL-Turbo/IP-Adapter images."""

from __future__ import annotations

import argparse

from eegdecode.commands.extract import add_run_arguments, run_folder


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_run_arguments(p)
    p.add_argument("--out", default="outputs", help="images go to OUT/gen/<model>/<subject>/<source>/")
    p.add_argument(
        "--sdxl", help="local sdxl-turbo folder (diffusers layout); default: local Hugging Face cache"
    )
    p.add_argument("--ip-adapter", help="local folder holding sdxl_models/ip-adapter_sdxl_vit-h.safetensors")
    p.add_argument(
        "--tiny", action="store_true", help="a tiny RANDOM-WEIGHT pipeline (tests and demo: images are noise)"
    )
    p.add_argument("--prior-epochs", type=int, default=150)
    p.add_argument("--prior-batch-size", type=int, default=1024)
    p.add_argument(
        "--prior-prediction",
        default=None,
        choices=("epsilon", "sample"),
        help="what the prior's network predicts: 'sample' (the clean embedding x0, as DALL-E 2's prior; the "
        "default) or 'epsilon' (the noise, ATM's recipe); see README",
    )
    p.add_argument(
        "--prior-normalisation",
        default=None,
        choices=("standardise", "unit"),
        help="data space of the prior: 'standardise' (per-dimension standardised targets and conditions; the "
        "default) or 'unit' (unit-norm targets, raw conditions: ATM's convention); see README",
    )
    p.add_argument(
        "--n-per-concept", type=int, default=1, help="images per test concept and source (ATM used 10)"
    )
    p.add_argument("--size", type=int, default=512, help="image side in pixels")
    p.add_argument(
        "--sources", nargs="+", default=["image", "eeg", "prior"], choices=("image", "eeg", "prior")
    )
    p.add_argument("--max-images", type=int, help="only the first N test images")
    p.add_argument(
        "--lowlevel", action="store_true", help="add the low-level path: EEG -> SDXL-VAE latent -> img2img"
    )
    p.add_argument("--strength", type=float, default=0.5, help="img2img strength of the low-level path")


def run(args: argparse.Namespace) -> int:
    from eegdecode.generation.steps import generate_from_run

    manifest = generate_from_run(
        run_folder(args), args.out, sdxl=args.sdxl, ip_adapter=args.ip_adapter, tiny=args.tiny,
        prior_epochs=args.prior_epochs, prior_batch_size=args.prior_batch_size,
        prior_prediction=args.prior_prediction, prior_normalisation=args.prior_normalisation, n_per_concept=args.n_per_concept,
        size=args.size, seed=args.seed, device=args.device, overwrite=args.overwrite, sources=tuple(args.sources),
        max_images=args.max_images, lowlevel=args.lowlevel, strength=args.strength,
    )  # fmt: skip
    print(f"images and manifest written: {manifest}")
    return 0
