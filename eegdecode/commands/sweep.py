"""``eegdecode sweep [GRID.yaml]``: a grid of training runs, run to completion; then summaries and the report.

The grid (models x protocols x subjects x seeds x any TrainConfig key) comes from a YAML/JSON file (see
:mod:`eegdecode.sweep.spec` and ``eegdecode/configs/sweep_example.yaml``) and/or flags, which override the file.
Every run and option is checked before the first run starts. Finished runs (``results.json``) are skipped,
interrupted ones continue from their last checkpoint, failed ones are rerun only with ``--rerun-failed``;
``--dry-run`` prints the plan and runs nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import logging
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _key_values(text: str, flag: str) -> tuple[str, Any]:
    import yaml

    from eegdecode.errors import ConfigError

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{flag} {text!r}: expected KEY=VALUE")
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{flag} {text!r}: the value cannot be parsed ({exc})") from exc
    return key.strip(), parsed


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("grid", nargs="?", help="grid file (YAML/JSON); flags override it")
    p.add_argument("--out", help="folder of run folders (overrides `out:`)")
    p.add_argument("--data-root", help="data root (default: `data_root:`, else $EEGDECODE_DATA)")
    p.add_argument(
        "--release", choices=("250hz", "100hz", "meg"), help="overrides `release:` (default 250hz)"
    )
    g = p.add_argument_group("grid axes (each overrides the file's axis)")
    g.add_argument("--model", nargs="+", help="encoder names")
    g.add_argument("--protocol", nargs="+", choices=("intra", "loso", "joint"))
    g.add_argument("--seed", nargs="+", type=int)
    g.add_argument("--subject", nargs="+", help="the subject pool (default: every subject found)")
    g.add_argument("--test-subject", nargs="+", help="test subjects of the folds (default: the pool)")
    g.add_argument("--axis", action="append", default=[], metavar="KEY=V1,V2",
                   help="an axis over a TrainConfig key, e.g. lr=0.001,0.0003 or data.time_window=[[0,0.5],[0,1]]")  # fmt: skip
    g.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a TrainConfig key for every run, e.g. epochs=10 or data.channels=posterior17")  # fmt: skip
    g.add_argument("--processes-per-run", type=int, help="DDP processes (GPUs) per run (default 1)")
    s = p.add_argument_group("what to run")
    s.add_argument(
        "--dry-run", action="store_true", help="print the plan (every run and its state); run nothing"
    )
    s.add_argument(
        "--rerun-failed", action="store_true", help="also rerun failed runs (from their last checkpoint)"
    )
    s.add_argument("--take-over", action="store_true",
                   help="also start runs marked running by another host or a SLURM job (after a crash left the mark)")  # fmt: skip
    s.add_argument("--limit", type=int, help="start at most this many runs")
    s.add_argument(
        "--no-report",
        action="store_true",
        help="skip the HTML report at the end (the summary tables still print)",
    )
    e = p.add_argument_group("executor (overrides the file's `executor:`)")
    e.add_argument("--executor", choices=("local", "slurm", "submitit-local", "debug"), help="default local")
    e.add_argument("--workers", type=int, help="local: CPU workers when no GPU is visible (default 1)")
    e.add_argument("--gpus", help="local: GPUs to use, e.g. 0,1 (default: every visible one), or none")
    e.add_argument(
        "--threads", type=int, help="local: threads per worker (default: an even share of the CPUs)"
    )
    e.add_argument("--timeout-min", type=int, help="submitit: time limit per job in minutes (default 240)")
    e.add_argument("--mem-gb", type=float, help="submitit: memory per job (default 32)")
    e.add_argument("--cpus-per-task", type=int, help="submitit: CPUs per task (default 8)")
    e.add_argument("--gpus-per-task", type=int, help="submitit: GPUs per task (default 1; 0 for CPU jobs)")
    e.add_argument("--partition", help="slurm: partition")
    e.add_argument("--array-parallelism", type=int, help="slurm: array tasks running at once (default 64)")
    e.add_argument("--max-requeue", type=int, help="submitit: requeues after time-outs (default 3)")
    e.add_argument("--slurm-param", action="append", default=[], metavar="KEY=VALUE",
                   help="slurm: any other sbatch parameter, e.g. account=lab or constraint=a100")  # fmt: skip
    e.add_argument("--submitit-folder", help="submitit: job logs and pickles (default <out>/.submitit)")
    e.add_argument(
        "--no-wait", action="store_true", help="slurm: submit and return; run the sweep again later"
    )


def grid_from_args(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """The grid file's content with the flags applied, and the name of its source for messages."""
    from eegdecode.sweep.spec import read_grid_file

    grid = read_grid_file(args.grid)
    source = args.grid or "the sweep flags"
    axes = dict(grid.get("grid") or {})
    base = dict(grid.get("base") or {})
    for key, value in (("model", args.model), ("protocol", args.protocol), ("seed", args.seed)):
        if value:
            axes[key] = list(value)
    for text in args.axis:
        key, value = _key_values(text, "--axis")
        if isinstance(value, str) and "," in value:
            import yaml

            value = [yaml.safe_load(v) for v in value.split(",")]
        axes[key] = value if isinstance(value, list) else [value]
    for text in args.set:
        key, value = _key_values(text, "--set")
        head, _, tail = key.partition(".")
        if tail:
            base[head] = {**(base.get(head) or {}), tail: value}
        else:
            base[key] = value
    grid["grid"], grid["base"] = axes, base
    for key, value in (("subjects", args.subject), ("test_subjects", args.test_subject), ("release", args.release),
                       ("processes_per_run", args.processes_per_run)):  # fmt: skip
        if value is not None:
            grid[key] = value
    return grid, source


