"""Every sub-command with bad arguments or bad data: exit code 2 (usage) or 1 (data), one line on stderr naming the
option or file, no traceback, and no file written.

Also the data faults a QA pass found: an image set missing a concept folder, a feature store of another image list,
a test file with fewer images than the test features, more test repetitions than recorded, ``--resume`` with
changed settings.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from eegdecode.cli import main
from eegdecode.io import read_json, write_json

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--channels", "posterior17", "--time-window", "0", "0.3", "--train-unit", "average", "--val-fraction", "0.1",
        "--device", "cpu", "--quiet", "--batch-size", "64", "--model", "MUSE_EEG", "--epochs", "1"]  # fmt: skip


def _variant(tiny_root: Path, dest: Path) -> Path:
    """A data root that shares the tiny set's EEG and cache (symlinks) and has its own image set and features."""
    dest.mkdir()
    for name in ("Preprocessed_data_250Hz", "cache"):
        (dest / name).symlink_to(tiny_root / name, target_is_directory=True)
    for name in ("image_set", "features"):
        shutil.copytree(tiny_root / name, dest / name)
    for name in ("simulation.json", "ceiling.json"):
        shutil.copy(tiny_root / name, dest / name)
    return dest


def _tree(*folders: Path) -> set[str]:
    return {str(p) for f in folders if f.exists() for p in f.rglob("*")}


@pytest.fixture(scope="module")
def world(tiny_root, tmp_path_factory):
    """The tiny set with its cache built, and one finished run to evaluate and resume."""
    assert main(["prepare", "--data-root", str(tiny_root)]) == 0
    runs = tmp_path_factory.mktemp("runs")
    assert main(["train", "--data-root", str(tiny_root), "--subject", "1", *FAST, "--out", str(runs)]) == 0
    run = runs / "MUSE_EEG" / "intra" / "sub-01" / "seed0"
    assert (run / "results.json").exists()
    return {"root": tiny_root, "runs": runs, "run": run}


def _check(capsys, argv, code, pattern, watch):
    before = _tree(*watch)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc_info:  # argparse errors exit; our errors return
        raise SystemExit(main(argv))
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert exc_info.value.code == code, (argv, err)
    assert len(lines) == 1, (argv, err)
    assert "Traceback" not in err and "error" in lines[0]
    assert pattern.lower() in lines[0].lower(), (argv, lines[0])
    assert _tree(*watch) == before, f"{argv} wrote files"


BAD_TRAIN = [  # (extra arguments, exit code, text the one line must contain)
    (["--time-window", "2", "3"], 2, "time_window"),
    (["--channels", "Foo,Oz"], 2, "Foo"),
    (["--val-fraction", "0.999"], 2, "val_fraction"),
    (["--model", "NotAModel"], 2, "NotAModel"),
    (["--protocol", "loso"], 2, "loso"),
    (["--test-reps", "100"], 2, "--test-reps"),
    (["--epochs", "0"], 2, "epochs"),
    (["--lr", "-1"], 2, "lr"),
    (["--batch-size", "zero"], 2, "--batch-size"),
    (["--features", "no_such_store"], 1, "features.json"),
    (["--config", "no_such.yaml"], 1, "no_such.yaml"),
    (["--subject", "7"], 1, "sub-07"),
    (["--loss", "nope"], 2, "--loss"),
]


@pytest.mark.parametrize("extra, code, pattern", BAD_TRAIN, ids=[" ".join(a) for a, _, _ in BAD_TRAIN])
def test_train_refuses_bad_options_before_any_work(world, tmp_path, capsys, extra, code, pattern):
    argv = ["train", "--data-root", str(world["root"]), "--subject", "1", *FAST, "--out", str(tmp_path / "o")]
    # later flags override earlier ones, so each case replaces one good value
    _check(capsys, argv + extra, code, pattern, [tmp_path, world["root"]])
    assert not (tmp_path / "o").exists()


