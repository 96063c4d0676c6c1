"""Encoders learn on simulated data: after a short CPU run the zero-shot test top-1 is clearly above chance.

The tiny set has 20 test images, so the full-gallery score is 20-way (chance 5%). The threshold, 3x chance, is far
outside what an untrained or a shuffled model reaches (their 20-way top-1 over these 20 queries is 5% +/- 5%).
"""

import pytest

from eegdecode.data.datasets import DataOptions, make_folds
from eegdecode.data.paths import DatasetPaths
from eegdecode.training.trainer import TrainConfig, train_fold


@pytest.mark.parametrize("model, epochs", [("NICE_EEG", 4)])
def test_short_run_beats_chance(tiny_root, tmp_path, model, epochs):
    cfg = TrainConfig(model=model, epochs=epochs, batch_size=64, seed=0, device="cpu", eval_draws=20,
                      data=DataOptions(train_unit="trial", val_fraction=0.1))  # fmt: skip
    res = train_fold(
        cfg, DatasetPaths(tiny_root), make_folds("intra", [1])[0], tmp_path / model, progress=False
    )
    full = res["kway"]["k"]["20"]
    assert full["chance_top1"] == 0.05
    assert full["top1_mean"] >= 0.15, f"{model}: 20-way top-1 {full['top1_mean']:.2f}, chance 0.05"
    assert res["kway"]["k"]["2"]["top1_mean"] >= 0.65
