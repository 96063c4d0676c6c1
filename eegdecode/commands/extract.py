"""``eegdecode extract``: generation step 1, EEG embeddings of a trained run (training trials, averaged test)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "run", nargs="?", help="run folder; or give --model/--subject (and --runs, --protocol, --seed)"
    )
    p.add_argument("--runs", default="runs", help="folder of run folders (with --model/--subject)")
    p.add_argument("--model")
    p.add_argument("--subject", help="1 or sub-01 (the fold: joint for a joint run)")
    p.add_argument("--protocol", default="intra")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--overwrite", action="store_true")


def run_folder(args: argparse.Namespace) -> Path:
    from eegdecode.errors import ConfigError, MissingFileError
    from eegdecode.training.runs import run_dir

    if args.run:
        path = Path(args.run)
    elif args.model and args.subject:
        fold = "joint" if args.protocol == "joint" else args.subject
        path = run_dir(args.runs, args.model, args.protocol, fold, args.seed)
    else:
        raise ConfigError("give a run folder, or --model and --subject (with --runs, --protocol, --seed)")
    if not (path / "config.json").exists():
        raise MissingFileError(path / "config.json", "not a run folder (create one with `eegdecode train`)")
    return path


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_run_arguments(p)
    p.add_argument("--checkpoint", default="best")


def run(args: argparse.Namespace) -> int:
    from eegdecode.generation.steps import extract_embeddings

    out = extract_embeddings(run_folder(args), args.checkpoint, args.device, args.overwrite)
    print(f"EEG embeddings written to {out}")
    return 0
