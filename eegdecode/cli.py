"""The ``eegdecode`` command line: one entry point, one sub-command per job.

Sub-command modules live in ``eegdecode.commands`` and are imported only when used, so ``eegdecode --help`` is
fast. Each module defines ``add_arguments(parser)`` and ``run(args) -> int``; the one-line help is in ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# name -> (module in eegdecode.commands, one-line help shown by `eegdecode --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "simulate": ("simulate", "write a simulated THINGS-EEG2 data set in the real on-disk layout"),
    "download": ("download", "fetch THINGS-EEG2 / THINGS-MEG into the data-root layout (resumable)"),
    "prepare": ("prepare", "convert THINGS-EEG2 pickles once into a memory-mapped cache"),
    "preprocess": (
        "preprocess",
        "raw EEG (THINGS raw / BrainVision) or THINGS-MEG (epochs derivative or raw BIDS) -> preprocessed release + cache",
    ),
    "features": ("features", "vision targets: any backbone's layers and blur variants of an image set"),
    "train": ("train", "train an encoder (intra / loso / joint) and evaluate it once on the test set"),
    "recipes": ("recipes", "published methods' settings for `train --recipe`, with the papers' numbers"),
    "sweep": ("sweep", "a grid of runs (models x protocols x subjects x seeds), locally or on SLURM"),
    "evaluate": ("evaluate", "k-way retrieval of a trained run's checkpoint on the test set"),
    "summarize": ("summarize", "mean ± sd tables over runs (subjects x seeds) per model and k"),
    "extract": ("extract", "generation step 1: EEG embeddings of a trained run"),
    "generate": ("generate", "generation step 2: diffusion prior + SDXL-Turbo/IP-Adapter images"),
    "metrics": (
        "metrics",
        "reconstruction metrics (PixCorr, SSIM, AlexNet, Inception, CLIP, EffNet-B, SwAV, FID)",
    ),
    "report": ("report", "one self-contained HTML page (figures, tables, provenance) from run folders"),
    "demo": ("demo", "run the whole pipeline on the built-in simulated data set"),
}


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors on one line (``eegdecode train: error: ... (see --help)``), exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _load(name: str):
    return importlib.import_module(f"eegdecode.commands.{COMMANDS[name][0]}")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = _Parser(prog="eegdecode", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Only the chosen command's module is imported; the others get a lightweight placeholder for --help.
    wanted = next((a for a in (argv or []) if a in COMMANDS), None)
    for name in COMMANDS:
        if wanted is None or name == wanted:
            mod = _load(name)
            p = sub.add_parser(name, help=COMMANDS[name][1], description=COMMANDS[name][1])
            mod.add_arguments(p)
            p.set_defaults(_run=mod.run)
        else:
            sub.add_parser(name, help=COMMANDS[name][1])
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    # Our messages at INFO; third-party libraries (some log to the root logger) only from WARNING, unless -v.
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    ours = logging.getLogger("eegdecode")
    previous_level = ours.level  # restored on return, so an in-process call leaves logging as it found it
    ours.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        if not getattr(args, "_run", None):
            parser.print_help()
            return 0 if args.command is None else 2
        from eegdecode.errors import EEGDecodeError

        try:
            return int(args._run(args) or 0)
        except EEGDecodeError as exc:
            if args.verbose:
                raise
            message = " ".join(str(exc).split())  # one line, whatever the message holds
            print(f"eegdecode {args.command}: error: {message}", file=sys.stderr)
            return exc.exit_code
    finally:
        ours.setLevel(previous_level)


def run_alias(command: str, *fixed: str, argv: list[str] | None = None) -> int:
    """Entry point of the thin scripts in Retrieval/, Generation/, ...: ``eegdecode COMMAND [user flags] FIXED``.

    The fixed flags come last, so a script named after a model always trains that model.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a in ("-h", "--help") for a in argv):
        return main([command, "--help"])
    return main([command, *argv, *fixed])
