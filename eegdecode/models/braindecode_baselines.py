"""Baselines from braindecode (EEGNet, ShallowFBCSPNet, EEGConformer) used as embedding encoders.

Each baseline is the braindecode model itself (built by braindecode, not re-implemented), with the
hyper-parameters of the original comparison scripts, wrapped to keep this package's encoder contract:
``forward(x, subject_idx=None) -> (batch, n_outputs)``, ``subject_idx`` accepted and ignored, and a learnable
``logit_scale``. Their outputs are raw ``n_outputs``-d embeddings:

* **EEGNet** (Lawhern et al. 2018; braindecode ``EEGNet``, formerly ``EEGNetv4``): temporal conv (F1 = 8,
  kernel 4), depthwise spatial conv (D = 20), mean pool 4, separable conv (F2 = 160), mean pool 8, dropout 0.25,
  then braindecode's final convolution straight to ``n_outputs`` (no softmax in braindecode 1.8).
  1,186,833 parameters at 63 x 250 with the logit scale, as in the original ``EEGNetv4_Encoder``.
* **ShallowFBCSPNet** (Schirrmeister et al. 2017): 20 temporal filters of length 20, 20 spatial filters,
  squaring, mean pool 25 / stride 5, log, dropout 0.5, final convolution to ``n_outputs``. The original
  comparison script (``ChiShengChen/EEG_gen_img_NECOMIMI``) added a log-softmax over the 1024 "classes";
  braindecode 1.8 has none, so the output is the raw embedding. 886,845 parameters at 63 x 250.
* **EEGConformer** (Song et al. 2023): 40 temporal filters of length 10, spatial conv, mean pool 25 / stride 5,
  dropout 0.25, two transformer blocks (1 head, attention dropout 0.5). braindecode's head squeezes the
  features through 256 and 32 units before the output layer (the original then applied a log-softmax); here the
  head is replaced by a single ``Linear(n_tokens * 40 -> n_outputs)`` so the 1024-d embedding is not produced
  from a 32-d bottleneck. 1,945,705 parameters at 63 x 250.

Sources: ``Retrieval/contrast_insuject_EEGNetv4_Encoder.py``, ``contrast_insubject_ShallowFBCSPNet.py`` and
``contrast_insubject_EEGConformer.py`` of ``ChiShengChen/EEG_gen_img_NECOMIMI`` (from ATM); braindecode 1.8.1.
"""

from __future__ import annotations

import warnings

import torch
from braindecode.models import EEGConformer, EEGNet, ShallowFBCSPNet
from torch import nn

from eegdecode.models.base import EEGEncoder


class _BraindecodeEncoder(EEGEncoder):
    """A braindecode network ``self.net`` behind the encoder contract."""

    net: nn.Module

    def forward(self, x: torch.Tensor, subject_idx: torch.Tensor | None = None) -> torch.Tensor:
        self._check_input(x, subject_idx)
        return self.net(x)


class EEGNetEncoder(_BraindecodeEncoder):
    """braindecode ``EEGNet`` with the original comparison settings and a raw ``n_outputs``-d output.

    Parameters
    ----------
    n_chans, n_times, n_outputs, n_subjects : int
        Uniform encoder signature (``n_subjects`` unused).
    F1, D, F2, kernel_length : int
        Temporal filters, depth multiplier, separable filters, temporal kernel (8, 20, 160, 4).
    drop_prob : float
        Dropout (0.25).
    """

    def __init__(
        self,
        n_chans: int,
        n_times: int,
        n_outputs: int = 1024,
        n_subjects: int = 1,
        *,
        F1: int = 8,  # EEGNet's published parameter names
        D: int = 20,
        F2: int = 160,
        kernel_length: int = 4,
        drop_prob: float = 0.25,
    ):
        super().__init__(n_chans, n_times, n_outputs, n_subjects)
        with warnings.catch_warnings():
            # braindecode 1.8 warns that its (only working) conv-classifier head is "deprecated".
            warnings.simplefilter("ignore", DeprecationWarning)
            self.net = EEGNet(
                n_chans=n_chans,
                n_outputs=n_outputs,
                n_times=n_times,
                F1=F1,
                D=D,
                F2=F2,
                kernel_length=kernel_length,
                pool_mode="mean",
                drop_prob=drop_prob,
            )


