"""Images per second of the CLIP image encoder as ``eegdecode features`` runs it (transform + encode_image).

Random weights (speed does not depend on them), synthetic 500 x 500 JPEGs like the THINGS images.
Usage: ``python bench/clip_features_throughput.py --model ViT-H-14 --device cuda --batch-size 64 --n-images 512``.
With ``--open-clip-config`` a custom config (e.g. the tiny test config) can be timed instead.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import open_clip
import torch
from PIL import Image

from eegdecode.embeddings.clip_features import (
    encode_images,
    precision_of,
    register_open_clip_config,
    resolve_device,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ViT-H-14")
    parser.add_argument("--open-clip-config", type=Path, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--n-images", type=int, default=256)
    parser.add_argument("--num-workers", type=int, default=4)
    args = parser.parse_args()
    if args.open_clip_config:
        register_open_clip_config(args.open_clip_config)
    device = resolve_device(args.device)
    t0 = time.perf_counter()
    model, _, preprocess_val = open_clip.create_model_and_transforms(args.model, device=device)
    model.eval()
    print(
        f"{args.model}: built in {time.perf_counter() - t0:.1f} s, "
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters, {device}, {precision_of(device)}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        paths = []
        for i in range(args.n_images):
            paths.append(Path(tmp) / f"img_{i:05d}.jpg")
            Image.fromarray(rng.integers(0, 256, (500, 500, 3), dtype=np.uint8)).save(paths[-1], quality=90)
        encode_images(
            model, preprocess_val, paths[: args.batch_size], args.batch_size, device, 0, desc="warm-up"
        )
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        features = encode_images(model, preprocess_val, paths, args.batch_size, device, args.num_workers)
        seconds = time.perf_counter() - t0
    rate = args.n_images / seconds
    print(
        f"{args.n_images} images, batch {args.batch_size}, {args.num_workers} workers: {seconds:.2f} s, "
        f"{rate:.1f} images/s; features {features.shape}; 16740 THINGS images would take {16740 / rate / 60:.1f} min"
    )
    if device.type == "cuda":
        print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
