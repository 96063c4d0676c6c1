"""Datasets, splits and protocols on top of the memory-mapped cache.

- :class:`SubjectData`: one subject's cache with a channel subset and a time window applied on read.
- :func:`split_concepts`: the seeded validation split of *training concepts* (the test set never chooses anything).
- :class:`TrialDataset`: training samples from one or several subjects, as single trials (ATM/NERV) or with the
  repetitions averaged (NICE/UBP); each sample carries its image, concept and subject-layer index. Batches are read
  with one fancy-index per subject (``__getitems__``), so a batch of 1024 trials is one memmap gather.
- :func:`averaged_eeg`: queries for evaluation, repetitions averaged (all, or the first ``n_reps``).
- :func:`make_folds`: the protocols ``intra``, ``loso`` and ``joint``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from eegdecode.data.augment import make_augment, parse_augment
from eegdecode.data.cache import SubjectCache, ensure_cache, gather
from eegdecode.data.channels import resolve_channels
from eegdecode.data.paths import DatasetPaths, subject_name
from eegdecode.data.things_eeg2 import BLOCK_BYTES
from eegdecode.errors import ConfigError, DataFormatError, check_option

TRAIN_UNITS = ("trial", "average")
PROTOCOLS = ("intra", "loso", "joint")


@dataclass(frozen=True)
class DataOptions:
    """How EEG is read for training and evaluation.

    channels: ``"all"``, ``"posterior17"``, region names (``"parietal+occipital"``) or a list of names.
    time_window: (start, stop) in seconds, samples with ``start <= t < stop``; ``None`` keeps all.
    train_unit: ``"trial"`` (every repetition a sample) or ``"average"`` (repetitions averaged per image).
    test_reps: number of test repetitions averaged into a query (the first ``test_reps``); ``None`` = all.
    val_fraction / val_seed: the validation split of training concepts.
    dtype: cache dtype (``float16`` or ``float32``).
    augment: augmentation of the *training samples* fixed at load time (:mod:`eegdecode.data.augment`):
    ``None`` (default) or ``{"smooth": {"kernel": 5, "p": 0.3}}`` (NeuroBridge's moving-average prior; optional
    ``seed``, default 0). Validation and test EEG are never augmented.
    """

    channels: str | tuple[str, ...] = "all"
    time_window: tuple[float, float] | None = None
    train_unit: str = "trial"
    test_reps: int | None = None
    val_fraction: float = 0.05
    val_seed: int = 0
    dtype: str = "float16"
    augment: dict | None = None

    def __post_init__(self):
        check_option("train_unit", self.train_unit, TRAIN_UNITS)
        object.__setattr__(self, "augment", parse_augment(self.augment))
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"Invalid val_fraction {self.val_fraction}: expected 0 <= val_fraction < 1")
        if self.test_reps is not None and self.test_reps < 1:
            raise ConfigError(f"Invalid test_reps {self.test_reps}: expected a positive number or None (all)")


class SubjectData:
    """One subject's cached EEG with channel and time selection applied on every read."""

    def __init__(self, cache: SubjectCache, options: DataOptions = DataOptions(), name: str | None = None):
        self.cache = cache
        self.options = options
        self.name = name or cache.meta.get("subject", cache.path.name)
        self.ch_idx = np.asarray(resolve_channels(options.channels, cache.ch_names))
        times = cache.times
        if options.time_window is None:
            self.t_idx = slice(0, times.size)
        else:
            start, stop = options.time_window
            keep = np.flatnonzero((times >= start - 1e-9) & (times < stop - 1e-9))
            if keep.size == 0:
                raise ConfigError(
                    f"time_window {options.time_window} selects no sample of {self.name} "
                    f"(data from {times[0]:.3f} to {times[-1]:.3f} s)"
                )
            self.t_idx = slice(int(keep[0]), int(keep[-1]) + 1)
        # One basic slice for contiguous channel runs (the common case) keeps memmap reads cheap.
        contiguous = self.ch_idx.size and np.all(np.diff(self.ch_idx) == 1)
        self._ch_sel = slice(int(self.ch_idx[0]), int(self.ch_idx[-1]) + 1) if contiguous else self.ch_idx
        self.augment = make_augment(options.augment)

    @classmethod
    def open(
        cls, paths: DatasetPaths, subject: int | str, options: DataOptions = DataOptions()
    ) -> SubjectData:
        name = subject_name(subject)
        cache = ensure_cache(
            paths.subject_dir(name), paths.cache_dir(name), options.dtype, paths.expected_channels
        )
        return cls(cache, options, name)

    @property
    def ch_names(self) -> list[str]:
        return [self.cache.ch_names[i] for i in self.ch_idx]

    @property
    def times(self) -> np.ndarray:
        return self.cache.times[self.t_idx]

    @property
    def n_chans(self) -> int:
        return int(self.ch_idx.size)

    @property
    def n_times(self) -> int:
        return int(self.times.size)

    def split_array(self, split: str) -> np.ndarray:
        check_option("split", split, ("train", "test"))
        return self.cache.train if split == "train" else self.cache.test

    def read(self, split: str, images: np.ndarray, reps: np.ndarray | None = None, keep_dtype: bool = False
             ) -> np.ndarray:  # fmt: skip
        """float32 (n, chans, times): ``reps`` given -> single trials ``[images[i], reps[i]]``; else the mean over
        all repetitions of each image. ``keep_dtype``: single trials in the cache's dtype (float16 by default),
        for a conversion on the device (exact: float16 -> float32 loses nothing)."""
        arr = self.split_array(split)
        order = np.argsort(images, kind="stable")  # sorted gathers read the memmap sequentially
        img = np.asarray(images)[order]
        if reps is None:
            block = gather(arr, img).astype(np.float32).mean(axis=1)
        else:
            block = gather(arr, img, np.asarray(reps)[order])
            block = block if keep_dtype else block.astype(np.float32)
        block = block[:, self._ch_sel, self.t_idx]
        out = np.empty_like(block)
        out[order] = block
        return out

    def augment_rows(
        self, block: np.ndarray, images: np.ndarray, reps: np.ndarray | None = None
    ) -> np.ndarray:
        """Training rows ``block`` (n, chans, times; channels and time window selected) of the samples
        ``(images[i], reps[i])`` (``reps`` None: repetition means) with ``options.augment`` applied: the same
        rows and channels every call (:meth:`eegdecode.data.augment.Smoothing.chosen`). Smoothed single trials
        are rounded to the cache dtype, so a float16 and a float32 read of a trial agree. No augmentation:
        ``block`` itself."""
        if self.augment is None:
            return block
        chosen = self.augment.chosen(self.name, images, reps, self.ch_idx)
        return self.augment.apply(block, chosen, self.cache.train.dtype if reps is not None else None)

    def train_samples(self, images: np.ndarray, reps: np.ndarray | None = None, keep_dtype: bool = False
                      ) -> np.ndarray:  # fmt: skip
        """Training samples as the model sees them: :meth:`read` of the training split, then
        :meth:`augment_rows` (validation queries and embeddings use :meth:`read`, never augmented)."""
        return self.augment_rows(self.read("train", images, reps, keep_dtype), images, reps)


