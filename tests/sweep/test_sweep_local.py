"""The local executor on the tiny preset: a 2 x 2 x 2 grid finishes; a killed sweep restarted completes only what
was missing; every results.json equals the same run made alone with train_fold."""

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from eegdecode.cli import main
from eegdecode.data.datasets import Fold
from eegdecode.data.paths import DatasetPaths
from eegdecode.errors import ConfigError
from eegdecode.sweep.executors import Slot, local_slots
from eegdecode.sweep.spec import DONE, RUNNING_NAME, expand, read_grid_file, scan
from eegdecode.training.trainer import TrainConfig, train_fold


def _started(out: str) -> int:
    return len(re.findall(r"^\[\d+/\d+\] done", out, flags=re.M))


def test_grid_finishes_restart_runs_only_the_missing_and_matches_runs_alone(
    write_grid, tiny_root, tmp_path, capsys
):
    path = write_grid({"lr": [0.001, 0.0003], "seed": [0, 1]}, subjects=[1, 2])  # 2 lr x 2 subjects x 2 seeds
    sweep = expand(read_grid_file(path), str(path))
    assert len(sweep.specs) == 8
    flags = [
        "--workers",
        "2",
        "--threads",
        "1",
        "--no-report",
    ]  # the summaries still print; the report is tested apart

    # A sweep killed after three runs, and one more run killed during training (its last checkpoint written,
    # its worker gone, its marker left behind).
    # (The first part runs in this process, through submitit's debug executor: the same run_one, no worker start-up.)
    assert main(["sweep", str(path), "--executor", "debug", "--no-report", "--limit", "3"]) == 0
    out = capsys.readouterr().out
    assert _started(out) == 3 and "5 run(s) left (5 pending); run the sweep again" in out
    killed = sweep.specs[5]
    cfg = TrainConfig.from_dict({**killed.config, "epochs": 2})
    train_fold(cfg, DatasetPaths(killed.data_root), Fold(**killed.fold), killed.run_dir, progress=False,
               stop_after_epoch=0)  # fmt: skip
    config = json.loads((Path(killed.run_dir) / "config.json").read_text())
    config["epochs"] = 1  # as the sweep started it: 1 epoch, interrupted after its checkpoint of epoch 1
    (Path(killed.run_dir) / "config.json").write_text(json.dumps(config))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (Path(killed.run_dir) / RUNNING_NAME).write_text(
        json.dumps({"host": socket.gethostname(), "pid": dead.pid})
    )
    states = scan(sweep.specs)
    assert [s.status for s in states].count(DONE) == 3 and states[5].detail == "continues after epoch 1"
    assert main(["sweep", str(path), *flags, "--dry-run"]) == 0  # the plan, with an estimate from the 3 runs
    out = capsys.readouterr().out
    assert "estimated wall time of the 5 runs" in out and "4 run(s) of kinds not yet measured" in out

    assert main(["sweep", str(path), *flags]) == 0
    out = capsys.readouterr().out
    assert "8 runs (3 done, 5 pending); 5 to run" in out and _started(out) == 5
    assert "Summary of lr=0.001 over 4 runs" in out and "Summary of lr=0.0003 over 4 runs" in out
    assert all(s.status == DONE for s in scan(sweep.specs))
    assert not (Path(killed.run_dir) / RUNNING_NAME).exists()

    assert main(["sweep", str(path), *flags]) == 0  # nothing left: nothing runs
    assert "0 to run" in capsys.readouterr().out

    for spec in sweep.specs:  # the three of the first part, the killed one, the four of the restart
        alone = tmp_path / "alone" / str(spec.index)
        train_fold(TrainConfig.from_dict(spec.config), DatasetPaths(tiny_root), Fold(**spec.fold), alone,
                   progress=False)  # fmt: skip
        swept = json.loads((Path(spec.run_dir) / "results.json").read_text())
        assert swept == json.loads((alone / "results.json").read_text()), spec.label
        assert swept["seed"] == spec.config["seed"]


def test_local_slots_one_per_gpu_or_workers_with_an_even_share_of_threads():
    assert local_slots(["0", "1", "2", "3"], cpus=16) == [Slot((g,), 4) for g in "0123"]
    assert local_slots(["0", "1", "2", "3"], processes_per_run=2, cpus=16) == [
        Slot(("0", "1"), 4),
        Slot(("2", "3"), 4),
    ]
    assert local_slots(["4", "5"], workers=1, cpus=16) == [Slot(("4",), 16)]
    assert local_slots([], workers=3, cpus=8) == [Slot((), 2)] * 3
    assert local_slots([], cpus=8) == [Slot((), 8)]
    assert local_slots([], workers=4, threads=1, cpus=2) == [Slot((), 1)] * 4
    with pytest.raises(ConfigError, match="processes_per_run 2 needs that many GPUs"):
        local_slots(["0"], processes_per_run=2)
    with pytest.raises(ConfigError, match="--workers"):
        local_slots([], workers=0)


@pytest.mark.slow
def test_a_ddp_run_inside_a_sweep_goes_through_torchrun(write_grid, capsys):
    """processes_per_run 2 on CPU: the worker starts torchrun (gloo) and the run records a world size of 2."""
    path = write_grid(subjects=[1], processes_per_run=2)
    assert main(["sweep", str(path), "--threads", "1", "--no-report"]) == 0
    (spec,) = expand(read_grid_file(path), str(path)).specs
    config = json.loads((Path(spec.run_dir) / "config.json").read_text())
    assert config["world_size"] == 2 and (Path(spec.run_dir) / "results.json").exists()
    assert "[1/1] done" in capsys.readouterr().out


@pytest.mark.slow
def test_a_sweep_killed_for_real_restarts_with_only_the_missing_runs(write_grid, tmp_path, capsys):
    """SIGKILL of the sweep and its worker once the first run is done; the restart runs exactly the others."""
    import os
    import signal
    import time

    path = write_grid({"seed": [0, 1, 2]}, subjects=[1], base={"epochs": 3})
    specs = expand(read_grid_file(path), str(path)).specs
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "eegdecode", "sweep", str(path), "--threads", "1", "--no-report"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while not (Path(specs[0].run_dir) / "results.json").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = [s.status for s in scan(specs)].count(DONE)
    assert 1 <= done < 3
    assert main(["sweep", str(path), "--threads", "1", "--no-report"]) == 0
    out = capsys.readouterr().out
    assert f"{3 - done} to run" in out and _started(out) == 3 - done
    assert all(s.status == DONE for s in scan(specs))


def _die_on_second(spec):
    if spec.index == 1:
        os._exit(3)  # a worker killed (out of memory, signal) in the middle of a run
    return {"index": spec.index, "run_dir": spec.run_dir, "status": "done"}


def test_a_worker_that_dies_stops_the_pool_without_hanging(tmp_path):
    from eegdecode.sweep.executors import run_local
    from eegdecode.sweep.spec import RunSpec

    specs = [RunSpec(i, str(tmp_path / str(i)), {"model": "m", "seed": i}, {"protocol": "intra", "name": "s"}, "d")
             for i in range(4)]  # fmt: skip
    records = run_local(specs, local_slots([], workers=1, threads=1), task=_die_on_second)
    by_index = {r["index"]: r["status"] for r in records}
    assert sorted(by_index) == [0, 1, 2, 3]
    assert by_index[1] == "not run" and by_index[3] == "not run"
