"""Summaries over runs: hand-computed mean ± sd, file discovery, duplicates, atomic outputs, the CLI command."""

import argparse
import csv
import io
import json
import math

import numpy as np
import pytest

from eegdecode.commands import summarize as summarize_command
from eegdecode.errors import DataFormatError, MissingFileError, OutputExistsError
from eegdecode.evaluation.kway import kway_accuracy
from eegdecode.evaluation.summary import summarize_runs, write_summary


def _kway(top1_2, top1_200, top5_200):
    return {
        "k": {
            "2": {"k": 2, "top1_mean": top1_2, "top5_mean": None, "chance_top1": 0.5, "chance_top5": 1.0},
            "200": {
                "k": 200,
                "top1_mean": top1_200,
                "top5_mean": top5_200,
                "chance_top1": 0.005,
                "chance_top5": 0.025,
            },
        }
    }


def _write_run(folder, model, subject, seed, kway, ceiling=None):
    folder.mkdir(parents=True)
    data = {"model": model, "subject": subject, "seed": seed, "protocol": "intra-subject", "kway": kway}
    if ceiling is not None:
        data["ceiling"] = ceiling
    (folder / "results.json").write_text(json.dumps(data))
    return folder / "results.json"


@pytest.fixture
def runs(tmp_path):
    # Model A, three subjects:  2-way 0.9, 0.8, 0.7 -> mean 0.8, sd sqrt((0.01 + 0 + 0.01) / 2) = 0.1
    #                           200-way top-1 0.2, 0.3, 0.4 -> mean 0.3, sd 0.1
    #                           200-way top-5 0.5, 0.5, 0.8 -> mean 0.6, sd sqrt((0.01 + 0.01 + 0.04) / 2) = sqrt(0.03)
    # Model B, one run: its values, no sd.
    # Ceiling given per subject by both models' runs: subjects 1 and 2 -> 200-way top-1 (0.9 + 0.7) / 2 = 0.8.
    ceiling_1, ceiling_2 = _kway(1.0, 0.9, 1.0), _kway(1.0, 0.7, 0.9)
    root = tmp_path / "runs"
    _write_run(root / "A_s1", "A", "sub-01", 0, _kway(0.9, 0.2, 0.5), ceiling_1)
    _write_run(root / "A_s2", "A", "sub-02", 0, _kway(0.8, 0.3, 0.5), ceiling_2)
    _write_run(root / "A_s3", "A", "sub-03", 0, _kway(0.7, 0.4, 0.8))
    _write_run(root / "B_s1", "B", "sub-01", 0, _kway(0.6, 0.1, 0.3), ceiling_1)
    return root


def _row(table, model, k):
    return next(r for r in table.rows if r.model == model and r.k == k)


def test_mean_and_sd_by_hand(runs):
    table = summarize_runs([runs / "A_s1", runs / "A_s2", runs / "A_s3" / "results.json", runs / "B_s1"])
    a2, a200 = _row(table, "A", 2), _row(table, "A", 200)
    assert a2.n_runs == 3
    assert a2.top1_mean == pytest.approx(0.8) and a2.top1_sd == pytest.approx(0.1)
    assert a2.top5_mean is None and a2.chance_top1 == 0.5
    assert a200.top1_mean == pytest.approx(0.3) and a200.top1_sd == pytest.approx(0.1)
    assert a200.top5_mean == pytest.approx(0.6) and a200.top5_sd == pytest.approx(math.sqrt(0.03))
    b200 = _row(table, "B", 200)
    assert b200.n_runs == 1 and b200.top1_mean == pytest.approx(0.1) and b200.top1_sd is None
    ceiling = _row(table, "ceiling", 200)
    assert ceiling.n_runs == 2 and ceiling.top1_mean == pytest.approx(0.8)
    assert [(r.model, r.k) for r in table.rows] == [
        ("A", 2),
        ("A", 200),
        ("B", 2),
        ("B", 200),
        ("ceiling", 2),
        ("ceiling", 200),
    ]


