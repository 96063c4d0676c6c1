"""Grid expansion, validation before anything runs, and run state read from the run folders."""

import json
import os
import pickle
import socket
import subprocess
import sys

import pytest

from eegdecode.cli import main
from eegdecode.sweep.spec import (
    DONE,
    FAILED,
    FAILURE_NAME,
    PENDING,
    RUNNING,
    RUNNING_NAME,
    RunSpec,
    expand,
    read_grid_file,
    run_state,
)


def test_expand_is_the_product_of_the_axes_in_the_usual_folders(write_grid, tmp_path):
    path = write_grid({"protocol": ["intra", "loso"], "lr": [0.001, 0.0003], "seed": [0, 1]}, subjects=[1, 2])
    sweep = expand(read_grid_file(path), str(path))
    assert len(sweep.specs) == 2 * 2 * 2 * 2  # protocols x lr x folds x seeds
    assert sweep.variants == ["lr=0.001", "lr=0.0003"]
    dirs = [s.run_dir for s in sweep.specs]
    assert len(set(dirs)) == len(dirs)
    loso = [s for s in sweep.specs if s.fold["protocol"] == "loso" and s.config["lr"] == 0.0003]
    assert [(s.fold["name"], s.config["seed"]) for s in loso] == [
        ("sub-01", 0),
        ("sub-01", 1),
        ("sub-02", 0),
        ("sub-02", 1),
    ]
    spec = loso[-1]
    assert spec.run_dir == str(tmp_path / "runs" / "lr=0.0003" / "MUSE_EEG" / "loso" / "sub-02" / "seed1")
    assert spec.fold["train_subjects"] == ["sub-01"] and spec.fold["test_subjects"] == ["sub-02"]
    assert spec.config["data"]["channels"] == "posterior17" and spec.config["features"] == "reference"
    assert pickle.loads(pickle.dumps(spec)) == spec
    assert [s.index for s in sweep.specs] == list(range(16))


def test_single_values_need_no_variant_folder_and_dotted_keys_reach_data(write_grid, tmp_path):
    path = write_grid(
        {"model": ["MUSE_EEG", "NICE_EEG"], "data.time_window": [[0, 0.2]], "weight_decay": 0.0}
    )
    sweep = expand(read_grid_file(path), str(path))
    assert sweep.variants == [""]
    assert [s.run_dir for s in sweep.specs[:1]] == [
        str(tmp_path / "runs" / "MUSE_EEG" / "intra" / "sub-01" / "seed0")
    ]
    assert {tuple(s.config["data"]["time_window"]) for s in sweep.specs} == {(0, 0.2)}
    assert {s.config["weight_decay"] for s in sweep.specs} == {0.0}
    assert [s.config["model"] for s in sweep.specs] == ["MUSE_EEG"] * 2 + ["NICE_EEG"] * 2


def test_dotted_keys_reach_the_target_and_the_mmd_options(write_grid):
    """A grid can vary one option of the target (blur rule, head) or of SAMGA's schedule; the base's other target
    options stay as they are."""
    target = {"backbone": "simulator:vision", "layers": ["embedding"], "blur": ["gaussian:3", "gaussian:9"]}
    path = write_grid({"target.blur_rule": ["fixed", "learned"]}, base={"target": target})
    sweep = expand(read_grid_file(path), str(path))
    assert sweep.variants == ["target.blur_rule=fixed", "target.blur_rule=learned"]
    assert sorted({s.config["target"]["blur_rule"] for s in sweep.specs}) == ["fixed", "learned"]
    assert all(
        s.run_dir.split(os.sep)[-5] == f"target.blur_rule={s.config['target']['blur_rule']}"
        for s in sweep.specs
    )
    assert all(s.config["target"]["blur"] == ["gaussian:3", "gaussian:9"] for s in sweep.specs)
    router = {**target, "layers": ["block:2", "block:5"], "blur": ["none"], "combine": "router"}
    path = write_grid(
        {"mmd_options.stage2_lr": [5e-5, 1e-4]},
        name="mmd.yaml",
        base={"target": router, "mmd_epochs": 1, "mmd_options": {"start": 0.9, "end": 0.5}},
    )
    sweep = expand(read_grid_file(path), str(path))
    options = {json.dumps(s.config["mmd_options"], sort_keys=True) for s in sweep.specs}
    assert options == {
        json.dumps({"start": 0.9, "end": 0.5, "stage2_lr": lr}, sort_keys=True) for lr in (5e-5, 1e-4)
    }


