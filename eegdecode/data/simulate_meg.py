"""A small simulated THINGS-MEG (OpenNeuro ds004212): the official epochs derivative and, on request, the raw BIDS runs.

Built on :mod:`eegdecode.data.simulate` (same World latents, same Subject component model). The 12 cortical sources
drive 271 radial magnetometers on a helmet-shaped sphere cap (CTF-like count and names; the radial field of a dipole
in a spherical conductor depends on the primary current only, so it is computed exactly from Biot-Savart), plus 48
background dipoles with 1/f time courses and sensor noise. As in the official derivative, epochs are -100 ... 1300 ms
at 200 Hz (281 samples), z-scored against the baseline, and saved as a real ``.fif`` through MNE::

    <root>/derivatives/preprocessed/preprocessed_P1-epo.fif   (+ -epo-1.fif ... when larger than ``split_size``)
    <root>/sourcedata/image_concept_index.csv        one 1-based concept index per THINGS image (no header)
    <root>/sourcedata/image_paths.csv                one image path per THINGS image (no header)
    <root>/images/<concept>/<file>.jpg               THINGS images (written with ``write_images``)
    <root>/features/reference/                       reference embeddings in ATM's training/test order

With ``write_raw`` the trials are laid out as continuous runs (one image every 1.3-1.7 s, as in THINGS-MEG) and
written through ``mne_bids.write_raw_bids``::

    <root>/sub-BIGMEG1/ses-01/meg/sub-BIGMEG1_ses-01_task-main_run-01_meg.fif    + _events.tsv, _channels.tsv, ...

The real runs are CTF ``.ds`` folders; MNE cannot write CTF, so the simulated runs are FIF (BIDS allows FIF for MEG)
and both are read by the same ``mne_bids.read_raw_bids``. Each run has the 271 sensors, the malfunctioning
``MRO11-1609`` (broadband junk, to be dropped) and the trigger channel ``UPPT001`` (value 64, sent 20 ms before the
image appears, as a projector lags its trigger); ``events.tsv`` holds the photodiode-timed onsets (``onset``,
``sample``), ``trial_type`` (exp / test / catch) and ``value`` (the image code, ``n/a`` for catch trials), as in
ds004212. The continuous signal has no power outside 0.5-30 Hz, so the official 0.1-40 Hz band-pass leaves it
(almost) unchanged, and the derivative is then cut from that same recording exactly as the official pipeline does
without its filter (epoch, z-score against -100 ... 0 ms at the recording rate, keep every ``rate/200``-th sample):
it is the ground truth the raw route has to reproduce. ``raw_sfreq`` must be a multiple of 200 Hz (1200 Hz like the
real recordings; the tests use 600 Hz for speed).

Design (THINGS-MEG): every concept has ``images_per_concept`` images shown once; each test concept also has one test
image shown ``n_test_reps`` times; catch trials are coded 999999. Event codes are 1-based THINGS image indices.
"""

from __future__ import annotations

import warnings
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
BIDS_TASK = "main"
BAD_CHANNEL = "MRO11-1609"
TRIGGER_CHANNEL, TRIGGER_VALUE = "UPPT001", 64
TRIGGER_LEAD = 0.020  # s between the trigger and the photodiode-timed onset
_SOA = (1.3, 1.7)  # s: 500 ms image + 1000 +- 200 ms fixation
# Hz: the continuous signal's band, with cosine tapers 0.3-0.6 and 25-32 Hz
_BAND = (0.3, 0.6, 25.0, 32.0)


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


