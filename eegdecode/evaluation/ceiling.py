"""The retrieval ceiling of a simulated data set.

The simulator knows every test image's noise-free response and the noise covariance, so the ideal decoder (Gaussian
log-likelihood of the query under each candidate's template) gives the best k-way accuracy any model could reach on
that data. ``eegdecode simulate`` writes it to ``ceiling.json``; tables print it beside each model's score.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from eegdecode.data.paths import subject_name
from eegdecode.evaluation.kway import KWayResult, kway_from_scores, standard_ks
from eegdecode.io import read_json, write_json


def ceiling_kway(
    subject, test: np.ndarray, n_reps: int | None = None, n_draws: int = 100, seed: int = 0
) -> KWayResult:
    """k-way accuracy of the ideal decoder on test data (n_images, n_reps, chans, times), the first ``n_reps``
    repetitions averaged (all when ``None``)."""
    from eegdecode.data.simulate import ceiling_scores

    queries = test[:, : n_reps or test.shape[1]].mean(axis=1)
    scores = ceiling_scores(subject, queries)
    return kway_from_scores(
        scores, ks=standard_ks(len(queries)), n_draws=n_draws, seed=seed, metric="ideal-decoder"
    )


def ceiling_record(subject, test: np.ndarray, n_draws: int = 100, seed: int = 0) -> dict[str, Any]:
    """What ``ceiling.json`` stores for one subject: all repetitions averaged, and single trials."""
    return {
        "n_reps_averaged": int(test.shape[1]),
        "kway": ceiling_kway(subject, test, None, n_draws, seed).to_dict(),
        "single_trial": ceiling_kway(subject, test, 1, n_draws, seed).to_dict(),
    }


def write_ceiling(root: str | Path, records: dict[str, dict[str, Any]]) -> Path:
    return write_json(Path(root) / "ceiling.json", {"format": "eegdecode-ceiling/1", "subjects": records})


def load_ceiling(
    root: str | Path, subject: int | str, n_reps: int | None = None
) -> tuple[KWayResult | None, str | None]:
    """The ceiling of one subject of a simulated data set for queries averaged over ``n_reps`` test repetitions
    (``None``: all), and a note when there is none to show.

    ``ceiling.json`` holds the ceiling for all repetitions averaged and for single trials; for another number of
    repetitions no ceiling is given (a note says so) rather than one computed for a different query. Real data
    have no ``ceiling.json``: ``(None, None)``.
    """
    path = Path(root) / "ceiling.json"
    if not path.exists():
        return None, None
    rec = read_json(path)["subjects"].get(subject_name(subject))
    if rec is None:
        return None, None
    if n_reps is None or n_reps == rec["n_reps_averaged"]:
        return KWayResult.from_dict(rec["kway"]), None
    if n_reps == 1 and "single_trial" in rec:
        return KWayResult.from_dict(rec["single_trial"]), None
    return None, (
        f"ceiling not shown: {path} holds it for {rec['n_reps_averaged']} averaged repetitions and single "
        f"trials, not for {n_reps}"
    )


def simulate_with_ceiling(
    out: str | Path, preset="small", n_subjects: int = 1, seed: int = 0, **kwargs
) -> dict[str, Any]:
    """:func:`eegdecode.data.simulate.simulate_dataset` plus ``ceiling.json``; returns the per-subject records."""
    from eegdecode.data.simulate import simulate_dataset

    records: dict[str, dict[str, Any]] = {}

    def on_subject(name, subject, test):
        records[name] = ceiling_record(subject, test, seed=seed)

    desc = simulate_dataset(out, preset, n_subjects=n_subjects, seed=seed, on_subject=on_subject, **kwargs)
    write_ceiling(out, records)
    return {"description": desc, "ceiling": records}
