"""Tables of the report, each writable as HTML, Markdown, CSV and LaTeX.

A :class:`Table` holds display cells (strings) and, for CSV, optional machine-readable records (fractions, not
percent strings). The retrieval table aggregates runs per (model, setup): the mean and sample standard deviation
(``ddof=1``) over runs (subjects x seeds) of each run's own mean over distractor draws, as
:mod:`eegdecode.evaluation.summary` does, with the protocol of every row stated in the row.
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_LATEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                  "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}",
                  "±": r"$\pm$", "–": "--", "·": r"$\cdot$", "≤": r"$\le$", "≥": r"$\ge$"}  # fmt: skip


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


@dataclass
class Table:
    """A titled table: ``columns`` headers, ``rows`` of display strings, ``notes`` printed under it."""

    name: str
    title: str
    columns: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)
    records: list[dict[str, Any]] | None = None
    row_classes: list[str] | None = None
    wrap_column: str | None = "protocol"

    def to_markdown(self) -> str:
        def clean(c: str) -> str:
            return str(c).replace("|", "\\|").replace("\n", " ")

        lines = [f"**{self.title}**", "", "| " + " | ".join(map(clean, self.columns)) + " |"]
        lines.append("|" + "---|" * len(self.columns))
        lines += ["| " + " | ".join(clean(c) for c in row) + " |" for row in self.rows]
        if self.notes:
            lines += [""] + self.notes
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        buffer = io.StringIO()
        if self.records:
            keys = list(dict.fromkeys(k for r in self.records for k in r))
            writer = csv.DictWriter(buffer, fieldnames=keys, lineterminator="\n")
            writer.writeheader()
            for r in self.records:
                writer.writerow({k: "" if r.get(k) is None else r.get(k) for k in keys})
        else:
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(self.columns)
            writer.writerows([[c.replace("\n", " ") for c in row] for row in self.rows])
        return buffer.getvalue()

    def to_latex(self) -> str:
        spec = "l" * min(2, len(self.columns)) + "r" * max(0, len(self.columns) - 2)
        lines = [r"\begin{table}[t]", r"\centering", r"\small", rf"\begin{{tabular}}{{{spec}}}", r"\hline"]
        lines.append(" & ".join(latex_escape(c) for c in self.columns) + r" \\")
        lines.append(r"\hline")
        for row in self.rows:
            lines.append(" & ".join(latex_escape(c.replace("\n", "; ")) for c in row) + r" \\")
        lines += [r"\hline", r"\end{tabular}", rf"\caption{{{latex_escape(self.title)}"]
        if self.notes:
            lines[-1] += " " + latex_escape(" ".join(self.notes))
        lines[-1] += "}"
        lines += [rf"\label{{tab:{self.name}}}", r"\end{table}"]
        return "\n".join(lines) + "\n"

    def to_html(self) -> str:
        wrap = self.columns.index(self.wrap_column) if self.wrap_column in self.columns else None

        def attr(j: int) -> str:
            return ' class="proto"' if j == wrap else ""

        # Non-breaking hyphens: a narrow header wraps as "10-way / top-1", never inside "top-1".
        head = "".join(
            f"<th{attr(j)}>{html.escape(c).replace('-', '&#8209;')}</th>" for j, c in enumerate(self.columns)
        )
        body = []
        for i, row in enumerate(self.rows):
            cls = f' class="{self.row_classes[i]}"' if self.row_classes and self.row_classes[i] else ""
            cells = "".join(
                f"<td{attr(j)}>{html.escape(c).replace(chr(10), '<br>')}</td>" for j, c in enumerate(row)
            )
            body.append(f"<tr{cls}>{cells}</tr>")
        notes = "".join(f'<p class="tnote">{html.escape(n)}</p>' for n in self.notes)
        return (
            f'<div class="tablewrap"><table id="table-{self.name}"><caption>{html.escape(self.title)}</caption>'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>{notes}"
        )


def pct(mean: float | None, sd: float | None = None, n: int | None = None, n_row: int | None = None) -> str:
    """A fraction as percent, ``61.5 ± 2.1``; ``(n=2)`` when the cell has fewer runs than its row."""
    if mean is None or (isinstance(mean, float) and np.isnan(mean)):
        return "–"
    text = f"{100 * mean:.1f}" if sd is None else f"{100 * mean:.1f} ± {100 * sd:.1f}"
    return text if n is None or n == n_row else f"{text} (n={n})"


def mean_sd(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (None with fewer than two values)."""
    if not values:
        return None, None
    a = np.asarray(values, dtype=np.float64)
    return float(a.mean()), (float(a.std(ddof=1)) if a.size > 1 else None)


def aggregate_kway(kways: Sequence[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Per k: mean ± sd over runs of ``top1_mean`` and ``top5_mean``, the number of runs and the chance levels."""
    ks = sorted({int(k) for kw in kways for k in kw["k"]})
    out = {}
    for k in ks:
        scores = [kw["k"][str(k)] for kw in kways if str(k) in kw["k"]]
        t1 = mean_sd([s["top1_mean"] for s in scores])
        top5 = [s["top5_mean"] for s in scores if s.get("top5_mean") is not None]
        t5 = mean_sd(top5)
        out[k] = {"n": len(scores), "top1": t1, "top5": t5, "chance_top1": float(scores[0]["chance_top1"]),
                  "chance_top5": scores[0].get("chance_top5") if top5 else None}  # fmt: skip
    return out
