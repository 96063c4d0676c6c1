"""Exceptions that tell the user which file was wrong, what was expected and what was found."""

from __future__ import annotations

from pathlib import Path


class EEGDecodeError(Exception):
    """Base class of every error this package raises on purpose.

    The command line prints it as one line and exits with :attr:`exit_code`: 2 for a wrong option or argument
    (usage), 1 for a problem with files or data.
    """

    exit_code = 1


class ConfigError(EEGDecodeError, ValueError):
    """An option or argument has a value that cannot work; the message names it, the value and what is allowed."""

    exit_code = 2


class DataFormatError(EEGDecodeError, ValueError):
    """A file does not have the layout, keys, shapes or values the reader expects.

    The message always names the file, the expected and the found value.
    """

    def __init__(self, path: str | Path | None, what: str, expected: object = None, found: object = None):
        parts = [f"{path}: {what}" if path is not None else what]
        if expected is not None:
            parts.append(f"expected {expected}")
        if found is not None:
            parts.append(f"found {found}")
        super().__init__("; ".join(parts))
        self.path = None if path is None else Path(path)
        self.expected = expected
        self.found = found


class MissingFileError(EEGDecodeError, FileNotFoundError):
    """A file or folder the step needs does not exist; the message says what creates it."""

    def __init__(self, path: str | Path, hint: str = ""):
        msg = f"{path}: not found"
        if hint:
            msg += f". {hint}"
        super().__init__(msg)
        self.path = Path(path)


class WeightsNotFoundError(MissingFileError):
    """Model weights are not on disk; nothing is ever downloaded at run time."""


class OutputExistsError(EEGDecodeError, FileExistsError):
    """Refuse to overwrite results or checkpoints unless the user asked for it."""

    exit_code = 2

    def __init__(self, path: str | Path, flag: str = "--overwrite"):
        super().__init__(f"{path} already exists; pass {flag} to replace it, or choose another output folder")
        self.path = Path(path)


def check_option(name: str, value: object, allowed) -> None:
    """Raise :class:`ConfigError` (a ValueError) naming the parameter, the value given and the values allowed."""
    allowed = list(allowed)
    if value not in allowed:
        raise ConfigError(f"Invalid value for {name}: {value!r}; allowed values are {allowed}")
