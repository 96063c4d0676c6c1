"""A loopback HTTP server that stands in for OSF, the Hugging Face Hub and OpenNeuro's S3 bucket.

It answers in each host's URL and API shape (the shapes are documented in ``eegdecode/download/sources.py``):

- OSF API v2 under ``/osf/v2`` (``/nodes/{node}/files/osfstorage/`` JSON:API pages of two entries, ``links.next``),
  download links ``/osf/download/{id}/`` that redirect to ``/osf/storage/{id}`` as osf.io redirects to its storage;
- the Hub under ``/hf`` (``/api/datasets/{repo}/tree/{rev}/{path}`` pages of three entries through a ``Link``
  header, ``/datasets/{repo}/resolve/{rev}/{path}``, LFS files redirected to ``/hf/cdn/{sha256}``);
- the bucket under ``/s3`` (ListObjectsV2 XML pages of two keys with continuation tokens, objects ``/s3/{key}``).

Bodies honour ``Range: bytes=N-``. Faults can be injected per served path: ``cut_once`` (send N bytes of a full
``Content-Length`` then close), ``hold`` (send N bytes then stall, for a kill), ``corrupt`` (serve other bytes
N times). Every request is logged. The server binds 127.0.0.1 on an ephemeral port and shuts itself down after
``deadline`` seconds.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape


class FakeHosts:
    def __init__(self, deadline: float = 120.0):
        self.osf: dict[str, list[tuple[str, str, bytes]]] = {}  # node -> [(name, file id, bytes)]
        self.hf: dict[str, dict[str, bytes]] = {}  # repo (dataset or model) -> {path: bytes}
        self.s3: dict[str, bytes] = {}  # key -> bytes
        self.s3_multipart: set[str] = set()  # keys whose ETag is a multipart one (not an MD5)
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range)
        self.cut_once: dict[str, int] = {}
        self.hold: dict[str, int] = {}
        self.corrupt: dict[str, int] = {}
        self.ignore_range: set[str] = set()
        self.release = threading.Event()
        hosts = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_HEAD(self):
                hosts._handle(self, head=True)

            def do_GET(self):
                hosts._handle(self, head=False)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._timer = threading.Timer(deadline, self.stop)
        self._timer.daemon = True

    # -------------------------------------------------------------------------------------------- lifecycle
    def start(self) -> FakeHosts:
        self._thread.start()
        self._timer.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self._timer.cancel()
        self.server.shutdown()
        self.server.server_close()

    @property
    def endpoints(self) -> list[str]:
        return [
            f"--endpoint-osf={self.url}/osf/v2",
            f"--endpoint-hf={self.url}/hf",
            f"--endpoint-openneuro={self.url}/s3",
        ]

    def file_gets(self) -> list[tuple[str, str, str | None]]:
        """Requests for file bodies (not listings, not redirects)."""
        return [
            r
            for r in self.requests
            if r[1].startswith(("/osf/storage/", "/hf/cdn/", "/s3/")) or "/resolve/" in r[1]
        ]

    # ------------------------------------------------------------------------------------------------ routes
    def _handle(self, h: BaseHTTPRequestHandler, head: bool) -> None:
        parsed = urllib.parse.urlsplit(h.path)
        path = urllib.parse.unquote(parsed.path)
        query = dict(urllib.parse.parse_qsl(parsed.query))
        self.requests.append(("HEAD" if head else "GET", path, h.headers.get("Range")))
        try:
            if path.startswith("/osf/v2/nodes/"):
                return self._osf_listing(h, path, query)
            if path.startswith("/osf/download/"):
                return self._redirect(h, f"/osf/storage/{path.split('/')[3]}")
            if path.startswith("/osf/storage/"):
                fid = path.split("/")[3]
                for files in self.osf.values():
                    for _name, i, data in files:
                        if i == fid:
                            return self._body(h, path, data, head)
            if path.startswith(("/hf/api/datasets/", "/hf/api/models/")):
                return self._hf_tree(h, path, query)
            if path.startswith("/hf/") and "/resolve/" in path:
                # datasets: /datasets/{repo}/resolve/..., models: /{repo}/resolve/... (as hf_hub_url builds them)
                repo, rest = path[len("/hf/") :].split("/resolve/", 1)
                repo = repo.removeprefix("datasets/")
                _rev, file_path = rest.split("/", 1)
                data = self.hf.get(repo, {}).get(file_path)
                if data is not None:
                    if self._is_lfs(file_path):
                        return self._redirect(h, f"/hf/cdn/{hashlib.sha256(data).hexdigest()}")
                    return self._body(h, path, data, head)
            if path.startswith("/hf/cdn/"):
                sha = path.split("/")[3]
                for files in self.hf.values():
                    for data in files.values():
                        if hashlib.sha256(data).hexdigest() == sha:
                            return self._body(h, path, data, head)
            if path in ("/s3", "/s3/") and "list-type" in query:
                return self._s3_listing(h, query)
            if path.startswith("/s3/") and path[4:] in self.s3:
                return self._body(h, path, self.s3[path[4:]], head)
            self._send(h, 404, b'{"error": "not found"}', "application/json")
        except (BrokenPipeError, ConnectionResetError):
            pass

    @staticmethod
    def _is_lfs(path: str) -> bool:
        return not path.endswith((".md", ".gitattributes", ".json", ".txt"))

    def _send(
        self, h, code: int, body: bytes, ctype: str, extra: dict | None = None, head: bool = False
    ) -> None:
        h.send_response(code)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            h.send_header(k, v)
        h.end_headers()
        if not head:
            h.wfile.write(body)

    def _redirect(self, h, location: str) -> None:
        h.send_response(302)
        h.send_header("Location", self.url + location)
        h.send_header("Content-Length", "0")
        h.end_headers()

    def _body(self, h, path: str, data: bytes, head: bool) -> None:
        if self.corrupt.get(path, 0) > 0 and not head:
            self.corrupt[path] -= 1
            data = bytes(reversed(data))
        start = 0
        rng = h.headers.get("Range")
        if rng and rng.startswith("bytes=") and rng.endswith("-") and path not in self.ignore_range:
            start = int(rng[6:-1])
            if start >= len(data):
                return self._send(h, 416, b"", "text/plain", {"Content-Range": f"bytes */{len(data)}"})
        part = data[start:]
        h.send_response(206 if start else 200)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(len(part)))
        h.send_header("Accept-Ranges", "bytes")
        h.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        if start:
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        h.end_headers()
        if head:
            return
        if path in self.cut_once:
            n = self.cut_once.pop(path)
            h.wfile.write(part[:n])
            h.wfile.flush()
            h.close_connection = True
            return
        if path in self.hold:
            h.wfile.write(part[: self.hold[path]])
            h.wfile.flush()
            self.release.wait(30)
            h.close_connection = True
            return
        h.wfile.write(part)

    def _osf_listing(self, h, path: str, query: dict) -> None:
        node = path.split("/")[4]
        files = self.osf.get(node)
        if files is None:
            return self._send(h, 404, b'{"errors": [{"detail": "Not found."}]}', "application/vnd.api+json")
        page = int(query.get("page", "1"))
        chunk = files[(page - 1) * 2 : page * 2]
        data = [
            {
                "id": fid, "type": "files",
                "attributes": {
                    "kind": "file", "name": name, "path": f"/{fid}", "materialized_path": f"/{name}",
                    "size": len(body),
                    "extra": {"hashes": {"md5": hashlib.md5(body).hexdigest(), "sha256": hashlib.sha256(body).hexdigest()}},
                },
                "links": {"download": f"{self.url}/osf/download/{fid}/"},
            }
            for name, fid, body in chunk
        ]  # fmt: skip
        nxt = f"{self.url}{path}?page={page + 1}" if page * 2 < len(files) else None
        body = json.dumps({"data": data, "links": {"next": nxt}, "meta": {"total": len(files)}}).encode()
        self._send(h, 200, body, "application/vnd.api+json")

    def _hf_tree(self, h, path: str, query: dict) -> None:
        _kind, owner, name, _tree, _rev, *sub = path[len("/hf/api/") :].split("/")
        repo = f"{owner}/{name}"
        if repo not in self.hf:
            return self._send(h, 404, b'{"error": "Repository not found"}', "application/json",
                              {"X-Error-Code": "RepoNotFound"})  # fmt: skip
        prefix = "/".join(sub)
        entries = []
        for p, data in sorted(self.hf[repo].items()):
            if prefix and not p.startswith(prefix + "/"):
                continue
            e = {
                "type": "file",
                "oid": hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest(),
                "size": len(data),
                "path": p,
            }
            if self._is_lfs(p):
                e["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
            entries.append(e)
        start = int(query.get("cursor", "0"))
        page = entries[start : start + 3]
        extra = {}
        if start + 3 < len(entries):
            q = urllib.parse.urlencode({**query, "cursor": start + 3})
            extra["Link"] = f'<{self.url}{urllib.parse.quote(path)}?{q}>; rel="next"'
        self._send(h, 200, json.dumps(page).encode(), "application/json", extra)

    def _s3_listing(self, h, query: dict) -> None:
        prefix, delim = query.get("prefix", ""), query.get("delimiter")
        keys, prefixes = [], set()
        for k in sorted(self.s3):
            if not k.startswith(prefix):
                continue
            rest = k[len(prefix) :]
            if delim and delim in rest:
                prefixes.add(prefix + rest.split(delim, 1)[0] + delim)
            else:
                keys.append(k)
        start = int(query.get("continuation-token", "0"))
        page = keys[start : start + 2]
        truncated = start + 2 < len(keys)
        items = "".join(
            f"<Contents><Key>{escape(k)}</Key><Size>{len(self.s3[k])}</Size><ETag>&quot;"
            f"{hashlib.md5(self.s3[k]).hexdigest() + ('-2' if k in self.s3_multipart else '')}&quot;</ETag>"
            "<StorageClass>STANDARD</StorageClass></Contents>"
            for k in page
        )
        cps = "".join(
            f"<CommonPrefixes><Prefix>{escape(p)}</Prefix></CommonPrefixes>" for p in sorted(prefixes)
        )
        token = f"<NextContinuationToken>{start + 2}</NextContinuationToken>" if truncated else ""
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"<Name>openneuro.org</Name><Prefix>{escape(prefix)}</Prefix><KeyCount>{len(page)}</KeyCount>"
            f"<MaxKeys>2</MaxKeys><IsTruncated>{'true' if truncated else 'false'}</IsTruncated>{token}{items}{cps}"
            "</ListBucketResult>"
        ).encode()
        self._send(h, 200, body, "application/xml")


def wait_for(predicate, timeout: float = 20.0, step: float = 0.02) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return False
