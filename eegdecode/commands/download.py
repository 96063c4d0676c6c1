"""``eegdecode download``: fetch THINGS-EEG2 / THINGS-MEG into the data-root layout (resumable, verified)."""

from __future__ import annotations

import argparse
import shutil

from eegdecode.download.assets import ASSETS, ENV_ENDPOINTS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", help="data root to fill (default: $EEGDECODE_DATA)")
    p.add_argument(
        "--what", nargs="+", required=True, choices=list(ASSETS), metavar="WHAT",
        help="what to fetch: " + "; ".join(f"{a.name}: {a.description}" for a in ASSETS.values()),
    )  # fmt: skip
    p.add_argument(
        "--subject",
        nargs="+",
        help="subjects (1 2 or sub-01); default: all of the release (EEG 1-10, MEG 1-4)",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="list what would be fetched and the sizes; fetch nothing"
    )
    p.add_argument(
        "--verify", action="store_true", help="re-hash files already on disk instead of trusting the manifest"
    )
    p.add_argument(
        "--keep-archives", action="store_true", help="keep .zip files under downloads/ after unpacking"
    )
    p.add_argument("--retries", type=int, default=3, help="tries per file after a connection error (resumed)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    for name, env in ENV_ENDPOINTS.items():
        p.add_argument(
            f"--endpoint-{name}", dest=f"endpoint_{name}", metavar="URL",
            help=f"replace the {name} host (tests use 127.0.0.1; also ${env})",
        )  # fmt: skip


def _subjects(values: list[str] | None) -> list[int] | None:
    from eegdecode.data.paths import subject_name
    from eegdecode.download.http import DownloadOptionError

    if not values:
        return None
    try:
        return [int(subject_name(v)[4:]) for v in values]
    except ValueError as err:
        raise DownloadOptionError(f"--subject: {err}") from None


def run(args: argparse.Namespace) -> int:
    from eegdecode.data.paths import resolve_data_root
    from eegdecode.download.assets import Endpoints, plan
    from eegdecode.download.fetch import fetch_items, plan_size, status_of
    from eegdecode.download.http import DownloadOptionError
    from eegdecode.download.manifest import Manifest

    if args.retries < 0:
        raise DownloadOptionError(f"Invalid value for --retries: {args.retries}; expected >= 0")
    root = resolve_data_root(args.data_root)
    endpoints = Endpoints.resolve(
        osf=args.endpoint_osf, hf=args.endpoint_hf, openneuro=args.endpoint_openneuro
    )
    items = plan(list(dict.fromkeys(args.what)), _subjects(args.subject), endpoints)
    if args.dry_run:
        manifest = Manifest(root)
        statuses = [status_of(root, manifest, it) for it in items]
        for s in statuses:
            where = s.item.extract_to or s.item.key
            size = "?" if s.item.size is None else f"{s.item.size:,}"
            print(f"{s.state:9s} {size:>16s} B  {where}  <- {s.item.url}")
        probe = root if root.exists() else next(p for p in root.parents if p.exists())
        print(
            f"{len(items)} file(s); to fetch: {sum(s.to_fetch or 0 for s in statuses):,} B; needs "
            f"{plan_size(statuses):,} B free under {root}, {shutil.disk_usage(probe).free:,} B free"
        )
        return 0
    counts = fetch_items(
        root, items, verify=args.verify, keep_archives=args.keep_archives, progress=not args.no_progress,
        retries=args.retries,
    )  # fmt: skip
    print(
        f"{root}: {counts['fetched']} file(s) fetched, {counts['skipped']} already complete, "
        f"{counts['extracted']} archive(s) unpacked; manifest: {Manifest(root).path}"
    )
    return 0
