"""bench/recipes_table.py: the subject options (leave-one-subject-out on a subset of a larger simulated set)."""

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest

from eegdecode.data.datasets import make_folds

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "recipes_table.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("recipes_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _args(subjects=9, tests=None, loso_subjects=None, loso=True):
    return SimpleNamespace(subjects=subjects, subject_list=list(range(1, subjects + 1)), test_subjects=tests,
                           loso_subjects=loso_subjects, loso=loso)  # fmt: skip


def test_loso_subjects_choose_the_training_subjects_of_the_fold(bench):
    args = _args(loso_subjects=[1, 2, 3, 4])
    assert bench.check_subjects(args) is None
    (fold,) = make_folds("loso", bench.fold_subjects(args, "loso"), [1])
    assert fold.train_subjects == ["sub-02", "sub-03", "sub-04"] and fold.test_subjects == ["sub-01"]
    assert bench.fold_subjects(args, "intra") == list(range(1, 10))  # intra folds use their own subject only
    (whole,) = make_folds("loso", bench.fold_subjects(_args(), "loso"), [1])
    assert len(whole.train_subjects) == 8


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (_args(loso_subjects=[2, 3, 4, 5]), "expected to hold the test subjects [1]; found [2, 3, 4, 5]"),
        (
            _args(loso_subjects=[1, 2, 3]),
            "expected at least 4 subjects (--subjects or --loso-subjects); found 3",
        ),
        (_args(subjects=3), "found 3"),
        (_args(loso_subjects=[1, 2, 3, 10]), "--loso-subjects: expected distinct subjects among 1 .. 9"),
        (_args(loso_subjects=[1, 1, 2, 3]), "--loso-subjects: expected distinct subjects"),
        (_args(tests=[12]), "--test-subjects: expected distinct subjects among 1 .. 9; found [12]"),
    ],
)
def test_bad_subject_options_are_named(bench, args, message):
    assert message in bench.check_subjects(args)


def test_bad_subject_options_stop_before_any_run(bench, tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        bench.main(["--data-root", str(tmp_path / "none"), "--subjects", "9", "--loso", "--loso-subjects", "2", "3",
                    "4", "5", "--out", str(tmp_path / "out")])  # fmt: skip
    assert err.value.code == 2
    assert "expected to hold the test subjects [1]" in capsys.readouterr().err
    assert not (tmp_path / "none").exists() and not (tmp_path / "out").exists()


def test_ridge_config_replaces_the_router_and_the_blur_rule(bench):
    cfg = {"model": "EEGProject", "seed": 3, "data": {"channels": "posterior17"},
           "target": {"layers": ["block:5", "block:6"], "combine": "router", "router": {"centre": 5},
                      "blur": ["ubp"], "blur_rule": "uncertainty", "eval_variant": "medium"}}  # fmt: skip
    ridge = bench.ridge_config(cfg)
    assert ridge["model"] == "ridge" and ridge["seed"] == 3 and ridge["data"] == cfg["data"]
    assert ridge["target"] == {"layers": ["block:5", "block:6"], "combine": "concat", "blur": ["ubp"],
                               "blur_rule": "fixed"}  # fmt: skip
    assert cfg["target"]["combine"] == "router"  # the recipe's config is left as it was


def _bench_args(root, out, **kw):
    args = dict(data_root=str(root), out=str(out), subjects=2, subject_list=[1, 2], test_subjects=None,
                loso_subjects=None, loso=False, epochs_cap=1, cap_for={}, device="cpu", batches="auto",
                reuse=False, table_only=False, drop_checkpoints=True)  # fmt: skip
    return SimpleNamespace(**(args | kw))


def test_table_only_reads_finished_runs_with_their_seconds_and_skips_the_rest(bench, tiny_root, tmp_path):
    from eegdecode.training.recipes import recipe_config

    ridge = bench.ridge_config(recipe_config("neurobridge", simulated=True))
    first = bench.Bench(_bench_args(tiny_root, tmp_path))
    ran = first.run("neurobridge - ridge", "recipe", ridge, "intra", 1, bench.RIDGE_SEED)
    assert ran is not None and ran["seconds"] > 0 and ran["kway"]
    run_dir = Path(ran["run_dir"])
    assert (run_dir / "results.json").exists() and not (run_dir / "checkpoints").exists()
    again = bench.Bench(_bench_args(tiny_root, tmp_path, table_only=True))
    read = again.run("neurobridge - ridge", "recipe", ridge, "intra", 1, bench.RIDGE_SEED)
    assert read["seconds"] == ran["seconds"] and read["kway"] == ran["kway"]  # read back, not run again
    assert (
        again.run("neurobridge - ridge", "recipe", ridge, "intra", 2, bench.RIDGE_SEED) is None
    )  # never ran
    assert [r["subject"] for r in again.records] == [1]
    (row,) = [r for r in bench.aggregate(again.records) if r["model"] == "ridge"]
    assert row["n_runs"] == 1 and row["seconds"] == ran["seconds"]


class _Recorder:
    """A stand-in for Bench that records what would run."""

    def __init__(self):
        self.calls = []

    def run(self, row, group, cfg, protocol, subject, seed, extra=None):
        self.calls.append((row, cfg["model"], cfg["data"]["channels"], cfg["data"]["train_unit"], seed))


def test_ablation_rows_choose_what_runs_and_best_needs_a_block(bench):
    rec = _Recorder()
    bench.ablation_runs(rec, "intra", 1, [0, 1], None, ["base", "best", "channels"])
    assert rec.calls == [
        ("base: embedding, no blur, 17 ch, averaged", "EEGProject", "posterior17", "average", 0),
        ("base: embedding, no blur, 17 ch, averaged", "EEGProject", "posterior17", "average", 1),
        ("base - ridge", "ridge", "posterior17", "average", bench.RIDGE_SEED),
        ("63 channels", "EEGProject", "all", "average", 0),
        ("63 channels", "EEGProject", "all", "average", 1),
    ]  # no "best" row without a block
    rec = _Recorder()
    bench.ablation_runs(rec, "loso", 1, [0], "block:7", None)
    assert [c[0] for c in rec.calls] == [
        "base: embedding, no blur, 17 ch, averaged", "best single block (block:7, by ridge validation)",
        "routed blocks (samga's, router)", "blur ubp (uncertainty rule)", "63 channels", "single-trial training",
    ]  # fmt: skip


def test_the_table_names_every_target_variant_and_head(bench):
    """A run's target label says which variants and rule and head it trained on (neurobridge: four variants
    averaged through a linear head), not the first variant alone."""
    nb = {"layers": ["embedding"], "blur": ["gaussian:15", "noise:25", "lowres:0.1", "mosaic:5"],
          "blur_rule": "mean", "head": {"kind": "linear", "embed_dim": 512}}  # fmt: skip
    assert (
        bench.describe_target(nb)
        == "embedding, blur gaussian:15+noise:25+lowres:0.1+mosaic:5 (mean), linear head 512"
    )
    assert bench.describe_target({"layers": ["embedding"], "blur": ["ubp"], "blur_rule": "uncertainty"}) == (
        "embedding, blur ubp (uncertainty)"
    )
    routed = {"layers": ["block:5", "block:9"], "combine": "router"}
    assert bench.describe_target(routed) == "block:5 .. block:9 (2) router"
