"""The simulated vision model: layers read from the brain's latent, depth profile, blur, ground truth, target store."""

import json

import numpy as np
import pytest

from eegdecode.data import simulate_vision as sv
from eegdecode.data.image_set import ImageSet
from eegdecode.data.paths import DatasetPaths
from eegdecode.data.simulate import D_LOW, PRESETS, Preset, World, _rng, load_simulation, simulate_dataset
from eegdecode.embeddings.store import image_list_digest, load_features
from eegdecode.targets.blur import MULTIBLUR12_KERNELS, expand_variants
from eegdecode.targets.spec import TargetSpec
from eegdecode.targets.store import TargetStore

BLOCKS = [f"block:{i}" for i in range(sv.N_LAYERS)]
FINE = list(sv.FINE_LOW)
COARSE = [i for i in range(D_LOW) if i not in sv.FINE_LOW]


@pytest.fixture(scope="module")
def sample():
    """A World's vision model and 1500 fresh images of it (latents standardised for scoring, detail)."""
    world = World(PRESETS["tiny"], 0)
    latent = world.sample_latents(1500, _rng(99, 1))
    detail = world.vision.detail(1500, _rng(99, 2))
    return world.vision, latent, detail, latent / latent.std(axis=0)


def _r2(x, y, n_fit=1000, penalty=1e-2):
    """Held-out R^2 (variance-weighted) of a ridge read-out of y from x; written here, not the module's."""
    x = x - x[:n_fit].mean(0)
    y = y - y[:n_fit].mean(0)
    lam = penalty * np.trace(x[:n_fit].T @ x[:n_fit]) / n_fit
    w = np.linalg.solve(x[:n_fit].T @ x[:n_fit] + lam * np.eye(x.shape[1]), x[:n_fit].T @ y[:n_fit])
    resid = y[n_fit:] - x[n_fit:] @ w
    return 1 - np.sum(resid**2) / np.sum(y[n_fit:] ** 2)


def _rank_corr(values):
    ranks = np.argsort(np.argsort(values))
    return np.corrcoef(ranks, np.arange(len(values)))[0, 1]


def test_early_layers_carry_low_level_and_late_layers_semantic_dims(sample):
    vision, latent, detail, z = sample
    low, sem = [], []
    for layer in BLOCKS:
        f = vision.features(latent, detail, layer)
        assert f.shape == (len(latent), sv.WIDTH) and f.dtype == np.float32
        low.append(_r2(f, z[:, :D_LOW]))
        sem.append(_r2(f, z[:, D_LOW:]))
    assert low[0] > low[-1] + 0.05 and sem[-1] > sem[0] + 0.15, (low, sem)
    assert _rank_corr(low) < -0.9 and _rank_corr(sem) > 0.9, (low, sem)
    # The final embedding is the reference embedding: the whole latent, no detail.
    emb = vision.features(latent, detail, "embedding")
    assert np.array_equal(emb, vision.world.image_embeddings(latent))


def test_shared_direction_grows_with_depth(sample):
    vision, latent, detail, _ = sample
    cosines = []
    for layer in BLOCKS:
        f = vision.features(latent[:600], detail[:600], layer)
        f = f / np.linalg.norm(f, axis=1, keepdims=True)
        c = f @ f.T
        cosines.append((c.sum() - len(c)) / (len(c) * (len(c) - 1)))
    assert np.all(np.diff(cosines) > 0), cosines
    assert abs(cosines[0] - sv.COSINE[0]) < 0.05 and abs(cosines[-1] - sv.COSINE[1]) < 0.05, cosines


def test_blur_removes_fine_detail_and_keeps_the_semantic_dims(sample):
    vision, latent, detail, z = sample
    gains = [sv.fine_gain(f"gaussian:{k}") for k in MULTIBLUR12_KERNELS]
    assert gains[0] == 1.0 and np.all(np.diff(gains) < 0) and gains[-1] < 0.01
    ubp = [sv.fine_gain(v) for v in expand_variants("ubp")]
    assert 1.0 > ubp[0] > ubp[1] > ubp[2] > sv.fine_gain("gaussian:57")  # the centre stays half-sharp
    for layer in ("block:0", "block:6", "embedding"):
        fine, sem, coarse = [], [], []
        for variant in ("none", "gaussian:9", "gaussian:21", "gaussian:33", "gaussian:51", "gaussian:63"):
            f = vision.features(latent, detail, layer, variant)
            fine.append(_r2(f, z[:, FINE]))
            sem.append(_r2(f, z[:, D_LOW:]))
            coarse.append(_r2(f, z[:, COARSE]))
        assert np.all(np.diff(fine) < 0) and fine[-1] < 0.5 * fine[0], (layer, fine)
        # Nothing else is lost (with less fine detail in the way, the rest reads as well or better).
        assert min(sem) > sem[0] - 0.01 and min(coarse) > coarse[0] - 0.01, (layer, sem, coarse)
        fovea = [_r2(vision.features(latent, detail, layer, v), z[:, FINE]) for v in expand_variants("ubp")]
        assert fine[0] > fovea[0] >= fovea[1] >= fovea[2] > fine[-1], (layer, fovea)


def test_layer_names_are_checked(sample):
    vision, latent, detail, _ = sample
    assert sv.parse_layer("block:-1") == sv.N_LAYERS - 1 and sv.parse_layer("embedding") is None
    for bad in ("block:12", "block:x", "layer4"):
        with pytest.raises(ValueError, match="allowed values are embedding and block:0 ... block:11"):
            sv.parse_layer(bad)
    with pytest.raises(ValueError, match="detail: expected 3 rows"):
        vision.features(latent[:3], detail[:2], "block:0")


