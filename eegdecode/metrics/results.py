"""Results of a metrics run: per-round scores, mean and spread over rounds, the printed table, JSON and CSV files.

Columns always follow the published order (PixCorr, SSIM, AlexNet(2), AlexNet(5), InceptionV3, CLIP, EffNet-B,
SwAV, then FID when asked for). The spread is the sample standard deviation over rounds (``ddof=1``; absent with
one round). A metric that could not run is listed as skipped with the reason, never written as a number. Output made
with random-weight networks (generator or metric networks) carries a label in the table, the JSON and the CSV.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eegdecode.errors import OutputExistsError
from eegdecode.io import atomic_path, write_json

REPORT_FORMAT = "eegdecode-metrics/1"
PUBLISHED_METRICS = ("pixcorr", "ssim", "alexnet2", "alexnet5", "inceptionv3", "clip", "effnet", "swav")
ALL_METRICS = (*PUBLISHED_METRICS, "fid")
COLUMNS = {
    "pixcorr": "PixCorr",
    "ssim": "SSIM",
    "alexnet2": "AlexNet(2)",
    "alexnet5": "AlexNet(5)",
    "inceptionv3": "InceptionV3",
    "clip": "CLIP",
    "effnet": "EffNet-B",
    "swav": "SwAV",
    "fid": "FID",
}
LOWER_IS_BETTER = frozenset({"effnet", "swav", "fid"})
JSON_NAME = "metrics.json"
CSV_NAME = "metrics.csv"


@dataclass
class RoundScores:
    """One round: the metric values (means over images) and, except FID, the per-image values."""

    values: dict[str, float]
    per_image: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class SourceResult:
    """All rounds of one source (``eeg``, ``prior``, ...), keyed by round id."""

    source: str
    rounds: dict[int, RoundScores]

    def mean(self) -> dict[str, float]:
        """Mean over rounds of each metric."""
        metrics = next(iter(self.rounds.values())).values
        return {m: float(np.mean([r.values[m] for r in self.rounds.values()])) for m in metrics}

    def sd(self) -> dict[str, float | None]:
        """Sample standard deviation over rounds (None with a single round)."""
        metrics = next(iter(self.rounds.values())).values
        if len(self.rounds) < 2:
            return dict.fromkeys(metrics)
        return {m: float(np.std([r.values[m] for r in self.rounds.values()], ddof=1)) for m in metrics}


@dataclass
class MetricsReport:
    """Everything a metrics run found, ready to print or write."""

    n_images: int
    requested: tuple[str, ...]
    skipped: dict[str, str]
    sources: dict[str, SourceResult]
    origin: dict[str, Any]
    random_weights: dict[str, bool | None]
    settings: dict[str, Any]
    indices: list[int] = field(default_factory=list)
    concepts: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def computed(self) -> tuple[str, ...]:
        return tuple(m for m in self.requested if m not in self.skipped)

    @property
    def is_random_weight_output(self) -> bool:
        return bool(self.random_weights.get("generation")) or bool(self.random_weights.get("metric_networks"))

    def random_weight_label(self) -> str | None:
        """The label of random-weight output, or None for real output."""
        if not self.is_random_weight_output:
            return None
        parts = [
            name
            for name, key in (("generator", "generation"), ("metric networks", "metric_networks"))
            if self.random_weights.get(key)
        ]
        return f"RANDOM-WEIGHT OUTPUT ({' and '.join(parts)}): not comparable with published numbers"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (the content of ``metrics.json``)."""
        results = {}
        for source, result in self.sources.items():
            results[source] = {
                "n_rounds": len(result.rounds),
                "mean": result.mean(),
                "sd": result.sd(),
                "rounds": [
                    {
                        "round": round_id,
                        "values": scores.values,
                        "per_image": {m: v.tolist() for m, v in scores.per_image.items()},
                    }
                    for round_id, scores in result.rounds.items()
                ],
            }
        return {
            "format": REPORT_FORMAT,
            "label": self.random_weight_label(),
            "random_weights": self.random_weights,
            "origin": self.origin,
            "n_images": self.n_images,
            "columns": {m: COLUMNS[m] for m in self.requested},
            "lower_is_better": [m for m in self.requested if m in LOWER_IS_BETTER],
            "computed": list(self.computed),
            "skipped": self.skipped,
            "spread": "sample standard deviation over rounds (ddof=1); null with one round",
            "settings": self.settings,
            "notes": self.notes,
            "indices": self.indices,
            "concepts": self.concepts,
            "results": results,
        }


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan" if value is not None else ""
    if abs(value) < 0.5 * 10.0**-digits:
        value = 0.0  # print 0.000, not -0.000, for a value that only rounding made negative
    return f"{value:.{digits}f}"


