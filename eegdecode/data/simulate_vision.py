"""The simulated vision model: a hierarchy of layer features read from the same image latent as the simulated brain.

Real vision backbones (CNNs, ViTs: CLIP, DINOv2) carry low-level image properties in their early layers and
semantic ones in their late layers, and EEG decoding depends on which layer is the target (intermediate ViT layers
beat the final embedding: Shallow Alignment, arXiv 2601.21948; SAMGA, arXiv 2604.17782) and on blurring the target
images (UBP, Wu et al., CVPR 2025). So that recipes built on those facts can be tested with a known answer, the
simulated world has a vision model too: ``N_LAYERS`` blocks ``block:0 ... block:11`` of width ``WIDTH`` and the
final ``embedding``, which is the simulator's reference embedding (``features/reference``) unchanged.

**What a block reads.** The input of block ``l`` (depth ``d = l / 11``) is the image latent the simulated brain
reads (8 low-level dimensions: colours, brightness, size, position, and two texture dimensions, stripe frequency
and orientation; 16 semantic dimensions), each standardised, plus 256 *detail* dimensions: image content the
vision model encodes and the simulated brain does not (background, clutter, pixel-level detail; THINGS photographs
have much of it). The three groups get shares of the input variance that change linearly with depth:

============  =========  ==========  ===================================================================
group         block 0    block 11    basis
============  =========  ==========  ===================================================================
low-level     0.50       0.05        early CNN/ViT layers are V1-like (oriented edges, colour, spatial
                                     frequency) and invert to photographic detail, deep ones keep only
                                     coarse layout (Zeiler & Fergus 2014; Mahendran & Vedaldi 2015)
semantic      0.05       0.75        linear probes of category rise steadily with depth (Alain & Bengio
                                     2016); early layers match early visual cortex and early MEG
                                     latencies, late layers IT and later latencies (Yamins et al. 2014;
                                     Guclu & van Gerven 2015; Cichy et al. 2016)
detail        0.45       0.20        invariance to nuisance grows with depth (DiCarlo & Cox 2007,
                                     "untangling"); no layer is free of image-specific variance
============  =========  ==========  ===================================================================

The detail vector has as many dimensions as a block is wide, so no linear read-out of a block can separate it
from the latent: it acts as the image-specific variance the EEG cannot explain. A block is one fixed random tanh
layer of its input (weights N(0, 1), biases N(0, 0.5), pre-activations of about unit variance), centred and scaled
so that its image-specific part has unit mean squared norm over the world's images (estimated once on 2048 fresh
images drawn from the world's generative model), plus a fixed random **shared direction** of length
``sqrt(rho / (1 - rho))``, so that the mean cosine between two images' features is about ``rho``, rising linearly
from 0.10 (block 0) to 0.50 (block 11): contextual embeddings of transformers are anisotropic, more so in upper
layers (Ethayarajh, EMNLP 2019), and CLIP's image embeddings sit in a narrow cone (Liang et al., "Mind the Gap",
NeurIPS 2022; Levi & Gilboa, ICML 2025: shells not centred at the origin). The block values are round numbers set
from these qualitative facts before any recipe was run on them; they are never adjusted after seeing a score.

**Width and depth.** 12 blocks as ViT-B/16, CLIP ViT-B and DINOv2-base; width 256 rather than ViT-B's 768: a
block's content is fixed by its ~280 input dimensions, so a wider block would add bytes, not information.

**Blur.** A blurred image loses its high spatial frequencies, which carry texture and fine detail (UBP). A blur
variant multiplies the two texture dimensions and the fine half of the detail dimensions (128 of 256) by the
variant's *fine gain* before every block (and the texture dimensions before the embedding): the Gaussian's
modulation transfer at the renderer's median texture frequency, ``exp(-2 pi^2 sigma^2 (f / 224)^2)`` with
``f = TEXTURE_CYCLES = 12.6`` cycles per image (stripe frequency ``2 + 8 * 0.5`` cycles per object radius, median
object radius 0.475 of the half width) and ``sigma`` OpenCV's rule for the kernel at the 224-pixel blur size
(:func:`eegdecode.targets.blur.opencv_sigma`); kernel 1 is no blur. UBP's foveated variants ``fovea:K:G`` keep the
mean sharp weight over the central object disc, ``w + (1 - w) * gain(K)``. Examples: ``gaussian:9`` 0.83,
``gaussian:21`` 0.46, ``gaussian:51`` 0.018, ``fovea:51:3`` 0.27. Colour, brightness, size, position and the
semantic dimensions are untouched.

**Other image variants** (NeuroBridge's augmentations, :mod:`eegdecode.targets.blur`). Each variant has a
*texture gain* (the two texture dimensions), a *detail gain* (the fine detail dimensions) and an *artefact*: the
variance of new image-specific content added to the fine detail dimensions, unrelated to the latent (hence not in
the EEG), a fixed function of the image (:meth:`VisionHierarchy.artefact`). They follow from the image operation
and natural-image statistics, with the renderer's texture frequency ``f`` and the blur size 224 (Nyquist ``N`` =
112 cycles per image); the fine band is ``f ... N``:

- ``noise:S`` (pixel sd ``S`` on 0-255): gains 1 (nothing is removed); artefact ``S^2 / (FINE_BAND * PIXEL_SD^2)``,
  the noise variance over the image variance in the fine band. White noise lies almost all in the fine band; a
  natural image has a ``1 / f^2`` power spectrum (Field 1987; van der Schaaf & van Hateren 1996), so the fine band
  holds ``FINE_BAND = ln(N / f) / ln(N)`` = 0.462 of its variance (from 1 cycle per image); ``PIXEL_SD`` = 0.27 x 255,
  the pixel sd CLIP's image normalisation assumes (0.269, 0.261, 0.276). ``noise:25``: 0.285.
- ``lowres:F``: gains ``sinc(f / (224 F))^4``: Pillow's bilinear reduction by ``1 / F`` filters with a triangle of
  half-width ``1 / F`` pixels (transfer ``sinc^2``), the bilinear enlargement with the same triangle again; no
  artefact (aliasing neglected). ``lowres:0.1``: 0.094.
- ``mosaic:P``: texture gain ``|sinc(f P / 224)|``, the zero-order hold of ``P``-pixel blocks (the texture lies below
  the ``224 / P`` grid's Nyquist for ``P < 8.9``); the grid is sampled without a low-pass filter, so the share
  ``ln(P) / ln(N / f)`` of the fine band above the grid's Nyquist (``N / P``) is aliased and, with the block edges,
  becomes artefact: detail gain ``sqrt(1 - share)``, artefact ``share``. ``mosaic:5``: 0.874, 0.51, 0.74.

The final embedding reads no detail, so there only the texture gain acts (``noise:S`` leaves it unchanged).

**Ground truth.** :func:`ground_truth` measures, on 2000 fresh images of the world, for every layer how much of a
subject's stimulus-driven EEG (the whitened noise-free templates) a ridge read-out of the layer explains
(``eeg_from_layer_r2``) and how much of the layer's image-specific variance a ridge read-out of those templates
explains (``layer_from_eeg_r2``: what an ideal, noise-free EEG encoder could recover of that target). Layers ranked
by the latter are "the layers the EEG carries most"; ``simulation.json`` holds them per subject and on average,
also for a few blur variants (``GROUND_TRUTH_BLUR``). With the parameters above the EEG carries the late blocks
most (and the embedding, which has no detail, more still), and blurring raises what every block shares with the
EEG (the fine detail it removes is not in the EEG; the texture it also removes is a small part of what the EEG
reads). The simulation does not build in the advantage of intermediate layers reported on real data: whether a
recipe finds the layers that carry the EEG is what it tests, against this record.

References: M. D. Zeiler & R. Fergus, "Visualizing and understanding convolutional networks", ECCV 2014;
A. Mahendran & A. Vedaldi, "Understanding deep image representations by inverting them", CVPR 2015;
G. Alain & Y. Bengio, "Understanding intermediate layers using linear classifier probes", arXiv 1610.01644;
D. Yamins et al., "Performance-optimized hierarchical models predict neural responses in higher visual cortex",
PNAS 2014; U. Guclu & M. van Gerven, "Deep neural networks reveal a gradient in the complexity of neural
representations across the ventral stream", J. Neurosci. 2015; R. M. Cichy et al., "Comparison of deep neural
networks to spatio-temporal cortical dynamics of human visual object recognition", Sci. Rep. 2016;
J. DiCarlo & D. Cox, "Untangling invariant object recognition", Trends Cogn. Sci. 2007; K. Ethayarajh, "How
contextual are contextualized word representations?", EMNLP 2019; W. Liang et al., "Mind the gap: understanding the
modality gap in multi-modal contrastive representation learning", NeurIPS 2022; M. Y. Levi & G. Gilboa, "The double
ellipsoid geometry of CLIP", ICML 2025; H. Wu et al., "Bridging the vision-brain gap with an uncertainty-aware blur
prior" (UBP), CVPR 2025.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from eegdecode.data.simulate import D_LOW, D_SEM, _rng

if TYPE_CHECKING:
    from eegdecode.data.simulate import Subject, World

N_LAYERS = 12
WIDTH = 256
D_DETAIL = 256
N_FINE_DETAIL = 128  # the first N_FINE_DETAIL detail dimensions are fine (high spatial frequency)
FINE_LOW = (6, 7)  # texture: stripe frequency and orientation (see render_image)
SHARE_LOW = (0.50, 0.05)  # share of a block's input variance at block 0 and block N_LAYERS - 1
SHARE_SEM = (0.05, 0.75)
SHARE_DETAIL = (0.45, 0.20)
COSINE = (0.10, 0.50)  # mean cosine between two images' features at block 0 and block N_LAYERS - 1
WEIGHT_SD, BIAS_SD = 1.0, 0.5
OBJECT_RADIUS = 0.35 + 0.25 * 0.5  # median object radius in half image widths (render_image)
TEXTURE_CYCLES = (2 + 8 * 0.5) / OBJECT_RADIUS  # median texture frequency, cycles per image
BLUR_SIZE = 224  # the size blur variants are rendered at (eegdecode.targets.blur.DEFAULT_BLUR_SIZE)
N_CALIBRATION = 2048
N_GROUND_TRUTH = 2000
#: variants the simulator writes: none, UBP's three foveated levels, the 12 Gaussian levels of Liu et al., and
#: NeuroBridge's noise, low-resolution and mosaic augmentations (its Gaussian blur, kernel 15, is in multiblur12)
VARIANTS = ("none", "ubp", "multiblur12", "noise:25", "lowres:0.1", "mosaic:5")
BACKBONE_NAME = "vision"  # the store is TargetSpec("simulator:vision")
POOLING = "cls"  # the pooling block arrays are stored under (a simulated block has one vector per image)
_TIME_STEP = 5  # templates are compared every 5th sample (50 Hz at 250 Hz; the components are slower)
_EEG_COMPONENTS = 64
#: blur variants the ground truth also scores (all layers)
GROUND_TRUTH_BLUR = ("fovea:51:3", "gaussian:9", "gaussian:21", "gaussian:51")
_RIDGE_FACTORS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
NYQUIST_CYCLES = BLUR_SIZE / 2  # cycles per image at the blur size
#: share of a natural image's variance (1 / f^2 power spectrum, from 1 cycle per image) in the fine band
FINE_BAND = math.log(NYQUIST_CYCLES / TEXTURE_CYCLES) / math.log(NYQUIST_CYCLES)
PIXEL_SD = 0.27 * 255  # pixel sd (8-bit) that CLIP's image normalisation assumes


def layer_names() -> list[str]:
    """``block:0`` ... ``block:11``, then ``embedding``."""
    return [f"block:{i}" for i in range(N_LAYERS)] + ["embedding"]


def _lerp(pair: tuple[float, float], layer: int) -> float:
    return pair[0] + (pair[1] - pair[0]) * layer / (N_LAYERS - 1)


def shares(layer: int) -> dict[str, float]:
    """Input-variance shares of block ``layer``: ``{"low": .., "semantic": .., "detail": ..}`` (sum 1)."""
    return {
        "low": _lerp(SHARE_LOW, layer),
        "semantic": _lerp(SHARE_SEM, layer),
        "detail": _lerp(SHARE_DETAIL, layer),
    }


def mean_cosine(layer: int) -> float:
    """The mean cosine between two images' features that block ``layer`` is built for."""
    return _lerp(COSINE, layer)


