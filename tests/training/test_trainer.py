"""The trainer end to end on tiny simulated data: learning, resume, overwrite protection, outputs, DDP."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from eegdecode.data.datasets import DataOptions, make_folds
from eegdecode.data.paths import DatasetPaths
from eegdecode.errors import OutputExistsError
from eegdecode.training.checkpoint import checkpoint_files, load_checkpoint
from eegdecode.training.trainer import TrainConfig, train_fold

ROOT = Path(__file__).resolve().parents[2]
# Small inputs keep these tests fast; the learning test below uses the full 63 x 250 epochs.
FAST = DataOptions(channels="posterior17", time_window=(0.0, 0.6), train_unit="average", val_fraction=0.1)


def _cfg(**kw):
    base = dict(model="NICE_EEG", epochs=3, batch_size=64, seed=0, device="cpu", data=FAST, eval_draws=20)
    base.update(kw)
    return TrainConfig(**base)


def _rows(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_run_writes_config_metrics_results_plot_and_checkpoints(tiny_root, tmp_path):
    paths = DatasetPaths(tiny_root)
    fold = make_folds("intra", [1])[0]
    res = train_fold(_cfg(), paths, fold, tmp_path / "run", progress=False)
    run = tmp_path / "run"
    cfg = json.loads((run / "config.json").read_text())
    assert (
        cfg["model"] == "NICE_EEG"
        and cfg["n_chans"] == 17
        and cfg["n_times"] == 150
        and cfg["data"]["channels"] == "posterior17"
    )
    rows = _rows(run)
    assert [r["epoch"] for r in rows] == [0, 1, 2] and all("val_top1" in r for r in rows)
    assert not any(
        k.startswith("test") for r in rows for k in r
    )  # the test set is not looked at during training
    assert res["selected_epoch"] == int(np.argmax([r["val_top1"] for r in rows]))
    assert "held-out training concepts" in res["selected_by"]
    assert res["kway"]["k"]["20"]["chance_top1"] == pytest.approx(0.05)
    assert "ceiling" in res and res["simulated"] is True
    assert (run / "training_curves.png").stat().st_size > 1000
    info = load_checkpoint(run / "checkpoints", "best")
    assert info["epoch"] == res["selected_epoch"]
    state = torch.load(checkpoint_files(run / "checkpoints", "last")["state"], weights_only=True)
    assert {"optimizer", "scheduler", "rng"} <= set(state)
    with pytest.raises(OutputExistsError, match="--overwrite"):
        train_fold(_cfg(), paths, fold, run, progress=False)


def test_resume_after_interruption_gives_the_same_final_metrics(tiny_root, tmp_path):
    paths = DatasetPaths(tiny_root)
    fold = make_folds("intra", [2])[0]
    full = train_fold(_cfg(), paths, fold, tmp_path / "full", progress=False)
    # "Kill" after the second epoch, then resume.
    assert train_fold(_cfg(), paths, fold, tmp_path / "cut", progress=False, stop_after_epoch=1) == {}
    assert len(_rows(tmp_path / "cut")) == 2 and not (tmp_path / "cut" / "results.json").exists()
    resumed = train_fold(_cfg(), paths, fold, tmp_path / "cut", progress=False, resume=True)
    assert _rows(tmp_path / "cut") == _rows(tmp_path / "full")
    assert resumed["kway"] == full["kway"]


def test_adam_betas_reach_the_optimizer_and_bad_values_are_one_line(tiny_root, tmp_path):
    """NICE's Adam(betas=(0.5, 0.999)) without weight decay: ``betas`` reaches the AdamW the run trains with (its
    saved state) and ``config.json``; the default is AdamW's own (0.9, 0.999)."""
    from eegdecode.errors import ConfigError
    from eegdecode.training.step import make_optimizer

    paths, fold, run = DatasetPaths(tiny_root), make_folds("intra", [1])[0], tmp_path / "nice"
    train_fold(_cfg(epochs=1, betas=[0.5, 0.999], weight_decay=0.0), paths, fold, run, progress=False)
    state = torch.load(checkpoint_files(run / "checkpoints", "last")["state"], weights_only=True)
    (group,) = state["optimizer"]["param_groups"]
    assert tuple(group["betas"]) == (0.5, 0.999) and group["weight_decay"] == 0.0
    assert json.loads((run / "config.json").read_text())["betas"] == [0.5, 0.999]
    assert _cfg().betas == (0.9, 0.999)
    model = torch.nn.Linear(2, 2)
    assert make_optimizer(model, 1e-3, 0.0, torch.device("cpu")).param_groups[0]["betas"] == (0.9, 0.999)
    for bad in ([0.9], [0.9, 1.0], [-0.1, 0.999], "0.9 0.999", [0.9, True], [0.9, float("nan")]):
        with pytest.raises(ConfigError) as err:
            _cfg(betas=bad)
        message = str(err.value)
        assert message.startswith(f"Invalid value for betas: {bad!r}; expected two numbers in [0, 1)")
        assert "\n" not in message


def test_a_fixed_temperature_freezes_the_encoders_scale_and_softplus_trains_it(tiny_root, tmp_path):
    """SAMGA / NeuroBridge (softplus of the fixed initial scale): the encoder's logit_scale is frozen and keeps its
    initial value through weight decay; UBP (softplus, learnable): it trains."""
    from safetensors.torch import load_file

    from eegdecode.models.base import LOGIT_SCALE_INIT

    paths, fold = DatasetPaths(tiny_root), make_folds("intra", [1])[0]
    scales = {}
    for name, learn in (("fixed", False), ("learnable", True)):
        options = {"temperature": "softplus", "learn_temperature": learn, "normalise": "target"}
        train_fold(_cfg(epochs=1, loss_options=options), paths, fold, tmp_path / name, progress=False)
        weights = load_file(str(checkpoint_files(tmp_path / name / "checkpoints", "last")["weights"]))
        scales[name] = weights["logit_scale"].item()
    assert scales["fixed"] == torch.tensor(LOGIT_SCALE_INIT).item() != scales["learnable"]


