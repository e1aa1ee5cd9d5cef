"""Styles kept in a bucket, copied to each machine that uses them.

With STORAGE=s3, `bundles/<name>.mag` holds the shipped styles (uploaded by
`python -m infra up`) and `styles/<name>.mag` the ones users trained or
imported. Every web server and worker keeps local copies, fetched again
only when an object's ETag (its content hash) changes, so a style trained on
one worker reaches every other one on its next job.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from pathlib import Path

from perfrnn.registry import BUNDLE_SUFFIX, STYLE_NAME, StyleSource

PREFIXES = (("bundles/", "shipped"), ("styles/", "user"))
TAGS_FILE = ".etags.json"


class StyleSync:
    def __init__(self, storage, cache_dir: str | Path, min_interval: float = 30.0):
        self.storage = storage
        self.cache_dir = Path(cache_dir)
        self.min_interval = min_interval
        self._last = 0.0
        self._lock = threading.Lock()

    def sources(self) -> list[StyleSource]:
        return [StyleSource(self.cache_dir / prefix.rstrip("/"), origin)
                for prefix, origin in PREFIXES]

    def sync(self, force: bool = False) -> None:
        """Fetches new and changed styles and drops removed ones (at most once
        per `min_interval` seconds unless forced)."""
        with self._lock:
            if not force and time.monotonic() - self._last < self.min_interval:
                return
            self._last = time.monotonic()
            for prefix, _ in PREFIXES:
                self._sync_prefix(prefix, self.cache_dir / prefix.rstrip("/"))

    def _sync_prefix(self, prefix: str, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        tags_path = folder / TAGS_FILE
        try:
            tags = json.loads(tags_path.read_text())
        except (OSError, ValueError):
            tags = {}
        remote = {}
        for key, etag in self.storage.keys(prefix).items():
            name = key[len(prefix):]
            if "/" not in name and name.endswith(BUNDLE_SUFFIX) and \
                    STYLE_NAME.fullmatch(name[:-len(BUNDLE_SUFFIX)]):
                remote[name] = etag
        for name, etag in remote.items():
            local = folder / name
            if tags.get(name) == etag and local.is_file():
                continue
            handle, partial = tempfile.mkstemp(dir=folder, prefix=".part-")
            with os.fdopen(handle, "wb") as out:
                out.write(self.storage.get(prefix + name))
            os.replace(partial, local)
            tags[name] = etag
        for name in list(tags):
            if name not in remote:
                (folder / name).unlink(missing_ok=True)
                del tags[name]
        tags_path.write_text(json.dumps(tags))

    def publish(self, path: Path, name: str) -> None:
        """Uploads a user's style so every machine gets it."""
        self.storage.put(f"styles/{name}{BUNDLE_SUFFIX}", Path(path).read_bytes())
        self.sync(force=True)
