"""``eegdecode prepare``: convert THINGS-EEG2 pickles once into the memory-mapped cache."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", help="data root (default: $EEGDECODE_DATA)")
    p.add_argument(
        "--release", default="250hz", choices=("250hz", "100hz", "meg"), help="which preprocessed release"
    )
    p.add_argument("--subject", nargs="*", help="subjects (1 2 or sub-01); default: every sub-XX folder")
    p.add_argument("--dtype", default="float16", choices=("float16", "float32"))
    p.add_argument("--force", action="store_true", help="rebuild even when the cache is up to date")


def run(args: argparse.Namespace) -> int:
    from eegdecode.data.cache import prepare_subject
    from eegdecode.data.image_set import check_eeg_against_image_set, open_image_set
    from eegdecode.data.paths import DatasetPaths, resolve_data_root, subject_name
    from eegdecode.errors import MissingFileError

    paths = DatasetPaths(resolve_data_root(args.data_root), args.release)
    subjects = [subject_name(s) for s in args.subject] if args.subject else paths.subjects()
    for s in subjects:  # every subject's files must exist before the first is converted
        if not paths.subject_dir(s).is_dir():
            raise MissingFileError(paths.subject_dir(s), f"no {s} in {paths.eeg_dir}")
    images = open_image_set(paths.root)
    print("Reading pickled files: this is the only step that opens them (np.load with allow_pickle).")
    for s in subjects:
        meta = prepare_subject(paths.subject_dir(s), paths.cache_dir(s), args.dtype, force=args.force)
        if images is not None:
            check_eeg_against_image_set(images, paths.cache_dir(s), meta["shapes"])
        print(
            f"{s}: {paths.cache_dir(s)} ({meta['dtype']}, train {tuple(meta['shapes']['train'])}, test {tuple(meta['shapes']['test'])})"
        )
    return 0
