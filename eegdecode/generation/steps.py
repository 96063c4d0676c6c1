"""The two generation steps of the original scripts, on top of a trained retrieval run.

Step 1 (:func:`extract_embeddings`, ``eegdecode extract``): EEG embeddings of every training trial and of the test
images (repetitions averaged) from a run's best checkpoint, saved with provenance::

    <run>/embeddings/
        eeg_train.npy          (n_train_trials, dim) float32, the model's raw output (not normalised): the
                               encoder's, or with a target head its shared space (``space`` in the sidecar)
        train_index.npy        (n_train_trials, 2) int64: image index, repetition index of each row
        eeg_test.npy           (n_test_images, dim) float32, test repetitions averaged before encoding
        embeddings.json        run, checkpoint + SHA-256, model, subject, test_reps, normalisation, shapes

Step 2 (:func:`generate_from_run`, ``eegdecode generate``): trains the diffusion prior on (training-trial EEG
embedding -> CLIP image feature of its image) if ``<run>/prior/`` does not exist, samples it for the test
embeddings, and generates images from three sources per test image — the true image embedding (upper bound), the
EEG embedding, and the prior's output — with SDXL-Turbo + IP-Adapter (or the tiny random pipeline, labelled).
All sources are rescaled to the mean norm of the unnormalised CLIP training image features before IP-Adapter.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eegdecode.data.datasets import SubjectData, averaged_eeg
from eegdecode.data.image_set import ImageSet
from eegdecode.data.paths import DatasetPaths
from eegdecode.devices import resolve_device
from eegdecode.embeddings.store import load_features
from eegdecode.errors import ConfigError, DataFormatError, MissingFileError, OutputExistsError
from eegdecode.io import read_json, save_npy, sha256_file, write_json
from eegdecode.training.checkpoint import checkpoint_files
from eegdecode.training.trainer import embed, load_run

log = logging.getLogger(__name__)


def _space(model, dim: int) -> dict:
    """Which space the embeddings are in: the encoder's output, or a target head's shared space (a run with
    ``target.head`` or a router scores retrieval, and writes embeddings, in its head's space)."""
    from eegdecode.models.heads import AlignedEncoder

    if isinstance(model, AlignedEncoder):
        return {"kind": f"target head ({type(model.head).__name__})", "dim": int(dim)}
    return {"kind": "encoder output", "dim": int(dim)}


def extract_embeddings(run_dir: str | Path, checkpoint: str = "best", device: str = "auto", overwrite: bool = False,
                       batch_size: int = 512) -> Path:  # fmt: skip
    """Step 1: write ``<run>/embeddings/`` (see module docstring); returns that folder."""
    run_dir = Path(run_dir)
    out = run_dir / "embeddings"
    if (out / "embeddings.json").exists() and not overwrite:
        raise OutputExistsError(out / "embeddings.json")
    dev = resolve_device(device)
    resolved, cfg, fold, model, info = load_run(run_dir, checkpoint, dev)
    if len(fold.test_subjects) != 1:
        raise ConfigError(f"extract works on single-subject runs; {run_dir} tests {fold.test_subjects}")
    subject = fold.test_subjects[0]
    paths = DatasetPaths(Path(resolved["data_root"]), resolved["release"])
    sd = SubjectData.open(paths, subject, cfg.data)
    layer = fold.subject_layer.get(subject, 0)
    n_img, n_rep = sd.cache.train.shape[:2]
    chunks, index = [], []
    for start in range(0, n_img, max(1, batch_size // n_rep)):
        imgs = np.arange(start, min(n_img, start + max(1, batch_size // n_rep)))
        img_idx, rep_idx = np.repeat(imgs, n_rep), np.tile(np.arange(n_rep), imgs.size)
        chunks.append(embed(model, sd.read("train", img_idx, rep_idx), layer, dev, batch=batch_size))
        index.append(np.stack([img_idx, rep_idx], axis=1))
    test = embed(model, averaged_eeg(sd, "test", n_reps=cfg.data.test_reps), layer, dev, batch=batch_size)
    save_npy(out / "eeg_train.npy", np.concatenate(chunks).astype(np.float32))
    save_npy(out / "train_index.npy", np.concatenate(index).astype(np.int64))
    save_npy(out / "eeg_test.npy", test.astype(np.float32))
    weights = checkpoint_files(run_dir / "checkpoints", checkpoint)["weights"]
    write_json(out / "embeddings.json", {
        "format": "eegdecode-embeddings/1", "run": str(run_dir), "checkpoint": checkpoint,
        "checkpoint_sha256": sha256_file(weights), "checkpoint_epoch": info.get("epoch"), "model": resolved["model"],
        "subject": subject, "subject_layer": layer, "test_reps": cfg.data.test_reps, "features": cfg.features,
        "normalisation": "none: the model's raw outputs", "space": _space(model, test.shape[1]), "n_train_trials": int(n_img * n_rep), "n_test": int(len(test)),
        "includes_validation_images": True,
    })  # fmt: skip
    log.info("step 1: %d training-trial and %d test embeddings -> %s", n_img * n_rep, len(test), out)
    return out


def generate_from_run(
    run_dir: str | Path,
    out_dir: str | Path,
    sdxl: str | None = None,
    ip_adapter: str | None = None,
    tiny: bool = False,
    prior_epochs: int = 150,
    prior_batch_size: int = 1024,
    prior_prediction: str | None = None,
    prior_normalisation: str | None = None,
    n_per_concept: int = 1,
    size: int = 512,
    seed: int = 0,
    device: str = "auto",
    overwrite: bool = False,
    sources: tuple[str, ...] = ("image", "eeg", "prior"),
    max_images: int | None = None,
    lowlevel: bool = False,
    strength: float = 0.5,
) -> Path:
    """Step 2: prior (trained if missing) + SDXL-Turbo/IP-Adapter images; returns the manifest path.

    ``prior_prediction`` and ``prior_normalisation`` default to ``PriorConfig``'s (x0 prediction on standardised
    embeddings; see :mod:`eegdecode.generation.prior`). A prior already in ``<run>/prior/`` is reused only if it was
    trained with the same two settings; otherwise this is an error (move the folder away to train a new one).

    ``lowlevel`` adds the source ``lowlevel``: SDXL-VAE latents of the training images (cached in
    ``<run>/lowlevel/``), a ridge regression from each image's EEG embedding (repetitions averaged) to its latent,
    and img2img from the predicted test latents at ``strength``, conditioned on the EEG embedding.
    """
    from eegdecode.generation.manifest import generate_all
    from eegdecode.generation.prior import PriorConfig, load_prior, sample_prior, save_prior, train_prior
    from eegdecode.generation.sdxl import Generator, build_tiny_pipeline

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    emb_dir = run_dir / "embeddings"
    if not (emb_dir / "embeddings.json").exists():
        raise MissingFileError(emb_dir / "embeddings.json", f"run step 1 first: eegdecode extract {run_dir}")
    meta = read_json(emb_dir / "embeddings.json")
    resolved = read_json(run_dir / "config.json")
    paths = DatasetPaths(Path(resolved["data_root"]), resolved["release"])
    feats_dir = (
        Path(resolved["features"])
        if Path(resolved["features"]).is_dir()
        else paths.features_dir(resolved["features"])
    )
    train_f, test_f = load_features(feats_dir, "train"), load_features(feats_dir, "test")
    eeg_train = np.load(emb_dir / "eeg_train.npy")
    index = np.load(emb_dir / "train_index.npy")
    eeg_test = np.load(emb_dir / "eeg_test.npy")

    if "prior" in sources:
        prior_dir = run_dir / "prior"
        cfg = PriorConfig(
            epochs=prior_epochs,
            batch_size=prior_batch_size,
            prediction_type=prior_prediction or PriorConfig.prediction_type,
            normalisation=prior_normalisation or PriorConfig.normalisation,
        )
        if (prior_dir / "prior.json").exists():
            prior, _ = load_prior(prior_dir)
            asked = f"prediction {cfg.prediction_type}, normalisation {cfg.normalisation}"
            found = f"prediction {prior.config.prediction_type}, normalisation {prior.config.normalisation}"
            if found != asked:
                raise DataFormatError(
                    prior_dir / "prior.json",
                    "the trained prior was trained with other settings than asked (--prior-prediction, "
                    "--prior-normalisation; move the folder away to train a new one)",
                    asked,
                    found,
                )
            log.info("using the trained prior in %s", prior_dir)
        else:
            target = np.asarray(train_f.image)[index[:, 0]]
            prior, history = train_prior(eeg_train, target, cfg, seed=seed, device=resolve_device(device))
            save_prior(prior_dir, prior, {"epoch": prior_epochs, "history": history, "provenance": {
                "embeddings": str(emb_dir), "checkpoint_sha256": meta["checkpoint_sha256"], "model": meta["model"],
                "subject": meta["subject"], "features": str(feats_dir)}})  # fmt: skip
        prior_out = sample_prior(prior, eeg_test, n_steps=50, guidance=5.0, seed=seed).cpu().numpy()

    if tiny:
        weights = build_tiny_pipeline(out_dir / "weights" / "tiny-sdxl", seed=seed)
        sdxl, ip_adapter = str(weights.sdxl), str(weights.ip_adapter)
    embed_norm = float(np.linalg.norm(np.asarray(train_f.image), axis=1).mean())
    gen = Generator(sdxl, ip_adapter, device=device if device != "auto" else None, embed_norm=embed_norm)
    if gen.random_weights:
        log.warning(
            "RANDOM-WEIGHT pipeline: the images are noise, not reconstructions (real weights: --sdxl/--ip-adapter)"
        )
    by_source: dict[str, Any] = {"image": np.asarray(test_f.image), "eeg": eeg_test}
    if "prior" in sources:
        by_source["prior"] = prior_out
    n = len(eeg_test) if max_images is None else min(max_images, len(eeg_test))
    image_set = ImageSet(paths.image_set_dir)
    split = image_set.split("test")
    chosen = {s: torch.as_tensor(by_source[s][:n], dtype=torch.float32) for s in sources}
    init_latents = None
    if lowlevel:
        chosen["lowlevel"] = torch.as_tensor(eeg_test[:n], dtype=torch.float32)
        init_latents = {
            "lowlevel": _lowlevel_latents(gen, image_set, run_dir, eeg_train, index, eeg_test[:n], size, seed)
        }
    return generate_all(
        gen, chosen, list(split.image_concepts[:n]), [str(p) for p in split.image_paths[:n]], out_dir,
        meta["model"], meta["subject"], n_per_concept=n_per_concept, seed=seed, height=size, width=size,
        init_latents=init_latents, strength=strength,
        provenance={"embeddings": meta, "embed_norm": embed_norm, "generator": gen.settings(), "features": str(feats_dir),
                    "lowlevel": {"strength": strength} if lowlevel else None,
                    "prior": {"folder": str(run_dir / "prior"), "prediction_type": prior.config.prediction_type,
                              "normalisation": prior.config.normalisation, "guidance": 5.0, "steps": 50} if "prior" in sources else None},
        overwrite=overwrite,
    )  # fmt: skip


def _lowlevel_latents(
    gen, image_set: ImageSet, run_dir: Path, eeg_train, index, eeg_test, size: int, seed: int
):
    """Predicted unscaled VAE latents of the test images from their EEG embeddings (ridge, penalty on held-out pairs)."""
    from eegdecode.generation.lowlevel import encode_latents, fit_latent_ridge, load_latents, save_latents

    train = image_set.split("train")
    path = run_dir / "lowlevel" / f"latents_train_{size}px.npy"
    vae = gen.pipe.vae
    if path.exists():
        latents, _ = load_latents(path)
        latents = torch.as_tensor(np.asarray(latents))
    else:
        latents = encode_latents(vae, [str(p) for p in train.image_paths], size=size)
        save_latents(path, latents, [str(p) for p in train.relative_names], float(vae.config.scaling_factor),
                     {"size": size, "random_weights": gen.random_weights})  # fmt: skip
    # One EEG embedding per training image: the mean over its repetitions (rows of eeg_train, see train_index.npy).
    n_img = latents.shape[0]
    sums = np.zeros((n_img, eeg_train.shape[1]), dtype=np.float64)
    np.add.at(sums, index[:, 0], eeg_train)
    per_image = (sums / np.bincount(index[:, 0], minlength=n_img)[:, None]).astype(np.float32)
    ridge = fit_latent_ridge(per_image, latents, seed=seed)
    return ridge.predict(eeg_test)
