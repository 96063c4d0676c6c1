"""Generation outputs end to end on the tiny pipeline at 64 px: layout, manifest contents, seeds, refusal to
overwrite, and bad input."""

import numpy as np
import pytest
import torch
from PIL import Image

from eegdecode.errors import OutputExistsError
from eegdecode.generation.manifest import FORMAT, generate_all, image_relpath, output_folder, read_manifest

CONCEPTS = ["00001_aircraft_carrier", "00002_antelope", "00003_backscratcher"]


@pytest.fixture
def gt_paths(tmp_path):
    paths = []
    for c in CONCEPTS:
        p = tmp_path / "test_images" / c / f"{c}_01b.jpg"
        p.parent.mkdir(parents=True)
        Image.new("RGB", (64, 64), (10, 20, 30)).save(p)
        paths.append(p)
    return paths


def test_generate_all_writes_images_and_manifest(tiny_generator, gt_paths, tmp_path):
    g = torch.Generator().manual_seed(0)
    sources = {name: torch.randn(3, 1024, generator=g) for name in ("image", "eeg", "prior", "lowlevel")}
    out = tmp_path / "out"
    path = generate_all(
        tiny_generator, sources, CONCEPTS, gt_paths, out, "NervformerV2", "sub-01",
        n_per_concept=2, seed=1234, height=64, width=64,
        init_latents={"lowlevel": torch.randn(3, 4, 8, 8, generator=g)}, provenance={"prior": "ckpt/prior"},
        progress=False,
    )  # fmt: skip
    folder = out / "gen" / "NervformerV2" / "sub-01"
    assert path == folder / "manifest.json" == output_folder(out, "NervformerV2", "sub-01") / "manifest.json"
    manifest = read_manifest(folder)
    assert manifest["format"] == FORMAT and manifest["random_weights"] is True
    assert (manifest["model"], manifest["subject"]) == ("NervformerV2", "sub-01")
    assert manifest["ground_truth"] == [
        {"index": i, "concept": c, "path": str(p.resolve())}
        for i, (c, p) in enumerate(zip(CONCEPTS, gt_paths))
    ]
    records = manifest["images"]
    assert len(records) == 4 * 3 * 2
    first = records[0]
    assert first == {
        "index": 0, "concept": "00001_aircraft_carrier", "source": "image", "round": 0, "seed": 1234,
        "path": "image/0000_00001_aircraft_carrier_r0.png",
    }  # fmt: skip
    by_key = {(r["source"], r["index"], r["round"]): r for r in records}
    assert by_key[("eeg", 2, 1)]["path"] == "eeg/0002_00003_backscratcher_r1.png"
    for r in records:
        assert r["seed"] == 1234 + r["index"] * 2 + r["round"]  # same seed for every source
        assert r["path"] == image_relpath(r["source"], r["index"], r["concept"], r["round"])
        with Image.open(folder / r["path"]) as img:
            assert img.size == (64, 64) and img.mode == "RGB"
    pngs = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png"))
    assert pngs == sorted(r["path"] for r in records)  # nothing else, no temporary files left
    assert not [p for p in folder.rglob(".*")]
    prov = manifest["provenance"]
    assert prov["prior"] == "ckpt/prior" and prov["generator"]["random_weights"] is True
    assert (prov["height"], prov["width"], prov["n_per_concept"]) == (64, 64, 2)
    assert prov["img2img_strength"] == {"lowlevel": 0.5}

    # The written image is the generator's image for that embedding and seed.
    expected = tiny_generator.generate(sources["eeg"][2:3], [1234 + 2 * 2 + 1], 64, 64)[0]
    with Image.open(folder / by_key[("eeg", 2, 1)]["path"]) as img:
        assert np.abs(np.asarray(img).astype(int) - np.asarray(expected).astype(int)).max() <= 1

    with pytest.raises(OutputExistsError, match="overwrite"):
        generate_all(
            tiny_generator, {"eeg": sources["eeg"]}, CONCEPTS, gt_paths, out, "NervformerV2", "sub-01"
        )
    generate_all(
        tiny_generator, {"eeg": sources["eeg"]}, CONCEPTS, gt_paths, out, "NervformerV2", "sub-01",
        height=64, width=64, overwrite=True, progress=False,
    )  # fmt: skip
    assert {r["source"] for r in read_manifest(path)["images"]} == {"eeg"}


def test_bad_input_is_refused_before_any_image(tiny_generator, gt_paths, tmp_path):
    x = torch.randn(3, 1024)
    args = (CONCEPTS, gt_paths, tmp_path, "NervformerV2", "sub-01")
    with pytest.raises(ValueError, match="source"):
        generate_all(tiny_generator, {"text": x}, *args)
    with pytest.raises(ValueError, match="one row per concept"):
        generate_all(tiny_generator, {"eeg": x[:2]}, *args)
    with pytest.raises(ValueError, match="one path per concept"):
        generate_all(tiny_generator, {"eeg": x}, CONCEPTS, gt_paths[:2], tmp_path, "NervformerV2", "sub-01")
    with pytest.raises(ValueError, match="subject"):
        generate_all(tiny_generator, {"eeg": x}, CONCEPTS, gt_paths, tmp_path, "NervformerV2", "../sub-01")
    with pytest.raises(ValueError, match="init_latents"):
        generate_all(tiny_generator, {"eeg": x}, *args, init_latents={"lowlevel": torch.zeros(3, 4, 8, 8)})
    with pytest.raises(ValueError, match=r"init_latents\['eeg'\] has the wrong shape.*\(3, 4, 64, 64\)"):
        generate_all(tiny_generator, {"eeg": x}, *args, init_latents={"eeg": torch.zeros(3, 4, 8, 8)})
    assert not (tmp_path / "gen").exists()
