"""EEG/MEG encoders mapping an epoch ``(batch, n_chans, n_times)`` to a CLIP-space embedding ``(batch, 1024)``.

Every encoder shares the constructor ``(n_chans, n_times, n_outputs=1024, n_subjects=1, **options)`` and
``forward(x, subject_idx=None)``; build them by name with :func:`build_encoder`. Shared blocks live in their own
modules (``convolutions``, ``channel_attention``, ``subject_layers``, ``projection_head``, ``nervformer_core``);
one file per architecture family. ``heads`` holds what sits between an encoder and the loss (SAMGA's per-subject
layer router and shared projector; a single target's linear projectors and learned blur-variant mixture). The braindecode baselines are imported lazily (by name
through the registry, or from ``eegdecode.models.braindecode_baselines``).
"""

from eegdecode.models.atms import ATMS_50
from eegdecode.models.base import EEGEncoder, count_parameters
from eegdecode.models.blur_eeg import BlurEEGEncoder
from eegdecode.models.eeg_project import EEGProject
from eegdecode.models.heads import (
    AlignedEncoder,
    BlurMixer,
    LayerRouter,
    MultiTargetHead,
    SingleTargetHead,
    centred_layer_logits,
)
from eegdecode.models.muse_eeg import MUSE_EEG
from eegdecode.models.nervformer_v1 import NervformerV1
from eegdecode.models.nervformer_v2 import NervformerV2
from eegdecode.models.nice_eeg import NICE_EEG
from eegdecode.models.registry import build_encoder, encoder_class, list_encoders, resolve_encoder_name
from eegdecode.models.ridge import RidgeEncoder
from eegdecode.models.tsconv import TSConv

__all__ = [
    "ATMS_50",
    "MUSE_EEG",
    "AlignedEncoder",
    "BlurMixer",
    "NICE_EEG",
    "BlurEEGEncoder",
    "EEGEncoder",
    "EEGProject",
    "LayerRouter",
    "MultiTargetHead",
    "NervformerV1",
    "NervformerV2",
    "RidgeEncoder",
    "SingleTargetHead",
    "TSConv",
    "build_encoder",
    "centred_layer_logits",
    "count_parameters",
    "encoder_class",
    "list_encoders",
    "resolve_encoder_name",
]
