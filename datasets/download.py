"""Downloading with resume and checksum, and unpacking archives safely.

Downloads go to ``NAME.part`` next to the final file and continue from where
they stopped (an HTTP ``Range`` request) when the command is run again. A
file whose SHA-256 does not match the expected one is deleted. Archives (zip,
tar, tar.gz/bz2/xz) are checked before anything is written: absolute paths,
``..`` components, links, devices and an absurd total size refuse the whole
archive.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import sys
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from datasets.errors import DatasetError
from perfrnn.archives import unsafe_entry_name

CHUNK_BYTES = 1 << 16
MAX_UNPACKED_BYTES = 64 * 1024**3
"""Refuse archives that claim to unpack to more than this (64 GiB; MAESTRO MIDI is ~85 MB)."""
MAX_RATIO = 200
"""Refuse archives that unpack to more than this many times their packed size."""
USER_AGENT = "perfrnn-datasets/1 (+https://github.com/)"


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _progress(total: int | None, initial: int, label: str):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
                desc=label, file=sys.stderr, disable=None, dynamic_ncols=True)


def download(url: str, dest: Path, sha256: str | None = None, timeout_s: float = 60.0) -> Path:
    """Downloads ``url`` to ``dest`` (resuming ``dest.part``) and verifies ``sha256`` if given.

    An existing ``dest`` is reused when it matches the checksum (or none is
    given). Raises :class:`DatasetError` on network failure (the ``.part`` file
    is kept so that the next run resumes) and on a checksum mismatch (the
    downloaded file is deleted).
    """
    expected = sha256.lower() if sha256 else None
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_file():
        if expected is None or sha256_of(dest) == expected:
            return dest
        dest.unlink()
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urlopen(Request(url, headers=headers), timeout=timeout_s)  # noqa: S310
    except HTTPError as exc:
        if exc.code == 416 and offset:  # the .part is already complete (or too long)
            response = None
        else:
            raise DatasetError(f"could not download {url}: HTTP {exc.code} {exc.reason}") from exc
    except (URLError, OSError, ValueError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise DatasetError(
            f"could not download {url}: {reason}; check the connection and the URL, then run "
            "the same command again (it resumes)"
        ) from exc
    if response is not None:
        with response:
            status = getattr(response, "status", 200)
            if offset and status != 206:
                offset = 0  # the server ignored the Range request: start again
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length and length.isdigit() else None
            mode = "ab" if offset else "wb"
            try:
                with part.open(mode) as handle, _progress(total, offset, dest.name) as bar:
                    while True:
                        chunk = response.read(CHUNK_BYTES)
                        if not chunk:
                            break
                        handle.write(chunk)
                        bar.update(len(chunk))
            except (OSError, http.client.HTTPException) as exc:
                raise DatasetError(
                    f"the download of {url} was interrupted ({exc}); {part.stat().st_size} bytes "
                    f"are kept in {part}: run the same command again to resume"
                ) from exc
            if total is not None and part.stat().st_size < total:
                raise DatasetError(
                    f"the download of {url} stopped at {part.stat().st_size} of {total} bytes; "
                    "run the same command again to resume"
                )
    if expected is not None:
        actual = sha256_of(part)
        if actual != expected:
            part.unlink()
            raise DatasetError(
                f"checksum mismatch for {url}: expected sha256 {expected}, got {actual}; "
                "the downloaded file was deleted. Run again to download it afresh, or check "
                "--sha256"
            )
    os.replace(part, dest)
    return dest


def _check_member_name(name: str, archive: Path) -> PurePosixPath:
    """The member's path if it is safe to unpack, else DatasetError (zip slip)."""
    if unsafe_entry_name(name) is not None:
        raise DatasetError(
            f"refusing to unpack {archive.name}: member {name!r} would land outside the "
            "target folder; nothing was unpacked"
        )
    return PurePosixPath(name.replace("\\", "/"))


def _check_total(total: int, packed: int, archive: Path, max_bytes: int) -> None:
    if total > max_bytes or (packed > 1 << 20 and total > MAX_RATIO * packed):
        raise DatasetError(
            f"refusing to unpack {archive.name}: it claims {total} bytes unpacked from "
            f"{packed} packed (limit {max_bytes}); nothing was unpacked"
        )


def unpack(archive: Path, target: Path, max_bytes: int = MAX_UNPACKED_BYTES) -> list[Path]:
    """Unpacks a zip or tar archive into ``target`` after checking every member.

    Returns the unpacked files. Raises :class:`DatasetError` for an unsafe
    archive (nothing is written then) or a corrupt one.
    """
    target.mkdir(parents=True, exist_ok=True)
    packed = archive.stat().st_size
    written: list[Path] = []
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                infos = zf.infolist()
                for info in infos:
                    _check_member_name(info.filename, archive)
                    if (info.external_attr >> 16) & 0o170000 == 0o120000:
                        raise DatasetError(
                            f"refusing to unpack {archive.name}: member {info.filename!r} is a "
                            "symbolic link; nothing was unpacked"
                        )
                _check_total(sum(i.file_size for i in infos), packed, archive, max_bytes)
                budget = max_bytes
                for info in infos:
                    if info.is_dir():
                        continue
                    out = target / _check_member_name(info.filename, archive)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, out.open("wb") as dst:
                        budget -= _copy_limited(src, dst, budget, archive)
                    written.append(out)
        else:
            with tarfile.open(archive) as tar:
                members = tar.getmembers()
                for member in members:
                    _check_member_name(member.name, archive)
                    if not (member.isfile() or member.isdir()):
                        raise DatasetError(
                            f"refusing to unpack {archive.name}: member {member.name!r} is a "
                            "link or special file; nothing was unpacked"
                        )
                _check_total(sum(m.size for m in members if m.isfile()), packed, archive,
                             max_bytes)
                budget = max_bytes
                for member in members:
                    if not member.isfile():
                        continue
                    out = target / _check_member_name(member.name, archive)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    src = tar.extractfile(member)
                    if src is None:
                        continue
                    with src, out.open("wb") as dst:
                        budget -= _copy_limited(src, dst, budget, archive)
                    written.append(out)
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError, OSError) as exc:
        raise DatasetError(f"{archive} is corrupt or not a zip/tar archive ({exc})") from exc
    return written


def _copy_limited(src, dst, budget: int, archive: Path) -> int:
    """Copies with a byte budget (archive headers can lie about sizes); returns bytes copied."""
    copied = 0
    while True:
        chunk = src.read(CHUNK_BYTES)
        if not chunk:
            return copied
        copied += len(chunk)
        if copied > budget:
            raise DatasetError(
                f"refusing to unpack {archive.name}: it unpacks to more than its headers say "
                "(a zip bomb?)"
            )
        dst.write(chunk)


def remove_tree(path: Path) -> None:
    """Deletes a folder tree if it exists."""
    shutil.rmtree(path, ignore_errors=True)
