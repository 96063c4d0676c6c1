"""Shared run folders of the report tests (built once per session, see report_test_helpers)."""

import pytest
from report_test_helpers import build_runs


@pytest.fixture(scope="session")
def report_runs(tmp_path_factory):
    """``out/`` with ``data/``, ``runs/`` and ``gen/``; the ridge runs already have their profiles.json.

    Tests must not modify it; copy what they change.
    """
    from eegdecode.evaluation.profiles import compute_profiles

    out = build_runs(tmp_path_factory.getbasetemp() / "report_runs")
    for run in sorted((out / "runs").glob("*/intra/*/seed0")):
        compute_profiles(run, device="cpu")
    return out
