"""The fast path (device-resident batches, a step without host reads) against the plain loop, and its determinism."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

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
    # only the training images are resident (validation images are never a sample)
    assert dev.data.shape[0] == 2 * fd.train_images.size < 2 * fd.image_concept.size
    assert DeviceBatches.nbytes(ds) == dev.data.nbytes
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


PAGES_PROBE = """
import sys, threading, time
from pathlib import Path
import numpy as np, torch
from eegdecode.data.cache import SubjectCache
from eegdecode.data.channels import THINGS_EEG2_CHANNELS
from eegdecode.data.datasets import SubjectData, TrialDataset
from eegdecode.training import batches

def rss_file_mb():
    fields = dict(line.split(':', 1) for line in open('/proc/self/status'))
    return int(fields['RssFile'].split()[0]) / 1024

path = sys.argv[1]
out = np.lib.format.open_memmap(path, mode='w+', dtype=np.float16, shape=(800, 4, 63, 250))
for i in range(0, 800, 100):
    out[i:i + 100] = (np.arange(100 * 4 * 63 * 250) % 251).reshape(100, 4, 63, 250) / 64
del out
arr = np.load(path, mmap_mode='r')
meta = {'ch_names': list(THINGS_EEG2_CHANNELS), 'times': list(np.arange(250) / 250), 'subject': 'sub-01'}
ds = TrialDataset([SubjectData(SubjectCache(arr, arr, meta, Path(path).parent))], np.arange(800), np.repeat(np.arange(80), 10),
                  keep_dtype=True)
cpu = torch.device('cpu')

def growth(work):
    base, peak, done = rss_file_mb(), [0.0], threading.Event()
    def sample():  # the peak, sampled every millisecond (the host batches' reader is a thread of its own)
        while not done.is_set():
            peak[0] = max(peak[0], rss_file_mb() - base)
            time.sleep(0.001)
    thread = threading.Thread(target=sample)
    thread.start()
    work()
    done.set()
    thread.join()
    return max(peak[0], rss_file_mb() - base)

list(batches.HostBatches(ds, 32, 0, cpu).epoch(1))  # warm-up: torch's code pages are file pages too
host = growth(lambda: list(batches.HostBatches(ds, 32, 0, cpu).epoch(0)))
copy = growth(lambda: batches.DeviceBatches(ds, 256, 0, cpu, chunk=100))
from eegdecode.data import cache  # control: the same epoch read through the mapping
cache._preadable = lambda arr: False
kept = growth(lambda: list(batches.HostBatches(ds, 32, 0, cpu).epoch(0)))
print(host, copy, kept)
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_host_batches_and_the_resident_copy_keep_no_page_of_the_cache(tmp_path):
    """An epoch of host batches over a 101 MB memory-mapped cache, and the resident copy while it is made, leave
    (almost) none of the file's pages in the process's resident set (RssFile, in a fresh process): the rows are
    read with positional reads. The control, the same epoch read through the mapping, makes most of the file
    resident (a fault maps a whole page-cache folio, up to ~1 MB, around each 31.5 kB trial)."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", PAGES_PROBE, str(tmp_path / "train.npy")], capture_output=True,
                         text=True, env=env, check=True)  # fmt: skip
    host, copy, kept = (float(x) for x in out.stdout.split())
    assert host < 10 and copy < 10, (host, copy, kept)
    assert kept > 80, (host, copy, kept)


def test_auto_batches_take_the_host_on_cpu_and_the_device_when_it_fits(tiny_root):
    """On the CPU a resident copy would duplicate the page cache: auto takes the host path however much RAM is
    free; on an accelerator the device when the data take at most half its free memory."""
    from eegdecode.training.batches import auto_batches

    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    assert auto_batches(cpu, 1, 10**15) == "host"
    assert auto_batches(gpu, 5, 10) == "device" and auto_batches(gpu, 6, 10) == "host"
    fd = load_fold_data(DatasetPaths(tiny_root), make_folds("intra", [1])[0], CFG)
    ds = TrialDataset(fd.train_subjects, fd.train_images, fd.image_concept, [0], "trial", keep_dtype=True)
    assert isinstance(make_batch_source("auto", ds, 64, 0, cpu), HostBatches)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_return_freed_memory_sets_glibc_threshold():
    """The setting applies where the C library is glibc (the trainer calls it on CPU; values are unaffected, as the
    byte-identical comparisons above check with it in force)."""
    import platform

    from eegdecode.devices import return_freed_memory

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    assert return_freed_memory() is True