@lru_cache(maxsize=64)
def fine_gain(variant: str) -> float:
    """How much of the fine dimensions (texture, fine detail) a blur variant keeps, 0 ... 1 (module docstring)."""
    from eegdecode.targets.blur import fovea_sharp_weight, parse_variant

    v = parse_variant(variant)
    if v.kind == "none":
        return 1.0
    if v.kind in ("noise", "lowres", "mosaic"):
        return variant_effect(variant)[0]
    gain = (
        1.0 if v.kernel_size <= 1 else math.exp(-2 * math.pi**2 * (v.sigma * TEXTURE_CYCLES / BLUR_SIZE) ** 2)
    )
    if v.kind == "gaussian":
        return gain
    weight = fovea_sharp_weight(BLUR_SIZE, BLUR_SIZE, v.falloff).numpy().astype(np.float64)
    yy, xx = np.mgrid[0:BLUR_SIZE, 0:BLUR_SIZE]
    centre = BLUR_SIZE // 2
    disc = np.hypot(yy - centre, xx - centre) <= OBJECT_RADIUS * BLUR_SIZE / 2
    w = float(weight[disc].mean())
    return w + (1 - w) * gain


def _sinc(x: float) -> float:
    return 1.0 if x == 0 else math.sin(math.pi * x) / (math.pi * x)


