"""``eegdecode evaluate``: score a trained run's checkpoint on the test set (k-way retrieval)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run folder (holds config.json and checkpoints/)")
    p.add_argument("--checkpoint", default="best", help="checkpoint name (best or last)")
    p.add_argument(
        "--test-reps", type=int, help="test repetitions averaged per query (default: the run's setting)"
    )
    p.add_argument(
        "--gallery",
        default="image",
        choices=("image", "text"),
        help="image retrieval or zero-shot classification by text",
    )
    p.add_argument("--n-draws", type=int, help="distractor draws per k (default: the run's setting)")
    p.add_argument("--data-root", help="override the data root recorded in config.json")
    p.add_argument("--device", default="auto")


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from eegdecode.data.paths import DatasetPaths
    from eegdecode.devices import resolve_device
    from eegdecode.evaluation.ceiling import load_ceiling
    from eegdecode.evaluation.kway import format_kway_table
    from eegdecode.io import write_json
    from eegdecode.training.trainer import evaluate_test, load_fold_data, load_run

    run_dir = Path(args.run)
    device = resolve_device(args.device)
    resolved, cfg, fold, model, _ = load_run(run_dir, args.checkpoint, device)
    if args.test_reps is not None:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, test_reps=args.test_reps))
    if args.n_draws is not None:
        cfg = dataclasses.replace(cfg, eval_draws=args.n_draws)
    paths = DatasetPaths(Path(args.data_root or resolved["data_root"]), resolved["release"])
    fd = load_fold_data(paths, fold, cfg)
    results = evaluate_test(model, fd, fold, cfg, device, gallery=args.gallery)
    out = {}
    for sname, res in results.items():
        ceiling, note = (
            load_ceiling(paths.root, sname, cfg.data.test_reps) if args.gallery == "image" else (None, None)
        )
        print(
            f"\n{cfg.model} | {sname} | checkpoint {args.checkpoint} | gallery {args.gallery} | test reps {cfg.data.test_reps or 'all'}"
        )
        print(format_kway_table(res, ceiling=ceiling))
        if note:
            print(note)
        out[sname] = res.to_dict()
    name = f"evaluation_{args.checkpoint}_{args.gallery}_reps{cfg.data.test_reps or 'all'}.json"
    write_json(
        run_dir / name,
        {
            "checkpoint": args.checkpoint,
            "gallery": args.gallery,
            "test_reps": cfg.data.test_reps,
            "subjects": out,
        },
    )
    print(f"\nwritten {run_dir / name}")
    return 0
