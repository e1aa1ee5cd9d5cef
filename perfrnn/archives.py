"""Unpacking user-supplied zip archives without trusting them.

An archive is checked as a whole, from its central directory, before anything
is written: every entry name must stay inside the folder it is unpacked into
(no absolute paths, drive letters or ".." parts: "zip slip"), and the sizes it
declares must be sane (total at most MAX_UNPACKED_BYTES, no entry or total
expanding more than MAX_COMPRESSION_RATIO times). An archive that fails any
check is refused whole. Only entries with a wanted suffix are unpacked, by
streaming with a running byte count, so a header that lies about its size
cannot fill the disk either.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from perfrnn.errors import PerfRNNError

MAX_UNPACKED_BYTES = 1 << 30  # 1 GiB in all
MAX_COMPRESSION_RATIO = 100
# Below this many unpacked bytes the ratio is not checked: tiny files can
# legitimately compress very well.
RATIO_CHECK_MIN_BYTES = 1 << 20
MAX_ENTRIES = 100_000
_COPY_CHUNK_BYTES = 1 << 16
_ENCRYPTED_FLAG = 0x1


class UnsafeArchiveError(PerfRNNError):
    """An archive that is refused whole: unsafe paths, absurd sizes, not a zip."""


@dataclass
class UnpackedArchive:
    """What `unpack_zip` wrote.

    Attributes:
      files: (entry name inside the archive, path of the unpacked file), sorted
        by entry name.
      ignored: names of entries that were not unpacked (other suffixes,
        folders, macOS resource forks).
    """

    files: list[tuple[str, Path]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def check_zip(path: str | os.PathLike) -> list[zipfile.ZipInfo]:
    """Checks an archive's entry names and declared sizes without unpacking it.

    Returns:
      The archive's entries.

    Raises:
      UnsafeArchiveError: with a message naming the offending entry or size.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as error:
        raise UnsafeArchiveError(f"not a valid zip archive ({error})") from None
    if len(entries) > MAX_ENTRIES:
        raise UnsafeArchiveError(
            f"archive has {len(entries):,} entries, more than the {MAX_ENTRIES:,} allowed; "
            "split it into smaller archives")
    for entry in entries:
        problem = unsafe_entry_name(entry.filename)
        if problem:
            raise UnsafeArchiveError(
                f"refused archive: entry {entry.filename!r} {problem} (zip slip); "
                "nothing was unpacked from it")
        if entry.flag_bits & _ENCRYPTED_FLAG:
            raise UnsafeArchiveError(
                f"refused archive: entry {entry.filename!r} is encrypted; "
                "unpack it yourself and pass the folder")
        if _expands_too_much(entry.file_size, entry.compress_size):
            raise UnsafeArchiveError(
                f"refused archive: entry {entry.filename!r} unpacks to "
                f"{_mib(entry.file_size)} from {_mib(entry.compress_size)} "
                f"(more than {MAX_COMPRESSION_RATIO}x; a zip bomb?)")
    total = sum(entry.file_size for entry in entries)
    compressed = sum(entry.compress_size for entry in entries)
    if total > MAX_UNPACKED_BYTES:
        raise UnsafeArchiveError(
            f"refused archive: it would unpack to {_mib(total)}, more than the "
            f"{_mib(MAX_UNPACKED_BYTES)} allowed; split it or unpack it yourself")
    if _expands_too_much(total, compressed):
        raise UnsafeArchiveError(
            f"refused archive: it would unpack to {_mib(total)} from {_mib(compressed)} "
            f"(more than {MAX_COMPRESSION_RATIO}x; a zip bomb?)")
    return entries


def unsafe_entry_name(name: str) -> str | None:
    """Why an archive entry name could escape the folder it is unpacked into, or None."""
    if "\x00" in name:
        return "has a NUL character in its name"
    normalised = name.replace("\\", "/")
    if normalised.startswith("/") or PurePosixPath(normalised).is_absolute():
        return "has an absolute path"
    if len(normalised) >= 2 and normalised[1] == ":":
        return "has a drive letter"
    if any(part == ".." for part in normalised.split("/")):
        return "has a '..' part that points outside the archive"
    return None


def unpack_zip(
    path: str | os.PathLike, destination: str | os.PathLike, suffixes: Iterable[str]
) -> UnpackedArchive:
    """Unpacks the entries of a checked archive whose names end in one of `suffixes`.

    Args:
      path: The .zip file.
      destination: An existing, empty folder (a temporary one); nothing is
        written anywhere else.
      suffixes: Lower-case suffixes with the dot, e.g. (".mid", ".xml").

    Raises:
      UnsafeArchiveError: the archive fails `check_zip`, or an entry turns out
        bigger than declared or corrupt; what was unpacked so far stays in
        `destination` for the caller to remove.
    """
    entries = check_zip(path)
    destination = Path(destination).resolve()
    wanted = tuple(suffix.lower() for suffix in suffixes)
    result = UnpackedArchive()
    written = 0
    try:
        with zipfile.ZipFile(path) as archive:
            for entry in sorted(entries, key=lambda item: item.filename):
                name = entry.filename.replace("\\", "/")
                parts = [part for part in name.split("/") if part not in ("", ".")]
                if (entry.is_dir() or not parts or "__MACOSX" in parts
                        or parts[-1].startswith("._")
                        or not parts[-1].lower().endswith(wanted)):
                    if not entry.is_dir():
                        result.ignored.append(entry.filename)
                    continue
                target = destination.joinpath(*parts)
                if not target.resolve().is_relative_to(destination):  # belt and braces
                    raise UnsafeArchiveError(
                        f"refused archive: entry {entry.filename!r} points outside the archive")
                if target.exists():  # e.g. "a/b.mid" and "a\\b.mid"
                    result.ignored.append(entry.filename)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                written += _copy_entry(archive, entry, target, MAX_UNPACKED_BYTES - written)
                result.files.append((entry.filename, target))
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        raise UnsafeArchiveError(f"archive is corrupt ({error})") from None
    return result


def _copy_entry(archive: zipfile.ZipFile, entry: zipfile.ZipInfo, target: Path,
                budget: int) -> int:
    """Streams one entry to `target`; returns the number of bytes written."""
    limit = min(entry.file_size, budget)
    copied = 0
    with archive.open(entry) as source, open(target, "xb") as sink:
        while True:
            chunk = source.read(_COPY_CHUNK_BYTES)
            if not chunk:
                break
            copied += len(chunk)
            if copied > limit:
                raise UnsafeArchiveError(
                    f"refused archive: entry {entry.filename!r} is bigger than it declares")
            sink.write(chunk)
    return copied


def _expands_too_much(unpacked: int, packed: int) -> bool:
    return unpacked > RATIO_CHECK_MIN_BYTES and unpacked > MAX_COMPRESSION_RATIO * max(packed, 1)


def _mib(size: int) -> str:
    """A byte count for people: KiB, MiB or GiB with one decimal."""
    for unit, shift in (("GiB", 30), ("MiB", 20)):
        if size >= 1 << shift:
            return f"{size / (1 << shift):.1f} {unit}"
    return f"{size / 1024:.1f} KiB"

