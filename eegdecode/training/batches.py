"""Batch sources: where the training batches of an epoch come from.

Both sources yield the same :class:`Batch` objects, in the same order (:func:`eegdecode.data.datasets.epoch_batches`:
a permutation seeded by ``(seed, epoch)``, the same for 1 or N processes), with the same values, so the choice
changes speed, not results:

- :class:`DeviceBatches`: the fold's training EEG (channels and time window selected; single trials in the cache's
  dtype, or repetition means in float32) is copied to the training device once; each batch is
  gathered there by index (one indexing op per tensor, no host work, no host synchronisation). On CPU the
  "device" is RAM.
- :class:`HostBatches`: each batch is gathered from the memory-mapped cache on the host (single trials kept in
  float16), in a background thread that prepares the next batch while the device computes, pinned when the
  device is a GPU, and converted on the device.

:func:`make_batch_source` picks one (``TrainConfig.batches``: ``auto`` takes the device when the data fit in half
its free memory).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from eegdecode.data.datasets import SubjectData, TrialDataset, epoch_batches
from eegdecode.data.things_eeg2 import release_pages

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

    Memory: single trials take ``n_subjects x n_images x n_reps x chans x times`` values of the cache's dtype
    (2.1 GB for a full-scale subject at 63 x 250 in float16); repetition means take ``n_subjects x n_images x chans
    x times`` float32 values.
    """

    def __init__(self, dataset: TrialDataset, batch_size: int, seed: int, device: torch.device, rank: int = 0,
                 world: int = 1, drop_last: bool = False, chunk: int = 256):  # fmt: skip
        self.n, self.batch_size, self.seed = len(dataset), batch_size, seed
        self.rank, self.world, self.drop_last = rank, world, drop_last
        self.device, self.unit = device, dataset.unit
        self.n_images = dataset.image_concept.size
        self.index = torch.as_tensor(dataset.index, device=device)
        self.layer = torch.as_tensor(dataset.layers, dtype=torch.long, device=device)
        blocks = [_resident(s, dataset.unit, device, chunk) for s in dataset.subjects]
        self.data = blocks[0] if len(blocks) == 1 else torch.cat(blocks)

    @staticmethod
    def nbytes(dataset: TrialDataset) -> int:
        """Bytes the resident copy of ``dataset`` takes on the device."""
        s = dataset.subjects[0]
        n_img, n_reps = s.cache.train.shape[:2]
        per_image = (
            s.n_chans * s.n_times * (n_reps * s.cache.train.dtype.itemsize if dataset.unit == "trial" else 4)
        )
        return len(dataset.subjects) * n_img * per_image

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
            flat = subject * self.n_images + image
            eeg = self.data[flat, rep] if self.unit == "trial" else self.data[flat]
            yield Batch(eeg.float(), self.layer[subject], image, sample)


def _dataloader_seed_draw() -> None:
    """Draw from torch's global generator as the DataLoader-based trainer before these batch sources did each epoch,
    so a seed gives the same dropout masks, hence the same numbers, as before: a ``DataLoader`` draws its base seed
    whenever an iterator starts, and wrapping it in ``tqdm.auto`` started two (tqdm's async ``__init__`` calls
    ``iter`` once, the loop once more)."""
    for _ in range(2):
        torch.empty((), dtype=torch.int64).random_()


def _resident(subject: SubjectData, unit: str, device: torch.device, chunk: int) -> torch.Tensor:
    """One subject's training EEG on ``device``: (n_images, n_reps, chans, times) in the cache dtype for single
    trials, (n_images, chans, times) float32 repetition means otherwise (the values the host path computes)."""
    arr = subject.cache.train
    n_img, n_reps = arr.shape[:2]
    if unit == "trial":
        dtype = torch.float16 if arr.dtype == np.float16 else torch.float32
        out = torch.empty((n_img, n_reps, subject.n_chans, subject.n_times), dtype=dtype, device=device)
    else:
        out = torch.empty((n_img, subject.n_chans, subject.n_times), dtype=torch.float32, device=device)
    for start in range(0, n_img, chunk):
        images = np.arange(start, min(n_img, start + chunk))
        if unit == "trial":
            block = np.ascontiguousarray(arr[images][:, :, subject._ch_sel, subject.t_idx])
        else:
            block = subject.read("train", images)
        out[start : start + len(images)] = torch.from_numpy(block).to(device)
        release_pages(arr)  # copied: the mapped file's pages need not stay in this process's resident set
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


def make_batch_source(kind: str, dataset: TrialDataset, batch_size: int, seed: int, device: torch.device,
                      rank: int = 0, world: int = 1, drop_last: bool = False):  # fmt: skip
    """The batch source ``kind`` (``auto`` | ``device`` | ``host``) over ``dataset``."""
    if kind == "auto":
        need, free = DeviceBatches.nbytes(dataset), _free_bytes(device)
        kind = "device" if need <= free // 2 else "host"
        log.info(
            "batches: %s (training EEG %.2f GB, %.2f GB free on %s)", kind, need / 1e9, free / 1e9, device
        )
    cls = DeviceBatches if kind == "device" else HostBatches
    return cls(dataset, batch_size, seed, device, rank, world, drop_last)
