"""Training throughput: a seed-style training loop vs the project's trainer, same model, batch and data.

(a) seed-style, written here as the original repositories train (ATM ``Retrieval/ATMS_retrieval.py``, NICE, the
    NERV scripts): the subject's training trials as one float32 tensor in RAM, a per-sample ``torch.utils.data.Dataset``,
    ``DataLoader(shuffle=True)`` with the default collate, AdamW, a CLIP loss on the image features, ``loss.item()``
    every step, fp32, and the encoder's layer-by-layer forward (convolution, then pooling, ..., as the original
    classes run; ``eegdecode.models.convolutions.set_fused(model, False)``);
(b) the project's trainer: ``eegdecode.training.trainer.train_fold`` for one epoch (its own loader, loss, optimizer,
    AMP on CUDA), timed by the trainer's ``timing.jsonl``; the checkpoint writes inside that epoch are timed apart and
    taken out (column ``ours``; ``ours+ckpt`` keeps them).

Both train on every training trial of one subject (validation split off, so the trainer does not validate). Without
``--data-root`` the bench simulates a subject with the real trial shape (63 x 250) and exactly ``--steps`` x
``--batch-size`` training trials, so one epoch is ``--steps`` steps; with ``--data-root`` it uses that subject's
whole training set (a full-scale subject is 66,160 trials: long on a CPU). Runs alternate (a, b, then b, a, ...) and
the table shows the median over ``--repeats`` (min-max) and the ratio b/a of the medians. A JSON with the machine
(CPU model, threads, torch version, commit) and every timing is written to ``--json``.

Usage::

    python bench/train_throughput.py --quick                  # CPU, 2 models, 2 steps of 256, 3 repeats
    python bench/train_throughput.py --model NervformerV2 ATMS_50 NICE_EEG MUSE_EEG EEGProject TSConv \\
        --steps 8 --batch-size 1024 --repeats 5 --device cpu cuda
    python bench/train_throughput.py --data-root /tmp/sim_full --model EEGProject --device cuda
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eegdecode.data.datasets import DataOptions, SubjectData, make_folds  # noqa: E402
from eegdecode.data.paths import DatasetPaths  # noqa: E402
from eegdecode.data.simulate import custom_preset, simulate_dataset  # noqa: E402
from eegdecode.embeddings.store import load_features  # noqa: E402
from eegdecode.models import build_encoder  # noqa: E402
from eegdecode.models.convolutions import set_fused  # noqa: E402
from eegdecode.training import trainer  # noqa: E402

DEFAULT_MODELS = ["NervformerV2", "ATMS_50", "NICE_EEG", "MUSE_EEG", "EEGProject", "TSConv"]
QUICK_MODELS = ["NervformerV2", "EEGProject"]
#: training data options of both loops: every repetition a sample, no validation split
DATA = DataOptions(train_unit="trial", val_fraction=0.0)


# ------------------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------------------


def simulate_subject(out: Path, n_trials: int, seed: int = 0) -> dict:
    """A one-subject data set at the real trial shape with exactly ``n_trials`` training trials (4 repetitions,
    at most 10 images per concept as in THINGS-EEG2), a small test split and the reference features; no JPEGs."""
    if n_trials % 4:
        raise SystemExit(f"--steps x --batch-size must be a multiple of 4 (4 repetitions); found {n_trials}")
    n_images = n_trials // 4
    per_concept = max(d for d in range(1, 11) if n_images % d == 0)
    _, preset = custom_preset(
        "full", n_train_concepts=n_images // per_concept, images_per_concept=per_concept, n_train_reps=4,
        n_test_concepts=20, n_test_reps=4,
    )  # fmt: skip
    return simulate_dataset(out, preset, n_subjects=1, seed=seed, write_images=False, progress=False)


def load_seed_arrays(paths: DatasetPaths, subject: int, n_trials: int | None):
    """What the seed code holds: every training trial as float32 (n, chans, times) in RAM, and per trial the
    image feature it is trained against (float32 (n, dim))."""
    sd = SubjectData.open(paths, subject, DATA)
    train = np.asarray(sd.split_array("train"), dtype=np.float32)  # (images, reps, chans, times)
    n_images, n_reps = train.shape[:2]
    eeg = torch.from_numpy(train.reshape(n_images * n_reps, *train.shape[2:]))
    feats = np.asarray(load_features(paths.features_dir("reference"), "train").image, dtype=np.float32)
    img = torch.from_numpy(np.repeat(feats, n_reps, axis=0))
    if n_trials is not None:
        eeg, img = eeg[:n_trials], img[:n_trials]
    return eeg, img


# ------------------------------------------------------------------------------------------------------------
# (a) the seed-style loop
# ------------------------------------------------------------------------------------------------------------


class SeedStyleDataset(torch.utils.data.Dataset):
    """One sample per ``__getitem__``, as the original ``EEGDataset`` classes return them."""

    def __init__(self, eeg: torch.Tensor, img: torch.Tensor):
        self.eeg, self.img = eeg, img

    def __len__(self) -> int:
        return len(self.eeg)

    def __getitem__(self, i: int):
        return self.eeg[i], self.img[i]


def seed_clip_loss(x: torch.Tensor, y: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """The original repositories' ClipLoss: cosine logits scaled by exp(logit_scale), symmetric cross-entropy."""
    x, y = F.normalize(x, dim=-1), F.normalize(y, dim=-1)
    logits = logit_scale.exp() * x @ y.t()
    labels = torch.arange(len(x), device=x.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2


def run_seed_style(name: str, eeg, img, batch: int, device: torch.device, seed: int) -> dict:
    torch.manual_seed(seed)
    model = build_encoder(name, eeg.shape[1], eeg.shape[2], img.shape[1]).to(device)
    set_fused(model, False)  # the original classes' layer-by-layer forward
    scale = getattr(model, "logit_scale", None)
    if scale is None:
        scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07), device=device))
    params = list(model.parameters()) + ([] if any(p is scale for p in model.parameters()) else [scale])
    optimizer = torch.optim.AdamW(params, lr=3e-4, weight_decay=0.01)
    loader = torch.utils.data.DataLoader(
        SeedStyleDataset(eeg, img), batch_size=batch, shuffle=True, drop_last=True
    )
    _sync(device)
    t0 = time.perf_counter()
    model.train()
    n, total = 0, 0.0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        sub = torch.zeros(len(x), dtype=torch.long, device=device)
        loss = seed_clip_loss(model(x, sub), y, scale)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item()  # one host sync per step, as the seed code logs its running loss
        n += len(x)
    _sync(device)
    seconds = time.perf_counter() - t0
    return {"samples": n, "seconds": seconds, "samples_per_s": n / seconds}


