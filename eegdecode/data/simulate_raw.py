"""Raw continuous recordings from the simulated THINGS-EEG2, for testing the preprocessing end to end.

Built on :mod:`eegdecode.data.simulate`: the same World (image latents), the same Subject (forward model, evoked
components, 1/f + alpha + sensor noise). Trials are laid on a continuous time line as in the THINGS-EEG2 RSVP
paradigm: one image every 200 ms, the responses of neighbouring images overlapping, target (catch) images in the
stream coded 99999, continuous noise (1 s noise segments joined by variance-preserving cross-fades). The signal is
generated on the simulator's 250 Hz grid, interpolated to 1000 Hz (band-limited, FFT) and written **unwhitened**, in
volts, with a ``stim`` channel holding 1-based image-condition numbers, in both raw formats:

- the THINGS raw release: ``raw_data/sub-XX/ses-YY/raw_eeg_{training,test}.npy`` (a pickled dict with
  ``raw_eeg_data``, ``ch_names``, ``ch_types``, ``sfreq``, ``highpass``, ``lowpass``);
- BrainVision (``pybv``): ``source_data/sub-XX/ses-YY/eeg/sub-XX_ses-YY_task-{train_part-01,test}_eeg.vhdr`` with
  the conditions as ``Stimulus/S<code>`` markers.

Session structure follows THINGS-EEG2 (Gifford et al. 2022, NeuroImage 264:119754) by default: 4 sessions per
subject; in each session every test image 20 times and one half of the training images (the halves alternate over
sessions) 2 times, so that over the 4 sessions each training image has 2 x 2 = 4 repetitions and each test image
4 x 20 = 80, what Gifford's preprocessing (``max_rep`` 2 / 20 per session, ``--n_ses 4``) and ours expect. One extra
presentation of the first condition of each partition is added (the preprocessing keeps the documented number,
drawn at random).
Each :class:`RawSession` also carries the simulator's own epochs (-0.2 ... 0.996 s at 250 Hz, baseline-corrected,
before any whitening) for every trial: the ground truth that preprocessed epochs are compared with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eegdecode import __version__
from eegdecode.data.channels import THINGS_EEG2_CHANNELS
from eegdecode.data.paths import DatasetPaths, subject_name
from eegdecode.data.simulate import CHUNK, N_TIMES, SFREQ, Preset, Subject, World, _rng
from eegdecode.errors import OutputExistsError, check_option
from eegdecode.io import atomic_path, write_json

RAW_SFREQ = 1000.0
TARGET_CODE = 99999
PARTITIONS = ("training", "test")
_PRE = 50  # 250 Hz samples before onset in an epoch (-0.2 s)


@dataclass(frozen=True)
class RawDesign:
    """Trial structure of the simulated raw recordings (per subject); the defaults are THINGS-EEG2's.

    ``n_sessions`` is 1 or even: with more than one session the training images split into two halves shown in
    alternate sessions, so each training image is in ``n_sessions // 2`` sessions and every test image in all.
    """

    n_sessions: int = 4
    train_reps_per_session: int = 2
    test_reps_per_session: int = 20
    target_fraction: float = 0.08
    extra_presentations: int = 1

    def __post_init__(self):
        for name in ("n_sessions", "train_reps_per_session", "test_reps_per_session"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"RawDesign.{name}: expected an integer >= 1; found {value!r}")
        if self.n_sessions > 1 and self.n_sessions % 2:
            raise ValueError(
                f"RawDesign.n_sessions: expected 1 or an even number (training halves alternate); "
                f"found {self.n_sessions}"
            )
        if not 0 <= self.target_fraction < 1:
            raise ValueError(f"RawDesign.target_fraction: expected 0 <= f < 1; found {self.target_fraction}")
        if self.extra_presentations < 0:
            raise ValueError(
                f"RawDesign.extra_presentations: expected >= 0; found {self.extra_presentations}"
            )

    @property
    def sessions_per_training_image(self) -> int:
        return 1 if self.n_sessions == 1 else self.n_sessions // 2

    @property
    def train_reps_total(self) -> int:
        """Repetitions of each training image over all sessions (THINGS-EEG2: 4)."""
        return self.train_reps_per_session * self.sessions_per_training_image

    @property
    def test_reps_total(self) -> int:
        """Repetitions of each test image over all sessions (THINGS-EEG2: 80)."""
        return self.test_reps_per_session * self.n_sessions

    @classmethod
    def from_totals(cls, train_reps: int, test_reps: int, n_sessions: int = 4, **kwargs) -> RawDesign:
        """The design that gives ``train_reps`` / ``test_reps`` repetitions per image over ``n_sessions``.

        Raises ValueError naming the count that does not divide over the sessions.
        """
        per_train = 1 if n_sessions == 1 else n_sessions // 2
        if train_reps % per_train:
            raise ValueError(
                f"train_reps: expected a multiple of {per_train} (each training image is in {per_train} of the "
                f"{n_sessions} sessions); found {train_reps}"
            )
        if test_reps % n_sessions:
            raise ValueError(
                f"test_reps: expected a multiple of {n_sessions} (every test image is in all {n_sessions} "
                f"sessions); found {test_reps}"
            )
        return cls(n_sessions, train_reps // per_train, test_reps // n_sessions, **kwargs)


@dataclass
class RawSession:
    """One simulated recording (one session, one partition)."""

    partition: str
    data: np.ndarray  # (64, n_samples) volts; the last row is the stim channel
    ch_names: list[str]
    codes: np.ndarray  # (n_trials,) 1-based condition or 99999
    onsets: np.ndarray  # (n_trials,) sample index at 1000 Hz
    epochs: np.ndarray  # (n_trials, 63, 300) volts, the simulator's own epochs at 250 Hz

    @property
    def sfreq(self) -> float:
        return RAW_SFREQ


def _noise_continuous(subject: Subject, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Continuous background noise (63, n_samples) in uV at 250 Hz: 1 s segments cross-faded over 0.2 s."""
    hop, fade = N_TIMES - _PRE, _PRE
    n_seg = n_samples // hop + 2
    window = np.ones(N_TIMES)
    ramp = np.sin(np.pi / 2 * (np.arange(fade) + 0.5) / fade)
    window[:fade], window[-fade:] = ramp, ramp[::-1]  # sin^2 + cos^2 = 1 in every overlap
    out = np.zeros((len(THINGS_EEG2_CHANNELS), (n_seg + 1) * hop + N_TIMES))
    for start in range(0, n_seg, CHUNK):
        segs = subject.noise(min(CHUNK, n_seg - start), rng)
        for j, seg in enumerate(segs):
            k = (start + j) * hop
            out[:, k : k + N_TIMES] += seg * window
    return out[:, fade : fade + n_samples]