def executor_options(args: argparse.Namespace, file_options: dict[str, Any]) -> dict[str, Any]:
    """Executor kind and options, file < flags, every value checked (nothing started)."""
    from eegdecode.errors import ConfigError
    from eegdecode.sweep.executors import KINDS, SlurmOptions

    opts = dict(file_options)
    flags = {"kind": args.executor, "workers": args.workers, "gpus": args.gpus, "threads": args.threads,
             "timeout_min": args.timeout_min, "mem_gb": args.mem_gb, "cpus_per_task": args.cpus_per_task,
             "gpus_per_task": args.gpus_per_task, "partition": args.partition,
             "array_parallelism": args.array_parallelism, "max_requeue": args.max_requeue}  # fmt: skip
    opts.update({k: v for k, v in flags.items() if v is not None})
    extra = dict(opts.pop("additional", {}) or {})
    for text in args.slurm_param:
        key, value = _key_values(text, "--slurm-param")
        extra[key] = value
    kind = opts.pop("kind", "local")
    if kind not in KINDS:
        raise ConfigError(f"Invalid value for executor kind: {kind!r}; allowed values are {list(KINDS)}")
    local = {k: opts.pop(k) for k in ("workers", "gpus", "threads") if k in opts}
    slurm_keys = {f.name for f in dataclasses.fields(SlurmOptions)}
    unknown = sorted(set(opts) - slurm_keys)
    if unknown:
        known = sorted({"kind", "workers", "gpus", "threads", *slurm_keys})
        raise ConfigError(f"unknown executor option {unknown[0]!r}; known options are {', '.join(known)}")
    return {"kind": kind, "local": local, "slurm": SlurmOptions(**opts, additional=extra)}


def _slots(local: dict[str, Any], processes: int):
    from eegdecode.sweep.executors import local_slots, visible_gpus

    gpus = local.get("gpus")
    if gpus is None:
        gpu_list = visible_gpus()
    elif str(gpus).strip().lower() == "none":
        gpu_list = []
    else:
        gpu_list = [g.strip() for g in str(gpus).split(",") if g.strip()]
    return local_slots(gpu_list, local.get("workers"), processes, local.get("threads"))


