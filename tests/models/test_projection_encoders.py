"""EEGProject (UBP / NeuroBridge) and TSConv (NeuroBridge): counts, the computation, sizes the originals missed."""

import pytest
import torch
import torch.nn.functional as F

from eegdecode.models import NICE_EEG, EEGProject, TSConv, build_encoder, count_parameters

# Trainable parameters, one subject, logit scale included.
COUNTS = {
    ("EEGProject", 63, 250): 63 * 250 * 1024 + 1024 + (1024 * 1024 + 1024) + 2 * 1024 + 1,  # 17,180,673
    ("EEGProject", 17, 250): 17 * 250 * 1024 + 1024 + (1024 * 1024 + 1024) + 2 * 1024 + 1,  # 5,404,673
    ("TSConv", 63, 250): 2_630_913,
    ("TSConv", 17, 250): 2_557_313,
}


@pytest.mark.parametrize(("name", "n_chans", "n_times"), list(COUNTS))
def test_exact_parameter_counts(name, n_chans, n_times):
    assert count_parameters(build_encoder(name, n_chans, n_times)) == COUNTS[name, n_chans, n_times]
    assert COUNTS["EEGProject", 63, 250] == 17_180_673 and COUNTS["EEGProject", 17, 250] == 5_404_673


def test_eeg_project_is_a_projection_head_on_the_channel_major_flattened_epoch():
    torch.manual_seed(0)
    model = EEGProject(3, 5, 8).eval()
    x = torch.randn(4, 3, 5)
    head = model.projection
    h = x.reshape(4, 15) @ head.linear.weight.T + head.linear.bias
    expected = F.layer_norm(
        h + F.linear(F.gelu(h), head.residual[1].weight, head.residual[1].bias),
        (8,),
        head.norm.weight,
        head.norm.bias,
    )
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected)
    assert head.residual[2].p == 0.3


def test_eeg_project_ignores_the_subject_and_checks_its_options():
    model = build_encoder("EEGProject", 17, 100, n_subjects=3).eval()
    x = torch.randn(2, 17, 100)
    with torch.no_grad():
        assert torch.equal(model(x, torch.tensor([0, 2])), model(x))
    with pytest.raises(ValueError, match="drop_prob"):
        EEGProject(17, 100, drop_prob=1.5)


def test_tsconv_equals_nice_eeg_once_the_flattening_order_is_permuted():
    # Same layers; TSConv flattens the (40 filters x 36 steps) map filter-major, NICE token-major.
    torch.manual_seed(1)
    tsconv = TSConv(17, 250).eval()
    nice = NICE_EEG(17, 250).eval()
    state = tsconv.state_dict()
    n_tokens, n_filters = tsconv.ts_conv.n_tokens, tsconv.ts_conv.n_filters
    weight = state["projection.linear.weight"]  # columns indexed filter * n_tokens + token
    state["projection.linear.weight"] = (
        weight.reshape(-1, n_filters, n_tokens).transpose(1, 2).reshape(weight.shape[0], -1)
    )
    nice.load_state_dict(state)
    x = torch.randn(3, 17, 250)
    with torch.no_grad():
        torch.testing.assert_close(tsconv(x), nice(x), atol=1e-5, rtol=1e-5)
        # ... and without the permutation they differ: the layout really is filter-major.
        nice.load_state_dict(tsconv.state_dict())
        assert (tsconv(x) - nice(x)).abs().max() > 1e-3


@pytest.mark.parametrize("n_times", [201, 100, 76])  # 201 - 75 and 76 - 75 are not multiples of 5
def test_tsconv_sizes_its_head_from_the_pooled_length_the_original_got_wrong_for(n_times):
    model = TSConv(271, n_times).eval()
    pooled = (n_times - 24 - 51) // 5 + 1
    assert model.projection.linear.in_features == pooled * 40
    with torch.no_grad():
        assert model(torch.randn(2, 271, n_times)).shape == (2, 1024)


def test_tsconv_refuses_epochs_shorter_than_its_kernels():
    with pytest.raises(ValueError, match="at least 75 samples"):
        TSConv(17, 74)
