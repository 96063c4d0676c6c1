"""Encoders by name: one factory for every script, config file and command-line flag.

``build_encoder("NervformerV2", n_chans=63, n_times=250)`` returns a ready model; names are case-insensitive and
a few aliases are accepted (``nerv``, ``atms``, ``nice``, ...). The braindecode baselines are imported only when
one is built, so importing this module stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from torch import nn

from eegdecode.errors import ConfigError


class UnknownOptionError(ConfigError, TypeError):
    """A model option the encoder does not take."""


# Canonical name -> (module, class). One line per encoder; the summary table is generated from these.
_ENCODERS: dict[str, tuple[str, str]] = {
    "NervformerV2": ("eegdecode.models.nervformer_v2", "NervformerV2"),
    "NervformerV1": ("eegdecode.models.nervformer_v1", "NervformerV1"),
    "MUSE_EEG": ("eegdecode.models.muse_eeg", "MUSE_EEG"),
    "ATMS_50": ("eegdecode.models.atms", "ATMS_50"),
    "NICE_EEG": ("eegdecode.models.nice_eeg", "NICE_EEG"),
    "EEGProject": ("eegdecode.models.eeg_project", "EEGProject"),
    "TSConv": ("eegdecode.models.tsconv", "TSConv"),
    "BlurEEGEncoder": ("eegdecode.models.blur_eeg", "BlurEEGEncoder"),
    "EEGNet": ("eegdecode.models.braindecode_baselines", "EEGNetEncoder"),
    "ShallowFBCSPNet": ("eegdecode.models.braindecode_baselines", "ShallowFBCSPNetEncoder"),
    "EEGConformer": ("eegdecode.models.braindecode_baselines", "EEGConformerEncoder"),
    "ridge": ("eegdecode.models.ridge", "RidgeEncoder"),
}

_ALIASES: dict[str, str] = {
    "nerv": "NervformerV2",
    "nervformer": "NervformerV2",
    "nervformer_v2": "NervformerV2",
    "nervformer_v1": "NervformerV1",
    "muse": "MUSE_EEG",
    "muse_eeg": "MUSE_EEG",
    "atm": "ATMS_50",
    "atms": "ATMS_50",
    "atm_s": "ATMS_50",
    "atm-s": "ATMS_50",
    "atms50": "ATMS_50",
    "nice": "NICE_EEG",
    "eeg_project": "EEGProject",
    "eegprojectlayer": "EEGProject",
    "ts_conv": "TSConv",
    "brain_visual_encoder_eeg": "BlurEEGEncoder",
    "blur_eeg": "BlurEEGEncoder",
    "eegnetv4": "EEGNet",
    "shallow": "ShallowFBCSPNet",
    "shallowconvnet": "ShallowFBCSPNet",
    "conformer": "EEGConformer",
    "linear": "ridge",
    "ridge_regression": "ridge",
}

_LOOKUP: dict[str, str] = {name.lower(): name for name in _ENCODERS}
_LOOKUP.update(_ALIASES)


def list_encoders() -> list[str]:
    """Canonical names of every encoder, in the order of the summary table."""
    return list(_ENCODERS)


def resolve_encoder_name(name: str) -> str:
    """Canonical name for ``name`` (case-insensitive, aliases allowed).

    Raises
    ------
    ValueError
        If the name is unknown; the message lists the known names and aliases.
    """
    key = str(name).strip().lower()
    if key not in _LOOKUP:
        raise ConfigError(
            f"Invalid value for encoder name: {name!r}; known encoders are {list_encoders()} "
            f"(case-insensitive; aliases {sorted(_ALIASES)})"
        )
    return _LOOKUP[key]


def encoder_class(name: str) -> type[nn.Module]:
    """The class behind an encoder name."""
    module_name, class_name = _ENCODERS[resolve_encoder_name(name)]
    return getattr(importlib.import_module(module_name), class_name)


def build_encoder(
    name: str, n_chans: int, n_times: int, n_outputs: int = 1024, n_subjects: int = 1, **options: Any
) -> nn.Module:
    """Build an encoder by name.

    Parameters
    ----------
    name : str
        One of :func:`list_encoders` (case-insensitive) or an alias such as ``nerv``, ``atms``, ``nice``,
        ``muse``.
    n_chans, n_times : int
        Input size.
    n_outputs : int
        Embedding size.
    n_subjects : int
        Number of subject-specific layers (NervformerV2, ATMS_50); accepted and ignored by the others.
    **options
        Model-specific keyword options (see each class).

    Returns
    -------
    nn.Module
        The encoder; ``forward(x, subject_idx=None) -> (batch, n_outputs)``.
    """
    cls = encoder_class(name)
    try:
        return cls(n_chans, n_times, n_outputs, n_subjects, **options)
    except TypeError as err:
        if "unexpected keyword argument" in str(err):
            raise UnknownOptionError(
                f"{resolve_encoder_name(name)}: {err}; see help({cls.__module__}.{cls.__name__})"
            ) from err
        raise
