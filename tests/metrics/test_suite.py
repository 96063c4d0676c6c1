"""Known answers of the whole suite with random-weight networks: identical sets, shuffled copies, rounds, FID."""

import numpy as np
import pytest
import torch
from metrics_test_helpers import SMALL_INPUTS
from scipy import linalg

from eegdecode.errors import DataFormatError
from eegdecode.metrics import MetricSuite, evaluate_tensors, parse_metrics
from eegdecode.metrics.fid import FID_WEIGHTS_FILE

FEATURE_METRICS = ("alexnet2", "alexnet5", "inceptionv3", "clip", "effnet", "swav")
TWO_WAY = ("alexnet2", "alexnet5", "inceptionv3", "clip")


def _derangement(n: int, generator: torch.Generator) -> torch.Tensor:
    while True:
        perm = torch.randperm(n, generator=generator)
        if not (perm == torch.arange(n)).any():
            return perm


def test_identical_sets_score_perfectly_at_documented_sizes(structured_images, tiny_clip):
    # Every network at its documented input size except the tiny CLIP stand-in (its tower takes 32 px).
    suite = MetricSuite(
        "published", random_weights=True, networks={"clip": tiny_clip}, input_sizes={"clip": 32}, device="cpu"
    )
    assert suite.computed_metrics == ("pixcorr", "ssim", *FEATURE_METRICS)
    images = structured_images(4, 256, seed=0)
    report = evaluate_tensors(suite, images, images.clone())
    values = report.sources["recon"].mean()
    assert values["pixcorr"] == pytest.approx(1.0, abs=1e-9)
    assert values["ssim"] == pytest.approx(1.0, abs=1e-9)
    for metric in TWO_WAY:
        assert values[metric] == 1.0, metric
    for metric in ("effnet", "swav"):
        assert values[metric] == pytest.approx(0.0, abs=1e-9), metric
    assert report.random_weight_label().startswith("RANDOM-WEIGHT OUTPUT (metric networks)")
    assert [info["input_size"] for info in report.settings["networks"].values()] == [256, 342, 32, 255, 224]


def test_shuffled_copy_gives_chance_two_way(structured_images, tiny_clip):
    # 24 images against 4 random derangements of themselves: each reconstruction's "own" ground truth is a random
    # other image, so the expected two-way score is exactly 0.5. Over 6 image seeds the worst deviation of the
    # 4-round mean was 0.063; the tolerance is 0.12. Small network inputs keep this fast.
    suite = MetricSuite(
        FEATURE_METRICS,
        random_weights=True,
        networks={"clip": tiny_clip},
        input_sizes=SMALL_INPUTS,
        device="cpu",
    )
    images = structured_images(24, 64, seed=0)
    g = torch.Generator().manual_seed(100)
    rounds = [images[_derangement(24, g)] for _ in range(4)]
    report = evaluate_tensors(suite, images, {"shuffled": rounds})
    values = report.sources["shuffled"].mean()
    for metric in TWO_WAY:
        assert abs(values[metric] - 0.5) < 0.12, (metric, values[metric])
    for metric in ("effnet", "swav"):
        assert values[metric] > 1e-3, metric
    assert any("instead of the documented" in note for note in report.notes)


def test_rounds_give_mean_and_sample_sd(structured_images):
    suite = MetricSuite("pixcorr,alexnet2", random_weights=True, input_sizes={"alexnet": 64}, device="cpu")
    images = structured_images(6, 64, seed=3)
    shuffled = images[torch.tensor([5, 0, 1, 2, 3, 4])]
    report = evaluate_tensors(suite, images, {"eeg": [images.clone(), shuffled]})
    result = report.sources["eeg"]
    first, second = (result.rounds[k].values for k in (0, 1))
    assert first["alexnet2"] == 1.0 and second["alexnet2"] < 1.0
    assert result.mean()["alexnet2"] == pytest.approx((first["alexnet2"] + second["alexnet2"]) / 2)
    assert result.sd()["pixcorr"] == pytest.approx(np.std([first["pixcorr"], second["pixcorr"]], ddof=1))
    data = report.to_dict()
    assert data["results"]["eeg"]["n_rounds"] == 2
    assert len(data["results"]["eeg"]["rounds"][1]["per_image"]["alexnet2"]) == 6
    single = evaluate_tensors(suite, images, images.clone()).sources["recon"]
    assert single.sd() == {"pixcorr": None, "alexnet2": None}


class _ChannelStats(torch.nn.Module):
    """A 6-d feature: per-channel mean and standard deviation."""

    num_features = 6

    def forward(self, images):
        return torch.cat([images.mean(dim=(2, 3)), images.std(dim=(2, 3))], dim=1).double()


def _frechet(a: np.ndarray, b: np.ndarray) -> float:
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * linalg.sqrtm(cov_a @ cov_b).real))


def test_fid_known_answers_with_an_injected_feature_network(structured_images):
    suite = MetricSuite("fid", networks={"fid": _ChannelStats()}, device="cpu", batch_size=5)
    images = structured_images(12, 32, seed=4)
    darker = (images * 0.7).clamp(0, 1)
    report = evaluate_tensors(suite, images, {"same": [images.clone()], "darker": [darker]})
    assert report.sources["same"].mean()["fid"] == pytest.approx(0.0, abs=1e-6)
    feats = [_ChannelStats()(x).numpy() for x in (images, darker)]
    assert report.sources["darker"].mean()["fid"] == pytest.approx(_frechet(*feats), rel=1e-4)
    assert any("N=12" in note and "biased" in note for note in report.notes)


def test_fid_without_local_weights_is_skipped_with_the_file_name(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    suite = MetricSuite("pixcorr,fid", device="cpu")
    assert suite.computed_metrics == ("pixcorr",)
    assert FID_WEIGHTS_FILE in suite.skipped["fid"]


def test_parse_metrics():
    assert len(parse_metrics("published")) == 8 and parse_metrics("all")[-1] == "fid"
    assert parse_metrics("EffNet-B, AlexNet(2)") == ("alexnet2", "effnet")
    with pytest.raises(ValueError, match="Invalid value for metrics: 'vgg'"):
        parse_metrics("pixcorr,vgg")


def test_bad_images_are_rejected(structured_images):
    suite = MetricSuite("pixcorr", device="cpu")
    images = structured_images(4, 32, seed=0)
    reference = suite.prepare_reference(images)
    with pytest.raises(DataFormatError, match="pair with the ground truth"):
        suite.score_round(reference, images[:3])
    with pytest.raises(DataFormatError, match=r"float32 in \[0, 1\]"):
        suite.score_round(reference, images * 255)


def test_ssim_variant_reaches_the_scores_and_bad_names_are_refused(structured_images):
    images = structured_images(3, 64, seed=0)
    rec = images.flip(-1)
    got = {
        v: evaluate_tensors(MetricSuite("ssim", ssim_variant=v, device="cpu"), images, rec).sources["recon"]
        for v in ("skimage", "legacy-columnwise")
    }
    from eegdecode.metrics import scores

    for variant, source in got.items():
        expected = scores.ssim(images, rec, variant=variant).mean()
        assert source.mean()["ssim"] == pytest.approx(expected, abs=1e-12)
    with pytest.raises(ValueError, match="ssim_variant.*'2d'"):
        MetricSuite("ssim", ssim_variant="2d")
