"""The trainer reads a target today: an exported (layer, pooling, variant) of the simulated image set trains
through ``train_fold`` unchanged (``TrainConfig.features`` = the export folder)."""

import json

import numpy as np
from conftest import VIT

from eegdecode.data.datasets import DataOptions, make_folds
from eegdecode.data.paths import DatasetPaths
from eegdecode.targets.compute import compute_targets
from eegdecode.targets.spec import TargetSpec
from eegdecode.training.trainer import TrainConfig, train_fold


def test_exported_intermediate_layer_trains(tiny_root, tiny_open_clip, tmp_path):
    spec = TargetSpec(f"open_clip:{VIT}", weights=str(tiny_open_clip["vit"]), layers=("block:1",), pooling="mean",
                      blur=("fovea:9",), text=False, blur_size=32)  # fmt: skip
    store = compute_targets(tiny_root / "image_set", tmp_path / "targets", spec, device="cpu", batch_size=64)
    export = store.export_features(tmp_path / "features", "block:1", "mean", "fovea:9")
    data = DataOptions(channels="posterior17", time_window=(0.0, 0.6), train_unit="average", val_fraction=0.1)
    cfg = TrainConfig(model="NICE_EEG", epochs=1, batch_size=64, seed=0, device="cpu", data=data, eval_draws=5,
                      features=str(export))  # fmt: skip
    res = train_fold(
        cfg, DatasetPaths(tiny_root), make_folds("intra", [1])[0], tmp_path / "run", progress=False
    )
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["n_outputs"] == 32  # the block's width, not the 24-d embedding
    assert 0.0 <= res["kway"]["k"]["20"]["top1_mean"] <= 1.0 and np.isfinite(
        res["kway"]["k"]["20"]["top1_mean"]
    )