def _plan_lines(sweep, states, todo) -> list[str]:
    chosen = {s.index for s in todo}
    lines = []
    for spec, state in zip(sweep.specs, states):
        mark = "run " if spec.index in chosen else "skip"
        detail = f"  ({state.detail})" if state.detail else ""
        lines.append(f"{mark} {state.status:<8} {spec.label}  {spec.run_dir}{detail}")
    return lines


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _counts(states) -> str:
    from collections import Counter

    c = Counter(s.status for s in states)
    return ", ".join(f"{c[k]} {k}" for k in ("done", "pending", "running", "failed") if c[k])


def _summaries(sweep, states, report: bool) -> None:
    """One summarize table per variant over the finished runs, then ``eegdecode report`` if it is installed."""
    from eegdecode.evaluation.summary import summarize_runs
    from eegdecode.sweep.spec import DONE, RESULTS_NAME

    for variant in sweep.variants:
        files = [Path(s.run_dir) / RESULTS_NAME for s, st in zip(sweep.specs, states)
                 if s.variant == variant and st.status == DONE]  # fmt: skip
        if files:
            print(f"\nSummary{' of ' + variant if variant else ''} over {len(files)} runs (mean ± sd):")
            print(summarize_runs(files).to_markdown())
    if not report:
        return
    if importlib.util.find_spec("eegdecode.commands.report") is None:
        print("\nreport skipped: the `eegdecode report` command is not part of this installation")
        return
    from eegdecode.cli import main

    # The sweep's own page, rebuilt from the run folders at the end of every invocation.
    code = main(["report", str(sweep.out), "-o", str(sweep.out / "report.html"), "--overwrite"])
    if code != 0:
        log.warning("the report was not written (eegdecode report exited with %d)", code)


