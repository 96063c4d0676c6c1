"""THINGS-EEG2 preprocessing: raw recordings -> the preprocessed release layout and the cache.

The steps of Gifford et al. (2022) as re-run by NICE/ATM for the 250 Hz release (reference notes: seed codebase 7.1,
data formats A.2-A.3), per subject:

1. read each session's recording: the THINGS raw release (``raw_data/sub-XX/ses-YY/raw_eeg_{training,test}.npy``,
   a pickled dict with a ``stim`` channel, 1000 Hz) or a BrainVision file (``.vhdr``, conditions as
   ``Stimulus/S<code>`` markers), read with MNE;
2. events from the stim channel (or the markers); target trials (code 99999) dropped; codes checked (unknown or
   duplicated events are errors);
3. channels picked in the fixed 63-channel order (``250hz``) or by Gifford's pattern ``^O *|^P *`` (``100hz``, 17
   channels in file order);
4. epochs -0.2 ... 1.0 s (``100hz``: ... 0.8 s) with baseline (None, 0), resampled (250 / 100 Hz); no other
   filtering, as in the original code;
5. per session, sorted by image condition, keeping ``max_rep`` repetitions per condition (2 training, 20 test) drawn
   with a seeded generator;
6. MVNN per session, the covariance from the **training partition only** (``'epochs'`` by default, ``'time'``
   available), applied to both partitions (:mod:`eegdecode.preprocessing.mvnn`, vectorised);
7. sessions merged (each training image: 2 sessions x 2 = 4 repetitions; each test image: 4 x 20 = 80), repetition
   order shuffled (seeded); the 250 Hz layout drops the 50 pre-stimulus samples and keeps the 300-value ``times``;
8. written with :func:`eegdecode.data.things_eeg2.write_preprocessed_file` (the exact release format) and converted
   into the project's cache (:func:`eegdecode.data.cache.prepare_subject`).

Bad input raises :class:`eegdecode.errors.DataFormatError` naming the file and, where it applies, the condition.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eegdecode.data.channels import THINGS_EEG2_CHANNELS
from eegdecode.data.paths import DatasetPaths, subject_name
from eegdecode.data.things_eeg2 import split_file, write_preprocessed_file
from eegdecode.errors import DataFormatError, MissingFileError, check_option
from eegdecode.preprocessing.mvnn import apply_whitening, mean_shrinkage_covariance, whitening_matrix

log = logging.getLogger(__name__)

TARGET_CODE = 99999
RAW_KEYS = ("raw_eeg_data", "ch_names", "ch_types", "sfreq")
SEED = 20200220  # Gifford's seed
SOURCES = ("things", "brainvision")


@dataclass(frozen=True)
class EEGLayout:
    """What a preprocessed release looks like: channels, epoch window, sampling rate, samples cropped at save."""

    release: str
    channels: tuple[str, ...] | str  # an ordered list, or a regular expression applied in file order
    tmin: float
    tmax: float
    sfreq: float
    crop_samples: int  # leading samples dropped from the data (the times keep them: the 250 Hz quirk)


LAYOUTS: dict[str, EEGLayout] = {
    "250hz": EEGLayout("250hz", THINGS_EEG2_CHANNELS, -0.2, 1.0, 250.0, 50),
    "100hz": EEGLayout("100hz", r"^O *|^P *", -0.2, 0.8, 100.0, 0),
}


@dataclass
class Recording:
    """One session partition: the EEG (MNE Raw, EEG channels only) and its events (n, 3)."""

    raw: Any
    events: np.ndarray
    path: Path


# ------------------------------------------------------------------------------------------------------------
# Reading
# ------------------------------------------------------------------------------------------------------------


def _check_sfreq(sfreq: float, expected: float | None, path: Path) -> None:
    if expected is not None and abs(float(sfreq) - expected) > 1e-6:
        raise DataFormatError(path, "wrong sampling rate", f"{expected:g} Hz", f"{float(sfreq):g} Hz")


def read_things_raw(path: str | Path, expected_sfreq: float | None = 1000.0) -> Recording:
    """Read a THINGS raw file (pickled dict with a ``stim`` channel) into an MNE Raw and its events."""
    import mne

    path = Path(path)
    if not path.exists():
        raise MissingFileError(path, "expected a THINGS-EEG2 raw file (raw_data/sub-XX/ses-YY/raw_eeg_*.npy)")
    try:
        obj = np.load(path, allow_pickle=True)
        obj = obj.item() if isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == () else obj
    except Exception as exc:
        raise DataFormatError(
            path, f"cannot be read as a pickled dict ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(obj, dict) or any(k not in obj for k in RAW_KEYS):
        found = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise DataFormatError(path, "wrong content", f"a dict with keys {list(RAW_KEYS)}", found)
    ch_names = [str(c) for c in obj["ch_names"]]
    data = np.asarray(obj["raw_eeg_data"], dtype=np.float64)
    if data.ndim != 2 or data.shape[0] != len(ch_names):
        raise DataFormatError(
            path, "'raw_eeg_data' disagrees with 'ch_names'", f"({len(ch_names)}, n_samples)", data.shape
        )
    if "stim" not in ch_names:
        raise DataFormatError(
            path, "no stim channel", "a channel named 'stim' with the image conditions", ch_names[-3:]
        )
    _check_sfreq(obj["sfreq"], expected_sfreq, path)
    info = mne.create_info(ch_names, float(obj["sfreq"]), [str(t) for t in obj["ch_types"]])
    raw = mne.io.RawArray(data, info, verbose=False)
    events = mne.find_events(raw, stim_channel="stim", shortest_event=1, verbose=False)
    raw.drop_channels(["stim"])
    return Recording(raw, events, path)


_MARKER = re.compile(r"^Stimulus/S\s*(\d+)$")


def read_brainvision(path: str | Path, expected_sfreq: float | None = 1000.0) -> Recording:
    """Read a BrainVision recording (``.vhdr``); events from its ``Stimulus/S<code>`` markers."""
    import mne

    path = Path(path)
    if not path.exists():
        raise MissingFileError(path, "expected a BrainVision header (.vhdr) with its .vmrk and .eeg")
    raw = mne.io.read_raw_brainvision(path, preload=True, verbose=False)
    _check_sfreq(raw.info["sfreq"], expected_sfreq, path)

    def code(description: str) -> int | None:
        m = _MARKER.match(description)
        return int(m.group(1)) if m else None

    if not any(code(d) is not None for d in raw.annotations.description):
        raise DataFormatError(
            path, "no stimulus markers", "'Stimulus/S<code>' markers with the image conditions", "none"
        )
    events, _ = mne.events_from_annotations(raw, event_id=code, verbose=False)
    return Recording(raw, events, path)


# ------------------------------------------------------------------------------------------------------------
# Epoching, sorting, merging
# ------------------------------------------------------------------------------------------------------------


def check_events(events: np.ndarray, n_conditions: int | None, path: Path) -> None:
    """Refuse duplicated events (two at one sample) and codes that are neither conditions nor targets."""
    onsets, counts = np.unique(events[:, 0], return_counts=True)
    if (counts > 1).any():
        dup = int(onsets[counts > 1][0])
        raise DataFormatError(
            path, "duplicated events", "one event per sample", f"{int(counts.max())} events at sample {dup}"
        )
    codes = events[:, 2]
    limit = n_conditions if n_conditions is not None else TARGET_CODE - 1
    bad = np.unique(codes[(codes != TARGET_CODE) & ((codes < 1) | (codes > limit))])
    if bad.size:
        raise DataFormatError(
            path, "unknown event codes", f"conditions 1..{limit} or {TARGET_CODE} (target)", bad[:10].tolist()
        )


def pick_layout_channels(ch_names: Sequence[str], layout: EEGLayout, path: Path) -> list[str]:
    """The channels of ``layout`` in output order; an error names the ones the recording lacks."""
    if isinstance(layout.channels, str):
        pattern = re.compile(layout.channels)
        picked = [c for c in ch_names if pattern.match(c)]
        if not picked:
            raise DataFormatError(
                path, "no channel matches the layout's pattern", layout.channels, list(ch_names)
            )
        return picked
    missing = [c for c in layout.channels if c not in ch_names]
    if missing:
        raise DataFormatError(
            path,
            "channels missing",
            f"the {len(layout.channels)} channels of the layout",
            f"missing {missing}",
        )
    return list(layout.channels)


def epoch_recording(
    rec: Recording,
    layout: EEGLayout = LAYOUTS["250hz"],
    n_conditions: int | None = None,
    exact_grid: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Epoch one recording: targets dropped, channels picked, baseline (None, 0), resampled.

    ``exact_grid`` (default) ends the epoch one raw sample before ``tmax`` so that it holds exactly
    ``(tmax - tmin) * sfreq`` output samples' worth of raw samples (1200 at 1000 Hz for 300 at 250 Hz). The
    original code epochs -0.2 ... 1.0 s inclusive (1201 samples), which MNE's FFT resampling turns into 300 samples
    stretched by 1201/1200: sample k lands up to 1 ms away from its stated time (a simulated recording shows per-trial
    correlations with the true epochs of 0.97 instead of 0.9998). ``exact_grid=False`` reproduces the original.

    Returns
    -------
    data, codes, times, ch_names
        (n_trials, n_channels, n_times) float64 in the recording's units (volts), the 1-based condition of each
        trial, the epoch times in seconds (before any cropping), the channel names.
    """
    import mne

    check_events(rec.events, n_conditions, rec.path)
    events = rec.events[rec.events[:, 2] != TARGET_CODE]
    if len(events) == 0:
        raise DataFormatError(
            rec.path, "no image events", "events with condition codes", "only targets or none"
        )
    picks = pick_layout_channels(rec.raw.ch_names, layout, rec.path)
    tmax = layout.tmax
    if exact_grid:
        n_out = int(round((layout.tmax - layout.tmin) * layout.sfreq))
        raw_sfreq = rec.raw.info["sfreq"]
        tmax = layout.tmin + (round(n_out * raw_sfreq / layout.sfreq) - 1) / raw_sfreq
    epochs = mne.Epochs(
        rec.raw, events, tmin=layout.tmin, tmax=tmax, baseline=(None, 0), picks=picks, preload=True,
        reject_by_annotation=False, event_repeated="error", verbose=False,
    )  # fmt: skip
    if len(epochs) != len(events):
        raise DataFormatError(
            rec.path,
            "events too close to the edges of the recording",
            len(events),
            f"{len(epochs)} complete epochs",
        )
    epochs = epochs.reorder_channels(picks).resample(layout.sfreq, verbose=False)
    return epochs.get_data(copy=False), epochs.events[:, 2].copy(), epochs.times.copy(), picks


