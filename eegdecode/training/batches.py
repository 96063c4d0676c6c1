"""Batch sources: where the training batches of an epoch come from.

Both sources yield the same :class:`Batch` objects, in the same order (:func:`eegdecode.data.datasets.epoch_batches`:
a permutation seeded by ``(seed, epoch)``, the same for 1 or N processes), with the same values, so the choice
changes speed, not results:

- :class:`DeviceBatches`: the fold's training EEG (channels and time window selected; single trials in the cache's
  dtype, or repetition means in float32) is copied to the training device once; each batch is
  gathered there by index (one indexing op per tensor, no host work, no host synchronisation). On CPU the
  "device" is RAM.
- :class:`HostBatches`: each batch is gathered from the cache files on the host (single trials kept in float16;
  positional reads, :func:`eegdecode.data.cache.gather`, so no page of the file stays resident), in a background thread that prepares the next batch while the device computes, pinned when the
  device is a GPU, and converted on the device.

:func:`make_batch_source` picks one (``TrainConfig.batches``; ``auto``: :func:`auto_batches`, the host on the CPU,
the device on an accelerator when the data fit in half its free memory).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from eegdecode.data.cache import gather
from eegdecode.data.datasets import SubjectData, TrialDataset, epoch_batches

log = logging.getLogger(__name__)


@dataclass
class Batch:
    """One training batch on the device: EEG (float32), each sample's subject layer, image index, and sample index
    (its row in the training set, for per-sample state such as a blur level). Targets are gathered from the image
    index by :class:`eegdecode.training.targets.TrainTargets`."""

    eeg: torch.Tensor
    subject: torch.Tensor
    image: torch.Tensor
    sample: torch.Tensor


class DeviceBatches:
    """Every training sample of the fold resident on ``device``; batches gathered there.

    Only the images the dataset samples are copied (the validation images, 5% of a subject, are not training
    samples). Memory: single trials take ``n_subjects x n_train_images x n_reps x chans x times`` values of the
    cache's dtype (1.98 GB for a full-scale subject's 15,710 training images at 63 x 250 in float16); repetition
    means take ``n_subjects x n_train_images x chans x times`` float32 values.
    """

    def __init__(self, dataset: TrialDataset, batch_size: int, seed: int, device: torch.device, rank: int = 0,
                 world: int = 1, drop_last: bool = False, chunk: int = 256):  # fmt: skip
        self.n, self.batch_size, self.seed = len(dataset), batch_size, seed
        self.rank, self.world, self.drop_last = rank, world, drop_last
        self.device, self.unit = device, dataset.unit
        images = _sampled_images(dataset)
        row = np.full(dataset.image_concept.size, -1, dtype=np.int64)  # image -> its row in the resident copy
        row[images] = np.arange(images.size)
        self.n_rows = images.size
        self.row = torch.as_tensor(row, device=device)
        self.index = torch.as_tensor(dataset.index, device=device)
        self.layer = torch.as_tensor(dataset.layers, dtype=torch.long, device=device)
        blocks = [_resident(s, images, dataset.unit, device, chunk) for s in dataset.subjects]
        self.data = blocks[0] if len(blocks) == 1 else torch.cat(blocks)

    @staticmethod
    def nbytes(dataset: TrialDataset) -> int:
        """Bytes the resident copy of ``dataset`` takes on the device."""
        s = dataset.subjects[0]
        n_reps = s.cache.train.shape[1]
        per_image = (
            s.n_chans * s.n_times * (n_reps * s.cache.train.dtype.itemsize if dataset.unit == "trial" else 4)
        )
        return len(dataset.subjects) * _sampled_images(dataset).size * per_image

    def __len__(self) -> int:
        return len(self._batches(0))

    def _batches(self, epoch: int) -> list[np.ndarray]:
        return epoch_batches(
            self.n, self.batch_size, self.seed, epoch, self.rank, self.world, True, self.drop_last
        )

    def epoch(self, epoch: int) -> Iterator[Batch]:
        _dataloader_seed_draw()
        batches = self._batches(epoch)
        if not batches:
            return
        # One host-to-device copy of the epoch's order; every batch is a slice of it.
        order = torch.as_tensor(np.concatenate(batches), device=self.device)
        start = 0
        for b in batches:
            sample = order[start : start + len(b)]
            start += len(b)
            subject, image, rep = self.index[sample].unbind(1)
            flat = subject * self.n_rows + self.row[image]
            eeg = self.data[flat, rep] if self.unit == "trial" else self.data[flat]
            yield Batch(eeg.float(), self.layer[subject], image, sample)


def _sampled_images(dataset: TrialDataset) -> np.ndarray:
    """The images (sorted) of which ``dataset`` has samples: the same for every subject of a fold."""
    return np.unique(dataset.index[:, 1])


def _dataloader_seed_draw() -> None:
    """Draw from torch's global generator as the DataLoader-based trainer before these batch sources did each epoch,
    so a seed gives the same dropout masks, hence the same numbers, as before: a ``DataLoader`` draws its base seed
    whenever an iterator starts, and wrapping it in ``tqdm.auto`` started two (tqdm's async ``__init__`` calls
    ``iter`` once, the loop once more)."""
    for _ in range(2):
        torch.empty((), dtype=torch.int64).random_()


def _resident(
    subject: SubjectData, images: np.ndarray, unit: str, device: torch.device, chunk: int
) -> torch.Tensor:
    """One subject's training EEG of ``images`` (sorted) on ``device``: (n_images, n_reps, chans, times) in the
    cache dtype for single trials, (n_images, chans, times) float32 repetition means otherwise (the values the host
    path computes), with ``DataOptions.augment`` applied as :meth:`~eegdecode.data.datasets.SubjectData.train_samples`
    applies it. Read ``chunk`` images at a time with positional reads (no page of the file made resident)."""
    arr = subject.cache.train
    n_img, n_reps = images.size, arr.shape[1]
    if unit == "trial":
        dtype = torch.float16 if arr.dtype == np.float16 else torch.float32
        out = torch.empty((n_img, n_reps, subject.n_chans, subject.n_times), dtype=dtype, device=device)
    else:
        out = torch.empty((n_img, subject.n_chans, subject.n_times), dtype=torch.float32, device=device)
    for start in range(0, n_img, chunk):
        block_images = images[start : start + chunk]
        if unit == "trial":
            block = np.ascontiguousarray(gather(arr, block_images)[:, :, subject._ch_sel, subject.t_idx])
            if subject.augment is not None:  # the host path's rows: (image, rep) pairs, image-major
                flat = block.reshape(-1, *block.shape[2:])
                rep = np.tile(np.arange(n_reps), block_images.size)
                block = subject.augment_rows(flat, np.repeat(block_images, n_reps), rep).reshape(block.shape)
        else:
            block = subject.train_samples(block_images)
        out[start : start + len(block_images)] = torch.from_numpy(block).to(device)
        del block
    return out


class HostBatches:
    """Batches gathered from the memory-mapped cache on the host, one batch ahead in a background thread."""

    def __init__(self, dataset: TrialDataset, batch_size: int, seed: int, device: torch.device, rank: int = 0,
                 world: int = 1, drop_last: bool = False, prefetch: int = 2):  # fmt: skip
        self.dataset, self.device = dataset, device
        self.batch_size, self.seed, self.rank, self.world, self.drop_last = (
            batch_size,
            seed,
            rank,
            world,
            drop_last,
        )
        self.prefetch = prefetch
        self.pin = device.type == "cuda"

    def __len__(self) -> int:
        return len(self._batches(0))

    def _batches(self, epoch: int) -> list[np.ndarray]:
        n = len(self.dataset)
        return epoch_batches(
            n, self.batch_size, self.seed, epoch, self.rank, self.world, True, self.drop_last
        )

    def _read(self, idx: np.ndarray) -> dict[str, torch.Tensor]:
        items = self.dataset.__getitems__(idx)
        items["sample"] = torch.from_numpy(np.asarray(idx, dtype=np.int64))
        if self.pin:
            items = {k: v.pin_memory() for k, v in items.items()}
        return items

    def epoch(self, epoch: int) -> Iterator[Batch]:
        _dataloader_seed_draw()
        for items in _background((self._read(b) for b in self._batches(epoch)), self.prefetch):
            to = {
                k: items[k].to(self.device, non_blocking=True) for k in ("eeg", "subject", "image", "sample")
            }
            yield Batch(to["eeg"].float(), to["subject"], to["image"], to["sample"])


def _background(items: Iterator, depth: int) -> Iterator:
    """Iterate ``items`` in a daemon thread, ``depth`` items ahead (numpy gathers release the GIL)."""
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    done = object()
    stop = threading.Event()

    def work():
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as exc:  # handed to the consumer, raised there
            q.put(exc)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def _free_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        return int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return 0


def auto_batches(device: torch.device, need: int, free: int) -> str:
    """What ``batches="auto"`` picks: on the CPU ``host`` (RAM is the host: a resident copy would duplicate the
    pages the kernel already caches, 2 GB for a full-scale subject, for no speed: the batches are gathered from
    RAM either way); on an accelerator ``device`` when the training EEG (``need`` bytes) fits in half its
    ``free`` memory, else ``host``."""
    if device.type == "cpu":
        return "host"
    return "device" if need <= free // 2 else "host"


def make_batch_source(kind: str, dataset: TrialDataset, batch_size: int, seed: int, device: torch.device,
                      rank: int = 0, world: int = 1, drop_last: bool = False):  # fmt: skip
    """The batch source ``kind`` (``auto`` | ``device`` | ``host``) over ``dataset``."""
    if kind == "auto":
        need, free = DeviceBatches.nbytes(dataset), _free_bytes(device)
        kind = auto_batches(device, need, free)
        log.info(
            "batches: %s (training EEG %.2f GB, %.2f GB free on %s)", kind, need / 1e9, free / 1e9, device
        )
    cls = DeviceBatches if kind == "device" else HostBatches
    return cls(dataset, batch_size, seed, device, rank, world, drop_last)
