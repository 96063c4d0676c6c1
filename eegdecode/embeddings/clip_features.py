"""open_clip image and text features of an image set, cached in the feature store with their provenance.

What is computed, per split (``train``, ``test``):

- image features: every image of the sorted folder walk (concept-major, the EEG row order) through the model's
  deterministic evaluation transform (``preprocess_val``: resize the shortest side, centre crop, normalise), then
  ``encode_image``. The original cached features made with the random *training* crop, so they changed from run
  to run; these do not.
- text features: one prompt per concept, ``"This picture is {concept}"`` with underscores turned into spaces,
  tokenised by open_clip's own tokenizer for the model, then ``encode_text``.

Features are stored unnormalised (float32) in the layout of :mod:`eegdecode.embeddings.store`; losses and scores
normalise where they need to. GPU runs use fp16 autocast, CPU runs fp32.

Weights are never downloaded. ``weights`` is a local file (passed to open_clip as ``pretrained=PATH``, the same code
path for real and test weights) or a pretrained tag such as ``laion2b_s32b_b79k`` that must already sit in the local
Hugging Face cache; anything else raises :class:`~eegdecode.errors.WeightsNotFoundError` saying what to download
and which flag to pass.

The store is a cache: :func:`compute_features` returns an existing store untouched when its provenance (model,
weights file stamp, prompt template, recipe version and, per split, the image list and file sizes) matches, and
rebuilds what changed otherwise, logging why. The rebuilt files replace the old ones only once all are written.
"""

from __future__ import annotations

import contextlib
import datetime
import difflib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

import eegdecode
from eegdecode.data.image_set import PROMPT_TEMPLATE, ImageSet, ImageSplit
from eegdecode.devices import resolve_device
from eegdecode.embeddings.store import (
    SPLITS,
    image_list_digest,
    load_features,
    read_feature_meta,
    save_features,
)
from eegdecode.errors import DataFormatError, MissingFileError, OutputExistsError, WeightsNotFoundError
from eegdecode.io import file_stamp, sha256_file

log = logging.getLogger(__name__)

DEFAULT_MODEL = "ViT-H-14"
#: the pretrained tag used when no weights are given; other models need an explicit ``weights``
DEFAULT_PRETRAINED_TAGS: dict[str, str] = {"ViT-H-14": "laion2b_s32b_b79k"}
SOURCE = "open_clip"
#: bump when a change here (transform, prompts, encoding) changes the features, so old caches are rebuilt
RECIPE_VERSION = 1
_WEIGHT_SUFFIXES = (".bin", ".pt", ".pth", ".safetensors", ".ckpt", ".npz")
# Keys of the weights provenance that must agree for a cached store to be reused.
_WEIGHTS_MATCH_KEYS = ("kind", "tag", "path", "size", "mtime_ns")


def _open_clip():
    # open_clip takes seconds to import (timm, transformers); only the steps that build a model need it.
    import open_clip

    return open_clip


@dataclass(frozen=True)
class ResolvedWeights:
    """A weights choice turned into a local file plus what open_clip needs to load it like its tag.

    Attributes
    ----------
    path : Path
        The local weights file, passed to open_clip as ``pretrained=``.
    provenance : dict
        Recorded in ``features.json``: ``kind`` (``"file"`` or ``"tag"``), ``tag``, ``path``, ``size``,
        ``mtime_ns`` and, when asked for, ``sha256``.
    load_kwargs : dict
        Extra keyword arguments of ``create_model_and_transforms`` that a pretrained tag implies (normalisation,
        interpolation, QuickGELU), so a tag resolved to its cached file loads exactly as the tag would.
    """

    path: Path
    provenance: dict[str, Any]
    load_kwargs: dict[str, Any] = field(default_factory=dict)


def _stamp(path: Path, hash_weights: bool) -> dict[str, Any]:
    stamp = file_stamp(path.resolve())
    if hash_weights:
        stamp["sha256"] = sha256_file(path)
    return stamp


