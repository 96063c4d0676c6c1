"""The grid file, its expansion into run specs, and the state of each run read from its folder.

A grid file (YAML or JSON; ``eegdecode/configs/sweep_example.yaml`` is a commented example)::

    out: runs/study            # folder of run folders (flag --out overrides)
    data_root: data            # default: $EEGDECODE_DATA
    release: 250hz             # 250hz | 100hz | meg
    subjects: [1, 2, 3]        # the subject pool (default: every subject of the release)
    test_subjects: [1, 2]      # test subjects of the folds (default: every subject of the pool)
    processes_per_run: 1       # >1: each run is one DDP job of that many processes (one GPU each)
    base:                      # TrainConfig keys shared by every run, as in `eegdecode train --config`
      epochs: 40
      data: {channels: posterior17}
    grid:                      # axes; the runs are their product
      model: [NervformerV2, MUSE_EEG]
      protocol: [intra, loso]
      seed: [0, 1, 2]
      lr: [0.0003, 0.001]      # any TrainConfig key ...
      data.channels: [all, posterior17]   # ... or a dotted key of data / model_options / loss_options
    executor: {kind: local, workers: 2}   # defaults of the executor flags (see eegdecode.sweep.executors)

Folds come from :func:`eegdecode.data.datasets.make_folds` (protocol, subjects, test_subjects), one run per fold and
seed. Each run lives in the usual folder, :func:`eegdecode.training.runs.run_dir`; when axes other than ``model``,
``protocol`` and ``seed`` take more than one value, the folder is placed under a variant folder naming them
(``<out>/lr=0.001,data.channels=all/<model>/<protocol>/<fold>/seed<seed>``), so no two runs share a folder and each
variant is one ``summarize`` table.

Where a ``recipe`` axis goes (once ``--recipe NAME`` exists): in :func:`_run_config`, a recipe's keys are the first
layer (recipe < ``base`` < axis values, as flags override a recipe in ``train``), and ``recipe`` joins ``model``
as a reserved axis that names the variant folder. Nothing else changes: specs stay plain dictionaries.

State of a run, from its folder only (so any executor, or a later invocation, sees the same thing):
``results.json`` -> done; ``sweep_failure.json`` -> failed (its error line is shown); ``sweep_running.json`` written
by a live process (or a submitted SLURM job) -> running; anything else -> pending (continues from
``checkpoints/last`` when there is one).
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eegdecode.errors import ConfigError, DataFormatError, EEGDecodeError, MissingFileError

RESULTS_NAME = "results.json"
FAILURE_NAME = "sweep_failure.json"
RUNNING_NAME = "sweep_running.json"
PLAN_NAME = "sweep_plan.json"
RECORD_NAME = "sweep_record.json"

#: Top-level keys of a grid file.
GRID_FILE_KEYS = ("out", "data_root", "release", "subjects", "test_subjects", "processes_per_run", "base", "grid",
                  "executor")  # fmt: skip
#: Axes that are not TrainConfig keys, or that place the run folder.
RESERVED_AXES = ("model", "protocol", "seed")
#: TrainConfig fields that are dictionaries, addressable as ``field.key`` in the grid.
NESTED_FIELDS = ("data", "model_options", "loss_options", "target", "mmd_options")

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"


class SweepIncompleteError(EEGDecodeError):
    """Some runs of a sweep failed or did not run; the others finished. Exit code 1."""


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: everything :func:`eegdecode.sweep.run.run_one` needs, as plain picklable data."""

    index: int
    run_dir: str
    config: dict[str, Any]  # TrainConfig.to_dict()
    fold: dict[str, Any]  # dataclasses.asdict(Fold)
    data_root: str
    release: str = "250hz"
    variant: str = ""
    processes: int = 1

    @property
    def label(self) -> str:
        seed = self.config["seed"]
        head = f"{self.variant} | " if self.variant else ""
        return f"{head}{self.config['model']} | {self.fold['protocol']} | {self.fold['name']} | seed {seed}"


@dataclass
class Sweep:
    """An expanded grid: its runs in order, and the options the executors read."""

    source: str
    out: Path
    specs: list[RunSpec]
    executor: dict[str, Any] = field(default_factory=dict)
    variants: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------------------
