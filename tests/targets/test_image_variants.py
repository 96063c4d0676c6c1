"""Image variants beyond blur (NeuroBridge's augmentations): noise:S, lowres:F, mosaic:P. Names, shapes, determinism
and a known property of each (the noise's sd, the loss of high-frequency power, piecewise-constant blocks), and the
features command computing them like blur variants."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from eegdecode.targets.blur import (
    BlurTransform,
    add_noise,
    blur_image,
    blur_tensor,
    expand_variants,
    low_resolution,
    mosaic,
    parse_variant,
)

NEUROBRIDGE = ["gaussian:15", "noise:25", "lowres:0.1", "mosaic:5"]


def _photo(size=224, seed=0) -> np.ndarray:
    """A smooth random image with edges (uint8, size x size x 3): low-frequency blobs plus a few sharp squares."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(40, 215, (8, 8, 3))
    img = np.asarray(Image.fromarray(coarse.astype(np.uint8)).resize((size, size), Image.BICUBIC), np.float64)
    for _ in range(6):
        y, x, s = rng.integers(0, size - 40, 3)
        img[y : y + 10 + s % 30, x : x + 10 + s % 30] = rng.uniform(0, 255, 3)
    return img.astype(np.uint8)


def _high_power(arr: np.ndarray, cutoff: float = 0.1) -> float:
    """Power above ``cutoff`` cycles per pixel, Hann-windowed (the image's borders would leak into every band)."""
    x = torch.from_numpy(arr.astype(np.float32)).permute(2, 0, 1)
    x = x - x.mean(dim=(-2, -1), keepdim=True)
    window = torch.hann_window(x.shape[-2], periodic=False)[:, None] * torch.hann_window(
        x.shape[-1], periodic=False
    )
    f = torch.fft.fft2(x * window)
    fy, fx = torch.fft.fftfreq(x.shape[-2])[:, None], torch.fft.fftfreq(x.shape[-1])[None, :]
    return float((f.abs() ** 2)[..., torch.sqrt(fy**2 + fx**2) > cutoff].sum())


def test_names_slugs_provenance_and_bad_values():
    v = [parse_variant(x) for x in NEUROBRIDGE]
    assert [x.name for x in v] == NEUROBRIDGE
    assert [x.slug for x in v] == ["gaussian15", "noise25", "lowres0p1", "mosaic5"]
    assert expand_variants(["noise:25.0", "lowres:.1", "mosaic:5"]) == ("noise:25", "lowres:0.1", "mosaic:5")
    assert v[1].provenance(224) == {"kind": "noise", "sd": 25.0, "size": 224, "seed": 2025,
                                    "rounding": "clipped to 0..255, floored"}  # fmt: skip
    assert v[2].provenance(224)["low_size"] == 22 and v[3].provenance(224)["small"] == 44
    assert v[3].sigma == 0.0 and v[2].sigma == 0.0
    for bad in ("noise:0", "lowres:1", "lowres:0", "lowres:1.5", "mosaic:1", "mosaic:2.5", "noise:"):
        with pytest.raises(ValueError, match=r"Invalid value for blur: .*noise:S \(S > 0\)"):
            parse_variant(bad)
    with pytest.raises(ValueError, match="8-bit images"):
        blur_tensor(torch.zeros(3, 8, 8), "mosaic:5")


def test_noise_has_the_stated_sd_is_seeded_by_the_pixels_and_floors():
    flat = np.full((224, 224, 3), 128, dtype=np.uint8)
    out = add_noise(flat, 25.0)
    assert out.dtype == np.uint8 and out.shape == flat.shape
    diff = out.astype(np.float64) - 128
    # floor shifts the mean by -0.5 (the quantisation adds 1/12 to the variance)
    assert diff.mean() == pytest.approx(-0.5, abs=0.15) and diff.std() == pytest.approx(
        np.hypot(25, 12**-0.5), rel=0.01
    )
    np.testing.assert_array_equal(add_noise(flat, 25.0), out)  # the same image: the same draw
    other = flat.copy()
    other[0, 0, 0] = 127
    assert (add_noise(other, 25.0) != out).mean() > 0.9  # another image: another draw
    assert not np.array_equal(add_noise(flat, 25.0, seed=1), out)
    assert add_noise(np.zeros((4, 4, 3), np.uint8), 1000.0).min() == 0  # clipped, never wrapped
    assert add_noise(np.full((4, 4, 3), 255, np.uint8), 1000.0).max() == 255


