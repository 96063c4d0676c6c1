"""Extractors: a layer's pooled features equal the model's own hidden state computed directly (open_clip ViT by
running its blocks by hand, open_clip ResNet stage by stage, DINOv2 through ``output_hidden_states``)."""

import json

import open_clip
import pytest
import torch
from conftest import RN, VIT
from transformers import Dinov2Model

from eegdecode.embeddings.clip_features import resolve_clip_weights
from eegdecode.errors import DataFormatError, MissingFileError
from eegdecode.targets.extractors import HFExtractor, OpenClipExtractor, build_extractor
from eegdecode.targets.spec import TargetSpec

POOLINGS = ("cls", "mean", "tokens:3")


def _expected_pool(tokens: torch.Tensor, pooling: str) -> torch.Tensor:
    if pooling == "cls":
        return tokens[:, 0]
    if pooling == "mean":
        return tokens[:, 1:].mean(dim=1)
    return torch.cat([tokens[:, 0], tokens[:, 1], tokens[:, 2]], dim=1)


def _open_clip_model(name, weights):
    model = open_clip.create_model(name, pretrained=str(weights))
    return model.eval()


@pytest.fixture(scope="module")
def vit(tiny_open_clip):
    return OpenClipExtractor(VIT, resolve_clip_weights(VIT, tiny_open_clip["vit"]), "cpu")


def test_open_clip_vit_blocks_equal_running_the_blocks_by_hand(vit, tiny_open_clip):
    model = _open_clip_model(VIT, tiny_open_clip["vit"])
    visual = model.visual
    images = torch.randn(2, 3, 32, 32)
    acts = vit(images, ["block:0", "block:-1", "embedding", "visual.transformer.resblocks.1"])
    with torch.no_grad():
        x = visual.conv1(images).flatten(2).transpose(1, 2)  # (2, 16, 32)
        x = torch.cat([visual.class_embedding.expand(2, 1, -1), x], dim=1) + visual.positional_embedding
        x = visual.ln_pre(x)
        by_hand = []
        for block in visual.transformer.resblocks:
            x = block(x)
            by_hand.append(x)
        embedding = model.encode_image(images)
    assert acts["block:0"].shape == (2, 17, 32)
    torch.testing.assert_close(acts["block:0"], by_hand[0])
    torch.testing.assert_close(acts["block:-1"], by_hand[2])
    torch.testing.assert_close(acts["visual.transformer.resblocks.1"], by_hand[1])
    torch.testing.assert_close(acts["embedding"], embedding)
    # The final embedding is ln_post(CLS of the last block) @ proj: ties the hooked tokens to the model's output.
    torch.testing.assert_close(
        visual.ln_post(by_hand[2][:, 0]) @ visual.proj, embedding, rtol=1e-4, atol=1e-5
    )
    assert not torch.allclose(by_hand[0], by_hand[2])


@pytest.mark.parametrize("pooling", POOLINGS)
def test_open_clip_pooled_features_equal_the_hidden_state(vit, pooling):
    from eegdecode.targets.pooling import pool

    images = torch.randn(3, 3, 32, 32)
    tokens = vit(images, ["block:1"])["block:1"]
    pooled = pool(tokens, pooling, vit.n_prefix)
    expected = _expected_pool(tokens, pooling)
    assert pooled.shape == expected.shape == (3, 32 if pooling != "tokens:3" else 96)
    torch.testing.assert_close(pooled, expected)


def test_open_clip_resnet_stages_by_hand(tiny_open_clip):
    ext = OpenClipExtractor(RN, resolve_clip_weights(RN, tiny_open_clip["rn"]), "cpu")
    model = _open_clip_model(RN, tiny_open_clip["rn"])
    images = torch.randn(2, 3, 64, 64)
    acts = ext(images, ["block:0", "block:3", "embedding"])
    v = model.visual
    with torch.no_grad():
        x = v.act3(v.bn3(v.conv3(v.act2(v.bn2(v.conv2(v.act1(v.bn1(v.conv1(images)))))))))
        x = v.avgpool(x)
        stages = []
        for layer in (v.layer1, v.layer2, v.layer3, v.layer4):
            x = layer(x)
            stages.append(x)
        embedding = model.encode_image(images)
    assert ext.n_prefix == 0
    assert acts["block:0"].shape == (2, 32, 16, 16) and acts["block:3"].shape == (2, 256, 2, 2)
    torch.testing.assert_close(acts["block:0"], stages[0])
    torch.testing.assert_close(acts["block:3"], stages[3])
    torch.testing.assert_close(acts["embedding"], embedding)
    from eegdecode.targets.pooling import pool

    torch.testing.assert_close(pool(acts["block:3"], "mean"), stages[3].mean(dim=(2, 3)))
    grid = pool(acts["block:0"], "tokens:4")  # 16 x 16 averaged to 2 x 2, position-major
    torch.testing.assert_close(grid[:, :32], stages[0][:, :, :8, :8].mean(dim=(2, 3)))
    torch.testing.assert_close(grid[:, 96:], stages[0][:, :, 8:, 8:].mean(dim=(2, 3)))
    with pytest.raises(ValueError, match="no class token"):
        pool(acts["block:0"], "cls")


