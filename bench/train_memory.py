"""Resident memory of a training run, stage by stage: where the peak RSS of ``eegdecode train`` goes.

Runs :func:`eegdecode.training.trainer.train_fold` (as ``eegdecode train`` does) for each fold of a protocol, with
a thread that reads ``/proc/self/status`` every 20 ms and keeps, for each stage of the run (opening the fold's data,
the batch source, the targets, the validation queries, the epoch, the checkpoints, the test evaluation, the
plot), the sample with the highest RSS, split into anonymous memory (``RssAnon``: what the process made) and
mapped file pages (``RssFile``: libraries and memory-mapped files, page cache the kernel may drop). A stage ending
in ``+`` is the time back in the trainer after that call. Prints each fold's 200-way result, the table, and the
peak (``VmHWM``, what ``/usr/bin/time -v`` reports as maximum resident set size). Linux only.

    python bench/train_memory.py DATA [--batches auto|device|host] [--model MUSE_EEG] [--subjects 1]
    python bench/train_memory.py DATA --protocol loso --subjects 1 2 3 4 5 6 7 8 9 --test-subject 1 2 --max-batches 12

``--max-batches N`` cuts every epoch to its first N batches (a memory probe of many folds in little time; the
peak is reached within the first batches); the results of such a run are not comparable to a full epoch's.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def status_mib() -> dict[str, float]:
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return {k: int(fields[k].split()[0]) / 1024 for k in ("RssAnon", "RssFile", "VmRSS", "VmHWM")}


class StagePeaks:
    """The highest-RSS sample of each stage, sampled in a daemon thread."""

    def __init__(self, every: float = 0.02):
        self.stage, self.peaks, self.every = "start", {}, every
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            m, stage = status_mib(), self.stage
            if m["VmRSS"] > self.peaks.get(stage, {"VmRSS": -1})["VmRSS"]:
                self.peaks[stage] = m
            time.sleep(self.every)

    def wrap(self, owner, name: str) -> None:
        fn = getattr(owner, name)

        def wrapped(*args, **kwargs):
            before, self.stage = self.stage, name
            try:
                return fn(*args, **kwargs)
            finally:
                self.stage = before.rstrip("+") + "+"

        setattr(owner, name, wrapped)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data_root")
    p.add_argument("--batches", default="auto", choices=("auto", "device", "host"))
    p.add_argument("--model", default="MUSE_EEG")
    p.add_argument("--protocol", default="intra")
    p.add_argument("--subjects", nargs="+", default=["1"])
    p.add_argument("--test-subject", nargs="*", default=None)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--max-batches", type=int, default=None, help="cut each epoch to its first N batches")
    p.add_argument("--out", default="outputs/bench/train_memory_run", help="run folder (replaced each fold)")
    args = p.parse_args()

    probe = StagePeaks()
    from eegdecode.data.datasets import make_folds
    from eegdecode.data.paths import DatasetPaths
    from eegdecode.training import batches, trainer
    from eegdecode.training.config import TrainConfig

    for name in ("load_fold_data", "make_batch_source", "TrainTargets", "Validator", "save_checkpoint",
                 "evaluate_test", "plot_training_curves"):  # fmt: skip
        probe.wrap(trainer, name)
    for cls in (batches.HostBatches, batches.DeviceBatches):
        epoch, cut = cls.epoch, cls._batches

        def timed(self, e, _epoch=epoch):
            probe.stage = "epoch"
            yield from _epoch(self, e)
            probe.stage = "after the epoch"

        cls.epoch = timed
        if args.max_batches:
            cls._batches = lambda self, e, _cut=cut: _cut(self, e)[: args.max_batches]

    cfg = TrainConfig(model=args.model, epochs=args.epochs, batches=args.batches, device="cpu")
    paths, t0 = DatasetPaths(args.data_root), time.perf_counter()
    for fold in make_folds(args.protocol, args.subjects, args.test_subject):
        probe.stage = f"fold {fold.name}"
        shutil.rmtree(args.out, ignore_errors=True)
        res = trainer.train_fold(cfg, paths, fold, args.out, progress=False)
        k = max(res["kway"]["k"], key=int)
        top = res["kway"]["k"][k]
        print(f"fold {fold.name}: {k}-way top-1 {top['top1_mean']:.4f} top-5 {top.get('top5_mean')} "
              f"({time.perf_counter() - t0:.0f} s since start)")  # fmt: skip
    probe.stage = "end"
    time.sleep(0.1)
    print(f"{'stage (peak sample)':28s} {'RssAnon':>9s} {'RssFile':>9s} {'RSS':>9s}  MiB")
    for stage, m in probe.peaks.items():
        print(f"{stage:28s} {m['RssAnon']:9.0f} {m['RssFile']:9.0f} {m['VmRSS']:9.0f}")
    peak = status_mib()["VmHWM"]
    print(json.dumps({"peak_rss_mib": round(peak), "seconds": round(time.perf_counter() - t0, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
