"""The simulated THINGS-EEG2: a complete data set in the real on-disk layout, with a known ground truth.

What it models (SPEC section 2):

- **World.** Every image has a latent vector: 8 "low-level" dimensions (colour, brightness, size, position,
  texture) and 16 "semantic" dimensions built hierarchically (category centroid + concept offset + image offset).
  Training and test concepts are disjoint but drawn from the same categories, so zero-shot transfer is possible, as
  in THINGS. Each image is rendered from its latent into a real JPEG, and a reference 1024-d embedding (a fixed
  non-linear map of the latent with a strong shared component, like CLIP image features) is written in the format of
  the CLIP feature cache, together with text embeddings of each concept.
- **Brain.** Twelve cortical dipoles (V1, lateral occipital, fusiform, intraparietal, centro-parietal, fronto-central,
  anterior temporal; left/right) are projected through an MNE three-shell spherical forward model onto the real
  positions of the 63 THINGS-EEG2 channels, referenced to Fz (the recording reference, absent from the files).
  Four evoked components (about 100, 170, 250 and 400 ms) drive those sources; their amplitudes are small tanh
  networks of the latent (early components read mostly low-level dimensions, late ones semantic dimensions) and their
  latencies shift slightly with it. Each trial has latency jitter and gain jitter per component.
- **Noise.** 48 background dipoles with 1/f spectra, a parieto-occipital alpha rhythm with random phase and
  amplitude, and sensor noise, all projected through the same forward model, hence spatially correlated. The data
  are whitened with the noise covariance (as MVNN does in the real pipeline), so values are in noise units.
- **Subjects** differ in source positions and orientations, component latencies and gains, the weights of the
  amplitude networks (70% shared, 30% individual), alpha frequency and noise level.
- **Layouts.** ``250hz`` (NICE/ATM's re-preprocessed release: 63 channels, 0 ... 0.996 s at 250 Hz, the 300-value
  ``times``) or ``100hz`` (Gifford's official release: the 17 occipito-parietal channels, -0.2 ... 0.79 s at 100 Hz,
  baseline-corrected on the 200 ms before onset, whitened with their own noise covariance, saved with ``np.save``
  of the dict as Gifford's code does).
- **Vision.** A simulated vision model reads the same latent (plus image detail the brain does not see): 12 blocks
  from low-level to semantic and the reference embedding, with blur variants, written as the target store
  ``simulator:vision``; ``simulation.json`` records which layers the EEG carries
  (:mod:`eegdecode.data.simulate_vision`).
- **Ground truth.** For every subject the expected (noise-free, jitter-averaged) response to each test image is
  known, together with the temporal noise covariance; :func:`ceiling_scores` scores test queries with that ideal
  template-matching decoder, giving the ceiling of zero-shot retrieval that any model can be read against.

Nothing here is tuned to favour a model: the parameters are physiological orders of magnitude (dipole moments in
nAm, latencies and widths of the classic visual ERP components), fixed before any model was trained on the data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from eegdecode import __version__
from eegdecode.data.channels import POSTERIOR_17, THINGS_EEG2_CHANNELS
from eegdecode.data.paths import DatasetPaths, subject_name
from eegdecode.data.things_eeg2 import split_file, write_preprocessed_file
from eegdecode.errors import OutputExistsError, check_option
from eegdecode.io import atomic_path, save_npy, write_json

log = logging.getLogger(__name__)

SFREQ = 250.0
N_TIMES = 250
TIMES_FULL = np.round(np.arange(-50, N_TIMES) / SFREQ, 6)  # the 300-value `times` quirk: -0.2 ... 0.996 s
TIMES = TIMES_FULL[50:]
TIMES_100HZ = np.round(-0.2 + np.arange(100) / 100.0, 6)  # Gifford's release: -0.2 ... 0.79 s
LAYOUTS = ("250hz", "100hz")
"""Release layouts the simulator writes (folder names in :data:`eegdecode.data.paths.RELEASES`)."""
D_LOW, D_SEM = 8, 16
EMBED_DIM = 1024
CHUNK = 256  # images per generation chunk; fixed so results never depend on memory settings

CATEGORIES = (
    "animal", "bird", "insect", "food", "fruit", "vegetable", "vehicle", "tool", "weapon", "furniture",
    "clothing", "musical_instrument", "plant", "container", "toy", "sports_equipment", "body_part", "building",
)  # fmt: skip


@dataclass(frozen=True)
class Preset:
    """Sizes of a simulated data set (per subject)."""

    n_train_concepts: int
    images_per_concept: int
    n_train_reps: int
    n_test_concepts: int
    n_test_reps: int
    image_size: int

    def __post_init__(self):
        for name, low in (("n_train_concepts", 1), ("images_per_concept", 1), ("n_train_reps", 1),
                          ("n_test_concepts", 2), ("n_test_reps", 1), ("image_size", 8)):  # fmt: skip
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
                raise ValueError(f"Preset.{name}: expected an integer >= {low}; found {value!r}")


PRESETS: dict[str, Preset] = {
    "tiny": Preset(60, 4, 4, 20, 20, 32),
    "small": Preset(200, 5, 4, 50, 40, 64),
    "full": Preset(1654, 10, 4, 200, 80, 224),
}


def resolve_preset(preset: str | Preset) -> tuple[str, Preset]:
    """``"tiny"``/``"small"``/``"full"`` or a :class:`Preset` -> (name, Preset); a custom Preset is named "custom"."""
    if isinstance(preset, Preset):
        return "custom", preset
    check_option("preset", preset, PRESETS)
    return preset, PRESETS[preset]


def custom_preset(preset: str | Preset = "tiny", **counts: int | None) -> tuple[str, Preset]:
    """A preset with some counts replaced (``n_train_concepts=10, n_test_reps=80``; ``None`` keeps the preset's).

    Returns ``(name, Preset)``: the preset's own name when nothing changed, else ``"custom"`` (the name
    :func:`simulate_dataset` records for a :class:`Preset` it is given).
    """
    from dataclasses import fields, replace

    name, base = resolve_preset(preset)
    known = {f.name for f in fields(Preset)}
    unknown = sorted(set(counts) - known)
    if unknown:
        raise ValueError(f"Invalid count {unknown[0]!r}; allowed names are {sorted(known)}")
    changes = {k: v for k, v in counts.items() if v is not None and v != getattr(base, k)}
    if not changes:
        return name, base
    return "custom", replace(base, **changes)


# Cortical sources: name -> (position relative to the sphere centre [m], orientation). x right, y front, z up.
_SOURCES = {
    "V1_L": ((-0.010, -0.075, -0.002), (0.0, -0.6, 0.8)),
    "V1_R": ((0.010, -0.075, -0.002), (0.0, -0.6, 0.8)),
    "LO_L": ((-0.040, -0.060, -0.005), (-0.7, -0.6, 0.2)),
    "LO_R": ((0.040, -0.060, -0.005), (0.7, -0.6, 0.2)),
    "FG_L": ((-0.035, -0.045, -0.025), (-0.3, -0.2, -0.9)),
    "FG_R": ((0.035, -0.045, -0.025), (0.3, -0.2, -0.9)),
    "IPS_L": ((-0.028, -0.055, 0.045), (-0.4, -0.5, 0.7)),
    "IPS_R": ((0.028, -0.055, 0.045), (0.4, -0.5, 0.7)),
    "CP_mid": ((0.0, -0.030, 0.062), (0.0, -0.3, 0.95)),
    "FC_mid": ((0.0, 0.020, 0.058), (0.0, 0.3, 0.95)),
    "ATL_L": ((-0.048, 0.005, -0.020), (-0.8, 0.3, -0.3)),
    "ATL_R": ((0.048, 0.005, -0.020), (0.8, 0.3, -0.3)),
}
_SOURCE_NAMES = tuple(_SOURCES)

# Evoked components: latency [s], width [s], sources, base moment [nAm] per source (sign = polarity),
# modulation [nAm], and how strongly the amplitude network reads low-level vs semantic dimensions.
_COMPONENTS = (
    dict(name="P1", latency=0.100, width=0.018, sources=("V1_L", "V1_R", "LO_L", "LO_R"), base=14.0, mod=7.0, w_low=1.0, w_sem=0.25),
    dict(name="N170", latency=0.170, width=0.022, sources=("LO_L", "LO_R", "FG_L", "FG_R"), base=-16.0, mod=8.0, w_low=0.6, w_sem=0.7),
    dict(name="P2", latency=0.250, width=0.035, sources=("FG_L", "FG_R", "IPS_L", "IPS_R"), base=10.0, mod=7.0, w_low=0.3, w_sem=1.0),
    dict(name="N400", latency=0.400, width=0.070, sources=("CP_mid", "FC_mid", "ATL_L", "ATL_R"), base=-8.0, mod=6.0, w_low=0.1, w_sem=1.0),
)  # fmt: skip

_HIDDEN = 8  # hidden units of each component's amplitude network
_N_NOISE_SOURCES = 48
_NOISE_NAM = 12.0  # RMS of each background dipole [nAm]
_ALPHA_NAM = 30.0  # RMS of the alpha dipoles [nAm]
_SENSOR_UV = 1.5  # sensor noise [uV]
_LATENCY_JITTER = 0.010  # s, per trial and component
_GAIN_JITTER = 0.25  # lognormal sigma, per trial and component


# Spread of the image latents: category low-level mean, concept and image offsets of the semantic dims, image
# low-level spread (World).
_CAT_LOW_SD, _CONCEPT_SD, _IMAGE_SD, _LOW_SD = 0.6, 0.7, 0.35, 1.0


def _rng(*keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in keys]))


# --------------------------------------------------------------------------------------------------------------
# World: latents, embeddings, images
# --------------------------------------------------------------------------------------------------------------


@dataclass
class World:
    """Latents and reference embeddings of every image, shared by all subjects."""

    preset: Preset
    seed: int

    def __post_init__(self):
        p, rng = self.preset, _rng(self.seed, 1)
        n_cat = len(CATEGORIES)
        cat_sem = rng.normal(0, 1.0, (n_cat, D_SEM))
        cat_low = rng.normal(0, _CAT_LOW_SD, (n_cat, D_LOW))
        self._cat_sem, self._cat_low = cat_sem, cat_low  # the generative model, for fresh samples of images
        n_concepts = p.n_train_concepts + p.n_test_concepts
        concept_cat = rng.integers(0, n_cat, n_concepts)
        concept_sem = cat_sem[concept_cat] + rng.normal(0, _CONCEPT_SD, (n_concepts, D_SEM))
        # Disjoint train/test concepts, drawn from the same pool (zero-shot, same categories).
        order = rng.permutation(n_concepts)
        self.train_concepts = np.sort(order[: p.n_train_concepts])
        self.test_concepts = np.sort(order[p.n_train_concepts :])
        self.concept_cat = concept_cat
        self.concept_names = [f"{CATEGORIES[c]}_{i:04d}" for i, c in enumerate(concept_cat)]

        def images(concepts, per_concept, key):
            r = _rng(self.seed, 2, key)
            cidx = np.repeat(concepts, per_concept)
            sem = concept_sem[cidx] + r.normal(0, _IMAGE_SD, (cidx.size, D_SEM))
            low = cat_low[concept_cat[cidx]] + r.normal(0, _LOW_SD, (cidx.size, D_LOW))
            return cidx, np.concatenate([low, sem], axis=1)

        self.train_image_concept, self.train_latent = images(self.train_concepts, p.images_per_concept, 0)
        self.test_image_concept, self.test_latent = images(self.test_concepts, 1, 1)
        self.concept_latent = np.concatenate([cat_low[concept_cat], concept_sem], axis=1)

        # Embedding map: a fixed random 2-layer network with a strong shared direction, like CLIP features.
        r = _rng(self.seed, 3)
        d, h = D_LOW + D_SEM, 256
        self._a1 = r.normal(0, 1.6 / np.sqrt(d), (d, h))
        self._b1 = r.normal(0, 0.3, h)
        self._a2 = r.normal(0, 1.0 / np.sqrt(h), (h, EMBED_DIM))
        self._a3 = r.normal(0, 1.0 / np.sqrt(h), (h, EMBED_DIM))
        mu = r.normal(0, 1.0, EMBED_DIM)
        self._mu_img = 0.8 * mu / np.linalg.norm(mu)
        mu_t = r.normal(0, 1.0, EMBED_DIM)
        self._mu_txt = 0.8 * mu_t / np.linalg.norm(mu_t)
        self._embed_noise = r

    def image_embeddings(self, latent: np.ndarray) -> np.ndarray:
        hidden = np.tanh(latent @ self._a1 + self._b1)
        out = self._mu_img + hidden @ self._a2 / np.sqrt(hidden.shape[1] / 4)
        return out.astype(np.float32)

    def text_embeddings(self, concepts: np.ndarray) -> np.ndarray:
        hidden = np.tanh(self.concept_latent[concepts] @ self._a1 + self._b1)
        mix = 0.6 * (hidden @ self._a2) + 0.8 * (hidden @ self._a3)
        return (self._mu_txt + mix / np.sqrt(hidden.shape[1] / 4)).astype(np.float32)

    def sample_latents(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Latents (n, 24) of ``n`` fresh images, each of a new concept of a random category, drawn from the same
        generative model as the data set's images (for ground truths that must not depend on the preset)."""
        cats = rng.integers(0, len(CATEGORIES), n)
        sem = (
            self._cat_sem[cats]
            + rng.normal(0, _CONCEPT_SD, (n, D_SEM))
            + rng.normal(0, _IMAGE_SD, (n, D_SEM))
        )
        low = self._cat_low[cats] + rng.normal(0, _LOW_SD, (n, D_LOW))
        return np.concatenate([low, sem], axis=1)

    @cached_property
    def vision(self):
        """The simulated vision model (:class:`eegdecode.data.simulate_vision.VisionHierarchy`)."""
        from eegdecode.data.simulate_vision import VisionHierarchy

        return VisionHierarchy(self)

    def image_detail(self, split: str) -> np.ndarray:
        """Image content beyond the latent that the vision model sees and the brain does not, ``(n_images, 256)``
        (see :mod:`eegdecode.data.simulate_vision`)."""
        check_option("split", split, ("train", "test"))
        n = len(self.train_latent if split == "train" else self.test_latent)
        return self.vision.detail(n, _rng(self.seed, 40, 0 if split == "train" else 1))

    def layer_features(self, split: str, layer: str, blur: str = "none") -> np.ndarray:
        """Features ``(n_images, dim)`` float32 of the simulated vision model's ``layer`` (``block:I`` or
        ``embedding``) for the images of ``split``, of the sharp image or a blur variant (``gaussian:K``, ...)."""
        latent = self.train_latent if split == "train" else self.test_latent
        return self.vision.features(latent, self.image_detail(split), layer, blur)

    def relative_names(self, split: str) -> list[str]:
        """``training_images/<folder>/<file>`` of every image, concept-major (the image-set walk)."""
        per = self.preset.images_per_concept if split == "train" else 1
        sub = "training_images" if split == "train" else "test_images"
        folders = self.folder_names(split)
        return [f"{sub}/{folders[i // per]}/{n}" for i, n in enumerate(self.file_names(split))]

    def folder_names(self, split: str) -> list[str]:
        concepts = self.train_concepts if split == "train" else self.test_concepts
        return [f"{i + 1:05d}_{self.concept_names[c]}" for i, c in enumerate(concepts)]

    def file_names(self, split: str) -> list[str]:
        """File name of every image, concept-major (the order of the EEG rows)."""
        concepts = self.train_concepts if split == "train" else self.test_concepts
        per = self.preset.images_per_concept if split == "train" else 1
        r = _rng(self.seed, 4, 0 if split == "train" else 1)
        names = []
        for c in concepts:
            first = 1 if split == "train" else int(r.integers(1, 12))
            for k in range(per):
                names.append(f"{self.concept_names[c]}_{first + k:02d}{'sb'[int(r.integers(0, 2))]}.jpg")
        return names


