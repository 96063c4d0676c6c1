"""Contrastive and combined losses: hand-computed values, the clamp, gradients, seed form, label masking, presets."""

import math

import pytest
import torch
import torch.nn.functional as F

from eegdecode.training.losses import (
    LOGIT_SCALE_INIT,
    LOSS_PRESETS,
    EEGClipLoss,
    MMDMix,
    build_loss,
    clip_loss,
    mmd_loss,
    seed_clip_loss,
)


def test_two_by_two_by_hand():
    # x = [[1, 0], [1, 1]] normalises to [[1, 0], [c, c]] with c = 1/sqrt(2); y = identity; exp(0) = 1.
    # Similarities S = [[1, 0], [c, c]].
    #   x -> y (rows):    row 0 logits [1, 0], target 0: log(1 + e^-1); row 1 logits [c, c], target 1: log 2
    #   y -> x (columns): col 0 [1, c], target 0: log(1 + e^(c - 1)); col 1 [0, c], target 1: log(1 + e^-c)
    c = 1 / math.sqrt(2)
    rows = (math.log(1 + math.exp(-1)) + math.log(2)) / 2
    cols = (math.log(1 + math.exp(c - 1)) + math.log(1 + math.exp(-c))) / 2
    expected = (rows + cols) / 2  # (0.503204 + 0.479110) / 2 = 0.491157
    x = torch.tensor([[1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    y = torch.eye(2, dtype=torch.float64)
    assert clip_loss(x, y, 0.0).item() == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(0.491157, abs=1e-6)


def test_perfect_alignment_with_large_scale_is_near_zero():
    x = torch.eye(8, dtype=torch.float64) * 5.0
    # Each row: logits 100 on the diagonal, 0 elsewhere -> log(1 + 7 e^-100).
    loss = clip_loss(x, torch.eye(8, dtype=torch.float64), math.log(100.0))
    assert loss.item() == pytest.approx(math.log1p(7 * math.exp(-100)), abs=1e-15)
    assert loss.item() < 1e-40


def test_clamp_at_100():
    torch.manual_seed(0)
    x, y = torch.randn(16, 32, dtype=torch.float64), torch.randn(16, 32, dtype=torch.float64)
    at_max = clip_loss(x, y, math.log(100.0))
    assert clip_loss(x, y, 10.0).item() == pytest.approx(at_max.item(), abs=1e-12)
    assert clip_loss(x, y, 10.0, max_scale=None).item() != pytest.approx(at_max.item(), abs=1e-3)
    # Below the clamp the multiplier is exp(logit_scale): compare with the explicit formula.
    logits = math.exp(2.0) * F.normalize(x, dim=-1) @ F.normalize(y, dim=-1).T
    manual = (F.cross_entropy(logits, torch.arange(16)) + F.cross_entropy(logits.T, torch.arange(16))) / 2
    assert clip_loss(x, y, 2.0).item() == pytest.approx(manual.item(), abs=1e-12)


def test_gradient_reaches_logit_scale_and_embeddings_but_not_past_clamp():
    torch.manual_seed(1)
    x = torch.randn(8, 16, requires_grad=True)
    y = torch.randn(8, 16)
    logit_scale = torch.nn.Parameter(torch.tensor(LOGIT_SCALE_INIT))
    clip_loss(x, y, logit_scale).backward()
    assert logit_scale.grad is not None and logit_scale.grad.abs().item() > 1e-6
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum().item() > 0
    clamped = torch.nn.Parameter(torch.tensor(10.0))
    clip_loss(x.detach(), y, clamped).backward()
    assert clamped.grad.item() == 0.0


def test_seed_form_uses_raw_multiplier_and_unnormalised_eeg():
    x = torch.tensor([[2.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    y = torch.tensor([[3.0, 0.0], [0.0, 3.0]], dtype=torch.float64)
    # Seed: targets normalised to I, EEG kept at norm 2, multiplier 0.5 -> logits I -> log(1 + e^-1).
    assert seed_clip_loss(x, y, 0.5).item() == pytest.approx(math.log1p(math.exp(-1)), abs=1e-12)
    # Standard: cosines I, multiplier e^0.5 -> log(1 + e^-e^0.5).
    assert clip_loss(x, y, 0.5).item() == pytest.approx(math.log1p(math.exp(-math.exp(0.5))), abs=1e-12)
    # The seed form depends on the EEG norm and not on the target norm; the standard form on neither.
    assert seed_clip_loss(3 * x, y, 0.5).item() != pytest.approx(seed_clip_loss(x, y, 0.5).item(), abs=1e-3)
    assert seed_clip_loss(x, 7 * y, 0.5).item() == pytest.approx(seed_clip_loss(x, y, 0.5).item(), abs=1e-12)
    assert clip_loss(3 * x, 7 * y, 0.5).item() == pytest.approx(clip_loss(x, y, 0.5).item(), abs=1e-12)


def test_label_masking_only_matters_with_duplicates():
    # x = y = [[1, 0], [1, 0], [0, 1]], labels [0, 0, 1], multiplier 1. S = [[1, 1, 0], [1, 1, 0], [0, 0, 1]] is
    # symmetric, so row and column cross-entropies agree.
    #   unmasked: rows 0, 1: log(2e + 1) - 1; row 2: log(e + 2) - 1
    #   masked:   rows 0, 1 drop their duplicate -> log(1 + e^-1); row 2 unchanged
    e = math.e
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 1])
    unmasked = (2 * (math.log(2 * e + 1) - 1) + math.log(e + 2) - 1) / 3
    masked = (2 * math.log1p(math.exp(-1)) + math.log(e + 2) - 1) / 3
    assert clip_loss(x, x, 0.0).item() == pytest.approx(unmasked, abs=1e-12)
    assert clip_loss(x, x, 0.0, labels=labels).item() == pytest.approx(masked, abs=1e-12)
    torch.manual_seed(2)
    a, b = torch.randn(6, 4, dtype=torch.float64), torch.randn(6, 4, dtype=torch.float64)
    distinct = torch.arange(6)
    assert torch.equal(clip_loss(a, b, 1.0, labels=distinct), clip_loss(a, b, 1.0))
    with pytest.raises(ValueError, match="labels must have shape"):
        clip_loss(a, b, 1.0, labels=torch.arange(5))


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match="same shape"):
        clip_loss(torch.zeros(4, 3), torch.zeros(5, 3), 0.0)
    with pytest.raises(ValueError, match="2-D"):
        clip_loss(torch.zeros(4), torch.zeros(4), 0.0)


def test_eeg_clip_loss_combines_terms():
    torch.manual_seed(3)
    eeg, img, txt = (torch.randn(10, 8, dtype=torch.float64) for _ in range(3))
    loss_fn = build_loss("retrieval")
    total, parts = loss_fn(eeg, img, LOGIT_SCALE_INIT, txt=txt)
    expected = 0.99 * clip_loss(eeg, img, LOGIT_SCALE_INIT) + 0.01 * clip_loss(eeg, txt, LOGIT_SCALE_INIT)
    assert total.item() == pytest.approx(expected.item(), abs=1e-12)
    assert set(parts) == {"img", "txt", "total"} and not parts["total"].requires_grad
    with pytest.raises(ValueError, match="txt embeddings are required"):
        loss_fn(eeg, img, LOGIT_SCALE_INIT)
    image_only, parts = build_loss("retrieval", w_txt=0.0)(eeg, img, LOGIT_SCALE_INIT)
    assert set(parts) == {"img", "total"}
    assert image_only.item() == pytest.approx(0.99 * clip_loss(eeg, img, LOGIT_SCALE_INIT).item(), abs=1e-12)


def test_generation_preset_is_atm_recipe_with_raw_mse():
    torch.manual_seed(4)
    img = 3.0 * torch.randn(6, 8, dtype=torch.float64)
    eeg = img + 1.0  # raw MSE is exactly 1
    total, parts = build_loss("generation")(eeg, img, LOGIT_SCALE_INIT)
    assert parts["mse"].item() == pytest.approx(1.0, abs=1e-12)
    expected = 10 * (0.9 * 1.0 + 0.1 * clip_loss(eeg, img, LOGIT_SCALE_INIT).item())
    assert total.item() == pytest.approx(expected, abs=1e-10)
    _, normalised = build_loss("generation", mse_normalise=True)(eeg, img, LOGIT_SCALE_INIT)
    manual = F.mse_loss(F.normalize(eeg, dim=-1), F.normalize(img, dim=-1)).item()
    assert normalised["mse"].item() == pytest.approx(manual, abs=1e-12) and manual < 0.5


def test_seed_preset_uses_seed_form():
    torch.manual_seed(5)
    eeg, img, txt = (torch.randn(6, 8, dtype=torch.float64) for _ in range(3))
    total, _ = build_loss("seed-loss")(eeg, img, LOGIT_SCALE_INIT, txt=txt)
    expected = 0.99 * seed_clip_loss(eeg, img, LOGIT_SCALE_INIT) + 0.01 * seed_clip_loss(
        eeg, txt, LOGIT_SCALE_INIT
    )
    assert total.item() == pytest.approx(expected.item(), abs=1e-12)
    standard, _ = build_loss("retrieval")(eeg, img, LOGIT_SCALE_INIT, txt=txt)
    assert abs(total.item() - standard.item()) > 1e-3


def test_presets_and_validation():
    assert LOSS_PRESETS["retrieval"]["w_img"] == 0.99 and LOSS_PRESETS["retrieval"]["w_txt"] == 0.01
    assert LOSS_PRESETS["generation"]["scale"] == 10.0 and LOSS_PRESETS["generation"]["w_mse"] == 0.9
    assert LOSS_PRESETS["seed-loss"]["form"] == "seed"
    assert build_loss("generation", scale=1.0).config()["scale"] == 1.0
    with pytest.raises(ValueError, match="preset"):
        build_loss("contrastive")
    with pytest.raises(ValueError, match="loss override"):
        build_loss("retrieval", w_image=1.0)
    with pytest.raises(ValueError, match="form"):
        EEGClipLoss(form="raw")
    with pytest.raises(ValueError, match="w_mse"):
        EEGClipLoss(w_mse=-1.0)
    with pytest.raises(ValueError, match="at least one"):
        EEGClipLoss(w_img=0.0, w_txt=0.0, w_mse=0.0)


def test_half_precision_inputs_are_computed_in_float32():
    torch.manual_seed(6)
    x, y = torch.randn(32, 16).bfloat16(), torch.randn(32, 16).bfloat16()
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        loss = clip_loss(x, y, math.log(100.0))
        total, _ = build_loss("generation")(x, y, math.log(100.0))
    assert loss.dtype == torch.float32 and total.dtype == torch.float32
    assert loss.item() == pytest.approx(clip_loss(x.float(), y.float(), math.log(100.0)).item(), abs=1e-5)


# ---- temperature forms and one-sided normalisation (UBP, SAMGA, NeuroBridge) -------------------------------------


def _old_standard_loss(x, y, logit_scale, max_scale=100.0):
    """The standard form as written before the temperature options existed (the default must equal it)."""
    x, y = F.normalize(x, dim=-1), F.normalize(y, dim=-1)
    logits = torch.as_tensor(logit_scale, dtype=x.dtype).exp().clamp(max=max_scale) * (x @ y.T)
    targets = torch.arange(len(x))
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets))


def test_softplus_with_target_normalisation_by_hand():
    # EEG x = [[1, 0], [1, 1]] kept as it is, targets y = I; softplus(0) = ln 2, so the logits are ln 2 * x:
    #   rows:    [ln2, 0] target 0 -> log(1 + 1/2);   [ln2, ln2] target 1 -> log 2
    #   columns: [ln2, ln2] target 0 -> log 2;         [0, ln2] target 1 -> log(1 + 1/2)
    # mean = (ln 1.5 + ln 2) / 2 = ln(3) / 2 = 0.549306
    x = torch.tensor([[1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    y = 5.0 * torch.eye(2, dtype=torch.float64)  # the target side is normalised: its norm must not matter
    got = clip_loss(x, y, 0.0, normalise="target", temperature="softplus")
    assert got.item() == pytest.approx(math.log(3) / 2, abs=1e-12)
    # both sides normalised instead: the standard 2 x 2 case with multiplier ln 2 instead of 1
    c = 1 / math.sqrt(2)
    m = math.log(2)
    rows = (math.log1p(math.exp(-m)) + math.log(2)) / 2
    cols = (math.log1p(math.exp(m * c - m)) + math.log1p(math.exp(-m * c))) / 2
    assert clip_loss(x, y, 0.0, temperature="softplus").item() == pytest.approx((rows + cols) / 2, abs=1e-12)


def test_softplus_is_unclamped_and_trains_its_parameter():
    x = torch.tensor([[2.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    y = torch.eye(2, dtype=torch.float64)
    # UBP's / SAMGA's start: softplus(ln(1 / 0.07)) = ln(1 + 1 / 0.07) = 2.7269; logits 2m on the diagonal
    m = math.log1p(1 / 0.07)
    got = clip_loss(x, y, LOGIT_SCALE_INIT, normalise="target", temperature="softplus")
    assert got.item() == pytest.approx(math.log1p(math.exp(-2 * m)), abs=1e-12) and m == pytest.approx(
        2.72692, 1e-5
    )
    # no clamp at 100: softplus(200) = 200
    big = clip_loss(
        x, torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64), 200.0, temperature="softplus"
    )
    assert big.item() == pytest.approx(200.0, rel=1e-9)  # each row: log(1 + e^{200}) ~ 200 (cosines 0 / 1)
    scale = torch.nn.Parameter(torch.tensor(LOGIT_SCALE_INIT, dtype=torch.float64))
    clip_loss(torch.randn(6, 4, dtype=torch.float64), torch.randn(6, 4, dtype=torch.float64), scale,
              temperature="softplus").backward()  # fmt: skip
    assert scale.grad is not None and scale.grad.abs().item() > 0


def test_fixed_temperature_ignores_the_parameter():
    # NeuroBridge-like: EEG unnormalised (norm 2), targets normalised, temperature 0.07: logits (2 / 0.07) I
    x = torch.tensor([[2.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    y = 3.0 * torch.eye(2, dtype=torch.float64)
    scale = torch.nn.Parameter(torch.tensor(1.0, dtype=torch.float64))
    got = clip_loss(x, y, scale, normalise="target", temperature=0.07)
    assert got.item() == pytest.approx(math.log1p(math.exp(-2 / 0.07)), abs=1e-15)
    assert not got.requires_grad  # the parameter is not in the graph
    assert clip_loss(x, y, 5.0, normalise="target", temperature=0.07).item() == got.item()


def test_fixed_exp_and_softplus_use_the_initial_scale_not_the_encoders():
    torch.manual_seed(7)
    eeg, img = torch.randn(8, 6, dtype=torch.float64), torch.randn(8, 6, dtype=torch.float64)
    for form in ("exp", "softplus"):
        fixed = build_loss("retrieval", w_img=1.0, w_txt=0.0, temperature=form, learn_temperature=False,
                           normalise="target")  # fmt: skip
        assert not fixed.learns_temperature
        expected = clip_loss(eeg, img, LOGIT_SCALE_INIT, normalise="target", temperature=form)
        for scale in (0.0, 3.0, torch.tensor(-1.0)):
            assert torch.equal(fixed(eeg, img, scale)[0], expected)
    # exp at the initial scale is temperature 0.07
    exp_fixed = build_loss("retrieval", w_txt=0.0, learn_temperature=False)(eeg, img, 9.0)[0]
    assert exp_fixed.item() == pytest.approx(build_loss("retrieval", w_txt=0.0, temperature=0.07)(eeg, img, 9.0)[0].item(),
                                             abs=1e-12)  # fmt: skip
    assert build_loss("retrieval").learns_temperature and build_loss("seed-loss").learns_temperature
    assert not build_loss("retrieval", temperature=0.07).learns_temperature


def test_the_default_is_the_old_standard_form_bit_for_bit():
    torch.manual_seed(8)
    eeg = torch.randn(16, 8, requires_grad=True)
    img, txt = torch.randn(16, 8), torch.randn(16, 8)
    scale = torch.nn.Parameter(torch.tensor(LOGIT_SCALE_INIT))
    total, _ = build_loss("retrieval")(eeg, img, scale, txt=txt)
    total.backward()
    grads = eeg.grad.clone(), scale.grad.clone()
    eeg.grad, scale.grad = None, None
    old = 0.99 * _old_standard_loss(eeg, img, scale) + 0.01 * _old_standard_loss(eeg, txt, scale)
    old = torch.zeros((), dtype=torch.float32) + old  # the same sum order as EEGClipLoss.forward
    old.backward()
    assert torch.equal(total, old) and torch.equal(grads[0], eeg.grad) and torch.equal(grads[1], scale.grad)
    assert torch.equal(clip_loss(eeg, img, 10.0), _old_standard_loss(eeg, img, 10.0))
    cfg = build_loss("retrieval").config()
    assert (cfg["temperature"], cfg["learn_temperature"], cfg["normalise"]) == ("exp", True, "both")


def test_temperature_options_are_checked():
    for bad, match in (
        ({"temperature": "sigmoid"}, r"Invalid value for temperature: 'sigmoid'; expected one of \['exp', "),
        ({"temperature": 0}, "Invalid value for temperature: 0;"),
        ({"temperature": -0.07}, "Invalid value for temperature: -0.07"),
        ({"temperature": True}, "Invalid value for temperature: True"),
        (
            {"normalise": "eeg"},
            r"Invalid value for normalise: 'eeg'; allowed values are \['both', 'target'\]",
        ),
        ({"learn_temperature": "no"}, "Invalid value for learn_temperature: 'no'; expected true or false"),
        ({"form": "seed", "temperature": "softplus"}, "form 'seed' fixes its own temperature"),
        ({"form": "seed", "normalise": "target"}, "form 'seed' fixes its own temperature"),
    ):
        with pytest.raises(ValueError, match=match):
            build_loss("retrieval", **bad)
    assert build_loss("retrieval", temperature=1).temperature == 1.0


def test_mmd_mix_weights_the_two_losses():
    torch.manual_seed(9)
    eeg, img = torch.randn(12, 6, dtype=torch.float64), torch.randn(12, 6, dtype=torch.float64)
    contrastive = build_loss("retrieval", w_img=1.0, w_txt=0.0)
    total, parts = MMDMix(0.25, contrastive)(eeg, img, LOGIT_SCALE_INIT)
    mmd, _ = mmd_loss(eeg, img)
    c, _ = contrastive(eeg, img, LOGIT_SCALE_INIT)
    assert total.item() == pytest.approx(0.25 * mmd.item() + 0.75 * c.item(), abs=1e-12)
    assert set(parts) == {"img", "mmd", "mmd_weight", "total"} and parts["mmd_weight"].item() == 0.25
    with pytest.raises(ValueError, match=r"MMD weight must be in \[0, 1\]; found 1.5"):
        MMDMix(1.5, contrastive)
