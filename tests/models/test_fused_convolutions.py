"""The fused CPU forward of the shallow convolution blocks computes the layer-by-layer forward's function.

Compared in training mode (batch statistics, dropout drawn from the same seed) and in eval mode: outputs,
input gradients, every parameter's gradient and the batch-norm running statistics, for the blocks and for the
whole NervformerV2, ATMS_50, NICE_EEG and MUSE_EEG encoders.
"""

import copy

import pytest
import torch
import torch.nn.functional as F

from eegdecode.models import build_encoder
from eegdecode.models.convolutions import (
    SpatialTemporalConv,
    TemporalSpatialConv,
    box_filtered_kernel,
    set_fused,
)


def _assert_grads_close(fused: torch.nn.Module, plain: torch.nn.Module) -> None:
    plain_grads = {k: p.grad for k, p in plain.named_parameters()}
    # Biases right before a batch norm have a gradient of exactly zero in exact arithmetic: both forwards
    # leave float noise there, so every gradient is compared on the scale of the largest one.
    scale = max(g.abs().max().item() for g in plain_grads.values() if g is not None)
    for key, p in fused.named_parameters():
        if plain_grads[key] is None:  # the logit scale: used by the loss only
            assert p.grad is None, key
            continue
        torch.testing.assert_close(p.grad, plain_grads[key], rtol=1e-4, atol=1e-4 * scale, msg=key)


def _assert_buffers_close(fused: torch.nn.Module, plain: torch.nn.Module) -> None:
    plain_buffers = dict(plain.named_buffers())
    for key, b in fused.named_buffers():
        torch.testing.assert_close(b, plain_buffers[key], rtol=1e-4, atol=1e-5, msg=key)


def _run(module, x, seed, grad_out=None):
    x = x.clone().requires_grad_(True)
    torch.manual_seed(seed)
    out = module(x)
    (out * (grad_out if grad_out is not None else 1.0)).sum().backward()
    return out, x.grad


def test_box_filtered_kernel_known_answer():
    # A unit impulse at tap 2 of a width-4 kernel, pooled over 3: the box 1/3 over taps 2..4 of width 6.
    weight = torch.zeros(1, 1, 1, 4)
    weight[0, 0, 0, 2] = 1.0
    kernel = box_filtered_kernel(weight, 3)
    torch.testing.assert_close(kernel, torch.tensor([[[0, 0, 1 / 3, 1 / 3, 1 / 3, 0]]]))


@pytest.mark.parametrize("n_in", [1, 3])
def test_box_filtered_kernel_equals_convolution_then_pooling(n_in):
    torch.manual_seed(0)
    weight, bias = torch.randn(5, n_in, 1, 25), torch.randn(5)
    x = torch.randn(2, n_in, 4, 250)
    expected = F.avg_pool2d(F.conv2d(x, weight, bias), (1, 51), (1, 5))
    kernel = box_filtered_kernel(weight, 51).unsqueeze(2)  # (5, n_in, 1, 75)
    assert kernel.shape == (5, n_in, 1, 75)
    torch.testing.assert_close(F.conv2d(x, kernel, bias, stride=(1, 5)), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cls", [TemporalSpatialConv, SpatialTemporalConv])
@pytest.mark.parametrize("projection", [True, False])
@pytest.mark.parametrize(("n_chans", "n_times"), [(63, 250), (17, 201)])
def test_fused_block_equals_the_layer_by_layer_block(cls, projection, n_chans, n_times):
    torch.manual_seed(0)
    plain = cls(n_chans, n_times, 40, drop_prob=0.5, projection=projection)
    fused = copy.deepcopy(plain)
    plain.fused = False
    assert fused.fused
    x = torch.randn(6, 1, n_chans, n_times)
    grad_out = torch.randn(6, plain.n_tokens, 40)
    # training mode: batch statistics, running statistics and the same dropout mask from the same seed
    out_plain, gx_plain = _run(plain, x, 3, grad_out)
    out_fused, gx_fused = _run(fused, x, 3, grad_out)
    assert out_fused.shape == out_plain.shape == (6, plain.n_tokens, 40)
    other_seed = _run(copy.deepcopy(plain), x, 4, grad_out)[0]
    assert not torch.allclose(other_seed, out_plain)  # dropout acts: the mask follows the seed
    torch.testing.assert_close(out_fused, out_plain, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gx_fused, gx_plain, rtol=1e-4, atol=1e-5 * gx_plain.abs().max().item())
    _assert_grads_close(fused, plain)
    _assert_buffers_close(fused, plain)
    # eval mode: running statistics, no dropout
    plain.eval(), fused.eval()
    with torch.no_grad():
        torch.testing.assert_close(fused(x), plain(x), rtol=1e-5, atol=1e-5)
    assert fused.state_dict().keys() == plain.state_dict().keys()


def test_fused_path_runs_only_on_cpu_when_enabled():
    block = TemporalSpatialConv(8, 100)
    calls = []
    block.convs.register_forward_hook(lambda *_: calls.append(1))
    block(torch.randn(2, 1, 8, 100))
    assert calls == []  # fused: the Sequential is not run
    assert set_fused(block, False) == 1
    block(torch.randn(2, 1, 8, 100))
    assert calls == [1]


@pytest.mark.parametrize("name", ["NervformerV2", "ATMS_50", "NICE_EEG", "MUSE_EEG"])
def test_fused_encoder_equals_the_layer_by_layer_encoder(name):
    torch.manual_seed(0)
    plain = build_encoder(name, 17, 250, 32)
    fused = copy.deepcopy(plain)
    assert set_fused(plain, False) >= 1
    x, grad_out = torch.randn(4, 17, 250), torch.randn(4, 32)
    out_plain, gx_plain = _run(plain, x, 7, grad_out)
    out_fused, gx_fused = _run(fused, x, 7, grad_out)
    torch.testing.assert_close(out_fused, out_plain, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(gx_fused, gx_plain, rtol=1e-4, atol=1e-5 * gx_plain.abs().max().item())
    _assert_grads_close(fused, plain)
    _assert_buffers_close(fused, plain)
