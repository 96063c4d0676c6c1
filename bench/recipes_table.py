"""Every recipe on the simulated THINGS-EEG2, beside ridge on the same target and the ceiling; plus the ablations.

    python bench/recipes_table.py --data-root /tmp/sim_small --epochs-cap 10 --seeds 0 --recipes ubp nice
    python bench/recipes_table.py --data-root /tmp/sim_small --subjects 4 --loso --ablations-only --ablations

Simulates a data set first (``--preset``, ``--subjects``) if ``--data-root`` holds none. Each (recipe, protocol,
subject, seed) is one training run with the recipe's settings (``recipe_config(name, simulated=True,
protocol=...)``: the simulator's vision model as the target, the recipe's layers and blur variants) and its
epochs capped at ``--epochs-cap`` (recipes ask for up to 200; the table says which cap was used). Beside each
recipe: the closed-form ridge baseline on the same target (the concatenation of the same layers for router
recipes; the recipe's fixed / medium blur variant), the simulator's ceiling and chance.

``--ablations`` adds runs of one fast encoder (EEGProject, the NeuroBridge / UBP pipeline: 17 channels, averaged
training repetitions, final embedding, no blur) changing one thing at a time, as the papers report them: final
layer vs the best single block (chosen by ridge over every block, on validation concepts) vs the router over the
SAMGA blocks; UBP's blur (uncertainty rule) vs none; 63 vs 17 channels; single-trial vs averaged training.

Writes ``table.json`` (every run: settings, seconds, epochs trained and selected, top-1 / top-5 per k, mean and sd
over seeds) and ``table.md`` under ``--out`` (default ``outputs/bench/recipes``, ignored by git). On a 2-core CPU
ATMS_50 and NervformerV2 recipes are slow: pick recipes with ``--recipes``.

On a larger simulated set (e.g. 9 full-scale subjects) ``--loso-subjects 1 2 3 4`` keeps leave-one-subject-out to
those subjects (each test subject trained on the other three). Several processes can share one ``--out`` (other
``--seeds``; ``--no-ridge`` in all but one, so one process fits the ridge rows); ``--table-only`` then trains
nothing and tabulates every finished run under ``--out`` (their seconds are kept in each run's ``bench.json``)::

    python bench/recipes_table.py --data-root DATA --subjects 9 --recipes ubp --seeds 1 --no-ridge --out OUT
    python bench/recipes_table.py --data-root DATA --subjects 9 --recipes ubp --seeds 0 1 --table-only --out OUT
"""

from __future__ import annotations

import argparse
import copy
import datetime
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: the base of the ablations: EEGProject in the NeuroBridge / UBP pipeline, one thing changed per row
ABLATION_BASE = "ubp"
#: the router ablation's blocks: the samga recipe's simulated ones
ROUTER_RECIPE = "samga"
#: the seed of every ridge fit: one closed-form fit per target (the validation concepts follow data.val_seed)
RIDGE_SEED = 0


def _pct(x: float | None) -> float | None:
    return None if x is None else 100.0 * float(x)


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True)
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except OSError:
        return "unknown"


