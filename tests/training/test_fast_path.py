"""The fast path (device-resident batches, a step without host reads) against the plain loop, and its determinism."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from tqdm.auto import tqdm

from eegdecode.data.datasets import DataOptions, TrialDataset, make_folds, make_loader
from eegdecode.data.paths import DatasetPaths
from eegdecode.training.batches import DeviceBatches, HostBatches, make_batch_source
from eegdecode.training.losses import build_loss
from eegdecode.training.step import TrainStep, lr_lambda, make_optimizer
from eegdecode.training.targets import TrainTargets
from eegdecode.training.trainer import TrainConfig, Validator, load_fold_data, prepare_run, train_fold

FAST = DataOptions(channels="posterior17", time_window=(0.0, 0.3), train_unit="trial", val_fraction=0.1)
CFG = TrainConfig(
    model="NICE_EEG", epochs=2, batch_size=128, lr=1e-3, seed=0, device="cpu", data=FAST, eval_draws=5
)


def _rows(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _plain_loop(cfg, paths, fold, run_dir):
    """The seed-style loop written out: DataLoader over float32 single trials, targets indexed on the host,
    a float() of the loss every step; the same model, loss, optimiser, data order. Returns validation top-1."""
    run = prepare_run(cfg, paths, fold, run_dir)
    fd, model = run.fd, run.model
    dataset = TrialDataset(fd.train_subjects, fd.train_images, fd.image_concept, [0], cfg.data.train_unit)
    loss_fn = build_loss(cfg.loss)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(0, 1, False))
    img = torch.as_tensor(np.asarray(fd.train_feats.image), dtype=torch.float32)
    txt = torch.as_tensor(np.asarray(fd.train_feats.text), dtype=torch.float32)
    val = Validator(fd, fold, cfg, torch.device("cpu"))
    out = []
    for epoch in range(cfg.epochs):
        model.train()
        # wrapped in tqdm.auto exactly as the trainer before the batch sources was (it starts the loader twice)
        loader = make_loader(dataset, cfg.batch_size, seed=cfg.seed, epoch=epoch, drop_last=True)
        for batch in tqdm(loader, disable=True):
            emb = model(batch["eeg"], batch["subject"])
            total, _ = loss_fn(emb, img[batch["image"]], model.logit_scale, txt=txt[batch["concept"]])
            optimizer.zero_grad()
            total.backward()
            optimizer.step()
            scheduler.step()
            float(total.detach())
        out.append(val(model)["val_top1"])
    return out


def test_fast_path_matches_the_plain_loop_and_repeats_exactly(tiny_root, tmp_path):
    paths, fold = DatasetPaths(tiny_root), make_folds("intra", [1])[0]
    fast = dataclasses.replace(CFG, batches="device")
    train_fold(fast, paths, fold, tmp_path / "a", progress=False)
    train_fold(fast, paths, fold, tmp_path / "b", progress=False)
    assert (tmp_path / "a" / "metrics.jsonl").read_bytes() == (tmp_path / "b" / "metrics.jsonl").read_bytes()
    assert (tmp_path / "a" / "results.json").read_bytes() == (tmp_path / "b" / "results.json").read_bytes()
    fast_val = [r["val_top1"] for r in _rows(tmp_path / "a")]
    plain_val = _plain_loop(CFG, paths, fold, tmp_path / "plain")
    # Same batches, same math: the stated tolerance is one validation image (of 24) per epoch.
    assert np.allclose(fast_val, plain_val, atol=1 / 24 + 1e-9), (fast_val, plain_val)
    # host batches give the very same numbers as device batches
    train_fold(dataclasses.replace(CFG, batches="host"), paths, fold, tmp_path / "h", progress=False)
    assert (tmp_path / "h" / "metrics.jsonl").read_bytes() == (tmp_path / "a" / "metrics.jsonl").read_bytes()


@pytest.mark.parametrize("unit", ["trial", "average"])
def test_device_and_host_batches_are_identical(tiny_root, unit):
    cfg = dataclasses.replace(CFG, data=dataclasses.replace(FAST, train_unit=unit))
    fd = load_fold_data(DatasetPaths(tiny_root), make_folds("joint", [1, 2])[0], cfg)
    ds = TrialDataset(fd.train_subjects, fd.train_images, fd.image_concept, [0, 1], unit, keep_dtype=True)
    cpu = torch.device("cpu")
    dev = make_batch_source("device", ds, 64, 3, cpu)
    host = make_batch_source("host", ds, 64, 3, cpu)
    assert isinstance(dev, DeviceBatches) and isinstance(host, HostBatches) and len(dev) == len(host)
    for a, b in zip(dev.epoch(1), host.epoch(1), strict=True):
        for field in ("eeg", "subject", "image", "sample"):
            assert torch.equal(getattr(a, field), getattr(b, field)), field
        assert a.eeg.dtype == torch.float32
    assert set(torch.cat([b.subject for b in dev.epoch(0)]).tolist()) == {0, 1}


class _NoHostReads:
    """Fails on any device-to-host read (item, tolist, float, bool, numpy) while active."""

    names = ("item", "tolist", "__float__", "__bool__", "numpy", "__int__")

    def __enter__(self):
        self.saved = {n: getattr(torch.Tensor, n) for n in self.names}
        for n in self.names:
            setattr(torch.Tensor, n, self._fail(n))
        return self

    def __exit__(self, *exc):
        for n, f in self.saved.items():
            setattr(torch.Tensor, n, f)

    @staticmethod
    def _fail(name):
        def fail(*args, **kwargs):
            raise AssertionError(f"host read Tensor.{name} inside the training step")

        return fail


def test_a_step_reads_nothing_back_from_the_device(tiny_root):
    cfg = dataclasses.replace(CFG, model="MUSE_EEG")
    fd = load_fold_data(DatasetPaths(tiny_root), make_folds("intra", [1])[0], cfg)
    ds = TrialDataset(fd.train_subjects, fd.train_images, fd.image_concept, [0], "trial", keep_dtype=True)
    source = make_batch_source("device", ds, 64, 0, torch.device("cpu"))
    from eegdecode.models import build_encoder

    model = build_encoder("MUSE_EEG", 17, 75)
    opt = make_optimizer(model, 1e-3, 0.01, torch.device("cpu"))
    targets = TrainTargets(fd.targets, fd.image_concept, len(ds), 0, torch.device("cpu"))
    step = TrainStep(model, model, targets, build_loss("retrieval"), opt,
                     torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(0, 1, False)), 1.0, False)  # fmt: skip
    batches = source.epoch(0)
    with _NoHostReads():
        for batch in batches:
            step(batch)
    means = step.epoch_means()  # the one read of the epoch
    assert set(means) == {"img", "txt", "total"} and all(np.isfinite(v) for v in means.values())


def test_compiled_training_runs_and_agrees(tiny_root, tmp_path):
    """--compile (torch.compile, inductor on CPU) on a small model: it trains and reaches the eager numbers."""
    paths, fold = DatasetPaths(tiny_root), make_folds("intra", [1])[0]
    small = dataclasses.replace(
        CFG, model="EEGProject", epochs=1, data=dataclasses.replace(FAST, time_window=(0, 0.1))
    )
    eager = train_fold(small, paths, fold, tmp_path / "eager", progress=False)
    compiled = train_fold(
        dataclasses.replace(small, compile=True), paths, fold, tmp_path / "compiled", progress=False
    )
    a, b = _rows(tmp_path / "eager")[0], _rows(tmp_path / "compiled")[0]
    assert abs(a["train_total"] - b["train_total"]) < 1e-3 * abs(a["train_total"])
    assert abs(eager["kway"]["k"]["20"]["top1_mean"] - compiled["kway"]["k"]["20"]["top1_mean"]) <= 0.05
