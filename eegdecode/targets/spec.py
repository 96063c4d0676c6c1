"""``TargetSpec``: which features of which backbone, as plain data (JSON-able, for recipes and ``config.json``).

A spec names

- ``backbone``: ``open_clip:NAME`` (an open_clip model config: ``ViT-H-14``, ``ViT-L-14``, ``RN50``, ``ViT-bigG-14``,
  ``EVA02-L-14``, ...) or ``hf:PATH`` (a local Hugging Face folder of a vision model with a native ``transformers``
  class: DINOv2, SigLIP, CLIP);
- ``weights``: for open_clip a local weights file or a pretrained tag in the local Hugging Face cache (``None``:
  the model's default tag); for ``hf:`` the folder holds the weights and ``weights`` stays ``None``;
- ``layers``: ``embedding`` (the model's final image embedding), ``block:I`` (the output of transformer block /
  ResNet stage ``I``, 0-based, negative counts from the end) or a module name from the extractor's ``layers()``;
- ``pooling``: ``cls``, ``mean`` or ``tokens:N`` (:mod:`eegdecode.targets.pooling`), for the non-embedding layers;
- ``blur``: image variants (:mod:`eegdecode.targets.blur`), shorthands expanded;
- ``text``: also encode the concept prompts (open_clip only; text lives in the embedding space);
- ``blur_size``: the square size blurred variants are rendered at (224).

``key`` names the cache folder. It covers what fixes the forward pass (backbone and weights); layers, poolings and
variants are arrays inside that folder, so asking for one more layer of a model computes only that layer.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from eegdecode.targets.blur import DEFAULT_BLUR_SIZE, expand_variants
from eegdecode.targets.pooling import check_pooling

#: ``simulator:NAME`` stores hold known embeddings (no extractor)
SOURCES = ("open_clip", "hf", "simulator")
_LAYER = re.compile(r"^(embedding|block:-?[0-9]+|[A-Za-z_][A-Za-z0-9_.]*)$")


def parse_backbone(backbone: str) -> tuple[str, str]:
    """``"open_clip:ViT-H-14"`` -> ``("open_clip", "ViT-H-14")``; raise ValueError for another form."""
    source, sep, name = str(backbone).partition(":")
    if not sep or source not in SOURCES or not name:
        raise ValueError(
            f"Invalid value for backbone: {backbone!r}; expected open_clip:NAME or hf:PATH (a local folder) "
            f"(or simulator:NAME for stored reference embeddings)"
        )
    return source, name


def slug(text: str) -> str:
    """Characters safe in a file name; the rest become ``_``."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", str(text)).strip("_") or "_"


@dataclass(frozen=True)
class TargetSpec:
    """What to compute; see the module docstring. Build from a dict with :meth:`from_dict`."""

    backbone: str
    weights: str | None = None
    layers: tuple[str, ...] = ("embedding",)
    pooling: str = "cls"
    blur: tuple[str, ...] = ("none",)
    text: bool = True
    blur_size: int = DEFAULT_BLUR_SIZE
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self):
        source, name = parse_backbone(self.backbone)
        if source == "hf":  # one spelling per folder: hf:a/b/ and hf:./a/b name the same store
            object.__setattr__(self, "backbone", f"hf:{os.path.normpath(name)}")
        layers = (self.layers,) if isinstance(self.layers, str) else tuple(self.layers)
        if not layers:
            raise ValueError("Invalid value for layers: []; give at least one layer (e.g. embedding)")
        for layer in layers:
            if not _LAYER.match(str(layer)):
                raise ValueError(
                    f"Invalid value for layers: {layer!r}; expected embedding, block:I or a module name"
                )
        object.__setattr__(self, "layers", tuple(dict.fromkeys(str(x) for x in layers)))
        check_pooling(self.pooling)
        object.__setattr__(self, "blur", expand_variants(self.blur))
        if not isinstance(self.blur_size, int) or self.blur_size < 8:
            raise ValueError(f"Invalid value for blur_size: {self.blur_size!r}; expected an integer >= 8")
        if self.weights is not None:
            object.__setattr__(self, "weights", str(self.weights))

    @property
    def source(self) -> str:
        return parse_backbone(self.backbone)[0]

    @property
    def name(self) -> str:
        """The model part of ``backbone`` (open_clip model name, or the hf folder)."""
        return parse_backbone(self.backbone)[1]

    @property
    def key(self) -> str:
        """Cache folder name: ``<source>_<model>-<8 hex of backbone and weights>``.

        For ``hf:`` the model part is the folder's last component; the digest covers the full path given.
        """
        label = self.name.rstrip("/").split("/")[-1] if self.source == "hf" else self.name
        digest = hashlib.sha256(json.dumps([self.backbone, self.weights]).encode()).hexdigest()[:8]
        return f"{self.source}_{slug(label)}-{digest}"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["layers"], out["blur"] = list(self.layers), list(self.blur)
        if not out["extra"]:
            out.pop("extra")
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TargetSpec:
        known = {"backbone", "weights", "layers", "pooling", "blur", "text", "blur_size", "extra"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Invalid keys for a target spec: {unknown}; allowed keys are {sorted(known)}")
        return cls(**data)
