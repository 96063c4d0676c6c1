"""SAMGA's per-subject layer router and the multi-target head: initial weights, mixing, gradients, round trips."""

import math

import pytest
import torch
from safetensors.torch import load_file, save_file

from eegdecode.models import LayerRouter, MultiTargetHead, centred_layer_logits, count_parameters


def test_centred_logits_reproduce_samgas_profile():
    assert centred_layer_logits([20, 24, 28, 32, 36], 28).tolist() == [-2.0, -1.0, 0.0, -1.0, -2.0]
    # The step is the smallest gap between sorted layers, whatever the order given.
    assert centred_layer_logits([36, 20, 28], 28, strength=0.5).tolist() == [-0.5, -0.5, 0.0]
    assert centred_layer_logits([12], 28).tolist() == [-16.0]
    with pytest.raises(ValueError, match="layer_ids"):
        centred_layer_logits([], 28)


def test_initial_weights_are_the_softmax_of_the_centred_profile_for_every_subject():
    router = LayerRouter(5, n_subjects=3).eval()
    profile = torch.tensor([-2.0, -1.0, 0.0, -1.0, -2.0])
    expected = torch.exp(profile) / torch.exp(profile).sum()
    torch.testing.assert_close(router.weights(), expected)
    torch.testing.assert_close(router.weights(torch.tensor([0, 1, 2])), expected.expand(3, 5))
    assert router.weights()[2].item() == pytest.approx(1 / (1 + 2 * math.exp(-1) + 2 * math.exp(-2)))
    # Other layer counts start uniform unless told otherwise; a temperature flattens the profile.
    torch.testing.assert_close(LayerRouter(4).weights(), torch.full((4,), 0.25))
    warm = LayerRouter(5, temperature=2.0).weights()
    torch.testing.assert_close(warm, torch.softmax(profile / 2, dim=0))


def test_combine_is_the_weighted_sum_with_each_samples_own_subject_weights():
    torch.manual_seed(0)
    router = LayerRouter(3, n_subjects=2, init_logits=[0.0, 1.0, 2.0]).eval()
    with torch.no_grad():
        router.subject_bias[1] = torch.tensor([3.0, 0.0, -3.0])
    targets = torch.randn(4, 3, 6)
    subject = torch.tensor([0, 1, 1, 0])
    mixed = router.combine(targets, subject)
    assert mixed.shape == (4, 6)
    for i in range(4):
        w = torch.softmax(router.global_logits + router.subject_bias[subject[i]], dim=0)
        torch.testing.assert_close(mixed[i], (w[:, None] * targets[i]).sum(0))
    # Without subjects: the global weights for everyone (SAMGA's evaluation mode, unseen subjects).
    w = torch.softmax(router.global_logits, dim=0)
    torch.testing.assert_close(router(targets), (w[None, :, None] * targets).sum(1))


def test_gradients_reach_the_global_logits_and_only_the_biases_of_subjects_in_the_batch():
    torch.manual_seed(1)
    router = LayerRouter(5, n_subjects=4, subject_dropout=0.0).train()
    targets = torch.randn(6, 5, 8)
    router.combine(targets, torch.tensor([1, 1, 3, 1, 3, 3])).square().mean().backward()
    assert router.global_logits.grad.abs().sum() > 0
    bias_grad = router.subject_bias.grad.abs().sum(dim=1)
    assert bias_grad[0] == 0 and bias_grad[2] == 0
    assert bias_grad[1] > 0 and bias_grad[3] > 0


def test_subject_dropout_acts_in_training_only_and_is_seeded():
    router = LayerRouter(5, n_subjects=2, subject_dropout=1.0)
    with torch.no_grad():
        router.subject_bias.fill_(1.0)
        router.subject_bias[1, 0] = 5.0
    subject = torch.tensor([1, 1])
    router.train()
    torch.testing.assert_close(router.weights(subject), router.weights().expand(2, 5))  # every bias dropped
    router.eval()
    assert (router.weights(subject) - router.weights()).abs().max() > 0.1
    router.subject_dropout = 0.5
    router.train()
    torch.manual_seed(7)
    first = router.weights(torch.ones(64, dtype=torch.long))
    torch.manual_seed(7)
    second = router.weights(torch.ones(64, dtype=torch.long))
    assert torch.equal(first, second)
    kept = (first - router.weights()).abs().amax(dim=1) > 0
    assert 0 < int(kept.sum()) < 64


