"""Aggregate the ``results.json`` of several runs (subjects x seeds) into mean ± sd tables per model and k.

Schema of the ``results.json`` read here (extra keys are ignored)::

    {
      "model": "NervformerV2",          # required: encoder name, one table row per (protocol, model)
      "subject": "sub-01",              # optional (str or int): which subject / fold the run is about
      "seed": 0,                        # optional (int): training seed
      "protocol": "intra-subject",      # optional: "intra-subject", "loso", "joint", ...; "" when absent
      "kway": { ... },                  # required: KWayResult.to_dict() of the test evaluation
      "chance": {"2": 0.5, ...},        # optional: ignored here, chance levels are taken from "kway"
      "ceiling": { ... }                # optional: KWayResult.to_dict() of the simulator's ceiling decoder
    }

The ``"kway"`` dictionary is :meth:`eegdecode.evaluation.kway.KWayResult.to_dict`; only its ``"k"`` entries
(``top1_mean``, ``top5_mean``, ``chance_top1``, ``chance_top5``) are used. Each run contributes one number per k
(its mean over distractor draws); the table gives the mean and the sample standard deviation (``ddof=1``) of those
numbers over runs, so the spread is between subjects and seeds, not between draws. With a single run the spread is
empty. Two files describing the same (protocol, model, subject, seed) are refused, so nothing is counted twice.

If runs carry a ``"ceiling"``, a row "ceiling" is added per protocol, averaged over distinct subjects (the ceiling
depends on the data, not on the model).
"""

from __future__ import annotations

import csv
import glob
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eegdecode.errors import DataFormatError, MissingFileError, OutputExistsError
from eegdecode.formats import RESULTS_NAME, read_results
from eegdecode.io import atomic_path

CEILING_MODEL = "ceiling"
CSV_COLUMNS = (
    "protocol",
    "model",
    "k",
    "n_runs",
    "top1_mean",
    "top1_sd",
    "top5_mean",
    "top5_sd",
    "chance_top1",
    "chance_top5",
)


@dataclass
class SummaryRow:
    """Mean ± sd over runs of one (protocol, model, k); accuracies are fractions in [0, 1]."""

    protocol: str
    model: str
    k: int
    n_runs: int
    top1_mean: float
    top1_sd: float | None
    top5_mean: float | None
    top5_sd: float | None
    chance_top1: float
    chance_top5: float | None

    def as_record(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in CSV_COLUMNS}


