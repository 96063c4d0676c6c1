"""``compute_targets``: run a spec's extractor over an image set and cache every array it asks for.

For each split, image variant and layer the store gets one array (see :mod:`eegdecode.targets.store`); a second
call with the same spec, weights and images loads nothing and writes nothing. What is compared before reusing:

- model level (all arrays): the store format, :data:`RECIPE_VERSION`, the backbone and weights as given, the
  weights file stamps (path, size, mtime; SHA-256 with ``hash_weights``), the load options a pretrained tag implies,
  the digest of the model config (which fixes the evaluation transform), and the version of open_clip or
  transformers;
- split level: the image-list digest and the image-files digest (names and sizes);
- array level: present or not (a new layer, pooling or blur variant is computed alone), and its blur parameters
  (``blur_size``).

Layers named ``embedding`` or ``block:I`` with ``I >= 0`` are checked without loading the model; a negative index
or a module name needs the model to be resolved, so it is loaded even when everything is cached.

A model-level change rebuilds the whole store, a split-level change that split; with ``rebuild=False`` either
raises :class:`~eegdecode.targets.store.StaleTargetsError` naming the field, the stored and the current value.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

import eegdecode
from eegdecode.data.image_set import PROMPT_TEMPLATE, ImageSet
from eegdecode.devices import resolve_device
from eegdecode.embeddings.clip_features import _ImageFiles, precision_of, split_provenance
from eegdecode.embeddings.store import SPLITS
from eegdecode.errors import DataFormatError
from eegdecode.io import write_json
from eegdecode.targets.blur import BlurTransform, parse_variant
from eegdecode.targets.extractors import build_extractor, source_provenance
from eegdecode.targets.pooling import pool
from eegdecode.targets.spec import TargetSpec
from eegdecode.targets.store import FORMAT, StaleTargetsError, TargetStore, array_key

log = logging.getLogger(__name__)

#: bump when a change here or in blur/pooling changes the arrays, so old stores are rebuilt
RECIPE_VERSION = 1
_MODEL_KEYS = ("format", "recipe_version", "backbone", "weights_arg", "weights", "load_kwargs", "model_config_sha256",
               "software")  # fmt: skip
_SPLIT_KEYS = ("image_list_digest", "image_files_digest")


def _model_identity(spec: TargetSpec, prov: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "recipe_version": RECIPE_VERSION,
        "backbone": spec.backbone,
        "weights_arg": spec.weights,
        "weights": prov["weights"],
        "load_kwargs": prov.get("load_kwargs", {}),
        "model_config_sha256": prov["model_config_sha256"],
        "software": prov["software"],
    }


def _model_mismatch(meta: dict[str, Any], wanted: dict[str, Any]) -> str | None:
    for key in _MODEL_KEYS:
        old, new = meta.get(key), wanted[key]
        if key == "weights" and isinstance(old, dict) and isinstance(new, dict):
            # A hash recorded once need not be recomputed: compare it only when both sides have it.
            old = {k: v for k, v in old.items() if k != "sha256" or "sha256" in new}
            new = {k: v for k, v in new.items() if k != "sha256" or "sha256" in old}
        if old != new:
            return f"{key} changed ({old!r} -> {new!r})"
    return None


def _needs_model_to_name(layers: Iterable[str]) -> bool:
    return any(
        not (x == "embedding" or (x.startswith("block:") and not x.startswith("block:-"))) for x in layers
    )


def _encode_variant(extractor, paths, variant: str, spec: TargetSpec, layers: list[str], batch_size: int,
                    num_workers: int, desc: str) -> dict[str, np.ndarray]:  # fmt: skip
    """Pooled features of every image of ``paths`` under one variant: ``{layer: (n_images, dim) float32}``."""
    blur = parse_variant(variant)
    transform = (
        extractor.transform()
        if blur.kind == "none"
        else BlurTransform(blur, extractor.transform(), spec.blur_size)
    )
    loader = torch.utils.data.DataLoader(
        _ImageFiles(paths, transform), batch_size=batch_size, shuffle=False, num_workers=num_workers,
        pin_memory=extractor.device.type == "cuda",
    )  # fmt: skip
    chunks: dict[str, list[torch.Tensor]] = {layer: [] for layer in layers}
    with tqdm(total=len(paths), desc=desc, unit="img") as bar:
        for batch in loader:
            acts = extractor(batch, layers)
            for layer in layers:
                pooled = (
                    pool(acts[layer], spec.pooling, extractor.n_prefix)
                    if layer != "embedding"
                    else acts[layer]
                )
                chunks[layer].append(pooled.float().cpu())
            bar.update(len(batch))
    return {layer: torch.cat(c).numpy() for layer, c in chunks.items()}


def compute_targets(
    image_set_root: str | Path | ImageSet,
    root: str | Path,
    spec: TargetSpec,
    device: str = "auto",
    batch_size: int = 64,
    splits: Iterable[str] = SPLITS,
    force: bool = False,
    rebuild: bool = True,
    num_workers: int | None = None,
    hash_weights: bool = False,
    hf_cache_dir: str | Path | None = None,
    prompt_template: str = PROMPT_TEMPLATE,
) -> TargetStore:
    """Compute (or reuse) every array of ``spec`` for ``splits`` into ``root / spec.key``.

    Parameters
    ----------
    image_set_root : str, Path or ImageSet
        The ``image_set`` folder.
    root : str or Path
        Folder holding target stores (``<data>/targets``); the store is ``root / spec.key``.
    spec : TargetSpec
        What to compute.
    device : str
        ``auto``, ``cpu``, ``cuda``, ``cuda:N``; CUDA runs use fp16 autocast.
    batch_size : int
        Images per forward pass.
    splits : iterable of str
        From ``("train", "test")``.
    force : bool
        Recompute everything.
    rebuild : bool
        When the stored provenance differs from the current one, rebuild (default) or raise
        :class:`~eegdecode.targets.store.StaleTargetsError`.
    num_workers : int, optional
        Image-decoding worker processes; default 0 on CPU, up to 8 on GPU.
    hash_weights : bool
        Record and compare the SHA-256 of the weights files.
    hf_cache_dir : str or Path, optional
        Hugging Face hub cache holding open_clip pretrained tags.
    prompt_template : str
        Prompt per concept for the text features (``spec.text``).

    Returns
    -------
    TargetStore
    """
    splits = tuple(dict.fromkeys(splits))
    if not splits or any(s not in SPLITS for s in splits):
        raise ValueError(
            f"Invalid value for splits: {list(splits)}; allowed values are subsets of {list(SPLITS)}"
        )
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"Invalid value for batch_size: {batch_size!r}; expected a positive integer")
    if spec.source == "simulator":
        raise ValueError(
            f"Invalid value for backbone: {spec.backbone!r}; simulator targets are written by the simulator"
        )
    if spec.text and spec.source != "open_clip":
        raise ValueError(
            f"Invalid value for text: True; only open_clip backbones have a text encoder ({spec.backbone})"
        )
    torch_device = resolve_device(device)
    if num_workers is None:
        num_workers = 0 if torch_device.type == "cpu" else min(8, os.cpu_count() or 1)
    images = image_set_root if isinstance(image_set_root, ImageSet) else ImageSet(image_set_root)
    store = TargetStore.for_spec(root, spec)
    prov = source_provenance(spec, hash_weights=hash_weights, hf_cache_dir=hf_cache_dir)
    wanted = _model_identity(spec, prov)
    current = {s: split_provenance(images.split(s)) for s in splits}

    extractor = None

    def get_extractor():
        nonlocal extractor
        if extractor is None:
            extractor = build_extractor(spec, torch_device, resolved=prov.get("_resolved"))
        return extractor

    def stale(why: str) -> None:
        if not rebuild:
            raise StaleTargetsError(store.sidecar, f"the cached targets are stale: {why}; pass rebuild=True "
                                    f"(drop --no-rebuild) to recompute them")  # fmt: skip
        log.info("rebuilding %s: %s", store.folder, why)

    meta = None
    if store.exists() and not force:
        try:
            meta = store.meta()
        except DataFormatError as err:
            stale(str(err))
    if meta is not None and (why := _model_mismatch(meta, wanted)) is not None:
        stale(why)
        meta = None
    if meta is None:
        store.reset({**wanted, "spec": spec.to_dict(), "image_set": str(images.root)})
    for s in splits:
        stored = store.meta().get("splits", {}).get(s)
        if stored is not None:
            for key in _SPLIT_KEYS:
                if stored.get(key) != current[s][key]:
                    stale(f"split {s}: {key} changed")
                    store.drop_split(s)
                    stored = None
                    break
        if stored is None:
            store.set_split(s, {**current[s], "n_images": images.split(s).n_images,
                                "n_concepts": images.split(s).n_concepts})  # fmt: skip

    layers = list(spec.layers)
    if _needs_model_to_name(layers):
        layers = [get_extractor().resolve_layer(x) for x in layers]
    store.layer_names = dict(zip(spec.layers, layers))
    layers = list(dict.fromkeys(layers))
    todo: dict[tuple[str, str], list[str]] = {}
    for s in splits:
        for v in spec.blur:
            blur_prov = parse_variant(v).provenance(spec.blur_size)
            for x in layers:
                entry = store.arrays().get(array_key(s, x, spec.pooling, v))
                if entry is not None and entry.get("blur") != blur_prov:
                    stale(
                        f"{array_key(s, x, spec.pooling, v)}: blur changed ({entry.get('blur')} -> {blur_prov})"
                    )
                    store.forget(array_key(s, x, spec.pooling, v))
                if not store.has(s, x, spec.pooling, v):
                    todo.setdefault((s, v), []).append(x)
    stored_text = store.meta().get("text", {})
    text_todo = [
        s for s in splits if spec.text and stored_text.get(s, {}).get("prompt_template") != prompt_template
    ]
    if not todo and not text_todo:
        log.info("reusing the targets in %s (model, weights and images unchanged)", store.folder)
        return store
    ext = get_extractor()
    info_common = {"precision": precision_of(torch_device), "device": str(torch_device), "batch_size": batch_size,
                   "n_prefix_tokens": ext.n_prefix}  # fmt: skip
    meta = store.meta()
    if meta.get("transform") is None:
        meta.update(transform=ext.describe_transform(), software_all={"eegdecode": eegdecode.__version__,
                    "torch": torch.__version__, **prov["software"]})  # fmt: skip
        write_json(store.sidecar, meta)
    for (s, variant), todo_layers in todo.items():
        image_split = images.split(s)
        arrays = _encode_variant(ext, image_split.image_paths, variant, spec, todo_layers, batch_size, num_workers,
                                 desc=f"{s} {variant}")  # fmt: skip
        blur = parse_variant(variant)
        for layer, arr in arrays.items():
            store.put_image(s, layer, spec.pooling, variant, arr, {
                **info_common, "module": ext.module_of(layer), "blur": blur.provenance(spec.blur_size),
            })  # fmt: skip
            log.info("wrote %s", array_key(s, layer, spec.pooling, variant))
    for s in text_todo:
        prompts = images.split(s).prompts(prompt_template)
        chunks = [
            ext.encode_text(prompts[i : i + batch_size]).cpu() for i in range(0, len(prompts), batch_size)
        ]
        store.put_text(s, torch.cat(chunks).numpy(), {**info_common, "prompt_template": prompt_template})
    return store


__all__ = ["RECIPE_VERSION", "compute_targets"]
