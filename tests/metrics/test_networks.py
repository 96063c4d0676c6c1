"""Feature networks: documented layers and input sizes, local weight loading, skipping when weights are missing."""

import json
from pathlib import Path

import pytest
import torch
from torchvision import models

from eegdecode.errors import DataFormatError, WeightsNotFoundError
from eegdecode.metrics import MetricSuite, evaluate_tensors, format_table
from eegdecode.metrics.networks import (
    NETWORKS,
    FeatureExtractor,
    build_backbone,
    network_input,
    resolve_weights,
)
from eegdecode.metrics.results import report_csv


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    checkpoints = tmp_path / "torch_home" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    return checkpoints


def test_weight_file_names_are_torchvisions():
    expected = {
        "alexnet": models.AlexNet_Weights.IMAGENET1K_V1,
        "inception": models.Inception_V3_Weights.IMAGENET1K_V1,
        "effnet": models.EfficientNet_B1_Weights.IMAGENET1K_V2,
    }
    for network, weights in expected.items():
        assert NETWORKS[network].weights_file == Path(weights.url).name
        assert NETWORKS[network].weights_url == weights.url
    assert models.Inception_V3_Weights.DEFAULT == models.Inception_V3_Weights.IMAGENET1K_V1
    assert models.EfficientNet_B1_Weights.DEFAULT == models.EfficientNet_B1_Weights.IMAGENET1K_V2


def test_documented_input_sizes_and_layers():
    sizes = {name: spec.input_size for name, spec in NETWORKS.items()}
    assert sizes == {"alexnet": 256, "inception": 342, "clip": 224, "effnet": 255, "swav": 224}
    layers = {m: node for spec in NETWORKS.values() for m, node in spec.outputs.items()}
    assert layers == {
        "alexnet2": "features.4",
        "alexnet5": "features.11",
        "inceptionv3": "avgpool",
        "clip": "image_embedding",
        "effnet": "avgpool",
        "swav": "avgpool",
    }
    # what the network sees: the square base image resized to the documented side, then normalised
    image = torch.full((1, 3, 256, 256), 0.5)
    for spec in NETWORKS.values():
        seen = network_input(image, spec)
        assert seen.shape == (1, 3, spec.input_size, spec.input_size)
        expected = [(0.5 - m) / s for m, s in zip(spec.mean, spec.std)]
        torch.testing.assert_close(seen[0, :, 0, 0], torch.tensor(expected))
    assert NETWORKS["clip"].mean == (0.48145466, 0.4578275, 0.40821073)
    assert NETWORKS["swav"].std == (0.229, 0.224, 0.225)


def test_feature_shapes_at_documented_sizes():
    torch.manual_seed(0)
    image = torch.rand(1, 3, 256, 256)
    widths = {}
    for name in ("alexnet", "inception", "effnet", "swav"):
        extractor = FeatureExtractor(NETWORKS[name], build_backbone(name, random_weights=True))
        with torch.inference_mode():
            widths.update({m: f.shape for m, f in extractor(image).items()})
    assert widths == {
        "alexnet2": (1, 192 * 31 * 31),
        "alexnet5": (1, 256 * 15 * 15),
        "inceptionv3": (1, 2048),
        "effnet": (1, 1280),
        "swav": (1, 2048),
    }


def test_resolve_weights_looks_only_in_torch_home(torch_home):
    assert resolve_weights("alexnet") is None
    (torch_home / "alexnet-owt-7be5be79.pth").write_bytes(b"x")
    assert resolve_weights("alexnet") == torch_home / "alexnet-owt-7be5be79.pth"
    with pytest.raises(WeightsNotFoundError, match="swav_800ep_pretrain.pth.tar"):
        resolve_weights("swav", torch_home / "nowhere.pth")


