"""Training on targets from a target store: one layer, concatenated layers, the router head, blur rules, MMD stage."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch

from eegdecode import faults
from eegdecode.data.datasets import DataOptions, make_folds
from eegdecode.data.paths import DatasetPaths
from eegdecode.errors import ConfigError, MissingFileError
from eegdecode.io import read_json
from eegdecode.targets.store import TargetStore, write_reference_targets
from eegdecode.training.checkpoint import checkpoint_files
from eegdecode.training.trainer import TrainConfig, evaluate_test, load_fold_data, load_run, train_fold

FAST = DataOptions(channels="posterior17", time_window=(0.0, 0.3), train_unit="average", val_fraction=0.1)
BASE = dict(model="MUSE_EEG", epochs=2, batch_size=64, lr=1e-3, seed=0, device="cpu", data=FAST, eval_draws=5,
            checkpoint_every=1)  # fmt: skip
VARIANTS = ("none", "gaussian:9", "gaussian:25", "gaussian:51")


@pytest.fixture(scope="module")
def root(tiny_root, tmp_path_factory):
    """The tiny set (EEG and cache shared by symlink) with a target store of three layers and four blur variants:
    ``embedding`` (the reference embedding), ``block:2`` and ``block:5`` (fixed random maps of it, 48-d); each
    variant adds more noise, as blur removes more of what the EEG carries."""
    from eegdecode.data.cache import prepare_subject

    for sub in ("sub-01", "sub-02"):  # the shared cache must exist before it is linked
        paths = DatasetPaths(tiny_root)
        prepare_subject(paths.subject_dir(sub), paths.cache_dir(sub))
    dest = tmp_path_factory.mktemp("targets_root")
    for name in ("Preprocessed_data_250Hz", "cache"):
        (dest / name).symlink_to(tiny_root / name, target_is_directory=True)
    for name in ("image_set", "features"):
        shutil.copytree(tiny_root / name, dest / name)
    for name in ("simulation.json", "ceiling.json"):
        shutil.copy(tiny_root / name, dest / name)
    ref = read_json(tiny_root / "features" / "reference" / "features.json")
    splits, prov = {}, {}
    for split in ("train", "test"):
        image = np.load(tiny_root / "features" / "reference" / f"image_features_{split}.npy")
        text = np.load(tiny_root / "features" / "reference" / f"text_features_{split}.npy")
        splits[split] = (image, text)
        prov[split] = {"image_list_digest": ref["splits"][split]["image_list_sha256"],
                       "images_per_concept": image.shape[0] // text.shape[0]}  # fmt: skip
    store = write_reference_targets(dest / "targets", "reference", splits, prov)
    rng = np.random.default_rng(0)
    maps = {layer: rng.standard_normal((1024, 48)) / 32 for layer in ("block:2", "block:5")}
    for split, (image, _) in splits.items():
        for level, variant in enumerate(VARIANTS):
            noise = np.random.default_rng(level).standard_normal(image.shape) * 0.3 * level
            if variant != "none":
                store.put_image(split, "embedding", None, variant, image + noise, {"module": "embedding"})
            for layer, m in maps.items():
                store.put_image(split, layer, "cls", variant, (image + noise) @ m, {"module": layer})
    return dest


def _cfg(**kw):
    return TrainConfig(**{**BASE, **kw})


def _target(**kw):
    return {"backbone": "simulator:reference", **kw}


def test_one_layer_at_a_fixed_blur_trains_and_is_scored_in_its_own_space(root, tmp_path):
    cfg = _cfg(target=_target(layers=["block:2"], blur=["gaussian:9"]), loss_options={"w_txt": 0})
    res = train_fold(cfg, DatasetPaths(root), make_folds("intra", [1])[0], tmp_path / "r", progress=False)
    rec = read_json(tmp_path / "r" / "config.json")
    assert (
        rec["n_outputs"] == 48
        and rec["target_shape"] == [48]
        and "simulator_reference" in rec["target_store"]
    )
    assert rec["target_text"] == "concept mean of the image targets"
    assert res["kway"]["k"]["20"]["top1_mean"] >= 0  # evaluated against the 48-d test targets
    _, cfg2, fold, model, _ = load_run(tmp_path / "r")
    fd = load_fold_data(DatasetPaths(root), fold, cfg2)
    again = evaluate_test(model, fd, fold, cfg2, torch.device("cpu"))["sub-01"].to_dict()
    assert again == res["kway"]


def test_concatenated_layers_and_the_stored_text_of_the_embedding(root, tmp_path):
    paths, fold = DatasetPaths(root), make_folds("intra", [1])[0]
    cfg = _cfg(
        epochs=1, target=_target(layers=["block:2", "block:5"], combine="concat"), loss_options={"w_txt": 0}
    )
    train_fold(cfg, paths, fold, tmp_path / "c", progress=False)
    assert read_json(tmp_path / "c" / "config.json")["target_shape"] == [96]
    fd = load_fold_data(paths, fold, _cfg(target=_target(layers=["embedding"])))
    assert fd.train_feats.image.shape[1] == 1024 and fd.targets.train.meta["text"] == "stored prompts"


def test_router_head_is_trained_saved_and_rebuilt(root, tmp_path):
    paths, fold = DatasetPaths(root), make_folds("intra", [1])[0]
    target = _target(layers=["block:2", "block:5"], combine="router", router={"embed_dim": 32, "mid_dim": 64})
    cfg = _cfg(target=target, loss_options={"w_txt": 0}, mmd_epochs=1)
    res = train_fold(cfg, paths, fold, tmp_path / "router", progress=False)
    rows = [json.loads(x) for x in (tmp_path / "router" / "metrics.jsonl").read_text().splitlines()]
    assert "train_mmd" in rows[0] and "train_mmd" not in rows[1] and "train_img" in rows[1]  # MMD stage first
    assert set(res["layer_weights"]) == {"global", "sub-01"}
    assert list(res["layer_weights"]["sub-01"]) == ["block:2", "block:5"]
    assert abs(sum(res["layer_weights"]["global"].values()) - 1) < 1e-6
    _, cfg2, fold2, model, _ = load_run(tmp_path / "router")
    assert type(model).__name__ == "AlignedEncoder"
    assert torch.allclose(model.head.router.weights(None).sum(-1), torch.ones(1))
    fd = load_fold_data(paths, fold2, cfg2)
    assert evaluate_test(model, fd, fold2, cfg2, torch.device("cpu"))["sub-01"].to_dict() == res["kway"]
    with pytest.raises(ConfigError, match="no text side"):
        evaluate_test(model, fd, fold2, cfg2, torch.device("cpu"), gallery="text")
    with pytest.raises(ConfigError, match="w_txt"):
        train_fold(
            dataclasses.replace(cfg, mmd_epochs=0, loss_options={}),
            paths,
            fold,
            tmp_path / "x",
            progress=False,
        )


def test_the_shared_projector_is_frozen_after_the_mmd_stage(root, tmp_path):
    target = _target(layers=["block:2", "block:5"], combine="router", router={"embed_dim": 32, "mid_dim": 64})
    cfg = _cfg(epochs=3, target=target, loss_options={"w_txt": 0}, mmd_epochs=1)
    paths, fold = DatasetPaths(root), make_folds("intra", [1])[0]
    seen = {}

    def grab(name):
        if name == "last.cleanup":
            from safetensors.torch import load_file

            weights = load_file(str(checkpoint_files(tmp_path / "f" / "checkpoints", "last")["weights"]))
            seen[len(seen)] = {k: weights[k].clone() for k in ("head.shared.weight", "head.eeg.weight")}

    with faults.inject(grab):
        train_fold(cfg, paths, fold, tmp_path / "f", progress=False)
    shared = [seen[e]["head.shared.weight"] for e in range(3)]
    assert torch.equal(shared[0], shared[1]) and torch.equal(shared[1], shared[2])  # frozen after epoch 0
    assert not torch.equal(seen[1]["head.eeg.weight"], seen[2]["head.eeg.weight"])  # the rest still trains


@pytest.mark.parametrize("rule", ["uncertainty", "random"])
def test_per_sample_blur_rules_resume_exactly(root, tmp_path, rule):
    target = _target(layers=["block:2"], blur=["gaussian:9", "gaussian:25", "gaussian:51"], blur_rule=rule)
    cfg = _cfg(target=target, loss_options={"w_txt": 0})
    paths, fold = DatasetPaths(root), make_folds("intra", [1])[0]
    train_fold(cfg, paths, fold, tmp_path / "full", progress=False)
    state_file = checkpoint_files(tmp_path / "full" / "checkpoints", "last")["state"]
    state = torch.load(state_file, weights_only=True)
    levels = state["targets"]["chooser.levels"]
    if rule == "uncertainty":  # UBP's rule moved some samples off the medium level
        assert set(levels.tolist()) > {1}
    seen = {"epoch": -1}

    def kill(name):
        seen["epoch"] += name == "metrics"
        if name == "last.json" and seen["epoch"] == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), faults.inject(kill):
        train_fold(cfg, paths, fold, tmp_path / "cut", progress=False)
    train_fold(cfg, paths, fold, tmp_path / "cut", progress=False, resume=True)
    for name in ("metrics.jsonl", "results.json"):
        assert (tmp_path / "cut" / name).read_bytes() == (tmp_path / "full" / name).read_bytes()


def test_a_missing_target_store_names_the_command_that_makes_it(root, tmp_path):
    cfg = _cfg(target={"backbone": "open_clip:RN50", "layers": ["block:3"], "pooling": "mean"})
    with pytest.raises(
        MissingFileError, match="eegdecode features --backbone open_clip:RN50 --layer block:3"
    ):
        train_fold(cfg, DatasetPaths(root), make_folds("intra", [1])[0], tmp_path / "m", progress=False)
    assert not (tmp_path / "m").exists()
    assert TargetStore(root / "targets" / "nope").exists() is False


def test_the_train_command_takes_a_target_from_flags(root, tmp_path):
    from eegdecode.cli import main

    argv = ["train", "--data-root", str(root), "--subject", "1", "--model", "MUSE_EEG", "--epochs", "1",
            "--batch-size", "64", "--channels", "posterior17", "--time-window", "0", "0.3", "--train-unit", "average",
            "--val-fraction", "0.1", "--device", "cpu", "--quiet", "--out", str(tmp_path),
            "--target", "simulator:reference", "--target-layer", "block:2", "block:5", "--combine", "router",
            "--mmd-epochs", "0", "--w-txt", "0"]  # fmt: skip
    assert main(argv) == 0
    cfg = read_json(tmp_path / "MUSE_EEG" / "intra" / "sub-01" / "seed0" / "config.json")
    assert cfg["target"]["layers"] == ["block:2", "block:5"] and cfg["target"]["combine"] == "router"
    assert cfg["loss_options"] == {"w_txt": 0.0} and cfg["target_shape"] == [2, 48]


def test_early_stopping_patience_starts_after_the_mmd_stage(root, tmp_path, monkeypatch):
    """A flat validation score during the MMD stage must not end training before InfoNCE begins."""
    from eegdecode.training import trainer

    monkeypatch.setattr(trainer.Validator, "__call__", lambda self, model: {"val_k": 5, "val_top1": 0.2})
    target = _target(layers=["block:2", "block:5"], combine="router", router={"embed_dim": 32, "mid_dim": 64})
    cfg = _cfg(epochs=5, target=target, loss_options={"w_txt": 0}, mmd_epochs=2, early_stopping=1)
    train_fold(cfg, DatasetPaths(root), make_folds("intra", [1])[0], tmp_path / "p", progress=False)
    rows = [json.loads(x) for x in (tmp_path / "p" / "metrics.jsonl").read_text().splitlines()]
    # epochs 0-1 MMD (flat, no patience used), epoch 2 the first InfoNCE epoch (flat: patience 1 spent) -> stop
    assert [r["epoch"] for r in rows] == [0, 1, 2] and "train_img" in rows[2]


def test_router_options_reach_the_head_and_the_optimizer():
    """``router.normalize`` builds the head with normalised layers; ``router.lr`` puts the router's parameters (and
    only them) in an AdamW group of their own; both are checked when the config is made."""
    from eegdecode.training.step import make_optimizer
    from eegdecode.training.trainer import build_model

    router = {"embed_dim": 8, "mid_dim": 16, "normalize": True, "lr": 0.05}
    cfg = _cfg(target=_target(layers=["block:2", "block:5"], combine="router", router=router),
               loss_options={"w_txt": 0})  # fmt: skip
    model = build_model(cfg, 17, 75, (2, 48), n_subjects=2)
    assert model.head.normalize_layers is True
    opt = make_optimizer(model, 1e-3, 0.01, torch.device("cpu"), router_lr=0.05)
    main, routed = opt.param_groups
    assert (main["lr"], routed["lr"]) == (1e-3, 0.05) and routed["weight_decay"] == main[
        "weight_decay"
    ] == 0.01
    assert {id(p) for p in routed["params"]} == {id(p) for p in model.head.router.parameters()}
    assert len(main["params"]) + len(routed["params"]) == len(list(model.parameters()))
    # SAMGA's defaults: no normalisation, one group at the run's rate.
    default = build_model(_cfg(target=_target(layers=["block:2", "block:5"], combine="router"),
                               loss_options={"w_txt": 0}), 17, 75, (2, 48), n_subjects=2)  # fmt: skip
    assert default.head.normalize_layers is False
    assert len(make_optimizer(default, 1e-3, 0.01, torch.device("cpu")).param_groups) == 1
    with pytest.raises(ValueError, match="no LayerRouter"):
        make_optimizer(default.encoder, 1e-3, 0.01, torch.device("cpu"), router_lr=0.05)
    for bad, match in (({"normalize": "yes"}, "target.router.normalize: 'yes'"),
                       ({"lr": 0}, "target.router.lr: 0; expected a positive number"),
                       ({"lr": True}, "target.router.lr: True"),
                       ({"learning_rate": 1.0}, "unknown target.router options")):  # fmt: skip
        with pytest.raises(ConfigError, match=match):
            _cfg(target=_target(layers=["block:2", "block:5"], combine="router", router=bad))


# ---- SAMGA's schedule: MMD weight from start to end over stage 1, a new AdamW at stage2_lr in stage 2 ------------

SAMGA_TARGET = _target(
    layers=["block:2", "block:5"], combine="router", router={"embed_dim": 32, "mid_dim": 64}
)
SAMGA = dict(epochs=4, target=SAMGA_TARGET, loss_options={"w_txt": 0}, mmd_epochs=2,
             mmd_options={"start": 0.9, "end": 0.5, "stage2_lr": 2e-4})  # fmt: skip


def test_the_mmd_schedule_has_samgas_weights_and_stage_2_rate():
    from eegdecode.training.config import MMDSchedule

    s = MMDSchedule.from_config(20, {"start": 0.9, "end": 0.5, "stage2_lr": 5e-5})  # SAMGA's intra.sh
    assert s.weight(0) == 0.9 and s.weight(19) == pytest.approx(0.5, abs=1e-15)
    assert s.weight(10) == pytest.approx(0.9 - 0.4 * 10 / 19, abs=1e-15)  # 0.689474: linear per epoch
    assert s.weight(20) is None and s.weight(59) is None  # stage 2: the contrastive loss alone
    assert [e for e in range(60) if s.new_optimizer_at(e)] == [20]
    assert (s.lr(19, 1e-4), s.lr(20, 1e-4), s.lr(59, 1e-4)) == (1e-4, 5e-5, 5e-5)
    assert MMDSchedule.from_config(1, {"start": 0.9, "end": 0.5}).weight(0) == 0.5  # SAMGA: end for one epoch
    today = MMDSchedule.from_config(3, None)  # no options: pure MMD, one optimizer
    assert today.weight(0) is None and not any(today.new_optimizer_at(e) for e in range(10))
    assert today.lr(5, 1e-3) == 1e-3
    for options, match in (
        ({"start": 0.9}, "mmd_options.start and mmd_options.end go together"),
        ({"start": 1.5, "end": 0.5}, r"mmd_options.start: 1.5; expected a number in \[0, 1\]"),
        ({"stage2_lr": 0}, "mmd_options.stage2_lr: 0; expected a positive number"),
        ({"stage2": 1e-4}, r"unknown mmd_options \['stage2'\]"),
    ):
        with pytest.raises(ConfigError, match=match):
            _cfg(**{**SAMGA, "mmd_options": options})
    with pytest.raises(ConfigError, match="mmd_options needs an MMD stage: set mmd_epochs > 0"):
        _cfg(**{**SAMGA, "mmd_epochs": 0})


def _grab_shared(run):
    seen = []

    def hook(name):
        if name == "last.cleanup":
            from safetensors.torch import load_file

            weights = load_file(str(checkpoint_files(run / "checkpoints", "last")["weights"]))
            seen.append(weights["head.shared.weight"].clone())

    return seen, hook


@pytest.fixture(scope="module")
def samga_run(root, tmp_path_factory):
    run = tmp_path_factory.mktemp("samga") / "full"
    seen, hook = _grab_shared(run)
    with faults.inject(hook):
        train_fold(_cfg(**SAMGA), DatasetPaths(root), make_folds("intra", [1])[0], run, progress=False)
    return run, seen


def test_samgas_stages_in_a_run(samga_run):
    run, shared = samga_run
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r.get("train_mmd_weight") for r in rows] == [
        pytest.approx(0.9, abs=1e-12),
        pytest.approx(0.5, abs=1e-12),
        None,
        None,
    ]
    assert (
        "train_img" in rows[0] and "train_mmd" in rows[0] and "train_mmd" not in rows[2]
    )  # mixed, then InfoNCE
    assert [r["lr"] for r in rows] == [1e-3, 1e-3, 2e-4, 2e-4]
    assert torch.equal(shared[1], shared[2]) and torch.equal(shared[2], shared[3])  # frozen in stage 2
    assert not torch.equal(shared[0], shared[1])  # trained in stage 1
    _, _, _, model, _ = load_run(run)
    state = torch.load(checkpoint_files(run / "checkpoints", "last")["state"], weights_only=True)
    (group,) = state["optimizer"]["param_groups"]
    n_shared = len(list(model.head.shared.parameters()))
    assert group["lr"] == 2e-4 and len(group["params"]) == len(list(model.parameters())) - n_shared > 0


@pytest.mark.parametrize("epoch", [2, 3])
def test_a_run_killed_in_stage_2_resumes_exactly(root, tmp_path, samga_run, epoch):
    """Killed before the checkpoint of the first stage-2 epoch (resumes from a stage-1 optimizer, then starts the new
    one) or of a later one (resumes the stage-2 optimizer): the same bytes as the uninterrupted run."""
    ref, _ = samga_run
    seen = {"epoch": -1}

    def kill(name):
        seen["epoch"] += name == "metrics"
        if name == "last.state" and seen["epoch"] == epoch:  # before its last.json
            raise KeyboardInterrupt

    paths, fold, run = DatasetPaths(root), make_folds("intra", [1])[0], tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt), faults.inject(kill):
        train_fold(_cfg(**SAMGA), paths, fold, run, progress=False)
    assert read_json(run / "checkpoints" / "last.json")["epoch"] == epoch - 1
    train_fold(_cfg(**SAMGA), paths, fold, run, progress=False, resume=True)
    for name in ("metrics.jsonl", "results.json"):
        assert (run / name).read_bytes() == (ref / name).read_bytes()
    best = [checkpoint_files(r / "checkpoints", "best")["weights"].read_bytes() for r in (run, ref)]
    assert best[0] == best[1]


def _manual_test_kway(model, fd, fold, cfg, gallery):
    """The test k-way result of ``model`` against an explicitly given gallery (evaluate_test's computation)."""
    from eegdecode.data.datasets import averaged_eeg
    from eegdecode.evaluation.kway import kway_accuracy, standard_ks
    from eegdecode.training.trainer import embed

    s = fd.test_subjects[0]
    emb = embed(model, averaged_eeg(s, "test", n_reps=cfg.data.test_reps), fold.subject_layer[s.name],
                torch.device("cpu"))  # fmt: skip
    return kway_accuracy(
        emb, gallery, ks=standard_ks(len(emb)), n_draws=cfg.eval_draws, seed=cfg.seed
    ).to_dict()


def _manual_val_top1(model, fd, fold, cfg, gallery):
    from eegdecode.data.datasets import averaged_eeg
    from eegdecode.evaluation.kway import kway_accuracy
    from eegdecode.training.trainer import embed

    s, k = fd.train_subjects[0], min(cfg.val_k, int(fd.val_images.size))
    q = torch.from_numpy(averaged_eeg(s, "train", fd.val_images))
    emb = embed(model, q, fold.subject_layer[s.name], torch.device("cpu"))
    return kway_accuracy(emb, gallery, ks=(k,), n_draws=20, seed=cfg.seed).scores[k].top1_mean


def test_linear_head_is_trained_scored_in_its_space_saved_and_rebuilt(root, tmp_path):
    """``target.head: {kind: linear, embed_dim: 16}``: NeuroBridge's two linear projectors around the encoder;
    validation and test galleries are the images' targets through the target projector."""
    from safetensors.torch import load_file

    from eegdecode.training.trainer import Validator, build_model

    paths, fold = DatasetPaths(root), make_folds("intra", [1])[0]
    target = _target(layers=["block:2"], blur=["gaussian:9"], head={"kind": "linear", "embed_dim": 16})
    cfg = _cfg(target=target, loss_options={"w_txt": 0})
    res = train_fold(cfg, paths, fold, tmp_path / "h", progress=False)
    rec = read_json(tmp_path / "h" / "config.json")
    assert rec["target_shape"] == [48] and rec["target_text"] == "none (projection head)"
    plain = build_model(_cfg(target=_target(layers=["block:2"], blur=["gaussian:9"])), 17, 75, (48,), 1)
    n_plain = sum(p.numel() for p in plain.parameters() if p.requires_grad)
    assert rec["n_parameters"] == n_plain + 2 * (48 * 16 + 16)  # EEG and target projectors, with bias
    assert "layer_weights" not in res and "blur_weights" not in res
    _, cfg2, fold2, model, _ = load_run(tmp_path / "h")
    weights = load_file(str(checkpoint_files(tmp_path / "h" / "checkpoints", "best")["weights"]))
    assert torch.equal(model.head.target.weight, weights["head.target.weight"])
    with torch.no_grad():  # in eval mode: a training-mode forward would move the batch-norm statistics
        assert model.eval()(torch.randn(2, 17, 75), torch.zeros(2, dtype=torch.long)).shape == (2, 16)
    fd = load_fold_data(paths, fold2, cfg2)
    assert evaluate_test(model, fd, fold2, cfg2, torch.device("cpu"))["sub-01"].to_dict() == res["kway"]
    with torch.no_grad():
        test_gallery = model.head.target(torch.from_numpy(np.asarray(fd.test_feats.image))).numpy()
        val_gallery = model.head.target(
            torch.from_numpy(np.asarray(fd.train_feats.image)[fd.val_images])
        ).numpy()
    assert test_gallery.shape == (fd.test_feats.image.shape[0], 16)
    assert _manual_test_kway(model, fd, fold2, cfg2, test_gallery) == res["kway"]
    val = Validator(fd, fold2, cfg2, torch.device("cpu"))(model)
    assert val["val_top1"] == _manual_val_top1(model, fd, fold2, cfg2, val_gallery) == res["val_top1"]
    with pytest.raises(ConfigError, match="no text side"):
        evaluate_test(model, fd, fold2, cfg2, torch.device("cpu"), gallery="text")
    with pytest.raises(ConfigError, match="target.head: no text side; set loss_options w_txt to 0"):
        train_fold(dataclasses.replace(cfg, loss_options={}), paths, fold, tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()


def test_learned_blur_mixture_starts_at_the_mean_trains_and_records_its_weights(root, tmp_path):
    """``blur_rule: learned``: every batch carries all four variants; the mixer starts as the ``mean`` rule, its
    weights move, are written to results.json per variant and come back with the checkpoint; the galleries are
    the learned mixture."""
    from eegdecode.training.targets import TrainTargets, target_space
    from eegdecode.training.trainer import build_model

    paths, fold = DatasetPaths(root), make_folds("intra", [1])[0]
    cfg = _cfg(epochs=3, target=_target(layers=["block:2"], blur=list(VARIANTS), blur_rule="learned"))
    fd = load_fold_data(paths, fold, cfg)
    assert fd.test_feats.image.shape[1:] == (4, 48) and fd.train_feats.image.shape[1:] == (4, 48)
    assert fd.targets.train.meta["text"] == "concept mean of the image targets"  # of the variants' mean
    mean = load_fold_data(paths, fold, _cfg(target=_target(layers=["block:2"], blur=list(VARIANTS),
                                                             blur_rule="mean")))  # fmt: skip
    model = build_model(cfg, 17, 75, (4, 48), 1)
    gallery = target_space(model, fd.test_feats.image, torch.device("cpu"))
    # At the start the learned mixture is the mean rule's target.
    np.testing.assert_allclose(gallery, mean.test_feats.image, rtol=0, atol=1e-5)
    np.testing.assert_allclose(fd.train_feats.text, mean.train_feats.text, rtol=0, atol=1e-5)
    targets = TrainTargets(fd.targets, fd.image_concept, 8, 0, torch.device("cpu"))
    batch = type("B", (), {"image": torch.tensor([0, 3, 5]), "sample": torch.arange(3)})()
    img, txt = targets.rows(batch)
    assert img.shape == (3, 4, 48) and txt.shape == (3, 48)
    torch.testing.assert_close(img, torch.from_numpy(np.asarray(fd.train_feats.image)[[0, 3, 5]]))

    res = train_fold(cfg, paths, fold, tmp_path / "b", progress=False)
    assert list(res["blur_weights"]) == list(VARIANTS)
    assert abs(sum(res["blur_weights"].values()) - 1) < 1e-6
    # Trained with the encoder: the per-dimension weights left 1/4 (the level means move less in 3 short epochs;
    # tests/models/test_single_target_heads.py trains them to the informative level).
    assert max(hi - lo for lo, hi in res["blur_weights_range"].values()) > 1e-4
    assert all(lo <= res["blur_weights"][v] <= hi for v, (lo, hi) in res["blur_weights_range"].items())
    _, cfg2, fold2, model, _ = load_run(tmp_path / "b")
    assert read_json(tmp_path / "b" / "config.json")["target_shape"] == [4, 48]
    level = model.head.mixer.level_weights().tolist()
    assert level == pytest.approx(list(res["blur_weights"].values()), abs=1e-7)
    fd2 = load_fold_data(paths, fold2, cfg2)
    assert evaluate_test(model, fd2, fold2, cfg2, torch.device("cpu"))["sub-01"].to_dict() == res["kway"]
    with torch.no_grad():
        mixed = model.head.mixer(torch.from_numpy(np.asarray(fd2.test_feats.image))).numpy()
    assert _manual_test_kway(model, fd2, fold2, cfg2, mixed) == res["kway"]


def test_head_and_learned_blur_options_are_checked_when_the_config_is_made(root):
    from eegdecode.training.trainer import build_model

    blur = list(VARIANTS)
    for target, match in (
        (_target(layers=["block:2"], blur_rule="learned"), "'learned' mixes several blur variants; found 1"),
        (_target(layers=["block:2"], blur=blur, blur_rule="learned", eval_variant="none"), "eval_variant is not"),
        (_target(layers=["block:2"], blur=blur, blur_rule="learned", blur_level=1), "blur_level is not used"),
        (_target(layers=["block:2", "block:5"], combine="router", blur=blur, blur_rule="learned"), "not router"),
        (_target(head={"kind": "mlp", "embed_dim": 8}), r"target.head.kind: 'mlp'; allowed values are \['linear'\]"),
        (_target(head={"kind": "linear"}), "target.head.embed_dim: None; expected a positive integer"),
        (_target(head={"kind": "linear", "embed_dim": True}), "target.head.embed_dim: True"),
        (_target(head={"kind": "linear", "embed_dim": 8, "bias": False}), r"unknown target.head options \['bias'\]"),
        (_target(head=512), "Invalid value for target.head: 512"),
        (_target(layers=["block:2", "block:5"], combine="router", head={"kind": "linear", "embed_dim": 8}),
         "combine 'router' has its own projectors"),
    ):  # fmt: skip
        with pytest.raises(ConfigError, match=match):
            _cfg(target=target)
    # Concatenated layers take the head too; a closed-form encoder takes neither.
    cat = _cfg(target=_target(layers=["block:2", "block:5"], head={"kind": "linear", "embed_dim": 8}),
               loss_options={"w_txt": 0})  # fmt: skip
    assert build_model(cat, 17, 75, (96,), 1).head.target.in_features == 96
    for target in (_target(head={"kind": "linear", "embed_dim": 8}), _target(blur=blur, blur_rule="learned")):
        with pytest.raises(ConfigError, match="fitted in closed form"):
            build_model(_cfg(model="ridge", target=target, loss_options={"w_txt": 0}), 17, 75, (48,), 1)
    # Old configs build the encoder alone, as before.
    assert not hasattr(build_model(_cfg(target=_target(layers=["block:2"])), 17, 75, (48,), 1), "head")


def test_the_train_flags_set_the_head_and_the_learned_blur_rule(root):
    from eegdecode.cli import build_parser
    from eegdecode.commands.train import build_config

    argv = ["train", "--data-root", str(root), "--target", "simulator:reference", "--target-layer", "block:2",
            "--target-blur", *VARIANTS, "--blur-rule", "learned", "--linear-head", "32", "--w-txt", "0"]  # fmt: skip
    cfg = build_config(build_parser(argv).parse_args(argv), DatasetPaths(root))
    assert cfg.target["blur_rule"] == "learned" and cfg.target["head"] == {"kind": "linear", "embed_dim": 32}