@pytest.mark.parametrize(
    ("grid", "top", "base", "needle"),
    [
        ({"lrr": [1, 2]}, {}, {}, "unknown key 'lrr'"),
        ({"data.chanels": ["all"]}, {}, {}, "unknown key 'data.chanels'"),
        ({}, {}, {"data": {"time_windw": [0, 1]}}, "unknown key 'data.time_windw'"),
        (
            {"lr.x": [1]},
            {},
            {},
            "only data, model_options, loss_options, target, mmd_options take a dotted key",
        ),
        ({"model": ["NoSuchNet"]}, {}, {}, "NoSuchNet"),
        ({"lr": [-1.0]}, {}, {}, "lr"),
        ({"seed": [0, 0]}, {}, {}, "lists a value twice"),
        ({"subject": [1]}, {}, {}, "subjects are not an axis"),
        ({}, {"processes_per_run": 0}, {}, "processes_per_run"),
        ({"model": ["nice", "NICE_EEG"]}, {}, {}, "share"),
    ],
)
def test_bad_grid_is_one_line_exit_2_and_nothing_written(
    write_grid, tmp_path, capsys, grid, top, base, needle
):
    path = write_grid(grid, base=base, **top)
    assert main(["sweep", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("eegdecode sweep: error: ") and err.count("\n") == 1 and needle in err
    assert str(path) in err
    assert not (tmp_path / "runs").exists()


def test_unknown_top_level_key_and_missing_subject(write_grid, tmp_path, capsys):
    path = write_grid(workers=2)
    assert main(["sweep", str(path)]) == 2
    assert "unknown key 'workers'" in capsys.readouterr().err
    path = write_grid(subjects=[1, 7])
    assert main(["sweep", str(path)]) == 1
    assert "sub-07" in capsys.readouterr().err
    assert main(["sweep", str(path), "--subject", "1", "--slurm-param", "account"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_run_state_from_the_folder(tmp_path):
    run = tmp_path / "run"
    assert run_state(run).status == PENDING
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.json").write_text(json.dumps({"epoch": 2}))
    assert run_state(run) == run_state(run).__class__(PENDING, "continues after epoch 3")
    # a marker of a live process here -> running; of a dead one -> interrupted, pending again
    (run / RUNNING_NAME).write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))
    assert run_state(run).status == RUNNING
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (run / RUNNING_NAME).write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid}))
    assert run_state(run).status == PENDING
    (run / RUNNING_NAME).write_text(json.dumps({"host": None, "job_id": "4242_3"}))
    assert run_state(run) == run_state(run).__class__(RUNNING, "submitted as job 4242_3")
    (run / FAILURE_NAME).write_text(json.dumps({"error": "ValueError: boom"}))
    assert run_state(run) == run_state(run).__class__(FAILED, "ValueError: boom")
    (run / "results.json").write_text("{}")
    assert run_state(run).status == DONE


def test_dry_run_prints_every_run_and_writes_nothing(write_grid, tmp_path, capsys):
    path = write_grid({"seed": [0, 1]})
    assert main(["sweep", str(path), "--dry-run", "--subject", "1", "2", "--axis", "lr=0.001,0.01"]) == 0
    out = capsys.readouterr().out
    assert "8 runs (8 pending); 8 to run" in out
    assert out.count("run  pending") == 8 and "lr=0.01 | MUSE_EEG | intra | sub-02 | seed 1" in out
    assert not (tmp_path / "runs").exists()


