"""Occlusion profiles on simulated data: they find the simulator's components and its posterior sources."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "report"))
from report_test_helpers import build_runs  # noqa: E402

from eegdecode import formats  # noqa: E402
from eegdecode.data.channels import REGIONS  # noqa: E402
from eegdecode.errors import MissingFileError, OutputExistsError  # noqa: E402
from eegdecode.evaluation.profiles import channel_importance, channel_region, compute_profiles, peak_window  # noqa: E402

# Occipito-parietal: the parietal and occipital regions plus the temporo-parietal TP channels over the
# occipito-temporal sources (lateral occipital, fusiform) of the simulator.
POSTERIOR = set(REGIONS["parietal"]) | set(REGIONS["occipital"]) | {"TP7", "TP8", "TP9", "TP10"}


@pytest.fixture(scope="module")
def ridge_profiles(tmp_path_factory):
    out = build_runs(tmp_path_factory.getbasetemp() / "report_runs")
    runs = [out / "runs" / "ridge" / "intra" / s / "seed0" for s in ("sub-01", "sub-02")]
    return out, runs, [compute_profiles(r, device="cpu") for r in runs]


def test_baseline_matches_the_runs_own_test_evaluation(ridge_profiles):
    _, runs, profiles = ridge_profiles
    for run, prof in zip(runs, profiles):
        res = json.loads((run / "results.json").read_text())
        rank = np.asarray(res["kway"]["full_rank"])
        n = rank.size
        sub = prof["subjects"][res["subject"]]
        assert sub["baseline"]["pairwise"] == pytest.approx(np.mean((n - rank) / (n - 1)), abs=1e-12)
        assert sub["baseline"]["top1"][str(n)] == pytest.approx(res["kway"]["k"][str(n)]["top1_mean"])
        assert len(sub["spatial"]["masked"]) == 63 and sub["spatial"]["channels"][0] == "Fp1"
        # 50 ms at 250 Hz is 12 samples (round half to even), hop 6: (250 - 12) // 6 + 1 windows
        assert sub["temporal"][0]["start"] == pytest.approx(0.0) and len(sub["temporal"]) == 40
        assert sub["temporal"][0]["stop"] == pytest.approx(0.048)
        assert set(sub["regions"]) == {"frontal", "central", "parietal", "temporal", "occipital"}


def test_peak_window_contains_a_simulated_component_latency(ridge_profiles):
    _, _, profiles = ridge_profiles
    for prof in profiles:
        latencies = [c["latency"] for c in prof["components"]]
        assert latencies == [0.1, 0.17, 0.25, 0.4]  # read from the data set's simulation.json
        (subject,) = prof["subjects"]
        win = peak_window(prof, subject, "keep")
        assert any(win["start"] <= lat < win["stop"] for lat in latencies), win
        # Keeping only a late window (700 ms on, no component there) leaves the decoder near chance.
        late = [r["keep"]["pairwise"] for r in prof["subjects"][subject]["temporal"] if r["start"] >= 0.7]
        assert max(late) < win["keep"]["pairwise"] - 0.05


def test_top_channels_and_best_region_are_occipito_parietal(ridge_profiles):
    _, _, profiles = ridge_profiles
    for prof in profiles:
        (subject,) = prof["subjects"]
        importance = channel_importance(prof, subject)
        top5 = sorted(importance, key=importance.get, reverse=True)[:5]
        assert sum(ch in POSTERIOR for ch in top5) >= 4, top5  # 28 of the 63 channels
        posterior = np.mean([v for ch, v in importance.items() if ch in POSTERIOR])
        frontal = np.mean([importance[ch] for ch in REGIONS["frontal"]])
        assert posterior > 2 * frontal, (posterior, frontal)
        regions = prof["subjects"][subject]["regions"]
        best_kept = max(regions, key=lambda r: regions[r]["keep"]["pairwise"])
        worst_masked = min(regions, key=lambda r: regions[r]["mask"]["pairwise"])
        assert best_kept in ("parietal", "occipital"), {r: v["keep"]["pairwise"] for r, v in regions.items()}
        assert worst_masked in ("parietal", "occipital"), {
            r: v["mask"]["pairwise"] for r, v in regions.items()
        }


def test_same_settings_reuse_the_file_other_settings_need_overwrite(ridge_profiles):
    _, runs, _ = ridge_profiles
    path = runs[0] / formats.PROFILES_NAME
    before = path.stat().st_mtime_ns
    compute_profiles(runs[0], device="cpu")
    assert path.stat().st_mtime_ns == before
    with pytest.raises(OutputExistsError, match="profiles.json"):
        compute_profiles(runs[0], device="cpu", window=0.1)
    assert formats.read_profiles(runs[0])["settings"]["window_s"] == 0.05


def test_missing_data_root_is_named(ridge_profiles, tmp_path):
    _, runs, _ = ridge_profiles
    with pytest.raises(MissingFileError, match="nowhere"):
        compute_profiles(runs[0], data_root=tmp_path / "nowhere", overwrite=True)


def test_channel_regions_for_eeg_and_ctf_meg_names():
    assert channel_region("Oz") == "occipital" and channel_region("Fp1") == "frontal"
    assert channel_region("MLO11-1609") == "occipital" and channel_region("MRT22-4408") == "temporal"
    assert channel_region("STI101") is None
