"""The closed-form ridge floor: exact solution, chunked accumulation, memory maps, alpha selection."""

import numpy as np
import pytest
import torch

from eegdecode.models.ridge import RidgeEncoder, time_bin_matrix


def _linear_problem(rng, n, n_chans=2, n_times=6, k=3):
    x = rng.standard_normal((n, n_chans, n_times)).astype(np.float32) * 2.0 + 0.5
    y = rng.standard_normal((n, k)).astype(np.float32)
    return x, y


def test_fit_matches_the_direct_closed_form_with_uneven_chunks():
    rng = np.random.default_rng(0)
    x, y = _linear_problem(rng, 61)
    xv, yv = _linear_problem(rng, 9)
    alpha = 0.3
    model = RidgeEncoder(2, 6, 3).fit(x, y, xv, yv, alphas=[alpha], chunk_size=7)

    # Direct solution in float64: standardise with training statistics (population std), then
    # (Z'Z / n + alpha I) W = Z'(Y - mean Y) / n.
    flat = x.reshape(61, -1).astype(np.float64)
    mean, std = flat.mean(axis=0), flat.std(axis=0)
    z = (flat - mean) / std
    w = np.linalg.solve(z.T @ z / 61 + alpha * np.eye(12), z.T @ (y - y.mean(axis=0)) / 61)
    expected = ((xv.reshape(9, -1) - mean) / std) @ w + y.mean(axis=0)

    got = model(torch.from_numpy(xv)).double().numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert model.fit_report_["val_mse"][0] == pytest.approx(np.mean((expected - yv) ** 2), rel=1e-5)
    assert model.alpha.item() == pytest.approx(alpha)


def test_chunk_size_does_not_change_the_solution():
    rng = np.random.default_rng(1)
    x, y = _linear_problem(rng, 40)
    xv, yv = _linear_problem(rng, 10)
    whole = RidgeEncoder(2, 6, 3).fit(x, y, xv, yv, alphas=[1.0], chunk_size=1000)
    chunked = RidgeEncoder(2, 6, 3).fit(x, y, xv, yv, alphas=[1.0], chunk_size=3)
    torch.testing.assert_close(whole.coef, chunked.coef, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(whole.feature_mean, chunked.feature_mean, atol=1e-6, rtol=1e-6)


def test_float16_memory_map_gives_the_same_fit_as_its_float32_copy(tmp_path):
    rng = np.random.default_rng(2)
    x, y = _linear_problem(rng, 50)
    xv, yv = _linear_problem(rng, 10)
    stored = np.lib.format.open_memmap(tmp_path / "eeg.npy", mode="w+", dtype=np.float16, shape=x.shape)
    stored[:] = x
    stored.flush()
    mapped = np.load(tmp_path / "eeg.npy", mmap_mode="r")
    from_map = RidgeEncoder(2, 6, 3).fit(mapped, y, xv, yv, alphas=[0.5], chunk_size=16)
    from_copy = RidgeEncoder(2, 6, 3).fit(np.asarray(mapped, dtype=np.float32), y, xv, yv, alphas=[0.5])
    torch.testing.assert_close(from_map.coef, from_copy.coef, atol=1e-6, rtol=1e-5)


def test_time_bins_average_consecutive_samples():
    model = RidgeEncoder(1, 10, 2, time_bin=4)
    pooled = model.flatten_features(torch.arange(10.0).reshape(1, 1, 10))
    torch.testing.assert_close(pooled, torch.tensor([[1.5, 5.5, 8.5]]))  # last bin: samples 8 and 9
    assert model.n_features == 3
    assert time_bin_matrix(250, 5).shape == (250, 50)


def _retrieval_problem(rng, mixing, n_concepts, reps=4, noise=12.0):
    concepts = rng.standard_normal((n_concepts, mixing.shape[0])).astype(np.float32)
    y = np.repeat(concepts, reps, axis=0)
    x = y @ mixing + noise * rng.standard_normal((len(y), mixing.shape[1]))
    return x.reshape(len(y), 8, 30).astype(np.float32), y


def test_alpha_is_chosen_on_validation_and_generalises_to_new_concepts():
    # 240 features, 120 training trials and strong noise: the least-regularised fit over-fits, the heaviest
    # predicts the mean; validation must pick something in between.
    rng = np.random.default_rng(0)
    mixing = rng.standard_normal((16, 240))
    x, y = _retrieval_problem(rng, mixing, 30)
    xv, yv = _retrieval_problem(rng, mixing, 10)
    model = RidgeEncoder(8, 30, 16).fit(x, y, xv, yv)
    report = model.fit_report_
    best = report["alphas"].index(report["alpha"])
    assert report["n_gallery"] == 10
    assert report["val_top1"][best] == max(report["val_top1"])
    assert 0 < best < len(report["alphas"]) - 1
    assert report["val_mse"][best] < report["val_mse"][0]
    assert report["val_top1"][best] >= 0.5  # chance is 1 / 10

    by_mse = RidgeEncoder(8, 30, 16).fit(x, y, xv, yv, criterion="mse")
    assert by_mse.fit_report_["alpha"] == report["alphas"][int(np.argmin(report["val_mse"]))]

    # Unseen concepts: top-1 among 10 well above chance with the fitted forward.
    xt, yt = _retrieval_problem(rng, mixing, 10, reps=1)
    predictions = torch.nn.functional.normalize(model(torch.from_numpy(xt)), dim=1)
    gallery = torch.nn.functional.normalize(torch.from_numpy(yt), dim=1)
    accuracy = (predictions @ gallery.T).argmax(dim=1).eq(torch.arange(10)).float().mean().item()
    assert accuracy >= 0.5


def test_forward_before_fit_is_refused():
    with pytest.raises(RuntimeError, match="call fit"):
        RidgeEncoder(2, 6, 3)(torch.randn(1, 2, 6))


def test_bad_fit_arguments_are_explained():
    rng = np.random.default_rng(3)
    x, y = _linear_problem(rng, 10)
    model = RidgeEncoder(2, 6, 3)
    with pytest.raises(ValueError, match="criterion"):
        model.fit(x, y, x, y, criterion="r2")
    with pytest.raises(ValueError, match="alphas"):
        model.fit(x, y, x, y, alphas=[1.0, -1.0])
    with pytest.raises(ValueError, match=r"training targets: expected shape \(10, 3\), found \(10, 4\)"):
        model.fit(x, np.zeros((10, 4)), x, y)
    with pytest.raises(ValueError, match=r"validation EEG: expected shape \(n, 2, 6\)"):
        model.fit(x, y, x[:, :1], y)
    with pytest.raises(ValueError, match="time_bin"):
        RidgeEncoder(2, 6, 3, time_bin=7)