@lru_cache(maxsize=64)
def variant_effect(variant: str) -> tuple[float, float, float]:
    """``(texture gain, detail gain, artefact variance)`` of an image variant (module docstring): blur variants
    ``(g, g, 0)`` with ``g`` their :func:`fine_gain`; ``noise:S``, ``lowres:F``, ``mosaic:P`` as documented."""
    from eegdecode.targets.blur import parse_variant

    v = parse_variant(variant)
    if v.kind == "noise":
        return 1.0, 1.0, v.amount**2 / (FINE_BAND * PIXEL_SD**2)
    if v.kind == "lowres":
        g = _sinc(TEXTURE_CYCLES / (v.amount * BLUR_SIZE)) ** 4
        return g, g, 0.0
    if v.kind == "mosaic":
        share = min(1.0, math.log(v.kernel_size) / math.log(NYQUIST_CYCLES / TEXTURE_CYCLES))
        return abs(_sinc(TEXTURE_CYCLES * v.kernel_size / BLUR_SIZE)), math.sqrt(1 - share), share
    g = fine_gain(variant)
    return g, g, 0.0


def parse_layer(layer: str) -> int | None:
    """``block:I`` -> I (0 ... 11, negative counts from the end), ``embedding`` -> None; ValueError otherwise."""
    if layer == "embedding":
        return None
    if isinstance(layer, str) and layer.startswith("block:"):
        try:
            i = int(layer[6:])
        except ValueError:
            i = None
        if i is not None and -N_LAYERS <= i < N_LAYERS:
            return i % N_LAYERS
    raise ValueError(
        f"Invalid value for layer: {layer!r}; allowed values are embedding and block:0 ... block:{N_LAYERS - 1}"
    )