def simulate_session(
    subject: Subject,
    partition: str,
    conditions: np.ndarray,
    reps: int,
    design: RawDesign,
    rng: np.random.Generator,
    channel_order: list[str] | None = None,
) -> RawSession:
    """Simulate one continuous recording of ``conditions`` (1-based) shown ``reps`` times each, plus targets."""
    from scipy.signal import resample

    check_option("partition", partition, PARTITIONS)
    world = subject.world
    latent = world.train_latent if partition == "training" else world.test_latent
    codes = np.repeat(np.asarray(conditions, dtype=np.int64), reps)
    codes = np.concatenate([codes, np.repeat(conditions[:1], design.extra_presentations)])
    codes = codes[rng.permutation(codes.size)]
    n_targets = int(round(design.target_fraction * codes.size))
    codes = np.insert(codes, np.sort(rng.integers(0, codes.size, n_targets)), TARGET_CODE)
    trial_latent = np.where(
        (codes == TARGET_CODE)[:, None],
        world.train_latent[rng.integers(0, len(world.train_latent), codes.size)],
        latent[np.clip(codes, 1, len(latent)) - 1],
    )
    soa = int(0.2 * SFREQ)
    onsets250 = 250 + soa * np.arange(codes.size)  # first image after 1 s
    n250 = int(onsets250[-1] + N_TIMES + 250)
    signal = _noise_continuous(subject, n250, rng)
    for start in range(0, codes.size, CHUNK):
        ev = subject.evoked(trial_latent[start : start + CHUNK], rng)
        for j, e in enumerate(ev):
            o = onsets250[start + j]
            signal[:, o : o + N_TIMES] += e
    signal *= 1e-6  # uV -> V, as MNE reads the source recordings
    idx = onsets250[:, None] + np.arange(-_PRE, N_TIMES)[None, :]
    epochs = signal[:, idx].transpose(1, 0, 2)
    epochs -= epochs[:, :, : _PRE + 1].mean(axis=2, keepdims=True)  # baseline (None, 0) includes t = 0
    up = int(RAW_SFREQ / SFREQ)
    continuous = resample(signal, n250 * up, axis=1)
    onsets = onsets250 * up
    stim = np.zeros((1, continuous.shape[1]))
    for o, c in zip(onsets, codes):
        stim[0, o : o + 20] = c  # 20 ms trigger pulses
    names = list(THINGS_EEG2_CHANNELS)
    order = [names.index(c) for c in (channel_order or names)]
    data = np.concatenate([continuous[order], stim])
    return RawSession(partition, data, [names[i] for i in order] + ["stim"], codes, onsets, epochs)


def write_things_raw(path: str | Path, session: RawSession) -> Path:
    """Write a session as the THINGS raw release does (``np.save`` of a dict, read with ``.item()``)."""
    obj = {
        "raw_eeg_data": session.data,
        "ch_names": list(session.ch_names),
        "ch_types": ["eeg"] * (len(session.ch_names) - 1) + ["stim"],
        "sfreq": session.sfreq,
        "highpass": 0.01,
        "lowpass": 100.0,
    }
    path = Path(path)
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, np.asarray(obj, dtype=object), allow_pickle=True)
    return path