def test_a_run_from_before_an_option_existed_resumes(tiny_root, tmp_path):
    """A stored config.json without ``betas`` / ``mmd_options`` (an earlier version) ran as their defaults, so
    ``--resume`` accepts it and records no change."""
    paths, fold, run = DatasetPaths(tiny_root), make_folds("intra", [1])[0], tmp_path / "old"
    train_fold(_cfg(epochs=2), paths, fold, run, progress=False, stop_after_epoch=0)
    stored = json.loads((run / "config.json").read_text())
    del stored["betas"], stored["mmd_options"]
    (run / "config.json").write_text(json.dumps(stored))
    train_fold(_cfg(epochs=2), paths, fold, run, progress=False, resume=True)
    assert json.loads((run / "config.json").read_text())["changes"] == []
    with pytest.raises(ValueError, match=r"betas \[0.9, 0.999\] -> \[0.5, 0.999\]"):
        train_fold(_cfg(epochs=3, betas=[0.5, 0.999]), paths, fold, run, progress=False, resume=True)


def test_same_seed_same_numbers(tiny_root, tmp_path):
    paths = DatasetPaths(tiny_root)
    fold = make_folds("intra", [1])[0]
    a = train_fold(_cfg(epochs=1), paths, fold, tmp_path / "a", progress=False)
    b = train_fold(_cfg(epochs=1), paths, fold, tmp_path / "b", progress=False)
    train_fold(_cfg(epochs=1, seed=1), paths, fold, tmp_path / "c", progress=False)
    assert a["kway"] == b["kway"]
    assert _rows(tmp_path / "a")[0]["train_total"] != _rows(tmp_path / "c")[0]["train_total"]


def test_ridge_baseline_and_joint_protocol(tiny_root, tmp_path):
    paths = DatasetPaths(tiny_root)
    res = train_fold(
        _cfg(model="ridge", model_options={"time_bin": 5}),
        paths,
        make_folds("intra", [1])[0],
        tmp_path / "ridge",
        progress=False,
    )
    assert res["kway"]["k"]["20"]["top1_mean"] > 0.05
    joint = make_folds("joint", [1, 2])[0]
    res = train_fold(_cfg(epochs=1), paths, joint, tmp_path / "joint", progress=False)
    assert set(res["subjects"]) == {"sub-01", "sub-02"}
    cfg = json.loads((tmp_path / "joint" / "config.json").read_text())
    assert cfg["fold"]["subject_layer"] == {"sub-01": 0, "sub-02": 1}


@pytest.mark.slow
def test_two_process_ddp_matches_one_process(tiny_root, tmp_path):
    """torchrun with 2 CPU processes (gloo) sees the same global batches as one process; BatchNorm statistics and
    dropout masks are per process, so metrics agree within a tolerance, not exactly."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    common = ["--data-root", str(tiny_root), "--model", "NICE_EEG", "--epochs", "2", "--batch-size", "64", "--subject", "1",
              "--channels", "posterior17", "--time-window", "0", "0.6", "--train-unit", "average", "--val-fraction", "0.1",
              "--device", "cpu", "--quiet"]  # fmt: skip
    one = subprocess.run([sys.executable, "-m", "eegdecode", "train", *common, "--out", str(tmp_path / "one")],
                         env=env, capture_output=True, text=True)  # fmt: skip
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "eegdecode", "train", *common, "--out", str(tmp_path / "two")],
                         env=env, capture_output=True, text=True)  # fmt: skip
    assert two.returncode == 0, two.stderr[-2000:]
    run = Path("NICE_EEG/intra/sub-01/seed0")
    r1, r2 = _rows(tmp_path / "one" / run), _rows(tmp_path / "two" / run)
    assert json.loads((tmp_path / "two" / run / "config.json").read_text())["world_size"] == 2
    assert [r["step"] for r in r1] == [r["step"] for r in r2]
    for a, b in zip(r1, r2):
        assert abs(a["train_total"] - b["train_total"]) < 0.05 * a["train_total"]
        assert abs(a["val_top1"] - b["val_top1"]) <= 0.25


@pytest.mark.slow
def test_two_process_ddp_runs_samgas_two_stages(tiny_root, tmp_path):
    """SAMGA's stage 2 freezes the head's shared projector after the DistributedDataParallel wrapper was built;
    the wrapper must follow (it reduces the gradients of the parameters that required them when it was made), or
    the second step of stage 2 fails with "Expected to have finished reduction"."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "eegdecode", "train", "--data-root", str(tiny_root), "--recipe", "samga", "--subject",
                          "1", "--epochs", "2", "--mmd-epochs", "1", "--batch-size", "64", "--time-window", "0",
                          "0.3", "--device", "cpu", "--quiet", "--out", str(tmp_path / "two")],
                         env=env, capture_output=True, text=True)  # fmt: skip
    assert two.returncode == 0, two.stderr[-2000:]
    (run,) = (tmp_path / "two").glob("*/intra/sub-01/seed*")
    rows = _rows(run)
    assert [r["epoch"] for r in rows] == [0, 1] and "train_mmd_weight" in rows[0]
    assert rows[1]["step"] == 2 * rows[0]["step"]