def _tag_missing_hint(model: str, tag: str, cfg: dict[str, Any]) -> str:
    hf_hub = cfg.get("hf_hub", "")
    if hf_hub:
        repo, filename = os.path.split(hf_hub)
        filename = filename or "open_clip_pytorch_model.bin"
        return (
            f"The {model} weights {tag!r} are not in the local Hugging Face cache, and nothing is downloaded at run "
            f"time. On a machine with network access run `eegdecode download --what weights-clip --data-root DATA` "
            f"(ViT-H-14: DATA/weights/clip/open_clip_pytorch_model.bin), or download {filename} from the Hugging "
            f"Face repository {repo} "
            f"(https://huggingface.co/{repo}/resolve/main/{filename}, or `hf download {repo} {filename} "
            f"--local-dir weights/clip`), then pass `--clip-weights weights/clip/{filename}` (``weights=`` in "
            f"Python); or copy a Hugging Face cache holding it here (HF_HOME) and run with HF_HUB_OFFLINE=1."
        )
    return (
        f"The {model} weights {tag!r} are not on disk, and nothing is downloaded at run time. Download "
        f"{cfg.get('url') or 'the weights file'} and pass `--clip-weights PATH`."
    )


def _resolve_tag(model: str, tag: str, cfg: dict[str, Any], hf_cache_dir: str | Path | None) -> Path:
    from huggingface_hub import constants as hf_constants
    from huggingface_hub import try_to_load_from_cache

    hf_hub = cfg.get("hf_hub", "")
    cache = Path(hf_cache_dir) if hf_cache_dir is not None else Path(hf_constants.HF_HUB_CACHE)
    if hf_hub:
        repo, filename = os.path.split(hf_hub)
        filename = filename or "open_clip_pytorch_model.bin"
        # open_clip prefers a safetensors copy of the default file name when the repository has one.
        candidates = (
            ["open_clip_model.safetensors", filename]
            if filename == "open_clip_pytorch_model.bin"
            else [filename]
        )
        for name in candidates:
            found = try_to_load_from_cache(repo, name, cache_dir=cache)
            if isinstance(found, str) and Path(found).is_file():
                return Path(found)
        missing = cache / f"models--{repo.replace('/', '--')}"
    else:
        missing = cache / tag
    raise WeightsNotFoundError(missing, _tag_missing_hint(model, tag, cfg))


def resolve_clip_weights(
    model: str,
    weights: str | Path | None = None,
    hf_cache_dir: str | Path | None = None,
    hash_weights: bool = False,
) -> ResolvedWeights:
    """Turn a weights choice into a local file, without loading or downloading anything.

    Parameters
    ----------
    model : str
        open_clip model name (``ViT-H-14``, or a config registered with ``open_clip.add_model_config``).
    weights : str or Path, optional
        A local weights file, or a pretrained tag of ``model`` present in the local Hugging Face cache.
        ``None`` means the default tag of the model (``laion2b_s32b_b79k`` for ``ViT-H-14``).
    hf_cache_dir : str or Path, optional
        Hugging Face hub cache to look in; default that of ``huggingface_hub`` (``$HF_HOME/hub``).
    hash_weights : bool
        Also record the SHA-256 of the file (reads the whole file: ~10 s for ViT-H-14's 3.9 GB).

    Returns
    -------
    ResolvedWeights

    Raises
    ------
    WeightsNotFoundError
        The file does not exist, or the tag is not cached locally; the message says what to download and which
        flag to pass.
    """
    open_clip = _open_clip()
    check_model(model)
    tags = open_clip.list_pretrained_tags_by_model(model)
    if weights is None:
        if model not in DEFAULT_PRETRAINED_TAGS:
            raise WeightsNotFoundError(
                f"weights of {model}",
                f"No default weights for this model; pass --clip-weights PATH (a local file) or one of its "
                f"pretrained tags {tags} cached locally.",
            )
        weights = DEFAULT_PRETRAINED_TAGS[model]
    weights_str = str(weights)
    path = Path(weights_str).expanduser()
    if path.is_file():
        return ResolvedWeights(
            path=path, provenance={"kind": "file", "tag": None, **_stamp(path, hash_weights)}
        )
    if weights_str in tags:
        cfg = open_clip.get_pretrained_cfg(model, weights_str)
        cached = _resolve_tag(model, weights_str, cfg, hf_cache_dir)
        load_kwargs: dict[str, Any] = {
            "image_mean": cfg.get("mean"),
            "image_std": cfg.get("std"),
            "image_interpolation": cfg.get("interpolation"),
            "image_resize_mode": cfg.get("resize_mode"),
            "force_quick_gelu": bool(cfg.get("quick_gelu", False)),
        }
        load_kwargs = {k: v for k, v in load_kwargs.items() if v is not None}
        provenance = {"kind": "tag", "tag": weights_str, **_stamp(cached, hash_weights)}
        return ResolvedWeights(path=cached, provenance=provenance, load_kwargs=load_kwargs)
    if path.exists():
        raise WeightsNotFoundError(path, "--clip-weights must be a weights file, not a folder.")
    looks_like_path = os.sep in weights_str or "/" in weights_str or weights_str.endswith(_WEIGHT_SUFFIXES)
    if looks_like_path:
        raise WeightsNotFoundError(
            path,
            f"Pass --clip-weights the path of an existing {model} weights file (open_clip state dict, .bin/.pt/"
            f".safetensors).",
        )
    raise WeightsNotFoundError(
        weights_str,
        f"Neither a file nor a pretrained tag of {model}; its tags are {tags}. Pass --clip-weights PATH.",
    )


