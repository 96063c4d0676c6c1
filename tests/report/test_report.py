"""The results page: built from real run folders, every section present when its inputs exist, omitted with a
note when not, numbers equal to the runs', files for papers beside it, no network needed."""

import csv
import io
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from eegdecode import formats
from eegdecode.cli import main as cli_main
from eegdecode.errors import DataFormatError, OutputExistsError
from eegdecode.report import build_report
from eegdecode.report.build import SECTIONS
from eegdecode.report.tables import Table


def _sections(page: str) -> dict[str, str]:
    out = {}
    for key, _ in SECTIONS:
        m = re.search(rf'<section id="{key}">(.*?)</section>', page, re.S)
        assert m, f"section {key} missing"
        out[key] = m.group(1)
    return out


@pytest.fixture(scope="module")
def built(report_runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.html"
    build_report([report_runs], out, command="test")
    return out, out.read_text()


def test_every_section_present_in_order_with_its_content(built):
    out, page = built
    order = [page.index(f'<section id="{key}">') for key, _ in SECTIONS]
    assert order == sorted(order)
    sec = _sections(page)
    for key in ("retrieval", "temporal", "spatial", "reconstruction", "provenance"):
        assert "Omitted:" not in sec[key], key
    assert "Omitted:" in sec["layers"] and "layer_weights" in sec["layers"]
    assert "ceiling (ideal decoder)" in sec["retrieval"] and "ridge (floor)" in sec["retrieval"]
    assert "chance" in sec["retrieval"] and "intra · all (63 ch)" in sec["retrieval"]
    assert "selected by val top-1" in sec["retrieval"]
    assert "RANDOM-WEIGHT OUTPUT" in sec["reconstruction"] and "PixCorr" in sec["reconstruction"]
    assert "Skipped AlexNet(2): weights not found" in sec["reconstruction"]
    assert "Simulated data" in page and "eegdecode train --config report_files/configs/" in sec["provenance"]
    assert re.search(r"N400|P2|N170|P1", sec["temporal"])  # the latencies come from simulation.json


def test_page_is_self_contained_and_figures_and_tables_are_written(built):
    out, page = built
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)
    assert "<link" not in page and "<script" not in page
    files = out.parent / "report_files"
    pngs = sorted((files / "figures").glob("*.png"))
    assert len(pngs) >= 6
    assert all(p.with_suffix(".pdf").read_bytes().startswith(b"%PDF") for p in pngs)
    assert page.count('src="data:image/png;base64,') == len(pngs)
    for name in ("retrieval", "retrieval_runs", "temporal_peaks", "spatial_regions"):
        for suffix in (".md", ".csv", ".tex"):
            assert (files / "tables" / f"{name}{suffix}").stat().st_size > 50, (name, suffix)
    configs = sorted((files / "configs").glob("*.json"))
    assert len(configs) == 3 and "fold" not in json.loads(configs[0].read_text())


def test_retrieval_numbers_are_the_runs_mean_and_sd(built, report_runs):
    out, _ = built
    rows = list(csv.DictReader(io.StringIO((out.parent / "report_files/tables/retrieval.csv").read_text())))
    ridge = [formats.read_results(p) for p in sorted((report_runs / "runs" / "ridge").rglob("results.json"))]
    for k in ("2", "30"):
        values = [r.kway["k"][k]["top1_mean"] for r in ridge]
        (row,) = [r for r in rows if r["model"] == "ridge" and r["k"] == k]
        assert float(row["top1_mean"]) == pytest.approx(np.mean(values))
        assert float(row["top1_sd"]) == pytest.approx(np.std(values, ddof=1))
        assert row["n_runs"] == "2" and float(row["chance_top1"]) == pytest.approx(1 / int(k))
    tex = (out.parent / "report_files/tables/retrieval.tex").read_text()
    assert r"\begin{tabular}" in tex and r"$\pm$" in tex and "posterior17" in tex


