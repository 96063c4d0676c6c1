"""Time k-way retrieval evaluation on CPU: 200 x 1024 embeddings, 100 draws, k in {2, 4, 10, 50, 100, 200}.

Run: ``OMP_NUM_THREADS=1 python bench/bench_kway.py``. Prints the best of a few repeats per gallery size.
"""

from __future__ import annotations

import time

import numpy as np

from eegdecode.evaluation.kway import kway_accuracy, standard_ks


def main() -> None:
    rng = np.random.default_rng(0)
    for n_items, n_draws in ((200, 100), (200, 1000), (1000, 100)):
        gallery = rng.standard_normal((n_items, 1024)).astype(np.float32)
        query = gallery + 15.0 * rng.standard_normal((n_items, 1024)).astype(np.float32)
        ks = standard_ks(n_items)
        times = []
        for _ in range(3):
            start = time.perf_counter()
            result = kway_accuracy(query, gallery, ks=ks, n_draws=n_draws, seed=0)
            times.append(time.perf_counter() - start)
        top1 = ", ".join(f"{k}: {100 * s.top1_mean:.1f}" for k, s in result.scores.items())
        print(f"{n_items} items x 1024, {n_draws} draws, ks {ks}: best {min(times):.3f} s  (top-1 % {top1})")


if __name__ == "__main__":
    main()
