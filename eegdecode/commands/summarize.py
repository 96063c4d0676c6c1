"""``eegdecode summarize RUNS...``: one mean ± sd table over runs (subjects x seeds) per model and k.

RUNS are run folders, ``results.json`` files or glob patterns (quote them to let eegdecode expand ``**``). The
Markdown table is printed; with ``--out`` it is also written as ``summary.md`` and ``summary.csv``.
"""

from __future__ import annotations

import argparse
import logging

from eegdecode.evaluation.summary import summarize_runs, write_summary

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "runs",
        nargs="+",
        metavar="RUNS",
        help="run folders, results.json files or glob patterns (e.g. 'runs/**')",
    )
    parser.add_argument(
        "--out", default=None, help="folder for summary.md and summary.csv (default: print only)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing summary in --out")


def run(args: argparse.Namespace) -> int:
    table = summarize_runs(args.runs)
    print(table.to_markdown())
    if args.out:
        written = write_summary(table, args.out, overwrite=args.overwrite)
        log.info("wrote %s and %s (%d runs)", written["markdown"], written["csv"], len(table.runs))
    return 0
