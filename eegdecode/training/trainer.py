"""One training loop for every registered encoder.

Read top to bottom: :func:`prepare_run` (every check, nothing written), :func:`train_fold` (the run folder, then
a fitter), :func:`_fit_gradient` (the epoch loop) or :func:`_fit_closed_form` (ridge), and a single test evaluation
with the checkpoint chosen on validation. The loop is composed of parts that live in their own modules:

- a batch source (:mod:`eegdecode.training.batches`: device-resident or host-gathered, the same batches);
- the targets (:mod:`eegdecode.training.targets`: a feature store, or layers and blur variants of a target store);
- a step (:mod:`eegdecode.training.step`: forward, loss, backward, fused AdamW, nothing read back to the host);
- loss stages (:class:`LossStages`: SAMGA's MMD stage, then the contrastive loss), a :class:`Validator`, and
  checkpoints (:mod:`eegdecode.training.checkpoint`, every ``checkpoint_every`` epochs and at the end).

The same code runs on one device or under ``torchrun`` (DistributedDataParallel; NCCL on GPU, gloo on CPU);
contrastive losses see the global batch through a differentiable all-gather, so N processes optimise the same
objective as one.

Model selection never looks at the test set: the best epoch is the one with the highest validation top-1 accuracy
on held-out *training concepts*. Per-epoch test curves exist only behind ``eval_test_every_epoch``, logged under
``test_monitor_*`` and labelled as not for model selection.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from eegdecode import __version__, faults
from eegdecode.data.datasets import (
    Fold,
    SubjectData,
    TrialDataset,
    averaged_eeg,
    image_concepts_from_counts,
    images_of,
    split_concepts,
)
from eegdecode.data.image_set import check_eeg_against_image_set, open_image_set
from eegdecode.data.paths import DatasetPaths
from eegdecode.devices import resolve_device, return_freed_memory
from eegdecode.embeddings.store import load_features
from eegdecode.errors import ConfigError, MissingFileError
from eegdecode.evaluation.ceiling import load_ceiling
from eegdecode.evaluation.kway import kway_accuracy, standard_ks
from eegdecode.io import atomic_path, json_line, read_json, write_json
from eegdecode.models import build_encoder, resolve_encoder_name
from eegdecode.models.heads import AlignedEncoder, MultiTargetHead, SingleTargetHead, centred_layer_logits
from eegdecode.training import preflight
from eegdecode.training.batches import make_batch_source
from eegdecode.training.checkpoint import load_checkpoint, save_checkpoint, tidy_checkpoint
from eegdecode.training.config import MMDSchedule, TargetPlan, TrainConfig
from eegdecode.training.distributed import TrainingForward, rank_world
from eegdecode.training.losses import MMDMix, build_loss, mmd_loss
from eegdecode.training.runs import check_run_dir, prepare_run_dir, resume_changes
from eegdecode.training.step import TrainStep, lr_lambda, make_optimizer
from eegdecode.training.targets import TargetArrays, TrainTargets, load_target_arrays, target_space

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------------------
# Small pieces
# ------------------------------------------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002  (the legacy global RNG, for third-party code)
    torch.manual_seed(seed)


@torch.no_grad()
def embed(model: torch.nn.Module, eeg, subject_layer: int, device: torch.device, batch: int = 256,
          amp: bool = False) -> np.ndarray:  # fmt: skip
    """Embeddings (n, dim) float32 of EEG (n, chans, times): a numpy array, or a tensor already on ``device``;
    all through the given subject layer."""
    model.eval()
    out = []
    for start in range(0, len(eeg), batch):
        chunk = eeg[start : start + batch]
        x = (
            chunk.float()
            if isinstance(chunk, torch.Tensor)
            else torch.as_tensor(np.asarray(chunk, dtype=np.float32))
        )
        x = x.to(device)
        sub = torch.full((len(x),), subject_layer, dtype=torch.long, device=device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
            out.append(model(x, sub).float())
    return torch.cat(out).cpu().numpy()


class _TrialRows:
    """Single trials of selected images as a lazily read (n_images * n_reps, chans, times) array (for ridge)."""

    def __init__(self, subject: SubjectData, images: np.ndarray, unit: str):
        self.subject, self.images, self.unit = subject, np.asarray(images), unit
        self.n_reps = subject.cache.train.shape[1] if unit == "trial" else 1
        self.shape = (self.images.size * self.n_reps, subject.n_chans, subject.n_times)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, sl: slice) -> np.ndarray:
        rows = np.arange(self.shape[0])[sl]
        if self.unit == "trial":
            return self.subject.train_samples(self.images[rows // self.n_reps], rows % self.n_reps)
        return self.subject.train_samples(self.images[rows])


# ------------------------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------------------------


@dataclass
class FoldData:
    train_subjects: list[SubjectData]
    test_subjects: list[SubjectData]
    image_concept: np.ndarray
    train_images: np.ndarray
    val_images: np.ndarray
    train_feats: Any
    test_feats: Any
    targets: TargetArrays | None = None


def load_fold_data(paths: DatasetPaths, fold: Fold, cfg: TrainConfig) -> FoldData:
    """Open the fold's EEG and targets, after every check that can be made before work starts (see
    :mod:`eegdecode.training.preflight`)."""
    if cfg.target is not None:
        arrays = load_target_arrays(paths.root, TargetPlan.from_dict(cfg.target))
        feats_dir, train_feats, test_feats = arrays.store, arrays.train, arrays.test
    else:
        feats_dir = (
            paths.features_dir(cfg.features) if not Path(cfg.features).is_dir() else Path(cfg.features)
        )
        train_feats = load_features(feats_dir, "train")
        test_feats = load_features(feats_dir, "test")
        arrays = TargetArrays(train_feats, test_feats, None)
    train_subjects = [SubjectData.open(paths, s, cfg.data) for s in fold.train_subjects]
    test_subjects = [SubjectData.open(paths, s, cfg.data) for s in fold.test_subjects]
    images = open_image_set(paths.root)
    if images is not None:
        for s in {sd.name: sd for sd in train_subjects + test_subjects}.values():
            check_eeg_against_image_set(
                images, s.cache.path, {"train": s.cache.train.shape, "test": s.cache.test.shape}
            )
        preflight.check_features_against_image_set(images, feats_dir, train_feats.meta)
    preflight.check_features_against_eeg(
        feats_dir, train_feats, test_feats, train_subjects, test_subjects, cfg.data.test_reps
    )
    n_images = train_subjects[0].cache.train.shape[0]
    image_concept = image_concepts_from_counts(n_images, train_feats.text.shape[0], feats_dir)
    train_c, val_c = split_concepts(train_feats.text.shape[0], cfg.data.val_fraction, cfg.data.val_seed)
    return FoldData(
        train_subjects, test_subjects, image_concept, images_of(train_c, image_concept), images_of(val_c, image_concept),
        train_feats, test_feats, arrays,
    )  # fmt: skip


class Validator:
    """Validation top-1/top-5 at k = min(val_k, n_val_images) on held-out training concepts, averaged over the
    training subjects; the queries (repetitions averaged) are read once and kept on the device."""

    def __init__(self, fd: FoldData, fold: Fold, cfg: TrainConfig, device: torch.device):
        self.enabled = fd.val_images.size >= 2
        self.k = min(cfg.val_k, int(fd.val_images.size))
        self.seed, self.amp, self.device = cfg.seed, cfg.amp and device.type == "cuda", device
        if not self.enabled:
            return
        self.rows = np.asarray(fd.train_feats.image)[fd.val_images]
        self.queries = [
            (fold.subject_layer[s.name], torch.from_numpy(averaged_eeg(s, "train", fd.val_images)).to(device))
            for s in fd.train_subjects
        ]

    def __call__(self, model) -> dict[str, float]:
        if not self.enabled:
            return {}
        top1, top5 = [], []
        gallery = target_space(model, self.rows, self.device)
        for layer, q in self.queries:
            res = kway_accuracy(embed(model, q, layer, self.device, amp=self.amp), gallery, ks=(self.k,),
                                n_draws=20, seed=self.seed)  # fmt: skip
            top1.append(res.scores[self.k].top1_mean)
            if res.scores[self.k].top5_mean is not None:
                top5.append(res.scores[self.k].top5_mean)
        out = {"val_k": self.k, "val_top1": float(np.mean(top1))}
        if top5:
            out["val_top5"] = float(np.mean(top5))
        return out


def evaluate_test(
    model, fd: FoldData, fold: Fold, cfg: TrainConfig, device, gallery: str = "image"
) -> dict[str, Any]:
    """k-way test results per test subject (queries averaged over ``cfg.data.test_reps`` repetitions)."""
    if gallery == "text" and fd.test_feats.text.shape[1] == 0:
        raise ConfigError(
            "this run's targets have no text side (router targets or a projection head): use --gallery image"
        )
    gal = target_space(model, fd.test_feats.image, device) if gallery == "image" else fd.test_feats.text
    out = {}
    for s in fd.test_subjects:
        q = averaged_eeg(s, "test", n_reps=cfg.data.test_reps)
        emb = embed(model, q, fold.subject_layer.get(s.name, 0), device, amp=cfg.amp)
        if gal.shape[0] != emb.shape[0]:
            raise ConfigError(f"{gal.shape[0]} test {gallery} embeddings but {emb.shape[0]} test EEG images")
        res = kway_accuracy(emb, gal, ks=standard_ks(len(emb)), n_draws=cfg.eval_draws, seed=cfg.seed)
        out[s.name] = res
    return out


def load_run(run_dir: str | Path, checkpoint: str = "best", device: torch.device | str = "cpu"):
    """A finished (or interrupted) run rebuilt from its ``config.json`` with checkpoint ``checkpoint`` loaded.

    Returns ``(resolved_config_dict, TrainConfig, Fold, model_on_device, checkpoint_info)``.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").exists():
        raise MissingFileError(
            run_dir / "config.json", "not a run folder (create one with `eegdecode train`)"
        )
    resolved = read_json(run_dir / "config.json")
    keys = {f.name for f in dataclasses.fields(TrainConfig)}
    cfg = TrainConfig.from_dict({k: v for k, v in resolved.items() if k in keys})
    fold = Fold(**resolved["fold"])
    shape = resolved.get("target_shape") or [resolved.get("n_outputs", 1024)]
    model = build_model(cfg, resolved["n_chans"], resolved["n_times"], shape, fold.n_subject_layers).to(
        device
    )
    info = load_checkpoint(run_dir / "checkpoints", checkpoint, model, map_location=device)
    return resolved, cfg, fold, model, info


