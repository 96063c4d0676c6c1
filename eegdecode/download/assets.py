"""The table of what ``eegdecode download`` can fetch, where it comes from and where it lands under a data root.

=========== ===================================================================== ===================================
``--what``  source                                                                lands in (under the data root)
=========== ===================================================================== ===================================
images      OSF ``y63gw`` (THINGS-EEG2 image set, a component of ``3jk45``):     ``image_set/{training_images,
            ``training_images.zip``, ``test_images.zip``, ``image_metadata.npy``  test_images,image_metadata.npy}``
eeg-250hz   Hugging Face dataset ``LidongYang/EEG_Image_decode`` (as the          ``Preprocessed_data_250Hz/sub-XX/``
            original ATM code uses), folder ``Preprocessed_data_250Hz/``
eeg-100hz   OSF ``anp5v`` (Gifford's preprocessed release): ``sub-XX.zip``        ``preprocessed_data/sub-XX/``
eeg-raw     OSF ``crxs4`` (raw EEG): ``sub-XX.zip``                               ``raw_data/sub-XX/`` (``--raw-root``
                                                                                  of ``preprocess eeg`` = data root)
meg         OpenNeuro ``ds004212`` (THINGS-MEG): the epochs derivative            ``ds004212/derivatives/
            ``derivatives/preprocessed/preprocessed_P{n}-epo[-k].fif``, the       preprocessed/...`` (``--bids-root``
            top-level BIDS files and ``sourcedata/image_{concept_index,paths}.csv`` of ``preprocess meg``)
meg-raw     OpenNeuro ``ds004212``: the raw BIDS folder ``sub-BIGMEG{n}/``        ``ds004212/sub-BIGMEG{n}/``
weights-    Hub ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K``:                        ``weights/clip/`` (``features
clip        ``open_clip_pytorch_model.bin``                                       --clip-weights``)
weights-    Hub ``stabilityai/sdxl-turbo``: ``model_index.json`` and the          ``weights/sdxl-turbo/``
sdxl-turbo  diffusers sub-folders, fp16 weights only                              (``generate --sdxl``)
weights-    Hub ``h94/IP-Adapter``: ``sdxl_models/ip-adapter_sdxl_vit-h``          ``weights/ip-adapter/``
ip-adapter  ``.safetensors``                                                      (``generate --ip-adapter``)
=========== ===================================================================== ===================================

Sources: Gifford et al. 2022, "A large and rich EEG dataset for modeling human visual object recognition",
NeuroImage 264 (https://osf.io/3jk45/); Li et al. 2024, "Visual decoding and reconstruction via EEG embeddings with
guided diffusion" (https://github.com/dongyangli-del/EEG_Image_decode, data on
https://huggingface.co/datasets/LidongYang/EEG_Image_decode); Hebart et al. 2023, "THINGS-data", eLife 12:e82580
(https://openneuro.org/datasets/ds004212). Weights: open_clip (https://github.com/mlfoundations/open_clip),
SDXL-Turbo (Sauer et al. 2023, "Adversarial diffusion distillation"), IP-Adapter (Ye et al. 2023,
https://github.com/tencent-ailab/IP-Adapter).

Archives (``.zip``) are downloaded under ``downloads/`` and unpacked into their folder; the folder appears whole or
not at all. The file names inside the OSF components come from their listings: what the table selects is a name
pattern, and a subject missing from a listing is an error that names what the listing holds.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from eegdecode.download.http import Checksum, DownloadError, DownloadOptionError
from eegdecode.download.sources import RemoteFile, list_hf, list_osf, list_s3

ENV_ENDPOINTS = {
    "osf": "EEGDECODE_OSF_API",
    "hf": "EEGDECODE_HF_ENDPOINT",
    "openneuro": "EEGDECODE_OPENNEURO_S3",
}
"""Environment variables that replace the hosts (only so that tests can point them at 127.0.0.1)."""


@dataclass(frozen=True)
class Endpoints:
    """Where each host answers. The defaults are the real services."""

    osf: str = "https://api.osf.io/v2"
    hf: str = "https://huggingface.co"
    openneuro: str = "https://s3.amazonaws.com/openneuro.org"

    @classmethod
    def resolve(cls, **flags: str | None) -> Endpoints:
        """Flags first, then ``$EEGDECODE_OSF_API`` / ``$EEGDECODE_HF_ENDPOINT`` / ``$EEGDECODE_OPENNEURO_S3``
        (and, for the Hub, ``$HF_ENDPOINT``, the mirror setting ``huggingface_hub`` itself reads)."""
        values = {}
        for name, env in ENV_ENDPOINTS.items():
            value = (
                flags.get(name)
                or os.environ.get(env)
                or (os.environ.get("HF_ENDPOINT") if name == "hf" else None)
            )
            if value:
                if not re.match(r"^https?://", value):
                    raise DownloadOptionError(
                        f"Invalid endpoint for {name}: {value!r}; expected an http(s):// URL"
                    )
                values[name] = value.rstrip("/")
        return cls(**values)


@dataclass(frozen=True)
class Item:
    """One file to fetch: saved at ``key`` (relative to the data root); an archive is unpacked into ``extract_to``."""

    asset: str
    key: str
    url: str
    size: int | None
    checksum: Checksum | None
    extract_to: str | None = None


@dataclass(frozen=True)
class Asset:
    name: str
    description: str
    source: str
    location: str
    subjects: tuple[int, ...]
    select: Callable[[Asset, Endpoints, tuple[int, ...]], list[Item]]


def _sub(n: int) -> str:
    return f"sub-{n:02d}"


def _by_name(files: list[RemoteFile]) -> dict[str, RemoteFile]:
    return {f.path.rsplit("/", 1)[-1]: f for f in files}


def _missing(asset: Asset, what: str, found: list[str]) -> DownloadError:
    shown = ", ".join(sorted(found)[:12]) + (" ..." if len(found) > 12 else "")
    return DownloadError(
        f"{asset.source} {asset.location}: {what} not in the listing (it holds {len(found)} files: {shown or 'none'})"
    )


def _select_images(asset: Asset, ep: Endpoints, subjects) -> list[Item]:
    files = _by_name(list_osf(ep.osf, asset.location))
    items = []
    for name, extract in (
        ("training_images.zip", "image_set/training_images"),
        ("test_images.zip", "image_set/test_images"),
        ("image_metadata.npy", None),
    ):
        if name not in files:
            raise _missing(asset, name, list(files))
        f = files[name]
        key = f"downloads/{asset.name}/{name}" if extract else f"image_set/{name}"
        items.append(Item(asset.name, key, f.url, f.size, f.checksum, extract))
    return items


def _select_osf_subject_zips(folder: str) -> Callable:
    def select(asset: Asset, ep: Endpoints, subjects) -> list[Item]:
        files = _by_name(list_osf(ep.osf, asset.location))
        items = []
        for n in subjects:
            name = f"{_sub(n)}.zip"
            if name not in files:
                raise _missing(asset, name, list(files))
            f = files[name]
            items.append(
                Item(
                    asset.name,
                    f"downloads/{asset.name}/{name}",
                    f.url,
                    f.size,
                    f.checksum,
                    f"{folder}/{_sub(n)}",
                )
            )
        return items

    return select


def _select_250hz(asset: Asset, ep: Endpoints, subjects) -> list[Item]:
    folder = "Preprocessed_data_250Hz"
    files = list_hf(ep.hf, asset.location, folder, repo_type="dataset")
    items = []
    for n in subjects:
        sub = _sub(n)
        inside = [f for f in files if f.path.startswith(f"{folder}/{sub}/")]
        zipped = [f for f in files if f.path == f"{folder}/{sub}.zip"]
        if inside:
            items += [Item(asset.name, f.path, f.url, f.size, f.checksum) for f in inside]
        elif zipped:
            f = zipped[0]
            items.append(
                Item(
                    asset.name,
                    f"downloads/{asset.name}/{sub}.zip",
                    f.url,
                    f.size,
                    f.checksum,
                    f"{folder}/{sub}",
                )
            )
        else:
            raise _missing(asset, f"{folder}/{sub}/ (or {sub}.zip)", [f.path for f in files])
    return items


_EPOCHS = re.compile(r"^preprocessed_P(\d+)-epo(-\d+)?\.fif$")
_MEG_CSV = ("image_concept_index.csv", "image_paths.csv")


def _s3_item(asset: Asset, f: RemoteFile) -> Item:
    return Item(asset.name, f.path, f.url, f.size, f.checksum)


def _select_meg(asset: Asset, ep: Endpoints, subjects) -> list[Item]:
    ds = asset.location
    top = [f for f in list_s3(ep.openneuro, f"{ds}/", delimiter="/") if f.path.count("/") == 1]
    deriv = list_s3(ep.openneuro, f"{ds}/derivatives/preprocessed/")
    src = [f for f in list_s3(ep.openneuro, f"{ds}/sourcedata/") if f.path.rsplit("/", 1)[-1] in _MEG_CSV]
    items = [_s3_item(asset, f) for f in top + src]
    for n in subjects:
        mine = [f for f in deriv if (m := _EPOCHS.match(f.path.rsplit("/", 1)[-1])) and int(m.group(1)) == n]
        if not mine:
            raise _missing(
                asset, f"derivatives/preprocessed/preprocessed_P{n}-epo.fif", [f.path for f in deriv]
            )
        items += [_s3_item(asset, f) for f in mine]
    return items


def _select_meg_raw(asset: Asset, ep: Endpoints, subjects) -> list[Item]:
    ds = asset.location
    top = [f for f in list_s3(ep.openneuro, f"{ds}/", delimiter="/") if f.path.count("/") == 1]
    items = [_s3_item(asset, f) for f in top]
    for n in subjects:
        prefix = f"{ds}/sub-BIGMEG{n}/"
        mine = list_s3(ep.openneuro, prefix)
        if not mine:
            raise _missing(asset, prefix, [f.path for f in top])
        items += [_s3_item(asset, f) for f in mine]
    return items


def _select_hf_weights(folder: str, path: str, keep: Callable[[str], bool]) -> Callable:
    """Files of a Hub model repository under ``path`` for which ``keep(path)``, into ``weights/<folder>/<path>``
    (the layout of ``hf download REPO --local-dir weights/<folder>``)."""

    def select(asset: Asset, ep: Endpoints, subjects) -> list[Item]:
        files = [f for f in list_hf(ep.hf, asset.location, path, repo_type="model") if keep(f.path)]
        if not files:
            raise _missing(asset, path or "the weights", [])
        return [Item(asset.name, f"weights/{folder}/{f.path}", f.url, f.size, f.checksum) for f in files]

    return select


SDXL_PARTS = ("unet", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "scheduler")


def _sdxl_file(path: str) -> bool:
    # diffusers layout only, fp16 weights only (sdxl.py loads them in fp16 and fp32); not the single-file checkpoints
    if path == "model_index.json":
        return True
    part, _, name = path.partition("/")
    if part not in SDXL_PARTS or not name:
        return False
    return name.endswith(".fp16.safetensors") or not name.endswith(
        (".safetensors", ".bin", ".onnx", ".msgpack")
    )


CLIP_FILE = "open_clip_pytorch_model.bin"
IP_ADAPTER_FILE = "sdxl_models/ip-adapter_sdxl_vit-h.safetensors"

ASSETS: dict[str, Asset] = {
    a.name: a
    for a in (
        Asset("images", "THINGS-EEG2 image set (16540 training + 200 test images)", "osf", "y63gw", (), _select_images),
        Asset("eeg-250hz", "THINGS-EEG2, 250 Hz / 63 channels (NICE/ATM release)", "hf", "LidongYang/EEG_Image_decode",
              tuple(range(1, 11)), _select_250hz),
        Asset("eeg-100hz", "THINGS-EEG2, Gifford's preprocessed 100 Hz / 17 channels", "osf", "anp5v",
              tuple(range(1, 11)), _select_osf_subject_zips("preprocessed_data")),
        Asset("eeg-raw", "THINGS-EEG2 raw recordings (1000 Hz, 4 sessions)", "osf", "crxs4",
              tuple(range(1, 11)), _select_osf_subject_zips("raw_data")),
        Asset("meg", "THINGS-MEG epochs derivative (OpenNeuro ds004212)", "openneuro", "ds004212",
              (1, 2, 3, 4), _select_meg),
        Asset("meg-raw", "THINGS-MEG raw BIDS runs (OpenNeuro ds004212)", "openneuro", "ds004212",
              (1, 2, 3, 4), _select_meg_raw),
        Asset("weights-clip", "open_clip ViT-H-14 laion2b_s32b_b79k (weights/clip/)", "hf",
              "laion/CLIP-ViT-H-14-laion2B-s32B-b79K", (), _select_hf_weights("clip", "", lambda p: p == CLIP_FILE)),
        Asset("weights-sdxl-turbo", "SDXL-Turbo, diffusers layout, fp16 (weights/sdxl-turbo/)", "hf",
              "stabilityai/sdxl-turbo", (), _select_hf_weights("sdxl-turbo", "", _sdxl_file)),
        Asset("weights-ip-adapter", "IP-Adapter SDXL ViT-H (weights/ip-adapter/)", "hf", "h94/IP-Adapter", (),
              _select_hf_weights("ip-adapter", "sdxl_models", lambda p: p == IP_ADAPTER_FILE)),
    )
}  # fmt: skip


def plan(what: list[str], subjects: list[int] | None, endpoints: Endpoints) -> list[Item]:
    """The files to fetch for the chosen assets and subjects (``None``: each asset's default subjects)."""
    items: list[Item] = []
    for name in what:
        if name not in ASSETS:
            raise DownloadOptionError(
                f"Invalid value for --what: {name!r}; allowed values are {list(ASSETS)}"
            )
        asset = ASSETS[name]
        subs = tuple(subjects) if subjects and asset.subjects else asset.subjects
        bad = [s for s in subs if asset.subjects and s not in asset.subjects]
        if bad:
            raise DownloadOptionError(
                f"Invalid --subject for {name}: {bad}; the release holds {list(asset.subjects)}"
            )
        items += asset.select(asset, endpoints, subs)
    return items


def hint(what: str, data_root: str = "DATA") -> str:
    """The command that fetches asset ``what`` (for the messages of missing data or weights)."""
    if what not in ASSETS:
        raise DownloadOptionError(f"Invalid asset {what!r}; allowed values are {list(ASSETS)}")
    return f"eegdecode download --what {what} --data-root {data_root}"
