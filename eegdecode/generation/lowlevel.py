"""Low-level path: EEG embedding -> SDXL-VAE latent -> img2img.

ATM predicts the SDXL-VAE latent of the seen image (4 x 64 x 64 at 512 px) from EEG and uses it, decoded, as the
starting image of an img2img run conditioned on the high-level (IP-Adapter) embedding. This module keeps the idea
and makes it simpler:

- ``encode_latents``: images -> VAE latents. Preprocessing as ATM: resize (bicubic) and centre-crop to ``size``,
  scale to [-1, 1]; the latent is ``vae.encode(x).latent_dist.mean`` in fp32. Latents are stored **unscaled**
  and multiplied by ``vae.config.scaling_factor`` (0.13025 for SDXL) only where they enter UNet/scheduler space
  (``Generator.generate(init_latents=...)`` does it). ATM's refactor stored unscaled latents but decoded
  ``pred / scaling_factor``; one convention here.
- ``fit_latent_ridge``: a closed-form ridge regression from the 1024-d EEG embedding to the flattened latent,
  instead of ATM's EEG -> transposed-conv network (trained with L1 for 200 epochs). The penalty is chosen on a
  seeded validation part of the training pairs, then the model is refit on all pairs. Statistics are accumulated
  in chunks in float64, so memory-mapped inputs of any length work.
- img2img: the stock ``StableDiffusionXLImg2ImgPipeline`` through ``Generator.generate(init_latents=...,
  strength=...)`` (ATM used a forked pipeline whose starting noise does not match the schedule).

``save_latents`` / ``load_latents`` write a ``.npy`` with a JSON sidecar that records ``scaled: false``, the
scaling factor, the image size and the image list.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from eegdecode.errors import DataFormatError, MissingFileError
from eegdecode.io import read_json, save_npy, write_json

LATENTS_FORMAT = "eegdecode-vae-latents/1"


def image_to_tensor(image: Image.Image | str | Path, size: int = 512) -> torch.Tensor:
    """Resize (bicubic, shorter side) and centre-crop to ``size``; (3, size, size) float in [-1, 1]."""
    from torchvision.transforms import v2 as T

    img = Image.open(image) if isinstance(image, (str, Path)) else image
    transform = T.Compose(
        [
            T.ToImage(),
            T.Resize(size, interpolation=T.InterpolationMode.BICUBIC, antialias=True),
            T.CenterCrop(size),
            T.ToDtype(torch.float32, scale=True),
            T.Normalize([0.5] * 3, [0.5] * 3),
        ]
    )
    return transform(img.convert("RGB"))


@contextlib.contextmanager
def _vae_in_fp32(vae):
    # The SDXL VAE overflows in fp16; run it in fp32 and give it back as it was.
    dtype = vae.dtype
    vae.to(torch.float32)
    try:
        yield vae
    finally:
        vae.to(dtype)


@torch.no_grad()
def encode_latents(
    vae,
    images: Sequence[Image.Image | str | Path],
    size: int = 512,
    batch_size: int = 8,
) -> torch.Tensor:
    """Encode images to unscaled SDXL-VAE latents.

    Parameters
    ----------
    vae : diffusers ``AutoencoderKL`` (e.g. ``Generator(...).pipe.vae``); run in fp32 on its device.
    images : PIL images or image paths.
    size : image side in pixels (512 gives 4 x 64 x 64 latents with the SDXL VAE).
    batch_size : images per VAE call.

    Returns
    -------
    Tensor (N, latent_channels, size / f, size / f), float32 on the CPU, where f is the VAE factor.
    """
    device = next(vae.parameters()).device
    out = []
    with _vae_in_fp32(vae):
        for start in range(0, len(images), batch_size):
            x = torch.stack([image_to_tensor(im, size) for im in images[start : start + batch_size]])
            out.append(vae.encode(x.to(device)).latent_dist.mean.float().cpu())
    return torch.cat(out)


@torch.no_grad()
def decode_latents(vae, latents: torch.Tensor, batch_size: int = 8) -> list[Image.Image]:
    """Decode unscaled latents to PIL images (fp32), e.g. to look at or score the low-level prediction."""
    device = next(vae.parameters()).device
    images = []
    with _vae_in_fp32(vae):
        for start in range(0, len(latents), batch_size):
            x = vae.decode(latents[start : start + batch_size].float().to(device)).sample
            x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
            images.extend(Image.fromarray(a) for a in x)
    return images


@dataclass
class LatentRidge:
    """Ridge regression embedding -> latent: ``latent = (x - x_mean) @ weight + latent_mean``, reshaped."""

    weight: torch.Tensor  # (embed_dim, latent_size)
    x_mean: torch.Tensor  # (embed_dim,)
    latent_mean: torch.Tensor  # (latent_size,)
    latent_shape: tuple[int, ...]
    alpha: float
    validation: dict[str, float]

    def predict(self, embeds, batch_size: int = 4096) -> torch.Tensor:
        """(N, embed_dim) -> (N, *latent_shape) unscaled latents, float32."""
        x = torch.as_tensor(np.asarray(embeds) if not isinstance(embeds, torch.Tensor) else embeds).float()
        if x.ndim != 2 or x.shape[1] != self.weight.shape[0]:
            raise DataFormatError(
                None, "embeds has the wrong shape", f"(n, {self.weight.shape[0]})", tuple(x.shape)
            )
        w = self.weight.float()
        rows = [
            (x[s : s + batch_size] - self.x_mean) @ w + self.latent_mean for s in range(0, len(x), batch_size)
        ]
        return torch.cat(rows).reshape(len(x), *self.latent_shape)


def fit_latent_ridge(
    embeds,
    latents,
    alphas: Sequence[float] = (1e-1, 1e0, 1e1, 1e2, 1e3, 1e4),
    val_fraction: float = 0.1,
    seed: int = 0,
    chunk: int = 1024,
) -> LatentRidge:
    """Fit a ridge regression from embeddings to VAE latents, choosing the penalty on held-out pairs.

    Parameters
    ----------
    embeds : (N, D) array/Tensor (may be memory-mapped), e.g. EEG embeddings averaged per training image.
    latents : (N, C, H, W) unscaled latents of the same images, same row order.
    alphas : candidate penalties (on the centred Gram matrix); one value skips validation.
    val_fraction : share of rows held out (seeded) to choose the penalty; the final fit uses every row.
    seed : seeds the validation split.
    chunk : rows per accumulation step.

    Returns
    -------
    LatentRidge with the chosen ``alpha`` and ``validation`` = {alpha: mean squared error on held-out rows}.
    """
    n = len(embeds)
    if len(latents) != n:
        raise DataFormatError(None, "embeds and latents have different numbers of rows", n, len(latents))
    latent_shape = tuple(np.shape(latents)[1:])
    alphas = [float(a) for a in alphas]
    if not alphas or min(alphas) < 0:
        raise ValueError(f"alphas must be non-negative and not empty; found {alphas}")
    is_val = np.zeros(n, dtype=bool)
    if len(alphas) > 1:
        n_val = max(1, round(val_fraction * n))
        if n_val >= n:
            raise ValueError(f"val_fraction {val_fraction} leaves no training rows out of {n}")
        is_val[np.random.default_rng(seed).choice(n, n_val, replace=False)] = True

    def rows(start):
        x = torch.as_tensor(np.asarray(embeds[start : start + chunk]), dtype=torch.float64)
        y = torch.as_tensor(np.asarray(latents[start : start + chunk]), dtype=torch.float64).reshape(
            len(x), -1
        )
        return x, y

    train, val = _Moments(), _Moments()
    val_rows = []
    for start in range(0, n, chunk):
        x, y = rows(start)
        mask = torch.from_numpy(is_val[start : start + chunk])
        train.add(x[~mask], y[~mask])
        if mask.any():
            val.add(x[mask], y[mask])
            val_rows.append((x[mask], y[mask]))

    validation: dict[str, float] = {}
    if len(alphas) > 1:
        x_val = torch.cat([r[0] for r in val_rows])
        y_val = torch.cat([r[1] for r in val_rows])
        fit = train.solver()
        for alpha in alphas:
            w, x_mean, y_mean = fit(alpha)
            pred = (x_val - x_mean) @ w + y_mean
            validation[str(alpha)] = float(((pred - y_val) ** 2).mean())
        best = min(alphas, key=lambda a: validation[str(a)])
    else:
        best = alphas[0]
    w, x_mean, y_mean = (train + val).solver()(best)
    return LatentRidge(w.float(), x_mean.float(), y_mean.float(), latent_shape, best, validation)


class _Moments:
    """Running sums for a centred least-squares fit."""

    def __init__(self):
        self.n, self.sx, self.sy, self.xx, self.xy = 0, 0.0, 0.0, 0.0, 0.0

    def add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.n += len(x)
        self.sx = self.sx + x.sum(0)
        self.sy = self.sy + y.sum(0)
        self.xx = self.xx + x.T @ x
        self.xy = self.xy + x.T @ y

    def __add__(self, other: _Moments) -> _Moments:
        if other.n == 0:
            return self
        out = _Moments()
        out.n = self.n + other.n
        for name in ("sx", "sy", "xx", "xy"):
            setattr(out, name, getattr(self, name) + getattr(other, name))
        return out

    def solver(self):
        """Eigendecompose the centred Gram matrix once; return ``alpha -> (weight, x_mean, y_mean)``."""
        x_mean, y_mean = self.sx / self.n, self.sy / self.n
        gram = self.xx - self.n * torch.outer(x_mean, x_mean)
        cross = self.xy - self.n * torch.outer(x_mean, y_mean)
        evals, evecs = torch.linalg.eigh(gram)
        projected = evecs.T @ cross

        def solve(alpha: float):
            return evecs @ (projected / (evals.clamp_min(0) + alpha)[:, None]), x_mean, y_mean

        return solve


def save_latents(
    path: str | Path,
    latents: torch.Tensor,
    images: Sequence[str],
    scaling_factor: float,
    meta: dict | None = None,
) -> Path:
    """Write unscaled latents as ``<path>.npy`` (float32) plus ``<path>.json`` (format, scaling, image list)."""
    path = Path(path).with_suffix(".npy")
    latents = torch.as_tensor(latents).float()
    if len(images) != len(latents):
        raise DataFormatError(path, "one image name per latent is needed", len(latents), len(images))
    save_npy(path, latents.numpy())
    sidecar: dict[str, Any] = dict(meta or {})
    sidecar.update(
        {
            "format": LATENTS_FORMAT,
            "scaled": False,
            "scaling_factor": float(scaling_factor),
            "shape": list(latents.shape),
            "images": [str(i) for i in images],
        }
    )
    write_json(path.with_suffix(".json"), sidecar)
    return path


def load_latents(path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    """Read latents written by ``save_latents`` (memory-mapped) and their sidecar."""
    path = Path(path).with_suffix(".npy")
    sidecar_path = path.with_suffix(".json")
    for f in (path, sidecar_path):
        if not f.is_file():
            raise MissingFileError(f, "Latents are written by eegdecode.generation.lowlevel.save_latents")
    sidecar = read_json(sidecar_path)
    if sidecar.get("format") != LATENTS_FORMAT or sidecar.get("scaled") is not False:
        raise DataFormatError(sidecar_path, "not unscaled VAE latents", LATENTS_FORMAT, sidecar.get("format"))
    latents = np.load(path, mmap_mode="r", allow_pickle=False)
    if list(latents.shape) != sidecar["shape"]:
        raise DataFormatError(
            path, "array shape disagrees with its sidecar", sidecar["shape"], list(latents.shape)
        )
    return latents, sidecar
