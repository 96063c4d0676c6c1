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


def _relative(a, b) -> float:
    return float(np.linalg.norm(np.asarray(a, dtype=np.float64) - b) / np.linalg.norm(b))


@pytest.mark.parametrize("n_train", [30, 90])  # fewer and more trials than the 48 features
def test_dual_and_primal_solvers_give_the_same_fit_and_the_same_alpha(n_train):
    rng = np.random.default_rng(4)
    mixing = rng.standard_normal((5, 48))
    x = (rng.standard_normal((n_train, 5)) @ mixing + 3 * rng.standard_normal((n_train, 48))).astype(
        np.float32
    )
    y = rng.standard_normal((n_train, 5)).astype(np.float32)
    xv, yv = x[:12] + rng.standard_normal((12, 48)).astype(np.float32), y[:12]

    def fit(solver, **options):
        model = RidgeEncoder(4, 12, 5)
        return model.fit(
            x.reshape(-1, 4, 12), y, xv.reshape(-1, 4, 12), yv, chunk_size=7, solver=solver, **options
        )

    def exact(alpha):  # float64 closed form on the standardised features
        z = (x - x.mean(axis=0, dtype=np.float64)) / x.std(axis=0, dtype=np.float64)
        centred = y - y.mean(axis=0, dtype=np.float64)
        return np.linalg.solve(z.T @ z / n_train + alpha * np.eye(48), z.T @ centred / n_train)

    # At a moderate alpha the two forms agree to float32 accuracy.
    primal, dual = fit("primal", alphas=[1.0]), fit("dual", alphas=[1.0])
    assert _relative(dual.coef, primal.coef.double().numpy()) < 1e-6
    assert _relative(dual.coef, exact(1.0)) < 1e-6
    # Over the default grid: the same validation scores, hence the same alpha, and the same solution there
    # (both within float32 rounding, amplified by the conditioning at small alpha, of the float64 one).
    primal, dual = fit("primal"), fit("dual")
    assert primal.fit_report_["alpha"] == dual.fit_report_["alpha"]
    assert primal.fit_report_["val_top1"] == dual.fit_report_["val_top1"]
    np.testing.assert_allclose(dual.fit_report_["val_mse"], primal.fit_report_["val_mse"], rtol=1e-5)
    reference = exact(primal.fit_report_["alpha"])
    assert _relative(primal.coef, reference) < 5e-6
    assert _relative(dual.coef, reference) < 5e-6
    assert (primal.fit_report_["solver"], dual.fit_report_["solver"]) == ("primal", "dual")
    assert fit("auto", alphas=[1.0]).fit_report_["solver"] == ("dual" if n_train < 48 else "primal")


def test_an_unknown_solver_is_refused():
    rng = np.random.default_rng(5)
    x, y = _linear_problem(rng, 10)
    with pytest.raises(ValueError, match=r"solver: 'svd'; allowed values are \['auto', 'primal', 'dual'\]"):
        RidgeEncoder(2, 6, 3).fit(x, y, x, y, solver="svd")


_TINY_FIT = """
import resource, time, numpy as np, torch
from eegdecode.models.ridge import RidgeEncoder
class Lazy:  # rows read by slices only, as the trainer's lazy trial view
    def __init__(self, a): self.a, self.shape = a, a.shape
    def __len__(self): return len(self.a)
    def __getitem__(self, sl): return self.a[sl]
rng = np.random.default_rng(0)
x = rng.standard_normal((960, 63, 250), dtype=np.float32).astype(np.float16)
y = rng.standard_normal((960, 1024), dtype=np.float32)
xv, yv = x[:24].astype(np.float32), y[:24]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
model = RidgeEncoder(63, 250, 1024).fit(Lazy(x), y, xv, yv)
print(time.perf_counter() - start, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024,
      model.fit_report_["solver"])
"""


def test_the_default_fits_a_tiny_preset_sized_subject_in_seconds():
    # 960 trials x 15,750 features (the simulator's `tiny` preset at time_bin=1): the primal form would need a
    # 15,750 x 15,750 eigendecomposition (over 10 minutes, ~4 GB); the dual one takes seconds and little memory.
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", _TINY_FIT], env=env, capture_output=True, text=True, timeout=300, check=True
    )
    seconds, extra_mib, solver = done.stdout.split()
    assert solver == "dual"
    assert float(seconds) < 60
    assert float(extra_mib) < 1024  # peak resident memory added by the fit (the primal needs ~4 GB)