def test_no_data_root_anywhere(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("EEGDECODE_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    _check(capsys, ["train", *FAST], 2, "EEGDECODE_DATA", [tmp_path])
    _check(capsys, ["prepare"], 2, "EEGDECODE_DATA", [tmp_path])


def test_existing_run_and_changed_resume_are_refused(world, capsys):
    base = ["train", "--data-root", str(world["root"]), "--subject", "1", *FAST, "--out", str(world["runs"])]
    watch = [world["runs"]]
    _check(capsys, base, 2, "--overwrite", watch)
    _check(capsys, [*base, "--resume", "--lr", "0.001"], 2, "lr 0.0003 -> 0.001", watch)
    _check(
        capsys, [*base, "--resume", "--batch-size", "32", "--lr", "0.001"], 2, "batch_size 64 -> 32", watch
    )
    _check(capsys, [*base, "--resume", "--overwrite"], 2, "exclude", watch)


def test_resume_may_extend_epochs_and_records_it(world, capsys):
    run_src = world["run"]
    out = run_src.parents[3] / "extended"
    shutil.copytree(run_src.parents[3], out / "x", dirs_exist_ok=True)
    base = ["train", "--data-root", str(world["root"]), "--subject", "1", *FAST, "--out", str(out / "x")]
    assert main([*base, "--resume", "--epochs", "2"]) == 0
    run = out / "x" / "MUSE_EEG" / "intra" / "sub-01" / "seed0"
    cfg = read_json(run / "config.json")
    assert cfg["epochs"] == 2 and cfg["changes"] == [{"key": "epochs", "from": 1, "to": 2, "from_epoch": 1}]
    rows = (run / "metrics.jsonl").read_text().splitlines()
    assert [read_json_line(r)["epoch"] for r in rows] == [0, 1]


def read_json_line(line):
    import json

    return json.loads(line)


BAD_OTHER = [  # (argv with {root}/{run}/{tmp} placeholders, exit code, text)
    (["evaluate", "{tmp}/no_run"], 1, "config.json"),
    (["evaluate", "{run}", "--test-reps", "100"], 2, "--test-reps"),
    (["evaluate", "{run}", "--gallery", "sound"], 2, "--gallery"),
    (["extract"], 2, "--model"),
    (["extract", "{tmp}/no_run"], 1, "config.json"),
    (["generate", "{tmp}/no_run"], 1, "config.json"),
    (["summarize", "{tmp}/no_runs"], 1, "no_runs"),
    (["prepare", "--data-root", "{root}", "--subject", "9"], 1, "sub-09"),
    (["prepare", "--data-root", "{root}", "--dtype", "float64"], 2, "--dtype"),
    (["simulate"], 2, "--out"),
    (["simulate", "--out", "{tmp}/s", "--preset", "huge"], 2, "--preset"),
    (["features", "--data-root", "{tmp}/nothing"], 1, "image_set"),
    (["metrics"], 2, "--manifest"),
    (["metrics", "--manifest", "{tmp}/none.json"], 1, "none.json"),
    (["preprocess", "eeg", "--raw-root", "{tmp}/raw", "--data-root", "{tmp}/d", "--subject", "1"], 1, "raw"),
    (
        ["preprocess", "meg", "--bids-root", "{tmp}/bids", "--data-root", "{tmp}/d", "--participant", "1"],
        1,
        "bids",
    ),
    (["report", "{tmp}/no_runs", "-o", "{tmp}/r.html"], 1, "no_runs"),
    (["recipes", "nope"], 2, "nope"),
    (["train", "--data-root", "{root}", "--recipe", "nope", "--out", "{tmp}/o"], 2, "nope"),
    (["sweep", "{tmp}/no_grid.yaml", "--data-root", "{root}"], 1, "no_grid.yaml"),
    (["download", "--what", "nothing", "--data-root", "{tmp}/dl"], 2, "--what"),
    (["download", "--what", "images", "--data-root", "{tmp}/dl", "--retries", "-1"], 2, "--retries"),
    (["demo", "--preset", "huge", "--out", "{tmp}/demo"], 2, "--preset"),
    (["nonsense"], 2, "nonsense"),
]


@pytest.mark.parametrize("argv, code, pattern", BAD_OTHER, ids=[" ".join(a) for a, _, _ in BAD_OTHER])
def test_every_command_refuses_bad_input_in_one_line(world, tmp_path, capsys, argv, code, pattern):
    argv = [a.format(root=world["root"], run=world["run"], tmp=tmp_path) for a in argv]
    _check(capsys, argv, code, pattern, [tmp_path, world["run"]])


# ---------------------------------------------------------------------------------------------------- data faults


def test_image_set_missing_a_concept_folder(world, tmp_path, capsys):
    root = _variant(world["root"], tmp_path / "root")
    shutil.rmtree(sorted((root / "image_set" / "training_images").iterdir())[3])
    for cmd in (["prepare", "--data-root", str(root)],
                ["train", "--data-root", str(root), "--subject", "1", *FAST, "--out", str(tmp_path / "o")]):  # fmt: skip
        _check(capsys, cmd, 1, "disagree with the image set", [tmp_path / "o"])
    assert not (tmp_path / "o").exists()


def test_feature_store_of_another_image_list(world, tmp_path, capsys):
    root = _variant(world["root"], tmp_path / "root")
    meta_path = root / "features" / "reference" / "features.json"
    meta = read_json(meta_path)
    meta["splits"]["train"]["image_list_sha256"] = "0" * 64  # right counts, another image list
    write_json(meta_path, meta)
    argv = ["train", "--data-root", str(root), "--subject", "1", *FAST, "--out", str(tmp_path / "o")]
    _check(capsys, argv, 1, "another image list", [tmp_path / "o"])


def test_test_features_that_do_not_fit_the_test_eeg(world, tmp_path, capsys):
    root = _variant(world["root"], tmp_path / "root")
    feats = root / "features" / "reference"
    meta = read_json(feats / "features.json")
    for kind, key in (("image", "n_images"), ("text", "n_concepts")):
        arr = np.load(feats / f"{kind}_features_test.npy")
        np.save(feats / f"{kind}_features_test.npy", np.concatenate([arr, arr[:2]]))
        meta["splits"]["test"][key] += 2
    meta["splits"]["test"].pop("image_list_sha256")
    write_json(feats / "features.json", meta)
    argv = ["train", "--data-root", str(root), "--subject", "1", *FAST, "--out", str(tmp_path / "o")]
    _check(capsys, argv, 1, "test images", [tmp_path / "o"])


def test_results_json_is_strict_json(world):
    text = (world["run"] / "results.json").read_text()
    assert "NaN" not in text and "Infinity" not in text


def test_a_traceback_never_reaches_the_user(tmp_path):
    """End to end in a fresh process (the in-process tests above cannot see interpreter-level output)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("EEGDECODE_DATA", None)
    out = subprocess.run([sys.executable, "-m", "eegdecode", "train", "--model", "NotAModel"], cwd=tmp_path,
                         env=env, capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().count("\n") == 0, out.stderr
    assert list(tmp_path.iterdir()) == []


def test_evaluate_gives_the_ceiling_only_for_the_repetitions_it_was_computed_for(world, capsys):
    capsys.readouterr()
    assert main(["evaluate", str(world["run"]), "--test-reps", "10", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert (
        "ceiling not shown" in out
        and "for 20 averaged repetitions" in out
        and "ceiling" not in out.split("ceiling not shown")[0].lower()
    )
    assert main(["evaluate", str(world["run"]), "--test-reps", "1", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "ceiling not shown" not in out and "ceiling" in out.lower()