def _process_device(name: str, world: int) -> torch.device:
    device = resolve_device(name)
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    return device


def _run_record(cfg: TrainConfig, fold: Fold, fd: FoldData, paths: DatasetPaths, model, world: int) -> dict:
    """``config.json``: the training configuration plus the facts of this run (sizes, versions, data root)."""
    s = fd.train_subjects[0]
    return {
        **cfg.to_dict(), "fold": dataclasses.asdict(fold), "n_chans": s.n_chans, "n_times": s.n_times,
        "n_outputs": int(fd.train_feats.image.shape[-1]), "ch_names": s.ch_names,
        "data_root": str(paths.root.resolve()), "release": paths.release,
        "n_train_images": int(fd.train_images.size), "n_val_images": int(fd.val_images.size),
        "n_parameters": int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
        "world_size": world, "eegdecode_version": __version__, "torch_version": torch.__version__,
        **({"target_store": str(fd.targets.store), "target_text": fd.targets.train.meta["text"],
            "target_shape": list(np.shape(fd.train_feats.image)[1:])} if cfg.target else {}),
    }  # fmt: skip


def build_model(
    cfg: TrainConfig, n_chans: int, n_times: int, target_shape, n_subjects: int
) -> torch.nn.Module:
    """The encoder of ``cfg.model``, inside an AlignedEncoder with its head for router targets, a ``target.head``
    or ``blur_rule: learned``.

    ``target_shape``: ``(dim,)``, ``(n_layers, dim)`` (router) or ``(n_variants, dim)`` (learned blur mixture) of
    one image's target.
    """
    options = {k: v for k, v in cfg.model_options.items() if k != "fit"}
    dim = int(target_shape[-1])
    encoder = build_encoder(cfg.model, n_chans, n_times, dim, n_subjects=n_subjects, **options)
    plan = TargetPlan.from_dict(cfg.target) if cfg.target is not None else None
    if plan is None or (plan.combine != "router" and plan.head is None and plan.blur_rule != "learned"):
        return encoder
    what = (
        "router targets" if plan.combine == "router" else "target.head" if plan.head else "blur_rule learned"
    )
    if hasattr(encoder, "fit"):
        raise ConfigError(f"{cfg.model} is fitted in closed form: {what} needs a trained encoder")
    if (plan.combine == "router" or plan.head) and cfg.loss_options.get("w_txt", build_loss(cfg.loss).w_txt):
        raise ConfigError(f"{what}: no text side; set loss_options w_txt to 0")
    if plan.combine != "router":
        n_variants = len(plan.spec.blur) if plan.blur_rule == "learned" else None
        embed_dim = plan.head["embed_dim"] if plan.head else None
        return AlignedEncoder(encoder, SingleTargetHead(dim, dim, embed_dim=embed_dim, n_variants=n_variants))
    ids = [int(x.split(":")[1]) if x.startswith("block:") else i for i, x in enumerate(plan.spec.layers)]
    r = plan.router
    init = centred_layer_logits(ids, r.get("centre", ids[len(ids) // 2]), r.get("strength", 1.0))
    head = MultiTargetHead(len(ids), dim, eeg_dim=dim, embed_dim=r.get("embed_dim", 512),
                           mid_dim=r.get("mid_dim", 1024), n_subjects=n_subjects, init_logits=init,
                           temperature=r.get("temperature", 1.0),
                           subject_dropout=r.get("subject_dropout", 0.3),
                           normalize_layers=r.get("normalize", False))  # fmt: skip
    return AlignedEncoder(encoder, head)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _keep_epochs(path: Path, last_epoch: int) -> None:
    """Drop the rows of epochs after ``last_epoch`` (written before a kill, redone on resume)."""
    rows = [r for r in _read_jsonl(path) if r["epoch"] <= last_epoch]
    with atomic_path(path, suffix=".jsonl") as tmp:
        tmp.write_text("".join(json_line(r) + "\n" for r in rows))


def _append_jsonl(path: Path, row: dict[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json_line(row) + "\n")


@dataclass
class PreparedRun:
    """What :func:`prepare_run` checked and built: data, model, the run record and the checkpoint to resume."""

    fd: FoldData
    model: torch.nn.Module
    resolved: dict[str, Any]
    last: dict[str, Any] | None
    device: torch.device


def prepare_run(cfg: TrainConfig, paths: DatasetPaths, fold: Fold, run_dir: str | Path, resume: bool = False,
                overwrite: bool = False) -> PreparedRun:  # fmt: skip
    """Every check a run needs (run folder, options, data, features, image set, ``--resume`` configuration),
    with nothing written: a run that would fail, fails here."""
    _, world = rank_world()
    run_dir = Path(run_dir)
    device = _process_device(cfg.device, world)
    check_run_dir(run_dir, overwrite, resume)
    fd = load_fold_data(paths, fold, cfg)
    seed_everything(cfg.seed)
    name = resolve_encoder_name(cfg.model)
    model = build_model(cfg, fd.train_subjects[0].n_chans, fd.train_subjects[0].n_times,
                        np.shape(fd.train_feats.image)[1:], fold.n_subject_layers).to(device)  # fmt: skip
    if hasattr(model, "fit") and len(fd.train_subjects) != 1:
        raise ConfigError(f"{name} is fitted per subject: use --protocol intra (found {fold.protocol})")
    ckpt = run_dir / "checkpoints"
    last = read_json(ckpt / "last.json") if resume and (ckpt / "last.json").exists() else None
    resolved = _run_record(cfg, fold, fd, paths, model, world)
    if resume:
        resolved["changes"] = resume_changes(run_dir, cfg.to_dict(), last["epoch"] + 1 if last else 0)
    return PreparedRun(fd, model, resolved, last, device)


def train_fold(
    cfg: TrainConfig,
    paths: DatasetPaths,
    fold: Fold,
    run_dir: str | Path,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    stop_after_epoch: int | None = None,
) -> dict[str, Any]:
    """Train one fold and evaluate it on its test subject(s); returns the content of ``results.json``.

    Every check (:func:`prepare_run`) runs before the run folder is created or changed. ``stop_after_epoch`` ends
    the loop early without evaluating (used to test ``resume``).
    """
    rank, world = rank_world()
    run_dir = Path(run_dir)
    run = prepare_run(cfg, paths, fold, run_dir, resume, overwrite)
    if rank == 0:
        prepare_run_dir(run_dir, overwrite)
        write_json(run_dir / "config.json", run.resolved)
    if world > 1:
        dist.barrier()
    if hasattr(run.model, "fit"):
        return _fit_closed_form(run.model, cfg, run.fd, fold, run_dir, run.device, run.resolved)
    return _fit_gradient(run.model, cfg, run.fd, fold, run_dir, run.device, run.resolved, run.last, progress,
                         stop_after_epoch)  # fmt: skip


class LossStages:
    """The loss of each epoch, and when the optimizer starts again: SAMGA's two stages (:class:`MMDSchedule`).

    Stage 1 (``cfg.mmd_epochs`` epochs, router targets): the MMD, or with ``mmd_options`` start / end the mix
    ``w * MMD + (1 - w) * contrastive`` at the epoch's weight. Stage 2: the configured contrastive loss with the
    head's shared projector frozen; with ``mmd_options.stage2_lr`` a new optimizer at that rate, without the shared
    projector. Without ``mmd_epochs``: just the configured loss. Everything is a function of the epoch, so a
    resumed run takes up the same stage, weight and optimizer.

    A loss with a fixed temperature does not use the encoder's ``logit_scale``: it is frozen here (before any
    DistributedDataParallel wrapper is made, which must not wait for its gradient).
    """

    def __init__(self, cfg: TrainConfig, model: torch.nn.Module, device: torch.device, steps_per_epoch: int):
        self.cfg, self.model, self.device, self.steps_per_epoch = cfg, model, device, steps_per_epoch
        self.contrastive = build_loss(cfg.loss, **cfg.loss_options)
        self.schedule = MMDSchedule.from_config(cfg.mmd_epochs, cfg.mmd_options)
        self.router_lr = (
            TargetPlan.from_dict(cfg.target).router.get("lr") if _has_head(model, "router") else None
        )
        if not self.contrastive.learns_temperature:
            model.logit_scale.requires_grad_(False)

    def loss(self, epoch: int):
        if not self.schedule.in_stage1(epoch):
            return self.contrastive
        weight = self.schedule.weight(epoch)
        return mmd_loss if weight is None else MMDMix(weight, self.contrastive)

    def begin(self, epoch: int):
        """The loss of ``epoch``, after (un)freezing the shared projector for its stage."""
        if self.cfg.mmd_epochs and _has_head(self.model, "router"):
            self.model.head.shared.requires_grad_(self.schedule.in_stage1(epoch))
        return self.loss(epoch)

    def new_optimizer_at(self, epoch: int) -> bool:
        """Whether ``epoch`` starts with a new optimizer (:meth:`optimizer`), SAMGA's stage 2."""
        return self.schedule.new_optimizer_at(epoch)

    def optimizer(self, epoch: int):
        """``(optimizer, scheduler)`` as the run builds them for ``epoch``: the run's AdamW, or from SAMGA's stage
        2 on (with ``stage2_lr``) one at that rate without the shared projector, whose scheduler continues the
        run's schedule from the stage's first step."""
        cfg, stage2 = self.cfg, self.schedule.stage2_lr is not None and not self.schedule.in_stage1(epoch)
        frozen = list(self.model.head.shared.parameters()) if stage2 else []
        optimizer = make_optimizer(self.model, self.schedule.lr(epoch, cfg.lr), cfg.weight_decay, self.device,
                                   self.router_lr, betas=cfg.betas, exclude=frozen)  # fmt: skip
        factor = lr_lambda(int(cfg.warmup_epochs * self.steps_per_epoch), cfg.epochs * self.steps_per_epoch,
                           cfg.cosine)  # fmt: skip
        if stage2:
            offset, base = self.schedule.epochs * self.steps_per_epoch, factor
            factor = lambda step: base(step + offset)  # noqa: E731
        return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


#: the progress bar shows the loss every this many steps (reading it is a host synchronisation)
PROGRESS_EVERY = 50


def _fit_gradient(model, cfg: TrainConfig, fd: FoldData, fold: Fold, run_dir: Path, device, resolved,
                  last: dict | None, progress: bool, stop_after_epoch: int | None) -> dict[str, Any]:  # fmt: skip
    """The epoch loop: train (a batch source and a step) -> validate -> log -> checkpoint -> early stop."""
    rank, world = rank_world()
    if device.type == "cpu":
        return_freed_memory()  # glibc: the steps' freed tensors go back to the system, not into a fragmented heap
    dataset = TrialDataset(fd.train_subjects, fd.train_images, fd.image_concept,
                           [fold.subject_layer[s.name] for s in fd.train_subjects], cfg.data.train_unit,
                           keep_dtype=True)  # fmt: skip
    source = make_batch_source(cfg.batches, dataset, cfg.batch_size, cfg.seed, device, rank, world,
                               drop_last=len(dataset) > cfg.batch_size)  # fmt: skip
    targets = TrainTargets(fd.targets, fd.image_concept, len(dataset), cfg.seed, device)
    steps_per_epoch = max(1, len(dataset) // cfg.batch_size)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    stages = LossStages(cfg, model, device, steps_per_epoch)
    # DDP under torchrun, rebuilt when a stage freezes part of the model
    forward = TrainingForward(model, device, cfg.compile)
    # the optimizer whose state ``last`` holds: the one of the stage its epoch trained in
    optimizer, scheduler = stages.optimizer(last["epoch"] if last is not None else 0)
    amp = cfg.amp and device.type == "cuda"
    step = TrainStep(model, forward, targets, stages.contrastive, optimizer, scheduler,
                     cfg.grad_clip, amp)  # fmt: skip
    validate = Validator(fd, fold, cfg, device) if rank == 0 else None
    ckpt = run_dir / "checkpoints"
    metrics_path, timing_path = run_dir / "metrics.jsonl", run_dir / "timing.jsonl"
    start_epoch, best, best_epoch, bad_epochs = 0, -1.0, -1, 0
    if last is not None:
        info = load_checkpoint(
            ckpt, "last", model, optimizer, scheduler, restore_rng=True, map_location=device
        )
        targets.load_state_dict(info["state"].get("targets", {}))
        start_epoch, best, best_epoch = info["epoch"] + 1, info["best_val"], info["best_epoch"]
        bad_epochs, step.count = info["bad_epochs"], info["step"]
        log.info("resuming %s after epoch %d", run_dir, info["epoch"])
    if rank == 0:  # rows and a best checkpoint written after the last checkpoint are redone below
        for path in (metrics_path, timing_path):
            _keep_epochs(path, start_epoch - 1)
        if (ckpt / "best.json").exists() and read_json(ckpt / "best.json").get("epoch", -1) >= start_epoch:
            (ckpt / "best.json").unlink()
        for name in ("best", "last"):
            tidy_checkpoint(ckpt, name)
    wandb_run = _init_wandb(cfg, resolved, run_dir) if (cfg.wandb and rank == 0) else None
    best_pending: tuple[dict, dict] | None = None  # best weights not yet written: (state on the device, info)

    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        model.train()
        step.loss_fn = stages.begin(epoch)
        if stages.new_optimizer_at(epoch):
            optimizer, scheduler = stages.optimizer(epoch)
            step.optimizer, step.scheduler = optimizer, scheduler
        bar = tqdm(total=len(source), desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not progress or rank != 0,
                   leave=False)  # fmt: skip
        for i, batch in enumerate(source.epoch(epoch)):
            loss = step(batch)
            if (i + 1) % PROGRESS_EVERY == 0:
                bar.set_postfix(loss=f"{float(loss):.3f}")
            bar.update()
        bar.close()
        row: dict[str, Any] = {"epoch": epoch, "step": step.count, "lr": scheduler.get_last_lr()[0],
                               "logit_scale": float(model.logit_scale.detach().exp())}  # fmt: skip
        row.update({f"train_{k}": v for k, v in step.epoch_means().items()})
        if rank == 0:
            row.update(validate(model))
            if cfg.eval_test_every_epoch:
                for sname, res in evaluate_test(model, fd, fold, cfg, device).items():
                    kmax = max(res.ks)
                    row[f"test_monitor_{sname}_top1_{kmax}way"] = res.scores[kmax].top1_mean
                row["test_monitor_note"] = "test-set monitoring only; never used for model selection"
        score = row.get("val_top1", float(epoch)) if rank == 0 else 0.0  # no validation split: keep the last
        if world > 1:  # every rank must agree on "improved" and on early stopping
            box = [score]
            dist.broadcast_object_list(box, src=0)
            score = box[0]
        improved = score > best
        if improved:
            best, best_epoch, bad_epochs = score, epoch, 0
        elif epoch >= cfg.mmd_epochs:  # patience counts from the contrastive stage on
            bad_epochs += 1
        stopping = bool(cfg.early_stopping and bad_epochs >= cfg.early_stopping)
        if rank == 0:
            # Write order (each a fault-injection boundary): metrics line, then at checkpoint epochs best, last.
            _append_jsonl(metrics_path, row)
            faults.boundary("metrics")
            info = {"epoch": epoch, "step": step.count, "best_val": best, "best_epoch": best_epoch,
                    "bad_epochs": bad_epochs, "model": resolved["model"], "config_sha": _digest(resolved)}  # fmt: skip
            if improved:
                best_pending = ({k: v.detach().clone() for k, v in model.state_dict().items()}, info)
            if (epoch + 1) % cfg.checkpoint_every == 0 or epoch == cfg.epochs - 1 or stopping:
                if best_pending is not None:
                    save_checkpoint(ckpt, "best", best_pending[0], best_pending[1])
                    best_pending = None
                save_checkpoint(
                    ckpt,
                    "last",
                    model,
                    info,
                    optimizer,
                    scheduler,
                    extra_state={"targets": targets.state_dict()},
                )
            seconds = time.perf_counter() - t0
            _append_jsonl(timing_path, {"epoch": epoch, "seconds": seconds, "samples_per_s": len(dataset) / seconds,
                                        "batches": type(source).__name__})  # fmt: skip
            if wandb_run is not None:
                wandb_run.log({**row, "seconds": seconds}, step=step.count)
            log.info(
                "epoch %d: %s", epoch + 1, {k: round(v, 4) for k, v in row.items() if isinstance(v, float)}
            )
        if world > 1:
            dist.barrier()
        if stop_after_epoch is not None and epoch >= stop_after_epoch:
            return {}
        if stopping:
            log.info("early stopping after epoch %d (best epoch %d)", epoch + 1, best_epoch + 1)
            break

    if rank != 0:
        return {}
    load_checkpoint(ckpt, "best", model, map_location=device)
    selected_by = (
        f"validation top-1 at k={min(cfg.val_k, int(fd.val_images.size))} on held-out training concepts"
    )
    results = _results(model, fd, fold, cfg, device, resolved, best_epoch, best, selected_by)
    write_json(run_dir / "results.json", results)
    faults.boundary("results")
    plot_training_curves(metrics_path, run_dir / "training_curves.png")
    if wandb_run is not None:
        wandb_run.finish()
    return results


def _results(model, fd, fold, cfg, device, resolved, best_epoch, best_val, selected_by) -> dict[str, Any]:
    tests = evaluate_test(model, fd, fold, cfg, device)
    subjects = {}
    for sname, res in tests.items():
        entry: dict[str, Any] = {"kway": res.to_dict()}
        ceiling, note = load_ceiling(resolved["data_root"], sname, n_reps=cfg.data.test_reps)
        if ceiling is not None:
            entry["ceiling"] = ceiling.to_dict()
        elif note:
            entry["ceiling_note"] = note
        subjects[sname] = entry
    first = next(iter(subjects.values()))
    return {
        "format": "eegdecode-results/1",
        "model": resolved["model"],
        **({"recipe": cfg.recipe} if cfg.recipe else {}),
        "protocol": fold.protocol,
        "fold": fold.name,
        "subject": fold.test_subjects[0] if len(fold.test_subjects) == 1 else fold.name,
        "seed": cfg.seed,
        "selected_epoch": best_epoch,
        "selected_by": selected_by,
        "val_top1": best_val,
        "test_reps": cfg.data.test_reps,
        "kway": first["kway"],
        **{k: first[k] for k in ("ceiling", "ceiling_note") if k in first},
        "subjects": subjects,
        "simulated": (Path(resolved["data_root"]) / "simulation.json").exists(),
        **({"layer_weights": _layer_weights(model, fold, cfg)} if _has_head(model, "router") else {}),
        **(_blur_weights(model, cfg) if _has_head(model, "mixer") else {}),
    }


def _has_head(model, part: str) -> bool:
    return isinstance(model, AlignedEncoder) and getattr(model.head, part, None) is not None


@torch.no_grad()
def _blur_weights(model: AlignedEncoder, cfg: TrainConfig) -> dict[str, dict[str, Any]]:
    """The learned blur mixture: each variant's softmax weight averaged over the feature dimensions
    (``blur_weights``, sums to 1) and its range over the dimensions (``blur_weights_range``: [min, max])."""
    variants = TargetPlan.from_dict(cfg.target).spec.blur
    mixer = model.head.mixer
    w = mixer.weights().float().cpu()
    return {
        "blur_weights": dict(zip(variants, mixer.level_weights().float().cpu().tolist())),
        "blur_weights_range": {
            v: [float(lo), float(hi)] for v, lo, hi in zip(variants, w.min(1).values, w.max(1).values)
        },
    }


@torch.no_grad()
def _layer_weights(model: AlignedEncoder, fold: Fold, cfg: TrainConfig) -> dict[str, dict[str, float]]:
    """The router's weight of each target layer: per training subject (its own bias) and ``global`` (what
    evaluation and unseen subjects use)."""
    layers = TargetPlan.from_dict(cfg.target).spec.layers
    router = model.head.router
    device = next(router.parameters()).device
    out = {"global": dict(zip(layers, router.weights(None).reshape(-1).tolist()))}
    for name in fold.train_subjects:
        idx = torch.tensor([fold.subject_layer[name]], device=device)
        out[name] = dict(zip(layers, router.weights(idx).reshape(-1).tolist()))
    return out


def _fit_closed_form(model, cfg, fd: FoldData, fold: Fold, run_dir: Path, device, resolved) -> dict[str, Any]:
    """Closed-form baselines (ridge): fit on training trials, choose the penalty on validation, test once."""
    s = fd.train_subjects[0]
    x_train = _TrialRows(s, fd.train_images, cfg.data.train_unit)
    reps = x_train.n_reps
    rows = fd.targets.train_stack[0] if fd.targets.train_stack is not None else fd.train_feats.image
    if fd.targets.train_stack is not None and fd.targets.train_stack.shape[0] > 1:
        raise ConfigError(f"{resolved['model']} is fitted in closed form: use target.blur_rule fixed or mean")
    y_train = np.repeat(np.asarray(rows)[fd.train_images], reps, axis=0)
    x_val = averaged_eeg(s, "train", fd.val_images)
    y_val = np.asarray(fd.train_feats.image)[fd.val_images]
    model.fit(x_train, y_train, x_val, y_val, **cfg.model_options.get("fit", {}))
    report = getattr(model, "fit_report_", None)
    save_checkpoint(
        run_dir / "checkpoints", "best", model, {"epoch": 0, "model": resolved["model"], "fit_report": report}
    )
    val = Validator(fd, fold, cfg, device)(model)
    selected_by = "closed form; penalty chosen on held-out training concepts"
    results = _results(model, fd, fold, cfg, device, resolved, 0, val.get("val_top1"), selected_by)
    write_json(run_dir / "results.json", results)
    return results


def _digest(d: dict[str, Any]) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _init_wandb(cfg: TrainConfig, resolved: dict[str, Any], run_dir: Path):
    import wandb

    # Offline unless the user configured a mode (WANDB_MODE) themselves; never an API key in code.
    os.environ.setdefault("WANDB_MODE", "offline")
    return wandb.init(project="eegdecode", config=resolved, dir=str(run_dir), name=run_dir.name)


def plot_training_curves(metrics_path: Path, out: Path) -> Path | None:
    """Training loss and validation accuracy per epoch, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in Path(metrics_path).read_text().splitlines() if line.strip()]
    if not rows:
        return None
    ep = [r["epoch"] + 1 for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    axes[0].plot(ep, [r.get("train_total", np.nan) for r in rows], marker="o")
    axes[0].set(xlabel="epoch", ylabel="training loss", title="training loss")
    if any("val_top1" in r for r in rows):
        k = rows[-1].get("val_k", "")
        axes[1].plot(ep, [100 * r.get("val_top1", np.nan) for r in rows], marker="o", label="validation")
        axes[1].axhline(100 / k if k else np.nan, color="grey", ls="--", label="chance")
        axes[1].set(xlabel="epoch", ylabel="top-1 %", title=f"validation {k}-way top-1 (model selection)")
        axes[1].legend()
    fig.tight_layout()
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return out