@dataclass
class _Block:
    """One simulated block: ``tanh(x @ w + b)``, centred by ``mean``, divided by ``scale``, plus ``shared``."""

    w: np.ndarray
    b: np.ndarray
    mean: np.ndarray | float = 0.0
    scale: float = 1.0
    shared: np.ndarray | float = 0.0


class VisionHierarchy:
    """The vision model of a :class:`~eegdecode.data.simulate.World` (module docstring); everything is seeded."""

    def __init__(self, world: World):
        self.world = world
        seed = world.seed
        calib = world.sample_latents(N_CALIBRATION, _rng(seed, 51))
        self._latent_sd = calib.std(axis=0)
        calib_detail = self.detail(N_CALIBRATION, _rng(seed, 52))
        d_in = D_LOW + D_SEM + D_DETAIL
        self._blocks = []
        for layer in range(N_LAYERS):
            r = _rng(seed, 50, layer)
            w = r.normal(0, WEIGHT_SD, (d_in, WIDTH))
            b = r.normal(0, BIAS_SD, WIDTH)
            mu = r.normal(0, 1.0, WIDTH)
            block = _Block(w, b)
            self._blocks.append(block)
            h = self._hidden(calib, calib_detail, layer, 1.0)
            block.mean = h.mean(axis=0)
            block.scale = float(np.sqrt(np.mean(np.sum((h - block.mean) ** 2, axis=1))))
            rho = mean_cosine(layer)
            block.shared = np.sqrt(rho / (1 - rho)) * mu / np.linalg.norm(mu)

    @staticmethod
    def detail(n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` detail vectors (n, D_DETAIL), standard normal."""
        return rng.standard_normal((n, D_DETAIL))

    def _hidden(self, latent: np.ndarray, detail: np.ndarray, layer: int, gain: float,
                detail_gain: float | None = None, artefact: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
        s = shares(layer)
        z = np.asarray(latent, dtype=np.float64) / self._latent_sd
        nu = np.asarray(detail, dtype=np.float64)
        detail_gain = gain if detail_gain is None else detail_gain
        if gain != 1.0:
            z = z.copy()
            z[:, list(FINE_LOW)] *= gain
        if detail_gain != 1.0 or artefact is not None:
            nu = nu.copy()
            nu[:, :N_FINE_DETAIL] *= detail_gain
            if artefact is not None:
                nu[:, :N_FINE_DETAIL] += artefact
        x = np.concatenate(
            [
                z[:, :D_LOW] * np.sqrt(s["low"] / D_LOW),
                z[:, D_LOW:] * np.sqrt(s["semantic"] / D_SEM),
                nu * np.sqrt(s["detail"] / D_DETAIL),
            ],
            axis=1,
        )
        block = self._blocks[layer]
        return np.tanh(x @ block.w + block.b)

    def blurred_latent(self, latent: np.ndarray, blur: str) -> np.ndarray:
        """The latent with its texture dimensions scaled by the variant's fine gain (the embedding's input)."""
        gain = fine_gain(blur)
        out = np.array(latent, dtype=np.float64)
        if gain != 1.0:
            out[:, list(FINE_LOW)] *= gain
        return out

    def features(self, latent: np.ndarray, detail: np.ndarray, layer: str, blur: str = "none") -> np.ndarray:
        """Features ``(n, dim)`` float32 of ``layer`` (``block:I``: width 256; ``embedding``: 1024) for images with
        these latents and detail vectors, under the blur variant ``blur``."""
        index = parse_layer(layer)
        if index is None:
            return self.world.image_embeddings(self.blurred_latent(latent, blur))
        if len(detail) != len(latent):
            raise ValueError(f"detail: expected {len(latent)} rows (one per latent), found {len(detail)}")
        block = self._blocks[index]
        texture, keep, artefact = variant_effect(blur)
        extra = math.sqrt(artefact) * self.artefact(detail, blur) if artefact else None
        h = self._hidden(latent, detail, index, texture, keep, extra)
        return (block.shared + (h - block.mean) / block.scale).astype(np.float32)

    def artefact(self, detail: np.ndarray, variant: str) -> np.ndarray:
        """``(n, N_FINE_DETAIL)`` standard normal values, a fixed function of each image (its detail vector) and the
        variant: the content a variant adds to an image (a noise draw, aliased detail and block edges), the same
        for an image every time and independent of its latent. Counter-based (SplitMix64 and Box-Muller)."""
        from eegdecode.data.augment import splitmix64
        from eegdecode.targets.blur import parse_variant

        bits = np.ascontiguousarray(detail, dtype=np.float64).view(
            np.uint64
        )  # exact: no batch-dependent sums
        code = np.uint64(zlib.crc32(parse_variant(variant).name.encode()))
        golden = np.uint64(0x9E3779B97F4A7C15)
        with np.errstate(over="ignore"):
            dims = splitmix64(np.arange(bits.shape[1], dtype=np.uint64) * golden + np.uint64(self.world.seed))
            key = np.bitwise_xor.reduce(splitmix64(bits ^ dims), axis=1)
            j = np.arange(2 * N_FINE_DETAIL, dtype=np.uint64)
            h = splitmix64(splitmix64(key)[:, None] ^ splitmix64(j * golden + code))
        u = ((h >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53
        u1, u2 = u[:, :N_FINE_DETAIL], u[:, N_FINE_DETAIL:]
        return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)

    @cached_property
    def probe(self) -> tuple[np.ndarray, np.ndarray]:
        """2000 fresh images of the world (latents, detail) for ground truths that do not depend on the preset."""
        seed = self.world.seed
        return self.world.sample_latents(N_GROUND_TRUTH, _rng(seed, 53)), self.detail(
            N_GROUND_TRUTH, _rng(seed, 54)
        )

    def parameters(self) -> dict[str, Any]:
        """The construction, as recorded in ``simulation.json``."""
        return {
            "layers": layer_names(),
            "width": WIDTH,
            "embedding_width": int(self.world.image_embeddings(self.probe[0][:1]).shape[1]),
            "detail_dims": D_DETAIL,
            "fine_detail_dims": N_FINE_DETAIL,
            "fine_low_level_dims": list(FINE_LOW),
            "shares": {f"block:{i}": {k: round(v, 4) for k, v in shares(i).items()} for i in range(N_LAYERS)},
            "mean_cosine_built": {f"block:{i}": round(mean_cosine(i), 4) for i in range(N_LAYERS)},
            "texture_cycles_per_image": round(TEXTURE_CYCLES, 3),
            "blur_size": BLUR_SIZE,
        }


# ----------------------------------------------------------------------------------------------------------------
# Ground truth
# ----------------------------------------------------------------------------------------------------------------


class _Ridge:
    """Ridge read-outs from ``x`` (n, p): fit on the first 60% of rows, choose the penalty on the next 20%, score
    on the last 20%. Primal when ``p`` is at most the fit size, dual (kernel) form otherwise; the decomposition is
    done once and reused for every target."""

    def __init__(self, x: np.ndarray):
        x = np.asarray(x, dtype=np.float64)
        n = len(x)
        self.a, self.b = int(0.6 * n), int(0.8 * n)
        self.mu = x[: self.a].mean(axis=0)
        x = x - self.mu
        self.fit_x, self.rest = x[: self.a], x[self.a :]
        self.dual = x.shape[1] > self.a
        gram = self.fit_x @ self.fit_x.T if self.dual else self.fit_x.T @ self.fit_x
        self.evals, self.evecs = np.linalg.eigh(gram)
        self.evals = np.maximum(self.evals, 0.0)
        self.lambdas = [f * float(np.trace(gram)) / self.a for f in _RIDGE_FACTORS]
        # Rows outside the fit set, expressed in the eigenbasis.
        self.rest_e = (self.rest @ self.fit_x.T if self.dual else self.rest) @ self.evecs

    def components(self, k: int) -> np.ndarray:
        """Scores (n, k) of every row (centred) on the top ``k`` principal components of the fit rows."""
        top = np.argsort(self.evals)[::-1][:k]
        if not self.dual:
            return np.concatenate([self.fit_x @ self.evecs[:, top], self.rest_e[:, top]])
        scale = np.sqrt(np.maximum(self.evals[top], 1e-300))
        return np.concatenate([self.evecs[:, top] * scale, self.rest_e[:, top] / scale])

    def r2(self, y: np.ndarray) -> float:
        """Held-out R^2 of ``y`` (n, q), variance-weighted over its columns, at the penalty best on validation."""
        y = np.asarray(y, dtype=np.float64)
        mu = y[: self.a].mean(axis=0)
        y = y - mu
        fit_y, rest_y = y[: self.a], y[self.a :]
        proj = self.evecs.T @ (fit_y if self.dual else self.fit_x.T @ fit_y)
        nval = self.b - self.a
        best = None
        for lam in self.lambdas:
            pred = self.rest_e @ (proj / (self.evals + lam)[:, None])
            val = np.sum((rest_y[:nval] - pred[:nval]) ** 2)
            if best is None or val < best[0]:
                best = (val, pred)
        sse = np.sum((rest_y[nval:] - best[1][nval:]) ** 2)
        sst = np.sum(rest_y[nval:] ** 2)
        return float(1.0 - sse / sst) if sst > 0 else 0.0


def _probe_eeg(subject: Subject, latent: np.ndarray) -> np.ndarray:
    """Whitened noise-free templates of ``latent``, every 5th sample, flattened (n, channels * times')."""
    out = []
    for start in range(0, len(latent), 256):
        t = subject.templates(latent[start : start + 256])[..., ::_TIME_STEP]
        out.append(t.reshape(len(t), -1))
    return np.concatenate(out)


def latent_r2(vision: VisionHierarchy, blur: str = "none") -> dict[str, dict[str, float]]:
    """Per layer, the held-out ridge R^2 of the coarse low-level, fine (texture) and semantic latent dimensions
    from the layer's features on the probe images."""
    latent, detail = vision.probe
    z = latent / latent.std(axis=0)
    fine = list(FINE_LOW)
    coarse = [i for i in range(D_LOW) if i not in FINE_LOW]
    out = {}
    for layer in layer_names():
        ridge = _Ridge(vision.features(latent, detail, layer, blur))
        out[layer] = {
            "low_level": round(ridge.r2(z[:, coarse]), 4),
            "fine": round(ridge.r2(z[:, fine]), 4),
            "semantic": round(ridge.r2(z[:, D_LOW:]), 4),
        }
    return out


def probe_eeg(vision: VisionHierarchy, subject: Subject) -> np.ndarray:
    """``subject``'s stimulus-driven EEG for the probe images: scores (2000, 64) of its whitened noise-free
    templates (every 5th sample) on their top 64 principal components.

    The templates are low-rank (four components of four sources each, with small latency shifts): those components
    hold all but ~1e-6 of the variance, so read-outs from and R^2 on them equal those on the templates.
    """
    return _Ridge(_probe_eeg(subject, vision.probe[0])).components(_EEG_COMPONENTS)


def ground_truth(vision: VisionHierarchy, eeg: dict[str, np.ndarray], top: int = 3) -> dict[str, Any]:
    """How much of each subject's stimulus-driven EEG every layer carries (module docstring).

    Parameters
    ----------
    vision : VisionHierarchy
    eeg : dict
        ``{subject name: probe_eeg(vision, subject)}``.
    top : int
        How many layers ``carried_most`` names.

    Returns
    -------
    dict
        ``per_subject`` (name -> ``layer_from_eeg_r2``, ``eeg_from_layer_r2``, ``carried_most``), the same keys
        averaged over subjects, ``carried_most_blocks`` (the embedding left out), ``layer_from_eeg_r2_blur``
        (variant -> layer -> R^2 of that variant's features, mean over subjects) and ``definition``.
    """
    latent, detail = vision.probe
    names = list(eeg)
    from_eeg = {n: _Ridge(eeg[n]) for n in names}
    per = {n: {"layer_from_eeg_r2": {}, "eeg_from_layer_r2": {}} for n in names}
    blur: dict[str, dict[str, float]] = {v: {} for v in GROUND_TRUTH_BLUR}
    for layer in layer_names():
        feats = vision.features(latent, detail, layer)
        to_eeg = _Ridge(feats)
        for n in names:
            per[n]["layer_from_eeg_r2"][layer] = round(from_eeg[n].r2(feats), 4)
            per[n]["eeg_from_layer_r2"][layer] = round(to_eeg.r2(eeg[n]), 4)
        for v in GROUND_TRUTH_BLUR:
            feats = vision.features(latent, detail, layer, v)
            blur[v][layer] = round(float(np.mean([from_eeg[n].r2(feats) for n in names])), 4)

    def ranked(r2: dict[str, float]) -> list[str]:
        return sorted(r2, key=lambda k: -r2[k])

    for rec in per.values():
        rec["carried_most"] = ranked(rec["layer_from_eeg_r2"])[:top]
    out: dict[str, Any] = {}
    for key in ("layer_from_eeg_r2", "eeg_from_layer_r2"):
        out[key] = {x: round(float(np.mean([per[n][key][x] for n in names])), 4) for x in layer_names()}
    order = ranked(out["layer_from_eeg_r2"])
    out["carried_most"] = order[:top]
    out["carried_most_blocks"] = [x for x in order if x != "embedding"][:top]
    out["layer_from_eeg_r2_blur"] = {"none": out["layer_from_eeg_r2"], **blur}
    out["per_subject"] = per
    out["definition"] = (
        "layer_from_eeg_r2: held-out ridge R^2 of the layer's features (variance-weighted) from the subject's "
        "whitened noise-free EEG templates, on 2000 fresh images of the world (fit 60%, penalty chosen on 20%, "
        "scored on 20%); eeg_from_layer_r2: the reverse read-out; carried_most: layers ranked by "
        "layer_from_eeg_r2, mean over subjects"
    )
    return out


# ----------------------------------------------------------------------------------------------------------------
# Writing the target store
# ----------------------------------------------------------------------------------------------------------------


def write_vision_targets(world: World, root, variants=VARIANTS, chunk: int = 4096):
    """Write every layer and blur variant of the world's images as the target store ``simulator:vision`` under
    ``root`` (``<data>/targets``): ``embedding`` (the reference embedding and text, variant ``none`` identical to
    ``features/reference``) and ``block:0 ... block:11`` (pooling ``cls``), each under every variant of
    ``variants`` (shorthands expanded). Returns the :class:`~eegdecode.targets.store.TargetStore`."""
    from eegdecode.embeddings.store import image_list_digest
    from eegdecode.targets.blur import expand_variants, parse_variant
    from eegdecode.targets.store import write_reference_targets

    variants = expand_variants(variants)
    vision = world.vision
    splits, prov = {}, {}
    for split in ("train", "test"):
        concepts = world.train_concepts if split == "train" else world.test_concepts
        latent = world.train_latent if split == "train" else world.test_latent
        names = world.relative_names(split)
        splits[split] = (world.image_embeddings(latent), world.text_embeddings(concepts))
        prov[split] = {
            "image_list_digest": image_list_digest(names),
            "images_per_concept": world.preset.images_per_concept if split == "train" else 1,
            "first_image": names[0],
            "last_image": names[-1],
        }
    store = write_reference_targets(
        root,
        BACKBONE_NAME,
        splits,
        prov,
        {"seed": world.seed, "variants": list(variants), "construction": "simulation.json (vision)"},
    )
    for split in ("train", "test"):
        latent = world.train_latent if split == "train" else world.test_latent
        detail = world.image_detail(split)
        for variant in variants:
            info = {
                "blur": parse_variant(variant).provenance(BLUR_SIZE),
                "fine_gain": round(fine_gain(variant), 6),
            }
            if parse_variant(variant).kind in ("noise", "lowres", "mosaic"):
                texture, keep, artefact = variant_effect(variant)
                info["effect"] = {"texture_gain": round(texture, 6), "detail_gain": round(keep, 6),
                                  "artefact": round(artefact, 6)}  # fmt: skip
            for layer in layer_names():
                if layer == "embedding" and variant == "none":
                    continue
                arr = np.concatenate(
                    [
                        vision.features(latent[i : i + chunk], detail[i : i + chunk], layer, variant)
                        for i in range(0, len(latent), chunk)
                    ]
                )
                pooling = None if layer == "embedding" else POOLING
                module = "embedding" if layer == "embedding" else f"simulated {layer}"
                store.put_image(split, layer, pooling, variant, arr, {**info, "module": module})
    return store
