"""SDXL-Turbo + IP-Adapter generator on the tiny random pipeline: weight lookup and its errors, the Hugging Face
cache route, seeding, batching, the embedding scale, img2img, and the random-weights flag."""

import logging
import shutil

import numpy as np
import pytest
import torch

from eegdecode.errors import DataFormatError, WeightsNotFoundError
from eegdecode.generation.sdxl import (
    IP_ADAPTER_REPO,
    RANDOM_WEIGHTS_MARKER,
    SDXL_REPO,
    Generator,
    resolve_weights,
)


def _pixels(img):
    return np.asarray(img).astype(np.int16)


def test_tiny_pipeline_is_written_in_the_real_layout(tiny_weights):
    sdxl = tiny_weights.sdxl
    for part in (
        "model_index.json",
        "unet/config.json",
        "vae/config.json",
        "scheduler/scheduler_config.json",
    ):
        assert (sdxl / part).is_file(), part
    assert tiny_weights.ip_adapter_file.relative_to(tiny_weights.ip_adapter).as_posix() == (
        "sdxl_models/ip-adapter_sdxl_vit-h.safetensors"
    )
    assert (sdxl / RANDOM_WEIGHTS_MARKER).is_file() and (
        tiny_weights.ip_adapter / RANDOM_WEIGHTS_MARKER
    ).is_file()
    found = resolve_weights(sdxl, tiny_weights.ip_adapter)
    assert found.random_weights


def test_missing_weights_say_what_to_download(tmp_path, tiny_weights):
    with pytest.raises(WeightsNotFoundError, match=rf"{tmp_path / 'nothing'}.*{SDXL_REPO}"):
        resolve_weights(tmp_path / "nothing", tiny_weights.ip_adapter)
    with pytest.raises(
        WeightsNotFoundError, match=rf"sdxl_models/ip-adapter_sdxl_vit-h.safetensors.*{IP_ADAPTER_REPO}"
    ):
        resolve_weights(tiny_weights.sdxl, tmp_path)
    # huggingface_hub >= 1.0 installs `hf`, not `huggingface-cli`: the hint names the command that exists.
    with pytest.raises(
        WeightsNotFoundError, match=rf"`hf download {SDXL_REPO} --local-dir <folder>`"
    ) as caught:
        resolve_weights(tmp_path / "nothing", tiny_weights.ip_adapter)
    assert "huggingface-cli" not in str(caught.value)
    partial = tmp_path / "partial"
    shutil.copytree(tiny_weights.sdxl, partial)
    shutil.rmtree(partial / "vae")
    with pytest.raises(WeightsNotFoundError, match="vae"):
        resolve_weights(partial, tiny_weights.ip_adapter)
    with pytest.raises(WeightsNotFoundError, match=f"cache entry {SDXL_REPO}"):
        resolve_weights(None, tiny_weights.ip_adapter, cache_dir=tmp_path / "empty_cache")


def test_weights_found_in_a_local_hugging_face_cache(tmp_path, tiny_weights):
    # The hub cache layout: models--org--name/refs/main holds the commit, snapshots/<commit>/ the files.
    commit = "0" * 40
    for repo, source in ((SDXL_REPO, tiny_weights.sdxl), (IP_ADAPTER_REPO, tiny_weights.ip_adapter)):
        entry = tmp_path / ("models--" + repo.replace("/", "--"))
        (entry / "refs").mkdir(parents=True)
        (entry / "refs" / "main").write_text(commit)
        shutil.copytree(source, entry / "snapshots" / commit)
    found = resolve_weights(cache_dir=tmp_path)
    assert found.sdxl == tmp_path / "models--stabilityai--sdxl-turbo" / "snapshots" / commit
    assert found.ip_adapter_file.is_file() and found.random_weights


def test_random_weights_are_flagged_and_logged(tiny_weights, caplog):
    with caplog.at_level(logging.WARNING, logger="eegdecode.generation.sdxl"):
        gen = Generator(tiny_weights.sdxl, tiny_weights.ip_adapter, device="cpu")
    assert gen.random_weights and gen.settings()["random_weights"]
    assert "random-weight output" in caplog.text
    assert gen.dtype == torch.float32 and gen.embed_dim == 1024
    assert gen.settings()["num_inference_steps"] == 4 and gen.settings()["guidance_scale"] == 0.0