def format_table(report: MetricsReport, digits: int = 3) -> str:
    """The results as a text table (one row per source, published column order, mean ± sd over rounds)."""
    origin = report.origin
    who = " ".join(str(origin[k]) for k in ("model", "subject") if origin.get(k))
    n_rounds = sorted({len(r.rounds) for r in report.sources.values()})
    lines = [
        f"Reconstruction metrics{': ' + who if who else ''} - N = {report.n_images} test images, "
        f"{'/'.join(map(str, n_rounds))} round(s) per source, mean ± sd over rounds"
    ]
    label = report.random_weight_label()
    if label:
        lines.append(f"!! {label}")
    header = ["source", *(COLUMNS[m] for m in report.requested)]
    rows = []
    for source, result in report.sources.items():
        mean, sd = result.mean(), result.sd()
        cells = [source]
        for m in report.requested:
            if m in report.skipped:
                cells.append("skipped")
            elif sd.get(m) is None:
                cells.append(_fmt(mean[m], digits))
            else:
                cells.append(f"{_fmt(mean[m], digits)} ± {_fmt(sd[m], digits)}")
        rows.append(cells)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for cells in [header, *rows]:
        lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip())
    lower = [COLUMNS[m] for m in report.requested if m in LOWER_IS_BETTER]
    if lower:
        lines.append(
            f"Higher is better, except {', '.join(lower)} (lower is better). Two-way chance level: 0.5."
        )
    by_reason: dict[str, list[str]] = {}
    for metric, reason in report.skipped.items():
        by_reason.setdefault(reason, []).append(COLUMNS[metric])
    lines.extend(f"skipped {', '.join(columns)}: {reason}" for reason, columns in by_reason.items())
    lines.extend(f"note: {note}" for note in report.notes)
    return "\n".join(lines)


def output_paths(out_dir: str | Path) -> tuple[Path, Path]:
    """``(out_dir/metrics.json, out_dir/metrics.csv)``."""
    out_dir = Path(out_dir)
    return out_dir / JSON_NAME, out_dir / CSV_NAME


def check_outputs_free(out_dir: str | Path, overwrite: bool = False) -> None:
    """Raise :class:`OutputExistsError` if a result file exists and ``overwrite`` is False (call before computing)."""
    if overwrite:
        return
    for path in output_paths(out_dir):
        if path.exists():
            raise OutputExistsError(path)


def report_csv(report: MetricsReport) -> str:
    """The CSV text: one row per source, a mean and an sd column per requested metric, skipped cells left empty."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    metric_columns = [c for m in report.requested for c in (COLUMNS[m], f"{COLUMNS[m]} sd")]
    writer.writerow(
        ["model", "subject", "source", "n_images", "n_rounds", "random_weights", *metric_columns, "skipped"]
    )
    skipped = "; ".join(COLUMNS[m] for m in report.skipped)
    for source, result in report.sources.items():
        mean, sd = result.mean(), result.sd()
        cells = []
        for m in report.requested:
            cells += (
                ["", ""] if m in report.skipped else [repr(mean[m]), "" if sd[m] is None else repr(sd[m])]
            )
        writer.writerow(
            [
                report.origin.get("model") or "",
                report.origin.get("subject") or "",
                source,
                report.n_images,
                len(result.rounds),
                str(report.is_random_weight_output).lower(),
                *cells,
                skipped,
            ]
        )
    return buffer.getvalue()


def write_report(report: MetricsReport, out_dir: str | Path, overwrite: bool = False) -> tuple[Path, Path]:
    """Write ``metrics.json`` and ``metrics.csv`` atomically; refuse to replace them unless ``overwrite``.

    Returns
    -------
    tuple of pathlib.Path
        The JSON and CSV paths.
    """
    check_outputs_free(out_dir, overwrite)
    json_path, csv_path = output_paths(out_dir)
    write_json(json_path, report.to_dict())
    with atomic_path(csv_path) as tmp:
        tmp.write_text(report_csv(report))
    return json_path, csv_path
