"""Diffusion prior: a conditional DDPM that turns an EEG embedding into a CLIP image embedding.

The network is ATM's ``DiffusionPriorUNet``, an MLP "U-Net" over vectors (not a transformer). At the defaults
(embed_dim 1024, cond_dim 1024, hidden widths 1024-512-256-128-64, time embedding 512) it has exactly
9,675,648 parameters:

- time: a sinusoidal 512-d embedding of the diffusion step (diffusers ``Timesteps``, flip_sin_to_cos=True,
  shift 0); every level has its own ``TimestepEmbedding`` (Linear, SiLU, Linear) to its width;
- input: Linear(embed_dim -> 1024), LayerNorm, SiLU;
- encoder, four levels 1024 -> 512 -> 256 -> 128 -> 64: keep ``x`` as the skip; add the level's time embedding
  and ``Linear(cond_dim -> width)(c)``; then Linear down, LayerNorm, SiLU, Dropout;
- decoder, four levels 64 -> 128 -> 256 -> 512 -> 1024: add time and condition terms at the current width;
  Linear up, LayerNorm, SiLU, Dropout; add the matching encoder skip;
- output: Linear(1024 -> embed_dim), predicting the noise epsilon or the clean embedding x0
  (``prediction_type``).

The unconditional branch (classifier-free guidance) sets the condition term to zero. Training drops the
condition per sample with probability 0.1; the original dropped it for the whole batch 10% of the time, which is
a defect this module fixes.

Recipe (``PriorConfig`` defaults): ATM's network, optimiser and schedule (diffusers ``DDPMScheduler`` with 1000
steps, Adam lr 1e-3, 500 linear warm-up steps then cosine decay over the run, gradient-norm clipping at 1.0, batch
1024, 150 epochs), run in the standardised data space with x0 prediction (``normalisation="standardise"``,
``prediction_type="sample"``): of the settings measured here, the one whose samples depend most on the condition
(see "Which setting" below). The learning-rate scheduler steps after the optimiser, so our first optimiser step
runs at lr 0 (the warm-up starts at 0); ATM steps its scheduler before the optimiser, so its first step runs at
1e-3 / 500 = 2e-6 and its schedule stays one step ahead. Harmless either way: one step in 2,550 differs by 2e-6.
Sampling: 50 DDPM steps, classifier-free guidance 5, a seeded generator.

Normalisation (``PriorConfig.normalisation``, recorded in every checkpoint):

- ``"standardise"`` (default): targets and conditions are standardised per dimension with the training set's
  mean and standard deviation, and samples are mapped back, so they come out at the scale of the training targets
  (unnormalised CLIP features give unnormalised samples, the kind IP-Adapter was trained on). Predicted x0 is
  clipped at every sampling step to the largest absolute standardised training value (diffusers
  ``clip_sample_range``, stored with the weights and in the checkpoint's description).
- ``"unit"``: ATM's convention (``Generation/diffusion_prior.py`` of ``dongyangli-del/EEG_Image_decode``):
  targets L2-normalised, conditions raw, ``DDPMScheduler()`` defaults (``clip_sample=True`` on +-1). The mean norm
  of the raw training targets is stored so a caller can rescale samples. Diffusion noise has unit variance per
  dimension while a unit-norm 1024-d embedding has about 0.001, so the +-1 clip hardly constrains the samples.

Prediction type (``PriorConfig.prediction_type``, recorded in the checkpoint's config and scheduler):

- ``"sample"`` (default): the network predicts the clean embedding x0 (what DALL-E 2's prior does, Ramesh et al.
  2022, arXiv 2204.06125); the loss is MSE on x0 and the DDPM sampler takes x0 predictions directly. Guidance
  combines x0 predictions the same way.
- ``"epsilon"`` (ATM's recipe): the network predicts the noise.

Which setting. The data space decides, not ATM's network or loss. Reported in issue #11 against ATM's own
``diffusion_prior.py`` (same network, same loss, sampling equal to 1e-5): on a synthetic 1024-d task epsilon
prediction learns the condition in ATM's unit-norm space (100-way top-1 0.99 at guidance 5 after 1,200 steps) and
not in our standardised space (0.01), in both implementations. Measured here with ``bench/prior_on_simulator.py`` on
the simulator's reference embeddings (1024-d, rank 256; 16,540 training pairs, 200 test images; conditions: the
embedding of each image's latent plus noise, 200-way top-1 65.5%; chance 0.5%), 200-way top-1 of samples at
guidance 5, one CPU thread:

- standardised + epsilon, the full recipe (150 epochs, 2,550 steps): 0.0%. Loss 0.148 (ATM's notebook reports
  about 0.142 on real CLIP features), but the noise prediction keeps a mean squared error of 0.064 at high noise
  levels, where x0 is read off it with a gain of sqrt((1 - alpha_bar) / alpha_bar) (12 at t = 700, 61 at t = 900);
  the condition's small contribution drowns in that error and samples come out at 2.2x the target norm.
- unit + epsilon (ATM's setting), 50 epochs (850 steps): 4.0% (0.5% at guidance 1); samples at 17.5x the unit
  targets' norm and 18.6x their spread.
- standardised + x0, 50 epochs (850 steps): 53.5% (27.5% at guidance 1, unconditional branch 1.0%), samples at
  0.99x the targets' norm and spread; the full recipe: 45.0%, samples at 1.01x the targets' norm and 1.00x their
  spread (the shorter run did better; one seed each, not investigated). Hence the default: at the same budget
  it retrieves 53.5% where ATM's setting retrieves 4.0%.

Whether real CLIP features behave the same has not been measured here (it needs real EEG embeddings);
``PriorConfig(normalisation="unit", prediction_type="epsilon")`` reproduces ATM's setting for that comparison.

Classifier-free guidance 5 extrapolates away from the unconditional prediction, so guided samples have larger
norms than the targets (1.07x on the simulator's embeddings after 850 steps, 1.4x in the reduced unit test).
The direction is what carries the content; rescale to a chosen norm before IP-Adapter
(``eegdecode.generation.sdxl.Generator(embed_norm=...)`` does it).

A checkpoint is a folder with ``prior.safetensors`` (network weights and normalisation statistics) and
``prior.json`` (format, config, normalisation, scheduler config, epoch, history, weights digest and the caller's
provenance). Nothing is unpickled on load.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import DDPMScheduler
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.optimization import get_cosine_schedule_with_warmup
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from eegdecode.devices import resolve_device
from eegdecode.errors import DataFormatError, MissingFileError, check_option
from eegdecode.io import atomic_path, read_json, sha256_file, write_json

FORMAT = "eegdecode-prior/1"
WEIGHTS_FILE = "prior.safetensors"
STATE_FILE = "prior.json"
NORMALISATIONS = ("standardise", "unit")
PREDICTION_TYPES = ("epsilon", "sample")


@dataclass
class PriorConfig:
    """Architecture and training recipe of the diffusion prior (defaults: ATM's network and schedule, x0 prediction).

    Parameters
    ----------
    embed_dim, cond_dim
        Width of the target (CLIP image) embedding and of the condition (EEG) embedding.
    hidden_dims
        Widths of the U-Net levels; the first is the input layer's width.
    time_embed_dim
        Width of the sinusoidal step embedding.
    dropout
        Dropout after every hidden layer.
    num_train_timesteps
        DDPM steps of the forward process.
    normalisation
        ``"standardise"`` or ``"unit"`` (see the module description).
    prediction_type
        What the network predicts: ``"sample"`` (the clean embedding x0, as DALL-E 2's prior does; the default) or
        ``"epsilon"`` (the noise; ATM's recipe). See the module description for why.
    epochs, batch_size, lr, warmup_steps, grad_clip
        Adam, cosine schedule with linear warm-up over ``warmup_steps`` optimiser steps, gradient-norm clip.
    cond_drop_prob
        Probability that a sample's condition is dropped during training (classifier-free guidance).
    """

    embed_dim: int = 1024
    cond_dim: int = 1024
    hidden_dims: tuple[int, ...] = (1024, 512, 256, 128, 64)
    time_embed_dim: int = 512
    dropout: float = 0.1
    num_train_timesteps: int = 1000
    normalisation: str = "standardise"
    prediction_type: str = "sample"
    epochs: int = 150
    batch_size: int = 1024
    lr: float = 1e-3
    warmup_steps: int = 500
    grad_clip: float = 1.0
    cond_drop_prob: float = 0.1

    def __post_init__(self) -> None:
        self.hidden_dims = tuple(int(d) for d in self.hidden_dims)
        check_option("normalisation", self.normalisation, NORMALISATIONS)
        check_option("prediction_type", self.prediction_type, PREDICTION_TYPES)
        if len(self.hidden_dims) < 2:
            raise ValueError(f"hidden_dims needs at least two widths; found {self.hidden_dims}")
        if not 0.0 <= self.cond_drop_prob < 1.0:
            raise ValueError(f"cond_drop_prob must be in [0, 1); found {self.cond_drop_prob}")
        for name in (
            "embed_dim",
            "cond_dim",
            "time_embed_dim",
            "num_train_timesteps",
            "epochs",
            "batch_size",
        ):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer; found {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["hidden_dims"] = list(self.hidden_dims)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PriorConfig:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


class _Level(nn.Module):
    """One U-Net level: add time and condition terms at ``width``, then Linear to ``out_width``."""

    def __init__(self, width: int, out_width: int, cond_dim: int, time_embed_dim: int, dropout: float):
        super().__init__()
        self.time_embedding = TimestepEmbedding(time_embed_dim, width)
        self.cond_projection = nn.Linear(cond_dim, width)
        self.block = nn.Sequential(
            nn.Linear(width, out_width), nn.LayerNorm(out_width), nn.SiLU(), nn.Dropout(dropout)
        )

    def forward(
        self, x: torch.Tensor, t_emb: torch.Tensor, cond: torch.Tensor | None, keep: torch.Tensor | None
    ):
        x = x + self.time_embedding(t_emb)
        if cond is not None:
            c = self.cond_projection(cond)
            x = x + (c if keep is None else c * keep)
        return self.block(x)


class DiffusionPriorUNet(nn.Module):
    """ATM's MLP U-Net that predicts the diffusion noise (or x0) of a vector given a step and a condition.

    Parameters
    ----------
    embed_dim, cond_dim, hidden_dims, time_embed_dim, dropout
        See ``PriorConfig``.

    Notes
    -----
    ``forward(x, t, cond=None, cond_keep=None)``: ``x`` (B, embed_dim) noisy target, ``t`` (B,) integer steps,
    ``cond`` (B, cond_dim) or None (unconditional), ``cond_keep`` (B,) 0/1 mask that zeroes the condition term of
    single samples. Returns (B, embed_dim).
    """

    def __init__(
        self,
        embed_dim: int = 1024,
        cond_dim: int = 1024,
        hidden_dims: tuple[int, ...] = (1024, 512, 256, 128, 64),
        time_embed_dim: int = 512,
        dropout: float = 0.1,
    ):
        super().__init__()
        hidden_dims = tuple(hidden_dims)
        self.embed_dim = embed_dim
        self.cond_dim = cond_dim
        self.time_proj = Timesteps(time_embed_dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.input_layer = nn.Sequential(
            nn.Linear(embed_dim, hidden_dims[0]), nn.LayerNorm(hidden_dims[0]), nn.SiLU()
        )
        n = len(hidden_dims)
        self.encoder = nn.ModuleList(
            _Level(hidden_dims[i], hidden_dims[i + 1], cond_dim, time_embed_dim, dropout)
            for i in range(n - 1)
        )
        self.decoder = nn.ModuleList(
            _Level(hidden_dims[i], hidden_dims[i - 1], cond_dim, time_embed_dim, dropout)
            for i in range(n - 1, 0, -1)
        )
        self.output_layer = nn.Linear(hidden_dims[0], embed_dim)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        cond: torch.Tensor | None = None,
        cond_keep: torch.Tensor | None = None,
    ) -> torch.Tensor:
        t_emb = self.time_proj(t).to(x.dtype)
        keep = None if cond_keep is None else cond_keep.to(x.dtype)[:, None]
        x = self.input_layer(x)
        skips = []
        for level in self.encoder:
            skips.append(x)
            x = level(x, t_emb, cond, keep)
        for level in self.decoder:
            x = level(x, t_emb, cond, keep) + skips.pop()
        return self.output_layer(x)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


class DiffusionPrior(nn.Module):
    """The U-Net plus what sampling needs: normalisation statistics and the DDPM scheduler config.

    Build it with ``train_prior`` or ``load_prior``. ``unet`` holds all trainable parameters; the statistics are
    buffers (saved with the weights, never trained).
    """

    def __init__(self, config: PriorConfig):
        super().__init__()
        self.config = config
        self.unet = DiffusionPriorUNet(
            config.embed_dim, config.cond_dim, config.hidden_dims, config.time_embed_dim, config.dropout
        )
        self.register_buffer("target_mean", torch.zeros(config.embed_dim))
        self.register_buffer("target_std", torch.ones(config.embed_dim))
        self.register_buffer("cond_mean", torch.zeros(config.cond_dim))
        self.register_buffer("cond_std", torch.ones(config.cond_dim))
        # Mean L2 norm of the raw training targets; lets callers rescale "unit" samples.
        self.register_buffer("target_mean_norm", torch.ones(()))
        # Range that predicted x0 is clipped to at every sampling step (diffusers ``clip_sample_range``).
        self.register_buffer("clip_range", torch.ones(()))

    def make_scheduler(self) -> DDPMScheduler:
        """A fresh DDPM scheduler (schedulers are stateful, so every sampling run gets its own)."""
        return DDPMScheduler(**scheduler_config(self.config, float(self.clip_range)))

    @torch.no_grad()
    def fit_normalisation(self, cond: torch.Tensor, target: torch.Tensor) -> None:
        """Set the statistics from the training pairs."""
        self.target_mean_norm.copy_(target.norm(dim=1).mean())
        if self.config.normalisation == "standardise":
            self.target_mean.copy_(target.mean(0))
            self.target_std.copy_(_floored_std(target))
            self.cond_mean.copy_(cond.mean(0))
            self.cond_std.copy_(_floored_std(cond))
            self.clip_range.copy_(self.encode_target(target).abs().max())

    def encode_target(self, target: torch.Tensor) -> torch.Tensor:
        """Raw target embeddings -> the space the DDPM runs in."""
        if self.config.normalisation == "unit":
            return nn.functional.normalize(target, dim=-1)
        return (target - self.target_mean) / self.target_std

    def decode_target(self, x: torch.Tensor) -> torch.Tensor:
        """DDPM space -> target embeddings (raw scale for "standardise", unit scale for "unit")."""
        if self.config.normalisation == "unit":
            return x
        return x * self.target_std + self.target_mean

    def encode_cond(self, cond: torch.Tensor) -> torch.Tensor:
        """Raw condition embeddings -> network input."""
        if self.config.normalisation == "unit":
            return cond
        return (cond - self.cond_mean) / self.cond_std


def _floored_std(x: torch.Tensor) -> torch.Tensor:
    # A (near-)constant dimension would blow up held-out values; floor at 1e-3 of the mean std.
    std = x.std(0)
    return std.clamp_min(1e-3 * float(std.mean()) + 1e-12)


def scheduler_config(config: PriorConfig, clip_range: float = 1.0) -> dict[str, Any]:
    """DDPM settings: diffusers' defaults (ATM's), with predicted x0 clipped to ``clip_range``."""
    return {
        "num_train_timesteps": config.num_train_timesteps,
        "beta_start": 1e-4,
        "beta_end": 0.02,
        "beta_schedule": "linear",
        "prediction_type": config.prediction_type,
        "variance_type": "fixed_small",
        "clip_sample": True,
        "clip_sample_range": clip_range,
        "timestep_spacing": "leading",
    }


def _as_tensor(name: str, x, dim: int) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    if t.ndim != 2 or t.shape[1] != dim:
        raise DataFormatError(
            None, f"{name} has the wrong shape", expected=f"(n, {dim})", found=tuple(t.shape)
        )
    if not torch.isfinite(t).all():
        raise DataFormatError(None, f"{name} contains NaN or Inf values")
    return t.float()


def train_prior(
    cond,
    target,
    config: PriorConfig | None = None,
    seed: int = 0,
    progress: bool = True,
    device: str | torch.device | None = None,
) -> tuple[DiffusionPrior, list[dict[str, float]]]:
    """Train a diffusion prior on (condition, target) pairs.

    Parameters
    ----------
    cond : array or Tensor, (n, cond_dim)
        Condition embeddings (EEG encoder outputs), one row per training pair.
    target : array or Tensor, (n, embed_dim)
        Target embeddings (CLIP image features of each pair's image), same row order.
    config : PriorConfig
        Architecture and recipe; defaults to ``PriorConfig()``.
    seed : int
        Seeds initialisation, shuffling, noise, steps and dropout; the global RNG state is restored afterwards.
    progress : bool
        Show a tqdm bar over epochs.
    device : str or torch.device, optional
        Defaults to CUDA when available.

    Returns
    -------
    model : DiffusionPrior
        In eval mode, on ``device``.
    history : list of dict
        Per epoch: ``epoch`` (1-based), ``loss`` (mean MSE on the noise or on x0), ``lr`` (at the end), ``seconds``.
    """
    config = config or PriorConfig()
    cond = _as_tensor("cond", cond, config.cond_dim)
    target = _as_tensor("target", target, config.embed_dim)
    if len(cond) != len(target):
        raise DataFormatError(None, "cond and target have different numbers of rows", len(target), len(cond))
    if len(cond) < 2:
        raise DataFormatError(None, "too few training pairs", expected=">= 2", found=len(cond))
    device = resolve_device(device)
    fork_devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(seed)
        model = DiffusionPrior(config).to(device)
        cond, target = cond.to(device), target.to(device)
        model.fit_normalisation(cond, target)
        history = _fit(model, cond, target, config, seed, progress)
    model.eval()
    return model, history


def _fit(model, cond, target, config, seed, progress):
    gen = torch.Generator(device=cond.device).manual_seed(seed)
    x0_all = model.encode_target(target)
    c_all = model.encode_cond(cond)
    n = len(x0_all)
    batch_size = min(config.batch_size, n)
    steps_per_epoch = math.ceil(n / batch_size)
    scheduler = model.make_scheduler()
    optimizer = torch.optim.Adam(model.unet.parameters(), lr=config.lr)
    lr_schedule = get_cosine_schedule_with_warmup(
        optimizer, config.warmup_steps, steps_per_epoch * config.epochs
    )
    model.train()
    history = []
    bar = tqdm(range(1, config.epochs + 1), desc="prior", disable=not progress, unit="epoch")
    for epoch in bar:
        started = time.perf_counter()
        order = torch.randperm(n, generator=gen, device=cond.device)
        total, count = torch.zeros((), device=cond.device), 0
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            x0, c = x0_all[idx], c_all[idx]
            noise = torch.randn(x0.shape, generator=gen, device=x0.device)
            t = torch.randint(0, config.num_train_timesteps, (len(idx),), generator=gen, device=x0.device)
            keep = torch.rand(len(idx), generator=gen, device=x0.device) >= config.cond_drop_prob
            pred = model.unet(scheduler.add_noise(x0, noise, t), t, c, keep)
            loss = nn.functional.mse_loss(pred, noise if config.prediction_type == "epsilon" else x0)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.unet.parameters(), config.grad_clip)
            optimizer.step()
            lr_schedule.step()
            total += loss.detach() * len(idx)
            count += len(idx)
        row = {
            "epoch": epoch,
            "loss": float(total) / count,
            "lr": optimizer.param_groups[0]["lr"],
            "seconds": time.perf_counter() - started,
        }
        history.append(row)
        bar.set_postfix(loss=f"{row['loss']:.4f}")
    return history


@torch.no_grad()
def sample_prior(
    model: DiffusionPrior,
    cond,
    n_steps: int = 50,
    guidance: float = 5.0,
    seed: int = 0,
    batch_size: int = 4096,
) -> torch.Tensor:
    """Sample target embeddings for conditions with classifier-free guidance.

    Parameters
    ----------
    model : DiffusionPrior
    cond : array or Tensor, (n, cond_dim)
        Raw condition embeddings (normalised here the way the model was trained).
    n_steps : int
        DDPM sampling steps (1000 / n_steps apart, "leading" spacing: 980, 960, ..., 0 for 50).
    guidance : float
        ``out = out_uncond + guidance * (out_cond - out_uncond)`` on the network's outputs (noise or x0); 1 means
        conditional only.
    seed : int
        Seeds the starting noise and every step's noise: the same seed, model and ``cond`` give the same samples.
    batch_size : int
        Rows sampled together; the noise of row i depends on the seed and on ``n`` only, not on this.

    Returns
    -------
    Tensor, (n, embed_dim), float32 on the CPU, at the scale described by the model's normalisation.
    """
    cfg = model.config
    cond = _as_tensor("cond", cond, cfg.cond_dim)
    if n_steps < 1 or n_steps > cfg.num_train_timesteps:
        raise ValueError(f"n_steps must be in [1, {cfg.num_train_timesteps}]; found {n_steps}")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    n = len(cond)
    # Draw all starting noise first so a row's sample does not depend on batch_size.
    x = torch.randn((n, cfg.embed_dim), generator=gen, device=device)
    c = model.encode_cond(cond.to(device))
    scheduler = model.make_scheduler()
    scheduler.set_timesteps(n_steps, device=device)
    for t in scheduler.timesteps:
        eps = torch.empty_like(x)
        for start in range(0, n, batch_size):
            sl = slice(start, start + batch_size)
            eps[sl] = _guided_eps(model.unet, x[sl], int(t), c[sl], guidance)
        # One step over all rows at once, so the step noise drawn from ``gen`` does not depend on batch_size.
        x = scheduler.step(eps, int(t), x, generator=gen).prev_sample
    if was_training:
        model.train()
    return model.decode_target(x).float().cpu()


def _guided_eps(unet, x, t, c, guidance):
    b = len(x)
    steps = torch.full((b,), t, device=x.device, dtype=torch.long)
    if guidance == 1.0:
        return unet(x, steps, c)
    keep = torch.cat([torch.ones(b, device=x.device), torch.zeros(b, device=x.device)])
    eps_c, eps_u = unet(torch.cat([x, x]), torch.cat([steps, steps]), torch.cat([c, c]), keep).chunk(2)
    return eps_u + guidance * (eps_c - eps_u)


def save_prior(path: str | Path, model: DiffusionPrior, state: dict[str, Any] | None = None) -> Path:
    """Write a prior checkpoint folder: ``prior.safetensors`` then ``prior.json`` (both atomic).

    Parameters
    ----------
    path : folder to create or update.
    model : DiffusionPrior
    state : dict, optional
        The caller's part of the JSON state, e.g. ``{"epoch": 150, "history": [...], "provenance": {...}}``
        (provenance: encoder checkpoint, subject, feature files). Config, normalisation and scheduler are taken
        from the model.

    Returns
    -------
    Path of the folder.
    """
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    weights = folder / WEIGHTS_FILE
    with atomic_path(weights, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT})
    record = dict(state or {})
    record.update(
        {
            "format": FORMAT,
            "config": model.config.to_dict(),
            "normalisation": {
                "mode": model.config.normalisation,
                "target_mean_norm": float(model.target_mean_norm),
                "description": normalisation_description(model.config, float(model.clip_range)),
            },
            "scheduler": scheduler_config(model.config, float(model.clip_range)),
            "parameters": count_parameters(model.unet),
            "weights_sha256": sha256_file(weights),
        }
    )
    write_json(folder / STATE_FILE, record)
    return folder


def normalisation_description(config: PriorConfig, clip_range: float = 1.0) -> str:
    """The text stored in ``prior.json``: the data space and the x0 clipping of ``scheduler_config``."""
    sched = scheduler_config(config, clip_range)
    if sched["clip_sample"]:
        clip = f"clip_sample on: predicted x0 clipped to +-{sched['clip_sample_range']:.6g} at every sampling step"
    else:
        clip = "clip_sample off"
    if config.normalisation == "standardise":
        return (
            "targets and conditions standardised per dimension with the training statistics stored in the "
            f"weights; samples are returned at the raw target scale; {clip} (the largest absolute standardised "
            "training value)"
        )
    return (
        f"targets L2-normalised, conditions raw (ATM's convention); {clip}; samples are about unit norm, "
        "target_mean_norm is the mean norm of the raw training targets"
    )


def load_prior(
    path: str | Path, device: str | torch.device | None = None
) -> tuple[DiffusionPrior, dict[str, Any]]:
    """Load a checkpoint folder written by ``save_prior`` (safetensors: nothing is unpickled).

    Parameters
    ----------
    path : the checkpoint folder.
    device : default CUDA when available.

    Returns
    -------
    model : DiffusionPrior, in eval mode on ``device``.
    state : dict, the JSON state (config, normalisation, epoch, provenance, ...).
    """
    folder = Path(path)
    weights, state_file = folder / WEIGHTS_FILE, folder / STATE_FILE
    for f in (state_file, weights):
        if not f.is_file():
            raise MissingFileError(
                f, "A prior checkpoint folder holds prior.json and prior.safetensors (save_prior)"
            )
    state = read_json(state_file)
    if state.get("format") != FORMAT:
        raise DataFormatError(
            state_file, "not a prior checkpoint", expected=FORMAT, found=state.get("format")
        )
    digest = state.get("weights_sha256")
    if digest is not None and digest != sha256_file(weights):
        raise DataFormatError(
            weights, "weights do not match the digest recorded in prior.json", digest, "other"
        )
    config = dict(state["config"])
    # Checkpoints written before these fields existed: take them from the scheduler / normalisation records (then
    # from the only settings there were), never from today's defaults.
    config.setdefault("prediction_type", state.get("scheduler", {}).get("prediction_type", "epsilon"))
    config.setdefault("normalisation", state.get("normalisation", {}).get("mode", "standardise"))
    model = DiffusionPrior(PriorConfig.from_dict(config))
    tensors = load_file(str(weights), device="cpu")
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise DataFormatError(weights, "weights do not fit the config in prior.json", missing, unexpected)
    model.to(resolve_device(device)).eval()
    return model, state