# Reading the grid
# ------------------------------------------------------------------------------------------------------------


def read_grid_file(path: str | Path | None) -> dict[str, Any]:
    """The grid file as a dictionary (``{}`` without a file); unknown top-level keys are refused."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(path, "the grid file of `eegdecode sweep` names no file")
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(path.read_text()) or {}
        else:
            data = json.loads(path.read_text())
    except Exception as exc:  # yaml.YAMLError, json.JSONDecodeError
        raise DataFormatError(path, f"cannot be parsed ({type(exc).__name__}: {exc})") from exc
    if not isinstance(data, dict):
        raise DataFormatError(
            path, "not a grid", "a mapping of " + ", ".join(GRID_FILE_KEYS), type(data).__name__
        )
    unknown = [k for k in data if k not in GRID_FILE_KEYS]
    if unknown:
        raise ConfigError(
            f"{path}: unknown key {unknown[0]!r}; a grid file has the keys {', '.join(GRID_FILE_KEYS)}"
        )
    for key in ("base", "grid", "executor"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            raise ConfigError(f"{path}: {key} must be a mapping, found {type(data[key]).__name__}")
    return data


def _check_key(key: str, where: str) -> None:
    from eegdecode.data.datasets import DataOptions
    from eegdecode.training.trainer import TrainConfig

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    head, _, tail = key.partition(".")
    if head not in fields:
        raise ConfigError(
            f"{where}: unknown key {key!r}; expected a TrainConfig key ({', '.join(sorted(fields))}) or "
            f"{', '.join(n + '.KEY' for n in NESTED_FIELDS)}"
        )
    if tail and head not in NESTED_FIELDS:
        raise ConfigError(f"{where}: {key!r}: only {', '.join(NESTED_FIELDS)} take a dotted key")
    if head == "data" and tail:
        data_keys = {f.name for f in dataclasses.fields(DataOptions)}
        if tail not in data_keys:
            raise ConfigError(f"{where}: unknown key {key!r}; data keys are {', '.join(sorted(data_keys))}")


def _set(config: dict[str, Any], key: str, value: Any) -> None:
    head, _, tail = key.partition(".")
    if tail:
        inner = config.get(head)
        config[head] = inner = dict(inner or {})
        inner[tail] = value
    else:
        config[head] = value


def _values(axis: str, values: Any, where: str) -> list[Any]:
    values = values if isinstance(values, list) else [values]
    if not values:
        raise ConfigError(f"{where}: axis {axis!r} has no values")
    if len({json.dumps(v, sort_keys=True, default=str) for v in values}) != len(values):
        raise ConfigError(f"{where}: axis {axis!r} lists a value twice: {values}")
    return values


def _tag_value(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "+".join(_tag_value(v) for v in value)
    if isinstance(value, float):
        return format(value, "g")
    if isinstance(value, dict):
        return "+".join(f"{k}-{_tag_value(v)}" for k, v in sorted(value.items()))
    return "".join(c if c.isalnum() or c in "-_.+" else "_" for c in str(value))


def _run_config(
    base: dict[str, Any], model: str, combo: dict[str, Any], default_features: str
) -> dict[str, Any]:
    """The TrainConfig dictionary of one grid point (``base`` < axis values; see the module docstring for recipes)."""
    cfg = copy.deepcopy(base)
    cfg["model"] = model
    for key, value in combo.items():
        _set(cfg, key, value)
    data = dict(cfg.get("data") or {})
    if isinstance(data.get("channels"), str) and "," in data["channels"]:
        data["channels"] = [c.strip() for c in data["channels"].split(",")]
    cfg["data"] = data
    cfg.setdefault("features", default_features)
    return cfg


def expand(grid: dict[str, Any], source: str = "the grid", out: str | Path | None = None,
           data_root: str | Path | None = None) -> Sweep:  # fmt: skip
    """Every run of a grid (file content plus flags, see :func:`eegdecode.commands.sweep.grid_from_args`), each
    TrainConfig built and checked, the data root and subjects checked; nothing is written."""
    from eegdecode.data.datasets import make_folds
    from eegdecode.data.paths import DatasetPaths, resolve_data_root, subject_name
    from eegdecode.training.runs import run_dir
    from eegdecode.training.trainer import TrainConfig

    out = out if out is not None else grid.get("out")
    if not out:
        raise ConfigError(f"{source}: no output folder; give `out:` in the grid file or --out")
    base = dict(grid.get("base") or {})
    for key in base:
        _check_key(key, f"{source}: base")
    for key in base.get("data") or {}:
        _check_key(f"data.{key}", f"{source}: base")
    axes = dict(grid.get("grid") or {})
    if "subject" in axes or "subjects" in axes:
        raise ConfigError(
            f"{source}: grid: subjects are not an axis; give `subjects:` / `test_subjects:` at the top"
        )
    for key in axes:
        if key not in RESERVED_AXES:
            _check_key(key, f"{source}: grid")
    axes = {k: _values(k, v, f"{source}: grid") for k, v in axes.items()}
    processes = grid.get("processes_per_run", 1)
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise ConfigError(f"{source}: processes_per_run: expected a positive integer, found {processes!r}")
    root = resolve_data_root(data_root or grid.get("data_root")).resolve()
    paths = DatasetPaths(root, grid.get("release") or "250hz")
    out = Path(out).expanduser().resolve()
    found = paths.subjects()
    subjects = grid.get("subjects") or found
    missing = [s for s in subjects if subject_name(s) not in found]
    if missing:
        raise MissingFileError(
            paths.subject_dir(missing[0]), f"subject {missing[0]} of {source} is not in the release"
        )
    test_subjects = grid.get("test_subjects")
    default_features = "reference" if (paths.root / "simulation.json").exists() else "ViT-H-14"

    models = axes.pop("model", [base.pop("model", TrainConfig.model)])
    base.pop("model", None)
    protocols = axes.pop("protocol", ["intra"])
    seeds = axes.pop("seed", [base.pop("seed", TrainConfig.seed)])
    base.pop("seed", None)
    varying = [k for k, v in axes.items() if len(v) > 1]
    folds = {p: make_folds(p, subjects, test_subjects) for p in protocols}

    specs: list[RunSpec] = []
    seen: dict[Path, str] = {}
    variants: list[str] = []
    for model in models:
        for combo_values in itertools.product(*axes.values()):
            combo = dict(zip(axes, combo_values))
            variant = ",".join(f"{k}={_tag_value(combo[k])}" for k in varying)
            if variant not in variants:
                variants.append(variant)
            raw = _run_config(base, model, combo, default_features)
            try:
                cfg = TrainConfig.from_dict({**raw, "seed": seeds[0]})
            except (ConfigError, TypeError) as exc:
                where = f"{model}" + (f", {variant}" if variant else "")
                raise ConfigError(f"{source}: run {where}: {exc}") from exc
            for protocol in protocols:
                for fold in folds[protocol]:
                    for seed in seeds:
                        if not isinstance(seed, int) or isinstance(seed, bool):
                            raise ConfigError(f"{source}: grid: seed {seed!r} is not an integer")
                        run_cfg = dataclasses.replace(cfg, seed=seed).to_dict()
                        path = run_dir(out / variant if variant else out, model, protocol, fold.name, seed)
                        spec = RunSpec(len(specs), str(path), run_cfg, dataclasses.asdict(fold), str(paths.root),
                                       paths.release, variant, processes)  # fmt: skip
                        if path in seen:
                            raise ConfigError(
                                f"{source}: runs {seen[path]!r} and {spec.label!r} share {path}"
                            )
                        seen[path] = spec.label
                        specs.append(spec)
    return Sweep(source, out, specs, dict(grid.get("executor") or {}), variants)


def plan_record(sweep: Sweep) -> dict[str, Any]:
    """``sweep_plan.json``: the expanded grid, written beside the runs for the record."""
    return {
        "format": "eegdecode-sweep-plan/1",
        "source": sweep.source,
        "n_runs": len(sweep.specs),
        "variants": sweep.variants,
        "runs": [dataclasses.asdict(s) for s in sweep.specs],
    }


# ------------------------------------------------------------------------------------------------------------
# State of a run, from its folder
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunState:
    status: str  # pending | running | done | failed
    detail: str = ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_marker(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def run_state(run_dir: str | Path) -> RunState:
    """The state of one run folder (see the module docstring); a few ``stat`` calls, nothing written."""
    run_dir = Path(run_dir)
    if (run_dir / RESULTS_NAME).exists():
        return RunState(DONE)
    failure = run_dir / FAILURE_NAME
    if failure.exists():
        return RunState(FAILED, str(_read_marker(failure).get("error", "")))
    running = run_dir / RUNNING_NAME
    if running.exists():
        marker = _read_marker(running)
        job = marker.get("job_id")
        if marker.get("host") is None and job:
            return RunState(RUNNING, f"submitted as job {job}")
        if marker.get("host") != socket.gethostname():
            return RunState(RUNNING, f"on {marker.get('host')}" + (f" (job {job})" if job else ""))
        if isinstance(marker.get("pid"), int) and _alive(marker["pid"]):
            return RunState(RUNNING, f"process {marker['pid']}")
    last = run_dir / "checkpoints" / "last.json"
    if last.exists():
        epoch = _read_marker(last).get("epoch")
        return RunState(
            PENDING, f"continues after epoch {epoch + 1}" if isinstance(epoch, int) else "continues"
        )
    return RunState(PENDING)


def scan(specs: list[RunSpec]) -> list[RunState]:
    return [run_state(s.run_dir) for s in specs]


def _plain(value: Any) -> Any:
    """``value`` as JSON stores it (tuples as lists), to compare a spec with a stored ``config.json``."""
    return json.loads(json.dumps(value, default=str))


def check_resumable(specs: list[RunSpec], states: list[RunState]) -> None:
    """Refuse, before anything runs, a run folder that holds another configuration than its spec: an unfinished
    run that ``train --resume`` would refuse, or a finished run that differs in anything but where and how it ran
    (the keys ``--resume`` may change, ``epochs`` excepted); it would otherwise be skipped as done while the grid
    asks for something else."""
    from eegdecode.training.runs import RESUME_SAFE_KEYS, resume_changes

    where_keys = [k for k in RESUME_SAFE_KEYS if k != "epochs"]

    for spec, state in zip(specs, states):
        stored_path = Path(spec.run_dir) / "config.json"
        if not stored_path.exists():
            continue
        if state.status != DONE:
            resume_changes(Path(spec.run_dir), spec.config, 0)
            continue
        try:
            stored = json.loads(stored_path.read_text())
        except (OSError, ValueError) as exc:
            raise DataFormatError(stored_path, f"cannot be read ({exc})") from exc
        wanted = _plain(spec.config)
        found = _plain({k: stored.get(k) for k in wanted})
        differing = [k for k in wanted if k not in where_keys and found[k] != wanted[k]]
        if differing:
            k = differing[0]
            raise ConfigError(
                f"{stored_path}: a finished run with {k} {stored.get(k)!r}, the grid asks {wanted[k]!r}"
                f"{f' (and {len(differing) - 1} more keys)' if len(differing) > 1 else ''}; give the sweep "
                "another out, or remove that run folder"
            )


def estimate(specs: list[RunSpec], states: list[RunState], todo: list[RunSpec], slots: int) -> dict[str, Any]:
    """Wall time of ``todo`` on ``slots`` parallel workers, from the wall times (``sweep_record.json``) of the
    finished runs of the same kind (variant, model, protocol); runs of a kind with none finished are counted apart.
    """
    times: dict[tuple, list[float]] = {}
    for spec, state in zip(specs, states):
        record = Path(spec.run_dir) / RECORD_NAME
        if state.status == DONE and record.exists():
            seconds = _read_marker(record).get("seconds")
            if isinstance(seconds, int | float):
                times.setdefault(_kind(spec), []).append(float(seconds))
    total, unknown = 0.0, 0
    for spec in todo:
        known = times.get(_kind(spec))
        if known:
            total += sum(known) / len(known)
        else:
            unknown += 1
    return {"seconds": total / max(1, slots), "run_seconds": total, "measured": sum(map(len, times.values())),
            "unmeasured": unknown}  # fmt: skip


def _kind(spec: RunSpec) -> tuple:
    return spec.variant, spec.config["model"], spec.fold["protocol"]