_SHAPES = ("disc", "square", "triangle", "star", "ellipse", "cross")


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def _hsv_to_rgb(h, s, v):
    i = np.floor(h * 6) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    table = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    return np.array(table[int(i)], dtype=np.float32)


@lru_cache(maxsize=4)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1) * 2 - 1
    return yy, xx


def render_image(latent: np.ndarray, category: int, size: int, seed: int) -> np.ndarray:
    """Render one image (uint8, size x size x 3) from its latent: the object's shape follows the category, its
    details the semantic dimensions, and colours, size, position and texture the low-level dimensions."""
    latent = np.asarray(latent, dtype=np.float32)
    low, sem = latent[:D_LOW], latent[D_LOW:]
    yy, xx = _grid(size)
    cx, cy = 0.25 * np.tanh(low[4]), 0.25 * np.tanh(low[5])
    radius = 0.35 + 0.25 * _sig(low[3])
    aspect = 1.0 + 0.35 * np.tanh(sem[1])
    x, y = (xx - cx) / radius, (yy - cy) / (radius * aspect)
    r, th = np.hypot(x, y), np.arctan2(y, x)
    shape = _SHAPES[category % len(_SHAPES)]
    if shape == "disc":
        mask = r < 1
    elif shape == "square":
        mask = np.maximum(np.abs(x), np.abs(y)) < 0.85
    elif shape == "triangle":
        mask = (y < 0.7) & (y > 1.7 * np.abs(x) - 0.9)
    elif shape == "star":
        mask = r < 0.65 + 0.35 * np.cos(int(5 + 2 * (sem[2] > 0)) * th)
    elif shape == "ellipse":
        mask = np.hypot(x, 1.8 * y) < 1
    else:
        mask = (np.minimum(np.abs(x), np.abs(y)) < 0.3) & (r < 1.1)
    bg = _hsv_to_rgb(_sig(low[0]) % 1.0, 0.25 + 0.3 * _sig(low[2]), 0.35 + 0.5 * _sig(low[1]))
    hue = (category / len(CATEGORIES) + 0.08 * np.tanh(sem[0])) % 1.0
    fg = _hsv_to_rgb(hue, 0.55 + 0.4 * _sig(sem[3]), 0.55 + 0.4 * _sig(low[2]))
    fg2 = _hsv_to_rgb((hue + 0.5 * _sig(sem[4])) % 1.0, 0.7, 0.9)
    freq = 2 + 8 * _sig(low[6])
    ang = np.pi * _sig(low[7])
    stripes = np.sin(np.pi * freq * (x * np.cos(ang) + y * np.sin(ang))) > 0.3 * np.tanh(sem[5])
    img = np.where(mask[..., None], np.where(stripes[..., None], fg, fg2 * 0.6 + fg * 0.4), bg)
    # A concept-specific small mark (eye, stem, wheel ...) at a semantic position.
    mx, my = 0.5 * np.tanh(sem[6]), -0.5 * abs(np.tanh(sem[7]))
    mark = np.hypot(x - mx, y - my) < 0.18 + 0.08 * _sig(sem[8])
    img = np.where((mark & mask)[..., None], 1.0 - fg, img)
    noise = _rng(seed).standard_normal(img.shape, dtype=np.float32) * 0.03
    return (np.clip(img + noise, 0, 1) * 255).astype(np.uint8)


