"""Getting the system packages and registry downloads the builders read.

Debian packages are installed with apt-get when they are missing and we run as
root; otherwise the error names the command to run. PyPI source archives are
fetched with ``pip download`` into a cache folder (by default
``~/.cache/perfrnn-datasets``) and reused on later runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from datasets.errors import DatasetError

DEFAULT_CACHE = Path("~/.cache/perfrnn-datasets")
INSTALL_SCRIPT = "datasets/install_system_packages.sh"

DEBIAN_PACKAGES: dict[str, str] = {
    "mma": "/usr/bin/mma",
    "freedoom": "/usr/share/games/doom/freedoom2.wad",
    "planetblupi-music-midi": "/usr/share/planetblupi/music",
    "lmms-common": "/usr/share/lmms/projects",
}
"""Debian packages the builders read, each with a path that shows it is installed."""


def cache_dir(cache: str | os.PathLike[str] | None = None) -> Path:
    """The download cache folder (created if needed): ``cache`` or ``~/.cache/perfrnn-datasets``."""
    path = Path(cache).expanduser() if cache else DEFAULT_CACHE.expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _apt_get(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    return subprocess.run(
        ["apt-get", *args], env=env, capture_output=True, text=True, check=False
    )


def ensure_debian_package(package: str, *, install: bool = True) -> Path:
    """Makes sure Debian ``package`` is installed and returns the path that proves it.

    If it is missing and ``install`` is true and we are root with apt-get, runs
    ``apt-get install -y PACKAGE`` (and ``apt-get update`` first if that fails).
    Raises :class:`DatasetError` naming the command to run otherwise.
    """
    probe = Path(DEBIAN_PACKAGES[package])
    if probe.exists():
        return probe
    hint = (
        f"the Debian package '{package}' is needed: run `sudo apt-get install -y {package}` "
        f"(or `sudo bash {INSTALL_SCRIPT}` for all of them)"
    )
    if not install or shutil.which("apt-get") is None or os.geteuid() != 0:
        raise DatasetError(hint)
    print(f"installing Debian package {package} with apt-get ...", file=sys.stderr)
    result = _apt_get("install", "-y", "-q", "--no-install-recommends", package)
    if result.returncode != 0:
        _apt_get("update", "-q")
        result = _apt_get("install", "-y", "-q", "--no-install-recommends", package)
    if result.returncode != 0 or not probe.exists():
        last = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise DatasetError(f"{hint}; apt-get failed: {last[0]}")
    return probe


def debian_version(package: str) -> str:
    """Installed Debian version of ``package`` (e.g. ``21.09-1``), or ``unknown``."""
    try:
        result = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", package],
            capture_output=True, text=True, check=False,
        )
    except OSError:
        return "unknown"
    return result.stdout.strip() or "unknown"


def python_version(distribution: str) -> str:
    """Installed version of a Python distribution (e.g. music21), or ``unknown``."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


def pypi_sdist(requirement: str, cache: Path) -> Path:
    """The source archive of ``requirement`` (``name==version``), downloaded once into the cache.

    Uses ``pip download --no-binary :all: --no-deps``; raises :class:`DatasetError`
    when pip cannot fetch it (no connection to PyPI, say).
    """
    name, _, version = requirement.partition("==")
    folder = cache / "pip"
    folder.mkdir(parents=True, exist_ok=True)
    stems = {f"{name}-{version}", f"{name.replace('-', '_')}-{version}"}
    for suffix in (".tar.gz", ".zip"):
        for stem in stems:
            if (folder / f"{stem}{suffix}").is_file():
                return folder / f"{stem}{suffix}"
    print(f"downloading the {requirement} source archive from PyPI ...", file=sys.stderr)
    command = [
        sys.executable, "-m", "pip", "download", requirement,
        "--no-binary", ":all:", "--no-deps", "--quiet", "-d", str(folder),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    for suffix in (".tar.gz", ".zip"):
        for stem in stems:
            if (folder / f"{stem}{suffix}").is_file():
                return folder / f"{stem}{suffix}"
    last = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
    raise DatasetError(
        f"could not download {requirement} from PyPI ({last[0]}); check the connection, "
        f"or run `{' '.join(command[2:])}` yourself and pass --cache {cache}"
    )
