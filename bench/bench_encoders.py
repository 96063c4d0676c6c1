"""Forward + backward throughput of every encoder at 63 x 250, on CPU (and CUDA when present).

Prints one table: parameter count, device, batch size, samples per second and milliseconds per training step
(forward, a mean-square loss, backward; no optimizer step). The ridge floor has no backward pass: its row is the
prediction throughput with random coefficients, and ``--ridge-fit N`` also times a closed-form fit on N random
trials (time bins of 5 samples).

Usage::

    python bench/bench_encoders.py --quick            # 1 timed step, batch 256 and 1024, CPU
    python bench/bench_encoders.py --iters 10 --device cuda
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import numpy as np
import torch

from eegdecode.models import build_encoder, count_parameters, list_encoders

N_CHANS, N_TIMES = 63, 250


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_training_step(name: str, batch: int, device: torch.device, iters: int, warmup: int) -> float:
    """Mean seconds per forward + backward step."""
    model = build_encoder(name, N_CHANS, N_TIMES).to(device)
    x = torch.randn(batch, N_CHANS, N_TIMES, device=device)
    if name == "ridge":
        with torch.no_grad():
            model.coef.normal_(std=0.01)
            model.fitted.fill_(True)
        model.eval()

        def step() -> None:
            with torch.no_grad():
                model(x)
    else:
        model.train()

        def step() -> None:
            model.zero_grad(set_to_none=True)
            model(x).square().mean().backward()

    for _ in range(warmup):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        step()
    _sync(device)
    return (time.perf_counter() - start) / iters


def time_ridge_fit(n_trials: int, device: torch.device) -> float:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n_trials, N_CHANS, N_TIMES)).astype(np.float16)
    y = rng.standard_normal((n_trials, 1024)).astype(np.float32)
    n_val = max(n_trials // 20, 1)
    model = build_encoder("ridge", N_CHANS, N_TIMES, time_bin=5)
    start = time.perf_counter()
    model.fit(x[n_val:], y[n_val:], x[:n_val], y[:n_val], alphas=[1.0, 10.0, 100.0], device=device)
    _sync(device)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one warm-up and one timed step per setting")
    parser.add_argument("--iters", type=int, default=5, help="timed steps per setting (default 5)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    parser.add_argument("--models", nargs="+", default=list_encoders(), help="encoder names (default: all)")
    parser.add_argument(
        "--ridge-fit", type=int, default=4096, help="trials for the ridge fit timing (0: skip)"
    )
    args = parser.parse_args(argv)
    iters, warmup = (1, 1) if args.quick else (args.iters, 2)

    devices = []
    if args.device in ("cpu", "all"):
        devices.append(torch.device("cpu"))
    if args.device in ("cuda", "all") and torch.cuda.is_available():
        devices.append(torch.device("cuda"))

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
        f"torch threads {torch.get_num_threads()}, {gpu}; torch {torch.__version__}"
    )
    print(f"input {N_CHANS} x {N_TIMES}; {iters} timed step(s) after {warmup} warm-up step(s)\n")
    header = f"{'model':<16} {'parameters':>12} {'device':>6} {'batch':>6} {'samples/s':>10} {'ms/step':>9}"
    print(header)
    print("-" * len(header))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in args.models:
            n_params = count_parameters(build_encoder(name, N_CHANS, N_TIMES))
            for device in devices:
                for batch in args.batch_sizes:
                    seconds = time_training_step(name, batch, device, iters, warmup)
                    label = f"{name} (predict)" if name == "ridge" else name
                    print(
                        f"{label:<16} {n_params:>12,} {device.type:>6} {batch:>6} {batch / seconds:>10.1f} "
                        f"{1000 * seconds:>9.1f}",
                        flush=True,
                    )
        if args.ridge_fit > 0:
            for device in devices:
                seconds = time_ridge_fit(args.ridge_fit, device)
                print(
                    f"\nridge fit: {args.ridge_fit} trials, time_bin 5 (3,150 features), 3 alphas, "
                    f"{device.type}: {seconds:.1f} s"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
