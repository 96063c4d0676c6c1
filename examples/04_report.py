"""Results report

A results report from finished runs: one HTML page with figures and tables (what `eegdecode report` writes).

Two ridge runs (seeds 0 and 1) on a tiny simulated subject are enough for the report to have something to show:
the retrieval table next to the simulator's ceiling, the temporal and spatial profiles, and the provenance of each
run. The page goes to `report.html`, its figures (PNG and PDF) and tables (Markdown, CSV, LaTeX) to
`report_files/`.
"""

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

from eegdecode.data.cache import prepare_subject
from eegdecode.data.datasets import DataOptions, make_folds
from eegdecode.data.paths import DatasetPaths
from eegdecode.evaluation.ceiling import simulate_with_ceiling
from eegdecode.report import build_report
from eegdecode.training.runs import run_dir as run_folder
from eegdecode.training.trainer import TrainConfig, train_fold

work = Path(tempfile.mkdtemp(prefix="eegdecode_example_"))
root = work / "data"
simulate_with_ceiling(root, "tiny", n_subjects=1, seed=0, dtype="float32", progress=False, vision=False)
paths = DatasetPaths(root)
prepare_subject(paths.subject_dir("sub-01"), paths.cache_dir("sub-01"))

fold = make_folds("intra", [1])[0]
base = TrainConfig(model="ridge", model_options={"time_bin": 5}, device="cpu", eval_draws=50,
                   data=DataOptions(val_fraction=0.1))  # fmt: skip
for seed in (0, 1):
    cfg = dataclasses.replace(base, seed=seed)
    train_fold(
        cfg, paths, fold, run_folder(work / "runs", cfg.model, "intra", fold.name, seed), progress=False
    )

page = build_report(work / "runs", work / "report.html")
files = sorted(p.relative_to(work).as_posix() for p in (work / "report_files").rglob("*") if p.is_file())
print(f"{page.name}: {page.stat().st_size / 1024:.0f} KiB, {len(files)} files in report_files/")
for name in files:
    print(" ", name)
print("\ntables/retrieval.md:")
print((work / "report_files" / "tables" / "retrieval.md").read_text().strip())

figures = os.environ.get("EEGDECODE_EXAMPLE_OUT")
if figures:  # the documentation build shows the report's figures
    for png in sorted((work / "report_files").rglob("*.png"))[:3]:
        shutil.copy(png, Path(figures) / png.name)
shutil.rmtree(work)