def write_brainvision(vhdr: str | Path, session: RawSession) -> Path:
    """Write a session as a BrainVision recording (``.vhdr/.vmrk/.eeg``, float32, uV) with ``S<code>`` markers."""
    import pybv

    vhdr = Path(vhdr)
    vhdr.parent.mkdir(parents=True, exist_ok=True)
    events = np.stack([session.onsets, session.codes], axis=1)
    pybv.write_brainvision(
        data=session.data[:-1], sfreq=session.sfreq, ch_names=session.ch_names[:-1], ref_ch_names="Fz",
        fname_base=vhdr.stem, folder_out=vhdr.parent, events=events, unit="µV", overwrite=True,
    )  # fmt: skip
    return vhdr


def raw_file(root: str | Path, subject: int | str, session: int, partition: str) -> Path:
    """``<root>/raw_data/sub-XX/ses-YY/raw_eeg_{training,test}.npy``."""
    check_option("partition", partition, PARTITIONS)
    return Path(root) / "raw_data" / subject_name(subject) / f"ses-{session:02d}" / f"raw_eeg_{partition}.npy"


def brainvision_file(root: str | Path, subject: int | str, session: int, partition: str) -> Path:
    """``<root>/source_data/sub-XX/ses-YY/eeg/sub-XX_ses-YY_task-{train_part-01,test}_eeg.vhdr``."""
    sub = subject_name(subject)
    task = "train_part-01" if partition == "training" else "test"
    return (
        Path(root)
        / "source_data"
        / sub
        / f"ses-{session:02d}"
        / "eeg"
        / f"{sub}_ses-{session:02d}_task-{task}_eeg.vhdr"
    )


def session_conditions(world: World, design: RawDesign, session: int, partition: str) -> np.ndarray:
    """1-based conditions shown in a session (1-based): all test images; one half of the training images."""
    if partition == "test":
        return np.arange(1, len(world.test_latent) + 1)
    n = len(world.train_latent)
    half = np.arange(1, n + 1)
    if design.n_sessions < 2:
        return half
    return half[: n // 2] if (session - 1) % 2 == 0 else half[n // 2 :]


def simulate_raw_dataset(
    out: str | Path,
    preset: str | Preset = "tiny",
    n_subjects: int = 1,
    design: RawDesign = RawDesign(),
    seed: int = 0,
    formats: tuple[str, ...] = ("things", "brainvision"),
    overwrite: bool = False,
    write_features: bool = True,
) -> dict[str, Any]:
    """Write raw recordings of every session of ``n_subjects`` simulated subjects, and the reference features.

    The design (:class:`RawDesign`) is THINGS-EEG2's by default: 4 sessions, 2 training / 20 test repetitions per
    image and session; the preset's own ``n_train_reps`` / ``n_test_reps`` (those of the preprocessed simulation)
    are not used here (:meth:`RawDesign.from_totals` derives a design from them). The features
    (``features/reference/``, skipped with ``write_features=False``) are those of
    :func:`eegdecode.data.simulate.simulate_dataset` for the same preset and seed, so a preprocessed result trains
    through the normal pipeline. Returns the description (also written to ``simulation_raw.json``).
    """
    from eegdecode.data.simulate import resolve_preset, write_reference_features

    if isinstance(formats, str):
        formats = (formats,)
    for f in formats:
        check_option("formats", f, ("things", "brainvision"))
    preset_name, preset = resolve_preset(preset)
    n_train_images = preset.n_train_concepts * preset.images_per_concept
    if design.n_sessions > 1 and n_train_images < 2:
        raise ValueError(
            f"training images: expected at least 2 (two halves over the sessions); found {n_train_images}"
        )
    out = Path(out)
    desc_path = out / "simulation_raw.json"
    if desc_path.exists() and not overwrite:
        raise OutputExistsError(desc_path)
    world = World(preset, seed)
    if write_features:
        write_reference_features(world, DatasetPaths(out), seed)
    names = list(THINGS_EEG2_CHANNELS)
    for s in range(n_subjects):
        subj = Subject(world, s)
        # Recording order differs from the release order, as in the source files.
        order = [names[i] for i in _rng(seed, 50, s).permutation(len(names))]
        for ses in range(1, design.n_sessions + 1):
            for k, part in enumerate(PARTITIONS):
                reps = design.train_reps_per_session if part == "training" else design.test_reps_per_session
                conds = session_conditions(world, design, ses, part)
                session = simulate_session(subj, part, conds, reps, design, _rng(seed, 51, s, ses, k), order)
                if "things" in formats:
                    write_things_raw(raw_file(out, s + 1, ses, part), session)
                if "brainvision" in formats:
                    write_brainvision(brainvision_file(out, s + 1, ses, part), session)
    desc = {
        "format": "eegdecode-simulation-raw/1",
        "eegdecode_version": __version__,
        "preset": preset_name,
        "sizes": asdict(preset),
        "design": asdict(design),
        "reps_per_image": {"train": design.train_reps_total, "test": design.test_reps_total},
        "formats": list(formats),
        "seed": seed,
        "n_subjects": n_subjects,
        "sfreq": RAW_SFREQ,
        "units": "V",
        "target_code": TARGET_CODE,
        "note": "Simulated raw recordings: not a recording. Unwhitened; stim channel with 1-based conditions.",
    }
    write_json(desc_path, desc)
    return desc
