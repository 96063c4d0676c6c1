"""EEG/MEG encoders mapping an epoch ``(batch, n_chans, n_times)`` to a CLIP-space embedding ``(batch, 1024)``.

Every encoder shares the constructor ``(n_chans, n_times, n_outputs=1024, n_subjects=1, **options)`` and
``forward(x, subject_idx=None)``; build them by name with :func:`build_encoder`. Shared blocks live in their own
modules (``convolutions``, ``channel_attention``, ``subject_layers``, ``projection_head``, ``nervformer_core``);
one file per architecture family. The braindecode baselines are imported lazily (by name through the registry, or
from ``eegdecode.models.braindecode_baselines``).
"""

from eegdecode.models.atms import ATMS_50
from eegdecode.models.base import EEGEncoder, count_parameters
from eegdecode.models.muse_eeg import MUSE_EEG
from eegdecode.models.nervformer_v1 import NervformerV1
from eegdecode.models.nervformer_v2 import NervformerV2
from eegdecode.models.nice_eeg import NICE_EEG
from eegdecode.models.registry import build_encoder, encoder_class, list_encoders, resolve_encoder_name
from eegdecode.models.ridge import RidgeEncoder

__all__ = [
    "ATMS_50",
    "MUSE_EEG",
    "NICE_EEG",
    "EEGEncoder",
    "NervformerV1",
    "NervformerV2",
    "RidgeEncoder",
    "build_encoder",
    "count_parameters",
    "encoder_class",
    "list_encoders",
    "resolve_encoder_name",
]
