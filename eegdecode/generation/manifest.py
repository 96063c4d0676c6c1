"""Generation outputs on disk: the image layout and the manifest that the metrics read.

Layout, for one encoder (``model``) and subject::

    <out>/gen/<model>/<subject>/manifest.json
    <out>/gen/<model>/<subject>/<source>/<index:04d>_<concept>_r<round>.png

``source`` is one of ``image`` (the true CLIP image embedding: the upper bound), ``eeg`` (the EEG embedding fed
directly), ``prior`` (the diffusion prior's output) and ``lowlevel`` (img2img from predicted VAE latents).
``index`` is the test item's position (0..N-1), ``round`` counts the images made per item (``n_per_concept``).

The manifest (format ``eegdecode-generation/1``)::

    {"format": "eegdecode-generation/1", "random_weights": false, "model": "NervformerV2", "subject": "sub-01",
     "ground_truth": [{"index": 0, "concept": "00001_aircraft_carrier", "path": "/data/test_images/..."}],
     "images": [{"index": 0, "concept": "00001_aircraft_carrier", "source": "eeg", "round": 0, "seed": 1234,
                 "path": "eeg/0000_00001_aircraft_carrier_r0.png"}],
     "provenance": {"generator": {...}, "height": 512, "width": 512, ...}}

Paths are resolved against the manifest's folder (ground-truth paths are stored absolute, so that works for
them too). Image (index, round) gets seed ``seed + index * n_per_concept + round`` for every source, so sources
differ only by their embedding. Every PNG is written atomically and the manifest last: a folder without a
manifest is an unfinished run, and ``generate_all`` refuses to replace a finished one unless ``overwrite``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from eegdecode.errors import DataFormatError, MissingFileError, OutputExistsError, check_option
from eegdecode.io import atomic_path, read_json, write_json

FORMAT = "eegdecode-generation/1"
SOURCES = ("image", "eeg", "prior", "lowlevel")
MANIFEST = "manifest.json"


def output_folder(out_dir: str | Path, model: str, subject: str) -> Path:
    """``<out>/gen/<model>/<subject>``, the folder that holds the manifest."""
    return Path(out_dir) / "gen" / _name("model", model) / _name("subject", subject)


def image_relpath(source: str, index: int, concept: str, round_: int) -> str:
    """``<source>/<index:04d>_<concept>_r<round>.png``, relative to the manifest's folder."""
    check_option("source", source, SOURCES)
    return f"{source}/{index:04d}_{_name('concept', concept)}_r{round_}.png"


def image_seed(seed: int, index: int, round_: int, n_per_concept: int) -> int:
    """Seed of image (index, round): the same for every source."""
    return seed + index * n_per_concept + round_


def _name(what: str, value: str) -> str:
    value = str(value)
    if not value or value in (".", "..") or any(c in value for c in "/\\\0"):
        raise ValueError(f"{what} must be a plain file-name part (no path separators); found {value!r}")
    return value


