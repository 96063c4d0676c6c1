"""Time MVNN on a full-size THINGS-EEG2 session: the looped sklearn reference against the batched version.

A full-size session's training partition is 8270 image conditions x 2 repetitions x 63 channels x 300 samples
(float64, 2.5 GB). The reference calls ``sklearn.discriminant_analysis._cov(shrinkage='auto')`` once per matrix, as
the original preprocessing does; ``eegdecode.preprocessing.mvnn.mean_shrinkage_covariance`` does the same sums in
batches. Prints both times, the speed-up and the largest relative difference.

    python bench/bench_mvnn.py                       # full size, 'epochs' mode, CPU
    python bench/bench_mvnn.py --conditions 1000     # smaller
    python bench/bench_mvnn.py --device cuda --threads 16
    python bench/bench_mvnn.py --reference-conditions 2000   # time the reference on a subset and scale it up
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eegdecode.preprocessing.mvnn import mean_shrinkage_covariance  # noqa: E402


def reference(data: np.ndarray, mvnn_dim: str) -> np.ndarray:
    from sklearn.discriminant_analysis import _cov

    sigma_cond = []
    for cond in data:
        if mvnn_dim == "epochs":
            sigma_cond.append(np.mean([_cov(rep.T, shrinkage="auto") for rep in cond], axis=0))
        else:
            sigma_cond.append(
                np.mean([_cov(cond[:, :, t], shrinkage="auto") for t in range(cond.shape[2])], axis=0)
            )
    return np.mean(sigma_cond, axis=0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--conditions", type=int, default=8270)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--channels", type=int, default=63)
    p.add_argument("--times", type=int, default=300)
    p.add_argument("--mvnn-dim", default="epochs", choices=("epochs", "time"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch threads for the batched version")
    p.add_argument("--chunk", type=int, default=16)
    p.add_argument(
        "--reference-conditions",
        type=int,
        default=None,
        help="time the reference on this many conditions only",
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    shape = (args.conditions, args.reps, args.channels, args.times)
    mix = rng.normal(size=(args.channels, args.channels)) + 3 * np.eye(args.channels)
    data = np.empty(shape)
    for start in range(0, shape[0], 512):
        block = rng.standard_normal((min(512, shape[0] - start), *shape[1:]))
        data[start : start + 512] = np.einsum("cd,nrdt->nrct", mix, block, optimize=True) * 1e-5
    print(f"session {shape} float64 ({data.nbytes / 2**30:.2f} GiB), mvnn_dim={args.mvnn_dim}")

    if args.device.startswith("cuda"):
        mean_shrinkage_covariance(data[:8], args.mvnn_dim, device=args.device)  # CUDA start-up
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fast = mean_shrinkage_covariance(data, args.mvnn_dim, chunk=args.chunk, device=args.device)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    t_fast = time.perf_counter() - t0
    print(f"batched  ({args.device}, {args.threads} thread(s)): {t_fast:8.2f} s")

    n_ref = args.reference_conditions or args.conditions
    t0 = time.perf_counter()
    ref = reference(data[:n_ref], args.mvnn_dim)
    t_ref = (time.perf_counter() - t0) * args.conditions / n_ref
    scaled = "" if n_ref == args.conditions else f" (measured on {n_ref} conditions, scaled)"
    print(f"reference (sklearn _cov, looped):        {t_ref:8.2f} s{scaled}")
    check = fast if n_ref == args.conditions else mean_shrinkage_covariance(data[:n_ref], args.mvnn_dim)
    rel = np.abs(check - ref).max() / np.abs(ref).max()
    print(f"speed-up {t_ref / t_fast:.1f}x; max |difference| / max |reference| = {rel:.2e}")


if __name__ == "__main__":
    main()
