"""``eegdecode train``: train an encoder (or fit the ridge baseline) and evaluate it once on the test set.

``--recipe NAME`` starts from a published method's settings (:mod:`eegdecode.training.recipes`; on a simulated
data root with the recipe's simulated target); a ``--config`` file (YAML or JSON with the keys of
:class:`eegdecode.training.trainer.TrainConfig`) overrides it, and flags override both. The fully resolved
configuration is written to every run folder. Runs go to
``<out>/<model>/<protocol>/<fold>/seed<seed>/``. The same command runs under ``torchrun --nproc_per_node N``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

_DATA_KEYS = ("channels", "time_window", "train_unit", "test_reps", "val_fraction", "val_seed", "dtype")


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", help="data root (default: $EEGDECODE_DATA)")
    p.add_argument(
        "--release",
        default="250hz",
        choices=("250hz", "100hz", "meg"),
        help="250hz (NICE/ATM 63 ch), 100hz (Gifford 17 ch) or meg (THINGS-MEG, 271 x 201)",
    )
    p.add_argument("--modality", choices=("eeg", "meg"), help="meg is a shorthand for --release meg")
    p.add_argument(
        "--features",
        help="feature store name under <data-root>/features, or a folder (default: reference on simulated data, ViT-H-14 otherwise)",
    )
    p.add_argument("--channels", help="all | posterior17 | regions joined by + | comma-separated names")
    p.add_argument(
        "--time-window", nargs=2, type=float, metavar=("START", "STOP"), help="seconds, start <= t < stop"
    )
    p.add_argument("--test-reps", type=int, help="test repetitions averaged per query (default: all)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from eegdecode.models import list_encoders

    p.add_argument(
        "--recipe",
        help="a published method's settings (`eegdecode recipes` lists them); --config and flags override it; "
        "on simulated data its simulated target is used",
    )
    p.add_argument("--config", help="YAML/JSON file of training options (flags override it)")
    p.add_argument(
        "--model",
        help="encoder name: " + ", ".join(list_encoders()) + " (case-insensitive; aliases accepted)",
    )
    add_data_arguments(p)
    p.add_argument("--subject", nargs="*", help="subjects (1 2 or sub-01); default: all found")
    p.add_argument(
        "--test-subject", nargs="*", help="test subjects of the folds (default: every subject given)"
    )
    p.add_argument("--protocol", default="intra", choices=("intra", "loso", "joint"))
    t = p.add_argument_group("target (what the EEG is aligned to; default: the feature store of --features)")
    t.add_argument(
        "--target",
        metavar="BACKBONE",
        help="open_clip:NAME | hf:PATH | simulator:vision | simulator:reference",
    )
    t.add_argument("--target-weights", help="the backbone's weights file (part of the target store's key)")
    t.add_argument(
        "--target-layer", nargs="+", metavar="LAYER", help="embedding | block:I ... (several: see --combine)"
    )
    t.add_argument("--target-pooling", help="cls | mean | tokens:N (block layers)")
    t.add_argument(
        "--target-blur", nargs="+", metavar="VARIANT", help="none | gaussian:K | fovea:K | ubp | multiblur12"
    )
    t.add_argument(
        "--combine", choices=("concat", "router"), help="several layers: side by side, or SAMGA's router"
    )
    t.add_argument(
        "--blur-rule",
        choices=("fixed", "random", "uncertainty", "mean", "learned"),
        help="blur variant per sample, their mean, or their learned softmax mixture",
    )
    t.add_argument(
        "--linear-head",
        type=int,
        metavar="DIM",
        help="linear projectors of the EEG and the target into a shared DIM-d space (target.head)",
    )
    t.add_argument("--mmd-epochs", type=int, help="epochs of SAMGA's MMD stage before InfoNCE (router only)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--warmup-epochs", type=float)
    p.add_argument("--cosine", action="store_true", default=None, help="cosine learning-rate decay")
    p.add_argument("--grad-clip", type=float)
    p.add_argument("--loss", choices=("retrieval", "generation", "seed-loss"))
    p.add_argument("--w-txt", type=float, help="weight of the text term of the loss (0: image only)")
    p.add_argument(
        "--train-unit",
        choices=("trial", "average"),
        help="single trials (ATM) or repetitions averaged (NICE)",
    )
    p.add_argument("--val-fraction", type=float)
    p.add_argument("--val-seed", type=int)
    p.add_argument("--dtype", choices=("float16", "float32"), help="cache dtype")
    p.add_argument(
        "--early-stopping",
        type=int,
        metavar="EPOCHS",
        help="stop after this many epochs without validation gain",
    )
    p.add_argument("--seed", type=int, nargs="*", help="one or more seeds (one run each)")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--no-amp", action="store_true", help="disable bf16 autocast on CUDA")
    p.add_argument("--num-workers", type=int)
    p.add_argument(
        "--batches",
        choices=("auto", "device", "host"),
        help="training EEG resident on the device (GPU, or RAM on CPU), gathered from the host cache, or auto "
        "(the default: host on CPU; on a GPU device when it fits in half its free memory); same batches either way",
    )
    p.add_argument(
        "--checkpoint-every",
        type=int,
        metavar="N",
        help="write last/best every N epochs and at the end (default 5)",
    )
    p.add_argument(
        "--compile", action="store_true", default=None, help="torch.compile the training forward pass"
    )
    p.add_argument(
        "--eval-test-every-epoch",
        action="store_true",
        default=None,
        help="log test accuracy each epoch (monitoring only, never used for model selection)",
    )
    p.add_argument(
        "--wandb",
        action="store_true",
        default=None,
        help="log to Weights & Biases (offline unless configured)",
    )
    p.add_argument("--out", default="runs", help="folder of run folders")
    p.add_argument("--overwrite", action="store_true", help="replace existing run folders")
    p.add_argument(
        "--resume", action="store_true", help="continue interrupted runs from their last checkpoint"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def read_config_file(path: str | None) -> dict[str, Any]:
    from eegdecode.errors import ConfigError, DataFormatError, MissingFileError

    if not path:
        return {}
    if not Path(path).is_file():
        raise MissingFileError(path, "--config names no file")
    text = Path(path).read_text()
    try:
        if path.endswith((".yaml", ".yml")):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text)
    except Exception as exc:  # yaml.YAMLError, json.JSONDecodeError
        raise DataFormatError(path, f"cannot be parsed ({type(exc).__name__}: {exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(
            f"--config {path}: expected a mapping of training options, found {type(data).__name__}"
        )
    return data


def recipe_settings(args: argparse.Namespace, paths) -> dict[str, Any]:
    """The ``--recipe`` settings for the command's protocol (simulated overrides on a simulated root), or ``{}``.

    Prints which recipe was applied and, on simulated data, that its target was replaced by the simulator's.
    The recipe's name is recorded as ``recipe`` in ``config.json`` and names the run folders.
    """
    name = getattr(args, "recipe", None)
    if not name:
        return {}
    from eegdecode.training.recipes import get_recipe, recipe_config, simulated_overrides

    recipe = get_recipe(name)
    simulated = (paths.root / "simulation.json").exists()
    protocol = getattr(args, "protocol", "intra") or "intra"
    settings = recipe_config(recipe.name, simulated=simulated, protocol=protocol)
    line = f"recipe {recipe.name}: {recipe.title} ({recipe.source.get('venue', '')}); {len(recipe.deviations)} deviations"
    if protocol == "loso" and recipe.loso:
        line += f"; leave-one-subject-out settings {sorted(recipe.loso)}"
    print(line + " (`eegdecode recipes " + recipe.name + "`)")
    if simulated:
        target = simulated_overrides(recipe).get("target", {})
        print(
            f"recipe {recipe.name}: simulated data root, so the target is the simulator's vision model "
            f"({target.get('backbone')}, layers {target.get('layers', 'as the recipe')}, "
            f"blur {target.get('blur', 'as the recipe')}) instead of {recipe.settings.get('target', {}).get('backbone')}"
        )
    return settings


def build_config(args: argparse.Namespace, paths) -> TrainConfig:  # noqa: F821
    """Recipe settings first (``--recipe``), then the ``--config`` file, then the flags."""
    from eegdecode.training.recipes import merge
    from eegdecode.training.trainer import TrainConfig

    recipe, file_options = recipe_settings(args, paths), read_config_file(args.config)
    d = merge(recipe, file_options)
    if recipe:
        from eegdecode.training.recipes import get_recipe

        d["recipe"] = get_recipe(args.recipe).name
    if recipe and "model_options" not in file_options and getattr(args, "model", None):
        from eegdecode.models import resolve_encoder_name

        if resolve_encoder_name(args.model) != resolve_encoder_name(d.get("model", "NervformerV2")):
            d.pop("model_options", None)  # the recipe's options belong to the recipe's encoder
    data = dict(d.pop("data", {}) or {})
    for key in ("model", "epochs", "batch_size", "lr", "weight_decay", "warmup_epochs", "cosine", "grad_clip", "loss",
                "device", "early_stopping", "num_workers", "eval_test_every_epoch", "wandb", "features", "batches",
                "checkpoint_every", "compile", "channels_last"):  # fmt: skip
        val = getattr(args, key, None)
        if val is not None:
            d[key] = val
    if args.no_amp:
        d["amp"] = False
    for key in _DATA_KEYS:
        val = getattr(args, key, None)
        if val is not None:
            data[key] = tuple(val) if key == "time_window" else val
    if data.get("channels") and isinstance(data["channels"], str) and "," in data["channels"]:
        data["channels"] = tuple(c.strip() for c in data["channels"].split(","))
    if "features" not in d:
        d["features"] = "reference" if (paths.root / "simulation.json").exists() else "ViT-H-14"
    target = dict(d.get("target") or {})
    for key, flag in (("backbone", "target"), ("weights", "target_weights"), ("layers", "target_layer"),
                      ("pooling", "target_pooling"), ("blur", "target_blur"), ("combine", "combine"),
                      ("blur_rule", "blur_rule")):  # fmt: skip
        if getattr(args, flag, None) is not None:
            target[key] = getattr(args, flag)
    if getattr(args, "linear_head", None) is not None:
        target["head"] = {"kind": "linear", "embed_dim": args.linear_head}
    if target:
        d["target"] = target
    if getattr(args, "mmd_epochs", None) is not None:
        d["mmd_epochs"] = args.mmd_epochs
    if getattr(args, "w_txt", None) is not None:
        d["loss_options"] = {**(d.get("loss_options") or {}), "w_txt": args.w_txt}
    d["data"] = data
    return TrainConfig.from_dict(d)


def plan_runs(args: argparse.Namespace):
    """Configuration, folds and run folders of the command, every option checked; nothing is written."""
    import dataclasses

    from eegdecode.data.datasets import make_folds
    from eegdecode.data.paths import DatasetPaths, resolve_data_root
    from eegdecode.training.runs import run_dir

    release = "meg" if getattr(args, "modality", None) == "meg" else args.release
    paths = DatasetPaths(resolve_data_root(args.data_root), release)
    cfg = build_config(args, paths)
    subjects = args.subject or paths.subjects()
    folds = make_folds(args.protocol, subjects, args.test_subject)
    seeds = args.seed if args.seed else [cfg.seed]
    plan = []
    for fold in folds:
        for seed in seeds:
            plan.append(
                (
                    dataclasses.replace(cfg, seed=seed),
                    fold,
                    run_dir(args.out, cfg.model, fold.protocol, fold.name, seed, cfg.recipe),
                )
            )
    return paths, plan


def run(args: argparse.Namespace) -> int:
    from eegdecode.evaluation.kway import KWayResult, format_kway_table
    from eegdecode.evaluation.summary import summarize_runs
    from eegdecode.training.distributed import process_group, rank_world
    from eegdecode.training.trainer import prepare_run, train_fold

    paths, plan = plan_runs(args)
    for run_cfg, fold, run_dir in plan:  # every run checked before the first one starts
        prepare_run(run_cfg, paths, fold, run_dir, resume=args.resume, overwrite=args.overwrite)
    with process_group(plan[0][0].device):
        rank = rank_world()[0]
        result_files = []
        for run_cfg, fold, run_dir in plan:
            results = train_fold(run_cfg, paths, fold, run_dir, resume=args.resume, overwrite=args.overwrite,
                                 progress=not args.quiet)  # fmt: skip
            if rank == 0 and results:
                result_files.append(run_dir / "results.json")
                ceiling = results.get("ceiling")
                print(
                    f"\n{results['model']} | {fold.protocol} | {results['subject']} | seed {run_cfg.seed}  ({run_dir})"
                )
                print(f"selected epoch {results['selected_epoch'] + 1} by {results['selected_by']}")
                print(
                    format_kway_table(
                        KWayResult.from_dict(results["kway"]),
                        ceiling=ceiling and KWayResult.from_dict(ceiling),
                    )
                )
                if results.get("ceiling_note"):
                    print(results["ceiling_note"])
        if rank == 0 and len(result_files) > 1:
            print("\nSummary over runs (mean ± sd):")
            print(summarize_runs(result_files).to_markdown())
    return 0