def sort_repetitions(
    data: np.ndarray, codes: np.ndarray, max_rep: int, rng: np.random.Generator, path: Path
) -> tuple[np.ndarray, np.ndarray]:
    """Group trials by condition and keep ``max_rep`` per condition, drawn at random (seeded).

    Returns ``(sorted_data (n_conditions, max_rep, ch, t), conditions)``; a condition with fewer repetitions is an
    error naming it.
    """
    conditions, counts = np.unique(codes, return_counts=True)
    short = conditions[counts < max_rep]
    if short.size:
        c = int(short[0])
        raise DataFormatError(
            path,
            f"too few repetitions of condition {c}",
            f"at least {max_rep}",
            f"{int(counts[conditions == c][0])} ({short.size} condition(s) short)",
        )
    # A random key per trial, sorted within each condition: every condition gets a random subset, in one sort.
    order = np.lexsort((rng.random(codes.size), codes))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    keep = order[(starts[:, None] + np.arange(max_rep)[None, :]).ravel()]
    return data[keep].reshape(conditions.size, max_rep, *data.shape[1:]), conditions


def merge_sessions(
    parts: Sequence[tuple[np.ndarray, np.ndarray]], n_conditions: int, rng: np.random.Generator, path: Path
) -> np.ndarray:
    """Merge sorted sessions ``[(data (n_c, reps, ch, t), conditions), ...]`` into (n_conditions, all_reps, ch, t).

    Every condition 1..n_conditions must appear with the same total number of repetitions; the repetition order of
    each condition is shuffled (seeded).
    """
    codes = np.concatenate([np.repeat(c, d.shape[1]) for d, c in parts])
    counts = np.bincount(codes, minlength=n_conditions + 1)[1:]
    if (counts == 0).any():
        c = int(np.flatnonzero(counts == 0)[0]) + 1
        raise DataFormatError(
            path,
            f"condition {c} is in no session",
            f"every condition 1..{n_conditions}",
            f"{int((counts == 0).sum())} missing",
        )
    if (counts != counts[0]).any():
        c = int(np.flatnonzero(counts != counts[0])[0]) + 1
        raise DataFormatError(
            path,
            f"condition {c} has another number of repetitions over sessions",
            int(counts[0]),
            int(counts[c - 1]),
        )
    flat = np.concatenate([d.reshape(-1, *d.shape[2:]) for d, _ in parts])
    order = np.lexsort((rng.random(codes.size), codes))
    return flat[order].reshape(n_conditions, int(counts[0]), *flat.shape[1:])