def run(args: argparse.Namespace) -> int:
    from eegdecode.errors import ConfigError
    from eegdecode.io import write_json
    from eegdecode.sweep.spec import (
        DONE,
        FAILED,
        PENDING,
        PLAN_NAME,
        RUNNING,
        SweepIncompleteError,
        check_resumable,
        estimate,
        expand,
        plan_record,
        scan,
    )

    t0 = time.perf_counter()
    grid, source = grid_from_args(args)
    sweep = expand(grid, source, out=args.out, data_root=args.data_root)
    ex = executor_options(args, sweep.executor)
    processes = sweep.specs[0].processes if sweep.specs else 1
    slots = _slots(ex["local"], processes) if ex["kind"] == "local" else None
    if ex["kind"] != "local":
        from eegdecode.sweep.executors import check_submitit

        check_submitit(ex["kind"])
    if args.limit is not None and args.limit < 0:
        raise ConfigError(f"Invalid value for --limit: {args.limit}; expected >= 0")
    states = scan(sweep.specs)
    check_resumable(sweep.specs, states)
    wanted = {PENDING} | ({FAILED} if args.rerun_failed else set()) | ({RUNNING} if args.take_over else set())
    todo = [s for s, st in zip(sweep.specs, states) if st.status in wanted]
    todo = todo[: args.limit] if args.limit is not None else todo
    t_plan = time.perf_counter() - t0
    if todo:
        from eegdecode.sweep.run import preflight

        t1 = time.perf_counter()
        n_checked = preflight(todo)
        log.info("checked %d configuration(s) before starting (%.1f s)", n_checked, time.perf_counter() - t1)

    print(f"sweep {source}: {len(sweep.specs)} runs ({_counts(states)}); {len(todo)} to run; out {sweep.out}")
    if ex["kind"] == "local":
        where = ", ".join(f"GPU {','.join(s.gpus)}" if s.gpus else "CPU" for s in slots)
        print(f"executor local: {len(slots)} worker(s) [{where}], {slots[0].threads} thread(s) each")
    else:
        print(f"executor {ex['kind']}: {ex['slurm']}")
    if args.dry_run:
        print("\n".join(_plan_lines(sweep, states, todo)))
        parallel = len(slots) if slots else ex["slurm"].array_parallelism
        guess = estimate(sweep.specs, states, todo, parallel)
        if guess["measured"]:
            rest = (
                f"; {guess['unmeasured']} run(s) of kinds not yet measured not counted"
                if guess["unmeasured"]
                else ""
            )
            print(f"estimated wall time of the {len(todo)} runs: {_duration(guess['seconds'])} on {parallel} "
                  f"worker(s) ({_duration(guess['run_seconds'])} of run time, from {guess['measured']} finished "
                  f"run(s) of the same kind{rest})")  # fmt: skip
        print(f"(plan and state scan, imports included: {t_plan * 1e3:.0f} ms for {len(sweep.specs)} runs)")
        return 0

    write_json(sweep.out / PLAN_NAME, plan_record(sweep))
    n_done = 0

    def show(record: dict[str, Any]) -> None:
        nonlocal n_done
        n_done += 1
        spec = sweep.specs[record["index"]]
        if record["status"] == "done":
            top1 = record.get("top1") or {}
            k = min(top1, key=int) if top1 else None
            score = f"  top-1 (k={k}) {top1[k]:.3f}" if k else ""
            took = f"  {record['seconds']:.1f} s" if "seconds" in record else ""
            print(f"[{n_done}/{len(todo)}] done   {spec.label}{score}{took}", flush=True)
        else:
            print(
                f"[{n_done}/{len(todo)}] {record['status']:<6} {spec.label}: {record.get('error', '')}",
                flush=True,
            )

    if ex["kind"] == "local":
        from eegdecode.sweep.executors import run_local

        run_local(todo, slots, on_result=show)
    else:
        from eegdecode.sweep.executors import submit, submitit_executor, wait

        folder = Path(args.submitit_folder) if args.submitit_folder else sweep.out / ".submitit"
        executor = submitit_executor(ex["kind"], folder, ex["slurm"], processes)
        jobs = submit(executor, todo)
        if ex["kind"] == "slurm":
            _mark_submitted(todo, jobs)
        print(
            f"submitted {len(jobs)} job(s)" + (f": {jobs[0].job_id.split('_')[0]}" if jobs else ""),
            flush=True,
        )
        if args.no_wait:
            return 0
        wait(jobs, todo, on_result=show, poll_s=10.0 if ex["kind"] == "slurm" else 0.5)

    states = scan(sweep.specs)
    print(f"\nsweep {source}: {_counts(states)}")
    _summaries(sweep, states, report=not args.no_report)
    started = {s.index for s in todo}
    broken = [(s, st) for s, st in zip(sweep.specs, states)
              if st.status == FAILED or (s.index in started and st.status != DONE)]  # fmt: skip
    if broken:
        first, state = broken[0]
        raise SweepIncompleteError(
            f"{len(broken)} of {len(sweep.specs)} runs failed or did not finish ({_counts(states)}); first: "
            f"{first.run_dir}: {state.status} {state.detail}; run the sweep again to continue (--rerun-failed "
            "for failed runs)"
        )
    left = [st for st in states if st.status != DONE]
    if left:
        print(f"{len(left)} run(s) left ({_counts(left)}); run the sweep again to continue them")
    return 0


def _mark_submitted(specs, jobs) -> None:
    """``sweep_running.json`` for every submitted SLURM job, so a later invocation does not submit it twice."""
    from eegdecode.io import write_json
    from eegdecode.sweep.spec import RUNNING_NAME

    for spec, job in zip(specs, jobs):
        path = Path(spec.run_dir)
        path.mkdir(parents=True, exist_ok=True)
        write_json(
            path / RUNNING_NAME, {"host": None, "job_id": job.job_id, "time": time.time(), "run": spec.label}
        )
