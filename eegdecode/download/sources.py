"""File listings of the three hosts, each in the host's own API shape, with the sizes and checksums they publish.

OSF (API v2, JSON:API; https://developer.osf.io/)::

    GET {api}/nodes/{node}/files/osfstorage/          api = https://api.osf.io/v2
    -> {"data": [{"attributes": {"kind": "file" | "folder", "name", "materialized_path": "/a/b.zip", "size",
                                 "extra": {"hashes": {"md5", "sha256"}}},
                  "links": {"download": "https://osf.io/download/<id>/"},          (files; 302 to the storage)
                  "relationships": {"files": {"links": {"related": {"href": folder listing}}}}}],   (folders)
        "links": {"next": next page | null}}

Hugging Face (the Hub API through ``huggingface_hub.HfApi(endpoint=...).list_repo_tree``)::

    GET {endpoint}/api/datasets/{repo}/tree/{revision}/{path}?recursive=true      endpoint = https://huggingface.co
    -> [{"type": "file", "path", "size", "oid": git blob sha1, "lfs": {"oid": sha256, "size"} | absent}, ...]
       (more pages through the ``Link: <...>; rel="next"`` header)
    file bytes: GET {endpoint}/datasets/{repo}/resolve/{revision}/{path}   (``huggingface_hub.hf_hub_url``; large
    files answer with a redirect to the storage, which honours ``Range``)

The file bodies go through :mod:`eegdecode.download.http` (one resume/checksum path for every host) rather than
``hf_hub_download``, whose ``local_dir`` mode keeps its own metadata folder inside the data root; the listing, URL
scheme and endpoint come from ``huggingface_hub``.

OpenNeuro (its public S3 bucket, path-style; https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html)::

    GET {s3}?list-type=2&prefix=ds004212/derivatives/preprocessed/[&delimiter=/][&continuation-token=T]
        s3 = https://s3.amazonaws.com/openneuro.org
    -> <ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><IsTruncated>, <NextContinuationToken>,
       <Contents><Key>, <Size>, <ETag>"md5"</ETag> (an MD5 only for single-part uploads: no "-N" suffix)</Contents>
    file bytes: GET {s3}/{key}

openneuro-py would need OpenNeuro's GraphQL API; the bucket is plain HTTP, lists sizes and needs no dependency.
"""

from __future__ import annotations

import re
import urllib.parse
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from eegdecode.download.http import Checksum, DownloadError, get_bytes, get_json

S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


@dataclass(frozen=True)
class RemoteFile:
    """One file a host lists: its path there (no leading slash), download URL, size and published checksum."""

    path: str
    url: str
    size: int | None
    checksum: Checksum | None


# --------------------------------------------------------------------------------------------------------- OSF
def list_osf(api: str, node: str, max_pages: int = 1000) -> list[RemoteFile]:
    """Every file of an OSF node's ``osfstorage``, folders followed."""
    out: list[RemoteFile] = []
    todo = [f"{api.rstrip('/')}/nodes/{node}/files/osfstorage/"]
    pages = 0
    while todo:
        url = todo.pop(0)
        while url:
            pages += 1
            if pages > max_pages:
                raise DownloadError(f"{url}: more than {max_pages} listing pages; stopping")
            doc = get_json(url)
            if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
                raise DownloadError(f"{url}: not an OSF file listing (no 'data' list)")
            for item in doc["data"]:
                try:
                    attrs = item["attributes"]
                    if attrs["kind"] == "folder":
                        todo.append(item["relationships"]["files"]["links"]["related"]["href"])
                        continue
                    hashes = (attrs.get("extra") or {}).get("hashes") or {}
                    checksum = (
                        Checksum("sha256", hashes["sha256"]) if hashes.get("sha256")
                        else Checksum("md5", hashes["md5"]) if hashes.get("md5") else None
                    )  # fmt: skip
                    path = (attrs.get("materialized_path") or attrs["name"]).lstrip("/")
                    out.append(RemoteFile(path, item["links"]["download"], attrs.get("size"), checksum))
                except (KeyError, TypeError):
                    raise DownloadError(
                        f"{url}: an entry lacks attributes/kind/name or links/download"
                    ) from None
            url = (doc.get("links") or {}).get("next")
    return out


