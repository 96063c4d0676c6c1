"""Shared encoder blocks: position code, channel attention, shallow convolutions, subject layers, head."""

import math

import pytest
import torch
from torch import nn

from eegdecode.models.base import count_parameters
from eegdecode.models.channel_attention import ChannelAttention, sinusoidal_positions
from eegdecode.models.convolutions import SpatialTemporalConv, TemporalSpatialConv, pooled_length
from eegdecode.models.nervformer_core import NervFormerCore
from eegdecode.models.projection_head import ProjectionHead
from eegdecode.models.subject_layers import SubjectLinear


def test_positions_match_the_original_formula_for_63_channels():
    # The original: div = exp(arange(0, d + 1, 2) * -ln(1e4) / d); sin on even columns with div[:d//2 + 1],
    # cos on odd columns with div[:d//2]. Valid for odd d only.
    d, n = 63, 250
    position = torch.arange(n, dtype=torch.float64)[:, None]
    div = torch.exp(torch.arange(0, d + 1, 2, dtype=torch.float64) * (-math.log(10000.0) / d))
    expected = torch.zeros(n, d, dtype=torch.float64)
    expected[:, 0::2] = torch.sin(position * div[: d // 2 + 1])
    expected[:, 1::2] = torch.cos(position * div[: d // 2])
    torch.testing.assert_close(sinusoidal_positions(n, d), expected.float())


@pytest.mark.parametrize("width", [4, 8, 64, 270])
def test_positions_for_even_widths_are_the_standard_code(width):
    code = sinusoidal_positions(3, width)
    assert code.shape == (3, width)
    torch.testing.assert_close(code[0], torch.tensor([0.0, 1.0] * (width // 2)))
    assert code[1, 0].item() == pytest.approx(math.sin(1.0), abs=1e-6)
    assert code[1, 1].item() == pytest.approx(math.cos(1.0), abs=1e-6)
    # Pair i uses frequency 10000 ** (-2i / width).
    assert code[2, 2].item() == pytest.approx(math.sin(2 * 10000 ** (-2 / width)), abs=1e-6)


def test_channel_attention_has_one_live_layer_and_attends_over_time():
    block = ChannelAttention(63, 250)
    # 3*63*63 + 3*63 (in-proj) + 63*63 + 63 (out-proj) + 63*2048 + 2048 + 2048*63 + 63 + 2 * 2 * 63 (norms)
    assert count_parameters(block) == 276_539
    block.eval()
    block.positions.zero_()  # without positions a transformer is equivariant to permuting its tokens
    x = torch.randn(2, 63, 250)
    time_perm = torch.randperm(250)
    torch.testing.assert_close(block(x[:, :, time_perm]), block(x)[:, :, time_perm], atol=1e-5, rtol=1e-5)
    # ... but not to permuting channels, which are the features: tokens are time samples, not channels.
    chan_perm = torch.randperm(63)
    assert not torch.allclose(block(x[:, chan_perm]), block(x)[:, chan_perm], atol=1e-3)


@pytest.mark.parametrize("n_chans", [8, 17, 64, 271])
def test_channel_attention_accepts_any_channel_count(n_chans):
    block = ChannelAttention(n_chans, 100).eval()
    assert block(torch.randn(2, n_chans, 100)).shape == (2, n_chans, 100)


def test_channel_attention_positions_are_not_in_the_state_dict():
    assert "positions" not in ChannelAttention(17, 100).state_dict()


@pytest.mark.parametrize(("n_times", "expected"), [(250, 36), (100, 6), (201, 26), (75, 1)])
def test_pooled_length_known_values(n_times, expected):
    assert pooled_length(n_times) == expected
    conv = TemporalSpatialConv(5, n_times).eval()
    assert conv(torch.randn(2, 1, 5, n_times)).shape == (2, expected, 40)


def test_too_short_epochs_are_refused_with_the_parameter_named():
    with pytest.raises(ValueError, match="n_times: 74.*at least 75"):
        pooled_length(74)


def test_shallow_convolution_parameter_counts():
    # Counts of the original PatchEmbedding (with 1x1 projection) and STConvEEGModel at 63 channels.
    assert count_parameters(TemporalSpatialConv(63, 250, projection=True)) == 103_680
    assert count_parameters(TemporalSpatialConv(63, 250, projection=False)) == 102_040
    assert count_parameters(SpatialTemporalConv(63, 250, projection=True)) == 44_400
    assert count_parameters(SpatialTemporalConv(63, 250, projection=False)) == 42_760


def test_spatial_first_convolution_mixes_channels_before_time():
    # With the first kernel spanning all channels, a channel permutation of the input only permutes the
    # weights' columns: output of a permuted input with permuted weights equals the original output.
    conv = SpatialTemporalConv(6, 100).eval()
    x = torch.randn(2, 1, 6, 100)
    perm = torch.randperm(6)
    expected = conv(x)
    with torch.no_grad():
        conv.convs[0].weight.copy_(conv.convs[0].weight[:, :, perm, :])
    torch.testing.assert_close(conv(x[:, :, perm]), expected, atol=1e-5, rtol=1e-5)


def test_nervformer_core_counts_and_width():
    core = NervFormerCore(63, 250)
    assert count_parameters(core) == 9_015_568
    assert core.out_features == 1440
    assert core.eval()(torch.randn(2, 1, 63, 250)).shape == (2, 1440)
    assert NervFormerCore(17, 100).out_features == 6 * 40


def test_projection_head_count_and_residual_structure():
    head = ProjectionHead(1440, 1024)
    assert count_parameters(head) == 2_527_232
    head.eval()
    x = torch.randn(3, 1440)
    h = head.linear(x)
    expected = nn.functional.layer_norm(
        h + head.residual[1](nn.functional.gelu(h)), (1024,), head.norm.weight, head.norm.bias
    )
    torch.testing.assert_close(head(x), expected)


def test_subject_linear_routes_each_sample_through_its_own_subject():
    layer = SubjectLinear(3, 5, 4)
    x = torch.randn(6, 2, 5)
    subject_idx = torch.tensor([2, 0, 2, 1, 0, 0])
    out = layer(x, subject_idx)
    for i, s in enumerate(subject_idx.tolist()):
        torch.testing.assert_close(out[i], x[i] @ layer.weight[s].T + layer.bias[s])
    torch.testing.assert_close(layer(x), layer(x, torch.zeros(6, dtype=torch.long)))


def test_subject_linear_gradients_reach_only_the_subjects_present():
    layer = SubjectLinear(3, 5, 4)
    layer(torch.randn(4, 2, 5), torch.tensor([1, 1, 2, 2])).sum().backward()
    assert layer.weight.grad[0].abs().sum() == 0
    assert layer.weight.grad[1].abs().sum() > 0 and layer.weight.grad[2].abs().sum() > 0


def test_subject_linear_rejects_unknown_subjects():
    layer = SubjectLinear(2, 5, 5)
    with pytest.raises(ValueError, match=r"subject_idx: expected values in \[0, 1\].*found \[0, 2\]"):
        layer(torch.randn(2, 1, 5), torch.tensor([0, 2]))


def test_subject_linear_mixed_batch_under_autocast():
    layer = SubjectLinear(2, 5, 4)
    x = torch.randn(4, 3, 5)
    subject_idx = torch.tensor([0, 1, 1, 0])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x, subject_idx)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), layer(x, subject_idx), atol=0.05, rtol=0.05)


def test_subject_linear_sync_free_path_gives_the_same_values_and_gradients():
    """The path used on accelerators and under torch.compile (no host reads) equals the grouped CPU path."""
    layer = SubjectLinear(3, 5, 4)
    x = torch.randn(6, 2, 5, requires_grad=True)
    subject_idx = torch.tensor([2, 0, 2, 1, 0, 0])
    grouped, masked = layer(x, subject_idx), layer._forward_masked(x, subject_idx)
    torch.testing.assert_close(masked, grouped, rtol=0, atol=1e-6)
    layer.zero_grad()
    layer._forward_masked(torch.randn(4, 2, 5), torch.tensor([1, 1, 2, 2])).sum().backward()
    assert layer.weight.grad[0].abs().sum() == 0 and layer.weight.grad[1].abs().sum() > 0