@pytest.mark.parametrize("pooling", POOLINGS)
def test_dinov2_pooled_features_equal_output_hidden_states(tiny_dinov2, pooling):
    from eegdecode.targets.pooling import pool

    ext = build_extractor(TargetSpec(f"hf:{tiny_dinov2}", text=False), "cpu")
    assert isinstance(ext, HFExtractor) and ext.n_prefix == 1
    model = Dinov2Model.from_pretrained(tiny_dinov2).eval()
    images = torch.randn(2, 3, 32, 32)
    acts = ext(images, ["block:0", "block:-1", "embedding", "encoder.layer.0"])
    with torch.no_grad():
        out = model(pixel_values=images, output_hidden_states=True)
    assert len(out.hidden_states) == 3 and out.hidden_states[1].shape == (2, 17, 32)
    torch.testing.assert_close(acts["block:0"], out.hidden_states[1])
    torch.testing.assert_close(acts["block:-1"], out.hidden_states[2])
    torch.testing.assert_close(
        acts["encoder.layer.0"], out.hidden_states[1]
    )  # the hook and hidden_states agree
    torch.testing.assert_close(acts["embedding"], out.pooler_output)
    torch.testing.assert_close(
        pool(acts["block:0"], pooling, 1), _expected_pool(out.hidden_states[1], pooling)
    )


def test_layer_listing_and_names(vit, tiny_dinov2):
    infos = {i.name: i for i in vit.layers()}
    assert list(infos) == ["embedding", "block:0", "block:1", "block:2"]
    assert infos["embedding"].shape == (1, 24) and infos["block:2"].shape == (1, 17, 32)
    assert infos["block:1"].module == "visual.transformer.resblocks.1"
    assert infos["block:1"].kind == "ResidualAttentionBlock"
    assert vit.resolve_layer("block:-3") == "block:0"
    assert vit.resolve_layer("visual.transformer.resblocks.2") == "block:2"
    with pytest.raises(ValueError, match="3 blocks"):
        vit.resolve_layer("block:3")
    with pytest.raises(ValueError, match="list-layers"):
        vit.resolve_layer("visual.nothing")
    modules = [i.name for i in vit.layers(modules=True)]
    assert "visual.transformer.resblocks.0.mlp" in modules
    dino = HFExtractor(tiny_dinov2)
    names = [(i.name, i.module, i.shape) for i in dino.layers()]
    assert names == [("embedding", "embedding", (1, 32)), ("block:0", "encoder.layer.0", (1, 17, 32)),
                     ("block:1", "encoder.layer.1", (1, 17, 32))]  # fmt: skip


def test_hf_transform_is_the_processor(tiny_dinov2):
    from PIL import Image
    from transformers import AutoImageProcessor

    ext = HFExtractor(tiny_dinov2)
    img = Image.new("RGB", (50, 40), (200, 30, 60))
    expected = AutoImageProcessor.from_pretrained(tiny_dinov2)(images=img, return_tensors="pt")[
        "pixel_values"
    ][0]
    torch.testing.assert_close(ext.transform()(img), expected)
    assert "BitImageProcessor" in ext.describe_transform() and "crop_size" in ext.describe_transform()


