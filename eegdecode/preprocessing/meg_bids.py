"""THINGS-MEG raw BIDS runs (OpenNeuro ds004212) -> epochs equivalent to the official derivative, through mne-bids.

The official ``preprocessed_P{n}-epo.fif`` comes from ``MEG/step1_preprocessing.py`` of ViCCo-Group/THINGS-data
(reference notes B). This module repeats its steps on the raw runs, so the derivative route of
:mod:`eegdecode.preprocessing.meg` can start from either:

1. every run ``sub-BIGMEG{n}/ses-XX/meg/sub-BIGMEG{n}_ses-XX_task-main_run-YY_meg.ds`` (CTF; a FIF run is read the
   same way) is read with ``mne_bids.read_raw_bids``; sessions and runs are checked for gaps before anything is read;
2. events come from the run's ``_events.tsv``: ``sample`` (onsets corrected with the photodiode; ``onset`` x rate
   when there is no ``sample`` column) and ``value`` (the 1-based THINGS image code; empty / ``n/a`` = catch trial,
   999999). Where the trigger channel ``UPPT001`` exists, its number of value-64 triggers must equal the number of
   rows, as the official script assumes when it swaps the trigger onsets for the photodiode ones;
3. the malfunctioning sensor ``MRO11-1609`` is dropped and ``'mag'`` picked (CTF axial gradiometers are 'mag' in MNE,
   reference channels are not): 271 channels. Channels that ``channels.tsv`` marks bad are kept, as the official
   script (which read the CTF files directly) kept them;
4. the two signal dropouts the official script patches (0.2 s at 13.4 s of P1 ses-11 and at 59.8 s of P2 ses-10)
   are replaced with each channel's median over the run. The script picks those runs by their 0-based position in
   the session, 4 and 2: the BIDS runs ``run-05`` and ``run-03``;
5. band-pass 0.1-40 Hz (MNE's default FIR), epochs -100 ... 1300 ms with ``baseline=None``;
6. ``mne.baseline.rescale(mode='zscore', baseline=(None, 0))`` per epoch and channel;
7. decimation by ``rate / 200`` (6 for the real 1200 Hz): 281 samples. A rate that is not an integer multiple of
   200 Hz is an error, not resampled: decimation is what the official pipeline did, and resampling would give
   other numbers;
8. runs and sessions concatenated in order into one :class:`mne.EpochsArray` (float64, as MNE holds epochs).

Each run is epoched, z-scored and decimated before the next is read, so memory grows with the 200 Hz epochs only: a
full participant (27,048 x 271 x 281) is collected in float32 (8 GB) and copied into the final float64 epochs
(16 GB), about 25 GB at the peak; the derivative route holds the same 16 GB after ``mne.read_epochs``.
The official script's metadata (``sourcedata/sample_attributes_P{n}.csv``) is not attached: nothing downstream uses it.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eegdecode.errors import DataFormatError, MissingFileError

log = logging.getLogger(__name__)

CATCH_CODE = 999999
MALFUNCTIONING_CHANNELS = ("MRO11-1609",)
N_CHANNELS = 271
TRIGGER_CHANNEL, TRIGGER_VALUE = "UPPT001", 64
L_FREQ, H_FREQ = 0.1, 40.0
TMIN, TMAX = -0.1, 1.3
OUTPUT_SFREQ = 200.0
# (participant, session, BIDS run) -> start of the 0.2 s signal dropout in seconds (official step1_preprocessing.py)
KNOWN_DROPOUTS = {(1, 11, 5): 13.4, (2, 10, 3): 59.8}
DROPOUT_DURATION = 0.2
_RUN_EXTENSIONS = (".ds", ".fif")


@dataclass(frozen=True)
class MegRun:
    """One raw run: its BIDS entities, the data file (``.ds`` folder or ``.fif``) and its ``events.tsv``."""

    session: str
    run: int
    data_path: Path
    events_path: Path


def bids_subject(participant: int) -> str:
    """BIDS subject label of THINGS-MEG participant ``P{n}``: ``BIGMEG{n}``."""
    return f"BIGMEG{int(participant)}"


def find_meg_runs(
    bids_root: str | Path, participant: int, n_sessions: int | None = 12, task: str = "main"
) -> list[MegRun]:
    """List participant ``P{n}``'s raw runs in session and run order, checking that none is missing.

    Parameters
    ----------
    bids_root
        The ds004212 folder.
    participant
        1 ... 4 (``sub-BIGMEG{n}``).
    n_sessions
        Sessions expected, ``ses-01`` ... (12 in ds004212); ``None`` or 0: every ``ses-XX`` found.
    task
        BIDS task label of the runs.

    Raises
    ------
    MissingFileError
        No subject folder, a missing session, a session without runs, a gap in the run numbers, or a run without its
        ``events.tsv``; the message names the path.
    """
    from mne_bids import get_entities_from_fname

    bids_root = Path(bids_root)
    sub = bids_subject(participant)
    sub_dir = bids_root / f"sub-{sub}"
    if not sub_dir.is_dir():
        raise MissingFileError(
            sub_dir, f"expected the raw THINGS-MEG runs of P{participant} (OpenNeuro ds004212)"
        )
    found = sorted(d.name[4:] for d in sub_dir.glob("ses-*") if d.is_dir())
    if n_sessions:
        sessions = [f"{i:02d}" for i in range(1, n_sessions + 1)]
        missing = [s for s in sessions if s not in found]
        if missing:
            raise MissingFileError(
                sub_dir / f"ses-{missing[0]}",
                f"{len(missing)} of the {n_sessions} expected sessions missing ({', '.join(missing)}); found "
                f"{', '.join(found) or 'none'}. Set n_sessions (--n-sessions) to 0 to use the sessions present",
            )
    else:
        sessions = found
        if not sessions:
            raise MissingFileError(
                sub_dir / "ses-01", "expected session folders ses-XX/meg/ with the raw runs"
            )
    runs: list[MegRun] = []
    for ses in sessions:
        meg_dir = sub_dir / f"ses-{ses}" / "meg"
        stem = f"sub-{sub}_ses-{ses}_task-{task}"
        files = sorted(p for ext in _RUN_EXTENSIONS for p in meg_dir.glob(f"{stem}*_meg{ext}"))
        if not files:
            raise MissingFileError(
                meg_dir / f"{stem}_run-01_meg.ds", f"no runs of task {task!r} in session {ses}"
            )
        by_run: dict[int, Path] = {}
        for f in files:
            run_label = get_entities_from_fname(f.name, on_error="ignore").get("run")
            number = int(run_label) if run_label else 1
            if number in by_run:
                raise DataFormatError(
                    f, f"two data files for run {number}", "one", f"also {by_run[number].name}"
                )
            by_run[number] = f
        expected = list(range(1, max(by_run) + 1))
        gaps = [n for n in expected if n not in by_run]
        if gaps:
            raise MissingFileError(
                meg_dir / f"{stem}_run-{gaps[0]:02d}_meg{by_run[max(by_run)].suffix}",
                f"runs numbered 1 ... {max(by_run)} expected in session {ses}; missing run(s) {gaps}",
            )
        for number in expected:
            data_path = by_run[number]
            events_path = data_path.with_name(
                data_path.name[: -len(f"_meg{data_path.suffix}")] + "_events.tsv"
            )
            if not events_path.exists():
                raise MissingFileError(
                    events_path,
                    "expected the run's events (photodiode-corrected onsets, image codes in 'value')",
                )
            runs.append(MegRun(ses, number, data_path, events_path))
    return runs


def decimation_factor(
    sfreq: float, output_sfreq: float = OUTPUT_SFREQ, path: str | Path | None = None
) -> int:
    """``sfreq / output_sfreq`` as an integer (1200 Hz -> 6); any other ratio raises DataFormatError naming ``path``."""
    ratio = sfreq / output_sfreq
    if ratio < 1 or abs(ratio - round(ratio)) > 1e-6:
        raise DataFormatError(
            path,
            f"sampling rate cannot be decimated to {output_sfreq:g} Hz (resampling would not reproduce the official "
            "derivative)",
            f"an integer multiple of {output_sfreq:g} Hz",
            f"{sfreq:g} Hz",
        )
    return int(round(ratio))


def read_events_tsv(path: str | Path, sfreq: float, n_samples: int) -> np.ndarray:
    """Onset samples (from the first sample of the run) and image codes (catch: 999999) of a run: ``(n, 2)`` int64.

    Uses the ``sample`` column, or ``onset`` x ``sfreq`` where there is none; ``value`` holds the 1-based image code,
    and an empty / ``n/a`` value marks a catch trial (the official script fills those with 999999).
    """
    path = Path(path)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    columns = set(rows[0]) if rows else set()
    if not rows or "value" not in columns or not columns & {"sample", "onset"}:
        raise DataFormatError(path, "events table", "rows with 'value' and 'sample' (or 'onset') columns",
                              f"{len(rows)} rows, columns {sorted(columns)}")  # fmt: skip
    out = np.empty((len(rows), 2), dtype=np.int64)
    for i, row in enumerate(rows):
        line = i + 2  # header is line 1
        try:
            if row.get("sample") not in (None, "", "n/a"):
                sample = float(row["sample"])
            else:
                sample = float(row["onset"]) * sfreq
            value = row["value"].strip()
            code = CATCH_CODE if value in ("", "n/a", "nan", "NaN") else float(value)
        except (TypeError, ValueError) as exc:
            raise DataFormatError(path, f"line {line}: not a number ({exc})") from exc
        if code != int(code) or code < 1:
            raise DataFormatError(path, f"line {line}: image code", "a positive integer", row["value"])
        sample = int(round(sample))
        if not 0 <= sample < n_samples:
            raise DataFormatError(
                path, f"line {line}: onset sample outside the run", f"0 ... {n_samples - 1}", sample
            )
        out[i] = sample, int(code)
    return out


def replace_dropout(raw, start: float, duration: float = DROPOUT_DURATION) -> None:
    """Replace ``duration`` s of every channel from ``start`` s on with that channel's median over the run (in place).

    The official patch: ``int(duration * sfreq)`` samples from the sample nearest to ``start``.
    """
    i0 = int(np.argmin(np.abs(raw.times - start)))
    n = int(duration / (1 / raw.info["sfreq"]))

    def patch(x: np.ndarray) -> np.ndarray:
        x[i0 : i0 + n] = np.median(x)
        return x

    raw.apply_function(patch, picks="all", channel_wise=True, verbose=False)


def _run_epochs(
    run: MegRun,
    participant: int,
    task: str,
    bids_root: Path,
    output_sfreq: float,
    drop_channels: tuple[str, ...],
    n_channels: int | None,
    first_names: list[str] | None,
):
    """One run -> z-scored, decimated epochs (the official steps 1-5 for one run)."""
    import mne
    from mne_bids import BIDSPath, read_raw_bids

    bids_path = BIDSPath(subject=bids_subject(participant), session=run.session, task=task,
                         run=f"{run.run:02d}" if "_run-" in run.data_path.name else None, datatype="meg",
                         suffix="meg", extension=run.data_path.suffix, root=bids_root)  # fmt: skip
    raw = read_raw_bids(bids_path, verbose=False)
    decim = decimation_factor(raw.info["sfreq"], output_sfreq, run.data_path)
    rows = read_events_tsv(run.events_path, raw.info["sfreq"], raw.n_times)
    if TRIGGER_CHANNEL in raw.ch_names:
        triggers = mne.find_events(raw, stim_channel=TRIGGER_CHANNEL, initial_event=True, verbose=False)
        n_triggers = int((triggers[:, 2] == TRIGGER_VALUE).sum())
        if n_triggers != len(rows):
            raise DataFormatError(
                run.events_path,
                f"one row per {TRIGGER_CHANNEL} trigger of value {TRIGGER_VALUE} in {run.data_path.name}",
                f"{n_triggers} rows",
                f"{len(rows)} rows",
            )
    raw.drop_channels([c for c in drop_channels if c in raw.ch_names])
    raw.pick("mag", exclude=())
    if n_channels is not None and len(raw.ch_names) != n_channels:
        raise DataFormatError(
            run.data_path,
            f"MEG ('mag') channel count after dropping {', '.join(drop_channels) or 'nothing'}",
            n_channels,
            len(raw.ch_names),
        )
    if first_names is not None and raw.ch_names != first_names:
        i = next((i for i, (a, b) in enumerate(zip(raw.ch_names, first_names)) if a != b), len(first_names))
        raise DataFormatError(run.data_path, f"channel {i} differs from the first run",
                              first_names[i] if i < len(first_names) else "no channel",
                              raw.ch_names[i] if i < len(raw.ch_names) else "no channel")  # fmt: skip
    if raw.info["bads"]:
        log.info("%s: channels.tsv marks %s bad; kept, as in the official derivative", run.data_path.name,
                 raw.info["bads"])  # fmt: skip
        raw.info["bads"] = []
    raw.load_data(verbose=False)
    dropout = KNOWN_DROPOUTS.get((int(participant), int(run.session), run.run))
    if dropout is not None:
        log.info(
            "%s: replacing the signal dropout at %.1f s with the channel medians", run.data_path.name, dropout
        )
        replace_dropout(raw, dropout)
    raw.filter(L_FREQ, H_FREQ, verbose=False)
    events = np.column_stack([rows[:, 0] + raw.first_samp, np.zeros(len(rows), np.int64), rows[:, 1]])
    epochs = mne.Epochs(raw, events, tmin=TMIN, tmax=TMAX, baseline=None, preload=True, verbose=False)
    if len(epochs) != len(rows):
        log.warning("%s: %d of %d epochs dropped by MNE (outside the recording or in a BAD segment)",
                    run.data_path.name, len(rows) - len(epochs), len(rows))  # fmt: skip
    mne.baseline.rescale(
        epochs.get_data(copy=False), epochs.times, (None, 0), mode="zscore", copy=False, verbose=False
    )
    epochs.decimate(decim, verbose=False)
    return epochs


def epochs_from_bids(
    bids_root: str | Path,
    participant: int,
    n_sessions: int | None = 12,
    task: str = "main",
    output_sfreq: float = OUTPUT_SFREQ,
    drop_channels: tuple[str, ...] = MALFUNCTIONING_CHANNELS,
    n_channels: int | None = N_CHANNELS,
):
    """Participant ``P{n}``'s raw runs -> one :class:`mne.EpochsArray` like ``preprocessed_P{n}-epo.fif``.

    Parameters
    ----------
    bids_root
        The ds004212 folder (``sub-BIGMEG{n}/ses-XX/meg/*_meg.ds`` + ``*_events.tsv``).
    participant
        1 ... 4.
    n_sessions
        Sessions expected (12 in ds004212); ``None`` or 0: every ``ses-XX`` found.
    task
        BIDS task label (``main`` in ds004212).
    output_sfreq
        Rate after decimation; the recording rate must be an integer multiple of it.
    drop_channels
        Channels removed before picking 'mag' (the malfunctioning ``MRO11-1609``).
    n_channels
        'mag' channels expected after the drop (271); ``None``: no check.

    Returns
    -------
    mne.EpochsArray
        -100 ... 1300 ms at ``output_sfreq``, z-scored against -100 ... 0 ms, ``events[:, 2]`` the image codes
        (catch 999999), runs in session and run order; the info is the first run's.
    """
    import mne

    bids_root = Path(bids_root)
    runs = find_meg_runs(bids_root, participant, n_sessions, task)
    log.info("P%d: %d runs in %d sessions", participant, len(runs), len({r.session for r in runs}))
    chunks, codes, samples, info, tmin, first_names = [], [], [], None, None, None
    offset = 0
    for run in runs:
        epochs = _run_epochs(run, participant, task, bids_root, output_sfreq, tuple(drop_channels), n_channels,
                                first_names)  # fmt: skip
        if info is None:
            info, tmin, first_names = epochs.info, epochs.tmin, list(epochs.ch_names)
        # float32, as the official .fif stores them: half the memory while the runs are collected
        chunks.append(epochs.get_data(copy=False).astype(np.float32))
        codes.append(epochs.events[:, 2])
        samples.append(offset + epochs.events[:, 0])
        # unique event samples across runs, as mne.concatenate_epochs(add_offset=True) gives
        offset = int(samples[-1].max()) + 1 if len(samples[-1]) else offset
        log.info("%s: %d epochs", run.data_path.name, len(epochs))
    n = sum(len(c) for c in codes)
    data = np.empty((n, len(first_names), chunks[0].shape[-1]))
    start = 0
    for i, chunk in enumerate(chunks):
        data[start : start + len(chunk)] = chunk
        start += len(chunk)
        chunks[i] = None  # free each run as it is copied
    events = np.column_stack([np.concatenate(samples), np.zeros(n, np.int64), np.concatenate(codes)])
    return mne.EpochsArray(data, info, events=events, tmin=tmin, baseline=None, verbose=False)
