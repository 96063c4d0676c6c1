"""The diffusion prior on the simulator's own 1024-d image embeddings: does a setting learn the condition?

The unit tests of the prior (``tests/generation/test_prior.py``) run reduced widths and budgets; this script asks
the same questions at the real width and recipe, on the embeddings that the simulated THINGS-EEG2 ships as reference
CLIP features (``eegdecode.data.simulate.World``): 1024-d, rank 256 (the simulator's embedding map is a 256-unit
network), which is what a prior trained on simulated data has to model.

Pairs: the target is the image embedding of each training image; the condition stands in for an EEG encoder's
output, the embedding of the image's latent after Gaussian noise of ``--cond-noise`` (an imperfect decoder in the
same space; its own k-way top-1 on the test gallery is printed as the reference the prior should approach). No EEG
is simulated, so the full design (16,540 training images) costs nothing to build.

Prints, and writes to ``--out`` (JSON): training time and steps, loss, the samples' norm and per-dimension spread
relative to the true test embeddings in the space the samples come back in (raw for ``--normalisation
standardise``, unit norm for ``unit``), at guidance 1 and the default 5, their k-way top-1 on the test gallery with
the chance level, the unconditional control, and a one-step denoising check per diffusion step (how well the
network's x0 estimate retrieves the true image, with and without the condition).

    python bench/prior_on_simulator.py --device cuda                       # the default setting, full recipe
    python bench/prior_on_simulator.py --threads 1 --normalisation unit --prediction-type epsilon   # ATM's setting
    python bench/prior_on_simulator.py --epochs 50 --threads 1             # a shorter CPU run (850 steps)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eegdecode.data.simulate import PRESETS, World  # noqa: E402
from eegdecode.evaluation.kway import kway_accuracy  # noqa: E402
from eegdecode.generation.prior import (  # noqa: E402
    NORMALISATIONS,
    PREDICTION_TYPES,
    DiffusionPrior,
    PriorConfig,
    count_parameters,
    sample_prior,
    train_prior,
)


def top1(samples: torch.Tensor, gallery: torch.Tensor) -> float:
    """Full-gallery top-1 of row i against gallery row i (cosine similarity), the project's k-way evaluation."""
    n = len(gallery)
    return kway_accuracy(samples, gallery, ks=(n,), topk=(1,)).scores[n].top1_mean


def make_pairs(world: World, latent: np.ndarray, noise: float, rng: np.random.Generator):
    target = torch.from_numpy(world.image_embeddings(latent))
    cond = torch.from_numpy(world.image_embeddings(latent + noise * rng.standard_normal(latent.shape)))
    return cond, target


