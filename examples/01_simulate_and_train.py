"""Simulate and train

Simulate a tiny THINGS-EEG2 subject, train the ridge floor and one encoder, compare them with the ceiling.

The `tiny` preset (60 training concepts x 4 images x 4 repetitions, 20 test concepts x 20 repetitions) is written in
the release layout, cached as float16 memory maps, and used to fit the closed-form ridge baseline and to train
`NICE_EEG` for a few epochs on repetition-averaged samples. Model selection uses held-out *training* concepts; the
test set is scored once. Numbers on simulated data are read against the simulator's ceiling (an ideal decoder)
and the ridge floor, never against published THINGS-EEG2 results.
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
from eegdecode.evaluation.kway import KWayResult, format_kway_table
from eegdecode.training.runs import run_dir as run_folder
from eegdecode.training.trainer import TrainConfig, train_fold

work = Path(tempfile.mkdtemp(prefix="eegdecode_example_"))
root = work / "data"
simulate_with_ceiling(root, "tiny", n_subjects=1, seed=0, dtype="float32", progress=False, vision=False)
paths = DatasetPaths(root)
for subject in paths.subjects():
    meta = prepare_subject(paths.subject_dir(subject), paths.cache_dir(subject))
    print(f"{subject}: train {tuple(meta['shapes']['train'])}, test {tuple(meta['shapes']['test'])}")

fold = make_folds("intra", [1])[0]
ridge = TrainConfig(model="ridge", model_options={"time_bin": 5}, device="cpu", eval_draws=50,
                    data=DataOptions(val_fraction=0.1))  # fmt: skip
nice = dataclasses.replace(ridge, model="NICE_EEG", model_options={}, epochs=4, batch_size=64,
                           data=DataOptions(val_fraction=0.1, train_unit="average"))  # fmt: skip

for cfg in (ridge, nice):
    run_dir = run_folder(work / "runs", cfg.model, "intra", fold.name, cfg.seed)
    res = train_fold(cfg, paths, fold, run_dir, progress=False)
    ceiling = KWayResult.from_dict(res["ceiling"]) if "ceiling" in res else None
    print(f"\n{res['model']} (selected epoch {res['selected_epoch'] + 1}), test k-way top-1 in %:")
    print(format_kway_table(KWayResult.from_dict(res["kway"]), ceiling=ceiling))
    curves = run_dir / "training_curves.png"
    if cfg.model != "ridge" and curves.exists() and os.environ.get("EEGDECODE_EXAMPLE_OUT"):
        shutil.copy(curves, Path(os.environ["EEGDECODE_EXAMPLE_OUT"]) / "training_curves.png")

shutil.rmtree(work)