def image_concepts_from_counts(n_images: int, n_concepts: int, path: Path | None = None) -> np.ndarray:
    """Concept index of every image when concepts hold equal, consecutive blocks of images (THINGS layout)."""
    if n_concepts <= 0 or n_images % n_concepts:
        raise DataFormatError(
            path, "images do not divide evenly into concepts", f"a multiple of {n_concepts}", n_images
        )
    return np.repeat(np.arange(n_concepts), n_images // n_concepts)


def split_concepts(
    n_concepts: int, val_fraction: float = 0.05, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of training concepts into (train, validation) concept indices, both sorted."""
    n_val = int(round(n_concepts * val_fraction))
    if val_fraction > 0 and n_val == 0:
        n_val = 1
    if n_val >= n_concepts:
        raise ConfigError(f"val_fraction {val_fraction} leaves no training concept out of {n_concepts}")
    perm = np.random.default_rng(np.random.SeedSequence([seed, 4242])).permutation(n_concepts)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def images_of(concepts: np.ndarray, image_concept: np.ndarray) -> np.ndarray:
    """Indices of the images whose concept is in ``concepts`` (in image order)."""
    return np.flatnonzero(np.isin(image_concept, concepts))


class TrialDataset(torch.utils.data.Dataset):
    """Training samples of one or several subjects.

    Each item is a dict: ``eeg`` float32 (chans, times), ``image`` (index into the training image features),
    ``concept`` (index into the training text features), ``subject`` (subject-layer index). Use
    :func:`make_loader`, which batches through ``__getitems__``.
    """

    def __init__(
        self,
        subjects: Sequence[SubjectData],
        images: np.ndarray,
        image_concept: np.ndarray,
        subject_layers: Sequence[int] | None = None,
        unit: str = "trial",
        keep_dtype: bool = False,
    ):
        check_option("unit", unit, TRAIN_UNITS)
        self.keep_dtype = keep_dtype and unit == "trial"
        if not subjects:
            raise ConfigError("TrialDataset needs at least one subject")
        shapes = {(s.n_chans, s.n_times) for s in subjects}
        if len(shapes) != 1:
            raise ConfigError(f"subjects disagree in (channels, times) after selection: {sorted(shapes)}")
        self.subjects = list(subjects)
        self.layers = list(subject_layers) if subject_layers is not None else list(range(len(subjects)))
        self.unit = unit
        self.image_concept = np.asarray(image_concept)
        images = np.asarray(images, dtype=np.int64)
        rows = []
        for si, s in enumerate(self.subjects):
            n_img, n_rep = s.cache.train.shape[:2]
            if n_img != self.image_concept.size:
                raise DataFormatError(
                    s.cache.path / "train.npy",
                    "training images disagree with the image set",
                    self.image_concept.size,
                    n_img,
                )
            if unit == "trial":
                img = np.repeat(images, n_rep)
                rep = np.tile(np.arange(n_rep), images.size)
            else:
                img, rep = images, np.full(images.size, -1)
            rows.append(np.stack([np.full(img.size, si), img, rep], axis=1))
        self.index = np.concatenate(rows).astype(np.int64)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def n_chans(self) -> int:
        return self.subjects[0].n_chans

    @property
    def n_times(self) -> int:
        return self.subjects[0].n_times

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        rows = self.index[np.asarray(indices, dtype=np.int64)]
        dtype = self.subjects[0].cache.train.dtype if self.keep_dtype else np.float32
        eeg = np.empty((len(rows), self.n_chans, self.n_times), dtype=dtype)
        for si in np.unique(rows[:, 0]):
            sel = np.flatnonzero(rows[:, 0] == si)
            reps = None if self.unit == "average" else rows[sel, 2]
            eeg[sel] = self.subjects[si].train_samples(rows[sel, 1], reps, keep_dtype=self.keep_dtype)
        return {
            "eeg": torch.from_numpy(eeg),
            "image": torch.from_numpy(rows[:, 1].copy()),
            "concept": torch.from_numpy(self.image_concept[rows[:, 1]].astype(np.int64)),
            "subject": torch.tensor([self.layers[i] for i in rows[:, 0]], dtype=torch.long),
        }

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.__getitems__([i]).items()}


def _passthrough(batch):
    return batch


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
    """The sample order of one epoch: a permutation seeded by ``(seed, epoch)`` only (the determinism invariant
    shared by every batch source, on every device and process count)."""
    if not shuffle:
        return np.arange(n)
    return np.random.default_rng(np.random.SeedSequence([seed, epoch, 77])).permutation(n)


def epoch_batches(n: int, batch_size: int, seed: int = 0, epoch: int = 0, rank: int = 0, world: int = 1,
                  shuffle: bool = True, drop_last: bool = False) -> list[np.ndarray]:  # fmt: skip
    """This process's batches of one epoch (index arrays), as :class:`EpochBatchSampler` describes."""
    if batch_size % world:
        raise ConfigError(f"batch_size {batch_size} must be divisible by the number of processes {world}")
    drop_last = drop_last or (n % batch_size) % world != 0
    order = epoch_order(n, seed, epoch, shuffle)
    local = batch_size // world
    out = []
    for start in range(0, n, batch_size):
        batch = order[start : start + batch_size]
        if len(batch) < batch_size and (drop_last or len(batch) == 0):
            break
        size = len(batch) // world if len(batch) < batch_size else local
        out.append(batch[rank * size : (rank + 1) * size])
    return out


class EpochBatchSampler(torch.utils.data.Sampler):
    """Batches of one epoch from a permutation seeded by ``(seed, epoch)``.

    With ``world`` processes, every global batch of ``batch_size`` samples is split into ``world`` equal slices and
    rank ``r`` gets slice ``r``: gathered across processes, the batches are exactly those of a single process, so a
    distributed run optimises the same sequence of batches. The order does not depend on anything but the seed and
    the epoch, so a resumed run sees the same batches as an uninterrupted one.
    """

    def __init__(self, n: int, batch_size: int, seed: int = 0, epoch: int = 0, rank: int = 0, world: int = 1,
                 shuffle: bool = True, drop_last: bool = False):  # fmt: skip
        if batch_size % world:
            raise ConfigError(f"batch_size {batch_size} must be divisible by the number of processes {world}")
        self.n, self.batch_size, self.seed, self.epoch = n, batch_size, seed, epoch
        self.rank, self.world, self.shuffle = rank, world, shuffle
        # A last, smaller batch is kept only when it splits evenly across processes.
        self.drop_last = drop_last or (n % batch_size) % world != 0

    def __iter__(self):
        for batch in epoch_batches(self.n, self.batch_size, self.seed, self.epoch, self.rank, self.world,
                                   self.shuffle, self.drop_last):  # fmt: skip
            yield batch.tolist()

    def __len__(self) -> int:
        full, rest = divmod(self.n, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)


def make_loader(
    dataset: TrialDataset,
    batch_size: int,
    shuffle: bool = True,
    seed: int = 0,
    epoch: int = 0,
    rank: int = 0,
    world: int = 1,
    num_workers: int = 0,
    drop_last: bool = False,
) -> torch.utils.data.DataLoader:
    """A DataLoader over :class:`EpochBatchSampler`; each batch is one gather per subject.

    ``batch_size`` is the global batch; each of ``world`` processes receives ``batch_size / world`` samples.
    """
    sampler = EpochBatchSampler(len(dataset), batch_size, seed, epoch, rank, world, shuffle, drop_last)
    return torch.utils.data.DataLoader(
        dataset, batch_sampler=sampler, num_workers=num_workers, collate_fn=_passthrough
    )


def averaged_eeg(subject: SubjectData, split: str, images: np.ndarray | None = None, n_reps: int | None = None,
                 chunk: int | None = None) -> np.ndarray:  # fmt: skip
    """Queries for evaluation: float32 (n_images, chans, times), the mean of the first ``n_reps`` repetitions
    (all when ``None``).

    Read ``chunk`` images at a time (default: as many as fit in :data:`~eegdecode.data.things_eeg2.BLOCK_BYTES`
    once converted to float32; 6 images of a full-scale test set, 80 x 63 x 250), only the repetitions averaged,
    with :func:`~eegdecode.data.cache.gather` (no mapped page of the file made resident): the transient memory is
    one block, not the 0.5 GB that 64 full-scale test images took in float32. The values do not depend on
    ``chunk``.
    """
    arr = subject.split_array(split)
    images = np.arange(arr.shape[0]) if images is None else np.asarray(images)
    n_avail = arr.shape[1]
    if n_reps is not None and n_reps > n_avail:
        raise ConfigError(f"n_reps={n_reps} but {subject.name} {split} has only {n_avail} repetitions")
    reps = slice(0, n_reps or n_avail)
    # bytes of one image's averaged trials in float32
    per_image = (n_reps or n_avail) * int(np.prod(arr.shape[2:])) * 4
    chunk = chunk or max(1, BLOCK_BYTES // per_image)
    out = np.empty((images.size, subject.n_chans, subject.n_times), dtype=np.float32)
    for start in range(0, images.size, chunk):
        img = images[start : start + chunk]
        n = reps.stop
        block = gather(
            arr, np.repeat(img, n), np.tile(np.arange(n), img.size)
        )  # only the repetitions averaged
        block = block.reshape(img.size, n, *arr.shape[2:]).astype(np.float32).mean(axis=1)
        out[start : start + chunk] = block[:, subject._ch_sel, subject.t_idx]
        del block
    return out


@dataclass
class Fold:
    """One train/test assignment of subjects.

    ``subject_layer`` maps each subject to its subject-specific layer; ``n_subject_layers`` is the number of such
    layers the model needs. In ``loso`` all training subjects share one layer, which the unseen subject uses too.
    """

    name: str
    protocol: str
    train_subjects: list[str]
    test_subjects: list[str]
    subject_layer: dict[str, int] = field(default_factory=dict)

    @property
    def n_subject_layers(self) -> int:
        return max(self.subject_layer.values()) + 1


def make_folds(
    protocol: str, subjects: Sequence[int | str], targets: Sequence[int | str] | None = None
) -> list[Fold]:
    """Folds of a protocol.

    intra: one fold per target subject, trained and tested on it.
    loso: one fold per target subject, trained on all the others (a fresh model per fold), tested on it.
    joint: one fold trained on all subjects (subject layers routed by each sample's subject), tested on the targets.
    """
    check_option("protocol", protocol, PROTOCOLS)
    subjects = [subject_name(s) for s in subjects]
    if len(set(subjects)) != len(subjects):
        raise ConfigError(f"subjects listed twice: {subjects}")
    targets = subjects if targets is None else [subject_name(s) for s in targets]
    missing = [t for t in targets if t not in subjects]
    if missing:
        raise ConfigError(f"target subjects {missing} are not among the subjects {subjects}")
    if protocol == "intra":
        return [Fold(t, protocol, [t], [t], {t: 0}) for t in targets]
    if protocol == "loso":
        if len(subjects) < 2:
            raise ConfigError("protocol 'loso' needs at least two subjects")
        return [
            Fold(t, protocol, [s for s in subjects if s != t], [t], {s: 0 for s in subjects}) for t in targets
        ]
    return [Fold("joint", protocol, subjects, targets, {s: i for i, s in enumerate(subjects)})]
