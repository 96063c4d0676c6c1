"""A small simulated THINGS-MEG (OpenNeuro ds004212) in the official derivative layout, for the MEG route's tests.

Built on :mod:`eegdecode.data.simulate` (same World latents, same Subject component model). The 12 cortical sources
drive 271 radial magnetometers on a helmet-shaped sphere cap (CTF-like count and names; the radial field of a dipole
in a spherical conductor depends on the primary current only, so it is computed exactly from Biot-Savart), plus 48
background dipoles with 1/f time courses and sensor noise. As in the official derivative, epochs are -100 ... 1300 ms
at 200 Hz (281 samples), z-scored against the baseline, and saved as a real ``.fif`` through MNE::

    <root>/derivatives/preprocessed/preprocessed_P1-epo.fif
    <root>/sourcedata/image_concept_index.csv        one 1-based concept index per THINGS image (no header)
    <root>/sourcedata/image_paths.csv                one image path per THINGS image (no header)
    <root>/images/<concept>/<file>.jpg               THINGS images (written with ``write_images``)
    <root>/features/reference/                       reference embeddings in ATM's training/test order

Design (THINGS-MEG): every concept has ``images_per_concept`` images shown once; each test concept also has one test
image shown ``n_test_reps`` times; catch trials are coded 999999. Event codes are 1-based THINGS image indices.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from eegdecode.data.paths import DatasetPaths
from eegdecode.data.simulate import _SOURCES, Preset, Subject, World, _rng, write_reference_features
from eegdecode.io import atomic_path, write_json

MEG_SFREQ = 200.0
MEG_TMIN, MEG_TMAX = -0.1, 1.3
CATCH_CODE = 999999
N_SENSORS = 271
_MU0_4PI = 1e-7
_SENSOR_FT = 20.0  # sensor noise, fT


def sensor_positions(n: int = N_SENSORS, radius: float = 0.12) -> np.ndarray:
    """Points spread evenly over a helmet-like cap (above z = -0.3 r), in metres."""
    k = np.arange(n) + 0.5
    z = 1 - k / n * 1.3  # cos(theta) from 1 down to -0.3
    phi = np.pi * (1 + 5**0.5) * k
    rho = np.sqrt(1 - z**2)
    return radius * np.stack([rho * np.cos(phi), rho * np.sin(phi), z], axis=1)


def radial_gain(sensors: np.ndarray, positions: np.ndarray, orientations: np.ndarray) -> np.ndarray:
    """Radial field (T per A m) at ``sensors`` of unit dipoles: ``mu0/4pi * (q x (r - r0)) . n / |r - r0|^3``."""
    normal = sensors / np.linalg.norm(sensors, axis=1, keepdims=True)
    d = sensors[:, None, :] - positions[None, :, :]
    cross = np.cross(orientations[None, :, :], d)
    return _MU0_4PI * np.einsum("csk,ck->cs", cross, normal) / np.linalg.norm(d, axis=2) ** 3


def sensor_names(n: int = N_SENSORS) -> list[str]:
    """CTF-style names (``MLC11-1609`` ...): left/right/midline by position, a running number."""
    pos = sensor_positions(n)
    side = np.where(pos[:, 0] < -0.01, "L", np.where(pos[:, 0] > 0.01, "R", "Z"))
    return [f"M{s}{'FCPOT'[i % 5]}{i:02d}-1609" for i, s in enumerate(side)]


def _moments(subject: Subject, latent: np.ndarray, times: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Source moments (n, 12, n_times) in nAm from the Subject's component model, with per-trial jitter."""
    from eegdecode.data.simulate import _GAIN_JITTER, _LATENCY_JITTER

    n = latent.shape[0]
    out = np.zeros((n, len(_SOURCES), times.size))
    for c, (amp, shift) in zip(subject._params["components"], subject._amplitudes(latent)):
        lat = c["latency"] + shift + rng.normal(0, _LATENCY_JITTER, n)
        gain = np.exp(rng.normal(0, _GAIN_JITTER, n))
        wave = gain[:, None] * np.exp(-((times[None, :] - lat[:, None]) ** 2) / (2 * c["width"] ** 2))
        out[:, c["src"], :] += amp[:, :, None] * wave[:, None, :]
    return out


