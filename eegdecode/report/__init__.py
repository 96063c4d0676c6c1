"""The results report: one self-contained HTML page (``eegdecode report RUNS -o report.html``) built from run
folders, generation manifests and metrics results, with its figures (PNG, PDF) and tables (Markdown, CSV, LaTeX)
beside it.

``collect`` finds the artefacts (read through :mod:`eegdecode.formats`), ``tables`` and ``figures`` draw them and
``build`` writes the page. The occlusion profiles shown in it are computed by
:mod:`eegdecode.evaluation.profiles`, which needs the model; nothing in this package imports torch at import time.
"""

from eegdecode.report.build import build_report
from eegdecode.report.collect import collect

__all__ = ["build_report", "collect"]
