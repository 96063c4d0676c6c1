"""The simulated vision model under NeuroBridge's image variants (noise:S, lowres:F, mosaic:P): the documented gains
and artefacts, a fixed artefact per image, blur variants unchanged, and the variants written to the target store."""

from __future__ import annotations

import numpy as np
import pytest

from eegdecode.data import simulate_vision as sv
from eegdecode.data.simulate import PRESETS, World, _rng
from eegdecode.targets.spec import TargetSpec
from eegdecode.targets.store import TargetStore


@pytest.fixture(scope="module")
def sample():
    world = World(PRESETS["tiny"], 0)
    latent = world.sample_latents(400, _rng(98, 1))
    detail = world.vision.detail(400, _rng(98, 2))
    return world.vision, latent, detail


def test_documented_effects():
    f, n = (
        6 / 0.475,
        112.0,
    )  # the renderer's median texture frequency and the Nyquist of 224 px, cycles per image

    def sinc(x):
        return np.sin(np.pi * x) / (np.pi * x)

    fine = np.log(n / f) / np.log(n)
    assert sv.FINE_BAND == pytest.approx(fine) == pytest.approx(0.4625, abs=1e-4)
    assert sv.variant_effect("noise:25") == pytest.approx((1.0, 1.0, 25**2 / (fine * (0.27 * 255) ** 2)))
    assert sv.variant_effect("lowres:0.1") == pytest.approx((sinc(f / 22.4) ** 4,) * 2 + (0.0,))
    share = np.log(5) / np.log(n / f)
    assert sv.variant_effect("mosaic:5") == pytest.approx((sinc(5 * f / 224), np.sqrt(1 - share), share))
    # the values docs/simulator.md states
    assert [round(x, 3) for x in sv.variant_effect("noise:25")] == [1.0, 1.0, 0.285]
    assert round(sv.variant_effect("lowres:0.1")[0], 3) == 0.094
    assert [round(x, 2) for x in sv.variant_effect("mosaic:5")] == [0.87, 0.51, 0.74]
    # blur variants are as before: one gain for texture and detail, no artefact
    g = sv.fine_gain("gaussian:15")
    assert (
        sv.variant_effect("gaussian:15") == (g, g, 0.0)
        and sv.fine_gain("mosaic:5") == sv.variant_effect("mosaic:5")[0]
    )
    # more noise, coarser resolution, bigger blocks: monotone
    assert sv.variant_effect("noise:50")[2] == pytest.approx(4 * sv.variant_effect("noise:25")[2])
    assert (
        sv.variant_effect("lowres:0.05")[0]
        < sv.variant_effect("lowres:0.1")[0]
        < sv.variant_effect("lowres:0.5")[0]
    )
    assert sv.variant_effect("mosaic:8")[0] < sv.variant_effect("mosaic:5")[0]


def test_the_artefact_is_fixed_per_image_standard_normal_and_unrelated_to_the_latent(sample):
    vision, latent, detail = sample
    a = vision.artefact(detail, "noise:25")
    assert a.shape == (400, sv.N_FINE_DETAIL)
    np.testing.assert_array_equal(vision.artefact(detail[[7, 3]], "noise:25"), a[[7, 3]])
    assert abs(a.mean()) < 0.02 and a.std() == pytest.approx(1.0, abs=0.02)
    assert not np.allclose(vision.artefact(detail, "mosaic:5"), a)
    # uncorrelated with the image's own detail and latent
    c = np.corrcoef(np.concatenate([a[:, :8], detail[:, :8], latent[:, :8]], axis=1).T)[:8, 8:]
    assert np.abs(c).max() < 0.2


def test_variants_change_the_blocks_as_documented(sample):
    vision, latent, detail = sample
    for layer in ("block:0", "block:11"):
        clean = vision.features(latent, detail, layer)
        for v in ("noise:25", "lowres:0.1", "mosaic:5"):
            f = vision.features(latent, detail, layer, v)
            assert f.shape == clean.shape and not np.allclose(f, clean)
            np.testing.assert_array_equal(f, vision.features(latent, detail, layer, v))
        # the same gain as a Gaussian blur of that gain and no artefact: lowres is that blur
        texture, keep, art = sv.variant_effect("lowres:0.1")
        want = vision._hidden(latent, detail, int(layer[6:]), texture, keep)
        block = vision._blocks[int(layer[6:])]
        np.testing.assert_allclose(vision.features(latent, detail, layer, "lowres:0.1"),
                                   block.shared + (want - block.mean) / block.scale, rtol=1e-5, atol=1e-6)  # fmt: skip
    emb = vision.features(latent, detail, "embedding")
    np.testing.assert_array_equal(
        vision.features(latent, detail, "embedding", "noise:25"), emb
    )  # no detail there
    assert not np.allclose(vision.features(latent, detail, "embedding", "lowres:0.1"), emb)


def test_the_store_holds_the_variants(tiny_root):
    store = TargetStore.for_spec(tiny_root / "targets", TargetSpec(f"simulator:{sv.BACKBONE_NAME}"))
    for v in ("noise:25", "lowres:0.1", "mosaic:5", "gaussian:15"):
        arr = store.image("train", "block:3", "cls", v)
        assert arr.shape[1] == sv.WIDTH
    entry = next(e for e in store.arrays().values() if e.get("variant") == "mosaic:5")
    texture, keep, artefact = sv.variant_effect("mosaic:5")
    assert entry["effect"] == pytest.approx({"texture_gain": texture, "detail_gain": keep, "artefact": artefact},
                                            abs=1e-6)  # fmt: skip