def test_ground_truth_names_the_layers_the_eeg_carries(tiny_root):
    desc = json.loads((tiny_root / "simulation.json").read_text())
    truth = desc["vision"]["ground_truth"]
    r2 = truth["layer_from_eeg_r2"]
    assert sorted(r2) == sorted(sv.layer_names()) and len(truth["carried_most"]) == 3
    ranked = sorted(r2, key=lambda k: -r2[k])
    assert truth["carried_most"] == ranked[:3]
    assert truth["carried_most_blocks"] == [x for x in ranked if x != "embedding"][:3]
    assert all(0 < v < 1 for v in r2.values()) and all(0 < v < 1 for v in truth["eeg_from_layer_r2"].values())
    # Known from the construction: the brain does not read the detail, whose share falls with depth.
    assert r2["block:11"] > r2["block:0"] + 0.1
    for name in ("sub-01", "sub-02"):
        assert truth["per_subject"][name]["carried_most"][0] in r2
    blur = truth["layer_from_eeg_r2_blur"]
    assert blur["none"] == r2 and set(blur) == {"none", *sv.GROUND_TRUTH_BLUR}
    assert all(sorted(b) == sorted(r2) for b in blur.values())
    assert (
        desc["vision"]["latent_r2"]["block:0"]["semantic"]
        < desc["vision"]["latent_r2"]["block:11"]["semantic"]
    )


def test_store_reads_through_the_targets_reader_and_matches_the_reference(tiny_root):
    world, desc = load_simulation(tiny_root)
    store = TargetStore.for_spec(tiny_root / "targets", TargetSpec(f"simulator:{sv.BACKBONE_NAME}"))
    assert str(store.folder.relative_to(tiny_root)) == desc["vision"]["store"]
    images = ImageSet(DatasetPaths(tiny_root).image_set_dir)
    variants = expand_variants(sv.VARIANTS)
    assert len(store.arrays()) == 2 * len(variants) * len(sv.layer_names())
    for split in ("train", "test"):
        ref = load_features(DatasetPaths(tiny_root).features_dir("reference"), split)
        assert np.array_equal(store.image(split, "embedding"), ref.image.astype(np.float16))
        assert np.array_equal(store.text(split), ref.text.astype(np.float16))
        digest = image_list_digest(images.split(split).relative_names)
        assert store.meta()["splits"][split]["image_list_digest"] == digest
    fs = store.feature_set("test", "block:5", "cls", "fovea:51:3")
    assert (
        fs.image.shape == (PRESETS["tiny"].n_test_concepts, sv.WIDTH)
        and fs.meta["target"]["text"] == "concept_mean"
    )
    assert fs.meta["target"]["fine_gain"] == pytest.approx(sv.fine_gain("fovea:51:3"), abs=1e-6)
    assert np.array_equal(
        fs.image.astype(np.float16), world.layer_features("test", "block:5", "fovea:51:3").astype(np.float16)
    )
    stack = store.stack("train", "block:2", "cls", "ubp")
    assert stack.shape == (3, len(world.train_latent), sv.WIDTH)


def test_same_seed_same_arrays_other_seed_other_arrays(tmp_path):
    preset = Preset(6, 2, 2, 4, 3, 16)
    stores = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        stores[name] = sv.write_vision_targets(
            World(preset, seed), tmp_path / name, variants=("none", "gaussian:21")
        )
    files = sorted(p.name for p in stores["a"].folder.glob("*.npy"))
    assert len(files) == 2 * 2 * 13 + 2  # splits x variants x layers, + text
    for f in files:
        assert (stores["a"].folder / f).read_bytes() == (stores["b"].folder / f).read_bytes(), f
    a = stores["a"].image("train", "block:4", "cls")
    assert not np.allclose(a, stores["c"].image("train", "block:4", "cls"))


def test_the_real_feature_code_runs_on_the_simulated_images(tiny_root, tmp_path):
    """A tiny random open_clip ViT through compute_targets on the simulated JPEGs: same rows and image list."""
    import open_clip
    import torch

    from eegdecode.embeddings.clip_features import register_open_clip_config
    from eegdecode.targets.compute import compute_targets

    name = "eegdecode-test-simvision-vit"
    cfg = {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }
    (tmp_path / f"{name}.json").write_text(json.dumps(cfg))
    register_open_clip_config(tmp_path / f"{name}.json")
    torch.manual_seed(0)
    torch.save(open_clip.create_model(name).state_dict(), tmp_path / "vit.bin")
    spec = TargetSpec(f"open_clip:{name}", weights=str(tmp_path / "vit.bin"), layers=("block:1", "embedding"),
                      blur=("none", "ubp"))  # fmt: skip
    real = compute_targets(DatasetPaths(tiny_root).image_set_dir, tmp_path / "targets", spec, device="cpu",
                           splits=("test",))  # fmt: skip
    sim = TargetStore.for_spec(tiny_root / "targets", TargetSpec(f"simulator:{sv.BACKBONE_NAME}"))
    assert (
        real.meta()["splits"]["test"]["image_list_digest"]
        == sim.meta()["splits"]["test"]["image_list_digest"]
    )
    for variant in ("none", "fovea:51:3"):
        a, b = real.image("test", "block:1", "cls", variant), sim.image("test", "block:1", "cls", variant)
        assert a.shape[0] == b.shape[0] == PRESETS["tiny"].n_test_concepts
        assert np.isfinite(a.astype(np.float32)).all()


def test_a_bad_variant_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="Invalid value for blur: 'blurry'"):
        simulate_dataset(
            tmp_path / "s", Preset(6, 2, 2, 4, 3, 16), vision_variants=("none", "blurry"), progress=False
        )
    assert not (tmp_path / "s").exists()
