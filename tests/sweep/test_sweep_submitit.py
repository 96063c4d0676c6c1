"""The submitit path: sbatch parameters of a job array (with stand-in sbatch/srun), submitit's local and debug
executors end to end, requeue continuing from the last checkpoint, and failed runs rerun on request."""

import json
import os
import stat
from pathlib import Path

import pytest
import submitit

from eegdecode import faults
from eegdecode.cli import main
from eegdecode.data.datasets import Fold
from eegdecode.data.paths import DatasetPaths
from eegdecode.errors import ConfigError
from eegdecode.sweep.executors import RunJob, SlurmOptions, check_submitit
from eegdecode.sweep.run import run_one
from eegdecode.sweep.spec import DONE, FAILED, RUNNING_NAME, expand, read_grid_file, run_state, scan
from eegdecode.training.trainer import TrainConfig, train_fold


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """``sbatch`` that answers like SLURM (job 4242) and records its calls; an ``srun`` that exists."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "sbatch_calls.txt"
    scripts = {
        "sbatch": f'#!/bin/sh\necho "$1" >> {calls}\necho "Submitted batch job 4242"\n',
        "srun": "#!/bin/sh\n",
    }
    for name, text in scripts.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return calls


def _sbatch_lines(calls: Path) -> list[str]:
    (submitted,) = calls.read_text().split()
    return [line for line in Path(submitted).read_text().splitlines() if line.startswith("#SBATCH")]


def test_slurm_job_array_with_the_requested_parameters(write_grid, tmp_path, fake_slurm, capsys):
    path = write_grid({"seed": [0, 1, 2]}, subjects=[1], executor={"kind": "slurm", "partition": "gpu"})
    argv = ["sweep", str(path), "--timeout-min", "90", "--mem-gb", "12", "--cpus-per-task", "4", "--array-parallelism",
            "2", "--slurm-param", "account=lab", "--slurm-param", "constraint=a100", "--no-wait"]  # fmt: skip
    assert main(argv) == 0
    assert "submitted 3 job(s): 4242" in capsys.readouterr().out
    lines = _sbatch_lines(fake_slurm)
    for expected in ("--array=0-2%2", "--time=90", "--mem=12GB", "--cpus-per-task=4", "--partition=gpu",
                     "--account=lab", "--constraint=a100", "--gpus-per-node=1", "--ntasks-per-node=1",
                     "--signal=USR2@90", "--job-name=eegdecode-sweep"):  # fmt: skip
        assert f"#SBATCH {expected}" in lines, (expected, lines)
    # Submitted runs are marked, so running the sweep again submits nothing twice ...
    specs = expand(read_grid_file(path), str(path)).specs
    assert [run_state(s.run_dir).detail for s in specs] == [f"submitted as job 4242_{i}" for i in range(3)]
    assert main(["sweep", str(path), "--dry-run"]) == 0
    assert "3 runs (3 running); 0 to run" in capsys.readouterr().out
    # ... unless asked to take the runs over (a job cancelled before it started leaves its mark).
    assert main(["sweep", str(path), "--dry-run", "--take-over"]) == 0
    assert "3 to run" in capsys.readouterr().out


def test_ddp_runs_ask_for_one_task_and_gpu_per_process(write_grid, fake_slurm, capsys):
    path = write_grid(subjects=[1], processes_per_run=2)
    assert main(["sweep", str(path), "--executor", "slurm", "--gpus-per-task", "1", "--no-wait"]) == 0
    lines = _sbatch_lines(fake_slurm)
    assert "#SBATCH --ntasks-per-node=2" in lines and "#SBATCH --gpus-per-node=2" in lines
    assert not any("--array" in line for line in lines)  # a single run is a single job


def test_slurm_needs_sbatch_and_options_are_checked(write_grid, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match="sbatch and srun not found"):
        check_submitit("slurm")
    check_submitit("debug")
    with pytest.raises(ConfigError, match="timeout_min"):
        SlurmOptions(timeout_min=0)
    path = write_grid(subjects=[1], executor={"kind": "debug", "mem": 3})
    assert main(["sweep", str(path)]) == 2
    assert "unknown executor option 'mem'" in capsys.readouterr().err


def test_debug_and_local_executors_run_the_grid(write_grid, tmp_path, capsys):
    path = write_grid({"seed": [0, 1]}, subjects=[1])
    assert main(["sweep", str(path), "--executor", "debug", "--no-report", "--limit", "1"]) == 0
    assert main(["sweep", str(path), "--executor", "submitit-local"]) == 0
    out = capsys.readouterr().out
    assert "2 runs (1 done, 1 pending); 1 to run" in out
    assert "[1/1] done   MUSE_EEG | intra | sub-01 | seed 1" in out
    assert (
        "Summary over 2 runs" in out and "| intra | MUSE_EEG | 2 |" in out
    )  # summarize over the whole sweep
    sweep = expand(read_grid_file(path), str(path))
    assert (sweep.out / "report.html").is_file()  # and `eegdecode report` over it
    specs = sweep.specs
    assert all(s.status == DONE for s in scan(specs))
    assert not any((Path(s.run_dir) / RUNNING_NAME).exists() for s in specs)


def test_checkpoint_requeues_the_run_and_it_continues_from_last(write_grid, tiny_root, tmp_path):
    path = write_grid(subjects=[1], base={"epochs": 2})
    (spec,) = expand(read_grid_file(path), str(path)).specs
    cfg, fold, paths = TrainConfig.from_dict(spec.config), Fold(**spec.fold), DatasetPaths(tiny_root)
    train_fold(cfg, paths, fold, spec.run_dir, progress=False, stop_after_epoch=0)  # preempted after epoch 1
    delayed = RunJob().checkpoint(spec)
    assert isinstance(delayed, submitit.helpers.DelayedSubmission)
    assert isinstance(delayed.function, RunJob) and delayed.args == (spec,)
    delayed.result()  # what the requeued job runs
    rows = [json.loads(line) for line in (Path(spec.run_dir) / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1]
    train_fold(cfg, paths, fold, tmp_path / "alone", progress=False)
    assert json.loads((Path(spec.run_dir) / "results.json").read_text()) == json.loads(
        (tmp_path / "alone" / "results.json").read_text()
    )


def test_a_failed_run_is_reported_and_rerun_only_on_request(write_grid, capsys, caplog):
    path = write_grid(subjects=[1])
    (spec,) = expand(read_grid_file(path), str(path)).specs

    def crash(name):
        if name == "last.json":  # the last checkpoint is written, the evaluation never happens
            raise OSError("disk full")

    with faults.inject(crash), pytest.raises(OSError, match="disk full"):
        run_one(spec)
    state = run_state(spec.run_dir)
    assert state.status == FAILED and state.detail == "OSError: disk full"
    assert not (Path(spec.run_dir) / RUNNING_NAME).exists()
    assert main(["sweep", str(path), "--executor", "debug", "--no-report"]) == 1
    out, err = capsys.readouterr()
    assert (
        "0 to run" in out
        and "1 of 1 runs failed or did not finish" in err
        and "failed OSError: disk full" in err
    )
    with caplog.at_level("INFO", logger="eegdecode.training.trainer"):
        assert main(["sweep", str(path), "--executor", "debug", "--no-report", "--rerun-failed"]) == 0
    assert run_state(spec.run_dir).status == DONE
    assert (
        f"resuming {spec.run_dir} after epoch 0" in caplog.text
    )  # from the last checkpoint the failure left
