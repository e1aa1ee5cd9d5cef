"""Storage in a local folder (STORAGE=local, the default); see base.Storage."""

from __future__ import annotations

import hashlib
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
        """The file for `key`, which must stay inside the root folder."""
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

    def keys(self, prefix: str) -> dict[str, str]:
        """Every key under `prefix` with the MD5 of its content (as S3's ETag)."""
        folder = self.path(prefix.rstrip("/")) if prefix.strip("/") else self.root.resolve()
        root = self.root.resolve()
        return {path.relative_to(root).as_posix(): hashlib.md5(path.read_bytes()).hexdigest()
                for path in sorted(folder.rglob("*"))
                if path.is_file() and not path.name.startswith(".part-")}

    def delete_prefix(self, prefix: str) -> None:
        path = self.path(prefix)
        if path.is_file():  # one file's own key
            path.unlink(missing_ok=True)
        shutil.rmtree(path, ignore_errors=True)

    def download_url(self, key: str, filename: str) -> str | None:
        return None

    def local_path(self, key: str) -> Path | None:
        return self.path(key)