def test_low_resolution_loses_high_frequencies_keeps_the_mean_and_the_size():
    img = _photo()
    out = np.asarray(low_resolution(Image.fromarray(img), 0.1))
    assert out.shape == img.shape and out.dtype == np.uint8
    assert _high_power(out) < 0.05 * _high_power(img)
    assert abs(out.astype(float).mean() - img.astype(float).mean()) < 3
    # a coarser scale loses more
    assert _high_power(np.asarray(low_resolution(Image.fromarray(img), 0.05))) < _high_power(out)


def test_mosaic_is_piecewise_constant_blocks_of_the_level():
    img = _photo()
    out = mosaic(img, 5)
    assert out.shape == img.shape and out.dtype == np.uint8
    # 224 px from 44 samples: pixel i shows sample floor(i * 44 / 224); blocks of 5 or 6 pixels, constant inside
    r = np.minimum(np.arange(224) * 44 // 224, 43)
    assert set(np.bincount(r)) <= {5, 6}
    first = np.searchsorted(r, r)  # the first pixel of each pixel's block
    np.testing.assert_array_equal(out, out[first][:, first])
    assert len(np.unique(out.reshape(-1, 3), axis=0)) <= 44 * 44
    np.testing.assert_array_equal(mosaic(img, 5), out)
    # the block edges are new high-frequency content (above the 44-sample grid's Nyquist, 0.1 cycles per pixel)
    assert _high_power(out, 0.2) > _high_power(img, 0.2)
    # a constant image stays constant; a bilinear sample of a linear ramp is the ramp at the sample centres
    np.testing.assert_array_equal(mosaic(np.full((20, 20, 3), 77, np.uint8), 4), 77)
    ramp = np.repeat(np.repeat(np.arange(20, dtype=np.uint8)[None, :, None], 20, 0), 3, 2)
    np.testing.assert_array_equal(
        mosaic(ramp, 4)[0, ::4, 0], [2, 6, 10, 14, 18]
    )  # centres (i + 0.5) * 4 - 0.5


def test_blur_image_applies_the_variants_at_the_blur_size():
    img = Image.fromarray(_photo(100))
    for name in NEUROBRIDGE:
        out = blur_image(img, name, size=64)
        assert out.size == (64, 64) and out.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(out), np.asarray(blur_image(img, name, size=64)))
    resized = img.resize((64, 64), Image.BICUBIC)
    np.testing.assert_array_equal(np.asarray(blur_image(img, "mosaic:4", 64)), mosaic(np.asarray(resized), 4))
    np.testing.assert_array_equal(
        np.asarray(blur_image(img, "noise:10", 64)), add_noise(np.asarray(resized), 10)
    )
    t = BlurTransform("lowres:0.25", lambda im: np.asarray(im), size=64)
    np.testing.assert_array_equal(t(img), np.asarray(low_resolution(resized, 0.25)))


def test_the_features_command_computes_the_variants(tiny_dinov2, image_root, tmp_path, capsys):
    sys.path.insert(0, str(Path(__file__).parent))
    from test_features_command import _run

    from eegdecode.targets.store import TargetStore

    argv = ["--image-set", str(image_root), "--out", str(tmp_path / "targets"), "--backbone", f"hf:{tiny_dinov2}",
            "--layer", "embedding", "--pooling", "mean", "--device", "cpu", "--batch-size", "4", "--blur-size",
            "48", *(f"--blur={v}" for v in ["none", *NEUROBRIDGE])]  # fmt: skip
    assert _run(argv) == 0
    store = TargetStore(capsys.readouterr().out.strip().splitlines()[-1])
    arrays = {
        v: np.asarray(store.image("train", "embedding", "mean", v), np.float32)
        for v in ["none", *NEUROBRIDGE]
    }
    assert all(a.shape == (9, 32) for a in arrays.values())
    for v in NEUROBRIDGE:  # each variant changes the features of the images
        assert not np.allclose(arrays[v], arrays["none"], atol=1e-3), v
    entries = store.meta()["arrays"]
    assert any(e.get("blur", {}).get("kind") == "mosaic" for e in entries.values())
    assert _run([*argv, "--no-rebuild"]) == 0  # computed once
