"""The sweep's own cost per run, apart from training: ``python -m eegdecode.sweep.overhead --data-root DATA``.

Measures, on an N-run grid of the data set at ``--data-root`` (seeds x learning rates x its subjects):

- plan: :func:`eegdecode.sweep.spec.expand` (every TrainConfig built and checked, folders, folds), after one
  warm-up expansion so imports are not counted;
- scan: :func:`eegdecode.sweep.spec.scan` of N fresh folders and of N finished ones, and the comparison of the
  finished runs' ``config.json`` with the grid (:func:`eegdecode.sweep.spec.check_resumable`);
- dispatch: the local process pool running N trivial runs (:func:`noop_task`): the wall time from the first
  result to the last, per run (the pool's start-up, up to the first result, is paid once per sweep).

Nothing is trained; the finished folders are written under a temporary folder and removed.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

from eegdecode.sweep.spec import RESULTS_NAME, RunSpec, check_resumable, expand, scan


def noop_task(spec: RunSpec) -> dict[str, Any]:
    """A run that does nothing: what dispatching one run costs."""
    return {"index": spec.index, "run_dir": spec.run_dir, "status": "done"}


def _grid(data_root: str, out: str, n_runs: int, n_subjects: int) -> dict[str, Any]:
    per_subject = max(1, math.ceil(n_runs / n_subjects))
    n_lr = max(1, int(math.sqrt(per_subject)))
    n_seeds = math.ceil(per_subject / n_lr)
    return {"out": out, "data_root": data_root, "base": {"model": "MUSE_EEG", "device": "cpu"},
            "grid": {"lr": [1e-4 * (i + 1) for i in range(n_lr)], "seed": list(range(n_seeds))}}  # fmt: skip


def measure(data_root: str, n_runs: int = 200, workers: int = 2) -> dict[str, float]:
    from eegdecode.data.paths import DatasetPaths
    from eegdecode.sweep.executors import local_slots, run_local

    n_subjects = len(DatasetPaths(data_root).subjects())
    with tempfile.TemporaryDirectory() as tmp:
        grid = _grid(data_root, str(Path(tmp) / "runs"), n_runs, n_subjects)
        expand(grid)  # warm-up: imports
        t0 = time.perf_counter()
        sweep = expand(grid)
        t_plan = time.perf_counter() - t0
        n = len(sweep.specs)
        t0 = time.perf_counter()
        scan(sweep.specs)
        t_scan_fresh = time.perf_counter() - t0
        for spec in sweep.specs:
            Path(spec.run_dir).mkdir(parents=True)
            (Path(spec.run_dir) / RESULTS_NAME).write_text(json.dumps({}))
            (Path(spec.run_dir) / "config.json").write_text(json.dumps(spec.config))
        t0 = time.perf_counter()
        states = scan(sweep.specs)
        t_scan_done = time.perf_counter() - t0
        t0 = time.perf_counter()
        check_resumable(sweep.specs, states)
        t_check_done = time.perf_counter() - t0
        slots = local_slots([], workers=workers, threads=1)
        stamps: list[float] = []
        t0 = time.perf_counter()
        run_local(sweep.specs, slots, on_result=lambda _: stamps.append(time.perf_counter()), task=noop_task)
        t_start = stamps[0] - t0
        t_dispatch = (stamps[-1] - stamps[0]) / max(1, n - 1)
    return {
        "runs": n,
        "plan_ms_per_run": 1e3 * t_plan / n,
        "scan_fresh_ms_per_run": 1e3 * t_scan_fresh / n,
        "scan_done_ms_per_run": 1e3 * t_scan_done / n,
        "config_check_done_ms_per_run": 1e3 * t_check_done / n,
        "pool_start_s": t_start,
        "dispatch_ms_per_run": 1e3 * t_dispatch,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", required=True, help="a data set (e.g. `eegdecode simulate --preset tiny`)")
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    for key, value in measure(args.data_root, args.runs, args.workers).items():
        print(f"{key}: {value:.3f}" if isinstance(value, float) else f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