@torch.no_grad()
def denoising_check(model: DiffusionPrior, cond: torch.Tensor, target: torch.Tensor, seed: int = 1):
    """Per diffusion step: noise MSE and top-1 of the one-step x0 estimate, conditional and unconditional."""
    device = next(model.parameters()).device
    scheduler = model.make_scheduler()
    x0 = model.encode_target(target.to(device))
    c = model.encode_cond(cond.to(device))
    gen = torch.Generator(device=device).manual_seed(seed)
    rows = []
    for step in (10, 100, 300, 500, 700, 900, 980):
        noise = torch.randn(x0.shape, generator=gen, device=device)
        t = torch.full((len(x0),), step, device=device, dtype=torch.long)
        xt = scheduler.add_noise(x0, noise, t)
        ab = scheduler.alphas_cumprod.to(device)[step]
        row = {"t": step}
        for name, cc in (("cond", c), ("uncond", None)):
            out = model.unet(xt, t, cc)
            if model.config.prediction_type == "epsilon":
                eps, x0_hat = out, (xt - (1 - ab).sqrt() * out) / ab.sqrt()
            else:
                eps, x0_hat = (xt - ab.sqrt() * out) / (1 - ab).sqrt(), out
            x0_hat = model.decode_target(x0_hat)
            row[f"noise_mse_{name}"] = float(((eps - noise) ** 2).mean())
            row[f"x0_top1_{name}"] = top1(x0_hat.cpu(), target)
        rows.append(row)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="full", choices=sorted(PRESETS), help="design of the simulated world")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--cond-noise", type=float, default=1.5, help="latent noise of the surrogate EEG embedding"
    )
    p.add_argument("--epochs", type=int, default=PriorConfig.epochs)
    p.add_argument("--batch-size", type=int, default=PriorConfig.batch_size)
    p.add_argument("--lr", type=float, default=PriorConfig.lr)
    p.add_argument("--hidden-dims", default="1024,512,256,128,64")
    p.add_argument("--time-embed-dim", type=int, default=PriorConfig.time_embed_dim)
    p.add_argument("--prediction-type", default=PriorConfig.prediction_type, choices=PREDICTION_TYPES)
    p.add_argument(
        "--normalisation",
        default=PriorConfig.normalisation,
        choices=NORMALISATIONS,
        help="data space of the DDPM: per-dimension standardised, or unit-norm targets (ATM's convention)",
    )
    p.add_argument("--warmup-steps", type=int, default=PriorConfig.warmup_steps)
    p.add_argument("--device", default=None, help="default: cuda when available")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default="prior_on_simulator.json")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    world = World(PRESETS[args.preset], args.seed)
    rng = np.random.default_rng(args.seed)
    cond, target = make_pairs(world, world.train_latent, args.cond_noise, rng)
    cond_test, target_test = make_pairs(world, world.test_latent, args.cond_noise, rng)
    rank = int(torch.linalg.matrix_rank(target - target.mean(0)))
    cfg = PriorConfig(
        hidden_dims=tuple(int(v) for v in args.hidden_dims.split(",")),
        time_embed_dim=args.time_embed_dim,
        prediction_type=args.prediction_type,
        normalisation=args.normalisation,
        warmup_steps=args.warmup_steps,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
    )
    n_test = len(target_test)
    print(
        f"simulated world '{args.preset}': {len(target)} training pairs, {n_test} test images, "
        f"embedding rank {rank}; prior {count_parameters(DiffusionPrior(cfg)):,} parameters, "
        f"{args.epochs} epochs x batch {args.batch_size}, predicts {args.prediction_type}, "
        f"normalisation {args.normalisation}",
        flush=True,
    )
    started = time.perf_counter()
    model, history = train_prior(cond, target, cfg, seed=args.seed, device=args.device)
    train_s = time.perf_counter() - started
    steps = args.epochs * -(-len(target) // min(args.batch_size, len(target)))
    device = next(model.parameters()).device

    result = {
        "preset": args.preset,
        "device": str(device),
        "n_train": len(target),
        "n_test": n_test,
        "embedding_rank": rank,
        "config": cfg.to_dict(),
        "cond_noise": args.cond_noise,
        "train_seconds": train_s,
        "optimizer_steps": steps,
        "loss_first_epoch": history[0]["loss"],
        "loss_last_epoch": history[-1]["loss"],
        "chance_top1": 1.0 / n_test,
        "condition_top1": top1(cond_test, target_test),
        "samples": {},
    }
    # The true test embeddings in the space the samples come back in (raw for "standardise", unit norm for "unit").
    with torch.no_grad():
        true_space = model.decode_target(model.encode_target(target_test.to(device))).cpu()
    true_norm = float(true_space.norm(dim=1).mean())
    true_spread = float(true_space.std(0).mean())
    for guidance in (1.0, 5.0, 0.0):
        s = sample_prior(model, cond_test, guidance=guidance, seed=args.seed)
        result["samples"][f"guidance_{guidance:g}"] = {
            "norm_ratio": float(s.norm(dim=1).mean()) / true_norm,
            "spread_ratio": float(s.std(0).mean()) / true_spread,
            "top1": top1(s, target_test),
            "cosine_to_true": float(F.cosine_similarity(s, target_test).mean()),
        }
    result["denoising"] = denoising_check(model, cond_test, target_test)

    print(f"trained in {train_s:.0f} s on {device} ({steps} steps); loss {history[0]['loss']:.3f} -> "
          f"{history[-1]['loss']:.3f}")  # fmt: skip
    print(f"{n_test}-way top-1: chance {1 / n_test:.3f}, the condition itself {result['condition_top1']:.3f}")
    for name, r in result["samples"].items():
        print(f"  samples {name:<13} norm x{r['norm_ratio']:.2f}  spread x{r['spread_ratio']:.2f}  "
              f"top-1 {r['top1']:.3f}  cos to true {r['cosine_to_true']:.3f}")  # fmt: skip
    print("  one-step denoising: t, noise MSE (cond / uncond), x0 top-1 (cond / uncond)")
    for r in result["denoising"]:
        print(f"    t={r['t']:4d}  {r['noise_mse_cond']:.3f} / {r['noise_mse_uncond']:.3f}   "
              f"{r['x0_top1_cond']:.3f} / {r['x0_top1_uncond']:.3f}")  # fmt: skip
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