def test_markdown_and_csv(runs, tmp_path):
    table = summarize_runs([str(runs / "*")])
    markdown = table.to_markdown()
    lines = markdown.splitlines()
    assert lines[0] == "| protocol | model | runs | 2-way top-1 | 200-way top-1 | 200-way top-5 |"
    assert lines[2] == "| intra-subject | A | 3 | 80.00 ± 10.00 | 30.00 ± 10.00 | 60.00 ± 17.32 |"
    assert lines[3] == "| intra-subject | B | 1 | 60.00 | 10.00 | 30.00 |"
    assert lines[5] == "|  | chance |  | 50.00 | 0.50 | 2.50 |"
    records = list(csv.DictReader(io.StringIO(table.to_csv())))
    assert len(records) == 6
    assert records[1]["model"] == "A" and records[1]["k"] == "200"
    assert float(records[1]["top5_sd"]) == pytest.approx(math.sqrt(0.03))
    assert records[2]["top1_sd"] == ""  # single run
    out = tmp_path / "summary"
    written = write_summary(table, out)
    assert written["markdown"].read_text() == markdown + "\n"
    assert written["csv"].read_text() == table.to_csv()
    assert sorted(p.name for p in out.iterdir()) == ["summary.csv", "summary.md"]  # no temporary left over
    with pytest.raises(OutputExistsError):
        write_summary(table, out)
    write_summary(table, out, overwrite=True)


def test_folder_of_runs_is_searched_and_duplicates_are_counted_once(runs):
    assert len(summarize_runs([runs]).runs) == 4
    # The same file reached two ways is read once.
    assert len(summarize_runs([runs / "A_s1", runs / "A_s1" / "results.json"]).runs) == 1


def test_same_run_in_two_files_is_refused(runs, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "results.json").write_text((runs / "A_s1" / "results.json").read_text())
    with pytest.raises(DataFormatError, match="same run"):
        summarize_runs([runs / "A_s1", copy])


def test_bad_files_are_named(tmp_path):
    with pytest.raises(MissingFileError):
        summarize_runs([tmp_path / "nothing_here"])
    with pytest.raises(MissingFileError, match="matched nothing"):
        summarize_runs([str(tmp_path / "nope*")])
    bad = tmp_path / "bad" / "results.json"
    bad.parent.mkdir()
    bad.write_text(json.dumps({"model": "A"}))
    with pytest.raises(DataFormatError, match=r"bad/results.json: missing key\(s\) \['kway'\]"):
        summarize_runs([bad])


def test_real_kway_results_are_read(tmp_path):
    rng = np.random.default_rng(0)
    gallery = rng.standard_normal((20, 8))
    values = []
    for seed in (0, 1):
        query = gallery + rng.standard_normal((20, 8))
        kway = kway_accuracy(query, gallery, ks=(2, 10, 20), n_draws=5, seed=seed).to_dict()
        values.append(kway["k"]["10"]["top1_mean"])
        _write_run(tmp_path / f"run{seed}", "ridge", "sub-01", seed, kway)
    row = _row(summarize_runs([tmp_path]), "ridge", 10)
    assert row.top1_mean == pytest.approx(np.mean(values))
    assert row.top1_sd == pytest.approx(np.std(values, ddof=1))


def test_summarize_command(runs, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    summarize_command.add_arguments(parser)
    out = tmp_path / "table"
    args = parser.parse_args([str(runs / "A_*"), str(runs / "B_s1"), "--out", str(out)])
    assert summarize_command.run(args) == 0
    printed = capsys.readouterr().out
    assert "| intra-subject | A | 3 | 80.00 ± 10.00 |" in printed
    assert (out / "summary.md").read_text().strip() == printed.strip()
    assert (out / "summary.csv").exists()
    with pytest.raises(OutputExistsError):
        summarize_command.run(args)
    assert summarize_command.run(parser.parse_args([str(runs), "--out", str(out), "--overwrite"])) == 0