# ------------------------------------------------------------------------------------------------------------
# (b) the project's trainer
# ------------------------------------------------------------------------------------------------------------


def run_ours(
    name: str,
    paths: DatasetPaths,
    batch: int,
    device: torch.device,
    seed: int,
    workdir: Path,
    options: dict | None = None,
) -> dict:
    cfg = trainer.TrainConfig(
        model=name,
        epochs=1,
        batch_size=batch,
        seed=seed,
        device=str(device),
        data=DATA,
        eval_draws=2,
        **(options or {}),
    )
    fold = make_folds("intra", [1])[0]
    run_dir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=workdir)) / "run"
    ckpt_seconds = [0.0]
    real_save = getattr(trainer, "save_checkpoint", None)

    def timed_save(*args, **kwargs):
        t = time.perf_counter()
        try:
            return real_save(*args, **kwargs)
        finally:
            ckpt_seconds[0] += time.perf_counter() - t

    if real_save is not None:
        trainer.save_checkpoint = timed_save
    try:
        trainer.train_fold(cfg, paths, fold, run_dir, progress=False, stop_after_epoch=0)
    finally:
        if real_save is not None:
            trainer.save_checkpoint = real_save
    row = [json.loads(line) for line in (run_dir / "timing.jsonl").read_text().splitlines() if line.strip()]
    row = row[0]
    # timing.jsonl divides the dataset size by the seconds; the trainer drops the last partial batch
    n_dataset = round(row["samples_per_s"] * row["seconds"])
    samples = (n_dataset // batch) * batch if n_dataset > batch else n_dataset
    train_seconds = row["seconds"] - ckpt_seconds[0]
    return {
        "samples": samples,
        "seconds": row["seconds"],
        "checkpoint_seconds": ckpt_seconds[0] if real_save is not None else None,
        "samples_per_s_with_checkpoints": samples / row["seconds"],
        "samples_per_s": samples / train_seconds,
    }


# ------------------------------------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def machine_info(threads: int, devices: list[str]) -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()  # fmt: skip
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                                    capture_output=True, text=True).stdout.strip())  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = None, None
    info = {
        "cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": threads, "torch": torch.__version__,
        "numpy": np.__version__, "python": platform.python_version(), "commit": commit, "dirty": dirty,
        "devices": devices,
    }  # fmt: skip
    if "cuda" in devices:
        info["cuda_device"] = torch.cuda.get_device_name(0)
    return info


def _options(items: list[str]) -> dict:
    """``KEY=VALUE`` pairs as TrainConfig keyword arguments (true/false, numbers, strings)."""
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = {"true": True, "false": False}.get(value.lower(), value)
        if isinstance(out[key], str) and out[key].lstrip("-").isdigit():
            out[key] = int(out[key])
    return out


