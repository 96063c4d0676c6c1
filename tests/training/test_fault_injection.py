"""A run killed at every write boundary of an epoch and resumed ends byte-identical to an uninterrupted run.

The "kill" is an exception raised at a boundary (:mod:`eegdecode.faults`): nothing after it runs, as after a
SIGKILL; a temporary file being written is removed by its writer, which a real kill would leave behind (the next
save removes such files, tested in ``test_checkpoint.py``).
"""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from eegdecode import faults
from eegdecode.data.datasets import DataOptions, make_folds
from eegdecode.data.paths import DatasetPaths
from eegdecode.training.checkpoint import checkpoint_files
from eegdecode.training.trainer import TrainConfig, train_fold

FAST = DataOptions(channels="posterior17", time_window=(0.0, 0.3), train_unit="average", val_fraction=0.1)
# lr 1e-3: validation improves in both epochs, so both epochs write every boundary (asserted below)
CFG = TrainConfig(model="MUSE_EEG", epochs=2, batch_size=64, lr=1e-3, seed=0, device="cpu", data=FAST, eval_draws=5,
                  checkpoint_every=1)  # fmt: skip
#: the boundaries of one epoch, in write order ("best.*" only when validation improved)
BOUNDARIES = ["metrics", "best.weights", "best.json", "best.cleanup", "last.weights", "last.state", "last.json",
              "last.cleanup"]  # fmt: skip


class Killed(Exception):
    pass


def _kill_at(name: str, epoch: int):
    seen = {"epoch": -1}

    def hook(boundary: str) -> None:
        if boundary == "metrics":
            seen["epoch"] += 1
        if boundary == name and seen["epoch"] == epoch:
            raise Killed(f"{name} in epoch {epoch}")

    return hook


def _artefacts(run):
    best = checkpoint_files(run / "checkpoints", "best")["weights"]
    return {
        "metrics.jsonl": (run / "metrics.jsonl").read_bytes(),
        "results.json": (run / "results.json").read_bytes(),
        "best weights": hashlib.sha256(best.read_bytes()).hexdigest(),
    }


@pytest.fixture(scope="module")
def reference(tiny_root, tmp_path_factory):
    run = tmp_path_factory.mktemp("uninterrupted") / "run"
    seen = []
    with faults.inject(seen.append):
        train_fold(CFG, DatasetPaths(tiny_root), make_folds("intra", [1])[0], run, progress=False)
    return run, seen


def test_the_boundaries_are_where_the_test_assumes(reference):
    _, seen = reference
    epoch0 = seen[: seen.index("metrics", 1)]
    assert epoch0 == BOUNDARIES  # epoch 0 always improves on "no model yet"
    assert seen[-1] == "results" and seen.count("metrics") == CFG.epochs


@pytest.mark.parametrize("epoch", [0, 1])
@pytest.mark.parametrize("boundary", BOUNDARIES + ["results"])
def test_kill_then_resume_is_byte_identical(tiny_root, tmp_path, reference, boundary, epoch):
    ref_run, seen = reference
    if boundary == "results" and epoch == 0:
        pytest.skip("results.json is written once, after the last epoch")
    per_epoch = [seen[i:j] for i, j in zip(
        [k for k, b in enumerate(seen) if b == "metrics"],
        [k for k, b in enumerate(seen) if b == "metrics"][1:] + [len(seen)])]  # fmt: skip
    assert boundary in per_epoch[epoch], f"epoch {epoch} wrote no {boundary}: choose a config that improves"
    run = tmp_path / "run"
    paths, fold = DatasetPaths(tiny_root), make_folds("intra", [1])[0]
    with pytest.raises(Killed), faults.inject(_kill_at(boundary, epoch)):
        train_fold(CFG, paths, fold, run, progress=False)
    train_fold(CFG, paths, fold, run, progress=False, resume=True)
    assert _artefacts(run) == _artefacts(ref_run)
    # nothing but the current checkpoint's files is left
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    wanted = sorted(
        {p.name for name in ("best", "last") for p in checkpoint_files(run / "checkpoints", name).values()}
    )
    assert names == wanted


@pytest.mark.parametrize("batches", ["host", "device"])
def test_checkpoints_every_n_epochs_resume_from_the_last_written(tiny_root, tmp_path, reference, batches):
    """With checkpoint_every=2 nothing is written in epoch 0; a kill in epoch 1 restarts from scratch and still
    ends byte-identical (both batch sources give the same batches)."""
    cfg = dataclasses.replace(CFG, checkpoint_every=2, batches=batches)
    run, paths, fold = tmp_path / "run", DatasetPaths(tiny_root), make_folds("intra", [1])[0]
    seen, kill = [], _kill_at("last.state", 1)
    with pytest.raises(Killed), faults.inject(lambda b: (seen.append(b), kill(b))):
        train_fold(cfg, paths, fold, run, progress=False)
    assert seen[: seen.index("metrics", 1)] == ["metrics"]  # epoch 0 wrote no checkpoint
    train_fold(cfg, paths, fold, run, progress=False, resume=True)
    assert _artefacts(run) == _artefacts(reference[0])
