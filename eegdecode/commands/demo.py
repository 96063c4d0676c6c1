"""``eegdecode demo``: the whole pipeline on the built-in simulated THINGS-EEG2, on a laptop CPU.

Steps: simulate (``small`` preset, with its retrieval ceiling) -> prepare the cache -> CLIP features (the code path
with a tiny *random-weight* open_clip model, clearly labelled; training uses the simulator's reference embeddings)
-> fit the ridge baseline and train NervformerV2 -> test k-way table next to the ceiling -> generation: step 1
(EEG embeddings), step 2 (diffusion prior, a few epochs, + a tiny *random-weight* SDXL/IP-Adapter pipeline built from
configs: the images are noise, the code path is the real one) -> reconstruction metrics on those images.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="demo_out", help="folder for the data set, runs and outputs")
    p.add_argument("--preset", default="small", choices=("tiny", "small"))
    p.add_argument("--epochs", type=int, default=10, help="NervformerV2 epochs")
    p.add_argument("--model", default="NervformerV2")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--prior-epochs", type=int, default=1, help="diffusion prior epochs (real runs: 150)")
    p.add_argument("--skip-generation", action="store_true")


def _step(i: int, n: int, text: str) -> None:
    print(f"\n=== [{i}/{n}] {text}", flush=True)


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from eegdecode.data.cache import prepare_subject
    from eegdecode.data.datasets import DataOptions, make_folds
    from eegdecode.data.paths import DatasetPaths
    from eegdecode.evaluation.kway import KWayResult, format_kway_table
    from eegdecode.evaluation.summary import summarize_runs
    from eegdecode.io import read_json
    from eegdecode.training.runs import run_dir as run_folder
    from eegdecode.training.trainer import TrainConfig, train_fold

    t_start = time.perf_counter()
    out = Path(args.out)
    root = out / "data"
    paths = DatasetPaths(root)
    n = 6 if args.skip_generation else 8

    _step(1, n, f"simulate THINGS-EEG2 ({args.preset}) -> {root}")
    desc_file = root / "simulation.json"
    if (
        desc_file.exists()
        and read_json(desc_file).get("preset") == args.preset
        and read_json(desc_file).get("seed") == args.seed
        and (root / "ceiling.json").exists()
    ):
        print("already there: reusing it")
    else:
        from eegdecode.evaluation.ceiling import simulate_with_ceiling

        simulate_with_ceiling(
            root, args.preset, n_subjects=1, seed=args.seed, overwrite=True, dtype="float32"
        )
    print(
        "simulated data: results on it are read against the simulator's ceiling, not against published numbers"
    )

    _step(2, n, "prepare: pickles -> memory-mapped float16 cache")
    for s in paths.subjects():
        meta = prepare_subject(paths.subject_dir(s), paths.cache_dir(s))
        print(
            f"{s}: train {tuple(meta['shapes']['train'])}, test {tuple(meta['shapes']['test'])} -> {paths.cache_dir(s)}"
        )

    _step(3, n, "CLIP features (code path check with a tiny RANDOM-WEIGHT open_clip model)")
    _random_clip_features(root, out)

    _step(
        4, n, "train: ridge baseline and " + args.model + " (model selection on held-out training concepts)"
    )
    fold = make_folds("intra", [1])[0]
    base = TrainConfig(model="ridge", features="reference", seed=args.seed, device=args.device, batch_size=256,
                       data=DataOptions(val_fraction=0.05), model_options={"time_bin": 5}, eval_draws=100)  # fmt: skip
    runs = out / "runs"
    results = []
    # The deep model trains on repetition-averaged samples (NICE/UBP style) so that it fits a CPU budget.
    deep = dataclasses.replace(
        base, model=args.model, model_options={}, epochs=args.epochs, lr=3e-4, batch_size=128,
        data=DataOptions(val_fraction=0.05, train_unit="average"),
    )  # fmt: skip
    for cfg in (base, deep):
        run_dir = run_folder(runs, cfg.model, "intra", fold.name, cfg.seed)
        t0 = time.perf_counter()
        res = train_fold(cfg, paths, fold, run_dir, overwrite=True)
        print(f"{cfg.model}: {time.perf_counter() - t0:.0f} s, run folder {run_dir}")
        results.append((res, run_dir))

    _step(5, n, "test: zero-shot k-way retrieval (queries averaged over all test repetitions)")
    for res, _ in results:
        ceiling = KWayResult.from_dict(res["ceiling"]) if "ceiling" in res else None
        print(f"\n{res['model']} (selected epoch {res['selected_epoch'] + 1}):")
        print(format_kway_table(KWayResult.from_dict(res["kway"]), ceiling=ceiling))
    print("\nAll runs:")
    print(summarize_runs([d / "results.json" for _, d in results]).to_markdown())

    if not args.skip_generation:
        from eegdecode.generation.steps import extract_embeddings, generate_from_run

        _step(
            6,
            n,
            f"generation: step 1 (EEG embeddings), step 2 (prior, {args.prior_epochs} epochs) + tiny RANDOM-WEIGHT SDXL",
        )
        run_dir = results[-1][1]
        extract_embeddings(run_dir, device=args.device, overwrite=True)
        manifest = generate_from_run(run_dir, out, tiny=True, prior_epochs=args.prior_epochs, prior_batch_size=256,
                                     size=64, seed=args.seed, device=args.device, overwrite=True)  # fmt: skip
        print(f"images + manifest: {manifest}")
        print(
            "These images come from a tiny pipeline with RANDOM weights (a check of the code path, not reconstructions)."
        )
        print(
            "Real images: eegdecode generate RUN --sdxl weights/sdxl-turbo --ip-adapter weights/ip-adapter (see README)."
        )

        _step(
            7,
            n,
            "reconstruction metrics (PixCorr and SSIM computed; network metrics need their local weights)",
        )
        from eegdecode.cli import main as cli_main

        cli_main(["metrics", "--manifest", str(manifest), "--overwrite"])

    _step(n, n, "report: one HTML page (retrieval, temporal/spatial profiles, reconstructions, provenance)")
    from eegdecode.cli import main as cli_main

    cli_main(["report", str(out), "-o", str(out / "report.html"), "--overwrite", "--device", args.device])
    print(f"\nDemo finished in {time.perf_counter() - t_start:.0f} s. Outputs: {out}")
    return 0


def _random_clip_features(root: Path, out: Path) -> None:
    """Exercise `eegdecode features` end to end without real weights: a tiny random open_clip model, saved to a
    local file and loaded back the way real weights are. Its features are noise and are not used for training."""
    from importlib.resources import files

    import open_clip
    import torch

    from eegdecode.embeddings.clip_features import compute_features, register_open_clip_config

    cfg_path = Path(str(files("eegdecode") / "configs" / "open_clip_tiny.json"))
    name = register_open_clip_config(cfg_path)
    weights = out / "weights" / "open_clip_tiny_RANDOM.bin"
    if not weights.exists():
        weights.parent.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        torch.save(open_clip.create_model(name, pretrained=None).state_dict(), weights)
    store = compute_features(
        root / "image_set",
        root / "features" / "tiny-random-clip",
        model=name,
        weights=str(weights),
        batch_size=128,
    )
    print(f"RANDOM-WEIGHT features written to {store} (noise: a check of the code path only).")
    print(
        "Real features: eegdecode features --clip-weights PATH/open_clip_pytorch_model.bin (ViT-H-14, laion2b_s32b_b79k)"
    )
