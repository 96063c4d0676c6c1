"""Resumable HTTP downloads: ``.part`` files, ``Range`` requests, size and checksum checks, atomic rename.

One file is fetched to ``<dest>.part`` beside a small ``<dest>.part.json`` that says which remote file the bytes
belong to (URL, size, checksum). A rerun after a kill continues the ``.part`` with ``Range: bytes=N-``; a server
that ignores the range (``200``) restarts it from zero. Only when the size and the published checksum agree is
the ``.part`` renamed to ``<dest>``, so a file under its final name is always complete. Plain ``urllib``: no
dependency, redirects followed (OSF's ``/download/`` and Hugging Face's ``/resolve/`` answer with one), and the
``Range`` header survives the redirect.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from eegdecode.errors import ConfigError, EEGDecodeError

log = logging.getLogger("eegdecode.download")

CHUNK = 1 << 20
USER_AGENT = "eegdecode-download/1"
RETRY_STATUS = {408, 429, 500, 502, 503, 504}
CHECKSUM_KINDS = ("sha256", "md5", "git-sha1")


class DownloadError(EEGDecodeError, OSError):
    """A network or data error while downloading (the ``download`` command exits with 1)."""


class DownloadOptionError(ConfigError):
    """A bad option of ``eegdecode download`` (exit code 2)."""


@dataclass(frozen=True)
class Checksum:
    """A checksum the source publishes: ``sha256`` (OSF, Hugging Face LFS), ``md5`` (OSF, S3 ETag of a single-part
    upload) or ``git-sha1`` (the git blob id Hugging Face lists for small files)."""

    kind: str
    value: str

    def __post_init__(self):
        if self.kind not in CHECKSUM_KINDS:
            raise ValueError(
                f"Invalid checksum kind {self.kind!r}; allowed values are {list(CHECKSUM_KINDS)}"
            )
        object.__setattr__(self, "value", self.value.lower())


def file_digests(path: str | Path, kinds: tuple[str, ...] = ("sha256",)) -> dict[str, str]:
    """The digests ``kinds`` of a file in one pass (``git-sha1`` is ``sha1(b"blob <size>\\0" + bytes)``)."""
    path = Path(path)
    hashers = {}
    for kind in set(kinds) | {"sha256"}:
        if kind == "git-sha1":
            h = hashlib.sha1(usedforsecurity=False)
            h.update(f"blob {path.stat().st_size}\0".encode())
        elif kind == "md5":
            h = hashlib.md5(usedforsecurity=False)
        else:
            h = hashlib.sha256()
        hashers[kind] = h
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            for h in hashers.values():
                h.update(block)
    return {k: h.hexdigest() for k, h in hashers.items()}


def _request(url: str, method: str = "GET", headers: dict[str, str] | None = None, timeout: float = 60.0):
    req = urllib.request.Request(url, method=method, headers={"User-Agent": USER_AGENT, **(headers or {})})
    return urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 (http/https URLs from the asset table)


def get_bytes(url: str, timeout: float = 60.0, retries: int = 3, backoff: float = 1.0) -> tuple[bytes, dict]:
    """GET a small document (an API listing); retried on connection errors and 429/5xx. Returns body, headers."""
    for attempt in range(retries + 1):
        try:
            with _request(
                url,
                headers={
                    "Accept": "application/vnd.api+json, application/json, application/xml;q=0.9, */*;q=0.8"
                },
                timeout=timeout,
            ) as r:
                return r.read(), dict(r.headers)
        except urllib.error.HTTPError as err:
            if err.code not in RETRY_STATUS or attempt == retries:
                raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
            if attempt == retries:
                raise DownloadError(f"{url}: {_reason(err)}") from None
        time.sleep(backoff * (attempt + 1))
    raise AssertionError("unreachable")


def get_json(url: str, **kwargs) -> object:
    body, _ = get_bytes(url, **kwargs)
    try:
        return json.loads(body)
    except ValueError:
        raise DownloadError(f"{url}: the answer is not JSON (first bytes {body[:60]!r})") from None


def _reason(err: BaseException) -> str:
    if isinstance(err, urllib.error.URLError) and not isinstance(err, urllib.error.HTTPError):
        return f"cannot reach the server ({err.reason})"
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


def _part_paths(dest: Path) -> tuple[Path, Path]:
    return dest.with_name(dest.name + ".part"), dest.with_name(dest.name + ".part.json")


def part_size(dest: str | Path) -> int:
    """Bytes already in ``<dest>.part`` (0 if none)."""
    part, _ = _part_paths(Path(dest))
    return part.stat().st_size if part.is_file() else 0


def download_file(
    url: str,
    dest: str | Path,
    size: int | None = None,
    checksum: Checksum | None = None,
    retries: int = 3,
    backoff: float = 1.0,
    timeout: float = 60.0,
    progress: bool = True,
    desc: str | None = None,
) -> dict[str, str]:
    """Fetch ``url`` to ``dest`` (resuming ``<dest>.part``); return the file's digests (always ``sha256``).

    Connection errors and 429/5xx are retried ``retries`` times, each time resuming where the bytes stopped. A
    size or checksum that disagrees with the expected one removes the ``.part`` and starts once more from zero;
    if that copy is wrong too, :class:`DownloadError` says so. ``dest`` appears only when everything agreed.
    """
    from tqdm.auto import tqdm

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part, sidecar = _part_paths(dest)
    identity = {
        "url": url,
        "size": size,
        "checksum": None if checksum is None else [checksum.kind, checksum.value],
    }
    if part.exists() and (not sidecar.is_file() or _read_sidecar(sidecar) != identity):
        log.info("%s: discarding a partial file of another remote version", part)
        part.unlink()
    sidecar.write_text(json.dumps(identity))

    for fresh_try in range(2):
        attempt = 0
        while True:
            have = part.stat().st_size if part.exists() else 0
            if size is not None and have > size:
                part.unlink()
                have = 0
            if size is not None and have == size:
                break
            headers = {"Accept-Encoding": "identity"}
            if have:
                headers["Range"] = f"bytes={have}-"
            try:
                with _request(url, headers=headers, timeout=timeout) as resp:
                    status = resp.status
                    if have and status == 200:
                        log.info("%s: the server ignored the range request; starting again from zero", url)
                        have = 0
                    elif status == 206:
                        start = _content_range_start(resp.headers.get("Content-Range"))
                        if start != have:
                            raise DownloadError(
                                f"{url}: asked for bytes from {have}, the server sent from {start}"
                            )
                    length = resp.headers.get("Content-Length")
                    total = size if size is not None else (have + int(length) if length else None)
                    with (
                        open(part, "ab" if have else "wb") as out,
                        tqdm(
                            total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                            desc=desc or dest.name, disable=None if progress else True, leave=False,
                        ) as bar,
                    ):  # fmt: skip
                        while block := resp.read1(CHUNK):
                            out.write(block)
                            out.flush()  # what a kill leaves in the .part is what the next run resumes from
                            bar.update(len(block))
                    got = part.stat().st_size
                    if length is not None and got != have + int(length):
                        raise http.client.IncompleteRead(b"", have + int(length) - got)
                break
            except urllib.error.HTTPError as err:
                if err.code == 416 and have:
                    # Range not satisfiable: what we have is all there is (or wrong); the checks below decide.
                    break
                if err.code not in RETRY_STATUS or attempt >= retries:
                    raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
            except (TimeoutError, urllib.error.URLError, OSError, http.client.HTTPException) as err:
                if isinstance(err, DownloadError):
                    raise
                if attempt >= retries:
                    raise DownloadError(
                        f"{url}: {_reason(err)} after {retries + 1} tries; {part} keeps "
                        f"{part.stat().st_size if part.exists() else 0} bytes, rerun to resume"
                    ) from None
                log.warning("%s: %s; resuming (try %d of %d)", url, _reason(err), attempt + 2, retries + 1)
            attempt += 1
            time.sleep(backoff * attempt)

        got = part.stat().st_size if part.exists() else 0
        problem = None
        digests: dict[str, str] = {}
        if size is not None and got != size:
            problem = f"size: expected {size} bytes, found {got}"
        else:
            digests = file_digests(part, (checksum.kind,) if checksum else ())
            if checksum is not None and digests[checksum.kind] != checksum.value:
                problem = f"{checksum.kind}: expected {checksum.value}, found {digests[checksum.kind]}"
        if problem is None:
            os.replace(part, dest)
            sidecar.unlink(missing_ok=True)
            return digests
        part.unlink(missing_ok=True)
        if fresh_try == 0:
            log.warning("%s: %s; the partial file was removed, fetching it again from zero", dest, problem)
            continue
        sidecar.unlink(missing_ok=True)
        raise DownloadError(f"{url} -> {dest}: {problem} (fetched twice; nothing was kept)")
    raise AssertionError("unreachable")


def _read_sidecar(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _content_range_start(value: str | None) -> int | None:
    # "bytes 100-199/200"
    if not value or not value.startswith("bytes "):
        return None
    try:
        return int(value[6:].split("-", 1)[0])
    except ValueError:
        return None
