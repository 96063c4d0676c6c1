"""Every registered encoder: shapes, parameter counts, state-dict round trip, determinism, subject routing."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from eegdecode.models import build_encoder, count_parameters, list_encoders, resolve_encoder_name

SHAPES = [(63, 250), (17, 250), (17, 100), (271, 201)]
SUBJECT_MODELS = ["NervformerV2", "ATMS_50"]
PAPER_MODELS = [
    "NervformerV2",
    "NervformerV1",
    "MUSE_EEG",
    "ATMS_50",
    "NICE_EEG",
    "EEGProject",
    "TSConv",
    "BlurEEGEncoder",
]

pytestmark = pytest.mark.filterwarnings("ignore:This model has only been tested:UserWarning")


def _build(name, n_chans, n_times, n_subjects=1, seed=0):
    """Build an encoder in eval mode; the ridge floor is fitted on a few random trials first."""
    torch.manual_seed(seed)
    if name != "ridge":
        return build_encoder(name, n_chans, n_times, n_subjects=n_subjects).eval()
    # Coarse time bins keep the Gram matrix small (n_chans x 5 features).
    model = build_encoder("ridge", n_chans, n_times, time_bin=-(-n_times // 5))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((24, n_chans, n_times)).astype(np.float32)
    y = rng.standard_normal((24, 1024)).astype(np.float32)
    return model.fit(x[:16], y[:16], x[16:], y[16:], alphas=[1.0, 10.0]).eval()


def test_registry_lists_the_required_names():
    assert list_encoders() == [
        "NervformerV2",
        "NervformerV1",
        "MUSE_EEG",
        "ATMS_50",
        "NICE_EEG",
        "EEGProject",
        "TSConv",
        "BlurEEGEncoder",
        "EEGNet",
        "ShallowFBCSPNet",
        "EEGConformer",
        "ridge",
    ]


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("nerv", "NervformerV2"),
        ("Nervformer", "NervformerV2"),
        ("NERVFORMERV2", "NervformerV2"),
        ("nervformerv1", "NervformerV1"),
        ("atms", "ATMS_50"),
        ("ATM", "ATMS_50"),
        ("nice", "NICE_EEG"),
        ("muse", "MUSE_EEG"),
        ("eegnetv4", "EEGNet"),
        ("eegproject", "EEGProject"),
        ("EEG_Project", "EEGProject"),
        ("tsconv", "TSConv"),
        ("Brain_Visual_Encoder_EEG", "BlurEEGEncoder"),
        ("blureegencoder", "BlurEEGEncoder"),
        ("Ridge", "ridge"),
    ],
)
def test_names_are_case_insensitive_with_aliases(alias, name):
    assert resolve_encoder_name(alias) == name


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"'nervformerV3'.*NervformerV2.*ATMS_50.*ridge"):
        build_encoder("nervformerV3", 63, 250)


def test_unknown_option_names_the_model():
    with pytest.raises(TypeError, match="NICE_EEG.*n_heads"):
        build_encoder("nice", 63, 250, n_heads=4)


@pytest.mark.parametrize("name", list_encoders())
@pytest.mark.parametrize(("n_chans", "n_times"), SHAPES)
def test_output_shape(name, n_chans, n_times):
    model = _build(name, n_chans, n_times)
    with torch.no_grad():
        out = model(torch.randn(3, n_chans, n_times), torch.zeros(3, dtype=torch.long))
    assert out.shape == (3, 1024)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", SUBJECT_MODELS)
@pytest.mark.parametrize("n_chans", [8, 64])
def test_even_channel_counts_work(name, n_chans):
    model = _build(name, n_chans, 100)
    assert model(torch.randn(2, n_chans, 100)).shape == (2, 1024)


# Trainable parameters at 63 x 250, one subject, logit scale included. The five paper models are SPEC section 4
# except ATMS_50 (see the next test); the baselines follow from braindecode 1.8.1 with the original settings.
EXPECTED_PARAMETERS = {
    "NervformerV2": 11_882_090,
    "NervformerV1": 11_542_801,
    "MUSE_EEG": 2_571_633,
    "ATMS_50": 2_970_202,
    "NICE_EEG": 2_630_913,
    "EEGProject": 17_180_673,  # 15,750 x 1024 + 1024, residual 1,049,600, LayerNorm 2,048, logit scale
    "TSConv": 2_630_913,  # NICE_EEG's network, flattened in another order
    "BlurEEGEncoder": 5_213_050,  # spatial 25 x 63, BatchNorm 50, MLP 50,200 + 40,200, head 5,121,024, logit scale
    "EEGNet": 1_186_833,  # = the original EEGNetv4_Encoder (braindecode 0.8.1)
    "ShallowFBCSPNet": 886_845,  # = the original ShallowFBCSPNet_Encoder (its log-softmax has no parameters)
    "EEGConformer": 1_945_705,  # original 635,273 minus the 1760-256-32-1024 head plus Linear(1760 -> 1024)
    "ridge": 1,  # only the logit scale trains; the coefficients are closed-form buffers
}


@pytest.mark.parametrize("name", list_encoders())
def test_parameter_count_at_63_by_250(name):
    model = build_encoder(name, 63, 250)
    assert count_parameters(model) == EXPECTED_PARAMETERS[name]
    assert isinstance(model.logit_scale, nn.Parameter)
    assert model.logit_scale.item() == pytest.approx(np.log(1 / 0.07))


def test_atms_count_differs_from_the_quoted_original_by_exactly_the_dead_template_layer():
    # The 3,246,741 quoted for the original ATMS_50 counts EEGAttention's template TransformerEncoderLayer,
    # registered beside the TransformerEncoder copy that runs; NervformerV2's 11,882,090 already excludes it.
    dead_layer = count_parameters(nn.TransformerEncoderLayer(d_model=63, nhead=1, dim_feedforward=2048))
    assert dead_layer == 276_539
    assert EXPECTED_PARAMETERS["ATMS_50"] + dead_layer == 3_246_741
    assert EXPECTED_PARAMETERS["NervformerV2"] + dead_layer == 12_158_629


@pytest.mark.parametrize("name", PAPER_MODELS)
def test_each_extra_subject_adds_one_subject_layer(name):
    one, three = (count_parameters(build_encoder(name, 63, 250, n_subjects=n)) for n in (1, 3))
    expected = 2 * (250 * 250 + 250) if name in SUBJECT_MODELS else 0
    assert three - one == expected


@pytest.mark.parametrize("name", [n for n in list_encoders() if n != "ridge"])
def test_every_parameter_is_used(name):
    # No dead duplicate transformer layer, no unused image head: each parameter gets a gradient
    # (the logit scale is read by the loss, not by forward).
    model = build_encoder(name, 17, 100).train()
    model(torch.randn(4, 17, 100)).square().mean().backward()
    unused = [
        n for n, p in model.named_parameters() if n != "logit_scale" and (p.grad is None or not p.grad.any())
    ]
    assert unused == []


@pytest.mark.parametrize("name", list_encoders())
def test_safetensors_round_trip(name, tmp_path):
    model = _build(name, 17, 100, seed=0)
    path = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    other = _build(name, 17, 100, seed=1) if name != "ridge" else build_encoder("ridge", 17, 100, time_bin=20)
    other.load_state_dict(load_file(str(path)))
    other.eval()
    x = torch.randn(3, 17, 100)
    with torch.no_grad():
        assert torch.equal(model(x), other(x))


@pytest.mark.parametrize("name", list_encoders())
def test_eval_mode_is_deterministic_and_seeded(name):
    x = torch.randn(3, 17, 100)
    first, second = _build(name, 17, 100, seed=3), _build(name, 17, 100, seed=3)
    with torch.no_grad():
        out = first(x)
        assert torch.equal(out, first(x))
        assert torch.equal(out, second(x))


@pytest.mark.parametrize("name", SUBJECT_MODELS)
def test_samples_of_two_subjects_go_through_their_own_subject_layers(name):
    model = _build(name, 17, 100, n_subjects=2)
    x = torch.randn(4, 17, 100)
    mixed_ids = torch.tensor([0, 1, 1, 0])
    with torch.no_grad():
        mixed = model(x, mixed_ids)
        all_zero = model(x, torch.zeros(4, dtype=torch.long))
        all_one = model(x, torch.ones(4, dtype=torch.long))
        swapped = model(x, 1 - mixed_ids)
        default = model(x)
    # Subjects have different layers, so the same epoch gives different embeddings ...
    assert (all_zero - all_one).abs().max() > 1e-3
    # ... and each row of a mixed batch is what its own subject's layer gives.
    zero, one = mixed_ids == 0, mixed_ids == 1
    torch.testing.assert_close(mixed[zero], all_zero[zero], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(mixed[one], all_one[one], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(swapped[zero], all_one[zero], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(swapped[one], all_zero[one], atol=1e-5, rtol=1e-5)
    assert torch.equal(default, all_zero)


@pytest.mark.parametrize("name", SUBJECT_MODELS)
def test_one_subject_of_a_joint_model_equals_a_single_subject_model_with_its_layer(name):
    joint = _build(name, 17, 100, n_subjects=3)
    single = _build(name, 17, 100, n_subjects=1, seed=5)
    state = joint.state_dict()
    state["subject_layer.weight"] = state["subject_layer.weight"][2:3].clone()
    state["subject_layer.bias"] = state["subject_layer.bias"][2:3].clone()
    single.load_state_dict(state)
    x = torch.randn(3, 17, 100)
    with torch.no_grad():
        torch.testing.assert_close(joint(x, torch.full((3,), 2)), single(x), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("name", SUBJECT_MODELS)
def test_gradients_reach_only_the_layers_of_the_subjects_in_the_batch(name):
    model = build_encoder(name, 17, 100, n_subjects=3).train()
    # Not .sum(): the LayerNorm output of the head sums to a constant, whose gradient is zero.
    model(torch.randn(4, 17, 100), torch.tensor([1, 1, 2, 1])).square().mean().backward()
    grad = model.subject_layer.weight.grad
    assert grad[0].abs().sum() == 0
    assert grad[1].abs().sum() > 0 and grad[2].abs().sum() > 0


def test_wrong_input_shape_is_explained():
    model = build_encoder("nice", 63, 250)
    with pytest.raises(ValueError, match=r"expected shape \(batch, 63, 250\), found \(2, 17, 250\)"):
        model(torch.randn(2, 17, 250))
    with pytest.raises(ValueError, match=r"subject_idx: expected shape \(2,\), found \(3,\)"):
        model(torch.randn(2, 63, 250), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="subject_idx: expected an integer tensor"):
        model(torch.randn(2, 63, 250), torch.zeros(2))


def test_subject_index_out_of_range_is_explained():
    model = build_encoder("atms", 17, 100, n_subjects=2).eval()
    with pytest.raises(ValueError, match=r"expected values in \[0, 1\].*found \[0, 5\]"):
        model(torch.randn(2, 17, 100), torch.tensor([5, 0]))


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_sizes_are_refused(bad):
    with pytest.raises(ValueError, match="n_subjects"):
        build_encoder("nerv", 17, 100, n_subjects=bad)