def simulate_meg_dataset(
    out: str | Path, preset: Preset, participant: int = 1, seed: int = 0, write_images: bool = False
) -> dict[str, Any]:
    """Write a THINGS-MEG-shaped data set for one participant (``P{participant}``); returns its description."""
    import mne

    out = Path(out)
    world = World(preset, seed)
    subject = Subject(world, participant - 1)
    r = _rng(seed, 60, participant)
    pos = np.array([p for p, _ in _SOURCES.values()]) + r.normal(0, 0.004, (len(_SOURCES), 3))
    ori = np.array([o for _, o in _SOURCES.values()], dtype=float)
    ori /= np.linalg.norm(ori, axis=1, keepdims=True)
    npos = r.normal(size=(48, 3))
    npos = npos / np.linalg.norm(npos, axis=1, keepdims=True) * r.uniform(0.03, 0.07, (48, 1))
    nori = r.normal(size=(48, 3))
    nori /= np.linalg.norm(nori, axis=1, keepdims=True)
    sensors = sensor_positions()
    gain = radial_gain(sensors, pos, ori) * 1e-9 * 1e15  # fT per nAm
    gain_noise = radial_gain(sensors, npos, nori) * 1e-9 * 1e15

    # THINGS image list: per concept its images (test concepts: the training-like images, then the test image).
    paths, concept_index, latents, kinds = [], [], [], []
    train_pos = {c: i for i, c in enumerate(world.train_concepts)}
    test_pos = {c: i for i, c in enumerate(world.test_concepts)}
    rl = _rng(seed, 61)
    for c in range(len(world.concept_names)):
        name = world.concept_names[c]
        for k in range(preset.images_per_concept):
            if c in train_pos:
                latents.append(world.train_latent[train_pos[c] * preset.images_per_concept + k])
            else:
                latents.append(world.concept_latent[c] + rl.normal(0, 0.35, world.concept_latent.shape[1]))
            paths.append(f"images/{name}/{name}_{k + 1:02d}b.jpg")
            concept_index.append(c + 1)
            kinds.append("train")
        if c in test_pos:
            latents.append(world.test_latent[test_pos[c]])
            paths.append(f"images/{name}/{name}_{preset.images_per_concept + 1:02d}s.jpg")
            concept_index.append(c + 1)
            kinds.append("test")
    latents = np.asarray(latents)
    kinds = np.asarray(kinds)
    codes = np.concatenate(
        [
            np.flatnonzero(kinds == "train") + 1,
            np.repeat(np.flatnonzero(kinds == "test") + 1, preset.n_test_reps),
        ]
    )
    n_catch = max(1, codes.size // 10)
    codes = np.concatenate([codes, np.full(n_catch, CATCH_CODE)])
    codes = codes[r.permutation(codes.size)]
    trial_latent = latents[np.where(codes == CATCH_CODE, 1, codes) - 1]

    times = np.round(np.arange(int(round((MEG_TMAX - MEG_TMIN) * MEG_SFREQ)) + 1) / MEG_SFREQ + MEG_TMIN, 6)
    n_t = times.size
    data = np.empty((codes.size, N_SENSORS, n_t), dtype=np.float32)
    freqs = np.fft.rfftfreq(2 * n_t, 1 / MEG_SFREQ)
    shaping = np.where(freqs > 0, 1 / np.sqrt(np.maximum(freqs, 1.0)), 0.0)
    shaping /= np.sqrt(np.mean(shaping**2))
    for start in range(0, codes.size, 64):
        sl = slice(start, start + 64)
        m = _moments(subject, trial_latent[sl], times, r)
        white = r.standard_normal((m.shape[0], 48, 2 * n_t))
        pink = np.fft.irfft(np.fft.rfft(white, axis=-1) * shaping, n=2 * n_t, axis=-1)[..., :n_t] * 12.0
        x = np.einsum("cs,nst->nct", gain, m) + np.einsum("cs,nst->nct", gain_noise, pink)
        x += r.normal(0, _SENSOR_FT, x.shape)
        base = x[..., times <= 0]
        data[sl] = (x - base.mean(-1, keepdims=True)) / base.std(-1, keepdims=True)  # the official z-scoring

    info = mne.create_info(sensor_names(), MEG_SFREQ, "mag")
    events = np.stack([np.arange(codes.size) * 300, np.zeros(codes.size, int), codes], axis=1)
    epochs = mne.EpochsArray(data, info, events=events, tmin=MEG_TMIN, baseline=None, verbose=False)
    fif = out / "derivatives" / "preprocessed" / f"preprocessed_P{participant}-epo.fif"
    fif.parent.mkdir(parents=True, exist_ok=True)
    epochs.save(fif, overwrite=True, verbose=False)
    src = out / "sourcedata"
    src.mkdir(parents=True, exist_ok=True)
    with atomic_path(src / "image_concept_index.csv") as tmp:
        tmp.write_text("".join(f"{c}\n" for c in concept_index))
    with atomic_path(src / "image_paths.csv") as tmp:
        tmp.write_text("".join(f"{p}\n" for p in paths))
    if write_images:
        from eegdecode.data.simulate import _render_batch

        cats = world.concept_cat[np.asarray(concept_index) - 1]
        _render_batch(
            (
                latents,
                cats,
                [str(out / p) for p in paths],
                preset.image_size,
                seed * 7919 + np.arange(len(paths)),
            )
        )
    write_reference_features(world, DatasetPaths(out), seed)
    desc = {"format": "eegdecode-simulation-meg/1", "participant": participant, "n_epochs": int(codes.size),
            "n_catch": n_catch, "n_sensors": N_SENSORS, "times": [float(times[0]), float(times[-1])],
            "note": "Simulated THINGS-MEG: not a recording."}  # fmt: skip
    write_json(out / "simulation_meg.json", desc)
    return desc
