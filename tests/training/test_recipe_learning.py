"""Every packaged recipe learns on simulated data: trained with its own settings and its ``simulated`` overrides
(``recipe_config(name, simulated=True)``), intra-subject, for a few epochs, its zero-shot test top-1 is well
above chance. This is also the test that every recipe's configuration builds a model and trains end to end.

Data: the session's ``learning_root`` (tests/conftest.py; shared with tests/training/test_learning.py): one
simulated subject, 1,000 training images (200 concepts x 5, 4 repetitions), 20 test concepts x 20 repetitions,
so the full gallery is 20-way (chance 5%). Thresholds, fixed before any seed other than the test's was run:
20-way top-1 >= 15% (3x chance, 3 of 20 queries) and 2-way top-1 >= 0.75 (mean over 20 seeded draws per
query), the pair tests/training/test_learning.py uses; an untrained encoder scores 5% +/- 5% and 0.50 +/-
0.05. Each test runs the recipe's own seed; the results are deterministic for a given machine and torch build.

What each test changes from the recipe, and why (:data:`CHANGES`; everything else is the recipe's):

- every recipe: ``epochs`` cut to 4-12 (the recipes ask for 40-200); ``device`` cpu, ``eval_draws`` 20 (the
  k-way draws of the final test only) and ``checkpoint_every`` = epochs (one checkpoint write).
- ``batch_size`` 64: the recipes' 512-1,024 exceed the 950 training images here (one optimiser step per
  epoch); 64 gives 14 steps per epoch, about what the recipes' batch gives on the real 16,540 training images.
- ``early_stopping`` off (ubp 5, samga 10, shallow_alignment 10 epochs of patience): patience as long as the
  shortened run, counted on a 10-concept validation split, only ends it early.
- samga: ``mmd_epochs`` 3 of 10 (the recipe: 20 of 60, the same third of the run).
- the deep recipes (atm_s: ATMS_50, nervformer_v2: NervformerV2, nice: NICE_EEG): the 17 posterior channels
  and the first 500 ms (17 x 125, where the simulated evoked components are) instead of 63 x 250, and atm_s /
  nervformer_v2 on repetition-averaged samples (their recipes: single trials); NervformerV2 at batch 32 (as the retired
  NervformerV2 learning test). On 63 x 250 single trials one epoch of ATMS_50 or NervformerV2 takes
  minutes on a CPU (bench/recipes_table.py: 162 s and 265 s per epoch of the full recipes on the ``small``
  set).

**Ridge.** Closed-form ridge (``--model ridge``, ``time_bin`` 5) on the recipe's target and the deep tests'
data options reaches 40% 20-way top-1 on this set (2-way 0.83-0.87), and no deep recipe beats it reliably
within the CI budget, so these tests stop at "beats chance" and the ridge comparison, at more epochs, is
``bench/recipe_learning.py``. NICE's test-set top-1 rises to 50-75% after 8-20 epochs, but the epoch is chosen
on validation top-1 over 10 held-out concepts (50 images, 50-way), which stays at 0.12-0.20 from epoch 3 on
and picks an early epoch in most seeds: at 10 epochs NICE scores 25 / 55 / 50 / 50% (seeds 2023 / 1 / 2 / 3;
30 / 45 / 40 / 45% with AdamW's default betas) against ridge's 40%, at 20 epochs 65 / 45 / 40% (seeds 2023 / 1 /
2; default betas, not measured with NICE's). ATMS_50 and NervformerV2 reach 15-30% in
4 epochs; with more epochs both beat ridge at seed 0 (bench/recipe_learning.py: NervformerV2 50% at 12
epochs, ATMS_50 35% at 12 and 50% at 20; 8-16 min each on the loaded machine).

Measured with these settings (2-core AMD EPYC, one thread; atm_s and nervformer_v2 on 2026-12-01 at load 7-15, the
others on 2026-12-02 after the merges below, at load 3-5; 20-way top-1 % at the recipe's seed, then at seeds 1 / 2 /
3 (atm_s, nervformer_v2: 1 / 2); 2-way top-1 at the same seeds; each test's time is in docs/training.md):

=================  ====  ======  ==================  =========================
recipe             seed  epochs  20-way top-1 %      2-way
=================  ====  ======  ==================  =========================
atm_s              0     4       30; 25 / 30         0.84; 0.86 / 0.83
multiblur          21    12      35; 45 / 35 / 25    0.87; 0.90 / 0.84 / 0.84
nervformer_v2      0     4       25; 30 / 15         0.80; 0.86 / 0.79
neurobridge        2025  4       40; 50 / 25 / 60    0.93; 0.96 / 0.90 / 0.96
nice               2023  10      25; 55 / 50 / 50    0.82; 0.93 / 0.94 / 0.93
samga              2025  10      20; 15 / 40 / 40    0.84; 0.88 / 0.89 / 0.89
shallow_alignment  0     12      35; 35 / 10 / 25    0.92; 0.96 / 0.64 / 0.91
ubp                0     4       30; 30 / 30 / 25    0.88; 0.85 / 0.86 / 0.86
=================  ====  ======  ==================  =========================

The six recipes that changed on 2026-12-02 took their papers' contrastive forms (softplus temperature, image side
alone normalised: neurobridge, samga, ubp), NICE's Adam betas, SAMGA's MMD-weight schedule and stage-2 rate, the
EEG smoothing prior (neurobridge, samga), NeuroBridge's four averaged image variants and linear head, the linear
head of shallow_alignment, and multiblur's BlurEEGEncoder with the learned mixture of its 12 blur levels and its
paper's loss (a fixed multiplier of 1, image side alone normalised; with CLIP's learnable temperature the same
runs scored 25; 30 / 15 / 25, 2-way 0.77; 0.86 / 0.85 / 0.87). Before
(20-way top-1; 2-way at the recipe's seed): multiblur (EEGProject, 4 epochs, mean rule) 50; 50 / 55 / 55 (0.97),
neurobridge 45; 30 / 45 / 30 (0.92), nice 30; 45 / 40 / 45 (0.84), samga 30; 30 / 25 / 45 (0.88),
shallow_alignment 20; 50 / 40 / 35 (0.87), ubp 45; 35 / 45 / 30 (0.91). Below the thresholds at a seed the tests do
not run: shallow_alignment at seed 2 (10%, 2-way 0.64: its validation split picks epoch 1), and at the threshold:
samga at seed 1 (15%). samga at its own seed (20%, 4 queries) is now the thinnest top-1 margin the tests run.

samga first ran 6 epochs with 2 of MMD: 25; 20 / 10 / 40% top-1, 2-way 0.88; 0.74 / 0.58 / 0.85, below the
thresholds at seeds 1 and 2, so its run was lengthened (the thresholds were not changed); with today's router
its test is the most seed-sensitive one. nervformer_v2 at seed 2 (3 queries, 2-way 0.79) is thin too; the test
does not run it. multiblur runs the paper's BlurEEGEncoder (non-negative
spatial filters): at 4 epochs it scored 25; 20 / 15 / 10%, 2-way 0.77; 0.72 / 0.81 / 0.69, below the 2-way
threshold at seeds 1 and 3, so its run was lengthened to 12 (the thresholds were not changed; 8 epochs still
failed at seed 3; that was with CLIP's learnable temperature, under which the validation split picked epoch 2 at
its own seed; with the paper's fixed multiplier it picks epoch 8). With unconstrained spatial weights the same 4
epochs reached 45; 45 / 30 / 45% (CLIP's temperature).
(The table's earlier multiblur row, 50; 50 / 55 / 55 at 4 epochs, was EEGProject's.)
"""