def test_images_depend_on_embedding_and_seed_only(tiny_generator):
    g = torch.Generator().manual_seed(0)
    embeds = torch.randn(3, 1024, generator=g)
    images = tiny_generator.generate(embeds, [5, 6, 7], 64, 64)
    assert [im.size for im in images] == [(64, 64)] * 3 and images[0].mode == "RGB"
    again = tiny_generator.generate(embeds[1:2], [6], 64, 64)[0]
    # Alone or in a batch, same seed and embedding: the same image (up to rounding of batched matmuls).
    assert np.abs(_pixels(again) - _pixels(images[1])).max() <= 1
    # Each image of a batch gets its own embedding (the stock pipeline would give all of them the same mix).
    same_seed = tiny_generator.generate(embeds, [6, 6, 6], 64, 64)
    assert np.abs(_pixels(same_seed[1]) - _pixels(again)).max() <= 1
    assert np.abs(_pixels(same_seed[0]) - _pixels(same_seed[1])).mean() > 0.5
    assert np.array_equal(_pixels(again), _pixels(tiny_generator.generate(embeds[1:2], [6], 64, 64)[0]))
    other_seed = tiny_generator.generate(embeds[1:2], [99], 64, 64)[0]
    other_embed = tiny_generator.generate(-embeds[1:2], [6], 64, 64)[0]
    assert np.abs(_pixels(other_seed) - _pixels(again)).mean() > 5
    assert np.abs(_pixels(other_embed) - _pixels(again)).mean() > 2  # the embedding reaches the UNet


def test_embed_norm_rescales_and_bad_input_is_named(tiny_weights, tiny_generator):
    gen = Generator(tiny_weights.sdxl, tiny_weights.ip_adapter, device="cpu", embed_norm=20.0)
    x = torch.randn(4, 1024) * torch.tensor([[0.1], [1.0], [3.0], [30.0]])
    torch.testing.assert_close(gen.prepare_embeds(x).norm(dim=1), torch.full((4,), 20.0))
    torch.testing.assert_close(tiny_generator.prepare_embeds(x), x)  # embed_norm=None feeds them as given
    with pytest.raises(DataFormatError, match=r"embeds has the wrong shape.*\(n, 1024\).*\(2, 768\)"):
        tiny_generator.generate(torch.zeros(2, 768), [0, 1], 64, 64)
    with pytest.raises(ValueError, match="one entry per embedding"):
        tiny_generator.generate(torch.zeros(2, 1024), [0], 64, 64)
    with pytest.raises(ValueError, match="multiples of 8"):
        tiny_generator.generate(torch.zeros(1, 1024), [0], 60, 64)


def test_img2img_from_unscaled_latents(tiny_generator):
    embeds = torch.randn(2, 1024)
    latents = torch.randn(2, 4, 8, 8)
    plain = tiny_generator.generate(embeds, [1, 2], 64, 64)
    from_latents = tiny_generator.generate(embeds, [1, 2], 64, 64, init_latents=latents, strength=0.5)
    assert [im.size for im in from_latents] == [(64, 64)] * 2
    assert np.abs(_pixels(plain[0]) - _pixels(from_latents[0])).mean() > 1
    with pytest.raises(DataFormatError, match="init_latents"):
        tiny_generator.generate(embeds, [1, 2], 64, 64, init_latents=torch.randn(2, 4, 16, 16))
    with pytest.raises(ValueError, match="strength"):
        tiny_generator.generate(
            embeds, [1, 2], 64, 64, init_latents=latents, strength=0.1
        )  # int(4 * 0.1) = 0


def test_guidance_above_one_pairs_each_image_with_a_zero_negative(tiny_weights):
    gen = Generator(tiny_weights.sdxl, tiny_weights.ip_adapter, device="cpu", guidance_scale=2.0)
    embeds = torch.randn(2, 1024)
    batch = gen.generate(embeds, [3, 3], 64, 64)
    alone = gen.generate(embeds[1:], [3], 64, 64)[0]
    assert np.abs(_pixels(batch[1]) - _pixels(alone)).max() <= 1
    assert np.abs(_pixels(batch[0]) - _pixels(batch[1])).mean() > 0.5


class _FakeWatermarker:
    def apply_watermark(self, images):  # pragma: no cover - must never be called
        raise AssertionError("a watermark was applied")


def test_no_pipeline_watermarks_even_when_invisible_watermark_is_installed(tiny_weights, monkeypatch):
    """Both pipelines are built with ``add_watermarker=False``: with ``invisible-watermark`` installed diffusers
    would otherwise default to watermarking every output image."""
    from diffusers.pipelines.stable_diffusion_xl import (
        pipeline_stable_diffusion_xl as t2i,
    )
    from diffusers.pipelines.stable_diffusion_xl import (
        pipeline_stable_diffusion_xl_img2img as i2i,
    )

    for module in (t2i, i2i):  # pretend the package is installed
        monkeypatch.setattr(module, "is_invisible_watermark_available", lambda: True)
        monkeypatch.setattr(module, "StableDiffusionXLWatermarker", _FakeWatermarker, raising=False)
    gen = Generator(tiny_weights.sdxl, tiny_weights.ip_adapter, device="cpu")
    assert gen.pipe.watermark is None
    assert gen.img2img_pipeline().watermark is None
    # The fake is what diffusers would build without the flag (so this test can fail).
    assert isinstance(i2i.StableDiffusionXLImg2ImgPipeline(**gen.pipe.components).watermark, _FakeWatermarker)