def ridge_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The closed-form ridge baseline on the target of a training config ``cfg``.

    Router targets become the concatenation of the same layers; a blur rule other than ``fixed`` (uncertainty,
    random, mean, learned) becomes ``fixed`` on the medium variant (the one the test gallery uses); a
    ``target.head`` is dropped (ridge maps to the target itself).
    """
    target = copy.deepcopy(cfg.get("target") or {})
    target.pop("head", None)
    if target.get("combine") == "router":
        target["combine"] = "concat"
        target.pop("router", None)
    if target.get("blur_rule", "fixed") != "fixed":
        target["blur_rule"] = "fixed"
        target.pop("eval_variant", None)
    return {"model": "ridge", "model_options": {"time_bin": 5}, "target": target, "data": copy.deepcopy(cfg["data"]),
            "seed": cfg.get("seed", 0)}  # fmt: skip


def describe_target(target: dict[str, Any] | None) -> str:
    if not target:
        return "-"
    layers = list(target.get("layers") or [])
    text = layers[0] if len(layers) == 1 else f"{layers[0]} .. {layers[-1]} ({len(layers)})"
    if len(layers) > 1:
        text += f" {target.get('combine', 'concat')}"
    blur = list(target.get("blur") or ["none"])
    if blur != ["none"]:
        text += f", blur {'+'.join(blur)}" + (
            f" ({target.get('blur_rule', 'fixed')})" if target.get("blur_rule") else ""
        )
    head = target.get("head")
    if head:
        text += f", {head.get('kind', 'linear')} head {head.get('embed_dim', '')}".rstrip()
    return text


class Bench:
    """Runs training configs on the data root and collects their results (one run per config, subject, seed)."""

    def __init__(self, args):
        from eegdecode.data.paths import DatasetPaths

        self.args = args
        self.paths = DatasetPaths(Path(args.data_root))
        self.out = Path(args.out)
        self.records: list[dict[str, Any]] = []

    def run(self, row: str, group: str, cfg: dict[str, Any], protocol: str, subject: int, seed: int,
            extra: dict[str, Any] | None = None) -> dict[str, Any] | None:  # fmt: skip
        from eegdecode.data.datasets import make_folds
        from eegdecode.io import read_json, write_json
        from eegdecode.training.trainer import TrainConfig, train_fold

        cfg = copy.deepcopy(cfg)
        wanted_epochs = cfg.get("epochs", 40)
        if cfg.get("model") != "ridge":
            cap = self.args.cap_for.get(row.split(" ")[0], self.args.epochs_cap)
            cfg["epochs"] = min(int(wanted_epochs), cap)
            cfg["mmd_epochs"] = min(int(cfg.get("mmd_epochs") or 0), max(0, cfg["epochs"] // 3))
        cfg["seed"] = seed
        cfg["device"] = self.args.device
        cfg["batches"] = self.args.batches
        cfg["checkpoint_every"] = max(1, int(cfg.get("epochs", 1)))
        folds = make_folds(protocol, fold_subjects(self.args, protocol), [subject])
        run_dir = (
            self.out
            / "runs"
            / protocol
            / group
            / row.replace(" ", "_").replace("/", "-")
            / f"sub{subject:02d}"
            / f"seed{seed}"
        )
        record = {"row": row, "group": group, "protocol": protocol, "subject": subject, "seed": seed,
                  "model": cfg["model"], "target": describe_target(cfg.get("target")),
                  "channels": cfg["data"].get("channels"), "train_unit": cfg["data"].get("train_unit"),
                  "epochs_recipe": None if cfg["model"] == "ridge" else wanted_epochs,
                  "epochs_run": None if cfg["model"] == "ridge" else cfg["epochs"], "run_dir": str(run_dir),
                  **(extra or {})}  # fmt: skip
        t0 = time.perf_counter()
        done = (run_dir / "results.json").exists()
        if self.args.table_only and not done:
            print(f"not run: {group}/{row} {protocol} sub-{subject:02d} seed {seed} ({run_dir})", flush=True)
            return None
        seconds = None
        try:
            if (self.args.reuse or self.args.table_only) and done:
                res = read_json(run_dir / "results.json")
                if (run_dir / "bench.json").exists():  # the seconds the run took when it ran
                    seconds = read_json(run_dir / "bench.json").get("seconds")
            else:
                res = train_fold(TrainConfig.from_dict(cfg), self.paths, folds[0], run_dir, overwrite=True,
                                 progress=False)  # fmt: skip
                seconds = round(time.perf_counter() - t0, 1)
                write_json(run_dir / "bench.json", {"seconds": seconds, "row": row, "group": group})
                if getattr(self.args, "drop_checkpoints", False) and (run_dir / "checkpoints").is_dir():
                    shutil.rmtree(run_dir / "checkpoints")  # the table needs results.json and the logs only
        except Exception as err:  # report the failure in the table, go on with the others
            import traceback

            record["error"] = f"{type(err).__name__}: {err}"
            record["traceback"] = traceback.format_exc()
            print(
                f"FAILED {group}/{row} {protocol} sub-{subject:02d} seed {seed}: {record['error']}",
                flush=True,
            )
            self.records.append(record)
            return None
        record["seconds"] = seconds
        record["selected_epoch"] = res.get("selected_epoch")
        metrics = run_dir / "metrics.jsonl"
        if metrics.exists():  # epochs trained: fewer than epochs_run where early stopping ended the run
            record["epochs_trained"] = sum(1 for line in metrics.read_text().splitlines() if line.strip())
        record["val_top1"] = _pct(res.get("val_top1"))
        record["kway"] = {k: {"top1": _pct(v["top1_mean"]), "top5": _pct(v.get("top5_mean")),
                              "chance_top1": _pct(v["chance_top1"]), "chance_top5": _pct(v.get("chance_top5"))}
                          for k, v in res["kway"]["k"].items()}  # fmt: skip
        ceiling = res.get("ceiling")
        if not ceiling:  # a run made before the data root had its ceiling.json: read it now
            from eegdecode.evaluation.ceiling import load_ceiling

            found, _ = load_ceiling(self.paths.root, subject, n_reps=res.get("test_reps"))
            ceiling = found.to_dict() if found is not None else None
        if ceiling:
            record["ceiling"] = {k: {"top1": _pct(v["top1_mean"]), "top5": _pct(v.get("top5_mean"))}
                                 for k, v in ceiling["k"].items()}  # fmt: skip
        if res.get("layer_weights"):
            record["layer_weights"] = res["layer_weights"]
        full = max(record["kway"], key=int)
        print(f"{group}/{row} {protocol} sub-{subject:02d} seed {seed}: {full}-way top-1 "
              f"{record['kway'][full]['top1']:.1f}% top-5 {record['kway'][full]['top5']:.1f}% "
              f"(chance {record['kway'][full]['chance_top1']:.1f}%; {record['seconds'] or 0:.0f} s)", flush=True)  # fmt: skip
        self.records.append(record)
        return record


def fold_subjects(args, protocol: str) -> list[int]:
    """The subjects a fold of ``protocol`` is drawn from: ``--loso-subjects`` for leave-one-subject-out (default:
    every subject), every subject otherwise (an intra-subject fold uses its own subject only)."""
    if protocol == "loso" and args.loso_subjects:
        return list(args.loso_subjects)
    return list(args.subject_list)


def check_subjects(args) -> str | None:
    """What is wrong with the subject options (``--subjects``, ``--test-subjects``, ``--loso-subjects``), or None."""
    known = set(args.subject_list)
    tests = args.test_subjects or [1]
    if sorted(set(tests)) != sorted(tests) or not set(tests) <= known:
        return f"--test-subjects: expected distinct subjects among 1 .. {args.subjects}; found {tests}"
    if args.loso_subjects is not None:
        chosen = list(args.loso_subjects)
        if len(set(chosen)) != len(chosen) or not set(chosen) <= known:
            return f"--loso-subjects: expected distinct subjects among 1 .. {args.subjects}; found {chosen}"
        if args.loso and not set(tests) <= set(chosen):
            return f"--loso-subjects: expected to hold the test subjects {tests}; found {chosen}"
    n_loso = len(args.loso_subjects) if args.loso_subjects is not None else args.subjects
    if args.loso and n_loso < 4:
        return f"--loso: expected at least 4 subjects (--subjects or --loso-subjects); found {n_loso}"
    return None


def aggregate(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and sd over seeds and subjects per (group, row, protocol); ceiling rows per (group, protocol)."""
    import numpy as np

    rows: dict[tuple, dict[str, Any]] = {}
    for r in records:
        key = (r["group"], r["row"], r["protocol"])
        row = rows.setdefault(key, {k: r[k] for k in ("group", "row", "protocol", "model", "target", "channels",
                                                       "train_unit", "epochs_recipe", "epochs_run")}
                              | {"runs": [], "errors": [], "published": r.get("published")})  # fmt: skip
        (row["errors"] if "error" in r else row["runs"]).append(r)
    out = []
    ceilings: dict[tuple, list] = {}
    for row in rows.values():
        runs = row.pop("runs")
        row["n_runs"] = len(runs)
        row["seconds"] = (
            sum(r["seconds"] for r in runs) if all(r.get("seconds") is not None for r in runs) else None
        )
        row["errors"] = [e["error"] for e in row["errors"]]
        row["epochs_trained"] = [r.get("epochs_trained") for r in runs]
        row["selected_epochs"] = [r.get("selected_epoch") for r in runs]
        row["kway"] = {}
        if runs:
            for k in runs[0]["kway"]:
                entry = {}
                for m in ("top1", "top5"):
                    vals = [r["kway"][k][m] for r in runs if r["kway"][k][m] is not None]
                    if vals:
                        entry[m] = float(np.mean(vals))
                        entry[m + "_sd"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else None
                entry["chance_top1"] = runs[0]["kway"][k]["chance_top1"]
                entry["chance_top5"] = runs[0]["kway"][k]["chance_top5"]
                row["kway"][k] = entry
            weights = [r["layer_weights"] for r in runs if r.get("layer_weights")]
            if weights:
                row["layer_weights_global"] = weights[0].get("global")
            for r in runs:
                if r.get("ceiling"):
                    ceilings.setdefault((row["group"], row["protocol"]), {}).setdefault(
                        r["subject"], r["ceiling"]
                    )
        out.append(row)
    for (group, protocol), per_subject in ceilings.items():
        ks = next(iter(per_subject.values()))
        kway = {k: {m: float(np.mean([c[k][m] for c in per_subject.values()])) for m in ("top1", "top5")
                    if ks[k][m] is not None} for k in ks}  # fmt: skip
        out.append({"group": group, "row": "ceiling (simulator's ideal decoder)", "protocol": protocol,
                    "model": "ceiling", "kway": kway, "n_runs": len(per_subject)})  # fmt: skip
    return out


def _cell(entry: dict[str, Any] | None, metric: str) -> str:
    if not entry or entry.get(metric) is None:
        return "-"
    sd = entry.get(metric + "_sd")
    return f"{entry[metric]:.1f}" + (f" ± {sd:.1f}" if sd is not None else "")


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    ks = sorted({int(k) for r in rows for k in r.get("kway", {})}, reverse=True)
    sizes = meta.get("sizes") or {}
    shape = ", ".join(f"{k} {sizes[k]}" for k in ("n_train_concepts", "images_per_concept", "n_test_concepts")
                      if k in sizes)  # fmt: skip
    loso = meta.get("loso_subjects")
    lines = [f"Simulated `{meta['preset']}` set ({meta['n_subjects']} subject(s)" + (f"; {shape}" if shape else "")
             + ")" + (f"; leave-one-subject-out over subjects {loso}" if loso else "")
             + f"; test subject(s) {meta.get('test_subjects')}; seeds {meta['seeds']}; "
             f"epochs capped at {meta['epochs_cap']}"
             + "".join(f" ({k}: {v})" for k, v in meta["cap_for"].items()) + f"; {meta['machine']}; commit {meta['commit']}; {meta['date']}.",
             f"Command: `{meta['command']}`", ""]  # fmt: skip
    for protocol in sorted({r["protocol"] for r in rows}):
        for group in ("recipes", "ablations"):
            sel = [r for r in rows if r["protocol"] == protocol and r["group"] == group[:-1]]
            if group == "recipes":  # each recipe, then its ridge row; the ceiling last
                sel.sort(key=lambda r: (r["model"] == "ceiling", r["row"].split(" - ")[0], " - " in r["row"]))
            if not sel:
                continue
            lines.append(f"### {group}, {protocol} (top-1 / top-5 %, mean ± sd over runs)")
            head = ["row", "encoder", "target", "ch", "train", "epochs (recipe -> cap)", "trained (best)"]
            for k in ks:
                head += [f"{k}-way top-1", f"{k}-way top-5"] if k >= 10 else [f"{k}-way top-1"]
            head += ["paper top-1 / top-5", "runs", "s"]
            lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            for r in sel:
                cells = [r["row"], r.get("model", ""), r.get("target", "-") or "-", str(r.get("channels") or "-"),
                         str(r.get("train_unit") or "-")]  # fmt: skip
                cells.append(
                    "-" if r.get("epochs_recipe") is None else f"{r['epochs_recipe']} -> {r['epochs_run']}"
                )
                trained = [e for e in r.get("epochs_trained") or [] if e is not None]
                chosen = [e + 1 for e in r.get("selected_epochs") or [] if e is not None]
                cells.append(
                    "/".join(map(str, trained)) + " (best " + "/".join(map(str, chosen)) + ")"
                    if trained
                    else "-"
                )
                for k in ks:
                    entry = r.get("kway", {}).get(str(k))
                    cells.append(_cell(entry, "top1"))
                    if k >= 10:
                        cells.append(_cell(entry, "top5"))
                pub = r.get("published") or {}
                cells.append(f"{pub['top1']} / {pub['top5']}" if pub.get("top1") is not None else "-")
                cells.append(
                    str(r.get("n_runs", 0)) + (f" ({len(r['errors'])} failed)" if r.get("errors") else "")
                )
                cells.append(f"{r['seconds']:.0f}" if r.get("seconds") is not None else "-")
                lines.append("| " + " | ".join(cells) + " |")
            chance = next((r["kway"] for r in sel if r.get("kway") and r["model"] != "ceiling"), None)
            if chance:
                lines.append("Chance: " + ", ".join(f"{k}-way {chance[str(k)]['chance_top1']:.1f}" +
                             (f" / {chance[str(k)]['chance_top5']:.1f}" if k >= 10 else "") for k in ks) + ".")  # fmt: skip
            weights = [(r["row"], r["layer_weights_global"]) for r in sel if r.get("layer_weights_global")]
            for name, w in weights:
                lines.append(
                    f"Router weights ({name}, global): " + ", ".join(f"{k} {v:.2f}" for k, v in w.items())
                )
            lines.append("")
    return "\n".join(lines)


#: the ablation rows, by the name ``--ablation-rows`` gives them
ABLATION_ROWS = ("base", "best", "routed", "blur", "channels", "trial")


def best_block_by_ridge(bench: Bench, base: dict[str, Any], subject: int,
                        blocks: list[int] | None = None) -> tuple[str, dict[str, float]]:  # fmt: skip
    """The block (of ``blocks``, default all 12) whose ridge validation top-1 is highest (validation concepts,
    never the test set)."""
    scores = {}
    for i in range(12) if blocks is None else blocks:
        cfg = ridge_config(base)
        cfg["target"]["layers"] = [f"block:{i}"]
        cfg["target"]["pooling"] = "cls"
        rec = bench.run(f"ridge block:{i}", "ablation-layer-scan", cfg, "intra", subject, RIDGE_SEED)
        if rec is not None and rec.get("val_top1") is not None:
            scores[f"block:{i}"] = rec["val_top1"]
    if not scores:
        raise RuntimeError("no ridge run over the blocks succeeded; see the failures above")
    return max(scores, key=scores.get), scores


def ablation_runs(bench: Bench, protocol: str, subject: int, seeds: list[int], best_block: str | None,
                  rows: list[str] | None = None) -> None:  # fmt: skip
    """The ablation rows (``rows``: names of :data:`ABLATION_ROWS`, default all; ``best`` needs ``best_block``)."""
    from eegdecode.training.recipes import recipe_config

    base = recipe_config(ABLATION_BASE, simulated=True, protocol="intra")
    base["model"], base["model_options"] = "EEGProject", {"drop_prob": 0.3}
    base["target"] = {"backbone": base["target"]["backbone"], "weights": None, "layers": ["embedding"],
                      "blur": ["none"], "text": False}  # fmt: skip
    base["data"]["channels"] = "posterior17"
    base["data"]["train_unit"] = "average"
    base["early_stopping"] = None
    router = recipe_config(ROUTER_RECIPE, simulated=True, protocol="intra")["target"]
    variants: dict[str, tuple[str, dict[str, Any]]] = {
        "base": ("base: embedding, no blur, 17 ch, averaged", {}),
        "best": (f"best single block ({best_block}, by ridge validation)",
                 {"target": {"layers": [best_block], "pooling": "cls"}}),
        "routed": ("routed blocks (samga's, router)",
                   {"target": {k: router[k] for k in ("layers", "pooling", "combine", "router")}}),
        "blur": ("blur ubp (uncertainty rule)", {"target": {"blur": ["ubp"], "blur_rule": "uncertainty"}}),
        "channels": ("63 channels", {"data": {"channels": "all"}}),
        "trial": ("single-trial training", {"data": {"train_unit": "trial"}}),
    }  # fmt: skip
    from eegdecode.training.recipes import merge

    chosen = [k for k in ABLATION_ROWS if (rows is None or k in rows) and (k != "best" or best_block)]
    for row, change in (variants[k] for k in chosen):
        cfg = merge(base, change)
        for seed in seeds:
            bench.run(row, "ablation", cfg, protocol, subject, seed)
        if protocol == "intra" and (row.startswith("base") or row.startswith("best")):
            bench.run(row.split(":")[0].split(" (")[0] + " - ridge", "ablation", ridge_config(cfg), protocol, subject,
                      RIDGE_SEED)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    from eegdecode.io import read_json, write_json
    from eegdecode.training.recipes import get_recipe, list_recipes, recipe_config

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", required=True, help="a simulated data root (simulated here if it has none)")
    p.add_argument("--preset", default="small", choices=("tiny", "small", "full"))
    p.add_argument("--subjects", type=int, default=1, help="subjects to simulate / use (sub-01 .. sub-NN)")
    p.add_argument("--test-subjects", type=int, nargs="*", default=None, help="default: sub-01 only")
    p.add_argument("--recipes", nargs="*", default=None, help="default: every recipe")
    p.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    p.add_argument("--epochs-cap", type=int, default=20, help="recipes' epochs are capped at this")
    p.add_argument(
        "--cap-for",
        nargs="*",
        default=[],
        metavar="RECIPE=N",
        help="a lower cap for slow recipes (e.g. nice=10)",
    )
    p.add_argument("--loso", action="store_true", help="also leave-one-subject-out (needs >= 4 subjects)")
    p.add_argument(
        "--loso-subjects",
        type=int,
        nargs="*",
        default=None,
        help="the subjects of the leave-one-subject-out folds (default: every one of --subjects); each test subject"
        " is trained on the others of these",
    )
    p.add_argument("--no-intra", action="store_true")
    p.add_argument("--no-ridge", action="store_true",
                   help="skip the ridge rows of the recipes (e.g. a second process running other seeds into the same"
                   " --out)")  # fmt: skip
    p.add_argument("--ablations", action="store_true", help="add the EEGProject ablations")
    p.add_argument("--ablations-only", action="store_true", help="skip the recipe rows")
    p.add_argument(
        "--ablation-rows",
        nargs="*",
        choices=ABLATION_ROWS,
        default=None,
        help="only these ablation rows (default: all; several processes can share one --out)",
    )
    p.add_argument(
        "--scan-blocks",
        nargs="*",
        type=int,
        default=None,
        metavar="I",
        help="the blocks the ridge layer scan tries for the best single block (default: 0 ... 11)",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--batches",
        default="auto",
        choices=("auto", "device", "host"),
        help="where training batches are gathered (TrainConfig.batches; host keeps the peak lower)",
    )
    p.add_argument("--reuse", action="store_true", help="reuse runs whose results.json exists under --out")
    p.add_argument("--drop-checkpoints", action="store_true",
                   help="delete each run's checkpoints/ once it has its results.json (disk)")  # fmt: skip
    p.add_argument("--table-only", action="store_true",
                   help="train nothing: the table of the runs under --out that have a results.json (the others are"
                   " listed as not run)")  # fmt: skip
    p.add_argument("--out", default="outputs/bench/recipes")
    args = p.parse_args(argv)
    try:
        args.cap_for = {k: int(v) for k, v in (item.split("=", 1) for item in args.cap_for)}
    except ValueError:
        p.error(f"--cap-for takes RECIPE=N items; found {args.cap_for}")
    args.subject_list = list(range(1, args.subjects + 1))
    problem = check_subjects(args)
    if problem:
        p.error(problem)
    tests = args.test_subjects or [1]

    root = Path(args.data_root)
    if args.table_only and not (root / "simulation.json").exists():
        p.error(f"--table-only: expected a simulated data root with simulation.json; found none in {root}")
    if not (root / "simulation.json").exists():
        from eegdecode.evaluation.ceiling import simulate_with_ceiling

        print(f"simulating {args.preset} x {args.subjects} subject(s) into {root}", flush=True)
        simulate_with_ceiling(root, args.preset, n_subjects=args.subjects, seed=0, dtype="float32")
    bench = Bench(args)
    protocols = ([] if args.no_intra else ["intra"]) + (["loso"] if args.loso else [])
    t_start = time.perf_counter()
    names = [] if args.ablations_only else (args.recipes or list_recipes())
    for protocol in protocols:
        for name in names:
            recipe = get_recipe(name)
            cfg = recipe_config(recipe.name, simulated=True, protocol=protocol)
            pub = {"top1": recipe.published_top1(protocol), "top5": recipe.published_top5(protocol)}
            for subject in tests:
                if (
                    protocol == "intra" and not args.no_ridge
                ):  # ridge (first: it is cheap) is fitted per subject
                    bench.run(f"{recipe.name} - ridge, same target", "recipe", ridge_config(cfg), protocol,
                              subject, RIDGE_SEED)  # fmt: skip
                for seed in args.seeds:
                    bench.run(recipe.name, "recipe", cfg, protocol, subject, seed, {"published": pub})
    if args.ablations:
        from eegdecode.training.recipes import recipe_config as rc

        base = rc(ABLATION_BASE, simulated=True)
        base["data"]["channels"], base["data"]["train_unit"] = "posterior17", "average"
        wanted = args.ablation_rows or list(ABLATION_ROWS)
        try:
            best, scan = (
                best_block_by_ridge(bench, base, tests[0], args.scan_blocks)
                if "best" in wanted
                else (None, {})
            )
        except RuntimeError:
            if not args.table_only:
                raise
            best, scan = None, None
            print("not run: the layer scan (no ablations in the table)", flush=True)
        if scan is not None:
            if scan:
                print(f"ridge validation top-1 per block: {scan}; best {best}", flush=True)
                bench.ablation_scan = scan
            for protocol in protocols:
                for subject in tests:
                    ablation_runs(bench, protocol, subject, args.seeds, best, wanted)

    import os

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(
            line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    preset, sizes = args.preset, {}
    try:
        sim = read_json(root / "simulation.json")
        preset, sizes = sim.get("preset", preset), sim.get("sizes", {})
    except (OSError, ValueError):
        pass
    meta = {"preset": preset, "sizes": sizes, "n_subjects": args.subjects, "test_subjects": tests,
            "loso_subjects": fold_subjects(args, "loso") if args.loso else None, "seeds": args.seeds,
            "epochs_cap": args.epochs_cap, "cap_for": args.cap_for,
            "machine": f"{cpu}, {os.cpu_count()} CPUs, device {args.device}",
            "commit": _git_commit(), "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "command": "python " + " ".join(sys.argv), "wall_seconds": round(time.perf_counter() - t_start)}  # fmt: skip
    rows = aggregate(bench.records)
    text = markdown(rows, meta)
    if getattr(bench, "ablation_scan", None):
        text += "\nRidge validation top-1 per block (layer scan): " + ", ".join(
            f"{k} {v:.1f}" for k, v in bench.ablation_scan.items()) + "\n"  # fmt: skip
    failures = [r for r in bench.records if "error" in r]
    for r in failures:
        text += f"\nFAILED {r['group']}/{r['row']} ({r['protocol']}, sub-{r['subject']:02d}, seed {r['seed']}):\n" \
                f"```\n{r['traceback']}```\n"  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "table.json", {"meta": meta, "rows": rows, "runs": bench.records,
                                    "layer_scan": getattr(bench, "ablation_scan", None)})  # fmt: skip
    (out / "table.md").write_text(text)
    print(text)
    print(f"written {out / 'table.json'} and {out / 'table.md'} ({meta['wall_seconds']} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