def _render_batch(args) -> None:
    """Render and save a batch of images (runs in a worker process for large image sets)."""
    from PIL import Image

    latents, categories, paths, size, seeds = args
    for lat, cat, path, seed in zip(latents, categories, paths, seeds):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(render_image(lat, int(cat), size, int(seed))).save(path, quality=90)


# --------------------------------------------------------------------------------------------------------------
# Brain: forward model, subject parameters, trials
# --------------------------------------------------------------------------------------------------------------


def _rotate(vec: np.ndarray, rng: np.random.Generator, max_deg: float) -> np.ndarray:
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    ang = np.deg2rad(rng.uniform(0, max_deg))
    v = vec * np.cos(ang) + np.cross(axis, vec) * np.sin(ang) + axis * axis.dot(vec) * (1 - np.cos(ang))
    return v / np.linalg.norm(v)


def leadfield(positions: np.ndarray, orientations: np.ndarray) -> np.ndarray:
    """Gain matrix (63, n_sources) in uV per nAm of fixed-orientation dipoles, three-shell sphere, Fz reference.

    ``positions`` are relative to the sphere centre fitted to the 10-05 montage.
    """
    import mne

    names = [*THINGS_EEG2_CHANNELS, "Fz"]
    info = mne.create_info(names, SFREQ, "eeg")
    montage = mne.channels.make_standard_montage("colin27_1005")
    info.set_montage(montage, verbose=False)
    sphere = mne.make_sphere_model("auto", "auto", info, verbose=False)
    # Keep every dipole at least 10% of the radius inside the inner (brain) sphere; jitter can push one out.
    pos = np.asarray(positions, dtype=float)
    r_max = 0.9 * sphere["layers"][0]["rad"]
    norms = np.linalg.norm(pos, axis=1, keepdims=True)
    pos = np.where(norms > r_max, pos * r_max / norms, pos)
    rr = pos + sphere["r0"]
    nn = np.asarray(orientations) / np.linalg.norm(orientations, axis=1, keepdims=True)
    src = mne.setup_volume_source_space(pos=dict(rr=rr, nn=nn), sphere=sphere, verbose=False)
    fwd = mne.make_forward_solution(info, trans=None, src=src, bem=sphere, eeg=True, meg=False, verbose=False)
    if fwd["nsource"] != len(rr):
        raise RuntimeError(f"the forward model kept {fwd['nsource']} of {len(rr)} simulated sources")
    gain = fwd["sol"]["data"].reshape(len(names), len(rr), 3)  # V per Am, free orientation
    gain = np.einsum("csk,sk->cs", gain, nn)
    gain = gain[:-1] - gain[-1:]  # re-reference to Fz, then drop it (the release has no Fz)
    return gain * 1e-9 * 1e6  # uV per nAm


