"""Time the reconstruction-metric suite on N images (default 200, the THINGS-EEG2 test set) with random weights.

Times loading (N ground-truth JPEGs and N reconstruction PNGs written to a temporary folder), building the
networks, the ground-truth pass and one round of reconstructions, with a per-metric breakdown. The random ViT-L/14 of
the CLIP metric is slow on a CPU: by default it is timed on ``--clip-images`` images and extrapolated to 2 N images
(labelled as such); ``--clip-images -1`` runs it on all of them.

    PYTHONPATH=. python bench/bench_metrics.py [--n-images 200] [--device cpu] [--threads 2] [--fid]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from eegdecode.metrics import MetricSuite, load_images
from eegdecode.metrics.networks import NETWORKS, FeatureExtractor, build_backbone


def _images(n: int, size: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    low = F.interpolate(
        torch.rand(n, 3, 8, 8, generator=g), size=(size, size), mode="bicubic", align_corners=False
    )
    return (low + 0.1 * torch.rand(n, 3, size, size, generator=g)).clamp(0, 1)


def _write(images: torch.Tensor, folder: Path, suffix: str) -> list[Path]:
    folder.mkdir(parents=True)
    paths = []
    for i, image in enumerate(images):
        path = folder / f"{i:04d}{suffix}"
        Image.fromarray((image.permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=200)
    parser.add_argument("--clip-images", type=int, default=8, help="images for the ViT-L/14 timing (-1: all)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--batch-size", type=int, default=None, help="default: 32 on a GPU, 8 on a CPU")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    parser.add_argument("--fid", action="store_true", help="also time FID (random Inception, 2048-d)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    n = args.n_images
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    print(f"device {device}, torch threads {torch.get_num_threads()}, N = {n} images")

    with tempfile.TemporaryDirectory() as tmp:
        gt_paths = _write(_images(n, 500, 0), Path(tmp) / "gt", ".jpg")
        rec_paths = _write(_images(n, 512, 1), Path(tmp) / "rec", ".png")
        start = time.perf_counter()
        gt = load_images(gt_paths)
        rec = load_images(rec_paths)
        t_load = time.perf_counter() - start
    print(f"load + resize to 256 px: {t_load:6.1f} s  ({2 * n} images)")

    metrics = "pixcorr,ssim,alexnet2,alexnet5,inceptionv3,effnet,swav" + (",fid" if args.fid else "")
    start = time.perf_counter()
    suite = MetricSuite(metrics, random_weights=True, device=device, batch_size=args.batch_size)
    t_build = time.perf_counter() - start
    start = time.perf_counter()
    reference = suite.prepare_reference(gt)
    t_reference = time.perf_counter() - start
    start = time.perf_counter()
    scores = suite.score_round(reference, rec)
    t_round = time.perf_counter() - start
    print(f"build networks (random): {t_build:6.1f} s")
    print(f"ground-truth pass:       {t_reference:6.1f} s")
    print(f"one round of N recons:   {t_round:6.1f} s")
    for name, seconds in sorted(suite.timings.items(), key=lambda kv: -kv[1]):
        print(f"    {name:<22s} {seconds:6.1f} s")
    total = t_load + t_build + t_reference + t_round

    k = 2 * n if args.clip_images < 0 else min(args.clip_images, 2 * n)
    if k > 0:
        start = time.perf_counter()
        backbone = build_backbone("clip", random_weights=True)
        extractor = FeatureExtractor(NETWORKS["clip"], backbone).to(device)
        t_clip_build = time.perf_counter() - start
        start = time.perf_counter()
        with torch.inference_mode():
            both = torch.cat([gt, rec])
            for s in range(0, k, suite.batch_size):
                extractor(both[s : min(s + suite.batch_size, k)].to(device))
        if device.type == "cuda":
            torch.cuda.synchronize()
        t_clip = (time.perf_counter() - start) * (2 * n) / k
        how = "measured" if k == 2 * n else f"extrapolated from {k} images"
        print(
            f"CLIP ViT-L/14 (random): build {t_clip_build:.1f} s, features of {2 * n} images {t_clip:.1f} s ({how})"
        )
        total += t_clip_build + t_clip
    print(f"TOTAL for the {n}-image suite{' with FID' if args.fid else ''}: {total:.1f} s")
    print("values (random weights, meaningless):", {m: round(v, 3) for m, v in scores.values.items()})


if __name__ == "__main__":
    main()
