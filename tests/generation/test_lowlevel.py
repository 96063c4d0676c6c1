"""Low-level path: VAE latents (unscaled, shapes), the ridge regression (known answer, penalty choice), latent
files, and img2img from predicted latents on the tiny pipeline."""

import numpy as np
import pytest
import torch
from PIL import Image

from eegdecode.errors import DataFormatError
from eegdecode.generation.lowlevel import (
    decode_latents,
    encode_latents,
    fit_latent_ridge,
    image_to_tensor,
    load_latents,
    save_latents,
)
from eegdecode.generation.sdxl import latents_to_model_space


def _images(n, size=(80, 64)):
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)) for _ in range(n)]


def test_image_preprocessing_crops_and_scales():
    white = Image.new("RGB", (100, 50), (255, 255, 255))
    x = image_to_tensor(white, size=32)
    assert x.shape == (3, 32, 32)
    torch.testing.assert_close(x, torch.ones(3, 32, 32))  # white maps to +1


def test_latents_are_unscaled_vae_means(tiny_generator, tmp_path):
    vae = tiny_generator.pipe.vae
    images = _images(3)
    latents = encode_latents(vae, images, size=64, batch_size=2)
    assert latents.shape == (3, 4, 8, 8) and latents.dtype == torch.float32
    with torch.no_grad():
        direct = vae.encode(image_to_tensor(images[1], 64)[None]).latent_dist.mean
    torch.testing.assert_close(latents[1:2], direct, rtol=1e-5, atol=1e-5)  # no scaling factor applied
    torch.testing.assert_close(latents_to_model_space(latents, vae.config), latents * 0.13025)
    decoded = decode_latents(vae, latents)
    assert [im.size for im in decoded] == [(64, 64)] * 3

    path = save_latents(
        tmp_path / "test_latents", latents, ["a.jpg", "b.jpg", "c.jpg"], vae.config.scaling_factor
    )
    loaded, sidecar = load_latents(path)
    np.testing.assert_array_equal(loaded, latents.numpy())
    assert sidecar["scaled"] is False and sidecar["scaling_factor"] == pytest.approx(0.13025)
    assert sidecar["images"] == ["a.jpg", "b.jpg", "c.jpg"]


def test_ridge_recovers_a_linear_map_and_chooses_the_penalty():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 16, generator=g) + 2.0
    w = torch.randn(16, 4 * 3 * 3, generator=g)
    y = (x @ w + 0.5).reshape(400, 4, 3, 3)
    exact = fit_latent_ridge(x, y, alphas=(1e-6,), chunk=64)
    torch.testing.assert_close(exact.predict(x[:5]), y[:5], rtol=1e-4, atol=1e-4)
    assert exact.predict(x).shape == (400, 4, 3, 3)

    noisy_y = y + 20.0 * torch.randn(
        y.shape, generator=g
    )  # mostly noise: heavy shrinkage wins on held-out rows
    chosen = fit_latent_ridge(x[:60], noisy_y[:60], alphas=(1e-3, 1e5), val_fraction=0.3, seed=0)
    assert chosen.alpha == 1e5
    assert set(chosen.validation) == {"0.001", "100000.0"}
    clean = fit_latent_ridge(x, y, alphas=(1e-3, 1e5), val_fraction=0.2, seed=0)
    assert clean.alpha == 1e-3
    with pytest.raises(DataFormatError, match="different numbers of rows"):
        fit_latent_ridge(x, y[:10])


def test_img2img_from_predicted_latents(tiny_generator):
    vae = tiny_generator.pipe.vae
    latents = encode_latents(vae, _images(4), size=64)
    embeds = torch.randn(4, 1024)
    ridge = fit_latent_ridge(embeds, latents, alphas=(1.0,))
    predicted = ridge.predict(embeds[:2])
    images = tiny_generator.generate(embeds[:2], [0, 1], 64, 64, init_latents=predicted, strength=0.5)
    assert [im.size for im in images] == [(64, 64)] * 2
    # The starting latents reach the img2img pipeline (random weights: nothing to say about resemblance).
    same = tiny_generator.generate(embeds[:2], [0, 1], 64, 64, init_latents=predicted, strength=0.5)
    other = tiny_generator.generate(embeds[:2], [0, 1], 64, 64, init_latents=predicted * 0, strength=0.5)
    first = np.asarray(images[0]).astype(int)
    assert np.array_equal(first, np.asarray(same[0]).astype(int))
    assert np.abs(first - np.asarray(other[0]).astype(int)).mean() > 0.5