def _band_noise(
    rng: np.random.Generator, n_rows: int, n_samples: int, sfreq: float, pink: bool
) -> np.ndarray:
    """Unit-variance noise (n_rows, n_samples) with all its power inside ``_BAND``; ``pink``: 1/f power."""
    freqs = np.fft.rfftfreq(n_samples, 1 / sfreq)
    lo0, lo1, hi0, hi1 = _BAND
    rise = np.clip((freqs - lo0) / (lo1 - lo0), 0, 1)
    fall = np.clip((hi1 - freqs) / (hi1 - hi0), 0, 1)
    shaping = np.sin(np.pi / 2 * rise) ** 2 * np.sin(np.pi / 2 * fall) ** 2
    if pink:
        shaping = shaping / np.sqrt(np.maximum(freqs, lo0))
    shaping /= np.sqrt(np.mean(shaping**2))
    spectrum = np.fft.rfft(rng.standard_normal((n_rows, n_samples)), axis=-1) * shaping
    return np.fft.irfft(spectrum, n=n_samples, axis=-1)


def _epoch_data(
    subject: Subject,
    trial_latent: np.ndarray,
    times: np.ndarray,
    gain: np.ndarray,
    gain_noise: np.ndarray,
    r: np.random.Generator,
) -> np.ndarray:
    """Derivative-only data: every epoch simulated on its own at 200 Hz, z-scored against its baseline."""
    n_t = times.size
    data = np.empty((trial_latent.shape[0], N_SENSORS, n_t), dtype=np.float32)
    freqs = np.fft.rfftfreq(2 * n_t, 1 / MEG_SFREQ)
    shaping = np.where(freqs > 0, 1 / np.sqrt(np.maximum(freqs, 1.0)), 0.0)
    shaping /= np.sqrt(np.mean(shaping**2))
    for start in range(0, trial_latent.shape[0], 64):
        sl = slice(start, start + 64)
        m = _moments(subject, trial_latent[sl], times, r)
        white = r.standard_normal((m.shape[0], 48, 2 * n_t))
        pink = np.fft.irfft(np.fft.rfft(white, axis=-1) * shaping, n=2 * n_t, axis=-1)[..., :n_t] * 12.0
        x = np.einsum("cs,nst->nct", gain, m) + np.einsum("cs,nst->nct", gain_noise, pink)
        x += r.normal(0, _SENSOR_FT, x.shape)
        base = x[..., times <= 0]
        data[sl] = (x - base.mean(-1, keepdims=True)) / base.std(-1, keepdims=True)  # the official z-scoring
    return data


