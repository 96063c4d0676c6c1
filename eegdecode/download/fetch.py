"""Fetch a plan of files into a data root: skip what is complete, check the disk, resume, verify, unpack, record.

A file is *complete* when the manifest records it with the size and checksum the source lists now and the file on
disk still has the recorded size and modification time (``verify=True`` re-hashes it instead). A recorded file
that no longer matches (damaged on disk, or a new version at the source) is fetched again. A file under its final
name without a manifest entry (copied by hand) is accepted when its size and the published checksum agree, and
refused otherwise (never overwritten). An archive is complete when its folder exists and the manifest says
it was unpacked there from the same remote file; a folder that exists without that record is never overwritten.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from eegdecode.download.assets import Item
from eegdecode.download.http import DownloadError, download_file, file_digests, part_size
from eegdecode.download.manifest import Manifest

log = logging.getLogger("eegdecode.download")

IGNORED_MEMBERS = ("__MACOSX/", ".DS_Store")


@dataclass(frozen=True)
class Status:
    item: Item
    # "complete"; "partial" (a .part to resume); "missing"; "present" (under its final name without a matching
    # record: checked by checksum, fetched again if wrong); "stale" (an archive's folder that is not ours)
    state: str
    have: int  # bytes already on disk (in the .part for "partial")

    @property
    def to_fetch(self) -> int | None:
        if self.state == "complete":
            return 0
        if self.item.size is None:
            return None
        return self.item.size - self.have if self.state == "partial" else self.item.size


def _same_remote(entry: dict | None, item: Item) -> bool:
    if entry is None or entry.get("url") != item.url or entry.get("size") != item.size:
        return False
    published = None if item.checksum is None else [item.checksum.kind, item.checksum.value]
    return entry.get("source_checksum") == published


def status_of(root: Path, manifest: Manifest, item: Item, verify: bool = False) -> Status:
    entry = manifest.get(item.key)
    if item.extract_to is not None:
        folder = root / item.extract_to
        if folder.is_dir() and _same_remote(entry, item) and entry.get("extracted_to") == item.extract_to:
            return Status(item, "complete", item.size or 0)
        if folder.exists():
            return Status(item, "stale", 0)
    dest = root / item.key
    if dest.is_file():
        st = dest.stat()
        if _same_remote(entry, item) and not verify and entry.get("mtime_ns") == st.st_mtime_ns:
            if entry.get("size") == st.st_size:
                return Status(item, "complete", st.st_size)
        return Status(item, "present", st.st_size)  # decided by a checksum in fetch_items
    have = part_size(dest)
    return Status(item, "partial" if have else "missing", have)


def _check_disk(root: Path, need: int) -> None:
    probe = root
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if need > free:
        raise DownloadError(
            f"{root}: not enough free disk space: need {_gb(need)} (downloads + unpacked archives), found {_gb(free)}"
        )


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e7 else f"{n} bytes"


def plan_size(statuses: list[Status]) -> int:
    """Bytes the run will write: the rest of each download, plus room for each archive to unpack."""
    need = 0
    for s in statuses:
        if s.state == "complete":
            continue
        need += s.to_fetch or 0
        if s.item.extract_to is not None:
            need += (
                s.item.size or 0
            )  # unpacked at least as large as the archive; checked exactly before unpacking
    return need


def fetch_items(
    root: str | Path,
    items: list[Item],
    verify: bool = False,
    keep_archives: bool = False,
    progress: bool = True,
    retries: int = 3,
    backoff: float = 1.0,
) -> dict[str, int]:
    """Fetch every incomplete item; return counts ``{"fetched", "skipped", "extracted"}``.

    One process at a time per data root (``downloads/.lock``, released by the system if the process dies).
    """
    root = Path(root)
    with _root_lock(root):
        return _fetch_items(root, items, verify, keep_archives, progress, retries, backoff)


@contextlib.contextmanager
def _root_lock(root: Path):
    lock = root / "downloads" / ".lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+") as f:
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            yield
            return
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DownloadError(
                f"{root}: another `eegdecode download` is writing here ({lock}); wait for it"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _fetch_items(root: Path, items, verify, keep_archives, progress, retries, backoff) -> dict[str, int]:
    manifest = Manifest(root)
    statuses = [status_of(root, manifest, it, verify) for it in items]
    for s in statuses:
        if s.state == "stale" and s.item.extract_to is not None:
            raise DownloadError(
                f"{root / s.item.extract_to}: exists but is not the unpacked {s.item.url} of a completed download; "
                "move it away (or remove it) to fetch it"
            )
    _check_disk(root, plan_size(statuses))
    counts = {"fetched": 0, "skipped": 0, "extracted": 0}
    for s in statuses:
        item = s.item
        if s.state == "complete":
            log.info("%s: complete, not fetched again", item.extract_to or item.key)
            counts["skipped"] += 1
            continue
        dest = root / item.key
        if s.state == "present":
            digests = file_digests(dest, (item.checksum.kind,) if item.checksum else ())
            ok = (item.size is None or dest.stat().st_size == item.size) and (
                item.checksum is None or digests[item.checksum.kind] == item.checksum.value
            )
            if ok:
                _record(manifest, item, dest, digests)
                counts["skipped"] += 1
                if item.extract_to is None:
                    continue
            else:
                what = f"{item.checksum.kind} or size" if item.checksum else "size"
                if manifest.get(item.key) is None:
                    raise DownloadError(
                        f"{dest}: exists, is not from a completed download and its {what} differs from "
                        f"{item.url}; move it away (or remove it) to fetch it"
                    )
                log.warning(
                    "%s: %s differs from what was fetched (damaged or changed); fetching it again", dest, what
                )
                dest.unlink()
        if not dest.is_file():
            digests = download_file(
                item.url, dest, item.size, item.checksum, retries=retries, backoff=backoff, progress=progress,
                desc=item.key,
            )  # fmt: skip
            _record(manifest, item, dest, digests)
            counts["fetched"] += 1
            log.info(
                "%s: fetched (%s bytes, sha256 %s)", item.key, dest.stat().st_size, digests["sha256"][:12]
            )
        if item.extract_to is not None:
            n = extract_archive(dest, root / item.extract_to)
            entry = dict(manifest.get(item.key) or {})
            entry.update(extracted_to=item.extract_to, n_extracted=n, archive_kept=keep_archives)
            manifest.record(item.key, **entry)
            counts["extracted"] += 1
            log.info("%s: %d files unpacked", item.extract_to, n)
            if not keep_archives:
                dest.unlink()
    return counts


def _record(manifest: Manifest, item: Item, dest: Path, digests: dict[str, str]) -> None:
    st = dest.stat()
    manifest.record(
        item.key, asset=item.asset, url=item.url, size=st.st_size, sha256=digests["sha256"],
        source_checksum=None if item.checksum is None else [item.checksum.kind, item.checksum.value],
        mtime_ns=st.st_mtime_ns, extracted_to=None,
    )  # fmt: skip


def extract_archive(archive: str | Path, dest: str | Path) -> int:
    """Unpack a zip into the folder ``dest`` atomically (a temporary folder renamed); return the file count.

    A single top folder named like ``dest`` (``training_images/...`` for ``image_set/training_images``) is
    stripped. Members with absolute paths or ``..`` are refused; the zip's CRCs are checked while reading.
    """
    archive, dest = Path(archive), Path(dest)
    if dest.exists():
        raise DownloadError(f"{dest}: already exists; not unpacking {archive.name} over it")
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as err:
        raise DownloadError(f"{archive}: not a zip archive ({err})") from None
    with zf:
        members = [m for m in zf.infolist() if not any(x in m.filename for x in IGNORED_MEMBERS)]
        names = [m.filename for m in members]
        for name in names:
            parts = Path(name).parts
            if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                raise DownloadError(f"{archive}: unsafe member path {name!r}")
        prefix = f"{dest.name}/"
        strip = bool(names) and all(n.startswith(prefix) or n == prefix for n in names)
        total = sum(m.file_size for m in members)
        _check_disk(dest.parent, total)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.unpack-", dir=dest.parent))
        try:
            count = 0
            for m in members:
                rel = m.filename[len(prefix) :] if strip else m.filename
                if not rel or m.is_dir():
                    continue
                target = tmp / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(m) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
                count += 1
            os.replace(tmp, dest)
        except zipfile.BadZipFile as err:
            raise DownloadError(f"{archive}: damaged archive ({err}); remove it and rerun") from None
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
    return count
