"""The interface of a storage backend.

Keys are relative paths such as `jobs/ab12/rock-30s-seed1.mid`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class Storage(Protocol):
    """What the website, the workers and the style sync ask of storage."""

    kind: str  # "local" or "s3"

    def put(self, key: str, data: bytes) -> str:
        """Stores `data` under `key` (atomically); returns the key."""

    def get(self, key: str) -> bytes:
        """The bytes under `key`; PerfRNNError once they are gone."""

    def exists(self, key: str) -> bool:
        """Whether something is stored under `key`."""

    def keys(self, prefix: str) -> dict[str, str]:
        """Every key under `prefix` with a tag that changes when its content does."""

    def delete_prefix(self, prefix: str) -> None:
        """Removes every key under `prefix` (a folder such as `jobs/ab12`)."""

    def download_url(self, key: str, filename: str) -> str | None:
        """A URL the browser can fetch directly; None: the server sends the bytes."""

    def local_path(self, key: str) -> Path | None:
        """The file on this machine holding `key`; None where there is none."""