def _write_raw_runs(
    out: Path,
    participant: int,
    subject: Subject,
    codes: np.ndarray,
    kinds: np.ndarray,
    trial_latent: np.ndarray,
    gain: np.ndarray,
    gain_noise: np.ndarray,
    n_sessions: int,
    runs_per_session: int,
    sfreq: float,
    r: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Write the trials as continuous BIDS runs; returns the derivative cut from them (n, 271, 281) and its samples.

    The trials keep their order: run 1 of session 1 holds the first ones, the last run of the last session the last.
    """
    import mne
    from mne_bids import BIDSPath, write_raw_bids

    decim = int(round(sfreq / MEG_SFREQ))
    # epoch samples around an onset
    rel = np.arange(int(round(MEG_TMIN * sfreq)), int(round(MEG_TMAX * sfreq)) + 1)
    rel_times = rel / sfreq
    names = sensor_names()
    bad_at = 150  # the malfunctioning channel sits among the sensors, as in the CTF channel list
    ch_names = [*names[:bad_at], BAD_CHANNEL, *names[bad_at:], TRIGGER_CHANNEL]
    info = mne.create_info(ch_names, sfreq, ["mag"] * (N_SENSORS + 1) + ["stim"])
    info["line_freq"] = 60.0  # NIH, Bethesda
    lead = int(round(TRIGGER_LEAD * sfreq))
    derivative = np.empty((codes.size, N_SENSORS, rel[::decim].size), dtype=np.float32)
    samples = np.empty(codes.size, dtype=np.int64)
    offset = 0
    chunks = np.array_split(np.arange(codes.size), n_sessions * runs_per_session)
    for k, trials in enumerate(chunks):
        session, run = k // runs_per_session + 1, k % runs_per_session + 1
        soa = r.uniform(*_SOA, trials.size)
        onset = np.round((1.0 + np.concatenate([[0.0], np.cumsum(soa[:-1])])) * sfreq).astype(np.int64)
        n_samples = int(onset[-1] + rel[-1] + sfreq)  # 1 s lead-in, 1 s after the last epoch
        moments = np.zeros((len(_SOURCES), n_samples))
        for i, m in zip(onset, _moments(subject, trial_latent[trials], rel_times, r)):
            moments[:, i + rel] += m
        background = _band_noise(r, 48, n_samples, sfreq, pink=True) * 12.0
        sensor_noise = _band_noise(r, N_SENSORS, n_samples, sfreq, pink=False) * _SENSOR_FT
        x = gain @ moments + gain_noise @ background + sensor_noise
        # the malfunctioning sensor: broadband noise 40 x the others and a 20 pT drift
        junk = r.normal(0, 40 * _SENSOR_FT, n_samples) + np.linspace(0, 2e4, n_samples)
        trigger = np.zeros(n_samples)
        for i in onset - lead:
            trigger[i : i + max(1, int(round(0.01 * sfreq)))] = TRIGGER_VALUE
        raw_data = np.concatenate([x[:bad_at], junk[None], x[bad_at:]]) * 1e-15  # fT -> T
        raw = mne.io.RawArray(np.concatenate([raw_data, trigger[None]]), info, verbose=False)
        bids_path = BIDSPath(subject=f"BIGMEG{participant}", session=f"{session:02d}", task=BIDS_TASK,
                             run=f"{run:02d}", datatype="meg", root=out)  # fmt: skip
        with warnings.catch_warnings():  # the events.tsv is written below, in ds004212's own columns
            warnings.filterwarnings("ignore", message="No events found or provided")
            write_raw_bids(raw, bids_path, format="FIF", allow_preload=True, overwrite=True, verbose=False)
        rows = ["onset\tduration\ttrial_type\tvalue\tsample"]
        for i, code, kind in zip(onset, codes[trials], kinds[trials]):
            value = "n/a" if kind == "catch" else str(code)
            rows.append(f"{i / sfreq:.6f}\t0.5\t{kind}\t{value}\t{i}")
        events_tsv = bids_path.copy().update(suffix="events", extension=".tsv").fpath
        with atomic_path(events_tsv) as tmp:
            tmp.write_text("\n".join(rows) + "\n")
        epochs = x[:, onset[:, None] + rel[None, :]].transpose(1, 0, 2)  # (n, 271, t) at the recording rate
        base = epochs[..., rel_times <= 0]
        z = (epochs - base.mean(-1, keepdims=True)) / base.std(-1, keepdims=True)
        derivative[trials] = z[..., ::decim]
        samples[trials] = offset + onset
        offset += n_samples
    return derivative, samples


def simulate_meg_dataset(
    out: str | Path,
    preset: Preset,
    participant: int = 1,
    seed: int = 0,
    write_images: bool = False,
    write_raw: bool = False,
    n_sessions: int = 2,
    runs_per_session: int = 2,
    raw_sfreq: float = 1200.0,
    split_size: str = "2GB",
) -> dict[str, Any]:
    """Write a THINGS-MEG-shaped data set for one participant (``P{participant}``); returns its description.

    Parameters
    ----------
    out
        Folder to write (the ds004212 root).
    preset
        Sizes of the design (concepts, images per concept, test repetitions).
    participant, seed
        ``P{participant}`` / ``sub-BIGMEG{participant}``; the same seed gives the same files.
    write_images
        Render the THINGS images under ``images/``.
    write_raw
        Also write the raw BIDS runs (``n_sessions`` x ``runs_per_session`` at ``raw_sfreq``, a multiple of 200 Hz);
        the derivative is then cut from those runs (see the module description).
    split_size
        ``Epochs.save``'s split size: a smaller value splits the derivative into ``-epo.fif``, ``-epo-1.fif`` ...
    """
    import mne

    out = Path(out)
    if write_raw:
        decim = raw_sfreq / MEG_SFREQ
        if raw_sfreq <= 0 or abs(decim - round(decim)) > 1e-9:
            raise ValueError(
                f"Invalid value for raw_sfreq: {raw_sfreq!r}; allowed values are multiples of 200 Hz"
            )
        if n_sessions < 1 or runs_per_session < 1:
            raise ValueError(
                f"Invalid n_sessions/runs_per_session: {n_sessions}/{runs_per_session}; allowed values are >= 1"
            )
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
            kinds.append("exp")
        if c in test_pos:
            latents.append(world.test_latent[test_pos[c]])
            paths.append(f"images/{name}/{name}_{preset.images_per_concept + 1:02d}s.jpg")
            concept_index.append(c + 1)
            kinds.append("test")
    latents = np.asarray(latents)
    kinds = np.asarray(kinds)
    codes = np.concatenate(
        [
            np.flatnonzero(kinds == "exp") + 1,
            np.repeat(np.flatnonzero(kinds == "test") + 1, preset.n_test_reps),
        ]
    )
    n_catch = max(1, codes.size // 10)
    codes = np.concatenate([codes, np.full(n_catch, CATCH_CODE)])
    codes = codes[r.permutation(codes.size)]
    trial_latent = latents[np.where(codes == CATCH_CODE, 1, codes) - 1]
    trial_kind = np.where(codes == CATCH_CODE, "catch", kinds[np.where(codes == CATCH_CODE, 1, codes) - 1])

    times = np.round(np.arange(int(round((MEG_TMAX - MEG_TMIN) * MEG_SFREQ)) + 1) / MEG_SFREQ + MEG_TMIN, 6)
    # the raw runs use their own random stream: the derivative-only data set is the same as without this option
    if write_raw:
        data, samples = _write_raw_runs(out, participant, subject, codes, trial_kind, trial_latent, gain, gain_noise,
                                        n_sessions, runs_per_session, raw_sfreq, _rng(seed, 62, participant))  # fmt: skip
    else:
        data = _epoch_data(subject, trial_latent, times, gain, gain_noise, r)
        samples = np.arange(codes.size) * 300

    info = mne.create_info(sensor_names(), MEG_SFREQ, "mag")
    events = np.stack([samples, np.zeros(codes.size, int), codes], axis=1)
    epochs = mne.EpochsArray(data, info, events=events, tmin=MEG_TMIN, baseline=None, verbose=False)
    fif = out / "derivatives" / "preprocessed" / f"preprocessed_P{participant}-epo.fif"
    fif.parent.mkdir(parents=True, exist_ok=True)
    epochs.save(fif, overwrite=True, split_size=split_size, verbose=False)
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
    write_reference_features(world, DatasetPaths(out), seed, image_lists=False)
    desc = {"format": "eegdecode-simulation-meg/1", "participant": participant, "n_epochs": int(codes.size),
            "n_catch": n_catch, "n_sensors": N_SENSORS, "times": [float(times[0]), float(times[-1])],
            "derivative_files": len(list(fif.parent.glob(f"preprocessed_P{participant}-epo*.fif"))),
            "note": "Simulated THINGS-MEG: not a recording."}  # fmt: skip
    if write_raw:
        desc["raw"] = {"sessions": n_sessions, "runs_per_session": runs_per_session, "sfreq": raw_sfreq,
                       "format": "FIF (the real runs are CTF .ds)", "bad_channel": BAD_CHANNEL,
                       "trigger": [TRIGGER_CHANNEL, TRIGGER_VALUE], "trigger_lead_s": TRIGGER_LEAD,
                       "band_hz": [_BAND[0], _BAND[3]]}  # fmt: skip
    write_json(out / "simulation_meg.json", desc)
    return desc