_PRE_100HZ = 51  # 250 Hz samples of the 100hz window up to and including t = 0 (MNE's baseline (None, 0))
_PAD_100HZ = 50  # reflected samples on each side before the FFT resampling 250 -> 100 Hz (MNE pads too)


def to_100hz_layout(x: np.ndarray) -> np.ndarray:
    """Epochs (n, 63, 250) at 250 Hz over -0.2 ... 0.796 s -> Gifford's layout (n, 17, 100) at 100 Hz.

    The 17 occipito-parietal channels (:data:`eegdecode.data.channels.POSTERIOR_17`), baseline (None, 0), FFT
    resampling with reflected edges. Linear, so it applies alike to single trials, templates and noise.
    """
    from scipy.signal import resample

    idx = [THINGS_EEG2_CHANNELS.index(c) for c in POSTERIOR_17]
    x = x[:, idx]
    x = x - x[..., :_PRE_100HZ].mean(axis=-1, keepdims=True)
    pad = np.pad(x, ((0, 0), (0, 0), (_PAD_100HZ, _PAD_100HZ)), mode="reflect")
    n_out = int(round(pad.shape[-1] * 100.0 / SFREQ))
    crop = int(round(_PAD_100HZ * 100.0 / SFREQ))
    return resample(pad, n_out, axis=-1)[..., crop : crop + len(TIMES_100HZ)]


