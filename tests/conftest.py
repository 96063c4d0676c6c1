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
