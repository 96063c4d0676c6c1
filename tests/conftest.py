"""Test-wide settings: offline, deterministic, one thread per process (CI has 2 cores)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("WANDB_MODE", "offline")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    np.random.seed(0)  # noqa: NPY002
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory):
    """A simulated `tiny` THINGS-EEG2 data set with two subjects, written once per test session.

    Tests must not modify it (the trainer may add its cache under cache/); copy what you need to change.
    """
    from eegdecode.evaluation.ceiling import simulate_with_ceiling

    root = tmp_path_factory.mktemp("sim_tiny")
    simulate_with_ceiling(root, "tiny", n_subjects=2, seed=0, progress=False)
    return root


@pytest.fixture(scope="session")
def learning_root(tmp_path_factory):
    """A simulated data set big enough for short training runs to learn, written once per test session.

    ``small``'s training design (200 concepts x 5 images x 4 repetitions: 1,000 training images) with ``tiny``'s test
    design (20 concepts x 20 repetitions: the full gallery is 20-way, chance 5%), 32-pixel images, one subject,
    seed 0; about 15 s to simulate. Used by the learning tests (``tests/training/test_learning.py``,
    ``tests/training/test_recipe_learning.py``). Tests must not modify it.
    """
    from eegdecode.data.simulate import Preset
    from eegdecode.evaluation.ceiling import simulate_with_ceiling

    preset = Preset(n_train_concepts=200, images_per_concept=5, n_train_reps=4, n_test_concepts=20, n_test_reps=20,
                    image_size=32)  # fmt: skip
    root = tmp_path_factory.mktemp("sim_learning")
    simulate_with_ceiling(root, preset, n_subjects=1, seed=0, progress=False)
    return root