def test_hf_unsupported_models_are_refused(tmp_path, tiny_dinov2):
    remote = tmp_path / "internvit"
    remote.mkdir()
    (remote / "config.json").write_text(
        json.dumps({"model_type": "intern_vit_6b", "auto_map": {"AutoModel": "x.Y"}})
    )
    with pytest.raises(DataFormatError, match="trust_remote_code"):
        HFExtractor(remote)
    other = tmp_path / "bert"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(DataFormatError, match="model_type in"):
        HFExtractor(other)
    with pytest.raises(MissingFileError, match="local folder"):
        HFExtractor(tmp_path / "absent")
    with pytest.raises(ValueError, match="reads its weights from its folder"):
        from eegdecode.targets.extractors import source_provenance

        source_provenance(TargetSpec(f"hf:{tiny_dinov2}", weights="x.bin", text=False))


def _save_hf(folder, model, processor):
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def test_siglip_and_clip_vision_hidden_states(tmp_path):
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
        SiglipImageProcessor,
        SiglipVisionConfig,
        SiglipVisionModel,
    )

    from eegdecode.targets.pooling import pool

    small = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
             "image_size": 32, "patch_size": 8}  # fmt: skip
    torch.manual_seed(3)
    siglip = _save_hf(tmp_path / "siglip", SiglipVisionModel(SiglipVisionConfig(**small)),
                      SiglipImageProcessor(size={"height": 32, "width": 32}))  # fmt: skip
    clip = _save_hf(tmp_path / "clip", CLIPVisionModelWithProjection(CLIPVisionConfig(**small, projection_dim=16)),
                    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}))  # fmt: skip
    images = torch.randn(2, 3, 32, 32)

    ext = HFExtractor(siglip)
    assert ext.n_prefix == 0 and ext.block_modules()[1] == "vision_model.encoder.layers.1"
    acts = ext(images, ["block:0", "embedding"])
    with torch.no_grad():
        out = SiglipVisionModel.from_pretrained(siglip).eval()(pixel_values=images, output_hidden_states=True)
    assert acts["block:0"].shape == (2, 16, 32)  # no class token
    torch.testing.assert_close(acts["block:0"], out.hidden_states[1])
    torch.testing.assert_close(acts["embedding"], out.pooler_output)
    torch.testing.assert_close(pool(acts["block:0"], "mean", 0), out.hidden_states[1].mean(dim=1))
    with pytest.raises(ValueError, match="no class token"):
        pool(acts["block:0"], "cls", ext.n_prefix)

    ext = HFExtractor(clip)
    acts = ext(images, ["block:1", "embedding"])
    with torch.no_grad():
        out = CLIPVisionModelWithProjection.from_pretrained(clip).eval()(
            pixel_values=images, output_hidden_states=True
        )
    assert acts["embedding"].shape == (2, 16)  # the projected image embedding
    torch.testing.assert_close(acts["embedding"], out.image_embeds)
    torch.testing.assert_close(acts["block:1"], out.hidden_states[2])


def test_open_clip_timm_tower_eva_blocks(tmp_path):
    """EVA through open_clip is a timm tower: ``block:I`` hooks ``visual.trunk.blocks[I]``."""
    from eegdecode.embeddings.clip_features import register_open_clip_config

    name = "eegdecode-test-targets-eva"
    cfg = {
        "embed_dim": 24,
        "vision_cfg": {"image_size": 224, "timm_model_name": "eva02_tiny_patch14_224",
                       "timm_model_pretrained": False, "timm_pool": "token", "timm_proj": "linear"},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }  # fmt: skip
    (tmp_path / f"{name}.json").write_text(json.dumps(cfg))
    register_open_clip_config(tmp_path / f"{name}.json")
    torch.manual_seed(4)
    torch.save(open_clip.create_model(name).state_dict(), tmp_path / "eva.bin")
    ext = OpenClipExtractor(name, resolve_clip_weights(name, tmp_path / "eva.bin"))
    assert ext.block_modules()[11] == "visual.trunk.blocks.11" and ext.n_prefix == 1
    images = torch.randn(1, 3, 224, 224)
    acts = ext(images, ["block:3", "embedding"])
    trunk = ext.model.visual.trunk
    with torch.no_grad():
        x = trunk.patch_embed(images)
        x, rope = trunk._pos_embed(x)
        x = trunk.norm_pre(x)
        for block in trunk.blocks[:4]:
            x = block(x, rope=rope)
    assert acts["block:3"].shape == (1, 257, 192)
    torch.testing.assert_close(acts["block:3"], x)
    torch.testing.assert_close(acts["embedding"], ext.model.encode_image(images))
