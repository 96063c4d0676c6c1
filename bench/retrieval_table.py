"""Every encoder on the `small` simulated THINGS-EEG2 (several seeds), the ridge baseline and the ceiling, as one table.

    python bench/retrieval_table.py --data-root /tmp/sim_small --epochs 10 --seeds 0 1 2 --out bench_out/retrieval

Simulates the data set first if the root is empty. Each (model, seed) is one `eegdecode train` run (intra-subject,
sub-01, model selection on validation concepts); the table is `eegdecode summarize` over them, with the ceiling row.
On a 2-core CPU the full table takes hours (NervformerV2 is the slowest); use --models to pick, or a GPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    from eegdecode.data.datasets import DataOptions, make_folds
    from eegdecode.data.paths import DatasetPaths
    from eegdecode.evaluation.summary import summarize_runs, write_summary
    from eegdecode.models import list_encoders
    from eegdecode.training.trainer import TrainConfig, train_fold

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", required=True)
    p.add_argument("--preset", default="small")
    p.add_argument("--models", nargs="*", default=None, help="default: every registered encoder")
    p.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--train-unit", default="trial", choices=("trial", "average"))
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="bench_out/retrieval")
    args = p.parse_args()

    paths = DatasetPaths(Path(args.data_root))
    if not (paths.root / "simulation.json").exists():
        from eegdecode.evaluation.ceiling import simulate_with_ceiling

        simulate_with_ceiling(paths.root, args.preset, n_subjects=1, seed=0, dtype="float32")
    fold = make_folds("intra", [1])[0]
    models = args.models or list_encoders()
    base = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, device=args.device, features="reference",
                       data=DataOptions(train_unit=args.train_unit))  # fmt: skip
    files = []
    for model in models:
        for seed in args.seeds:
            opts = {"time_bin": 5} if model == "ridge" else {}
            cfg = dataclasses.replace(base, model=model, seed=seed, model_options=opts)
            run_dir = Path(args.out) / "runs" / model / f"seed{seed}"
            t0 = time.perf_counter()
            res = train_fold(cfg, paths, fold, run_dir, overwrite=True, progress=False)
            k = max(int(x) for x in res["kway"]["k"])
            print(f"{model} seed {seed}: {k}-way top-1 {100 * res['kway']['k'][str(k)]['top1_mean']:.1f}% "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip
            files.append(run_dir / "results.json")
    table = summarize_runs(files)
    print(table.to_markdown())
    written = write_summary(table, args.out, overwrite=True)
    print(f"written {written['markdown']} and {written['csv']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
