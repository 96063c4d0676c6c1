"""``eegdecode simulate``: write a simulated THINGS-EEG2 data set and its retrieval ceiling."""

from __future__ import annotations

import argparse
import logging
import time

from eegdecode.data.simulate import PRESETS

log = logging.getLogger("eegdecode.simulate")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="data root to write (e.g. data/sim_small)")
    p.add_argument(
        "--preset",
        default="small",
        choices=sorted(PRESETS),
        help="size: tiny (tests), small (demo), full (real sizes)",
    )
    p.add_argument("--subjects", type=int, default=1, help="number of subjects (sub-01 ... sub-NN)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--dtype",
        default="float64",
        choices=("float64", "float32"),
        help="EEG dtype in the pickles (release: float64)",
    )
    p.add_argument("--no-images", action="store_true", help="skip writing the JPEG image set")
    p.add_argument("--overwrite", action="store_true", help="replace an existing simulated data set")


def run(args: argparse.Namespace) -> int:
    from eegdecode.evaluation.ceiling import simulate_with_ceiling
    from eegdecode.evaluation.kway import KWayResult, format_kway_table

    t0 = time.perf_counter()
    out = simulate_with_ceiling(
        args.out, args.preset, n_subjects=args.subjects, seed=args.seed, dtype=args.dtype,
        overwrite=args.overwrite, write_images=not args.no_images,
    )  # fmt: skip
    desc, records = out["description"], out["ceiling"]
    print(
        f"Simulated THINGS-EEG2 ({desc['preset']}, {args.subjects} subject(s)) written to {args.out} in {time.perf_counter() - t0:.0f} s"
    )
    for name, rec in records.items():
        print(
            f"\n{name}: retrieval ceiling of the ideal decoder (test averaged over {rec['n_reps_averaged']} repetitions)"
        )
        print(format_kway_table(KWayResult.from_dict(rec["kway"])))
        single = KWayResult.from_dict(rec["single_trial"])
        k_max = max(single.ks)
        print(f"single trial: {k_max}-way top-1 {100 * single.scores[k_max].top1_mean:.1f}%")
    return 0
