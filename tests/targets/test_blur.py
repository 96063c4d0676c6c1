"""Blur variants: known sigmas, monotone loss of high-frequency power, a foveated blur sharper in the centre, and
the variant names and shorthands."""

import numpy as np
import pytest
import torch
from PIL import Image

from eegdecode.targets.blur import (
    MULTIBLUR12_KERNELS,
    BlurTransform,
    blur_image,
    blur_tensor,
    expand_variants,
    fovea_sharp_weight,
    gaussian_blur,
    gaussian_kernel1d,
    opencv_sigma,
    parse_variant,
)


def _noise_image(size=224, seed=0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.uniform(0, 255, (3, size, size)).astype(np.float32))


def _high_frequency_power(x: torch.Tensor, cutoff: float = 0.25) -> float:
    """Power of the 2-D spectrum above ``cutoff`` cycles per pixel (mean removed), summed over channels."""
    f = torch.fft.fftshift(torch.fft.fft2(x - x.mean(dim=(-2, -1), keepdim=True)), dim=(-2, -1))
    h, w = x.shape[-2:]
    fy = torch.fft.fftshift(torch.fft.fftfreq(h))[:, None]
    fx = torch.fft.fftshift(torch.fft.fftfreq(w))[None, :]
    mask = torch.sqrt(fy**2 + fx**2) > cutoff
    return float((f.abs() ** 2)[..., mask].sum())


def test_opencv_sigma_rule_and_kernel():
    assert opencv_sigma(51) == pytest.approx(8.0)
    assert opencv_sigma(3) == pytest.approx(0.8)
    k = gaussian_kernel1d(9, 2.0)
    assert k.sum().item() == pytest.approx(1.0) and k.argmax().item() == 4
    torch.testing.assert_close(k, k.flip(0))
    x = _noise_image(32)
    torch.testing.assert_close(gaussian_blur(x, 1), x)
    # A constant image stays constant (the kernel sums to 1, borders are reflected).
    flat = torch.full((3, 40, 40), 77.0)
    torch.testing.assert_close(gaussian_blur(flat, 21), flat)


def test_gaussian_levels_are_monotone_in_high_frequency_power():
    x = _noise_image()
    powers = [_high_frequency_power(blur_tensor(x, f"gaussian:{k}")) for k in MULTIBLUR12_KERNELS]
    assert powers[0] == pytest.approx(_high_frequency_power(x))  # kernel 1 is the identity
    assert all(a > b for a, b in zip(powers, powers[1:])), powers
    assert powers[-1] < 1e-4 * powers[0]


def test_foveated_blur_keeps_the_centre_sharper_than_the_periphery():
    x = _noise_image()
    out = blur_tensor(x, "fovea:51")
    residual = (out - gaussian_blur(x, 51)).abs()  # what is left of the sharp image
    centre = residual[:, 92:132, 92:132].mean()
    corner = residual[:, :40, :40].mean()
    assert centre > 5 * corner
    w = fovea_sharp_weight(224, 224, 3.0)
    assert w[112, 112].item() == pytest.approx(0.5)
    assert w[223, 223].item() == pytest.approx(0.5 * np.exp(-3), rel=1e-5)
    assert w[0, 0].item() == pytest.approx(0.5 * np.exp(-3), rel=1e-5)  # clipped at r = r_max
    # More blur (a larger kernel) removes more high-frequency power, as for the uniform blur.
    powers = [_high_frequency_power(blur_tensor(x, v)) for v in expand_variants("ubp")]
    assert powers[0] > powers[1] > powers[2]
    # The foveated blur keeps more detail than the uniform blur of the same kernel.
    assert _high_frequency_power(out) > _high_frequency_power(blur_tensor(x, "gaussian:51"))


def test_variant_names_and_shorthands():
    assert expand_variants("multiblur12") == tuple(f"gaussian:{k}" for k in MULTIBLUR12_KERNELS)
    assert len(expand_variants("multiblur12")) == 12
    assert expand_variants(["ubp"]) == ("fovea:45:3", "fovea:51:3", "fovea:57:3")
    assert expand_variants(["ubp:31:10", "none", "none"]) == (
        "fovea:21:3",
        "fovea:31:3",
        "fovea:41:3",
        "none",
    )
    assert parse_variant("fovea:51:2.5").slug == "fovea51g2p5"
    assert parse_variant("gaussian:9").provenance(224) == {"kind": "gaussian", "kernel_size": 9, "sigma": 1.7,
                                                            "size": 224}  # fmt: skip
    for bad in ("gaussian:4", "gaussian:0", "box:3", "fovea:x"):
        with pytest.raises(ValueError, match="Invalid value for blur"):
            parse_variant(bad)
    with pytest.raises(ValueError, match="at least one"):
        expand_variants([])


def test_blur_image_resizes_then_blurs_and_none_is_untouched():
    rng = np.random.default_rng(1)
    img = Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8))
    assert blur_image(img, "none") is img
    out = blur_image(img, "gaussian:9", size=64)
    assert out.size == (64, 64) and out.mode == "RGB"
    resized = np.asarray(img.resize((64, 64), Image.BICUBIC), dtype=np.float32)
    expected = blur_tensor(torch.from_numpy(resized).permute(2, 0, 1), "gaussian:9").round().clamp(0, 255)
    np.testing.assert_array_equal(np.asarray(out), expected.permute(1, 2, 0).numpy().astype(np.uint8))
    pipeline = BlurTransform("gaussian:3", lambda im: np.asarray(im).shape, size=32)
    assert pipeline(img) == (32, 32, 3)