def test_a_folder_started_with_another_configuration_is_refused_before_anything_runs(
    write_grid, tmp_path, capsys
):
    path = write_grid(subjects=[1])
    spec = expand(read_grid_file(path), str(path)).specs[0]
    os.makedirs(spec.run_dir)
    stored = {**spec.config, "lr": 0.5}
    with open(os.path.join(spec.run_dir, "config.json"), "w") as f:
        json.dump(stored, f)
    assert main(["sweep", str(path)]) == 2
    err = capsys.readouterr().err
    assert "lr 0.5 -> 0.0003" in err and "config.json" in err
    assert sorted(os.listdir(spec.run_dir)) == ["config.json"]


def test_runspec_label():
    spec = RunSpec(0, "r", {"model": "MUSE_EEG", "seed": 3}, {"protocol": "intra", "name": "sub-01"}, "d")
    assert spec.label == "MUSE_EEG | intra | sub-01 | seed 3"
    assert (
        RunSpec(**{**spec.__dict__, "variant": "lr=0.1"}).label
        == "lr=0.1 | MUSE_EEG | intra | sub-01 | seed 3"
    )


def test_the_packaged_example_expands(tiny_root, tmp_path):
    from importlib import resources

    example = resources.files("eegdecode") / "configs" / "sweep_example.yaml"
    grid = read_grid_file(str(example))
    sweep = expand(grid, "sweep_example.yaml", out=tmp_path / "study", data_root=tiny_root)
    assert len(sweep.specs) == 4 * 2 * 2 * 3  # models x protocols x folds (2 subjects here) x seeds
    assert {s.config["epochs"] for s in sweep.specs} == {40} and sweep.executor == {"kind": "local"}


def test_estimate_from_finished_runs_of_the_same_kind(tmp_path):
    from eegdecode.sweep.spec import RECORD_NAME, RunState, estimate

    def spec(i, model, variant=""):
        return RunSpec(i, str(tmp_path / str(i)), {"model": model, "seed": i}, {"protocol": "intra", "name": "s"}, "d",
                       variant=variant)  # fmt: skip

    specs = [spec(0, "A"), spec(1, "A"), spec(2, "A"), spec(3, "B"), spec(4, "A", "lr=1")]
    for i, seconds in ((0, 10.0), (1, 30.0)):
        os.makedirs(specs[i].run_dir)
        with open(os.path.join(specs[i].run_dir, RECORD_NAME), "w") as f:
            json.dump({"seconds": seconds}, f)
    states = [RunState(DONE), RunState(DONE), RunState(PENDING), RunState(PENDING), RunState(PENDING)]
    guess = estimate(specs, states, specs[2:], slots=2)
    assert guess == {"seconds": 10.0, "run_seconds": 20.0, "measured": 2, "unmeasured": 2}


def test_a_finished_run_of_another_configuration_is_not_skipped_silently(write_grid, capsys):
    path = write_grid(subjects=[1])
    spec = expand(read_grid_file(path), str(path)).specs[0]
    os.makedirs(spec.run_dir)
    with open(os.path.join(spec.run_dir, "config.json"), "w") as f:
        json.dump({**spec.config, "device": "cuda", "data_root": "/elsewhere"}, f)  # where it ran: fine
    with open(os.path.join(spec.run_dir, "results.json"), "w") as f:
        json.dump({}, f)
    assert main(["sweep", str(path), "--dry-run"]) == 0
    assert "1 runs (1 done); 0 to run" in capsys.readouterr().out
    assert main(["sweep", str(path), "--dry-run", "--set", "epochs=3"]) == 2
    err = capsys.readouterr().err
    assert "a finished run with epochs 1, the grid asks 3" in err and "config.json" in err
