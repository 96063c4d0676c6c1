"""``eegdecode report RUNS_DIR [RUNS_DIR ...] -o report.html``: the results page of a set of run folders.

Before the page is built, every finished retrieval run without a ``profiles.json`` gets its temporal and spatial
occlusion profiles computed (:mod:`eegdecode.evaluation.profiles`; this loads the run's checkpoint and reads its
test data) unless ``--no-profiles`` is given. A run whose data set is not on disk is reported without profiles.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "runs", nargs="+", type=Path, help="folders searched for run folders, manifests and metrics"
    )
    p.add_argument(
        "-o", "--out", type=Path, default=Path("report.html"), help="the HTML page (default report.html)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing page and its _files folder")
    p.add_argument("--no-profiles", action="store_true", help="do not compute missing occlusion profiles")
    p.add_argument("--recompute-profiles", action="store_true", help="recompute profiles.json of every run")
    p.add_argument("--data-root", type=Path, help="data set of the runs (default: the one each run recorded)")
    p.add_argument(
        "--device", default="auto", help="device of the profile forward passes (auto | cpu | cuda)"
    )
    p.add_argument(
        "--window", type=float, default=0.05, help="sliding-window width in seconds (default 0.05)"
    )
    p.add_argument("--step", type=float, default=0.025, help="sliding-window hop in seconds (default 0.025)")


def compute_missing_profiles(found, args: argparse.Namespace) -> list[str]:
    """Profiles for the runs of ``found`` that lack them; returns one line per run that could not be profiled."""
    from eegdecode.errors import EEGDecodeError
    from eegdecode.evaluation.profiles import compute_profiles

    skipped = []
    for run in found.runs:
        if run.profiles is not None and not args.recompute_profiles:
            have = run.profiles.get("settings", {})
            if (have.get("window_s"), have.get("step_s")) != (args.window, args.step):
                skipped.append(f"{run.dir}: kept its profiles.json (window {have.get('window_s')} s, step "
                               f"{have.get('step_s')} s); pass --recompute-profiles to use --window/--step")  # fmt: skip
            continue
        try:
            compute_profiles(run.dir, data_root=args.data_root, device=args.device, window=args.window,
                             step=args.step, overwrite=args.recompute_profiles)  # fmt: skip
            print(f"profiles: {run.dir}")
        except (EEGDecodeError, OSError, ValueError, KeyError, RuntimeError) as err:
            skipped.append(f"{run.dir}: {err}")
            log.warning("no profiles for %s: %s", run.dir, err)
    return skipped


def run(args: argparse.Namespace) -> int:
    from eegdecode.report.build import build_report, main_command
    from eegdecode.report.collect import collect

    notes = []
    if not args.no_profiles:
        notes = [f"profiles: {line}" for line in compute_missing_profiles(collect(args.runs), args)]
    out = build_report(args.runs, args.out, overwrite=args.overwrite, command=main_command(), notes=notes)
    print(f"report: {out.resolve()}")
    return 0