def generate_all(
    generator,
    sources: Mapping[str, Any],
    concepts: Sequence[str],
    gt_paths: Sequence[str | Path],
    out_dir: str | Path,
    model: str,
    subject: str,
    n_per_concept: int = 1,
    seed: int = 0,
    height: int = 512,
    width: int = 512,
    init_latents: Mapping[str, torch.Tensor] | None = None,
    strength: float = 0.5,
    provenance: dict[str, Any] | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Generate every source's images and write them with their manifest.

    Parameters
    ----------
    generator : ``eegdecode.generation.sdxl.Generator`` (anything with ``generate``, ``batch_size``,
        ``random_weights`` and ``settings()``).
    sources : {source: (N, 1024) embeddings}, source in {image, eeg, prior, lowlevel}; row i is test item i.
    concepts : N concept names (``00001_aircraft_carrier``), used in file names.
    gt_paths : N paths of the test images (the ground truth the metrics compare with).
    out_dir : root output folder; images go under ``<out>/gen/<model>/<subject>/``.
    model, subject : encoder name and subject id.
    n_per_concept : images per test item and source (rounds).
    seed : base seed (see ``image_seed``).
    height, width : image size.
    init_latents : {source: (N, 4, height/8, width/8) unscaled VAE latents}: those sources are made by img2img
        at ``strength`` (normally ``{"lowlevel": predicted_latents}``).
    provenance : the caller's record (encoder checkpoint, prior checkpoint, feature files, ...).
    overwrite : replace a finished run (a folder with a manifest).
    progress : tqdm bar over images.

    Returns
    -------
    Path of the manifest.
    """
    folder = output_folder(out_dir, model, subject)
    manifest_path = folder / MANIFEST
    if manifest_path.exists() and not overwrite:
        raise OutputExistsError(manifest_path)
    n = len(concepts)
    if len(gt_paths) != n:
        raise DataFormatError(None, "gt_paths needs one path per concept", n, len(gt_paths))
    if n_per_concept < 1:
        raise ValueError(f"n_per_concept must be at least 1; found {n_per_concept}")
    if not sources:
        raise ValueError("sources is empty; give at least one of " + ", ".join(SOURCES))
    init_latents = dict(init_latents or {})
    for name, latents in init_latents.items():
        if name not in sources:
            raise ValueError(f"init_latents has source {name!r} that is not in sources {list(sources)}")
        expected = (n, 4, height // 8, width // 8)
        if tuple(latents.shape) != expected:
            raise DataFormatError(
                None, f"init_latents[{name!r}] has the wrong shape", expected, tuple(latents.shape)
            )
    embeds = {}
    for name, x in sources.items():
        check_option("source", name, SOURCES)
        x = generator.prepare_embeds(x)
        if len(x) != n:
            raise DataFormatError(None, f"sources[{name!r}] needs one row per concept", n, len(x))
        embeds[name] = x
    for i, concept in enumerate(concepts):
        image_relpath("image", i, concept, 0)  # validates the concept name before any work

    pairs = [(i, r) for i in range(n) for r in range(n_per_concept)]
    records = []
    bar = tqdm(
        total=len(pairs) * len(embeds), desc=f"generate {model} {subject}", unit="img", disable=not progress
    )
    for name, x in embeds.items():
        for start in range(0, len(pairs), generator.batch_size):
            batch = pairs[start : start + generator.batch_size]
            rows = [i for i, _ in batch]
            seeds = [image_seed(seed, i, r, n_per_concept) for i, r in batch]
            latents = init_latents[name][rows] if name in init_latents else None
            images = generator.generate(
                x[rows], seeds, height, width, init_latents=latents, strength=strength
            )
            for (i, r), s, img in zip(batch, seeds, images):
                rel = image_relpath(name, i, concepts[i], r)
                with atomic_path(folder / rel, suffix=".png") as tmp:
                    img.save(tmp, format="PNG")
                records.append(
                    {"index": i, "concept": concepts[i], "source": name, "round": r, "seed": s, "path": rel}
                )
            bar.update(len(batch))
    bar.close()

    manifest = {
        "format": FORMAT,
        "random_weights": bool(generator.random_weights),
        "model": model,
        "subject": subject,
        "ground_truth": [
            {"index": i, "concept": c, "path": str(Path(p).resolve())}
            for i, (c, p) in enumerate(zip(concepts, gt_paths))
        ],
        "images": records,
        "provenance": {
            **(provenance or {}),
            "generator": generator.settings(),
            "height": height,
            "width": width,
            "n_per_concept": n_per_concept,
            "seed": seed,
            "seed_rule": "seed + index * n_per_concept + round, the same for every source",
            "img2img_strength": {name: strength for name in init_latents},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    }
    return write_json(manifest_path, manifest)


def read_manifest(path: str | Path) -> dict[str, Any]:
    """Read and check a manifest (file or its folder); image paths are left relative to its folder."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST
    if not path.is_file():
        raise MissingFileError(path, "Manifests are written by eegdecode.generation.manifest.generate_all")
    manifest = read_json(path)
    if manifest.get("format") != FORMAT:
        raise DataFormatError(path, "not a generation manifest", FORMAT, manifest.get("format"))
    for key in ("random_weights", "model", "subject", "ground_truth", "images", "provenance"):
        if key not in manifest:
            raise DataFormatError(path, f"missing key {key!r}")
    return manifest
