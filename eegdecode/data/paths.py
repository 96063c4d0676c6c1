"""Where a data set lives on disk. Paths come from flags or the ``EEGDECODE_DATA`` variable, never from code.

A data root holds the folders of the THINGS-EEG2 releases side by side::

    <root>/Preprocessed_data_250Hz/sub-XX/preprocessed_eeg_{training,test}.npy   (NICE/ATM 250 Hz, 63 ch)
    <root>/preprocessed_data/sub-XX/preprocessed_eeg_{training,test}.npy         (Gifford 100 Hz, 17 ch)
    <root>/image_set/{training_images,test_images,image_metadata.npy}
    <root>/features/<name>/                                                       (feature stores)
    <root>/Preprocessed_MEG_200Hz/sub-XX/preprocessed_eeg_{training,test}.npy     (THINGS-MEG, 271 ch, same format)
    <root>/cache/<release>/sub-XX/                                                (eegdecode prepare)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from eegdecode.errors import ConfigError, MissingFileError, check_option

ENV_DATA = "EEGDECODE_DATA"

RELEASES: dict[str, str] = {
    "250hz": "Preprocessed_data_250Hz",
    "100hz": "preprocessed_data",
    "meg": "Preprocessed_MEG_200Hz",
}
"""Release name -> folder name under the data root."""

SUBJECT_PATTERN = re.compile(r"^sub-\d{2,}$")


def resolve_data_root(path: str | os.PathLike | None) -> Path:
    """The data root from a flag, else from ``$EEGDECODE_DATA``; an error says how to set one."""
    if path is None:
        env = os.environ.get(ENV_DATA)
        if not env:
            raise ConfigError(
                f"No data root given: pass --data-root PATH or set {ENV_DATA}. "
                "`eegdecode simulate --out PATH` writes a simulated data set there."
            )
        path = env
    return Path(path).expanduser()


def subject_name(subject: int | str) -> str:
    """``1`` / ``"1"`` / ``"sub-01"`` -> ``"sub-01"``."""
    if isinstance(subject, int) or (isinstance(subject, str) and subject.isdigit()):
        return f"sub-{int(subject):02d}"
    if isinstance(subject, str) and SUBJECT_PATTERN.match(subject):
        return subject
    raise ConfigError(f"Invalid subject {subject!r}: expected a number (1) or a folder name (sub-01)")


@dataclass(frozen=True)
class DatasetPaths:
    root: Path
    release: str = "250hz"

    def __post_init__(self):
        check_option("release", self.release, RELEASES)
        object.__setattr__(self, "root", Path(self.root))

    @property
    def eeg_dir(self) -> Path:
        return self.root / RELEASES[self.release]

    def subject_dir(self, subject: int | str) -> Path:
        return self.eeg_dir / subject_name(subject)

    @property
    def expected_channels(self) -> tuple[str, ...] | None:
        """Channel names the release may hold (``None``: not checked, as for the 271 MEG sensors)."""
        from eegdecode.data.channels import THINGS_EEG2_CHANNELS

        return None if self.release == "meg" else THINGS_EEG2_CHANNELS

    @property
    def image_set_dir(self) -> Path:
        return self.root / "image_set"

    def features_dir(self, name: str) -> Path:
        return self.root / "features" / name

    def cache_dir(self, subject: int | str) -> Path:
        return self.root / "cache" / RELEASES[self.release] / subject_name(subject)

    def subjects(self) -> list[str]:
        """Subject folders present in the release folder, sorted."""
        if not self.eeg_dir.is_dir():
            raise MissingFileError(
                self.eeg_dir,
                f"expected the {RELEASES[self.release]!r} folder of the THINGS-EEG2 release under the data root "
                f"(or run `eegdecode simulate --out {self.root}`)",
            )
        subs = sorted(p.name for p in self.eeg_dir.iterdir() if p.is_dir() and SUBJECT_PATTERN.match(p.name))
        if not subs:
            raise MissingFileError(self.eeg_dir / "sub-01", "no sub-XX folders found")
        return subs
