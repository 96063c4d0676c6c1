"""The ``eegdecode metrics`` command, its ``Generation/metrics.py`` alias, the notebook and the plotting helper."""

import argparse
import ast
import csv
import importlib.util
import json
from pathlib import Path

import pytest

from eegdecode.commands import metrics as metrics_command
from eegdecode.errors import ConfigError, OutputExistsError
from eegdecode.metrics import read_generation_manifest
from eegdecode.metrics.plots import plot_reconstructions

ROOT = Path(__file__).resolve().parents[2]
PUBLISHED_ORDER = ["PixCorr", "SSIM", "AlexNet(2)", "AlexNet(5)", "InceptionV3", "CLIP", "EffNet-B", "SwAV"]


def _run(argv):
    parser = argparse.ArgumentParser()
    metrics_command.add_arguments(parser)
    return metrics_command.run(parser.parse_args(argv))


def test_command_writes_json_and_csv_and_refuses_to_overwrite(
    generation_folder, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv(
        "TORCH_HOME", str(tmp_path / "empty_torch_home")
    )  # no weights: feature metrics skipped
    manifest, _ = generation_folder(n=5)
    out = tmp_path / "out"
    assert _run(["--manifest", str(manifest), "--out", str(out), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    header = next(line for line in printed.splitlines() if line.startswith("source"))
    assert header.split()[1:] == PUBLISHED_ORDER
    assert "RANDOM-WEIGHT OUTPUT (generator)" in printed  # the manifest says random_weights
    assert "skipped SwAV: weights not found: put swav_800ep_pretrain.pth.tar" in printed

    data = json.loads((out / "metrics.json").read_text())
    assert data["n_images"] == 5 and data["random_weights"] == {"generation": True, "metric_networks": False}
    assert data["computed"] == ["pixcorr", "ssim"] and "clip" in data["skipped"]
    eeg = data["results"]["eeg"]
    assert eeg["n_rounds"] == 2 and eeg["rounds"][0]["values"]["pixcorr"] == pytest.approx(1.0)
    assert data["results"]["image"]["sd"]["ssim"] is None
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [r["source"] for r in rows] == ["eeg", "image"]
    assert rows[0]["subject"] == "sub-01" and rows[0]["random_weights"] == "true"
    assert rows[0]["CLIP"] == "" and float(rows[0]["SSIM"]) < 1.0

    with pytest.raises(OutputExistsError, match="--overwrite"):
        _run(["--manifest", str(manifest), "--out", str(out), "--device", "cpu"])
    assert _run(["--manifest", str(manifest), "--out", str(out), "--overwrite", "--metrics", "pixcorr"]) == 0
    assert json.loads((out / "metrics.json").read_text())["computed"] == ["pixcorr"]


def test_generation_alias_runs_the_same_command(generation_folder, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("generation_metrics", ROOT / "Generation" / "metrics.py")
    alias = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(alias)
    manifest, _ = generation_folder(n=4)
    argv = [
        "--manifest",
        str(manifest),
        "--sources",
        "eeg",
        "--metrics",
        "pixcorr,alexnet2",
        "--random-weights",
    ]
    assert alias.main([*argv, "--device", "cpu", "--out", str(tmp_path / "alias_out")]) == 0
    data = json.loads((tmp_path / "alias_out" / "metrics.json").read_text())
    assert list(data["results"]) == ["eeg"] and data["random_weights"]["metric_networks"] is True
    assert data["results"]["eeg"]["rounds"][0]["values"]["alexnet2"] == 1.0  # round 0 is the ground truth


def test_folder_mode_needs_out_and_pairs_counts(tmp_path):
    with pytest.raises(ConfigError, match="--out is required"):
        _run(["--gt-dir", str(tmp_path), "--recon-dir", str(tmp_path)])
    with pytest.raises(ConfigError, match="either --manifest or"):
        _run(["--manifest", str(tmp_path), "--gt-dir", str(tmp_path)])


def test_notebook_is_valid_and_runs_on_the_package(generation_folder, tmp_path):
    path = ROOT / "Generation" / "Reconstruction_Metrics.ipynb"
    notebook = json.loads(path.read_text())
    assert notebook["nbformat"] == 4 and notebook["nbformat_minor"] >= 4
    for cell in notebook["cells"]:
        assert cell["cell_type"] in ("markdown", "code") and isinstance(cell["source"], list)
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert "parameters" in code[0]["metadata"]["tags"]
    # no logic of its own: no function or class definitions, no loops
    logic = (ast.FunctionDef, ast.ClassDef, ast.For, ast.While, ast.Lambda)
    for cell in code:
        assert not any(isinstance(node, logic) for node in ast.walk(ast.parse("".join(cell["source"]))))

    manifest, _ = generation_folder(n=4)
    namespace: dict = {}
    exec("".join(code[0]["source"]), namespace)
    namespace.update(
        MANIFEST=str(manifest), METRICS="pixcorr,ssim", OUT_DIR=str(tmp_path / "nb_out"), OVERWRITE=False
    )
    for cell in code[1:]:
        exec("".join(cell["source"]), namespace)
    assert namespace["report"].n_images == 4
    assert (tmp_path / "nb_out" / "metrics.csv").is_file()
    assert len(namespace["figure"].axes) == 3 * 4  # ground truth + 2 sources, 4 columns


def test_plot_rows_and_random_weight_title(generation_folder):
    manifest, _ = generation_folder(n=5)
    evaluation_set = read_generation_manifest(manifest)
    fig = plot_reconstructions(evaluation_set, indices=[4, 1], sources=["eeg"], round_id=1)
    assert len(fig.axes) == 2 * 2
    assert fig.axes[0].get_ylabel() == "ground truth" and fig.axes[2].get_ylabel() == "eeg (round 1)"
    assert fig.axes[0].get_title() == "00005_thing4"
    assert "RANDOM-WEIGHT OUTPUT" in fig._suptitle.get_text()


def test_ssim_variant_option_is_used_and_recorded(generation_folder, tmp_path, capsys):
    manifest, _ = generation_folder(n=5)
    data = {}
    for variant in ("skimage", "legacy-columnwise"):
        out = tmp_path / variant
        argv = ["--manifest", str(manifest), "--out", str(out), "--metrics", "ssim", "--device", "cpu"]
        assert _run([*argv, "--ssim-variant", variant]) == 0
        data[variant] = json.loads((out / "metrics.json").read_text())
        assert data[variant]["settings"]["ssim"]["variant"] == variant
    assert "legacy-columnwise to compare" in " ".join(data["skimage"]["notes"])
    assert "comparable with published tables" in " ".join(data["legacy-columnwise"]["notes"])
    # eeg round 1 is the ground truth in reverse order: the two SSIMs of one pair differ.
    plain, legacy = (data[v]["results"]["eeg"]["rounds"][1]["values"]["ssim"] for v in data)
    assert abs(plain - legacy) > 1e-3
    with pytest.raises(SystemExit):
        _run(["--manifest", str(manifest), "--out", str(tmp_path / "x"), "--ssim-variant", "columns"])
    capsys.readouterr()
