"""One run of a sweep: :func:`run_one`, the top-level function every executor maps over the run specs.

A run always continues what its folder holds (``train --resume``): a fresh folder starts at epoch 0, an interrupted
one continues from ``checkpoints/last``. While it works it keeps ``sweep_running.json`` (host, process, SLURM job), and
when it is done it writes ``sweep_record.json`` (its wall time, for the estimate of ``--dry-run``);
a failure leaves ``sweep_failure.json`` with the error on one line, so the next invocation reports it and reruns it
only on request (``--rerun-failed``).

With ``processes_per_run > 1`` the run is one DistributedDataParallel job through the trainer's own ``torchrun`` path:
locally :func:`run_one` starts ``python -m torch.distributed.run --standalone --nproc_per_node N -m
eegdecode.sweep.run SPEC.json``; under SLURM each task of the job sets the distributed environment and calls
:func:`train_spec` (see :class:`eegdecode.sweep.executors.RunJob`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from eegdecode.io import write_json
from eegdecode.sweep.spec import FAILURE_NAME, RECORD_NAME, RESULTS_NAME, RUNNING_NAME, RunSpec

SPEC_NAME = "sweep_spec.json"


def _marker(spec: RunSpec, **extra: Any) -> dict[str, Any]:
    job = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = f"{job}_{os.environ['SLURM_ARRAY_TASK_ID']}" if job else os.environ.get("SLURM_JOB_ID")
    return {"host": socket.gethostname(), "pid": os.getpid(), "job_id": job, "time": time.time(),
            "run": spec.label, **extra}  # fmt: skip


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def train_spec(spec: RunSpec) -> dict[str, Any] | None:
    """Train the run of ``spec`` in this process (one rank of it under DDP); returns ``results.json``'s content."""
    from eegdecode.data.datasets import Fold
    from eegdecode.data.paths import DatasetPaths
    from eegdecode.training.distributed import process_group
    from eegdecode.training.trainer import TrainConfig, train_fold

    cfg = TrainConfig.from_dict(spec.config)
    fold = Fold(**spec.fold)
    paths = DatasetPaths(spec.data_root, spec.release)
    with process_group(cfg.device):
        return train_fold(cfg, paths, fold, spec.run_dir, resume=True, progress=False)


def preflight(specs: list[RunSpec]) -> int:
    """:func:`eegdecode.training.trainer.prepare_run` (every check of data, features, image set, model options,
    run folder; nothing written) once per distinct configuration and protocol, on its first fold, on the CPU.

    Returns the number of configurations checked. Seeds and further folds of a configuration differ only in what the
    plan already checked (the subjects exist, the folders are free or resumable).
    """
    from eegdecode.data.datasets import Fold
    from eegdecode.data.paths import DatasetPaths
    from eegdecode.training.trainer import TrainConfig, prepare_run

    seen: set[str] = set()
    for spec in specs:
        config = {**spec.config, "seed": 0, "device": "cpu"}
        key = json.dumps(
            [config, spec.fold["protocol"], spec.data_root, spec.release], sort_keys=True, default=str
        )
        if key in seen:
            continue
        seen.add(key)
        cfg = TrainConfig.from_dict(config)
        prepare_run(
            cfg, DatasetPaths(spec.data_root, spec.release), Fold(**spec.fold), spec.run_dir, resume=True
        )
    return len(seen)


def _train_distributed(spec: RunSpec) -> dict[str, Any]:
    """``torchrun`` of :func:`main` with ``spec.processes`` processes on this machine."""
    run_dir = Path(spec.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / SPEC_NAME, dataclasses.asdict(spec))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(spec.processes),
           "-m", "eegdecode.sweep.run", str(run_dir / SPEC_NAME)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = [line for line in proc.stderr.splitlines() if line.strip()][-1:] or ["(no output)"]
        raise RuntimeError(
            f"torchrun with {spec.processes} processes exited with {proc.returncode}: {tail[0]}"
        )
    return json.loads((run_dir / RESULTS_NAME).read_text())


def run_one(spec: RunSpec) -> dict[str, Any]:
    """Run (or continue) one run of a sweep to its ``results.json``; returns a short record of it.

    Raises whatever the run raised, after writing ``sweep_failure.json``. An interruption (``KeyboardInterrupt``,
    ``SystemExit``) is no failure: the run stays pending and continues from ``last`` next time.
    """
    run_dir = Path(spec.run_dir)
    t0 = time.perf_counter()
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / FAILURE_NAME).unlink(missing_ok=True)
    write_json(run_dir / RUNNING_NAME, _marker(spec))
    try:
        results = _train_distributed(spec) if spec.processes > 1 else train_spec(spec)
    except Exception as exc:
        error = " ".join(f"{type(exc).__name__}: {exc}".split())
        write_json(
            run_dir / FAILURE_NAME, _marker(spec, error=error, traceback=traceback.format_exc()[-4000:])
        )
        raise
    finally:
        (run_dir / RUNNING_NAME).unlink(missing_ok=True)
    seconds = time.perf_counter() - t0
    write_json(run_dir / RECORD_NAME, _marker(spec, seconds=seconds, processes=spec.processes))
    return {"index": spec.index, "run_dir": spec.run_dir, "status": "done", "seconds": seconds,
            "top1": _top1(results)}  # fmt: skip


def _top1(results: dict[str, Any] | None) -> dict[str, float]:
    if not results:
        return {}
    return {str(k): v["top1_mean"] for k, v in results.get("kway", {}).get("k", {}).items()}


def main(argv: list[str] | None = None) -> int:
    """``python -m eegdecode.sweep.run SPEC.json``: one rank of a distributed run (started by ``torchrun``)."""
    argv = sys.argv[1:] if argv is None else argv
    spec = RunSpec(**json.loads(Path(argv[0]).read_text()))
    train_spec(spec)
    return 0


if __name__ == "__main__":
    sys.exit(main())
