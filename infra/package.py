"""The project's deployable source as one reproducible tar.gz, and its style
bundles as separate files.

Workers install exactly what `up` uploaded: `deploy/perfrnn.tar.gz` holds the
git-tracked files (plus new, not ignored ones) of the checkout, or, outside a
git checkout, every file except virtual environments, caches and local data.
The bundles (`bundles/*.mag`, about 116 MB) are left out of it and uploaded
one by one, only when they changed.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import subprocess
import tarfile
from pathlib import Path

BUNDLE_SUFFIX = ".mag"
BUNDLES_DIR = "bundles"

# Never shipped, wherever they are.
SKIPPED_ANYWHERE = {".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache",
                    "node_modules", ".mypy_cache"}
# Local data folders at the top of the project (see .gitignore).
SKIPPED_AT_TOP = {"instance", "corpora", "packs", "out", "runs", "data", "gpu_out",
                  "test-output"}
SKIPPED_SUFFIXES = (".pyc", ".pyo")


def _shipped(relative: str) -> bool:
    parts = relative.split("/")
    if any(part in SKIPPED_ANYWHERE for part in parts) or parts[0] in SKIPPED_AT_TOP:
        return False
    if relative.endswith(SKIPPED_SUFFIXES):
        return False
    return not (len(parts) == 2 and parts[0] == BUNDLES_DIR and parts[1].endswith(BUNDLE_SUFFIX))


def _git_files(root: Path) -> list[str] | None:
    """Tracked and new unignored files when `root` is the top of a git
    checkout (read-only git commands), else None."""
    try:
        top = subprocess.run(["git", "-C", str(root), "rev-parse", "--show-toplevel"],
                             capture_output=True, text=True, timeout=30)
        if top.returncode != 0 or Path(top.stdout.strip()).resolve() != root.resolve():
            return None
        listing = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others",
             "--exclude-standard"], capture_output=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return [name for name in listing.stdout.decode().split("\0") if name]


def _walked_files(root: Path) -> list[str]:
    found = []
    for folder, subfolders, files in os.walk(root):
        relative_folder = Path(folder).relative_to(root).as_posix()
        top = relative_folder == "."
        subfolders[:] = [name for name in subfolders if name not in SKIPPED_ANYWHERE
                         and not (top and name in SKIPPED_AT_TOP)]
        for name in files:
            found.append(name if top else f"{relative_folder}/{name}")
    return found


def source_files(root: Path) -> list[str]:
    """Relative paths (with /) of the files that go into the tarball, sorted."""
    root = Path(root)
    names = _git_files(root)
    if names is None:
        names = _walked_files(root)
    return sorted({name for name in names
                   if _shipped(name) and (root / name).is_file()
                   and not (root / name).is_symlink()})


def bundle_files(root: Path) -> list[Path]:
    """The style bundles shipped with the project, sorted by name."""
    folder = Path(root) / BUNDLES_DIR
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir()
                  if path.is_file() and path.suffix == BUNDLE_SUFFIX)


def build_tarball(root: Path, files: list[str]) -> bytes:
    """A gzipped tar of `files`, the same bytes for the same contents: fixed
    order, timestamps and owners, so an unchanged tree is not uploaded again."""
    root = Path(root)
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as zipped, \
            tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in files:
            path = root / name
            data = path.read_bytes()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def summary(root: Path) -> list[tuple[str, str]]:
    """(S3 key, description) of what `up` would upload, without building it."""
    from infra.plan import BUNDLE_PREFIX, DEPLOY_KEY

    root = Path(root)
    files = source_files(root)
    size = sum((root / name).stat().st_size for name in files)
    lines = [(DEPLOY_KEY, f"{len(files)} files from {root} ({size / 1e6:.1f} MB before "
                          "compression)")]
    for path in bundle_files(root):
        lines.append((BUNDLE_PREFIX + path.name, f"{path.stat().st_size / 1e6:.1f} MB"))
    return lines
