"""Where the runs of a sweep execute: a local process pool, or SLURM (and submitit's local/debug executors).

Local (``kind: local``): a pool of spawned worker processes, each started with its own devices before torch is
imported: one worker per visible GPU (``CUDA_VISIBLE_DEVICES`` set to that GPU, or to ``processes_per_run`` GPUs
for DDP runs), else ``workers`` CPU workers; each worker is limited to an even share of the CPU threads. Workers
are reused from run to run, so a run costs no interpreter or torch start-up. A worker that dies (killed, out of
memory) stops the pool: the runs it had not finished stay pending and continue on the next invocation.

SLURM (``kind: slurm``) through ``submitit`` (https://github.com/facebookincubator/submitit): one job array of the
pending runs (``--array=0-N%parallelism``), ``timeout_min``, ``mem_gb``, ``cpus_per_task``, ``partition``,
``gpus_per_task`` and any ``additional`` sbatch parameter. Each array task is a :class:`RunJob`; on preemption or
time-out submitit calls :meth:`RunJob.checkpoint`, which requeues the same run, and the run continues from its
``checkpoints/last`` (saved every epoch). ``kind: submitit-local`` and ``kind: debug`` are submitit's local
executor (one subprocess per run) and debug executor (in this process), for trying a sweep file.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing as mp
import os
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eegdecode.errors import ConfigError
from eegdecode.sweep.run import run_one
from eegdecode.sweep.spec import RunSpec

log = logging.getLogger(__name__)

#: ``kind`` -> submitit cluster name.
SUBMITIT_KINDS = {"slurm": "slurm", "submitit-local": "local", "debug": "debug"}
KINDS = ("local", *SUBMITIT_KINDS)


# ------------------------------------------------------------------------------------------------------------
# Local process pool
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    """What one local worker may use: GPUs (``CUDA_VISIBLE_DEVICES`` entries; empty: none) and threads."""

    gpus: tuple[str, ...]
    threads: int


def visible_gpus() -> list[str]:
    """The GPUs this process sees, as ``CUDA_VISIBLE_DEVICES`` entries (``[]`` without CUDA)."""
    import torch

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    listed = [g.strip() for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]
    return (listed or [str(i) for i in range(n)])[:n]


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def local_slots(gpus: Sequence[str], workers: int | None = None, processes_per_run: int = 1,
                threads: int | None = None, cpus: int | None = None) -> list[Slot]:  # fmt: skip
    """One slot per ``processes_per_run`` GPUs when there are GPUs (at most ``workers``), else ``workers`` CPU
    slots (default 1); each with ``threads`` threads per process (default: an even share of ``cpus``)."""
    cpus = cpus or cpu_count()
    for name, value in (("workers", workers), ("threads", threads)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"Invalid value for --{name}: {value!r}; expected a positive integer")
    if gpus:
        n = len(gpus) // processes_per_run
        if n == 0:
            raise ConfigError(
                f"processes_per_run {processes_per_run} needs that many GPUs; {len(gpus)} visible ({','.join(gpus)})"
            )
        n = min(n, workers) if workers else n
        share = threads or max(1, cpus // (n * processes_per_run))
        return [
            Slot(tuple(gpus[i * processes_per_run : (i + 1) * processes_per_run]), share) for i in range(n)
        ]
    n = workers or 1
    share = threads or max(1, cpus // (n * processes_per_run))
    return [Slot((), share) for _ in range(n)]


def _init_worker(slots) -> None:
    """Runs first in each spawned worker, before torch is imported: take a slot, set devices and threads."""
    slot = slots.get()
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(slot.gpus)  # empty: a CPU worker sees no GPU
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(slot.threads)
    os.environ["EEGDECODE_SWEEP_THREADS"] = str(slot.threads)


def _set_threads() -> None:
    threads = os.environ.get("EEGDECODE_SWEEP_THREADS")
    if threads:
        import torch

        if torch.get_num_threads() != int(threads):
            torch.set_num_threads(int(threads))


def pool_task(spec: RunSpec) -> dict[str, Any]:
    """:func:`run_one` in a worker; a failure comes back as a record (its error on one line), not an exception."""
    _set_threads()
    try:
        return run_one(spec)
    except Exception as exc:
        return {"index": spec.index, "run_dir": spec.run_dir, "status": "failed",
                "error": " ".join(f"{type(exc).__name__}: {exc}".split())}  # fmt: skip


def run_local(specs: Sequence[RunSpec], slots: Sequence[Slot], on_result: Callable[[dict], None] | None = None,
              task: Callable[[RunSpec], dict] = pool_task) -> list[dict[str, Any]]:  # fmt: skip
    """Run ``specs`` on a spawned pool of ``len(slots)`` workers; returns one record per spec, in completion order.

    A worker that dies gives its run and every run not yet started the record ``{"status": "not run"}``.
    """
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    for slot in slots:
        queue.put(slot)
    records: list[dict[str, Any]] = []
    pool = ProcessPoolExecutor(len(slots), mp_context=ctx, initializer=_init_worker, initargs=(queue,))
    try:
        futures = {pool.submit(task, spec): spec for spec in specs}
        for fut in as_completed(futures):
            spec = futures[fut]
            try:
                record = fut.result()
            except BrokenProcessPool:
                record = {"index": spec.index, "run_dir": spec.run_dir, "status": "not run",
                          "error": "a worker process died; the run continues on the next invocation"}  # fmt: skip
            records.append(record)
            if on_result is not None:
                on_result(record)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return records


# ------------------------------------------------------------------------------------------------------------
# submitit: SLURM, and its local / debug executors
# ------------------------------------------------------------------------------------------------------------


class RunJob:
    """The callable submitit pickles for each run: ``__call__`` runs it, ``checkpoint`` requeues it.

    Under DDP (``tasks_per_node > 1``) every task sets the torch distributed environment from SLURM's; rank 0 keeps
    the run's markers, the other ranks only train.
    """

    def __call__(self, spec: RunSpec) -> dict[str, Any] | None:
        import submitit

        from eegdecode.sweep.run import train_spec

        try:
            env = submitit.JobEnvironment()
            tasks = env.num_tasks
        except RuntimeError:  # called outside a submitit job (a requeued submission run by hand, tests)
            tasks = 1
        if tasks > 1:
            # Every task sees the job's GPUs; the trainer picks cuda:LOCAL_RANK.
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
            if env.global_rank != 0:
                train_spec(spec)
                return None
        return run_one(dataclasses.replace(spec, processes=1))

    def checkpoint(self, spec: RunSpec):
        """Called by submitit on preemption or time-out: the same run again; it continues from ``last``."""
        import submitit

        log.info("requeueing %s; it continues from its last checkpoint", spec.run_dir)
        return submitit.helpers.DelayedSubmission(RunJob(), spec)


@dataclass
class SlurmOptions:
    """Job parameters of the submitit executors (``executor:`` in the grid file, or flags)."""

    timeout_min: int = 240
    mem_gb: float = 32
    cpus_per_task: int = 8
    gpus_per_task: int = 1
    partition: str | None = None
    array_parallelism: int = 64
    max_requeue: int = 3
    job_name: str = "eegdecode-sweep"
    additional: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("timeout_min", "cpus_per_task", "array_parallelism"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"Invalid value for {name}: {value!r}; expected a positive integer")
        for name in ("gpus_per_task", "max_requeue"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"Invalid value for {name}: {value!r}; expected an integer >= 0")
        if not (isinstance(self.mem_gb, int | float) and self.mem_gb > 0):
            raise ConfigError(f"Invalid value for mem_gb: {self.mem_gb!r}; expected a positive number")
        if not isinstance(self.additional, dict):
            raise ConfigError(f"Invalid value for additional: {self.additional!r}; expected a mapping")


def check_submitit(kind: str) -> None:
    """Refuse ``kind`` before anything runs when it cannot work here (SLURM needs ``sbatch`` and ``srun``)."""
    if kind not in SUBMITIT_KINDS:
        raise ConfigError(f"Invalid value for executor: {kind!r}; allowed values are {list(SUBMITIT_KINDS)}")
    missing = [tool for tool in ("sbatch", "srun") if shutil.which(tool) is None]
    if kind == "slurm" and missing:
        raise ConfigError(
            f"executor slurm: {' and '.join(missing)} not found on PATH; run the sweep where SLURM is (a login "
            "node), or use --executor local"
        )


def submitit_executor(kind: str, folder: str | Path, options: SlurmOptions, processes_per_run: int = 1):
    """A submitit ``AutoExecutor`` for ``kind`` (slurm | submitit-local | debug) with the job parameters set."""
    import submitit

    check_submitit(kind)
    cluster = SUBMITIT_KINDS[kind]
    executor = submitit.AutoExecutor(
        folder=str(folder), cluster=cluster, slurm_max_num_timeout=options.max_requeue
    )
    params: dict[str, Any] = {
        "name": options.job_name,
        "timeout_min": options.timeout_min,
        "mem_gb": options.mem_gb,
        "cpus_per_task": options.cpus_per_task,
        "nodes": 1,
        "tasks_per_node": processes_per_run,
    }
    if options.gpus_per_task:
        params["gpus_per_node"] = options.gpus_per_task * processes_per_run
    if cluster == "slurm":
        params["slurm_array_parallelism"] = options.array_parallelism
        if options.partition:
            params["slurm_partition"] = options.partition
        if options.additional:
            params["slurm_additional_parameters"] = dict(options.additional)
    executor.update_parameters(**params)
    return executor


def submit(executor, specs: Sequence[RunSpec]) -> list:
    """One job array of ``specs`` (one job for a single spec); returns submitit jobs in the order of ``specs``."""
    if not specs:
        return []
    return executor.map_array(RunJob(), list(specs))


def wait(jobs: Sequence, specs: Sequence[RunSpec], on_result: Callable[[dict], None] | None = None,
         poll_s: float = 5.0) -> list[dict[str, Any]]:  # fmt: skip
    """Wait for submitted jobs; one record per job (a failed job's error on one line), in completion order."""
    import submitit

    records: list[dict[str, Any]] = []
    by_id = {id(job): spec for job, spec in zip(jobs, specs)}
    for job in submitit.helpers.as_completed(list(jobs), poll_frequency=poll_s):
        spec = by_id[id(job)]
        try:
            record = job.result() or {"index": spec.index, "run_dir": spec.run_dir, "status": "done"}
        except Exception as exc:  # submitit.core.utils.FailedJobError, UncompletedJobError
            lines = [line for line in str(exc).splitlines() if line.strip()]
            error = next(
                (line for line in reversed(lines) if "Error" in line), lines[-1] if lines else repr(exc)
            )
            record = {"index": spec.index, "run_dir": spec.run_dir, "status": "failed",
                      "error": f"job {job.job_id}: {error.strip()}"}  # fmt: skip
        records.append(record)
        if on_result is not None:
            on_result(record)
    return records
