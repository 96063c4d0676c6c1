"""Heads of a single target: NeuroBridge's linear projectors and the learned blur-variant mixture (Liu et al.):
shapes, parameter counts, the uniform start (= the ``mean`` blur rule), learning on a toy problem, round trips."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from eegdecode.models import AlignedEncoder, BlurMixer, SingleTargetHead, count_parameters
from eegdecode.training.losses import build_loss


def test_linear_head_projects_both_sides_with_bias_and_counts_its_parameters():
    torch.manual_seed(0)
    head = SingleTargetHead(target_dim=12, eeg_dim=16, embed_dim=8).eval()
    eeg, targets = torch.randn(5, 16), torch.randn(5, 12)
    eeg_side, target_side = head(eeg, targets)
    assert eeg_side.shape == target_side.shape == (5, 8)
    torch.testing.assert_close(eeg_side, eeg @ head.eeg.weight.T + head.eeg.bias)
    torch.testing.assert_close(target_side, targets @ head.target.weight.T + head.target.bias)
    assert head.mixer is None
    assert count_parameters(head) == (16 * 8 + 8) + (12 * 8 + 8)  # NeuroBridge: two nn.Linear(., 512)
    with pytest.raises(ValueError, match=r"targets: expected shape \(batch, 12\), found \(5, 11\)"):
        head.encode_targets(torch.randn(5, 11))
    with pytest.raises(ValueError, match=r"eeg_embedding: expected shape \(batch, 16\), found \(5, 12\)"):
        head.encode_eeg(torch.randn(5, 12))
    with pytest.raises(ValueError, match="eeg_dim .16. must equal target_dim .12."):
        SingleTargetHead(12, 16, n_variants=3)
    with pytest.raises(ValueError, match="embed_dim: 0"):
        SingleTargetHead(12, 12, embed_dim=0)
    with pytest.raises(ValueError, match="needs embed_dim, n_variants or both"):
        SingleTargetHead(12, 12)


def test_the_blur_mixer_starts_as_the_mean_of_the_variants():
    """Zero logits: softmax 1/V for every variant and dimension, so the mixture is the ``mean`` rule's target
    (``np.mean`` over the variants, as :func:`eegdecode.training.targets.load_target_arrays` computes it)."""
    rng = np.random.default_rng(0)
    variants = rng.standard_normal((7, 12, 20)).astype(np.float32)  # (batch, V, dim)
    mixer = BlurMixer(12, 20)
    torch.testing.assert_close(mixer.weights(), torch.full((12, 20), 1 / 12))
    torch.testing.assert_close(mixer.level_weights(), torch.full((12,), 1 / 12))
    with torch.no_grad():
        mixed = mixer(torch.from_numpy(variants)).numpy()
    np.testing.assert_allclose(mixed, np.mean(variants, axis=1), rtol=0, atol=1e-6)
    assert count_parameters(mixer) == 12 * 20  # a weight per level and per dimension
    with pytest.raises(ValueError, match=r"expected shape \(batch, 12, 20\), found \(7, 11, 20\)"):
        mixer(torch.randn(7, 11, 20))
    with pytest.raises(ValueError, match="n_variants: 1"):
        BlurMixer(1, 20)


def test_the_mixer_weights_each_dimension_on_its_own():
    mixer = BlurMixer(3, 2)
    with torch.no_grad():
        mixer.logits.copy_(torch.tensor([[50.0, 0.0], [0.0, 0.0], [0.0, 50.0]]))
    x = torch.arange(12.0).reshape(2, 3, 2)
    torch.testing.assert_close(mixer(x), torch.stack([x[:, 0, 0], x[:, 2, 1]], dim=1))
    torch.testing.assert_close(mixer.weights().sum(0), torch.ones(2))


def test_the_mixer_learns_to_weight_the_informative_level():
    """A toy problem: the EEG is a noisy copy of level 0's features; levels 1 to 3 are unrelated noise. Trained
    with the encoder through the retrieval loss, the mixture moves onto level 0."""
    gen = torch.Generator().manual_seed(0)
    n, dim, levels = 256, 16, 4
    signal = torch.randn(n, dim, generator=gen)
    variants = torch.randn(n, levels, dim, generator=gen)
    variants[:, 0] = signal
    eeg = signal + 0.3 * torch.randn(n, dim, generator=gen)
    torch.manual_seed(0)
    encoder = torch.nn.Linear(dim, dim)
    head = SingleTargetHead(dim, dim, n_variants=levels)
    scale = torch.nn.Parameter(torch.tensor(np.log(1 / 0.07), dtype=torch.float32))
    loss_fn = build_loss("retrieval", w_txt=0.0)
    opt = torch.optim.Adam([*encoder.parameters(), *head.parameters(), scale], lr=0.03)
    for _ in range(60):
        loss, _ = loss_fn(head.encode_eeg(encoder(eeg)), head.encode_targets(variants), scale)
        opt.zero_grad()
        loss.backward()
        opt.step()
    w = head.mixer.level_weights().detach()
    assert w[0] > 0.5 and w[0] > 2 * w[1:].max(), w
    assert abs(float(w.sum()) - 1) < 1e-6


@pytest.mark.parametrize("options", [{"embed_dim": 8}, {"n_variants": 3}, {"embed_dim": 8, "n_variants": 3}])
def test_single_target_head_round_trip_inside_an_aligned_encoder(tmp_path, options):
    class Enc(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(6, 12)
            self.logit_scale = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x, subject_idx=None):
            return self.lin(x)

    def build(seed):
        torch.manual_seed(seed)
        model = AlignedEncoder(Enc(), SingleTargetHead(12, 12, **options))
        with torch.no_grad():
            if model.head.mixer is not None:
                model.head.mixer.logits.normal_()
        return model.eval()

    model, other = build(0), build(1)
    path = tmp_path / "m.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    other.load_state_dict(load_file(str(path)))
    targets = torch.randn(4, 3, 12) if "n_variants" in options else torch.randn(4, 12)
    x = torch.randn(4, 6)
    with torch.no_grad():
        assert torch.equal(model(x), other(x))
        assert torch.equal(model.encode_targets(targets), other.encode_targets(targets))
    keys = set(model.state_dict())
    assert ("head.mixer.logits" in keys) == ("n_variants" in options)
    assert ("head.target.weight" in keys) == ("embed_dim" in options)