def _summary(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", nargs="+", default=None, help=f"encoders (default: {' '.join(DEFAULT_MODELS)})")
    p.add_argument(
        "--steps", type=int, default=8, help="steps per epoch of the simulated subject (default 8)"
    )
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--device", nargs="+", default=None, help="cpu and/or cuda (default: cpu, and cuda if present)"
    )
    p.add_argument(
        "--data-root", default=None, help="a data root with sub-01 (default: simulate one, see above)"
    )
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default="outputs/bench/train_throughput.json", help="where to write the figures")
    p.add_argument("--quick", action="store_true", help="2 models, 2 steps of 256, 3 repeats, CPU")
    p.add_argument(
        "--option",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="TrainConfig options of the project's trainer (b), e.g. channels_last=true compile=true",
    )
    args = p.parse_args()
    if args.quick:
        args.model = args.model or QUICK_MODELS
        args.steps, args.batch_size, args.device = 2, 256, args.device or ["cpu"]
    models = args.model or DEFAULT_MODELS
    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    if "cuda" in devices and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device here")
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("eegdecode.data.image_set").setLevel(logging.ERROR)  # no JPEGs in the simulated subject

    with tempfile.TemporaryDirectory(prefix="train_throughput-") as tmp:
        tmp = Path(tmp)
        if args.data_root:
            root, n_trials = Path(args.data_root), None
            data_desc = f"{root} (sub-01, every training trial)"
        else:
            root, n_trials = tmp / "data", args.steps * args.batch_size
            t = time.perf_counter()
            simulate_subject(root, n_trials, args.seed)
            data_desc = (
                f"simulated subject, {n_trials} training trials of 63 x 250 ({time.perf_counter() - t:.0f} s)"
            )
        paths = DatasetPaths(root)
        eeg, img = load_seed_arrays(paths, 1, n_trials)
        if args.data_root is None and len(eeg) != n_trials:
            raise RuntimeError(f"expected {n_trials} trials, found {len(eeg)}")
        print(f"data: {data_desc}; trials {tuple(eeg.shape)}, features {tuple(img.shape)}")
        print(f"torch {torch.__version__}, {threads} CPU threads; {args.repeats} repeats, alternating a/b")

        results = []
        for device_name in devices:
            device = torch.device(device_name)
            for name in models:
                a_runs, b_runs = [], []
                for r in range(args.repeats):
                    order = ("a", "b") if r % 2 == 0 else ("b", "a")
                    for which in order:
                        if which == "a":
                            a_runs.append(run_seed_style(name, eeg, img, args.batch_size, device, args.seed))
                        else:
                            b_runs.append(
                                run_ours(
                                    name,
                                    paths,
                                    args.batch_size,
                                    device,
                                    args.seed,
                                    tmp,
                                    _options(args.option),
                                )
                            )
                a = _summary([x["samples_per_s"] for x in a_runs])
                b = _summary([x["samples_per_s"] for x in b_runs])
                bc = _summary([x["samples_per_s_with_checkpoints"] for x in b_runs])
                res = {"model": name, "device": device_name, "batch": args.batch_size, "steps": len(eeg) // args.batch_size,
                       "seed_style": a_runs, "ours": b_runs, "seed_style_median": a[0], "ours_median": b[0],
                       "ours_with_checkpoints_median": bc[0], "ratio_b_over_a": b[0] / a[0]}  # fmt: skip
                results.append(res)
                print(
                    f"  {name:13s} {device_name:4s} batch {args.batch_size:5d}: seed-style {a[0]:9.1f} "
                    f"({a[1]:.1f}-{a[2]:.1f})  ours {b[0]:9.1f} ({b[1]:.1f}-{b[2]:.1f})  ours+ckpt {bc[0]:9.1f}  "
                    f"b/a {b[0] / a[0]:.2f}",
                    flush=True,
                )

    print()
    header = "| model | device | batch | steps | seed-style samples/s, median (min-max) | ours samples/s | ours incl. checkpoint writes | ratio b/a |"  # noqa: E501
    print(header)
    print("|---|---|---|---|---|---|---|---|")
    for res in results:
        a = _summary([x["samples_per_s"] for x in res["seed_style"]])
        b = _summary([x["samples_per_s"] for x in res["ours"]])
        print(f"| {res['model']} | {res['device']} | {res['batch']} | {res['steps']} | {a[0]:.1f} ({a[1]:.1f}-{a[2]:.1f}) "
              f"| {b[0]:.1f} ({b[1]:.1f}-{b[2]:.1f}) | {res['ours_with_checkpoints_median']:.1f} "
              f"| {res['ratio_b_over_a']:.2f} |")  # fmt: skip
    out = {"machine": machine_info(threads, devices), "data": data_desc, "repeats": args.repeats,
           "quick": args.quick, "results": results}  # fmt: skip
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2))
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
