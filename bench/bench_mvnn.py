"""Time MVNN on a full-size THINGS-EEG2 session: the looped sklearn reference against the batched version.

A full-size session's training partition is 8270 image conditions x 2 repetitions x 63 channels x 300 samples
(float64, 2.3 GiB). The reference calls ``sklearn.discriminant_analysis._cov(shrinkage='auto')`` once per matrix, as
the original preprocessing does; ``eegdecode.preprocessing.mvnn.mean_shrinkage_covariance`` does the same sums in
batches. Both run on the same number of threads (``--threads``: torch's and every BLAS pool numpy and sklearn use,
set with threadpoolctl), alternately, ``--repeats`` times each; the script prints every time, the medians, the
speed-up of the medians and the largest relative difference between the two results.

    python bench/bench_mvnn.py --repeats 5           # full size, 'epochs' mode, CPU, one thread each
    python bench/bench_mvnn.py --threads 2           # both on two threads
    python bench/bench_mvnn.py --mvnn-dim time --reference-conditions 30   # reference on a subset, scaled up
    python bench/bench_mvnn.py --device cuda --chunk 256

Measured on the 2-core development machine (AMD EPYC, no GPU, shared with other jobs), medians:

    mode     threads  batched   reference (looped _cov)     speed-up  before this version (torch bmm, chunk 16)
    epochs   1        1.35 s    18.8 s   (--repeats 5)      14.0x     2.4-3.2 s: 7-9x
    epochs   2        1.55 s    20.6 s   (--repeats 3)      13.3x     -
    time     1        4.9 s     2207 s   (30 conditions)    450x      11.7 s: 215x

Timings vary by 10-20 % between runs on this shared machine; the speed-up in 'epochs' mode ranged 13.8-14.9x over
three runs of five repeats.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eegdecode.preprocessing.mvnn import mean_shrinkage_covariance  # noqa: E402


def reference(data: np.ndarray, mvnn_dim: str) -> np.ndarray:
    """The original loop (same as ``reference_mvnn_covariance`` in tests/preprocessing/test_mvnn.py)."""
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


def simulated_session(shape: tuple[int, int, int, int], seed: int = 0) -> np.ndarray:
    """Correlated channels in volts (about 1e-5) with a different offset per channel."""
    rng = np.random.default_rng(seed)
    n_ch = shape[2]
    mix = rng.normal(size=(n_ch, n_ch)) + 3 * np.eye(n_ch)
    offsets = rng.normal(scale=2e-5, size=(n_ch, 1))
    data = np.empty(shape)
    for start in range(0, shape[0], 512):
        block = rng.standard_normal((min(512, shape[0] - start), *shape[1:]))
        data[start : start + 512] = np.einsum("cd,nrdt->nrct", mix, block, optimize=True) * 1e-5 + offsets
    return data


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--conditions", type=int, default=8270)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--channels", type=int, default=63)
    p.add_argument("--times", type=int, default=300)
    p.add_argument("--mvnn-dim", default="epochs", choices=("epochs", "time"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="threads for both methods (torch and BLAS)")
    p.add_argument("--chunk", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each method (medians are compared)")
    p.add_argument(
        "--reference-conditions",
        type=int,
        default=None,
        help="time the reference on this many conditions only and scale its time up",
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    shape = (args.conditions, args.reps, args.channels, args.times)
    data = simulated_session(shape)
    print(
        f"session {shape} float64 ({data.nbytes / 2**30:.2f} GiB), mvnn_dim={args.mvnn_dim}, chunk={args.chunk}"
    )
    n_ref = args.reference_conditions or args.conditions
    cuda = args.device.startswith("cuda")

    with threadpool_limits(args.threads):
        if cuda:
            mean_shrinkage_covariance(data[:8], args.mvnn_dim, device=args.device)  # CUDA start-up
            torch.cuda.synchronize()
        t_fast, t_ref = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fast = mean_shrinkage_covariance(data, args.mvnn_dim, chunk=args.chunk, device=args.device)
            if cuda:
                torch.cuda.synchronize()
            t_fast.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            ref = reference(data[:n_ref], args.mvnn_dim)
            t_ref.append((time.perf_counter() - t0) * args.conditions / n_ref)
        check = fast if n_ref == args.conditions else mean_shrinkage_covariance(data[:n_ref], args.mvnn_dim)

    def runs(times: list[float]) -> str:
        return ", ".join(f"{t:.2f}" for t in times)

    scaled = "" if n_ref == args.conditions else f", measured on {n_ref} conditions and scaled"
    label = f"{args.threads} thread(s) each"
    print(f"batched   ({args.device}): median {np.median(t_fast):7.2f} s  [{runs(t_fast)}]")
    print(f"reference (sklearn _cov, looped): median {np.median(t_ref):7.2f} s  [{runs(t_ref)}]{scaled}")
    rel = np.abs(check - ref).max() / np.abs(ref).max()
    print(f"speed-up {np.median(t_ref) / np.median(t_fast):.1f}x ({label}); "
          f"max |difference| / max |reference| = {rel:.2e}")  # fmt: skip


if __name__ == "__main__":
    main()
