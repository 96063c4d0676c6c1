"""``eegdecode preprocess eeg|meg``: raw THINGS-EEG2 recordings, or THINGS-MEG (official epochs or raw BIDS runs)
-> release files + cache."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="modality", required=True)
    eeg = sub.add_parser(
        "eeg", help="THINGS-EEG2 raw (raw_data/ or BrainVision source_data/) -> preprocessed"
    )
    eeg.add_argument(
        "--raw-root", required=True, help="folder holding raw_data/ (or source_data/ for BrainVision)"
    )
    eeg.add_argument("--data-root", help="data root to write (default: $EEGDECODE_DATA)")
    eeg.add_argument("--subject", nargs="+", required=True, help="subjects (1 2 or sub-01)")
    eeg.add_argument("--source", default="things", choices=("things", "brainvision"))
    eeg.add_argument(
        "--layout", default="250hz", choices=("250hz", "100hz"), help="NICE/ATM 63 ch or Gifford 17 ch"
    )
    eeg.add_argument("--n-sessions", type=int, default=4, help="sessions expected (0: every ses-XX found)")
    eeg.add_argument("--mvnn-dim", default="epochs", choices=("epochs", "time"))
    eeg.add_argument(
        "--train-reps", type=int, default=2, help="training repetitions kept per condition and session"
    )
    eeg.add_argument(
        "--test-reps", type=int, default=20, help="test repetitions kept per condition and session"
    )
    eeg.add_argument("--seed", type=int, default=20200220)
    eeg.add_argument("--original-epoch-end", action="store_true",
                     help="epoch to tmax inclusive as the original (1201 raw samples; slightly stretched in time)")  # fmt: skip
    eeg.add_argument("--dtype", default="float16", choices=("float16", "float32"), help="cache dtype")
    eeg.add_argument("--device", default="cpu", help="torch device for MVNN (cuda speeds up full sessions)")
    meg = sub.add_parser(
        "meg", help="THINGS-MEG (ds004212) official epochs or raw BIDS runs -> ATM layout + cache"
    )
    meg.add_argument("--bids-root", required=True, help="the ds004212 folder")
    meg.add_argument("--from", dest="source", default="derivative", choices=("derivative", "raw"),
                     help="derivative: derivatives/preprocessed/preprocessed_P{n}-epo.fif; raw: the runs "
                          "sub-BIGMEG{n}/ses-XX/meg/*_meg.ds through mne-bids, with the official steps")  # fmt: skip
    meg.add_argument("--n-sessions", type=int, default=12,
                     help="--from raw: sessions expected (0: every ses-XX found)")  # fmt: skip
    meg.add_argument("--task", default="main", help="--from raw: BIDS task label of the runs")
    meg.add_argument("--data-root", help="data root to write (default: $EEGDECODE_DATA)")
    meg.add_argument("--participant", type=int, nargs="+", required=True, help="1..4 (P1 -> sub-01)")
    meg.add_argument("--concept-index", help="image_concept_index.csv (default: <bids-root>/sourcedata/)")
    meg.add_argument("--image-paths", help="image_paths.csv (default: <bids-root>/sourcedata/)")
    meg.add_argument("--copy-images", action="store_true", help="copy the images into <data-root>/image_set/")
    meg.add_argument("--dtype", default="float16", choices=("float16", "float32"), help="cache dtype")


def run(args: argparse.Namespace) -> int:
    from eegdecode.data.paths import resolve_data_root

    out = resolve_data_root(args.data_root)
    if args.modality == "eeg":
        from eegdecode.preprocessing.eeg import preprocess_eeg_subject

        for s in args.subject:
            res = preprocess_eeg_subject(
                args.raw_root, out, s, layout=args.layout, source=args.source, n_sessions=args.n_sessions or None,
                mvnn_dim=args.mvnn_dim, train_reps=args.train_reps, test_reps=args.test_reps, seed=args.seed,
                cache_dtype=args.dtype, device=args.device, exact_grid=not args.original_epoch_end,
            )  # fmt: skip
            print(
                f"{s}: {res['subject_dir']} train {tuple(res['shapes']['train'])} test {tuple(res['shapes']['test'])}"
            )
        return 0
    from eegdecode.preprocessing.meg import preprocess_meg_subject

    for n in args.participant:
        res = preprocess_meg_subject(
            args.bids_root, out, n, concept_index_csv=args.concept_index, image_paths_csv=args.image_paths,
            cache_dtype=args.dtype, copy_images=args.copy_images, source=args.source,
            n_sessions=args.n_sessions or None, task=args.task,
        )  # fmt: skip
        print(
            f"P{n} ({args.source}): {res['subject_dir']} ATM train {tuple(res['atm_shapes']['train'])} "
            f"test {tuple(res['atm_shapes']['test'])}"
        )
    return 0