@dataclass
class SummaryTable:
    """The aggregated rows plus the runs they came from."""

    rows: list[SummaryRow]
    runs: list[dict[str, Any]] = field(default_factory=list)

    def groups(self) -> list[tuple[str, str]]:
        """(protocol, model) pairs in table order."""
        seen: dict[tuple[str, str], None] = {}
        for row in self.rows:
            seen.setdefault((row.protocol, row.model), None)
        return list(seen)

    def ks(self) -> list[int]:
        return sorted({row.k for row in self.rows})

    def to_markdown(self) -> str:
        """One line per (protocol, model), one column per k (top-1) and per k >= 5 (top-5), in percent."""
        ks = self.ks()
        top5_ks = [k for k in ks if any(r.k == k and r.top5_mean is not None for r in self.rows)]
        show_protocol = len({p for p, _ in self.groups()}) > 1 or any(p for p, _ in self.groups())
        header = (["protocol"] if show_protocol else []) + ["model", "runs"]
        header += [f"{k}-way top-1" for k in ks] + [f"{k}-way top-5" for k in top5_ks]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        index = {(r.protocol, r.model, r.k): r for r in self.rows}
        for protocol, model in self.groups():
            rows = [index.get((protocol, model, k)) for k in ks]
            n_runs = max(r.n_runs for r in rows if r is not None)
            cells = ([protocol] if show_protocol else []) + [model, str(n_runs)]
            cells += [_cell(r.top1_mean, r.top1_sd, r.n_runs, n_runs) if r else "-" for r in rows]
            for k in top5_ks:
                r = index.get((protocol, model, k))
                cells.append(_cell(r.top5_mean, r.top5_sd, r.n_runs, n_runs) if r else "-")
            lines.append("| " + " | ".join(cells) + " |")
        chance = {r.k: (r.chance_top1, r.chance_top5) for r in self.rows}
        cells = ([""] if show_protocol else []) + ["chance", ""]
        cells += [f"{100 * chance[k][0]:.2f}" for k in ks]
        cells += [f"{100 * chance[k][1]:.2f}" if chance[k][1] is not None else "-" for k in top5_ks]
        lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        lines.append(
            "Accuracy in %, mean ± sd over runs (subjects x seeds); each run's value is its mean over seeded "
            "distractor draws. A cell marked (n=...) has fewer runs than its row."
        )
        return "\n".join(lines)

    def to_csv(self) -> str:
        """Long format: one line per (protocol, model, k), fractions in [0, 1], empty cells for missing values."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.as_record().items()})
        return buffer.getvalue()


def _cell(mean: float | None, sd: float | None, n: int, n_row: int) -> str:
    if mean is None:
        return "-"
    text = f"{100 * mean:.2f}" if sd is None else f"{100 * mean:.2f} ± {100 * sd:.2f}"
    return text if n == n_row else f"{text} (n={n})"


def find_result_files(paths: Iterable[str | Path]) -> list[Path]:
    """Resolve run folders, ``results.json`` files and glob patterns to a sorted, de-duplicated list of files.

    A folder gives its own ``results.json`` or, if it has none, every ``results.json`` below it.
    """
    found: dict[Path, None] = {}
    for raw in paths:
        text = str(raw)
        matches = (
            [Path(m) for m in sorted(glob.glob(text, recursive=True))]
            if glob.has_magic(text)
            else [Path(text)]
        )
        if not matches:
            raise MissingFileError(
                text, "the pattern matched nothing; pass run folders or results.json files"
            )
        for path in matches:
            if path.is_dir():
                own = path / RESULTS_NAME
                files = [own] if own.is_file() else sorted(path.rglob(RESULTS_NAME))
                if not files:
                    raise MissingFileError(
                        own, "no results.json in this folder or below it; is the run finished?"
                    )
            elif path.is_file():
                files = [path]
            else:
                raise MissingFileError(path, "pass run folders or results.json files")
            for f in files:
                found.setdefault(f.resolve(), None)
    return list(found)


def _load_run(path: Path) -> dict[str, Any]:
    run = read_results(path)  # checked there: JSON object, 'model', per-k scores with top1_mean/chance_top1
    # a run started from a recipe is tabulated under the recipe (several recipes share one encoder)
    label = f"{run.raw['recipe']} ({run.model})" if run.raw.get("recipe") else run.model
    return {"path": str(path), "model": label, "protocol": run.protocol, "subject": run.subject,
            "seed": run.raw.get("seed"), "kway": run.kway, "ceiling": run.ceiling}  # fmt: skip


def _mean_sd(values: Sequence[float]) -> tuple[float, float | None]:
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()), (float(array.std(ddof=1)) if array.size > 1 else None)


def _aggregate(protocol: str, model: str, kways: list[dict[str, Any]]) -> list[SummaryRow]:
    ks = sorted({int(k) for kway in kways for k in kway["k"]})
    rows = []
    for k in ks:
        scores = [kway["k"][str(k)] for kway in kways if str(k) in kway["k"]]
        top1_mean, top1_sd = _mean_sd([s["top1_mean"] for s in scores])
        top5 = [s["top5_mean"] for s in scores if s.get("top5_mean") is not None]
        top5_mean, top5_sd = _mean_sd(top5) if top5 else (None, None)
        rows.append(
            SummaryRow(
                protocol=protocol,
                model=model,
                k=k,
                n_runs=len(scores),
                top1_mean=top1_mean,
                top1_sd=top1_sd,
                top5_mean=top5_mean,
                top5_sd=top5_sd,
                chance_top1=float(scores[0]["chance_top1"]),
                chance_top5=None
                if top5_mean is None
                else float(scores[0].get("chance_top5", min(5 / k, 1.0))),
            )
        )
    return rows


def summarize_runs(result_files: Iterable[str | Path]) -> SummaryTable:
    """Aggregate runs into mean ± sd per (protocol, model, k).

    Parameters
    ----------
    result_files : iterable of path-like
        ``results.json`` files, run folders or glob patterns (see :func:`find_result_files`).

    Returns
    -------
    SummaryTable
        Rows sorted by protocol, model and k; ``runs`` lists each run's path, model, protocol, subject and seed.
    """
    files = find_result_files(result_files)
    if not files:
        raise ValueError("result_files is empty; pass at least one run folder or results.json")
    runs = [_load_run(path) for path in files]

    identities: dict[tuple, str] = {}
    for run in runs:
        identity = (run["protocol"], run["model"], run["subject"], run["seed"])
        if identity in identities:
            raise DataFormatError(
                run["path"],
                "describes the same run as another file (protocol, model, subject, seed)",
                expected="one results.json per run",
                found=f"{identity} also in {identities[identity]}",
            )
        identities[identity] = run["path"]

    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["protocol"], run["model"]), []).append(run["kway"])
    rows: list[SummaryRow] = []
    for protocol, model in sorted(groups):
        rows.extend(_aggregate(protocol, model, groups[(protocol, model)]))

    ceilings: dict[str, dict[str | None, dict[str, Any]]] = {}
    for run in runs:
        if run["ceiling"]:
            ceilings.setdefault(run["protocol"], {}).setdefault(run["subject"], run["ceiling"])
    for protocol in sorted(ceilings):
        rows.extend(_aggregate(protocol, CEILING_MODEL, list(ceilings[protocol].values())))

    run_list = [{key: run[key] for key in ("path", "model", "protocol", "subject", "seed")} for run in runs]
    return SummaryTable(rows=rows, runs=run_list)


def write_summary(table: SummaryTable, out_dir: str | Path, overwrite: bool = False) -> dict[str, Path]:
    """Write ``summary.md`` and ``summary.csv`` into ``out_dir``, each atomically.

    Raises
    ------
    OutputExistsError
        If either file exists and ``overwrite`` is False.
    """
    out_dir = Path(out_dir)
    targets = {"markdown": out_dir / "summary.md", "csv": out_dir / "summary.csv"}
    if not overwrite:
        for path in targets.values():
            if path.exists():
                raise OutputExistsError(path)
    contents = {"markdown": table.to_markdown() + "\n", "csv": table.to_csv()}
    for kind, path in targets.items():
        with atomic_path(path) as tmp:
            tmp.write_text(contents[kind])
    return targets
