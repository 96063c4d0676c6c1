"""Run folders for the report and profile tests, built once per test session.

A simulated data set big enough for the ridge baseline to learn (120 training concepts x 5 images x 4
repetitions, 30 test concepts x 20 repetitions, two subjects, no JPEGs), the ridge baseline on both subjects, a
1-epoch NICE-EEG on 17 posterior channels, and a generation folder (random-weight manifest, PNGs, metrics.json)
made by hand in the real formats. About 30 s on one CPU thread.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

PRESET = (120, 5, 4, 30, 20, 16)


def build_runs(base: Path) -> Path:
    """``base/out`` with ``data/``, ``runs/<model>/intra/sub-XX/seed0/`` and ``gen/NICE_EEG/sub-01/``."""
    out = base / "out"
    done = out / ".complete"
    if done.exists():
        return out
    from eegdecode.data.datasets import DataOptions, make_folds
    from eegdecode.data.paths import DatasetPaths
    from eegdecode.data.simulate import Preset
    from eegdecode.evaluation.ceiling import simulate_with_ceiling
    from eegdecode.training.trainer import TrainConfig, train_fold

    root = out / "data"
    simulate_with_ceiling(root, Preset(*PRESET), n_subjects=2, seed=0, progress=False, dtype="float32",
                          write_images=False)  # fmt: skip
    paths = DatasetPaths(root)
    for subject in (1, 2):
        fold = make_folds("intra", [subject])[0]
        ridge = TrainConfig(model="ridge", device="cpu", model_options={"time_bin": 10}, eval_draws=20,
                            data=DataOptions(val_fraction=0.1))  # fmt: skip
        train_fold(ridge, paths, fold, out / "runs" / "ridge" / "intra" / fold.name / "seed0", progress=False)
    fold = make_folds("intra", [1])[0]
    nice = TrainConfig(model="NICE_EEG", device="cpu", epochs=1, batch_size=64, eval_draws=20,
                       data=DataOptions(channels="posterior17", train_unit="average", val_fraction=0.1))  # fmt: skip
    train_fold(nice, paths, fold, out / "runs" / "NICE_EEG" / "intra" / fold.name / "seed0", progress=False)
    write_generation(out, n=6)
    done.write_text("ok\n")
    return out


def write_generation(out: Path, n: int = 6) -> Path:
    """A random-weight generation folder in the real layout with its metrics.json; returns the manifest."""
    from PIL import Image

    from eegdecode.io import write_json
    from eegdecode.metrics.results import MetricsReport, RoundScores, SourceResult, write_report

    folder = out / "gen" / "NICE_EEG" / "sub-01"
    rng = np.random.default_rng(0)
    gt, images = [], []
    for i in range(n):
        concept = f"{i + 1:05d}_concept{i}"
        path = out / "gt" / f"{concept}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)).save(path)
        gt.append({"index": i, "concept": concept, "path": str(path.resolve())})
        for source in ("image", "eeg", "prior", "lowlevel"):
            rel = f"{source}/{i:04d}_{concept}_r0.png"
            (folder / source).mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(folder / rel)
            images.append(
                {"index": i, "concept": concept, "source": source, "round": 0, "seed": i, "path": rel}
            )
    manifest = {"format": "eegdecode-generation/1", "random_weights": True, "model": "NICE_EEG",
                "subject": "sub-01", "ground_truth": gt, "images": images,
                "provenance": {"generator": {"tiny": True}, "height": 16, "width": 16}}  # fmt: skip
    write_json(folder / "manifest.json", manifest)
    sources = {
        s: SourceResult(s, {0: RoundScores({"pixcorr": 0.1 * k, "ssim": 0.2}, {})})
        for k, s in enumerate(("image", "eeg", "prior", "lowlevel"))
    }
    report = MetricsReport(n_images=n, requested=("pixcorr", "ssim", "alexnet2"),
                           skipped={"alexnet2": "weights not found: alexnet-owt-7be5be79.pth"}, sources=sources,
                           origin={"model": "NICE_EEG", "subject": "sub-01", "manifest": str(folder / "manifest.json")},
                           random_weights={"generation": True, "metric_networks": False}, settings={})  # fmt: skip
    write_report(report, folder)
    return folder / "manifest.json"