def test_missing_weights_skip_the_metric_and_say_which_file(torch_home, structured_images):
    suite = MetricSuite("published", device="cpu")
    assert suite.computed_metrics == ("pixcorr", "ssim")
    assert set(suite.skipped) == {"alexnet2", "alexnet5", "inceptionv3", "clip", "effnet", "swav"}
    assert "alexnet-owt-7be5be79.pth" in suite.skipped["alexnet5"]
    assert (
        "swav_800ep_pretrain.pth.tar" in suite.skipped["swav"] and "--swav-weights" in suite.skipped["swav"]
    )
    images = structured_images(3, 32, seed=0)
    report = evaluate_tensors(suite, images, images.clone())
    table = format_table(report)
    assert table.splitlines()[1].split()[-1] == "SwAV" and "skipped" in table.splitlines()[2]
    assert "skipped CLIP: weights not found: put ViT-L-14.pt" in table
    assert "skipped AlexNet(2), AlexNet(5): weights not found: put alexnet-owt-7be5be79.pth" in table
    row = report_csv(report).splitlines()[1].split(",")
    header = report_csv(report).splitlines()[0].split(",")
    assert row[header.index("SwAV")] == "" and row[header.index("PixCorr")] != ""
    assert "InceptionV3" in row[header.index("skipped")]
    assert report.to_dict()["skipped"]["effnet"].startswith("weights not found")
    assert not report.is_random_weight_output


def test_torchvision_weights_load_from_torch_home(torch_home):
    torch.manual_seed(1)
    source = models.efficientnet_b1(weights=None).eval()
    torch.save(source.state_dict(), torch_home / "efficientnet_b1-c27df63c.pth")
    suite = MetricSuite("effnet", device="cpu")
    assert suite.network_info["effnet"]["weights"]["path"].endswith("efficientnet_b1-c27df63c.pth")
    image = torch.rand(2, 3, 256, 256)
    with torch.inference_mode():
        got = suite.extractors["effnet"](image)["effnet"]
        expected = source.avgpool(source.features(network_input(image, NETWORKS["effnet"]))).flatten(1)
    torch.testing.assert_close(got, expected)
    torch.save({"features.0.0.weight": torch.zeros(1)}, torch_home / "efficientnet_b1-c27df63c.pth")
    with pytest.raises(DataFormatError, match="does not fit EfficientNet"):
        MetricSuite("effnet", device="cpu")


def test_swav_state_dict_loads_without_fc_and_rejects_a_wrong_file(tmp_path):
    torch.manual_seed(2)
    source = models.resnet50(weights=None)
    state = {f"module.{k}": v for k, v in source.state_dict().items() if not k.startswith("fc.")}
    state["module.projection_head.0.weight"] = torch.zeros(3, 3)  # SwAV's head, not part of the backbone
    path = tmp_path / "swav_800ep_pretrain.pth.tar"
    torch.save(state, path)
    model = build_backbone("swav", path)
    torch.testing.assert_close(model.layer4[2].conv3.weight, source.layer4[2].conv3.weight)
    del state["module.layer1.0.conv1.weight"]
    torch.save(state, path)
    with pytest.raises(DataFormatError, match="layer1.0.conv1.weight"):
        build_backbone("swav", path)


def test_clip_loads_state_dict_and_torchscript_files(tmp_path):
    import open_clip

    config = {
        "embed_dim": 32,
        "quick_gelu": True,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }
    (tmp_path / "eegdecode-test-tiny.json").write_text(json.dumps(config))
    open_clip.add_model_config(tmp_path / "eegdecode-test-tiny.json")
    torch.manual_seed(3)
    source = open_clip.CLIP(**config).eval()
    torch.save(source.state_dict(), tmp_path / "tiny.bin")
    torch.jit.script(source).save(str(tmp_path / "tiny-jit.pt"))  # the layout of OpenAI's ViT-L-14.pt
    image = torch.rand(2, 3, 32, 32)
    with torch.inference_mode():
        expected = source.encode_image(image)
        for name in ("tiny.bin", "tiny-jit.pt"):
            tower = build_backbone("clip", tmp_path / name, clip_model="eegdecode-test-tiny")
            torch.testing.assert_close(tower(image), expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(DataFormatError):
        build_backbone("clip", tmp_path / "tiny.bin", clip_model="ViT-B-32")


def test_random_weights_are_seeded_and_labelled():
    first = MetricSuite("alexnet2", random_weights=True, seed=4, device="cpu")
    torch.manual_seed(123)  # the global RNG must not matter
    second = MetricSuite("alexnet2", random_weights=True, seed=4, device="cpu")
    other = MetricSuite("alexnet2", random_weights=True, seed=5, device="cpu")
    w = [s.extractors["alexnet"].body.state_dict()["features.3.weight"] for s in (first, second, other)]
    assert torch.equal(w[0], w[1]) and not torch.equal(w[0], w[2])
    assert first.uses_random_weights and first.network_info["alexnet"]["weights"].startswith("RANDOM")
