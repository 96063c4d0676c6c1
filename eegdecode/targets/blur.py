"""Blurred image variants for blur-prior targets: uniform Gaussian levels and the foveated blur of UBP.

The EEG cannot resolve fine image detail, so matching it to features of sharp images is noisy; two lines of work
therefore compute the target features of blurred images:

- UBP, "Bridging the Vision-Brain Gap with an Uncertainty-Aware Blur Prior" (Wu et al., CVPR 2025;
  github.com/HaitaoWuTJU/Uncertainty-aware-Blur-Prior) blurs each 224 x 224 image with a *foveated* blur: a
  Gaussian blur (kernel 51) mixed with the sharp image through a radial weight that keeps the centre half-sharp and
  fades to fully blurred at the corners, ``sharp_weight(r) = 0.5 * exp(-g * r / r_max)`` with ``g = 3`` and ``r``
  the distance from the centre pixel, ``r_max`` the distance from it to the far corner. Its uncertainty-aware
  variant precomputes three levels, kernel ``k - c``, ``k``, ``k + c`` (``c = 6``), and picks one per sample
  (see :mod:`eegdecode.targets.chooser`).
- Liu et al., visual blur perception (AAAI 2026; github.com/makeitperfect/VisualEEGDecoding) use a stack of 12
  uniform Gaussian blurs of the 224 x 224 image, kernel sizes 1, 3, 9, 15, ..., 63.

Both papers blur with OpenCV's ``GaussianBlur(ksize, sigma=0)``, whose standard deviation follows from the kernel
size as ``0.3 * ((k - 1) / 2 - 1) + 0.8``; :func:`opencv_sigma` uses the same rule. This implementation is our own
(separable convolution in torch, reflected borders, rounded back to 8 bits).

A blur *variant* is named by a string:

``none``                     the image as it is (the backbone's own transform only)
``gaussian:K``               uniform Gaussian blur with an odd kernel size ``K`` of the image resized to the blur size
``fovea:K`` / ``fovea:K:G``  UBP's foveated blur, kernel ``K``, fall-off ``G`` (default 3)

``noise:S``                  Gaussian pixel noise of standard deviation ``S`` (0-255 scale), clipped, floored
``lowres:F``                 low resolution: resized to ``F`` times the size (bilinear) and back (bilinear)
``mosaic:P``                 mosaic: sampled at ``size // P`` pixels (bilinear, not antialiased), enlarged back
                             by pixel repetition (nearest), blocks of about ``P`` pixels

and the shorthands ``multiblur12`` (the 12 Gaussian levels of Liu et al.) and ``ubp`` / ``ubp:K:C`` (UBP's three
foveated levels ``K - C``, ``K``, ``K + C``; default ``K = 51``, ``C = 6``) expand to lists of variants.
Blurred variants first resize the image to ``size x size`` (224, as both papers), then blur; the backbone's
evaluation transform runs afterwards on the blurred image.

The last three are NeuroBridge's image augmentations (Zhang et al., AAAI 2026, github.com/feroooooo/NeuroBridge,
``module/image_augmentation.py`` and ``extract_feature.py``: ``GaussianNoise(std=25)``, ``LowResolution(scale=0.1)``,
``Mosaic(mosaic_level=5)``, with ``GaussianBlur(15)`` the four whose features it averages, ``fuse_feature.py``), on
the image resized to 224 x 224 as there; this implementation is our own (numpy and Pillow). Their noise is drawn
unseeded; here it is drawn from a seed and the image's own pixels (:func:`add_noise`), so it is the same image every
run and in every worker.
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

#: kernel sizes of the 12-level uniform blur stack of Liu et al. (AAAI 2026)
MULTIBLUR12_KERNELS = (1, 3, 9, 15, 21, 27, 33, 39, 45, 51, 57, 63)
#: UBP's defaults: foveated blur kernel, level spacing, radial fall-off, blur size
UBP_KERNEL, UBP_SPACING, UBP_FALLOFF = 51, 6, 3.0
DEFAULT_BLUR_SIZE = 224
#: sharp weight at the centre of the foveated blur (UBP: centre resolution 1 - 0.5)
FOVEA_CENTRE_WEIGHT = 0.5

_GAUSSIAN = re.compile(r"^gaussian:([0-9]+)$")
_FOVEA = re.compile(r"^fovea:([0-9]+)(?::([0-9]*\.?[0-9]+))?$")
_UBP = re.compile(r"^ubp(?::([0-9]+):([0-9]+))?$")
_NUMBER = r"([0-9]*\.?[0-9]+)"
_NOISE = re.compile(rf"^noise:{_NUMBER}$")
_LOWRES = re.compile(rf"^lowres:{_NUMBER}$")
_MOSAIC = re.compile(r"^mosaic:([0-9]+)$")
#: seed of the ``noise:S`` draws (combined with a digest of each image's pixels)
NOISE_SEED = 2025
#: image variants that are not blurs (NeuroBridge's augmentations)
AUGMENTATION_KINDS = ("noise", "lowres", "mosaic")


def opencv_sigma(kernel_size: int) -> float:
    """Standard deviation OpenCV derives from a kernel size when ``sigma=0``: ``0.3 * ((k - 1) / 2 - 1) + 0.8``."""
    return 0.3 * ((kernel_size - 1) * 0.5 - 1) + 0.8


@dataclass(frozen=True)
class BlurVariant:
    """One image variant: ``kind`` ``none``, ``gaussian`` or ``fovea`` (kernel, fall-off), or ``noise`` (sd in
    ``amount``), ``lowres`` (scale in ``amount``), ``mosaic`` (level in ``kernel_size``)."""

    kind: str
    kernel_size: int = 0
    falloff: float = UBP_FALLOFF
    amount: float = 0.0

    @property
    def name(self) -> str:
        """The canonical variant string (``gaussian:51``, ``fovea:51:3``)."""
        if self.kind == "none":
            return "none"
        if self.kind == "gaussian":
            return f"gaussian:{self.kernel_size}"
        if self.kind in ("noise", "lowres"):
            return f"{self.kind}:{self.amount:g}"
        if self.kind == "mosaic":
            return f"mosaic:{self.kernel_size}"
        return f"fovea:{self.kernel_size}:{self.falloff:g}"

    @property
    def slug(self) -> str:
        """File-name form: ``none``, ``gaussian51``, ``fovea51g3``."""
        if self.kind == "none":
            return "none"
        if self.kind == "gaussian":
            return f"gaussian{self.kernel_size}"
        if self.kind in ("noise", "lowres"):
            return f"{self.kind}{self.amount:g}".replace(".", "p")
        if self.kind == "mosaic":
            return f"mosaic{self.kernel_size}"
        return f"fovea{self.kernel_size}g{self.falloff:g}".replace(".", "p")

    @property
    def sigma(self) -> float:
        return opencv_sigma(self.kernel_size) if self.kind in ("gaussian", "fovea") else 0.0

    def provenance(self, size: int) -> dict:
        """What is recorded in the store for an array of this variant."""
        if self.kind == "none":
            return {"kind": "none"}
        if self.kind == "noise":
            return {"kind": "noise", "sd": self.amount, "size": size, "seed": NOISE_SEED,
                    "rounding": "clipped to 0..255, floored"}  # fmt: skip
        if self.kind == "lowres":
            return {"kind": "lowres", "scale": self.amount, "size": size, "low_size": low_size(size, self.amount),
                    "resample": "bilinear down, bilinear up (Pillow)"}  # fmt: skip
        if self.kind == "mosaic":
            return {"kind": "mosaic", "level": self.kernel_size, "size": size, "small": size // self.kernel_size,
                    "down": "bilinear at pixel centres, not antialiased", "up": "nearest"}  # fmt: skip
        out = {"kind": self.kind, "kernel_size": self.kernel_size, "sigma": self.sigma, "size": size}
        if self.kind == "fovea":
            out.update(falloff=self.falloff, centre_weight=FOVEA_CENTRE_WEIGHT)
        return out


def _odd_kernel(value: str, text: str) -> int:
    k = int(value)
    if k < 1 or k % 2 == 0:
        raise ValueError(f"Invalid value for blur: {text!r}; the kernel size must be a positive odd integer")
    return k


def parse_variant(text: str) -> BlurVariant:
    """Parse one variant string (``none``, ``gaussian:K``, ``fovea:K[:G]``); shorthands are not accepted here."""
    text = str(text).strip()
    if text == "none":
        return BlurVariant("none")
    if m := _GAUSSIAN.match(text):
        return BlurVariant("gaussian", _odd_kernel(m.group(1), text))
    if m := _FOVEA.match(text):
        falloff = float(m.group(2)) if m.group(2) else UBP_FALLOFF
        return BlurVariant("fovea", _odd_kernel(m.group(1), text), falloff)
    if m := _NOISE.match(text):
        sd = float(m.group(1))
        if sd > 0:
            return BlurVariant("noise", amount=sd)
    elif m := _LOWRES.match(text):
        scale = float(m.group(1))
        if 0 < scale < 1:
            return BlurVariant("lowres", amount=scale)
    elif m := _MOSAIC.match(text):
        if int(m.group(1)) >= 2:
            return BlurVariant("mosaic", int(m.group(1)))
    raise ValueError(
        f"Invalid value for blur: {text!r}; allowed values are none, gaussian:K, fovea:K[:G], multiblur12, "
        f"ubp[:K:C] (K an odd kernel size), noise:S (S > 0), lowres:F (0 < F < 1), mosaic:P (P >= 2)"
    )


def expand_variants(items) -> tuple[str, ...]:
    """Expand shorthands and canonicalise: ``["ubp"]`` -> ``("fovea:45:3", "fovea:51:3", "fovea:57:3")``.

    Duplicates are dropped, the first occurrence keeps its place.
    """
    if isinstance(items, str):
        items = [items]
    out: list[str] = []
    for item in items:
        item = str(item).strip()
        if item == "multiblur12":
            out.extend(f"gaussian:{k}" for k in MULTIBLUR12_KERNELS)
        elif m := _UBP.match(item):
            k = int(m.group(1)) if m.group(1) else UBP_KERNEL
            c = int(m.group(2)) if m.group(2) else UBP_SPACING
            for kernel in (k - c, k, k + c):
                out.append(parse_variant(f"fovea:{kernel}:{UBP_FALLOFF:g}").name)
        else:
            out.append(parse_variant(item).name)
    if not out:
        raise ValueError("Invalid value for blur: []; give at least one variant (e.g. none)")
    return tuple(dict.fromkeys(out))


def gaussian_kernel1d(kernel_size: int, sigma: float) -> torch.Tensor:
    """Normalised 1-D Gaussian of ``kernel_size`` taps."""
    x = torch.arange(kernel_size, dtype=torch.float64) - (kernel_size - 1) / 2
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return (k / k.sum()).float()


def gaussian_blur(x: torch.Tensor, kernel_size: int, sigma: float | None = None) -> torch.Tensor:
    """Separable Gaussian blur of ``x`` ``(..., channels, h, w)`` float; borders reflected (replicated if too small).

    ``sigma`` defaults to OpenCV's rule for the kernel size (:func:`opencv_sigma`).
    """
    if kernel_size <= 1:
        return x.clone()
    sigma = opencv_sigma(kernel_size) if sigma is None else sigma
    shape = x.shape
    img = x.reshape(-1, 1, shape[-2], shape[-1])
    k = gaussian_kernel1d(kernel_size, sigma).to(img)
    pad = kernel_size // 2
    mode = "reflect" if pad < min(shape[-2], shape[-1]) else "replicate"
    img = F.pad(img, (pad, pad, 0, 0), mode=mode)
    img = F.conv2d(img, k.view(1, 1, 1, -1))
    img = F.pad(img, (0, 0, pad, pad), mode=mode)
    img = F.conv2d(img, k.view(1, 1, -1, 1))
    return img.reshape(shape)


def fovea_sharp_weight(h: int, w: int, falloff: float = UBP_FALLOFF) -> torch.Tensor:
    """``(h, w)`` weight of the sharp image in UBP's foveated blur: ``0.5 * exp(-falloff * r / r_max)``.

    ``r`` is the distance from the centre pixel ``(h // 2, w // 2)``, ``r_max`` the distance from it to the far
    corner, ``r / r_max`` clipped to 1.
    """
    cy, cx = h // 2, w // 2
    yy, xx = torch.meshgrid(
        torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij"
    )
    r_max = math.hypot(h - cy - 1, w - cx - 1) or 1.0
    r = torch.clamp(torch.sqrt((yy - cy) ** 2 + (xx - cx) ** 2) / r_max, max=1.0)
    return (FOVEA_CENTRE_WEIGHT * torch.exp(-falloff * r)).float()


def blur_tensor(x: torch.Tensor, variant: BlurVariant | str) -> torch.Tensor:
    """Apply a variant to float images ``(..., channels, h, w)`` (any range); no resizing, no rounding."""
    variant = parse_variant(variant) if isinstance(variant, str) else variant
    if variant.kind == "none":
        return x.clone()
    if variant.kind in AUGMENTATION_KINDS:
        raise ValueError(f"{variant.name} is applied to 8-bit images: use blur_image")
    blurred = gaussian_blur(x, variant.kernel_size)
    if variant.kind == "gaussian":
        return blurred
    weight = fovea_sharp_weight(x.shape[-2], x.shape[-1], variant.falloff).to(x)
    return weight * x + (1 - weight) * blurred


def blur_image(img: Image.Image, variant: BlurVariant | str, size: int = DEFAULT_BLUR_SIZE) -> Image.Image:
    """A blurred RGB copy of ``img``: resized to ``size x size`` (bicubic), blurred, rounded to 8 bits.

    The ``none`` variant returns the image unchanged (not resized).
    """
    variant = parse_variant(variant) if isinstance(variant, str) else variant
    if variant.kind == "none":
        return img
    resized = img.convert("RGB").resize((size, size), Image.BICUBIC)
    if variant.kind == "noise":
        return Image.fromarray(add_noise(np.asarray(resized), variant.amount))
    if variant.kind == "lowres":
        return low_resolution(resized, variant.amount)
    if variant.kind == "mosaic":
        return Image.fromarray(mosaic(np.asarray(resized), variant.kernel_size))
    arr = np.asarray(resized, dtype=np.float32)
    x = torch.from_numpy(arr).permute(2, 0, 1)
    out = blur_tensor(x, variant).permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
    return Image.fromarray(out)


def add_noise(arr: np.ndarray, sd: float, seed: int = NOISE_SEED) -> np.ndarray:
    """``arr`` (uint8) plus Gaussian noise of standard deviation ``sd``, clipped to 0..255 and floored to uint8
    (NeuroBridge's ``GaussianNoise``: ``np.clip(x + noise, 0, 255).astype(np.uint8)``).

    The noise is drawn from ``seed`` and a CRC-32 of the pixels, so an image always gets the same draw."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    rng = np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(arr.tobytes()), *arr.shape]))
    noisy = arr.astype(np.float32) + rng.normal(0.0, sd, arr.shape).astype(np.float32)
    return np.floor(np.clip(noisy, 0, 255)).astype(np.uint8)


def low_size(size: int, scale: float) -> int:
    """The side of the reduced image of ``lowres:scale`` (``int(size * scale)``, at least 1)."""
    return max(1, int(size * scale))


def low_resolution(img: Image.Image, scale: float) -> Image.Image:
    """``img`` reduced to ``scale`` times its size and enlarged back, both bilinear (Pillow; its downsampling
    widens the filter with the factor, i.e. antialiases), as NeuroBridge's ``LowResolution``."""
    w, h = img.size
    small = img.resize((low_size(w, scale), low_size(h, scale)), Image.BILINEAR)
    return small.resize((w, h), Image.BILINEAR)


def _linear_taps(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear resampling at pixel centres, ``src = (i + 0.5) * n_in / n_out - 0.5`` clamped to the image (the
    convention of OpenCV's ``INTER_LINEAR``): left index, right index, right weight."""
    src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    left = np.floor(src).astype(np.int64)
    return left, np.minimum(left + 1, n_in - 1), src - left


def mosaic(arr: np.ndarray, level: int) -> np.ndarray:
    """NeuroBridge's ``Mosaic``: ``arr`` (h, w, c) uint8 sampled down to ``(h // level, w // level)`` bilinearly
    at pixel centres (no antialiasing), rounded to 8 bits, then enlarged back to ``(h, w)`` by nearest neighbour
    (``src = floor(i * small / big)``): a piecewise-constant image of blocks about ``level`` pixels wide."""
    h, w = arr.shape[:2]
    sh, sw = max(1, h // level), max(1, w // level)
    x = arr.astype(np.float64)
    t, b, wy = _linear_taps(sh, h)
    x = x[t] * (1 - wy)[:, None, None] + x[b] * wy[:, None, None]
    le, ri, wx = _linear_taps(sw, w)
    x = x[:, le] * (1 - wx)[None, :, None] + x[:, ri] * wx[None, :, None]
    small = np.clip(np.round(x), 0, 255).astype(np.uint8)
    rows = np.minimum(np.arange(h) * sh // h, sh - 1)
    cols = np.minimum(np.arange(w) * sw // w, sw - 1)
    return small[rows][:, cols]


class BlurTransform:
    """``transform(blur_image(img, variant, size))``: a picklable image pipeline for data-loader workers."""

    def __init__(self, variant: BlurVariant | str, transform, size: int = DEFAULT_BLUR_SIZE):
        self.variant = parse_variant(variant) if isinstance(variant, str) else variant
        self.transform = transform
        self.size = size

    def __call__(self, img: Image.Image):
        return self.transform(blur_image(img, self.variant, self.size))
