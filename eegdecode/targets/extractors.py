"""Extractors: one way per source to load a backbone and read the activations of any of its layers.

The shape follows thingsvision's extractors: :meth:`Extractor.layers` lists what can be extracted (like
``show_model``), :meth:`Extractor.transform` is the deterministic evaluation transform, ``extractor(images,
layers)`` returns ``{layer: activations}`` and :meth:`Extractor.encode_text` encodes prompts (open_clip only).

Layer names, the same for every source:

- ``embedding``: the model's final image embedding (open_clip ``encode_image``; for Hugging Face models the
  ``image_embeds`` of CLIP with projection, else ``pooler_output``);
- ``block:I``: the output of transformer block ``I`` (0-based; ``-1`` the last), or of ResNet stage ``I`` (``layer1``
  to ``layer4`` of open_clip's ModifiedResNet are ``block:0`` to ``block:3``). For open_clip ViTs it is read with a
  forward hook on ``visual.transformer.resblocks[I]`` (timm towers such as EVA: ``visual.trunk.blocks[I]``); for
  Hugging Face models it is ``hidden_states[I + 1]`` of ``output_hidden_states=True``;
- any module name (``visual.transformer.resblocks.3.mlp``), read with a forward hook.

Sources:

- ``open_clip:NAME`` -- weights from a local file or a locally cached tag, resolved by
  :func:`eegdecode.embeddings.clip_features.resolve_clip_weights` (nothing is downloaded).
- ``hf:PATH`` -- a local folder (``save_pretrained`` layout, ``config.json`` + weights + ``preprocessor_config.json``)
  loaded with ``from_pretrained(PATH, local_files_only=True)`` through the native ``transformers`` class of its
  ``model_type``: ``dinov2`` (``Dinov2Model``), ``siglip`` / ``siglip_vision_model`` (``SiglipVisionModel``),
  ``clip`` / ``clip_vision_model`` (``CLIPVisionModelWithProjection``). ``trust_remote_code`` is never used: models
  that need it (InternViT-6B, used by SAMGA, arXiv 2604.17782, ships its modelling code in the repository) are not
  supported, because running code downloaded with the weights is not something this toolkit does.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from eegdecode.errors import DataFormatError, MissingFileError
from eegdecode.io import file_stamp, sha256_file
from eegdecode.targets.spec import TargetSpec

_BLOCK = re.compile(r"^block:(-?[0-9]+)$")

#: model_type of a Hugging Face config.json -> native transformers class name
HF_CLASSES: dict[str, str] = {
    "dinov2": "Dinov2Model",
    "siglip": "SiglipVisionModel",
    "siglip_vision_model": "SiglipVisionModel",
    "clip": "CLIPVisionModelWithProjection",
    "clip_vision_model": "CLIPVisionModelWithProjection",
}
#: leading non-patch tokens of each Hugging Face model type
_HF_PREFIX = {"dinov2": 1, "siglip": 0, "siglip_vision_model": 0, "clip": 1, "clip_vision_model": 1}
_HF_WEIGHT_SUFFIXES = (".safetensors", ".bin")


@dataclass(frozen=True)
class LayerInfo:
    """One extractable layer: canonical ``name``, the ``module`` it reads, the module class and an output shape."""

    name: str
    module: str
    kind: str
    shape: tuple[int, ...] | None = None

    def line(self) -> str:
        shape = "" if self.shape is None else "x".join(str(s) for s in self.shape)
        return f"{self.name:<14} {self.module:<40} {self.kind:<28} {shape}"


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


class Extractor:
    """Common part of the extractors: layer resolution and hook-based extraction."""

    source = ""
    #: leading class/register tokens of this model's token sequences
    n_prefix = 1

    def __init__(self, model: torch.nn.Module, device: torch.device):
        self.model = model
        self.device = device
        self._modules = dict(model.named_modules())

    # -- subclasses ------------------------------------------------------------------------------------------
    def block_modules(self) -> list[str]:
        """Module names of ``block:0 .. block:N-1``."""
        raise NotImplementedError

    def transform(self) -> Callable:
        raise NotImplementedError

    def describe_transform(self) -> str:
        return " ".join(str(self.transform()).split())

    def _forward(
        self, images: torch.Tensor, blocks: Sequence[int]
    ) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """The embedding of ``images`` and, for sources that have them natively, block outputs (else ``{}``)."""
        raise NotImplementedError

    def encode_text(self, prompts: Sequence[str]) -> torch.Tensor:
        raise ValueError(f"Invalid value for text: True; the {self.source} source has no text encoder")

    def input_size(self) -> tuple[int, int]:
        raise NotImplementedError

    # -- shared ----------------------------------------------------------------------------------------------
    def resolve_layer(self, layer: str) -> str:
        """Canonical layer name: ``embedding``, ``block:I`` with ``I >= 0``, or an existing module name."""
        blocks = self.block_modules()
        if layer == "embedding":
            return layer
        if m := _BLOCK.match(layer):
            i = int(m.group(1))
            if not -len(blocks) <= i < len(blocks):
                raise ValueError(
                    f"Invalid value for layer: {layer!r}; this model has {len(blocks)} blocks "
                    f"(block:0 .. block:{len(blocks) - 1}, or negative from the end)"
                )
            return f"block:{i % len(blocks)}"
        if layer in blocks:
            return f"block:{blocks.index(layer)}"
        if layer in self._modules and layer:
            return layer
        raise ValueError(
            f"Invalid value for layer: {layer!r}; expected embedding, block:I or a module name of "
            f"`eegdecode features --list-layers`"
        )

    def module_of(self, layer: str) -> str:
        layer = self.resolve_layer(layer)
        if layer == "embedding":
            return "embedding"
        if m := _BLOCK.match(layer):
            return self.block_modules()[int(m.group(1))]
        return layer

    def _native_blocks(self) -> bool:
        """Whether :meth:`_forward` returns block outputs itself (Hugging Face ``hidden_states``)."""
        return False

    def _hook_output(self, module_name: str, output: Any) -> torch.Tensor:
        if isinstance(output, (tuple, list)):
            output = output[0]
        return output

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """Activations of ``layers`` for a batch of transformed ``images``, keyed by the names given.

        Block and module activations keep their shape (``(batch, tokens, dim)`` or ``(batch, c, h, w)``);
        the embedding is ``(batch, dim)``. All are float32 on the extractor's device.
        """
        canonical = {layer: self.resolve_layer(layer) for layer in layers}
        native = self._native_blocks()
        hooked: dict[str, str] = {}
        blocks: list[int] = []
        for layer, name in canonical.items():
            if name == "embedding":
                continue
            m = _BLOCK.match(name)
            if m and native:
                blocks.append(int(m.group(1)))
            else:
                hooked[layer] = self.module_of(name)
        captured: dict[str, torch.Tensor] = {}
        handles = []
        for module_name in set(hooked.values()):

            def hook(_module, _inputs, output, _name=module_name):
                captured[_name] = self._hook_output(_name, output)

            handles.append(self._modules[module_name].register_forward_hook(hook))
        try:
            with _autocast(self.device):
                embedding, native_out = self._forward(images.to(self.device), sorted(set(blocks)))
        finally:
            for h in handles:
                h.remove()
        out = {}
        for layer, name in canonical.items():
            if name == "embedding":
                out[layer] = embedding
            elif layer in hooked:
                out[layer] = captured[hooked[layer]]
            else:
                out[layer] = native_out[int(_BLOCK.match(name).group(1))]
        return {k: v.float() for k, v in out.items()}

    def layers(self, modules: bool = False) -> list[LayerInfo]:
        """``embedding`` and every block with its output shape for one image (one dummy forward pass).

        ``modules=True`` also lists every other named module of the model (without shapes).
        """
        names = ["embedding"] + [f"block:{i}" for i in range(len(self.block_modules()))]
        h, w = self.input_size()
        acts = self(torch.zeros(1, 3, h, w), names)
        infos = []
        for name in names:
            module = self.module_of(name)
            kind = "embedding" if module == "embedding" else type(self._modules[module]).__name__
            infos.append(LayerInfo(name, module, kind, tuple(acts[name].shape)))
        if modules:
            listed = {i.module for i in infos}
            for module, mod in self._modules.items():
                if module and module not in listed:
                    infos.append(LayerInfo(module, module, type(mod).__name__))
        return infos


# -- open_clip ------------------------------------------------------------------------------------------------


class OpenClipExtractor(Extractor):
    """An open_clip model: ViT (``visual.transformer.resblocks``), ModifiedResNet (``visual.layer1..4``) or a timm
    tower (``visual.trunk.blocks``, e.g. EVA)."""

    source = "open_clip"

    def __init__(self, model_name: str, weights=None, device: torch.device | str = "cpu"):
        from eegdecode.embeddings.clip_features import _open_clip, check_model, load_clip_model

        device = torch.device(device)
        check_model(model_name)
        if weights is not None:
            model, preprocess, tokenizer = load_clip_model(model_name, weights, device)
        else:  # no weights: the architecture on the meta device, enough to list layers and shapes
            open_clip = _open_clip()
            device = torch.device("meta")
            with device:  # built on meta directly: no parameters are allocated
                model, _, preprocess = open_clip.create_model_and_transforms(
                    model_name, pretrained=None, device=device
                )
            model.eval()
            tokenizer = open_clip.get_tokenizer(model_name)
        super().__init__(model, device)
        self.model_name = model_name
        self._preprocess = preprocess
        self._tokenizer = tokenizer
        visual = model.visual
        self._transformer = getattr(visual, "transformer", None)
        trunk = getattr(visual, "trunk", None)
        if self._transformer is not None:
            self.n_prefix = 1 if getattr(visual, "class_embedding", None) is not None else 0
        elif trunk is not None:
            self.n_prefix = int(getattr(trunk, "num_prefix_tokens", 1))
        else:
            self.n_prefix = 0

    def block_modules(self) -> list[str]:
        visual = self.model.visual
        if self._transformer is not None:
            return [f"visual.transformer.resblocks.{i}" for i in range(len(self._transformer.resblocks))]
        trunk = getattr(visual, "trunk", None)
        if trunk is not None and hasattr(trunk, "blocks"):
            return [f"visual.trunk.blocks.{i}" for i in range(len(trunk.blocks))]
        stages = [f"visual.layer{i}" for i in range(1, 5) if hasattr(visual, f"layer{i}")]
        if stages:
            return stages
        raise DataFormatError(
            None, f"open_clip model {self.model_name}: no transformer blocks or ResNet stages"
        )

    def _hook_output(self, module_name: str, output: Any) -> torch.Tensor:
        output = super()._hook_output(module_name, output)
        # A sequence-first transformer (batch_first=False) hands its blocks (tokens, batch, dim).
        if (
            self._transformer is not None
            and module_name.startswith("visual.transformer.resblocks.")
            and module_name.count(".") == 3
            and not getattr(self._transformer, "batch_first", True)
        ):
            output = output.transpose(0, 1)
        return output

    def transform(self) -> Callable:
        return self._preprocess

    def input_size(self) -> tuple[int, int]:
        size = self.model.visual.image_size
        return (size, size) if isinstance(size, int) else tuple(size)

    def _forward(self, images, blocks):
        return self.model.encode_image(images), {}

    @torch.inference_mode()
    def encode_text(self, prompts: Sequence[str]) -> torch.Tensor:
        tokens = self._tokenizer(list(prompts)).to(self.device)
        with _autocast(self.device):
            return self.model.encode_text(tokens).float()


# -- Hugging Face ------------------------------------------------------------------------------------------------


def _hf_config(folder: Path) -> dict[str, Any]:
    if not folder.is_dir():
        raise MissingFileError(
            folder,
            "hf:PATH takes a local folder saved with save_pretrained (config.json, weights, "
            "preprocessor_config.json); nothing is downloaded",
        )
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise MissingFileError(cfg_path, "a Hugging Face model folder holds config.json")
    try:
        cfg = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as err:
        raise DataFormatError(cfg_path, f"not valid JSON ({err})") from err
    model_type = cfg.get("model_type")
    if "auto_map" in cfg or model_type not in HF_CLASSES:
        why = (
            "it needs trust_remote_code (custom modelling code shipped with the weights, e.g. InternViT), "
            "which is never used"
            if "auto_map" in cfg
            else "no native transformers vision class is wired for it"
        )
        raise DataFormatError(
            cfg_path,
            f"unsupported Hugging Face model ({why})",
            f"model_type in {sorted(HF_CLASSES)}",
            model_type,
        )
    return cfg


def hf_provenance(folder: str | Path, hash_weights: bool = False) -> dict[str, Any]:
    """What identifies a local Hugging Face model: weight-file stamps and config digests (no model loaded)."""
    folder = Path(folder)
    cfg = _hf_config(folder)
    weights = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(_HF_WEIGHT_SUFFIXES))
    if not weights:
        raise MissingFileError(folder / "model.safetensors", "the Hugging Face folder holds no weights file")
    stamps = []
    for p in weights:
        stamp = file_stamp(p.resolve())
        if hash_weights:
            stamp["sha256"] = sha256_file(p)
        stamps.append(stamp)
    digests = {}
    for name in ("config.json", "preprocessor_config.json"):
        p = folder / name
        digests[name] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None
    return {"kind": "hf_folder", "model_type": cfg["model_type"], "files": stamps, "config_sha256": digests}


class _HFTransform:
    """PIL image -> ``pixel_values`` of one image through a Hugging Face image processor (picklable)."""

    def __init__(self, processor):
        self.processor = processor

    def __call__(self, img):
        return self.processor(images=img.convert("RGB"), return_tensors="pt")["pixel_values"][0]

    def __repr__(self) -> str:
        d = self.processor.to_dict()
        keep = (
            "image_processor_type",
            "size",
            "crop_size",
            "do_center_crop",
            "resample",
            "image_mean",
            "image_std",
        )
        return f"{type(self.processor).__name__}({', '.join(f'{k}={d.get(k)!r}' for k in keep if k in d)})"


class HFExtractor(Extractor):
    """A local Hugging Face vision model with a native class (see :data:`HF_CLASSES`)."""

    source = "hf"

    def __init__(self, folder: str | Path, device: torch.device | str = "cpu"):
        import transformers

        folder = Path(folder)
        cfg = _hf_config(folder)
        if not (folder / "preprocessor_config.json").is_file():
            raise MissingFileError(
                folder / "preprocessor_config.json",
                "save the model's image processor next to it (processor.save_pretrained(folder))",
            )
        device = torch.device(device)
        self.model_type = cfg["model_type"]
        cls = getattr(transformers, HF_CLASSES[self.model_type])
        try:
            model = cls.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError) as err:
            raise DataFormatError(folder, f"cannot be loaded as {cls.__name__} ({err})") from err
        model.eval().to(device)
        super().__init__(model, device)
        self.folder = folder
        self.n_prefix = _HF_PREFIX[self.model_type]
        processor = transformers.AutoImageProcessor.from_pretrained(str(folder), local_files_only=True)
        self._transform = _HFTransform(processor)

    def _native_blocks(self) -> bool:
        return True

    def block_modules(self) -> list[str]:
        n = self.model.config.num_hidden_layers
        prefix = "vision_model.encoder.layers" if self.model_type != "dinov2" else "encoder.layer"
        return [f"{prefix}.{i}" for i in range(n)]

    def transform(self) -> Callable:
        return self._transform

    def input_size(self) -> tuple[int, int]:
        size = self.model.config.image_size
        return (size, size) if isinstance(size, int) else tuple(size)

    def _forward(self, images, blocks):
        out = self.model(pixel_values=images, output_hidden_states=True)
        if getattr(out, "image_embeds", None) is not None:
            embedding = out.image_embeds
        else:
            embedding = out.pooler_output
        return embedding, {i: out.hidden_states[i + 1] for i in blocks}


def source_provenance(spec: TargetSpec, hash_weights: bool = False, hf_cache_dir=None) -> dict[str, Any]:
    """Cheap identity of a spec's model (no weights read): weights stamps, config and library versions.

    Returns ``{"weights": ..., "model_config_sha256": ..., "software": {...}}``; for open_clip also the resolved
    weights (``"_resolved"``, not recorded) so that the model can be loaded without resolving twice.
    """
    if spec.source == "open_clip":
        from eegdecode.embeddings.clip_features import _open_clip, resolve_clip_weights

        open_clip = _open_clip()
        resolved = resolve_clip_weights(
            spec.name, spec.weights, hf_cache_dir=hf_cache_dir, hash_weights=hash_weights
        )
        cfg = open_clip.get_model_config(spec.name)
        config_digest = hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()
        return {
            "weights": resolved.provenance,
            "load_kwargs": resolved.load_kwargs,
            "model_config_sha256": config_digest,
            "software": {"open_clip": getattr(open_clip, "__version__", "unknown")},
            "_resolved": resolved,
        }
    import transformers

    if spec.weights is not None:
        raise ValueError(
            f"Invalid value for weights: {spec.weights!r}; an hf: backbone reads its weights from its folder"
        )
    prov = hf_provenance(spec.name, hash_weights=hash_weights)
    return {
        "weights": prov,
        "model_config_sha256": prov["config_sha256"],
        "software": {"transformers": transformers.__version__},
    }


def build_extractor(spec: TargetSpec, device: torch.device | str = "cpu", resolved=None, load_weights=True):
    """The extractor of ``spec``; ``load_weights=False`` builds an open_clip model without weights, on the meta
    device (no memory, no values): enough for :meth:`Extractor.layers`, not for features."""
    if spec.source == "open_clip":
        if load_weights and resolved is None:
            resolved = source_provenance(spec)["_resolved"]
        return OpenClipExtractor(spec.name, resolved if load_weights else None, device)
    if spec.source == "hf":
        return HFExtractor(spec.name, device)
    raise ValueError(
        f"Invalid value for backbone: {spec.backbone!r}; {spec.source} stores are written, not computed"
    )
