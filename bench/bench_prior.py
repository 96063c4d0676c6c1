"""Benchmark the generation building blocks and print the figures.

- diffusion prior training throughput (pairs/s) at full size (9.7 M parameters, batch 1024 by default);
- prior sampling throughput (embeddings/s) with 50 DDPM steps and classifier-free guidance;
- images/s of the tiny random SDXL pipeline (timing of the plumbing only: real SDXL-Turbo is far heavier).

Runs on the CPU, and on CUDA too when it is available. Example::

    python bench/bench_prior.py --threads 2 --train-steps 5 --n-sample 200
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from eegdecode.generation.prior import PriorConfig, count_parameters, sample_prior, train_prior


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_prior_training(device: torch.device, batch_size: int, steps: int) -> float:
    """Pairs per second of full-size prior training (one epoch of ``steps`` batches; the first is warm-up)."""
    n = batch_size * steps
    g = torch.Generator().manual_seed(0)
    cond, target = torch.randn(n, 1024, generator=g), torch.randn(n, 1024, generator=g)
    cfg = PriorConfig(epochs=1, batch_size=batch_size)
    # Warm-up run (allocations, kernels), then the timed one.
    train_prior(cond[:batch_size], target[:batch_size], cfg, progress=False, device=device)
    _sync(device)
    started = time.perf_counter()
    train_prior(cond, target, cfg, progress=False, device=device)
    _sync(device)
    return n / (time.perf_counter() - started)


def bench_prior_sampling(device: torch.device, n: int, steps: int) -> tuple[float, int]:
    g = torch.Generator().manual_seed(0)
    cond, target = torch.randn(64, 1024, generator=g), torch.randn(64, 1024, generator=g)
    model, _ = train_prior(cond, target, PriorConfig(epochs=1, batch_size=64), progress=False, device=device)
    queries = torch.randn(n, 1024, generator=g)
    sample_prior(model, queries[:8], n_steps=2)
    _sync(device)
    started = time.perf_counter()
    sample_prior(model, queries, n_steps=steps, guidance=5.0)
    _sync(device)
    return n / (time.perf_counter() - started), count_parameters(model.unet)


def bench_tiny_pipeline(device: torch.device, sizes: list[int], n_images: int) -> dict[int, float]:
    from eegdecode.generation.sdxl import Generator, build_tiny_pipeline

    out = {}
    with tempfile.TemporaryDirectory() as folder:
        weights = build_tiny_pipeline(folder, seed=0)
        gen = Generator(weights.sdxl, weights.ip_adapter, device=device, batch_size=n_images)
        embeds = torch.randn(n_images, 1024)
        for size in sizes:
            gen.generate(embeds[:1], [0], size, size)
            _sync(device)
            started = time.perf_counter()
            gen.generate(embeds, list(range(n_images)), size, size)
            _sync(device)
            out[size] = (time.perf_counter() - started) / n_images
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (torch default if not given)")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--train-steps", type=int, default=5, help="timed optimiser steps")
    parser.add_argument("--n-sample", type=int, default=200, help="conditions sampled together")
    parser.add_argument("--sample-steps", type=int, default=50)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 512], help="tiny-pipeline image sizes")
    parser.add_argument("--n-images", type=int, default=4, help="tiny-pipeline images per timed batch")
    parser.add_argument("--cpu-only", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = [torch.device("cpu")]
    if torch.cuda.is_available() and not args.cpu_only:
        devices.append(torch.device("cuda"))
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}")
    for device in devices:
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
        rate = bench_prior_training(device, args.batch_size, args.train_steps)
        print(
            f"[{name}] prior training: {rate:,.0f} pairs/s (batch {args.batch_size}); "
            f"150 epochs of 66,160 pairs would take {150 * 66160 / rate / 3600:.2f} h"
        )
        rate, n_params = bench_prior_sampling(device, args.n_sample, args.sample_steps)
        print(
            f"[{name}] prior sampling: {rate:,.1f} embeddings/s ({args.n_sample} together, {args.sample_steps} steps, "
            f"guidance 5, {n_params:,} parameters)"
        )
        for size, seconds in bench_tiny_pipeline(device, args.sizes, args.n_images).items():
            print(
                f"[{name}] tiny pipeline {size}x{size}, 4 steps: {seconds * 1000:.0f} ms/image (batch {args.n_images})"
            )


if __name__ == "__main__":
    main()
