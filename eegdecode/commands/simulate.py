"""``eegdecode simulate``: write a simulated THINGS-EEG2 data set, its retrieval ceiling and, on request, raw recordings.

Everything is checked before anything is written: a bad count or a count that the raw design cannot split over its
sessions is one line on stderr naming the option, the expected and the found value (exit status 2).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from eegdecode.data.simulate import LAYOUTS, PRESETS
from eegdecode.errors import ConfigError

log = logging.getLogger("eegdecode.simulate")

RAW_CHOICES = {
    "none": (),
    "things": ("things",),
    "brainvision": ("brainvision",),
    "both": ("things", "brainvision"),
}
# option -> (Preset field, smallest value)
COUNT_OPTIONS = {
    "--train-concepts": ("n_train_concepts", 1),
    "--images-per-concept": ("images_per_concept", 1),
    "--train-reps": ("n_train_reps", 1),
    "--test-concepts": ("n_test_concepts", 2),
    "--test-reps": ("n_test_reps", 1),
}
RAW_SESSIONS = 4  # THINGS-EEG2: 4 sessions per subject


def _one_line_error(message: str) -> None:
    print(f"eegdecode simulate: error: {message}", file=sys.stderr)
    sys.exit(2)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.error = _one_line_error  # a bad option is one line, like the checks in run()
    p.add_argument("--out", required=True, help="data root to write (e.g. data/sim_small)")
    p.add_argument(
        "--preset",
        default="small",
        choices=sorted(PRESETS),
        help="size: tiny (tests), small (demo), full (real sizes); the count options below override it",
    )
    p.add_argument(
        "--subjects", type=int, default=1, metavar="N", help="number of subjects (sub-01 ... sub-NN)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--dtype",
        default="float64",
        choices=("float64", "float32"),
        help="EEG dtype in the pickles (release: float64)",
    )
    p.add_argument(
        "--layout",
        default="250hz",
        choices=LAYOUTS,
        help="250hz: NICE/ATM's Preprocessed_data_250Hz (63 ch, 250 samples); 100hz: Gifford's official "
        "preprocessed_data (17 occipito-parietal ch, -0.2 ... 0.79 s at 100 Hz)",
    )
    p.add_argument(
        "--raw",
        default="none",
        choices=tuple(RAW_CHOICES),
        help="also write raw 1000 Hz recordings in the THINGS-EEG2 design (4 sessions; per session 2 repetitions "
        "of half the training images, 20 of every test image): things = raw_data/sub-XX/ses-YY/raw_eeg_*.npy, "
        "brainvision = source_data/.../*.vhdr, both",
    )
    counts = p.add_argument_group("custom counts (override the preset)")
    counts.add_argument("--train-concepts", type=int, metavar="N", help="training concepts (full: 1654)")
    counts.add_argument(
        "--images-per-concept", type=int, metavar="N", help="training images per concept (full: 10)"
    )
    counts.add_argument(
        "--train-reps",
        type=int,
        metavar="N",
        help="repetitions per training image (full: 4; with --raw the default is 4, and it must be even)",
    )
    counts.add_argument(
        "--test-concepts", type=int, metavar="N", help="test concepts, one image each (full: 200; >= 2)"
    )
    counts.add_argument(
        "--test-reps",
        type=int,
        metavar="N",
        help="repetitions per test image (full: 80; with --raw the default is 80, and it must be a multiple of 4)",
    )
    p.add_argument("--no-images", action="store_true", help="skip writing the JPEG image set")
    p.add_argument("--overwrite", action="store_true", help="replace an existing simulated data set")


def _option_error(option: str, expected: str, found: object) -> ConfigError:
    return ConfigError(f"{option}: expected {expected}; found {found}")


def resolve(args: argparse.Namespace) -> dict:
    """Check every option and work out the sizes and the raw design; nothing is written.

    Raises :class:`eegdecode.errors.ConfigError` naming the option, the expected and the found value, or
    :class:`eegdecode.errors.OutputExistsError`.
    """
    from eegdecode.data.simulate import custom_preset
    from eegdecode.data.simulate_raw import RawDesign
    from eegdecode.errors import OutputExistsError

    if args.subjects < 1:
        raise _option_error("--subjects", "an integer >= 1", args.subjects)
    raw = RAW_CHOICES[args.raw]
    values = {opt: getattr(args, opt[2:].replace("-", "_")) for opt in COUNT_OPTIONS}
    for opt, value in values.items():
        low = COUNT_OPTIONS[opt][1]
        if value is not None and value < low:
            raise _option_error(opt, f"an integer >= {low}", value)
    if raw:
        # The raw recordings follow the real design; the preprocessed release gets the same totals.
        design = RawDesign()
        if values["--train-reps"] is None:
            values["--train-reps"] = design.train_reps_total
        if values["--test-reps"] is None:
            values["--test-reps"] = design.test_reps_total
        per_train = RAW_SESSIONS // 2
        if values["--train-reps"] % per_train:
            raise _option_error(
                "--train-reps",
                f"a multiple of {per_train} with --raw (each training image is in {per_train} of the "
                f"{RAW_SESSIONS} sessions)",
                values["--train-reps"],
            )
        if values["--test-reps"] % RAW_SESSIONS:
            raise _option_error(
                "--test-reps",
                f"a multiple of {RAW_SESSIONS} with --raw (every test image is in all {RAW_SESSIONS} sessions)",
                values["--test-reps"],
            )
    name, preset = custom_preset(args.preset, **{COUNT_OPTIONS[o][0]: v for o, v in values.items()})
    design = None
    if raw:
        n_train_images = preset.n_train_concepts * preset.images_per_concept
        if n_train_images < 2:
            raise _option_error(
                "--train-concepts x --images-per-concept",
                "at least 2 training images with --raw (two halves over the sessions)",
                n_train_images,
            )
        design = RawDesign.from_totals(preset.n_train_reps, preset.n_test_reps, RAW_SESSIONS)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise _option_error("--out", "a folder", f"a file {out}")
    if not args.overwrite:
        for desc in ("simulation.json", "simulation_raw.json"):
            if (out / desc).exists():
                raise OutputExistsError(out / desc)
    return {"preset_name": name, "preset": preset, "raw": raw, "design": design}


def run(args: argparse.Namespace) -> int:
    spec = resolve(args)
    from eegdecode.evaluation.ceiling import simulate_with_ceiling
    from eegdecode.evaluation.kway import KWayResult, format_kway_table

    t0 = time.perf_counter()
    preset = spec["preset"]
    out = simulate_with_ceiling(
        args.out, preset, n_subjects=args.subjects, seed=args.seed, dtype=args.dtype,
        overwrite=args.overwrite, write_images=not args.no_images, layout=args.layout,
    )  # fmt: skip
    desc, records = out["description"], out["ceiling"]
    p = preset
    print(
        f"Simulated THINGS-EEG2 ({spec['preset_name']}: {p.n_train_concepts} x {p.images_per_concept} training "
        f"images x {p.n_train_reps} reps, {p.n_test_concepts} test images x {p.n_test_reps} reps; "
        f"{desc['layout']}; {args.subjects} subject(s)) written to {args.out} in {time.perf_counter() - t0:.0f} s"
    )
    for name, rec in records.items():
        print(
            f"\n{name}: retrieval ceiling of the ideal decoder (test averaged over {rec['n_reps_averaged']} repetitions)"
        )
        print(format_kway_table(KWayResult.from_dict(rec["kway"])))
        single = KWayResult.from_dict(rec["single_trial"])
        k_max = max(single.ks)
        print(f"single trial: {k_max}-way top-1 {100 * single.scores[k_max].top1_mean:.1f}%")
    if spec["raw"]:
        from eegdecode.data.simulate_raw import simulate_raw_dataset

        t1 = time.perf_counter()
        design = spec["design"]
        simulate_raw_dataset(
            args.out, preset, n_subjects=args.subjects, design=design, seed=args.seed, formats=spec["raw"],
            overwrite=args.overwrite, write_features=False,
        )  # fmt: skip
        where = " and ".join({"things": "raw_data/", "brainvision": "source_data/"}[f] for f in spec["raw"])
        print(
            f"\nRaw recordings ({design.n_sessions} sessions per subject; per session {design.train_reps_per_session} "
            f"reps of half the training images, {design.test_reps_per_session} of every test image; 1000 Hz, volts) "
            f"written to {args.out}/{where} in {time.perf_counter() - t1:.0f} s. Preprocess them with:\n"
            f"  eegdecode preprocess eeg --raw-root {args.out} --data-root OTHER_ROOT --subject "
            f"{' '.join(str(s + 1) for s in range(args.subjects))} --source {spec['raw'][0]} --layout {args.layout}"
            + (
                ""
                if (design.train_reps_per_session, design.test_reps_per_session) == (2, 20)
                else f" --train-reps {design.train_reps_per_session} --test-reps {design.test_reps_per_session}"
            )
        )
    return 0