def test_bad_router_inputs_are_explained():
    with pytest.raises(ValueError, match=r"init_logits: expected shape \(5,\), found \(3,\)"):
        LayerRouter(5, init_logits=[0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="subject_dropout"):
        LayerRouter(5, subject_dropout=1.5)
    router = LayerRouter(5, n_subjects=2)
    with pytest.raises(
        ValueError, match=r"layer_targets: expected shape \(batch, 5, dim\), found \(2, 4, 3\)"
    ):
        router.combine(torch.randn(2, 4, 3))
    with pytest.raises(ValueError, match=r"expected values in \[0, 1\].*found \[0, 2\]"):
        router.weights(torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="integer tensor"):
        router.weights(torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"subject: expected shape \(2,\), found \(3,\)"):
        router.combine(torch.randn(2, 5, 3), torch.tensor([0, 1, 1]))


def _head(seed=0, **options):
    torch.manual_seed(seed)
    return MultiTargetHead(5, target_dim=12, eeg_dim=16, embed_dim=8, mid_dim=10, n_subjects=3, **options)


def test_head_shapes_and_the_shared_projector_on_both_sides():
    head = _head().eval()
    eeg, targets, subject = torch.randn(4, 16), torch.randn(4, 5, 12), torch.tensor([0, 2, 2, 1])
    eeg_side, target_side = head(eeg, targets, subject)
    assert eeg_side.shape == target_side.shape == (4, 8)
    torch.testing.assert_close(eeg_side, head.shared(head.eeg(eeg)))
    layers = torch.stack([head.target_layers[i](head.target_pre(targets[:, i])) for i in range(5)], dim=1)
    torch.testing.assert_close(target_side, head.shared(head.router.combine(layers, subject)))
    # target_pre 12*10+10, five 10->8 projectors, eeg 16*8+8, shared 8*8+8, router 5 + 3*5.
    assert count_parameters(head) == 130 + 5 * 88 + 136 + 72 + 5 + 15
    with pytest.raises(
        ValueError, match=r"layer_targets: expected shape \(batch, 5, 12\), found \(4, 5, 11\)"
    ):
        head.encode_targets(torch.randn(4, 5, 11))
    with pytest.raises(ValueError, match=r"eeg_embedding: expected shape \(batch, 16\), found \(4, 15\)"):
        head.encode_eeg(torch.randn(4, 15))


def test_every_head_parameter_gets_a_gradient():
    head = _head(subject_dropout=0.0).train()
    eeg_side, target_side = head(torch.randn(6, 16), torch.randn(6, 5, 12), torch.tensor([0, 1, 2, 0, 1, 2]))
    # A cosine loss, as the contrastive one (a plain difference would cancel the shared projector's bias).
    (-torch.nn.functional.cosine_similarity(eeg_side, target_side).mean()).backward()
    assert [n for n, p in head.named_parameters() if p.grad is None or not p.grad.any()] == []


def test_head_state_dict_round_trip_and_determinism(tmp_path):
    head, other = _head(seed=0).eval(), _head(seed=1).eval()
    path = tmp_path / "head.safetensors"
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(path))
    other.load_state_dict(load_file(str(path)))
    eeg, targets, subject = torch.randn(3, 16), torch.randn(3, 5, 12), torch.tensor([2, 0, 1])
    with torch.no_grad():
        for a, b in zip(head(eeg, targets, subject), other(eeg, targets, subject)):
            assert torch.equal(a, b)
        assert torch.equal(head(eeg, targets)[1], head(eeg, targets)[1])
        assert torch.equal(_head(seed=0).eval()(eeg, targets)[1], head(eeg, targets)[1])


def test_normalised_layers_make_the_weights_impossible_to_absorb():
    """SAMGA's head (no normalisation): scaling one layer's projector by c is the same model as multiplying that
    layer's weight by c, so the loss cannot tell the weights from the projectors' scales. With ``normalize_layers``
    each projected layer is a unit vector: a projector's scale changes nothing, only the weights set the mix."""
    targets, subject = torch.randn(4, 5, 12), torch.tensor([0, 1, 2, 0])
    for normalize in (False, True):
        head = _head(normalize_layers=normalize).eval()
        with torch.no_grad():
            before = head.encode_targets(targets, subject)
            head.target_layers[2].weight.mul_(7.0)
            head.target_layers[2].bias.mul_(7.0)
            after = head.encode_targets(targets, subject)
            if normalize:
                torch.testing.assert_close(after, before)
                norms = head.project_layers(targets).norm(dim=-1)
                torch.testing.assert_close(norms, torch.ones(4, 5))
            else:
                assert (after - before).abs().max() > 0.1
    # The weights still set the mix: all weight on one layer gives that layer's unit vector.
    head = _head(normalize_layers=True, init_logits=[0.0, 0.0, 50.0, 0.0, 0.0]).eval()
    with torch.no_grad():
        layers = head.project_layers(targets)
        torch.testing.assert_close(head.router.combine(layers), layers[:, 2], atol=1e-6, rtol=0)
    # State-dict keys are those of SAMGA's head: checkpoints load either way.
    assert set(_head(normalize_layers=True).state_dict()) == set(_head().state_dict())
