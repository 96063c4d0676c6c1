"""EEG augmentation of training samples, fixed when the data are loaded (``DataOptions.augment``).

Only ``smooth`` exists: the "frozen EEG prior" of NeuroBridge (Zhang et al., AAAI 2026,
github.com/feroooooo/NeuroBridge, ``module/eeg_augmentation.py`` ``RandomSmooth`` with ``--frozen_eeg_prior``
in ``module/dataset.py``) and SAMGA (Jiang et al., arXiv 2604.17782, github.com/LinJiang8/SAMGA, the same
code): each channel of each training sample is, with probability ``p``, replaced by its moving average along
time (``kernel`` samples centred on each sample; at the two ends the mean of the samples that exist, not
zero-padded). Their code draws this once when it loads the training set, after channel selection, time window
and (with ``--data_average``) the average over repetitions; validation and test EEG are never smoothed (their
``--eeg_test_aug`` is off in every released script).

Here nothing is copied or smoothed up front: whether a channel of a sample is smoothed is a seeded hash of
``(seed, subject, image, repetition, channel)`` (:meth:`Smoothing.chosen`), so the same channels of the same
trials are smoothed in every epoch, by both batch sources, for every batch size, and the smoothing is applied
to the rows of a batch as they are read (:func:`moving_average`). A repetition mean (``train_unit: average``)
is a sample of its own, with its own draw (repetition code ``-1``), smoothed after the averaging, as in their
code. The draw is by cache channel, so a channel's draw does not depend on which other channels are selected.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from eegdecode.errors import ConfigError

#: augmentations ``DataOptions.augment`` knows
AUGMENTS = ("smooth",)
#: keys of ``augment.smooth`` (``seed`` is optional, default 0)
SMOOTH_KEYS = ("kernel", "p", "seed")

_OPTION = "data.augment"
_M1, _M2, _GOLDEN = (
    np.uint64(0xBF58476D1CE4E5B9),
    np.uint64(0x94D049BB133111EB),
    np.uint64(0x9E3779B97F4A7C15),
)


def _bad(found: Any, expected: str) -> ConfigError:
    return ConfigError(f"Invalid value for {_OPTION}: {found!r}; expected {expected}")


def parse_augment(value: Any) -> dict[str, Any] | None:
    """``DataOptions.augment`` checked and written out in full (``None`` or ``{}``: no augmentation).

    ``{"smooth": {"kernel": K, "p": P, "seed": S}}``: K an odd integer >= 1, 0 <= P <= 1, S an integer >= 0
    (default 0). Anything else raises one :class:`~eegdecode.errors.ConfigError` line naming ``data.augment``.
    """
    if value is None or (isinstance(value, dict) and not value):
        return None
    if not isinstance(value, dict):
        raise _bad(value, "a mapping such as {smooth: {kernel: 5, p: 0.3}}")
    unknown = sorted(set(value) - set(AUGMENTS))
    if unknown:
        raise _bad(value, f"the keys {list(AUGMENTS)}; found {unknown}")
    smooth = value["smooth"]
    if not isinstance(smooth, dict):
        raise _bad(value, "smooth to be a mapping {kernel: K, p: P}")
    unknown = sorted(set(smooth) - set(SMOOTH_KEYS))
    missing = [k for k in ("kernel", "p") if k not in smooth]
    if unknown or missing:
        raise _bad(value, f"smooth to have the keys kernel, p (and optionally seed); found {sorted(smooth)}")
    kernel, p, seed = smooth["kernel"], smooth["p"], smooth.get("seed", 0)
    if isinstance(kernel, bool) or not isinstance(kernel, int) or kernel < 1 or kernel % 2 == 0:
        raise _bad(value, f"smooth.kernel an odd integer >= 1 (samples); found {kernel!r}")
    if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p <= 1.0:
        raise _bad(value, f"smooth.p a probability 0 <= p <= 1; found {p!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise _bad(value, f"smooth.seed an integer >= 0; found {seed!r}")
    return {"smooth": {"kernel": kernel, "p": float(p), "seed": seed}}


def moving_average(x: np.ndarray, kernel: int) -> np.ndarray:
    """The centred moving average of ``x`` along its last axis, in ``x``'s dtype (float16 computed in float32).

    ``out[..., t]`` is the mean of ``x[..., max(0, t - h) : min(T, t + h + 1)]`` with ``h = kernel // 2``: at the
    ends only the samples that exist are averaged. The terms are added in time order, so a value is the same
    whatever the rest of the array (no dependence on the batch).
    """
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"kernel must be an odd integer >= 1, found {kernel}")
    work = np.result_type(x.dtype, np.float32)
    xs = np.asarray(x, dtype=work)
    n_t, h = xs.shape[-1], kernel // 2
    total = np.zeros_like(xs)
    for k in range(-h, h + 1):  # add x[t + k] for every t it exists for, k in increasing order
        lo, hi = max(0, -k), min(n_t, n_t - k)
        if lo < hi:
            total[..., lo:hi] += xs[..., lo + k : hi + k]
    t = np.arange(n_t)
    count = (np.minimum(n_t - 1, t + h) - np.maximum(0, t - h) + 1).astype(work)
    return (total / count).astype(x.dtype, copy=False)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser (Steele et al. 2014), element-wise on uint64 (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(30))
        x = x * _M1
        x = x ^ (x >> np.uint64(27))
        x = x * _M2
        return x ^ (x >> np.uint64(31))


@dataclass(frozen=True)
class Smoothing:
    """NeuroBridge's ``RandomSmooth`` as a fixed, seeded choice of (sample, channel) pairs (module docstring)."""

    kernel: int = 5
    p: float = 0.3
    seed: int = 0

    def chosen(self, subject: str, images: np.ndarray, reps: np.ndarray | None, channels: np.ndarray
               ) -> np.ndarray:  # fmt: skip
        """bool (n, n_channels): which channels (cache channel indices) of the samples ``(images[i], reps[i])``
        are smoothed; ``reps`` None for repetition means. A seeded hash, no state: the same answer every call."""
        images = np.asarray(images, dtype=np.int64)
        reps = np.full(images.shape, -1, dtype=np.int64) if reps is None else np.asarray(reps, dtype=np.int64)
        if self.p <= 0.0 or images.size == 0:
            return np.zeros((images.size, np.size(channels)), dtype=bool)
        with np.errstate(over="ignore"):
            base = splitmix64(
                np.array([self.seed], dtype=np.uint64) * _GOLDEN + np.uint64(zlib.crc32(subject.encode()))
            )
            h = splitmix64(base ^ splitmix64(images.astype(np.uint64) + np.uint64(1)))
            h = splitmix64(h ^ splitmix64((reps + 2).astype(np.uint64) * _GOLDEN))
            ch = splitmix64((np.asarray(channels, dtype=np.int64) + 3).astype(np.uint64) * _M1)
            h = splitmix64(h[:, None] ^ ch[None, :])
        u = (h >> np.uint64(11)).astype(np.float64) * 2.0**-53
        return u < self.p

    def apply(self, block: np.ndarray, chosen: np.ndarray, dtype: np.dtype | None = None) -> np.ndarray:
        """``block`` (n, chans, times) with the ``chosen`` (n, chans) rows replaced by their moving average.

        The smoothed values are rounded to ``dtype`` (default ``block``'s; the cache dtype for single trials, so
        that float16 and float32 reads of a trial agree); ``block`` itself is not changed."""
        if not chosen.any():
            return block
        out = block.copy()
        rows = block[chosen]
        smooth = moving_average(rows.astype(np.float32) if rows.dtype == np.float16 else rows, self.kernel)
        out[chosen] = smooth.astype(dtype or block.dtype).astype(block.dtype)
        return out


def make_augment(options: dict[str, Any] | None) -> Smoothing | None:
    """The augmentation a (parsed) ``DataOptions.augment`` describes, or ``None``."""
    if not options:
        return None
    s = options["smooth"]
    return Smoothing(s["kernel"], s["p"], s["seed"])