# ------------------------------------------------------------------------------------------------------------
# One subject
# ------------------------------------------------------------------------------------------------------------


def recording_path(raw_root: Path, subject: str, session: int, partition: str, source: str) -> Path:
    if source == "things":
        return raw_root / "raw_data" / subject / f"ses-{session:02d}" / f"raw_eeg_{partition}.npy"
    task = "train_part-01" if partition == "training" else "test"
    return (
        raw_root
        / "source_data"
        / subject
        / f"ses-{session:02d}"
        / "eeg"
        / f"{subject}_ses-{session:02d}_task-{task}_eeg.vhdr"
    )


def find_sessions(raw_root: Path, subject: str, source: str) -> list[int]:
    folder = raw_root / ("raw_data" if source == "things" else "source_data") / subject
    if not folder.is_dir():
        raise MissingFileError(folder, "expected the subject's raw session folders (ses-01 ...)")
    found = sorted(int(p.name[4:]) for p in folder.iterdir() if re.fullmatch(r"ses-\d+", p.name))
    if not found:
        raise MissingFileError(folder / "ses-01", "no ses-XX folders")
    return found


def preprocess_eeg_subject(
    raw_root: str | Path,
    out_root: str | Path,
    subject: int | str,
    layout: str = "250hz",
    source: str = "things",
    n_sessions: int | None = None,
    mvnn_dim: str = "epochs",
    train_reps: int = 2,
    test_reps: int = 20,
    seed: int = SEED,
    expected_sfreq: float | None = 1000.0,
    cache: bool = True,
    cache_dtype: str = "float16",
    device: str = "cpu",
    exact_grid: bool = True,
) -> dict[str, Any]:
    """Preprocess one subject's raw sessions into ``<out_root>/<release folder>/sub-XX/`` and the cache.

    Parameters
    ----------
    raw_root
        Folder holding ``raw_data/`` (``source='things'``) or ``source_data/`` (``source='brainvision'``).
    out_root
        Data root to write (``Preprocessed_data_250Hz/`` or ``preprocessed_data/``, and ``cache/``).
    layout
        ``'250hz'`` (63 channels, 250 samples kept of 300, NICE/ATM) or ``'100hz'`` (Gifford's 17 channels, 100 Hz).
    n_sessions
        Sessions expected (THINGS-EEG2: 4); a missing one is an error. ``None``: every ``ses-XX`` folder found.
    mvnn_dim
        ``'epochs'`` or ``'time'``.
    train_reps, test_reps
        Repetitions kept per condition and session (THINGS-EEG2: 2 and 20).
    seed
        Seed of the repetition draws and shuffles (Gifford's 20200220 by default).
    exact_grid
        See :func:`epoch_recording`; ``False`` reproduces the original's 1201-sample epochs.

    Returns
    -------
    dict
        Output paths, shapes, channel names, and the cache's sidecar when ``cache``.
    """
    check_option("layout", layout, LAYOUTS)
    check_option("source", source, SOURCES)
    spec = LAYOUTS[layout]
    raw_root, sub = Path(raw_root), subject_name(subject)
    found = find_sessions(raw_root, sub, source)
    sessions = list(range(1, n_sessions + 1)) if n_sessions else found
    missing = [s for s in sessions if s not in found]
    if missing:
        folder = raw_root / ("raw_data" if source == "things" else "source_data") / sub
        raise DataFormatError(
            folder, "sessions missing", [f"ses-{s:02d}" for s in sessions], [f"ses-{s:02d}" for s in found]
        )
    reader = read_things_raw if source == "things" else read_brainvision
    rng = np.random.default_rng(seed)
    sorted_parts: dict[str, list] = {"training": [], "test": []}
    ch_names: list[str] | None = None
    times: np.ndarray | None = None
    for ses in sessions:
        per_part = {}
        for partition in ("training", "test"):
            path = recording_path(raw_root, sub, ses, partition, source)
            rec = reader(path, expected_sfreq)
            data, codes, ep_times, names = epoch_recording(rec, spec, exact_grid=exact_grid)
            if ch_names is None:
                ch_names, times = names, ep_times
            elif names != ch_names:
                raise DataFormatError(path, "channels differ from the first session", ch_names, names)
            max_rep = train_reps if partition == "training" else test_reps
            per_part[partition] = (*sort_repetitions(data, codes, max_rep, rng, path), path)
            log.info(
                "%s ses-%02d %s: %d trials -> %s",
                sub,
                ses,
                partition,
                len(codes),
                per_part[partition][0].shape,
            )
        # MVNN: covariance from the training partition only ("not fair to use test data"), applied to both.
        cov = mean_shrinkage_covariance(per_part["training"][0], mvnn_dim, device=device)
        white = whitening_matrix(cov)
        for partition, (data, conditions, path) in per_part.items():
            sorted_parts[partition].append((apply_whitening(data, white), conditions, path))
    out_paths = DatasetPaths(out_root, spec.release)
    subject_dir = out_paths.subject_dir(sub)
    shapes = {}
    for partition, split in (("training", "train"), ("test", "test")):
        parts = sorted_parts[partition]
        n_cond = int(max(c.max() for _, c, _ in parts))
        merged = merge_sessions([(d, c) for d, c, _ in parts], n_cond, rng, parts[-1][2])
        merged = np.ascontiguousarray(merged[..., spec.crop_samples :])
        write_preprocessed_file(split_file(subject_dir, split), merged, ch_names, np.round(times, 6))
        shapes[split] = list(merged.shape)
        del merged
    result: dict[str, Any] = {"subject_dir": str(subject_dir), "shapes": shapes, "ch_names": ch_names,
                              "sessions": sessions, "layout": layout, "mvnn_dim": mvnn_dim}  # fmt: skip
    if cache:
        from eegdecode.data.cache import prepare_subject

        result["cache"] = prepare_subject(subject_dir, out_paths.cache_dir(sub), cache_dtype, force=True)
    return result
