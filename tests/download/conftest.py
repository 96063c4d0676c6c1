"""Fixtures: a small simulated release packed as the hosts publish it, served by a fresh loopback server per test."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from fake_hosts import FakeHosts

from eegdecode.data.simulate import Preset, simulate_dataset

HF_REPO = "LidongYang/EEG_Image_decode"
PRESET = Preset(
    12, 2, 2, 6, 2, 16
)  # smaller than "tiny": the test moves every byte through HTTP several times


def _zip(folder: Path, top: str | None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(folder.rglob("*")):
            rel = p.relative_to(folder).as_posix()
            name = f"{top}/{rel}" if top else rel
            if p.is_dir():
                zf.writestr(name + "/", b"")
            else:
                zf.writestr(name, p.read_bytes())
        zf.writestr("__MACOSX/._junk", b"resource fork")
    return buf.getvalue()


@pytest.fixture(scope="session")
def published(tmp_path_factory):
    """What each host publishes, built from a simulated data set (one subject, float32; sub-02 repeats its bytes)."""
    src = tmp_path_factory.mktemp("published_src")
    simulate_dataset(src, PRESET, n_subjects=1, seed=0, dtype="float32", progress=False)
    sub01 = src / "Preprocessed_data_250Hz" / "sub-01"
    rng = np.random.default_rng(0)
    images = src / "image_set"
    osf = {
        # OSF component y63gw of project 3jk45 (the image set); training zip has a top folder, test zip none.
        "y63gw": [
            ("training_images.zip", "3v527", _zip(images / "training_images", "training_images")),
            ("test_images.zip", "znu7b", _zip(images / "test_images", None)),
            ("image_metadata.npy", "qkgtf", (images / "image_metadata.npy").read_bytes()),
            ("README.txt", "rd000", b"THINGS-EEG2 image set\n"),
        ],
        # Gifford's preprocessed release (anp5v) and the raw data (crxs4): one zip per subject.
        "anp5v": [(f"sub-0{n}.zip", f"pp00{n}", _zip(sub01, f"sub-0{n}")) for n in (1, 2)],
        "crxs4": [
            ("sub-01.zip", "rw001", _zip_bytes({"sub-01/ses-01/raw_eeg_training.npy": rng.bytes(3000)})),
        ],
    }
    hf = {
        HF_REPO: {
            **{
                f"Preprocessed_data_250Hz/sub-0{n}/{f.name}": f.read_bytes()
                for n in (1, 2)
                for f in sorted(sub01.iterdir())
            },
            "README.md": b"# EEG_Image_decode\n",
            "ViT-H-14_features_test.pt": rng.bytes(500),
        },
        # Model repositories of the weights, in the Hub's layout (a few bytes stand in for each weight file).
        "laion/CLIP-ViT-H-14-laion2B-s32B-b79K": {
            "open_clip_pytorch_model.bin": rng.bytes(700),
            "open_clip_config.json": b"{}",
            "pytorch_model.bin": rng.bytes(300),
        },
        "stabilityai/sdxl-turbo": {
            "model_index.json": b'{"_class_name": "StableDiffusionXLPipeline"}',
            "sd_xl_turbo_1.0_fp16.safetensors": rng.bytes(900),
            "scheduler/scheduler_config.json": b"{}",
            "tokenizer/vocab.json": b"{}",
            "tokenizer/merges.txt": b"#version: 0.2\n",
            "tokenizer_2/vocab.json": b"{}",
            "tokenizer_2/merges.txt": b"#version: 0.2\n",
            **{
                f"{part}/{name}": rng.bytes(400) if name.endswith("safetensors") else b"{}"
                for part, weight in (
                    ("unet", "diffusion_pytorch_model"),
                    ("vae", "diffusion_pytorch_model"),
                    ("text_encoder", "model"),
                    ("text_encoder_2", "model"),
                )  # fmt: skip
                for name in ("config.json", f"{weight}.safetensors", f"{weight}.fp16.safetensors")
            },
        },
        "h94/IP-Adapter": {
            "sdxl_models/ip-adapter_sdxl_vit-h.safetensors": rng.bytes(600),
            "sdxl_models/ip-adapter_sdxl.safetensors": rng.bytes(600),
            "models/ip-adapter_sd15.bin": rng.bytes(600),
        },
    }
    s3 = {
        "ds004212/dataset_description.json": b'{"Name": "THINGS-MEG", "BIDSVersion": "1.6.0"}',
        "ds004212/participants.tsv": b"participant_id\nsub-BIGMEG1\nsub-BIGMEG2\n",
        "ds004212/derivatives/preprocessed/preprocessed_P1-epo.fif": rng.bytes(4000),
        "ds004212/derivatives/preprocessed/preprocessed_P1-epo-1.fif": rng.bytes(2500),
        "ds004212/derivatives/preprocessed/preprocessed_P2-epo.fif": rng.bytes(3000),
        "ds004212/sourcedata/image_concept_index.csv": b"1\n1\n2\n",
        "ds004212/sourcedata/image_paths.csv": b"images/a.jpg\nimages/b.jpg\nimages/c.jpg\n",
        "ds004212/sourcedata/big_other_file.bin": rng.bytes(1000),
        "ds004212/sub-BIGMEG1/ses-1/meg/sub-BIGMEG1_ses-1_task-main_run-1_events.tsv": b"onset\tvalue\n0.1\t3\n",
        "ds004212/sub-BIGMEG1/ses-1/meg/sub-BIGMEG1_ses-1_task-main_run-1_meg.ds/data.meg4": rng.bytes(1500),
        "ds004212/sub-BIGMEG2/ses-1/meg/sub-BIGMEG2_ses-1_task-main_run-1_events.tsv": b"onset\tvalue\n",
    }
    return {"src": src, "osf": osf, "hf": hf, "s3": s3}


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.fixture
def hosts(published, monkeypatch):
    """A fresh loopback stand-in for OSF, the Hub and OpenNeuro's bucket (stops itself after 120 s at most)."""
    from huggingface_hub import constants

    # The tests run with HF_HUB_OFFLINE=1; the Hub client may talk to the loopback server only. No telemetry or
    # agent-registry request may leave for huggingface.co either.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    for env in (
        "EEGDECODE_OSF_API",
        "EEGDECODE_HF_ENDPOINT",
        "EEGDECODE_OPENNEURO_S3",
        "EEGDECODE_DATA",
        "HF_ENDPOINT",
    ):
        monkeypatch.delenv(env, raising=False)
    h = FakeHosts(deadline=120)
    h.osf = {k: list(v) for k, v in published["osf"].items()}
    h.hf = {k: dict(v) for k, v in published["hf"].items()}
    h.s3 = dict(published["s3"])
    h.start()
    yield h
    h.stop()