def register_open_clip_config(path: str | Path) -> str:
    """Register an open_clip model config file (``open_clip.add_model_config``); returns the model name.

    The model name is the file name without ``.json``, as in open_clip's own ``model_configs`` folder.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(path, "--open-clip-config takes an open_clip model config JSON file.")
    try:
        cfg = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataFormatError(path, f"not valid JSON ({err})") from err
    needed = ("embed_dim", "vision_cfg", "text_cfg")
    if not isinstance(cfg, dict) or not all(k in cfg for k in needed):
        found = sorted(cfg) if isinstance(cfg, dict) else type(cfg).__name__
        raise DataFormatError(path, "not an open_clip model config", f"keys {list(needed)}", found)
    _open_clip().add_model_config(path)
    return path.stem


def check_model(model: str) -> None:
    """Raise ValueError unless ``model`` is an open_clip model config known to this process."""
    open_clip = _open_clip()
    known = open_clip.list_models()
    if model not in known:
        close = difflib.get_close_matches(model, known, n=5, cutoff=0.5)
        raise ValueError(
            f"Invalid value for model: {model!r} is not an open_clip model config; "
            f"{f'close names: {close}; ' if close else ''}register a config file with --open-clip-config "
            f"(open_clip.add_model_config) or pick one of `open_clip.list_models()` ({len(known)} known)"
        )


def load_clip_model(model: str, weights: ResolvedWeights, device: torch.device | str = "cpu"):
    """Build an open_clip model from a local weights file.

    Returns
    -------
    clip_model : torch.nn.Module
        In eval mode on ``device``, fp32 parameters (GPU runs use autocast).
    preprocess_val : callable
        The deterministic evaluation transform (never the random training crop).
    tokenizer : callable
        open_clip's tokenizer for ``model``.
    """
    open_clip = _open_clip()
    device = torch.device(device)
    try:
        clip_model, _preprocess_train, preprocess_val = open_clip.create_model_and_transforms(
            model, pretrained=str(weights.path), device=device, precision="fp32", **weights.load_kwargs
        )
    except RuntimeError as err:
        raise DataFormatError(weights.path, f"cannot be loaded as {model} weights ({err})") from err
    clip_model.eval()
    tokenizer = open_clip.get_tokenizer(model)
    return clip_model, preprocess_val, tokenizer


class _ImageFiles(torch.utils.data.Dataset):
    """Images in a fixed order, each opened as RGB and passed through ``transform``."""

    def __init__(self, paths: Sequence[Path], transform: Callable):
        self.paths = list(paths)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        try:
            with Image.open(self.paths[i]) as img:
                return self.transform(img.convert("RGB"))
        except (UnidentifiedImageError, OSError) as err:
            raise DataFormatError(self.paths[i], f"cannot be read as an image ({err})") from err


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def precision_of(device: torch.device | str) -> str:
    """The arithmetic the encoders use on ``device``: fp16 autocast on CUDA, fp32 elsewhere."""
    return "float16-autocast" if torch.device(device).type == "cuda" else "float32"


def encode_images(
    clip_model: torch.nn.Module,
    preprocess: Callable,
    paths: Sequence[Path],
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    num_workers: int = 0,
    desc: str = "images",
) -> np.ndarray:
    """``encode_image`` of every file in ``paths``, in order: ``(len(paths), embed_dim)`` float32, unnormalised."""
    device = torch.device(device)
    loader = torch.utils.data.DataLoader(
        _ImageFiles(paths, preprocess),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
    )
    chunks = []
    with torch.inference_mode(), _autocast(device), tqdm(total=len(paths), desc=desc, unit="img") as bar:
        for batch in loader:
            chunks.append(clip_model.encode_image(batch.to(device, non_blocking=True)).float().cpu())
            bar.update(len(batch))
    return torch.cat(chunks).numpy()


def encode_texts(
    clip_model: torch.nn.Module,
    tokenizer: Callable,
    prompts: Sequence[str],
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    desc: str = "prompts",
) -> np.ndarray:
    """``encode_text`` of every prompt, in order: ``(len(prompts), embed_dim)`` float32, unnormalised."""
    device = torch.device(device)
    chunks = []
    with torch.inference_mode(), _autocast(device), tqdm(total=len(prompts), desc=desc, unit="prompt") as bar:
        for start in range(0, len(prompts), batch_size):
            tokens = tokenizer(list(prompts[start : start + batch_size])).to(device)
            chunks.append(clip_model.encode_text(tokens).float().cpu())
            bar.update(tokens.shape[0])
    return torch.cat(chunks).numpy()


def image_files_digest(split: ImageSplit) -> str:
    """Digest of the relative names and byte sizes of a split's images: detects images rewritten in place."""
    h = hashlib.sha256()
    for name, path in zip(split.relative_names, split.image_paths):
        h.update(f"{name}\t{path.stat().st_size}\n".encode())
    return h.hexdigest()


