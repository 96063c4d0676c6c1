"""BlurEEGEncoder (Liu et al., AAAI 2026): counts, the computation, the non-negative spatial filters, learning."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from eegdecode.models import BlurEEGEncoder, build_encoder, count_parameters
from eegdecode.training.losses import clip_loss


def _count(n_chans, n_times, n_filters=25, hidden=200, batch_norm=True, n_outputs=1024):
    spatial = n_filters * n_chans  # no bias
    norm = 2 * n_filters if batch_norm else 0
    mlp = (n_times * hidden + hidden) + (hidden * hidden + hidden)
    head = n_filters * hidden * n_outputs + n_outputs
    return spatial + norm + mlp + head + 1  # + logit scale


def test_exact_parameter_counts_of_the_papers_configurations():
    # main_eeg.py: Brain_Visual_Encoder_EEG(63 channels, proj_dim 1024, 250 samples).
    assert count_parameters(build_encoder("BlurEEGEncoder", 63, 250)) == _count(63, 250) == 5_213_050
    assert count_parameters(build_encoder("BlurEEGEncoder", 17, 250)) == _count(17, 250) == 5_211_900
    # Brain_Visual_Encoder_MEG at THINGS-MEG's 271 x 201: 50 filters, 150 wide, no constraint, no BatchNorm.
    meg = BlurEEGEncoder(271, 201, n_filters=50, hidden_dim=150, non_negative=False, batch_norm=False)
    assert count_parameters(meg) == _count(271, 201, 50, 150, batch_norm=False) == 7_747_525


def test_the_paper_class_name_is_an_alias_and_the_defaults_are_the_papers():
    model = build_encoder("brain_visual_encoder_eeg", 63, 250)
    assert type(model) is BlurEEGEncoder
    assert model.spatial_weight.shape == (25, 63)
    linear1, elu1, drop1, linear2, elu2, drop2 = model.temporal
    assert (linear1.in_features, linear1.out_features, linear2.out_features) == (250, 200, 200)
    assert isinstance(elu1, torch.nn.ELU) and isinstance(elu2, torch.nn.ELU)
    assert (drop1.p, drop2.p) == (0.25, 0.65)
    assert isinstance(model.spatial_norm, torch.nn.BatchNorm1d) and model.spatial_norm.num_features == 25
    assert (model.head.in_features, model.head.out_features) == (5000, 1024)
    assert model.logit_scale.item() == pytest.approx(math.log(1 / 0.07))


def test_forward_is_the_originals_abs_convolution_batchnorm_mlp_and_head():
    # The original: Conv2d(1 -> F, (C, 1), no bias) with |weight| on x[:, None], BatchNorm2d, MLP on the last
    # axis, flatten (F, 1, H) filter-major, Linear. Written out here with the 2-D convolution.
    torch.manual_seed(0)
    model = BlurEEGEncoder(5, 12, 7, n_filters=3, hidden_dim=4).train()
    x = torch.randn(6, 5, 12)
    raw = model.spatial_weight
    with torch.no_grad():
        raw[0, :2] = -raw[0, :2]  # a stored negative weight is applied as its absolute value
    h = F.conv2d(x[:, None], raw.abs()[:, None, :, None])  # (6, 3, 1, 12)
    h = F.batch_norm(h, None, None, model.spatial_norm.weight, model.spatial_norm.bias, training=True)
    l1, _, _, l2, _, _ = model.temporal
    h = F.elu(F.linear(F.elu(F.linear(h, l1.weight, l1.bias)), l2.weight, l2.bias))
    expected = F.linear(h.flatten(1), model.head.weight, model.head.bias)
    model.temporal[2].p = model.temporal[5].p = 0.0  # dropout off, BatchNorm on batch statistics
    out = model(x, torch.zeros(6, dtype=torch.long))
    assert out.shape == (6, 7)
    torch.testing.assert_close(out, expected)
    assert (raw[0, :2] < 0).all()  # forward changed no parameter


def test_spatial_filters_start_non_negative_with_the_default_conv_init():
    torch.manual_seed(0)
    model = BlurEEGEncoder(63, 250)
    w = model.spatial_weight.detach()
    assert (w >= 0).all() and torch.equal(model.spatial_filters, w)
    assert w.max() <= 1 / math.sqrt(63) and w.mean() == pytest.approx(0.5 / math.sqrt(63), rel=0.1)
    free = BlurEEGEncoder(63, 250, non_negative=False).spatial_weight
    assert (free < 0).any()


@pytest.mark.parametrize("optimiser", ["sgd", "adamw"])
def test_spatial_filters_stay_non_negative_after_a_step_that_pushes_them_below_zero(optimiser):
    torch.manual_seed(0)
    model = BlurEEGEncoder(8, 20, 16).train()
    x = torch.randn(10, 8, 20)
    opt = (
        torch.optim.SGD(model.parameters(), lr=1.0)
        if optimiser == "sgd"
        else torch.optim.AdamW(model.parameters(), lr=1.0, weight_decay=0.01)
    )
    # A gradient of +1 on every applied weight: an unconstrained step would take them all to w - 1 < 0.
    loss = model(x).square().mean() * 0 + model.spatial_filters.sum()
    loss.backward()
    opt.step()
    assert (model.spatial_weight < 0).any()  # the stored values did step below zero ...
    filters = model.spatial_filters
    assert (filters >= 0).all()  # ... and the filters applied are their absolute values
    model.eval()
    with torch.no_grad():
        out = model(x)
        model.spatial_weight.abs_()  # the original's fold of the stored weight changes nothing
        torch.testing.assert_close(model(x), out)


def test_unconstrained_spatial_weights_may_go_negative():
    model = BlurEEGEncoder(8, 20, 16, non_negative=False)
    model.spatial_filters.sum().backward()
    torch.optim.SGD(model.parameters(), lr=1.0).step()
    assert (model.spatial_filters < 0).all()


def test_sgd_training_follows_the_originals_fold_step_by_step():
    # The original folds the stored weight (w <- |w|) before each forward and steps it unconstrained; here
    # forward applies |w| and the stored value keeps its sign. For plain SGD both give the same applied weights.
    torch.manual_seed(0)
    ours = BlurEEGEncoder(6, 16, 8, n_filters=4, hidden_dim=8).eval()
    original = copy.deepcopy(ours)
    opts = [torch.optim.SGD(m.parameters(), lr=0.3) for m in (ours, original)]
    x, target = torch.randn(12, 6, 16), torch.randn(12, 8)
    crossed = 0
    for _ in range(10):
        with torch.no_grad():
            original.spatial_weight.abs_()
        for model, opt in zip((ours, original), opts, strict=True):
            opt.zero_grad()
            (model(x) - target).square().mean().backward()
            opt.step()
        crossed += int((ours.spatial_weight < 0).sum())
        torch.testing.assert_close(ours.spatial_filters, original.spatial_weight.abs(), atol=1e-5, rtol=1e-5)
    assert crossed > 0  # the test exercised weights crossing zero (measured: 9 weight-steps below zero)


@pytest.mark.parametrize(
    ("option", "value"),
    [("n_filters", 0), ("hidden_dim", 2.5), ("first_dropout", 1.0), ("second_dropout", -0.1),
     ("non_negative", "yes"), ("batch_norm", 1)],
)  # fmt: skip
def test_bad_options_are_named(option, value):
    with pytest.raises(ValueError, match=f"Invalid value for {option}: {value!r}"):
        BlurEEGEncoder(17, 100, **{option: value})


def test_subject_index_is_ignored():
    model = build_encoder("BlurEEGEncoder", 17, 100, n_subjects=3).eval()
    x = torch.randn(2, 17, 100)
    with torch.no_grad():
        assert torch.equal(model(x, torch.tensor([0, 2])), model(x))


def test_learns_a_zero_shot_mapping_from_a_non_negative_mixture():
    # Each item has a 16-d target; its EEG is 4 source time courses driven by the target, mixed into 12
    # channels with positive gains, plus noise 3x the signal scale. Trained on 192 items (60 epochs, about 1 s),
    # scored on 48 unseen ones (48-way, chance 2%). Measured top-1 with data and model seeds 0 / 1 / 2: 83 / 94 /
    # 92%; untrained: 2 / 2 / 0%.
    gen = torch.Generator().manual_seed(0)
    n_chans, n_times, dim = 12, 40, 16
    mixing = torch.rand(n_chans, 4, generator=gen)
    waves = torch.randn(dim, 4, n_times, generator=gen)

    def items(n):
        y = F.normalize(torch.randn(n, dim, generator=gen), dim=-1)
        sources = torch.einsum("nd,dkt->nkt", y, waves)
        return mixing @ sources + 3.0 * torch.randn(n, n_chans, n_times, generator=gen), y

    (x_train, y_train), (x_test, y_test) = items(192), items(48)
    torch.manual_seed(0)
    model = BlurEEGEncoder(n_chans, n_times, dim, n_filters=8, hidden_dim=32)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for _ in range(60):
        for batch in torch.randperm(192, generator=gen).split(64):
            opt.zero_grad()
            clip_loss(model(x_train[batch]), y_train[batch], model.logit_scale).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        scores = F.normalize(model(x_test), dim=-1) @ y_test.T
    top1 = (scores.argmax(1) == torch.arange(48)).float().mean().item()
    assert top1 >= 0.5, f"48-way top-1 {top1:.2f}, chance 0.02"
    assert (model.spatial_filters >= 0).all()
