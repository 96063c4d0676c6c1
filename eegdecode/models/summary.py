"""The table of encoders: name, parameter counts at 63 x 250 and 17 x 250, one-line description, source.

``python -m eegdecode.models.summary`` prints it as Markdown; ``--write`` regenerates ``summary.csv`` beside this
file (a test checks that the CSV matches the models).
"""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

from eegdecode.io import atomic_path
from eegdecode.models.base import count_parameters
from eegdecode.models.registry import build_encoder, list_encoders

SUMMARY_CSV = Path(__file__).with_name("summary.csv")
COLUMNS = ("model", "parameters_63x250", "parameters_17x250", "description", "source")

# One line per encoder: what it is and where it comes from.
DESCRIPTIONS: dict[str, tuple[str, str]] = {
    "NervformerV2": (
        "channel-attention transformer, per-subject time layer, dual TS/ST conv branches with self- and joint "
        "attention, projection head",
        "Chen et al. NECOMIMI (arXiv 2410.00712), ChiShengChen/EEG_gen_img_NECOMIMI",
    ),
    "NervformerV1": (
        "dual TS/ST conv branches with self- and joint attention, projection head (no channel attention)",
        "Chen et al. NECOMIMI (arXiv 2410.00712), ChiShengChen/EEG_gen_img_NECOMIMI",
    ),
    "MUSE_EEG": (
        "spatial-first shallow convolution, projection head",
        "Chen et al. MUSE, ChiShengChen/MUSE_EEG",
    ),
    "ATMS_50": (
        "channel-attention transformer, per-subject time layer, temporal-spatial shallow convolution, projection "
        "head",
        "Li et al. ATM (NeurIPS 2024), dongyangli-del/EEG_Image_decode",
    ),
    "NICE_EEG": (
        "temporal-spatial shallow convolution (ShallowNet patch embedding), projection head",
        "Song et al. NICE-EEG (ICLR 2024), eeyhsong/NICE-EEG",
    ),
    "EEGProject": (
        "flattened epoch through one projection head (Linear, residual GELU-Linear-Dropout 0.3, LayerNorm)",
        "Wu et al. UBP (CVPR 2025), HaitaoWuTJU/Uncertainty-aware-Blur-Prior; Zhang et al. NeuroBridge "
        "(AAAI 2026), feroooooo/NeuroBridge",
    ),
    "TSConv": (
        "temporal-spatial shallow convolution flattened filter by filter, projection head (NICE_EEG's network "
        "in NeuroBridge's layout)",
        "Zhang et al. NeuroBridge (AAAI 2026), feroooooo/NeuroBridge",
    ),
    "BlurEEGEncoder": (
        "25 non-negative spatial filters, BatchNorm, temporal MLP (time to 200 to 200, ELU, dropout 0.25 / 0.65) shared "
        "by the filters, linear head (the multi-blur paper's Brain_Visual_Encoder_EEG)",
        "Liu et al. visual blur perception (AAAI 2026), makeitperfect/VisualEEGDecoding",
    ),
    "EEGNet": (
        "braindecode EEGNet (F1 8, D 20, F2 160, kernel 4), raw 1024-d output",
        "Lawhern et al. 2018; braindecode 1.8.1",
    ),
    "ShallowFBCSPNet": (
        "braindecode ShallowFBCSPNet (20 x 20 filters, pool 25/5), raw output, no log-softmax",
        "Schirrmeister et al. 2017; braindecode 1.8.1",
    ),
    "EEGConformer": (
        "braindecode EEGConformer (40 filters, 2 blocks, 1 head), linear 1024-d head instead of the 32-d bottleneck",
        "Song et al. 2023; braindecode 1.8.1",
    ),
    "ridge": (
        "closed-form ridge regression from the standardised flattened epoch (optional time bins); "
        "alpha chosen on validation; 15,750 x 1024 fitted coefficients are buffers, only the logit scale trains",
        "this package (linear floor)",
    ),
}


#: Input sizes at which parameters are counted: all 63 channels and the 17 occipito-parietal ones, 250 samples.
COUNT_SIZES: tuple[tuple[int, int], ...] = ((63, 250), (17, 250))


def encoder_summary() -> list[dict[str, object]]:
    """One row per encoder with its trainable parameter counts (one subject, logit scale included).

    Returns
    -------
    list of dict
        Keys ``model``, ``parameters_63x250``, ``parameters_17x250``, ``description``, ``source``.
    """
    rows = []
    for name in list_encoders():
        description, source = DESCRIPTIONS[name]
        row: dict[str, object] = {"model": name}
        for n_chans, n_times in COUNT_SIZES:
            row[f"parameters_{n_chans}x{n_times}"] = count_parameters(build_encoder(name, n_chans, n_times))
        row.update(description=description, source=source)
        rows.append(row)
    return rows


def summary_markdown(rows: list[dict[str, object]]) -> str:
    """The rows as a Markdown table (counts with thousands separators)."""
    lines = [
        "| model | trainable parameters (63 x 250) | (17 x 250) | description | original source |",
        "|---|---:|---:|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['model']} | {int(row['parameters_63x250']):,} | {int(row['parameters_17x250']):,} "
            f"| {row['description']} | {row['source']} |"
        )
    return "\n".join(lines)


def summary_csv_text(rows: list[dict[str, object]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def read_summary_csv(path: str | Path = SUMMARY_CSV) -> list[dict[str, str]]:
    """Rows of the shipped ``summary.csv``."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"rewrite {SUMMARY_CSV.name} beside this module")
    args = parser.parse_args(argv)
    rows = encoder_summary()
    if args.write:
        with atomic_path(SUMMARY_CSV) as tmp:
            tmp.write_text(summary_csv_text(rows))
    print(summary_markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