from __future__ import annotations

import pytest

from eegdecode.data.datasets import make_folds
from eegdecode.data.paths import DatasetPaths
from eegdecode.training.recipes import list_recipes, merge, recipe_config
from eegdecode.training.trainer import TrainConfig, train_fold

#: the learning_root's full gallery: 20 test concepts
K = "20"
MIN_TOP1 = 0.15  # 3x chance (0.05)
MIN_2WAY = 0.75

_SHORT = {"batch_size": 64, "early_stopping": None}
#: 17 posterior channels, 0-500 ms, repetitions averaged: what makes the deep encoders fit the CI budget
_DEEP_DATA = {"data": {"channels": "posterior17", "time_window": [0.0, 0.5], "train_unit": "average"}}

#: each recipe's changes for a short CPU run (see the module docstring for why)
CHANGES: dict[str, dict] = {
    "atm_s": {"epochs": 4, **_SHORT, **_DEEP_DATA},
    "multiblur": {"epochs": 12, **_SHORT},
    "nervformer_v2": {"epochs": 4, **_SHORT, "batch_size": 32, **_DEEP_DATA},
    "neurobridge": {"epochs": 4, **_SHORT},
    "nice": {"epochs": 10, **_SHORT, **_DEEP_DATA},
    "samga": {"epochs": 10, "mmd_epochs": 3, **_SHORT},
    "shallow_alignment": {"epochs": 12, **_SHORT},
    "ubp": {"epochs": 4, **_SHORT},
}


def recipe_run_config(name: str, seed: int | None = None) -> TrainConfig:
    """The recipe's simulated settings with the test's changes (and ``seed`` instead of the recipe's, if given)."""
    changes = CHANGES[name]
    cfg = merge(recipe_config(name, simulated=True, protocol="intra"), changes)
    cfg.update(device="cpu", eval_draws=20, checkpoint_every=changes["epochs"], recipe=name)
    if seed is not None:
        cfg["seed"] = seed
    return TrainConfig.from_dict(cfg)


def run(cfg: TrainConfig, root, run_dir) -> dict:
    return train_fold(cfg, DatasetPaths(root), make_folds("intra", [1])[0], run_dir, progress=False)


def scores(res: dict) -> tuple[float, float]:
    """(20-way top-1, 2-way top-1) of a run's test results."""
    assert res["kway"]["k"][K]["chance_top1"] == 0.05
    return res["kway"]["k"][K]["top1_mean"], res["kway"]["k"]["2"]["top1_mean"]


def test_every_recipe_has_a_learning_test():
    assert sorted(CHANGES) == list_recipes()


@pytest.mark.parametrize("name", sorted(CHANGES))
def test_recipe_learns_on_simulated_data(learning_root, tmp_path, name):
    cfg = recipe_run_config(name)
    res = run(cfg, learning_root, tmp_path / name)
    assert res["recipe"] == name and res["seed"] == recipe_config(name)["seed"]
    top1, two_way = scores(res)
    assert top1 >= MIN_TOP1, f"{name}: 20-way top-1 {top1:.2f}, chance 0.05"
    assert two_way >= MIN_2WAY, f"{name}: 2-way top-1 {two_way:.2f}"
