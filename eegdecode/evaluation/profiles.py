"""Where and when a trained encoder finds its information: test accuracy under occlusion in time and space.

For every test subject of a run, the test queries (repetitions averaged, as in the run's own evaluation) are
scored against the test-image gallery with parts of the signal replaced by the **grand average over test images**
(the same value for every query, so it carries no information about which image was seen while keeping the
signal in its usual range):

- temporal, *keep*: only a sliding window of ``window`` seconds is kept (everything else replaced);
- temporal, *mask*: the window is replaced and the rest kept;
- spatial: one channel replaced at a time (the accuracy drop is the channel's importance), and per region
  (frontal, central, parietal, temporal, occipital; CTF-style MEG names by their lobe letter), masked and kept.

The measure is the 2-way accuracy over **all** pairs, ``mean_i (n - rank_i) / (n - 1)`` with the conservative tie
rule of :mod:`eegdecode.evaluation.kway` (the expectation of the drawn 2-way score without its draw noise), with its
standard error over queries (``pairwise_se``); the seeded k-way top-1 at every standard k is kept too. Occlusion maps of this kind follow the sensitivity analyses
of Zeiler and Fergus, "Visualizing and understanding convolutional networks" (ECCV 2014), and the time-resolved
and channel-wise analyses of Song et al., "Decoding natural images from EEG for object recognition" (NICE,
ICLR 2024).

The result is written to ``<run>/profiles.json`` (format ``eegdecode-profiles/1``, read by
:func:`eegdecode.formats.read_profiles`) and is model-agnostic: any encoder that ``load_run`` rebuilds, the ridge
baseline included.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from eegdecode import formats
from eegdecode.data.channels import REGIONS
from eegdecode.errors import DataFormatError, MissingFileError, OutputExistsError
from eegdecode.evaluation.kway import kway_accuracy, standard_ks
from eegdecode.io import write_json

log = logging.getLogger(__name__)

MEASURE = "2-way accuracy over all pairs, mean_i (n - rank_i) / (n - 1); ties count against the true image"
FILL = "grand average over test images (the same for every query)"
_CTF_LOBES = {"F": "frontal", "C": "central", "P": "parietal", "O": "occipital", "T": "temporal"}


def channel_region(name: str) -> str | None:
    """Region of a channel: the THINGS-EEG2 regions for EEG names, the lobe letter for CTF MEG (``MLO11-...``)."""
    for region, names in REGIONS.items():
        if name in names:
            return region
    if len(name) >= 3 and name[0] == "M" and name[1] in "LRZ":
        return _CTF_LOBES.get(name[2])
    return None


def _score(
    emb: np.ndarray, gallery: np.ndarray, ks: tuple[int, ...], n_draws: int, seed: int
) -> dict[str, Any]:
    res = kway_accuracy(emb, gallery, ks=ks, n_draws=n_draws, seed=seed, topk=(1,))
    n = len(emb)
    per_query = (n - res.full_rank) / (n - 1)
    return {"pairwise": float(per_query.mean()), "pairwise_se": float(per_query.std(ddof=1) / np.sqrt(n)),
            "top1": {str(k): res.scores[k].top1_mean for k in ks}}  # fmt: skip


def _settings(window: float, step: float, n_draws: int, checkpoint: str) -> dict[str, Any]:
    return {"window_s": window, "step_s": step, "n_draws": n_draws, "checkpoint": checkpoint}


def compute_profiles(
    run_dir: str | Path,
    *,
    data_root: str | Path | None = None,
    checkpoint: str = "best",
    device: str = "auto",
    window: float = 0.05,
    step: float = 0.025,
    n_draws: int = 20,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Temporal and spatial occlusion profiles of one run; written to ``<run>/profiles.json`` and returned.

    Parameters
    ----------
    run_dir : path
        A finished run folder (``config.json``, ``checkpoints/``).
    data_root : path, optional
        Where the data set is; default the ``data_root`` recorded in ``config.json``.
    checkpoint : str
        Which checkpoint to load (``best``: the one selected on validation).
    device : str
        Torch device of the forward passes (``auto``: the GPU if there is one).
    window, step : float
        Width and hop of the sliding window, in seconds.
    n_draws : int
        Distractor draws of the k-way scores kept beside the all-pairs measure.
    overwrite : bool
        Recompute when ``profiles.json`` exists with other settings (the same settings reuse the file).

    Raises
    ------
    MissingFileError
        If the run's data root (or cache) is not there.
    OutputExistsError
        If ``profiles.json`` exists with other settings and ``overwrite`` is False.
    """
    from eegdecode.data.datasets import SubjectData, averaged_eeg
    from eegdecode.data.paths import DatasetPaths
    from eegdecode.devices import resolve_device
    from eegdecode.embeddings.store import load_features
    from eegdecode.training.trainer import embed, load_run

    run_dir = Path(run_dir)
    out = run_dir / formats.PROFILES_NAME
    settings = _settings(window, step, n_draws, checkpoint)
    if out.exists():
        old = formats.read_profiles(run_dir)
        if old["settings"] == settings and not overwrite:
            return old
        if not overwrite:
            raise OutputExistsError(out, "--overwrite (recompute with the new settings)")
    if window <= 0 or step <= 0:
        raise ValueError(f"window and step must be positive seconds; found window={window}, step={step}")

    t_start = time.perf_counter()
    dev = resolve_device(device)
    resolved, cfg, fold, model, info = load_run(run_dir, checkpoint, dev)
    root = Path(data_root) if data_root is not None else Path(resolved["data_root"])
    if not root.is_dir():
        raise MissingFileError(root, "the run's data root (pass --data-root to point at the data set)")
    paths = DatasetPaths(root, resolved.get("release", "250hz"))
    feats_dir = Path(cfg.features) if Path(cfg.features).is_dir() else paths.features_dir(cfg.features)
    gallery = np.asarray(load_features(feats_dir, "test").image, dtype=np.float32)
    subjects = {}
    for name in fold.test_subjects:
        subj = SubjectData.open(paths, name, cfg.data)
        queries = np.asarray(averaged_eeg(subj, "test", n_reps=cfg.data.test_reps), dtype=np.float32)
        if len(queries) != len(gallery):
            raise DataFormatError(
                feats_dir, "test features disagree with the test EEG", len(queries), len(gallery)
            )
        n, n_chans, n_times = queries.shape
        ks = standard_ks(n)
        fill = np.broadcast_to(queries.mean(axis=0, keepdims=True), queries.shape)
        layer = fold.subject_layer.get(name, 0)

        def score(x: np.ndarray) -> dict[str, Any]:
            return _score(embed(model, x, layer, dev), gallery, ks, n_draws, cfg.seed)  # noqa: B023

        baseline = score(queries)
        times = np.asarray(subj.times, dtype=np.float64)
        sfreq = float(1.0 / np.median(np.diff(times))) if times.size > 1 else 1.0
        width = max(1, int(round(window * sfreq)))
        hop = max(1, int(round(step * sfreq)))
        temporal = []
        for a in range(0, max(1, n_times - width + 1), hop):
            b = min(n_times, a + width)
            keep = fill.copy()
            keep[..., a:b] = queries[..., a:b]
            masked = queries.copy()
            masked[..., a:b] = fill[..., a:b]
            temporal.append({"start": float(times[a]), "stop": float(times[b - 1] + 1.0 / sfreq),
                             "centre": float((times[a] + times[b - 1]) / 2), "keep": score(keep),
                             "mask": score(masked)})  # fmt: skip
        masked_channels = []
        for c in range(n_chans):
            x = queries.copy()
            x[:, c] = fill[:, c]
            masked_channels.append(score(x))
        regions: dict[str, Any] = {}
        ch_names = list(subj.ch_names)
        for region in ("frontal", "central", "parietal", "temporal", "occipital"):
            idx = [i for i, ch in enumerate(ch_names) if channel_region(ch) == region]
            if not idx or len(idx) == n_chans:
                continue
            masked = queries.copy()
            masked[:, idx] = fill[:, idx]
            keep = fill.copy()
            keep[:, idx] = queries[:, idx]
            regions[region] = {"n_channels": len(idx), "mask": score(masked), "keep": score(keep)}
        subjects[name] = {
            "n_queries": n, "ks": list(ks), "baseline": baseline, "sfreq": sfreq,
            "times": {"start": float(times[0]), "stop": float(times[-1] + 1.0 / sfreq)},
            "temporal": temporal,
            "spatial": {"channels": ch_names, "masked": masked_channels},
            "regions": regions,
        }  # fmt: skip
        log.info(
            "%s %s: profiles of %d windows and %d channels", resolved["model"], name, len(temporal), n_chans
        )

    simulation = formats.read_simulation(root)
    result = {
        "format": formats.PROFILES_FORMAT,
        "model": resolved["model"],
        "run": str(run_dir),
        "protocol": fold.protocol,
        "fold": fold.name,
        "seed": cfg.seed,
        "target": cfg.features,
        "measure": MEASURE,
        "fill": FILL,
        "settings": settings,
        "checkpoint_epoch": info.get("epoch") if isinstance(info, dict) else None,
        "simulated": simulation is not None,
        "components": [] if simulation is None else [
            {"name": c["name"], "latency": float(c["latency"]), "sources": list(c.get("sources", []))}
            for c in simulation.get("components", [])
        ],
        "seconds": round(time.perf_counter() - t_start, 2),
        "subjects": subjects,
    }  # fmt: skip
    write_json(out, result)
    return result


def peak_window(profile: dict[str, Any], subject: str, kind: str = "keep") -> dict[str, Any]:
    """The window with the highest score (``keep``) or the largest drop (``mask``) of one subject."""
    rows = profile["subjects"][subject]["temporal"]
    values = [r[kind]["pairwise"] for r in rows]
    return rows[int(np.argmax(values) if kind == "keep" else np.argmin(values))]


def channel_importance(profile: dict[str, Any], subject: str | None = None) -> dict[str, float]:
    """Accuracy drop per channel (baseline minus masked), averaged over subjects unless one is named."""
    names = [subject] if subject is not None else list(profile["subjects"])
    drops: dict[str, list[float]] = {}
    for name in names:
        sub = profile["subjects"][name]
        base = sub["baseline"]["pairwise"]
        for ch, masked in zip(sub["spatial"]["channels"], sub["spatial"]["masked"]):
            drops.setdefault(ch, []).append(base - masked["pairwise"])
    return {ch: float(np.mean(v)) for ch, v in drops.items()}