@dataclass
class Subject:
    """One simulated brain: forward model, component parameters, noise model and whitening.

    ``layout`` sets what :meth:`trials`, :meth:`templates`, :attr:`whitening` and :attr:`temporal_noise_cov` refer
    to: ``"250hz"`` (63 channels x 250 samples, 0 ... 0.996 s) or ``"100hz"`` (17 channels x 100 samples,
    -0.2 ... 0.79 s, see :func:`to_100hz_layout`). The brain itself is the same in both.
    """

    world: World
    index: int  # 0-based
    layout: str = "250hz"

    def __post_init__(self):
        check_option("layout", self.layout, LAYOUTS)

    @property
    def ch_names(self) -> list[str]:
        """Channels of the layout, in file order."""
        return list(THINGS_EEG2_CHANNELS if self.layout == "250hz" else POSTERIOR_17)

    @property
    def file_times(self) -> np.ndarray:
        """The ``times`` written to the release files (250hz: the 300-value quirk)."""
        return TIMES_FULL if self.layout == "250hz" else TIMES_100HZ

    @property
    def _t0(self) -> float:
        """Start of the generated 250 Hz window, in seconds."""
        return 0.0 if self.layout == "250hz" else -0.2

    def _to_layout(self, x: np.ndarray) -> np.ndarray:
        """Sensor epochs (n, 63, 250) on the layout's window -> the layout's channels and samples (unwhitened)."""
        return x if self.layout == "250hz" else to_100hz_layout(x)

    @cached_property
    def _params(self) -> dict[str, Any]:
        seed = self.world.seed
        r = _rng(seed, 10, self.index)
        shared = _rng(seed, 11)
        pos = np.array([p for p, _ in _SOURCES.values()]) + r.normal(0, 0.004, (len(_SOURCES), 3))
        ori = np.array([_rotate(np.asarray(o) / np.linalg.norm(o), r, 20.0) for _, o in _SOURCES.values()])
        # Background dipoles: random positions within the brain, random orientations.
        u = r.normal(size=(_N_NOISE_SOURCES, 3))
        npos = (
            u
            / np.linalg.norm(u, axis=1, keepdims=True)
            * (0.035 + 0.035 * r.uniform(size=(_N_NOISE_SOURCES, 1)))
        )
        npos[:, 2] = np.abs(npos[:, 2]) * 0.8 + 0.005
        nori = r.normal(size=(_N_NOISE_SOURCES, 3))
        alpha_pos = np.array([[-0.03, -0.065, 0.03], [0.03, -0.065, 0.03]]) + r.normal(0, 0.005, (2, 3))
        alpha_ori = np.array([[0.0, -0.5, 0.85], [0.0, -0.5, 0.85]])
        gain = leadfield(np.concatenate([pos, npos, alpha_pos]), np.concatenate([ori, nori, alpha_ori]))
        ns = len(_SOURCES)
        comps = []
        for _ci, c in enumerate(_COMPONENTS):
            src_idx = np.array([_SOURCE_NAMES.index(s) for s in c["sources"]])
            d = D_LOW + D_SEM
            read = np.r_[np.full(D_LOW, c["w_low"]), np.full(D_SEM, c["w_sem"])]
            # 70% shared brain, 30% individual: the representational geometry is common, the details are not.
            u_sh = shared.normal(0, 1.0, (d, _HIDDEN))
            v_sh = shared.normal(0, 1.0, (_HIDDEN, len(src_idx)))
            u_w = (0.7 * u_sh + 0.3 * r.normal(0, 1.0, (d, _HIDDEN))) * read[:, None] / np.sqrt(d / 3)
            v_w = (0.7 * v_sh + 0.3 * r.normal(0, 1.0, v_sh.shape)) / np.sqrt(_HIDDEN)
            lat_w = shared.normal(0, 1.0, d) * read / np.sqrt(d)
            comps.append(
                dict(
                    src=src_idx,
                    latency=c["latency"] + r.normal(0, 0.008),
                    width=c["width"],
                    base=c["base"] * np.exp(r.normal(0, 0.3, len(src_idx))),
                    mod=c["mod"],
                    u=u_w,
                    b=shared.normal(0, 0.5, _HIDDEN),
                    v=v_w,
                    lat_w=lat_w,
                )
            )
        return dict(
            gain_evoked=gain[:, :ns],
            gain_noise=gain[:, ns : ns + _N_NOISE_SOURCES],
            gain_alpha=gain[:, ns + _N_NOISE_SOURCES :],
            components=comps,
            alpha_freq=r.uniform(9.0, 11.5),
            alpha_amp=_ALPHA_NAM * np.exp(r.normal(0, 0.3)),
            noise_scale=np.exp(r.normal(0, 0.15)),
        )

    # -- signal ---------------------------------------------------------------------------------------------
    def _amplitudes(self, latent: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per component: (moments (n, n_src) in nAm, latency shifts (n,) in s) for each latent row."""
        out = []
        for c in self._params["components"]:
            hidden = np.tanh(latent @ c["u"] + c["b"])
            amp = c["base"] + c["mod"] * (hidden @ c["v"])
            shift = 0.006 * np.tanh(latent @ c["lat_w"])
            out.append((amp, shift))
        return out

    def evoked(
        self, latent: np.ndarray, rng: np.random.Generator | None = None, t0: float = 0.0
    ) -> np.ndarray:
        """Sensor-space evoked responses (n, 63, 250) in uV on 250 samples from ``t0`` seconds. With ``rng``:
        single trials with latency and gain jitter. Without: the expected response over the jitter (the noise-free
        template)."""
        t = TIMES[None, :] + t0
        n = latent.shape[0]
        moments = np.zeros((n, len(_SOURCES), N_TIMES))
        for c, (amp, shift) in zip(self._params["components"], self._amplitudes(latent)):
            lat = c["latency"] + shift
            w = c["width"]
            if rng is None:
                # E[g] E[wave(t - lat - d)] for lognormal g and Gaussian d: a widened, lowered Gaussian.
                w_eff = np.hypot(w, _LATENCY_JITTER)
                wave = (
                    (w / w_eff)
                    * np.exp(-((t - lat[:, None]) ** 2) / (2 * w_eff**2))
                    * np.exp(_GAIN_JITTER**2 / 2)
                )
            else:
                lat = lat + rng.normal(0, _LATENCY_JITTER, n)
                gain = np.exp(rng.normal(0, _GAIN_JITTER, n))
                wave = gain[:, None] * np.exp(-((t - lat[:, None]) ** 2) / (2 * w**2))
            moments[:, c["src"], :] += amp[:, :, None] * wave[:, None, :]
        return np.einsum("cs,nst->nct", self._params["gain_evoked"], moments, optimize=True)

    # -- noise ----------------------------------------------------------------------------------------------
    def noise(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Background activity (n, 63, 250) in uV: 1/f dipoles, alpha, sensor noise."""
        p = self._params
        n_fft = 2 * N_TIMES
        freqs = np.fft.rfftfreq(n_fft, 1 / SFREQ)
        shaping = np.zeros_like(freqs)
        shaping[1:] = 1.0 / np.sqrt(np.maximum(freqs[1:], 1.0))  # 1/f power
        # Unit output variance for unit white input (Parseval over the full two-sided spectrum).
        shaping /= np.sqrt((2 * np.sum(shaping**2) - shaping[0] ** 2 - shaping[-1] ** 2) / n_fft)
        white = rng.standard_normal((n, _N_NOISE_SOURCES, n_fft), dtype=np.float32)
        pink = np.fft.irfft(np.fft.rfft(white, axis=-1) * shaping, n=n_fft, axis=-1)[
            ..., N_TIMES // 2 : N_TIMES // 2 + N_TIMES
        ]
        pink *= _NOISE_NAM
        out = np.einsum("cs,nst->nct", p["gain_noise"], pink, optimize=True)
        # Alpha: two dipoles, random phase per trial, slow amplitude modulation, per-trial frequency wobble.
        f = p["alpha_freq"] + rng.normal(0, 0.3, (n, 1, 1))
        phase = rng.uniform(0, 2 * np.pi, (n, 2, 1))
        env = np.exp(rng.normal(0, 0.5, (n, 2, 1))) * (
            1 + 0.3 * np.sin(2 * np.pi * 1.3 * TIMES + rng.uniform(0, 6.3, (n, 2, 1)))
        )
        alpha = p["alpha_amp"] * env * np.cos(2 * np.pi * f * TIMES + phase) / np.sqrt(2)
        out += np.einsum("cs,nst->nct", p["gain_alpha"], alpha, optimize=True)
        out += rng.normal(0, _SENSOR_UV, out.shape)
        return out * p["noise_scale"]

    @cached_property
    def whitening(self) -> np.ndarray:
        """Sigma^-1/2 of the sensor noise covariance (63 x 63; 17 x 17 in the 100hz layout, of the noise as the
        layout sees it), estimated from 2000 noise-only trials."""
        x = self._to_layout(self.noise(2000, _rng(self.world.seed, 20, self.index)))
        cov = np.einsum("nct,ndt->cd", x, x) / (x.shape[0] * x.shape[2])
        vals, vecs = np.linalg.eigh(cov)
        return (vecs / np.sqrt(vals)) @ vecs.T

    @cached_property
    def temporal_noise_cov(self) -> np.ndarray:
        """Temporal covariance (250 x 250; 100 x 100 in the 100hz layout) of whitened noise, averaged over channels
        (the ceiling's noise model)."""
        noise = self._to_layout(self.noise(1000, _rng(self.world.seed, 21, self.index)))
        x = np.einsum("cd,ndt->nct", self.whitening, noise)
        flat = x.reshape(-1, x.shape[-1])
        return flat.T @ flat / flat.shape[0]

    def trials(self, latent: np.ndarray, n_reps: int, rng: np.random.Generator) -> np.ndarray:
        """Whitened single trials (n_images, n_reps, channels, times) of the layout, float64."""
        rep_latent = np.repeat(latent, n_reps, axis=0)
        x = self.evoked(rep_latent, rng, self._t0) + self.noise(rep_latent.shape[0], rng)
        x = np.einsum("cd,ndt->nct", self.whitening, self._to_layout(x), optimize=True)
        return x.reshape(latent.shape[0], n_reps, *x.shape[1:])

    def templates(self, latent: np.ndarray) -> np.ndarray:
        """Whitened noise-free expected responses (n, channels, times) of the layout."""
        x = self._to_layout(self.evoked(latent, None, self._t0))
        return np.einsum("cd,ndt->nct", self.whitening, x, optimize=True)

    def snr(self, n: int = 400) -> dict[str, float]:
        """Single-trial signal-to-noise ratios in whitened units, from the test latents."""
        lat = self.world.test_latent[:n]
        tmpl = self.templates(lat)
        noise = np.einsum(
            "cd,ndt->nct",
            self.whitening,
            self._to_layout(self.noise(len(lat), _rng(self.world.seed, 22, self.index))),
        )
        image_specific = tmpl - tmpl.mean(axis=0, keepdims=True)
        return {
            "evoked_power_over_noise": float((tmpl**2).mean() / (noise**2).mean()),
            "image_specific_power_over_noise": float((image_specific**2).mean() / (noise**2).mean()),
        }


def ceiling_scores(subject: Subject, queries: np.ndarray) -> np.ndarray:
    """Scores (n_queries, n_test_images) of the ideal decoder: it knows every test image's noise-free template and
    the noise covariance (spatially white after whitening, temporally as estimated), and scores each candidate by
    the Gaussian log-likelihood of the query, i.e. minus the squared Mahalanobis distance."""
    cov = subject.temporal_noise_cov
    vals, vecs = np.linalg.eigh(cov)
    t_white = (vecs / np.sqrt(np.maximum(vals, vals.max() * 1e-8))) @ vecs.T
    tmpl = subject.templates(subject.world.test_latent) @ t_white
    q = np.asarray(queries, dtype=np.float64) @ t_white
    qf, tf = q.reshape(len(q), -1), tmpl.reshape(len(tmpl), -1)
    return -(np.sum(qf**2, 1)[:, None] - 2 * qf @ tf.T + np.sum(tf**2, 1)[None, :])


# --------------------------------------------------------------------------------------------------------------
# Writing the data set
# --------------------------------------------------------------------------------------------------------------


def _write_images(world: World, image_dir: Path, seed: int, progress: bool = True) -> None:
    """Render every image to JPEG in the THINGS folder layout and write ``image_metadata.npy``.

    Large sets are rendered by one worker process per core in fixed batches (same files whatever the core count).
    """
    import os
    from concurrent.futures import ProcessPoolExecutor

    from tqdm.auto import tqdm

    from eegdecode.data.image_set import write_image_metadata

    meta = {}
    jobs = []
    for split, sub in (("train", "training_images"), ("test", "test_images")):
        folders = world.folder_names(split)
        files = world.file_names(split)
        latent = world.train_latent if split == "train" else world.test_latent
        concept_of = world.train_image_concept if split == "train" else world.test_image_concept
        per = world.preset.images_per_concept if split == "train" else 1
        paths = [str(image_dir / sub / folders[i // per] / files[i]) for i in range(len(files))]
        cats = world.concept_cat[concept_of]
        offset = 0 if split == "train" else 10**7
        for start in range(0, len(files), 500):
            sl = slice(start, start + 500)
            seeds = seed * 7919 + offset + np.arange(len(files))[sl]
            jobs.append((latent[sl], cats[sl], paths[sl], world.preset.image_size, seeds))
        key = "train" if split == "train" else "test"
        meta[f"{key}_img_concepts"] = [folders[i // per] for i in range(len(files))]
        meta[f"{key}_img_files"] = files
        meta[f"{key}_img_concepts_THINGS"] = [f"{c + 1:05d}_{world.concept_names[c]}" for c in concept_of]
    n_workers = min(len(jobs), os.cpu_count() or 1)
    bar = tqdm(total=len(jobs), desc="images", disable=not progress, leave=False)
    if n_workers > 1 and len(jobs) > 2:
        with ProcessPoolExecutor(n_workers) as pool:
            for _ in pool.map(_render_batch, jobs):
                bar.update()
    else:
        for job in jobs:
            _render_batch(job)
            bar.update()
    bar.close()
    write_image_metadata(image_dir / "image_metadata.npy", meta)


def _write_gifford_file(path: Path, data: np.ndarray, ch_names: list[str], times: np.ndarray) -> Path:
    """Gifford's 100 Hz release file: ``np.save`` of the dict (read back with ``np.load(...).item()``), atomically."""
    obj = {"preprocessed_eeg_data": data, "ch_names": list(ch_names), "times": np.asarray(times)}
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, np.asarray(obj, dtype=object), allow_pickle=True)
    return path


def write_reference_features(world: World, paths: DatasetPaths, seed: int, image_lists: bool = True) -> None:
    """Write the World's reference image and text embeddings to ``features/reference/`` (feature-store format).

    ``image_lists``: record the digest of each split's image list (the simulated THINGS-EEG2 image set). The
    simulated THINGS-MEG passes False: its images are laid out by ``preprocess meg --copy-images`` later, so the
    list the rows will match is not known here, and a digest of another list would (rightly) be refused.
    """
    from eegdecode.embeddings.store import image_list_digest, save_features

    train_names, test_names = world.relative_names("train"), world.relative_names("test")
    splits = {
        "train": {"image_list_sha256": image_list_digest(train_names)},
        "test": {"image_list_sha256": image_list_digest(test_names)},
    }
    save_features(
        paths.features_dir("reference"),
        {
            "train": (
                world.image_embeddings(world.train_latent),
                world.text_embeddings(world.train_concepts),
            ),
            "test": (world.image_embeddings(world.test_latent), world.text_embeddings(world.test_concepts)),
        },
        {
            "source": "simulator",
            "model": "simulator-reference",
            "seed": seed,
            "splits": splits if image_lists else {},
        },  # fmt: skip
    )


def simulate_dataset(
    out: str | Path,
    preset: str | Preset = "tiny",
    n_subjects: int = 1,
    seed: int = 0,
    dtype: str = "float64",
    overwrite: bool = False,
    write_images: bool = True,
    progress: bool = True,
    on_subject: Callable[[str, Subject, np.ndarray], dict[str, Any] | None] | None = None,
    layout: str = "250hz",
    vision: bool = True,
    vision_variants: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """Write a simulated THINGS-EEG2 data set under ``out`` and return its description (also ``simulation.json``).

    Written: ``Preprocessed_data_250Hz/sub-XX/preprocessed_eeg_{training,test}.npy`` (pickled dicts, float64 by
    default as in the release, float32 on request, the 300-value ``times``) or, with ``layout="100hz"``, Gifford's
    ``preprocessed_data/sub-XX/preprocessed_eeg_{training,test}.npy`` (``np.save`` of the dict, 17 channels, 100
    samples, 100 ``times``); ``image_set/`` (JPEGs and ``image_metadata.npy``), ``features/reference/`` (reference
    embeddings in the feature-store format), ``simulation/latents_{train,test}.npy`` (ground truth) and
    ``simulation.json``. With ``vision`` (default) also the simulated vision model's layers and blur variants as the
    target store ``targets/simulator_vision-*`` and, in ``simulation.json``, which layers the EEG carries
    (:mod:`eegdecode.data.simulate_vision`); ``vision_variants`` the blur variants written (default
    :data:`~eegdecode.data.simulate_vision.VARIANTS`: ``none``, ``ubp``, ``multiblur12``).

    ``on_subject(name, subject, test_data)`` is called with each subject's test array while it is in memory (the
    ``simulate`` command computes the retrieval ceiling there); what it returns is stored in ``simulation.json``.
    """
    from tqdm.auto import tqdm

    check_option("dtype", dtype, ("float64", "float32"))
    check_option("layout", layout, LAYOUTS)
    if vision:
        from eegdecode.data import simulate_vision as sv
        from eegdecode.targets.blur import expand_variants

        vision_variants = expand_variants(vision_variants or sv.VARIANTS)  # a bad name stops here
    preset_name, preset = resolve_preset(preset)
    out = Path(out)
    desc_path = out / "simulation.json"
    if desc_path.exists() and not overwrite:
        raise OutputExistsError(desc_path)
    paths = DatasetPaths(out, layout)
    world = World(preset, seed)
    log.info("simulating THINGS-EEG2 (%s, %d subject(s)) into %s", preset_name, n_subjects, out)
    if write_images:
        _write_images(world, paths.image_set_dir, seed, progress)
    write_reference_features(world, paths, seed)
    if vision:
        store = sv.write_vision_targets(world, out / "targets", vision_variants)
    save_npy(out / "simulation" / "latents_train.npy", world.train_latent.astype(np.float32))
    save_npy(out / "simulation" / "latents_test.npy", world.test_latent.astype(np.float32))

    subjects_info = {}
    probe_eeg = {}
    for s in range(n_subjects):
        subj = Subject(world, s, layout)
        name = subject_name(s + 1)
        n_times = len(TIMES) if layout == "250hz" else len(TIMES_100HZ)
        for split, latent, reps, code in (
            ("train", world.train_latent, preset.n_train_reps, 0),
            ("test", world.test_latent, preset.n_test_reps, 1),
        ):
            data = np.empty((latent.shape[0], reps, len(subj.ch_names), n_times), dtype=dtype)
            starts = range(0, latent.shape[0], CHUNK)
            for k, start in enumerate(
                tqdm(starts, desc=f"{name} {split}", disable=not progress, leave=False)
            ):
                rng = _rng(seed, 30, s, code, k)
                data[start : start + CHUNK] = subj.trials(latent[start : start + CHUNK], reps, rng)
            target = split_file(paths.subject_dir(name), split)
            if layout == "250hz":
                write_preprocessed_file(target, data, subj.ch_names, subj.file_times)
            else:
                _write_gifford_file(target, data, subj.ch_names, subj.file_times)
            if split == "train":
                del data
        subjects_info[name] = {"snr": subj.snr(), "alpha_hz": subj._params["alpha_freq"]}
        if vision:
            probe_eeg[name] = sv.probe_eeg(world.vision, subj)
        if on_subject is not None:
            extra = on_subject(name, subj, data)
            if extra:
                subjects_info[name].update(extra)
        del data
        log.info("%s written (single-trial SNR %s)", name, subjects_info[name]["snr"])

    desc = {
        "format": "eegdecode-simulation/1",
        "eegdecode_version": __version__,
        "preset": preset_name,
        "sizes": asdict(preset),
        "seed": seed,
        "n_subjects": n_subjects,
        "dtype": dtype,
        "layout": layout,
        "sfreq": SFREQ if layout == "250hz" else 100.0,
        "latent_dims": {"low_level": D_LOW, "semantic": D_SEM},
        "components": [{k: c[k] for k in ("name", "latency", "width", "sources")} for c in _COMPONENTS],
        "subjects": subjects_info,
        "note": "Simulated data: not a recording. Scores on it are read against the simulator's ceiling.",
    }
    if vision:
        desc["vision"] = {
            "store": str(store.folder.relative_to(out)),
            "backbone": f"simulator:{sv.BACKBONE_NAME}",
            "pooling": sv.POOLING,
            "variants": list(store.meta()["variants"]),
            **world.vision.parameters(),
            "latent_r2": sv.latent_r2(world.vision),
            "ground_truth": sv.ground_truth(world.vision, probe_eeg),
        }
    write_json(desc_path, desc)
    return desc


def load_simulation(root: str | Path) -> tuple[World, dict[str, Any]]:
    """Rebuild the World of a simulated data set from its ``simulation.json`` (everything is seeded).

    Its subjects are ``Subject(world, i, desc.get("layout", "250hz"))``.
    """
    from eegdecode.io import read_json

    desc = read_json(Path(root) / "simulation.json")
    return World(Preset(**desc["sizes"]), int(desc["seed"])), desc