def test_sections_without_inputs_are_omitted_with_a_note(report_runs, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(report_runs / "runs" / "NICE_EEG", runs / "NICE_EEG")
    (runs / "NICE_EEG" / "intra" / "sub-01" / "seed0" / "profiles.json").unlink(missing_ok=True)
    out = build_report([runs], tmp_path / "r.html")
    sec = _sections(out.read_text())
    assert "Omitted:" not in sec["retrieval"]
    for key in ("temporal", "spatial", "layers", "reconstruction"):
        assert "Omitted:" in sec[key], key
    assert "No ridge run" in sec["retrieval"]  # no floor: said so, not left out silently
    assert "ceiling (ideal decoder)" in sec["retrieval"]


def test_layer_profile_shown_when_a_run_has_layer_weights(report_runs, tmp_path):
    run = tmp_path / "runs" / "ridge" / "intra" / "sub-01" / "seed0"
    shutil.copytree(report_runs / "runs" / "ridge" / "intra" / "sub-01" / "seed0", run)
    res = json.loads((run / "results.json").read_text())
    res["layer_weights"] = {"sub-01": {"layer4": 0.2, "layer8": 0.3, "final": 0.5}}
    (run / "results.json").write_text(json.dumps(res))
    out = build_report([tmp_path / "runs"], tmp_path / "r.html")
    sec = _sections(out.read_text())
    assert "Omitted:" not in sec["layers"] and "layer8" in sec["layers"]
    assert (tmp_path / "r_files" / "figures" / "layer_weights.pdf").exists()


def test_learned_blur_weights_are_tabulated(report_runs, tmp_path):
    """A run with blur_rule learned records each variant's mean weight; the layers section lists them."""
    run = tmp_path / "runs" / "ridge" / "intra" / "sub-01" / "seed0"
    shutil.copytree(report_runs / "runs" / "ridge" / "intra" / "sub-01" / "seed0", run)
    res = json.loads((run / "results.json").read_text())
    res["blur_weights"] = {"gaussian:1": 0.6, "gaussian:63": 0.4}
    (run / "results.json").write_text(json.dumps(res))
    sec = _sections(build_report([tmp_path / "runs"], tmp_path / "r.html").read_text())
    assert "Omitted:" not in sec["layers"] and "Blur-variant weights" in sec["layers"]
    assert "gaussian:63" in sec["layers"] and "0.400" in sec["layers"]


def test_refuses_to_overwrite_and_command_prints_the_path(report_runs, tmp_path, capsys):
    out = tmp_path / "report.html"
    assert cli_main(["report", str(report_runs / "runs"), "-o", str(out), "--no-profiles"]) == 0
    assert str(out.resolve()) in capsys.readouterr().out
    with pytest.raises(OutputExistsError):
        build_report([report_runs / "runs"], out)
    assert cli_main(["report", str(report_runs / "runs"), "-o", str(out), "--no-profiles"]) == 2


def test_unreadable_artefacts_are_refused_naming_the_file(tmp_path):
    bad = tmp_path / "results.json"
    bad.write_text(json.dumps({"format": "eegdecode-results/1", "model": "x", "kway": {"k": {}}}))
    with pytest.raises(DataFormatError, match="results.json"):
        formats.read_results(bad)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "other/1"}))
    with pytest.raises(DataFormatError, match="eegdecode-generation/1"):
        formats.read_generation_manifest(tmp_path)


def test_table_formats_escape_their_special_characters():
    t = Table("t", "A 50% table", ["model", "top_1"], [["a_b", "61.5 ± 2.0"]], ["note & more"])
    tex = t.to_latex()
    assert r"a\_b" in tex and r"61.5 $\pm$ 2.0" in tex and r"50\%" in tex and r"note \& more" in tex
    assert t.to_markdown().splitlines()[2] == "| model | top_1 |"
    assert "&lt;" in Table("u", "x", ["c"], [["<b>"]]).to_html()


def test_html_builder_does_not_import_torch():
    code = "import sys, eegdecode.report.build, eegdecode.formats; print('torch' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "False"


def test_scalp_map_places_ctf_meg_sensors_and_refuses_unknown_names():
    import mne

    from eegdecode.report import figures

    names = [n.replace("-2622", "-4408") for n in mne.channels.read_layout("CTF-275").names[:271]]
    drop = np.linspace(-0.01, 0.02, len(names))
    fig = figures.topomaps({"MEG model": (names, drop)})
    assert "top: " + names[-1] in fig.axes[0].get_title()  # the largest drop is named first
    with pytest.raises(ValueError, match="no sensor positions"):
        figures.topomaps({"x": (["Foo1", "Bar2", "Baz3"], np.zeros(3))})


def test_unprofilable_run_is_listed_not_fatal(report_runs, tmp_path, capsys):
    runs = tmp_path / "runs"
    shutil.copytree(report_runs / "runs" / "ridge" / "intra" / "sub-02", runs / "ridge" / "intra" / "sub-02")
    run = runs / "ridge" / "intra" / "sub-02" / "seed0"
    (run / "profiles.json").unlink()
    out = tmp_path / "r.html"
    assert cli_main(["report", str(runs), "-o", str(out), "--data-root", str(tmp_path / "missing")]) == 0
    sec = _sections(out.read_text())
    assert (
        "Omitted:" in sec["temporal"] and "profiles: " in sec["provenance"] and "missing" in sec["provenance"]
    )