class ShallowFBCSPNetEncoder(_BraindecodeEncoder):
    """braindecode ``ShallowFBCSPNet`` with the original comparison settings and a raw output.

    Parameters
    ----------
    n_chans, n_times, n_outputs, n_subjects : int
        Uniform encoder signature (``n_subjects`` unused).
    n_filters_time, filter_time_length, n_filters_spat : int
        Temporal filters, their length, spatial filters (20, 20, 20).
    pool_time_length, pool_time_stride : int
        Mean-pooling window and stride (25, 5).
    drop_prob : float
        Dropout (0.5).
    """

    def __init__(
        self,
        n_chans: int,
        n_times: int,
        n_outputs: int = 1024,
        n_subjects: int = 1,
        *,
        n_filters_time: int = 20,
        filter_time_length: int = 20,
        n_filters_spat: int = 20,
        pool_time_length: int = 25,
        pool_time_stride: int = 5,
        drop_prob: float = 0.5,
    ):
        super().__init__(n_chans, n_times, n_outputs, n_subjects)
        self.net = ShallowFBCSPNet(
            n_chans=n_chans,
            n_outputs=n_outputs,
            n_times=n_times,
            n_filters_time=n_filters_time,
            filter_time_length=filter_time_length,
            n_filters_spat=n_filters_spat,
            pool_time_length=pool_time_length,
            pool_time_stride=pool_time_stride,
            pool_mode="mean",
            split_first_layer=True,
            batch_norm=True,
            drop_prob=drop_prob,
        )


class EEGConformerEncoder(_BraindecodeEncoder):
    """braindecode ``EEGConformer`` (original comparison settings) with a linear ``n_outputs``-d head.

    Parameters
    ----------
    n_chans, n_times, n_outputs, n_subjects : int
        Uniform encoder signature (``n_subjects`` unused).
    n_filters_time, filter_time_length : int
        Temporal filters (= token width) and their length (40, 10).
    pool_time_length, pool_time_stride : int
        Mean-pooling window and stride (25, 5).
    drop_prob : float
        Dropout of the convolution stem (0.25).
    num_layers, num_heads : int
        Transformer blocks and heads (2, 1).
    att_drop_prob : float
        Dropout inside the transformer (0.5).
    """

    def __init__(
        self,
        n_chans: int,
        n_times: int,
        n_outputs: int = 1024,
        n_subjects: int = 1,
        *,
        n_filters_time: int = 40,
        filter_time_length: int = 10,
        pool_time_length: int = 25,
        pool_time_stride: int = 5,
        drop_prob: float = 0.25,
        num_layers: int = 2,
        num_heads: int = 1,
        att_drop_prob: float = 0.5,
    ):
        super().__init__(n_chans, n_times, n_outputs, n_subjects)
        self.net = EEGConformer(
            n_chans=n_chans,
            n_outputs=n_outputs,
            n_times=n_times,
            n_filters_time=n_filters_time,
            filter_time_length=filter_time_length,
            pool_time_length=pool_time_length,
            pool_time_stride=pool_time_stride,
            drop_prob=drop_prob,
            num_layers=num_layers,
            num_heads=num_heads,
            att_drop_prob=att_drop_prob,
        )
        # Replace braindecode's 256 -> 32 -> n_outputs head by one linear map of the flattened tokens.
        self.net.fc = nn.Flatten(start_dim=1)
        self.net.final_layer = nn.Linear(self.net.final_fc_length, n_outputs)
