"""What ``eegdecode download`` fetched: one JSON file per data root, rewritten atomically after every file.

``<root>/downloads/manifest.json``::

    {"format": "eegdecode-download-manifest", "version": 1,
     "files": {"image_set/image_metadata.npy": {
         "asset": "images", "url": "...", "size": 123, "sha256": "...",
         "source_checksum": ["sha256", "..."] | null,   # what the source publishes (null: none; sha256 recorded here)
         "fetched_at": "2026-01-01T00:00:00Z", "mtime_ns": ..., "extracted_to": null | "image_set/test_images",
         "n_extracted": null | 200}}}

Keys are paths relative to the data root (for an archive: where it was downloaded, under ``downloads/``).
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

from eegdecode.errors import DataFormatError
from eegdecode.io import read_json, write_json

FORMAT = "eegdecode-download-manifest"
VERSION = 1
MANIFEST_NAME = "downloads/manifest.json"


class Manifest:
    """The manifest of one data root (missing file: empty)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.path = self.root / MANIFEST_NAME
        self.files: dict[str, dict[str, Any]] = {}
        if self.path.is_file():
            try:
                data = read_json(self.path)
            except ValueError as err:
                raise DataFormatError(self.path, "not valid JSON", "a download manifest", str(err)) from None
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise DataFormatError(
                    self.path, "not a download manifest", f"format {FORMAT!r}", data.get("format")
                )
            if data.get("version") != VERSION:
                raise DataFormatError(self.path, "manifest version", VERSION, data.get("version"))
            self.files = dict(data.get("files", {}))

    def get(self, key: str) -> dict[str, Any] | None:
        return self.files.get(key)

    def record(self, key: str, **entry: Any) -> dict[str, Any]:
        """Add or replace the entry of ``key`` (with the time) and write the manifest."""
        entry.setdefault("fetched_at", _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
        self.files[key] = entry
        self.save()
        return entry

    def save(self) -> None:
        write_json(
            self.path, {"format": FORMAT, "version": VERSION, "files": dict(sorted(self.files.items()))}
        )
