"""Where results and uploads live: a local folder (the default) or S3.

Keys are relative paths such as `jobs/ab12/rock-30s-seed1.mid`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from perfrnn.errors import PerfRNNError


class LocalStorage:
    """Files under one folder; writes are atomic (temporary file, then rename)."""

    kind = "local"

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise PerfRNNError(f"invalid storage key {key!r}")
        return path

    def put(self, key: str, data: bytes) -> str:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".part-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return key

    def get(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            raise PerfRNNError(f"{key} is no longer stored") from None

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete_prefix(self, prefix: str) -> None:
        """Removes every key under `prefix` (a folder such as `jobs/ab12`)."""
        shutil.rmtree(self.path(prefix), ignore_errors=True)

    def download_url(self, key: str, filename: str) -> str | None:
        """A URL the browser can fetch directly; None: serve the bytes ourselves."""
        return None
