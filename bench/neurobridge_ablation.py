"""The neurobridge recipe with one of its settings taken out at a time (its linear head, its papers' contrastive
form, its EEG smoothing, its four averaged image variants), on a simulated data root's sub-01, seed 0.

    python bench/neurobridge_ablation.py --data-root DATA --out OUT [--epochs 5] [ROW ...]

ROW is any of no_head, clip_loss, no_smoothing, blur15_only (default: all). Prints one JSON line per row
(200-way top-1 / top-5 of the full gallery, the selected epoch, the settings) and writes each run under OUT/ROW.
The full recipe's row is bench/recipes_table.py's ``--recipes neurobridge``.
"""

import argparse
import json
from pathlib import Path

from eegdecode.data.datasets import make_folds
from eegdecode.data.paths import DatasetPaths
from eegdecode.training.recipes import merge, recipe_config
from eegdecode.training.trainer import TrainConfig, train_fold

CHANGES = {
    "no_head": {"target": {"head": None}},
    "clip_loss": {"loss_options": {"temperature": "exp", "learn_temperature": True, "normalise": "both"}},
    "no_smoothing": {"data": {"augment": None}},
    "blur15_only": {"target": {"blur": ["gaussian:15"], "blur_rule": "fixed"}},
}
p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("rows", nargs="*", metavar="ROW", help=f"rows to run (default: all of {', '.join(CHANGES)})")
p.add_argument("--data-root", required=True)
p.add_argument("--out", required=True)
p.add_argument("--epochs", type=int, default=5)
args = p.parse_args()
unknown = sorted(set(args.rows) - set(CHANGES))
if unknown:
    p.error(f"unknown rows {unknown}; expected some of {', '.join(CHANGES)}")
out = Path(args.out)
for name in args.rows or list(CHANGES):
    cfg = merge(recipe_config("neurobridge", simulated=True, protocol="intra"), CHANGES[name])
    cfg.update(epochs=args.epochs, seed=0, device="cpu", recipe="neurobridge")
    c = TrainConfig.from_dict(cfg)
    res = train_fold(c, DatasetPaths(args.data_root), make_folds("intra", [1])[0], out / name, progress=False)
    k = res["kway"]["k"][str(max(int(x) for x in res["kway"]["k"]))]
    print(
        name,
        json.dumps(
            {
                "top1": k["top1_mean"],
                "top5": k["top5_mean"],
                "selected": res.get("selected_epoch"),
                "target": c.target,
                "loss": c.loss_options,
                "augment": c.data.augment,
            }
        ),
        flush=True,
    )