def split_provenance(split: ImageSplit) -> dict[str, Any]:
    """What identifies a split's images in ``features.json``."""
    return {
        "image_list_digest": image_list_digest(split.relative_names),
        "image_files_digest": image_files_digest(split),
        "images_per_concept": split.images_per_concept,
        "first_image": split.relative_names[0],
        "last_image": split.relative_names[-1],
    }


def _weights_match(old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    if not isinstance(old, dict):
        return False
    if any(old.get(k) != new.get(k) for k in _WEIGHTS_MATCH_KEYS):
        return False
    return not ("sha256" in old and "sha256" in new and old["sha256"] != new["sha256"])


def _global_mismatch(meta: dict[str, Any], wanted: dict[str, Any]) -> str | None:
    """Why a store's model-level provenance differs from ``wanted`` (None when it matches)."""
    for key in ("source", "recipe_version", "model", "prompt_template"):
        if meta.get(key) != wanted[key]:
            return f"{key} changed ({meta.get(key)!r} -> {wanted[key]!r})"
    if not _weights_match(meta.get("weights"), wanted["weights"]):
        old, new = meta.get("weights") or {}, wanted["weights"]
        return (
            f"weights changed ({old.get('path')}: {old.get('size')} bytes, mtime {old.get('mtime_ns')} -> "
            f"{new['path']}: {new['size']} bytes, mtime {new['mtime_ns']})"
        )
    return None


def _split_mismatch(meta: dict[str, Any], folder: Path, split: str, provenance: dict[str, Any]) -> str | None:
    """Why a stored split does not fit the current images (None when it does)."""
    stored = meta.get("splits", {}).get(split)
    if stored is None:
        return "not in the store"
    if not all((folder / f"{kind}_features_{split}.npy").is_file() for kind in ("image", "text")):
        return "its arrays are missing"
    for key in ("image_list_digest", "image_files_digest"):
        if stored.get(key) != provenance[key]:
            return "image list changed" if key == "image_list_digest" else "image files changed (sizes)"
    return None


def _replace_store(
    out_dir: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]], meta: dict[str, Any]
) -> None:
    """Write a complete store beside the old one, then move it into place, sidecar last."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".features-rebuild-", dir=out_dir))
    try:
        save_features(tmp, splits, meta)
        # Without a sidecar the folder reads as "no store", never as a mix of old and new arrays.
        (out_dir / "features.json").unlink(missing_ok=True)
        for split in SPLITS:
            for kind in ("image", "text"):
                name = f"{kind}_features_{split}.npy"
                if (tmp / name).exists():
                    os.replace(tmp / name, out_dir / name)
                else:
                    (out_dir / name).unlink(missing_ok=True)
        os.replace(tmp / "features.json", out_dir / "features.json")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def compute_features(
    image_set_root: str | Path | ImageSet,
    out_dir: str | Path,
    model: str = DEFAULT_MODEL,
    weights: str | Path | None = None,
    batch_size: int = 64,
    device: str = "auto",
    splits: Iterable[str] = SPLITS,
    force: bool = False,
    num_workers: int | None = None,
    hash_weights: bool = False,
    hf_cache_dir: str | Path | None = None,
    prompt_template: str = PROMPT_TEMPLATE,
) -> Path:
    """Compute (or reuse) the open_clip features of an image set into a feature store.

    Parameters
    ----------
    image_set_root : str, Path or ImageSet
        The ``image_set`` folder (``training_images/``, ``test_images/``).
    out_dir : str or Path
        Feature store folder (see :mod:`eegdecode.embeddings.store`); created if needed.
    model : str
        open_clip model name; default ``ViT-H-14`` (1024-d).
    weights : str or Path, optional
        Local weights file, or a pretrained tag cached locally; see :func:`resolve_clip_weights`.
    batch_size : int
        Images (and prompts) per forward pass.
    device : str
        ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ...
    splits : iterable of str
        Splits to provide, from ``("train", "test")``.
    force : bool
        Recompute everything, and replace a store made by another source (e.g. the simulator).
    num_workers : int, optional
        DataLoader worker processes decoding JPEGs; default 0 on CPU (the encoder is the bottleneck) and up to 8
        on GPU (JPEG decoding is: about 100 THINGS-sized images per second per core).
    hash_weights : bool
        Record (and compare) the SHA-256 of the weights file.
    hf_cache_dir : str or Path, optional
        Hugging Face hub cache holding tagged weights.
    prompt_template : str
        Text prompt per concept; ``{}`` receives the concept name.

    Returns
    -------
    Path
        ``out_dir``, holding a store with at least the requested splits, each matching the current images.

    Raises
    ------
    OutputExistsError
        ``out_dir`` holds features from another source (or an unreadable sidecar) and ``force`` is False.
    WeightsNotFoundError
        See :func:`resolve_clip_weights`.
    """
    splits = tuple(dict.fromkeys(splits))
    if not splits or any(s not in SPLITS for s in splits):
        raise ValueError(
            f"Invalid value for splits: {list(splits)}; allowed values are subsets of {list(SPLITS)}"
        )
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"Invalid value for batch_size: {batch_size!r}; expected a positive integer")
    if "{}" not in prompt_template:
        raise ValueError(f"Invalid value for prompt_template: {prompt_template!r}; it must contain '{{}}'")
    torch_device = resolve_device(device)
    if num_workers is None:
        num_workers = 0 if torch_device.type == "cpu" else min(8, os.cpu_count() or 1)
    images = image_set_root if isinstance(image_set_root, ImageSet) else ImageSet(image_set_root)
    out_dir = Path(out_dir)
    resolved = resolve_clip_weights(model, weights, hf_cache_dir=hf_cache_dir, hash_weights=hash_weights)

    wanted = {
        "source": SOURCE,
        "recipe_version": RECIPE_VERSION,
        "model": model,
        "weights": resolved.provenance,
        "prompt_template": prompt_template,
    }
    current = {
        s: split_provenance(images.split(s)) for s in SPLITS if s in splits or s in images.available_splits()
    }

    old_meta: dict[str, Any] | None = None
    if (out_dir / "features.json").exists():
        try:
            old_meta = read_feature_meta(out_dir)
        except (DataFormatError, ValueError) as err:
            if not force:
                log.error("%s holds an unreadable feature store (%s)", out_dir, err)
                raise OutputExistsError(out_dir / "features.json", "--force") from err
        if old_meta is not None and old_meta.get("source") != SOURCE and not force:
            log.error("%s holds features from source %r, not %r", out_dir, old_meta.get("source"), SOURCE)
            raise OutputExistsError(out_dir / "features.json", "--force")

    keep: list[str] = []
    reasons: dict[str, str] = {}
    if force:
        reasons = {s: "--force" for s in splits}
    elif old_meta is None:
        reasons = {s: "no store yet" for s in splits}
    elif (why := _global_mismatch(old_meta, wanted)) is not None:
        reasons = {s: why for s in splits}
        reasons.update({s: why for s in old_meta.get("splits", {}) if s not in splits})
    else:
        # Same model and weights: keep every stored split that still fits its images, recompute the rest.
        for s in SPLITS:
            if s not in splits and s not in old_meta.get("splits", {}):
                continue
            why = _split_mismatch(old_meta, out_dir, s, current[s]) if s in current else "split folder gone"
            if why is None:
                keep.append(s)
            else:
                reasons[s] = why
    to_compute = [s for s in splits if s in reasons]
    dropped = [s for s in reasons if s not in splits]
    if not to_compute and not dropped:
        log.info("reusing the features in %s (model %s, weights and images unchanged)", out_dir, model)
        return out_dir
    for s, why in reasons.items():
        log.info("%s %s features in %s: %s", "computing" if s in splits else "dropping", s, out_dir, why)

    arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    split_meta: dict[str, dict[str, Any]] = {}
    for s in keep:
        stored = load_features(out_dir, s)
        arrays[s] = (stored.image, stored.text)
        split_meta[s] = {
            k: v for k, v in old_meta["splits"][s].items() if k not in ("n_images", "n_concepts")
        }
    if to_compute:
        clip_model, preprocess_val, tokenizer = load_clip_model(model, resolved, torch_device)
        for s in to_compute:
            image_split = images.split(s)
            image_features = encode_images(
                clip_model,
                preprocess_val,
                image_split.image_paths,
                batch_size,
                torch_device,
                num_workers,
                desc=f"{s} images",
            )
            text_features = encode_texts(
                clip_model,
                tokenizer,
                image_split.prompts(prompt_template),
                batch_size,
                torch_device,
                desc=f"{s} prompts",
            )
            arrays[s] = (image_features, text_features)
            split_meta[s] = {
                **current[s],
                "precision": precision_of(torch_device),
                "device": str(torch_device),
                "batch_size": batch_size,
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            }
        # One line with sizes, interpolation and normalisation: enough to tell two transforms apart.
        transform = " ".join(str(preprocess_val).split())
    else:
        transform = old_meta.get("transform")

    meta = {
        **wanted,
        "transform": transform,
        "text_tokenizer": f"open_clip.get_tokenizer({model!r})",
        "image_set": str(images.root),
        "software": {
            "eegdecode": eegdecode.__version__,
            "open_clip": getattr(_open_clip(), "__version__", "unknown"),
            "torch": torch.__version__,
        },
        "splits": split_meta,
    }
    _replace_store(out_dir, {s: arrays[s] for s in SPLITS if s in arrays}, meta)
    log.info("wrote %s features of %s to %s", model, ", ".join(sorted(arrays)), out_dir)
    return out_dir