# ------------------------------------------------------------------------------------------------ Hugging Face
def list_hf(endpoint: str, repo_id: str, path: str = "", repo_type: str = "dataset", revision: str = "main"):
    """Files of a Hub repository under ``path`` (recursive), through ``huggingface_hub``."""
    from huggingface_hub import HfApi, constants, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if constants.HF_HUB_OFFLINE:
        raise DownloadError("HF_HUB_OFFLINE is set: unset it to download from Hugging Face")
    api = HfApi(endpoint=endpoint)
    try:
        entries = list(
            api.list_repo_tree(
                repo_id, path_in_repo=path or None, recursive=True, repo_type=repo_type, revision=revision
            )
        )
    except (HfHubHTTPError, OfflineModeIsEnabled) as err:
        raise DownloadError(f"{endpoint} {repo_type} {repo_id}: {str(err).splitlines()[0]}") from None
    except OSError as err:  # httpx transport errors are OSErrors or subclasses of httpx errors
        raise DownloadError(f"{endpoint}: cannot reach the server ({err})") from None
    except Exception as err:
        if type(err).__module__.startswith(("httpx", "httpcore")):
            raise DownloadError(
                f"{endpoint}: cannot reach the server ({type(err).__name__}: {err})"
            ) from None
        raise
    out = []
    for e in entries:
        if not hasattr(e, "size"):  # RepoFolder
            continue
        checksum = Checksum("sha256", e.lfs.sha256) if e.lfs is not None else Checksum("git-sha1", e.blob_id)
        url = hf_hub_url(repo_id, e.path, repo_type=repo_type, revision=revision, endpoint=endpoint)
        out.append(RemoteFile(e.path, url, e.size, checksum))
    return out


# ------------------------------------------------------------------------------------------------- OpenNeuro S3
_MD5 = re.compile(r"^[0-9a-f]{32}$")


def list_s3(
    endpoint: str, prefix: str, delimiter: str | None = None, max_pages: int = 1000
) -> list[RemoteFile]:
    """Objects under ``prefix`` of a public S3 bucket (ListObjectsV2, path-style ``endpoint`` = bucket URL)."""
    base = endpoint.rstrip("/")
    out: list[RemoteFile] = []
    token = None
    for _ in range(max_pages):
        params = {"list-type": "2", "prefix": prefix}
        if delimiter:
            params["delimiter"] = delimiter
        if token:
            params["continuation-token"] = token
        url = f"{base}?{urllib.parse.urlencode(params)}"
        body, _ = get_bytes(url)
        try:
            doc = ET.fromstring(body)
        except ET.ParseError as err:
            raise DownloadError(f"{url}: not an S3 listing ({err})") from None
        if doc.tag != f"{S3_NS}ListBucketResult":
            raise DownloadError(f"{url}: not an S3 ListBucketResult (root element {doc.tag})")
        for c in doc.iter(f"{S3_NS}Contents"):
            key = c.findtext(f"{S3_NS}Key")
            if not key or key.endswith("/"):
                continue
            size = c.findtext(f"{S3_NS}Size")
            etag = (c.findtext(f"{S3_NS}ETag") or "").strip('"').lower()
            checksum = Checksum("md5", etag) if _MD5.match(etag) else None
            out.append(
                RemoteFile(key, f"{base}/{urllib.parse.quote(key)}", int(size) if size else None, checksum)
            )
        if (doc.findtext(f"{S3_NS}IsTruncated") or "").lower() != "true":
            return out
        token = doc.findtext(f"{S3_NS}NextContinuationToken")
        if not token:
            raise DownloadError(f"{url}: truncated listing without NextContinuationToken")
    raise DownloadError(f"{base}: more than {max_pages} listing pages under {prefix}; stopping")
