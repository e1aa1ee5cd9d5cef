"""The style registry: every bundle a user can generate from, by name.

Styles come from folders searched in order: the shipped `bundles/` first,
then the styles a user trained or imported. A style's name is its file's
stem (`rock.mag` is "rock"); the first folder that has a name wins, so a
user's file never shadows a shipped style.

Bundles are read once and kept; a file that changes on disk (same name, new
size or time) is read again. Samplers are built on first use and shared by every thread.
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from perfrnn.bundle import Bundle, read_bundle
from perfrnn.errors import PerfRNNError
from perfrnn.metre import parse_metre
from perfrnn.note_lengths import QUANTILES

BUNDLE_SUFFIX = ".mag"
STYLE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")


def check_style_name(name: str) -> str:
    """Returns `name` if it can name a style (and a file), else raises PerfRNNError."""
    if not isinstance(name, str) or not STYLE_NAME.fullmatch(name):
        raise PerfRNNError(
            "a style name is 1 to 40 characters: lower-case letters, digits, '-' and '_', "
            "starting with a letter or digit")
    return name


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def check_metadata(bundle: Bundle) -> Bundle:
    """Returns `bundle` if its metadata has the types the website relies on, else
    raises PerfRNNError: an imported bundle's JSON is written by anyone, and one
    wrong field (a list for the metrics, text for the tempo) must not break
    the pages that list every style."""
    meta = bundle.metadata
    problems = []
    for name in ("style", "description", "card"):
        if not isinstance(getattr(meta, name), str):
            problems.append(f"{name} is not text")
    if not _number(meta.default_bpm) or meta.default_bpm <= 0:
        problems.append("default_bpm is not a tempo above 0")
    for name in ("metrics", "training", "default_controls"):
        if not isinstance(getattr(meta, name), dict):
            problems.append(f"{name} is not an object")
    for name in ("types", "provenance", "max_note_seconds", "note_length_steps"):
        if not isinstance(getattr(meta, name), list):
            problems.append(f"{name} is not a list")
    if isinstance(meta.types, list):
        for entry in meta.types:
            if not (isinstance(entry, dict) and isinstance(entry.get("program"), int)
                    and not isinstance(entry.get("program"), bool)
                    and 0 <= entry["program"] <= 127
                    and isinstance(entry.get("name", ""), str)
                    and isinstance(entry.get("track") or "", str)):
                problems.append("types holds an entry that is not a name, a GM program "
                                "from 0 to 127 and a part")
                break
    if isinstance(meta.max_note_seconds, list) and not all(
            _number(value) for value in meta.max_note_seconds):
        problems.append("max_note_seconds holds something other than numbers")
    if isinstance(meta.note_length_steps, list) and not all(
            isinstance(row, list) and len(row) in (0, QUANTILES)
            and all(_number(value) for value in row)
            for row in meta.note_length_steps):
        problems.append(f"note_length_steps holds something other than lists of "
                        f"{QUANTILES} numbers")
    if isinstance(meta.default_controls, dict):
        density = meta.default_controls.get("notes_per_second")
        key = meta.default_controls.get("key")
        if density is not None and not (_number(density) and density > 0):
            problems.append("default_controls.notes_per_second is not a number above 0")
        if key is not None and not isinstance(key, str):
            problems.append("default_controls.key is not text")
    try:
        parse_metre(meta.time_signature)
    except PerfRNNError:
        problems.append(f"time_signature {meta.time_signature!r} is not 4/4, 3/4, 6/8 or 2/4")
    if problems:
        raise PerfRNNError(f"its metadata is malformed: {'; '.join(problems)}")
    return bundle


def load_bundle(path: Path) -> Bundle:
    """read_bundle, then check_metadata; every failure is a PerfRNNError.

    Raises:
      PerfRNNError: the bundle does not load, or its metadata is malformed.
    """
    try:
        bundle = read_bundle(path)
    except (TypeError, ValueError, KeyError, AttributeError) as error:
        # read_bundle builds the metadata's tracks from the JSON as it stands
        raise PerfRNNError(f"its metadata is malformed ({type(error).__name__}: {error})",
                           path=path, action="load bundle") from None
    try:
        return check_metadata(bundle)
    except PerfRNNError as error:
        raise PerfRNNError(str(error), path=path, action="load bundle") from None


@dataclass(frozen=True)
class StyleSource:
    """A folder of bundles and what its styles are to users ("shipped", "user")."""

    folder: Path
    origin: str


@dataclass
class StyleEntry:
    """A style as listed: its file and, once read, its bundle."""

    name: str
    path: Path
    origin: str
    size_bytes: int
    bundle: Bundle | None = None
    error: str | None = None  # why the bundle does not load


class StyleRegistry:
    """Finds, loads and caches styles; safe to share between threads."""

    def __init__(self, sources: list[StyleSource], refresh=None):
        """`refresh`, if given, is called before each look at the folders (to
        fetch styles from elsewhere first; it may do nothing most times)."""
        self.sources = list(sources)
        self.refresh = refresh
        self._lock = threading.Lock()
        self._bundles: dict[Path, tuple[tuple[int, int], Bundle | None, str | None]] = {}
        self._samplers: dict[Path, tuple[tuple[int, int], object]] = {}

    def _files(self) -> dict[str, tuple[Path, str]]:
        if self.refresh is not None:
            self.refresh()
        found: dict[str, tuple[Path, str]] = {}
        for source in self.sources:
            if not source.folder.is_dir():
                continue
            for path in sorted(source.folder.glob(f"*{BUNDLE_SUFFIX}")):
                if path.is_file() and STYLE_NAME.fullmatch(path.stem):
                    found.setdefault(path.stem, (path, source.origin))
        return found

    def names(self) -> list[str]:
        return list(self._files())

    def _load(self, path: Path) -> tuple[Bundle | None, str | None]:
        stat = path.stat()
        stamp = (stat.st_size, stat.st_mtime_ns)
        with self._lock:
            cached = self._bundles.get(path)
            if cached and cached[0] == stamp:
                return cached[1], cached[2]
        try:
            bundle, error = load_bundle(path), None
        except PerfRNNError as failure:  # the style is named: say why, without its folder
            bundle = None
            error = failure.describe(path.name, lead=failure.path != str(path))
        with self._lock:
            self._bundles[path] = (stamp, bundle, error)
        return bundle, error

    def styles(self, load: bool = True) -> list[StyleEntry]:
        """Every style; with `load`, each one's bundle (or why it does not load)."""
        styles = []
        for name, (path, origin) in self._files().items():
            style = StyleEntry(name, path, origin, path.stat().st_size)
            if load:
                style.bundle, style.error = self._load(path)
            styles.append(style)
        return styles

    def get(self, name: str) -> StyleEntry:
        """The style called `name`, loaded.

        Raises:
          PerfRNNError: no such style, or its bundle does not load.
        """
        files = self._files()
        if name not in files:
            known = ", ".join(files) or "none"
            raise PerfRNNError(f"there is no style {name!r}; the styles are: {known}")
        path, origin = files[name]
        style = StyleEntry(name, path, origin, path.stat().st_size)
        style.bundle, style.error = self._load(path)
        if style.bundle is None:
            raise PerfRNNError(f"style {name!r} cannot be loaded: {style.error}")
        return style

    def sampler(self, name: str):
        """The style's Sampler, built once and shared.

        Threads may generate with it at the same time: each call keeps its
        state to itself, and the results are the same as one at a time (on two
        cores two calls together finish in about 0.65 of the time of two in a
        row; see docs/benchmarks.md).
        """
        from perfrnn.sampler import Sampler

        style = self.get(name)
        stamp = (style.path.stat().st_size, style.path.stat().st_mtime_ns)
        with self._lock:
            cached = self._samplers.get(style.path)
            if cached and cached[0] == stamp:
                return cached[1]
            # 128 events (~6 s of piano): requests join a running batch that often
            sampler = Sampler(style.bundle, block_events=128)
            self._samplers[style.path] = (stamp, sampler)
            return sampler

    def forget(self, path: Path) -> None:
        """Drops what is cached for a bundle file (after it was replaced or removed)."""
        with self._lock:
            self._bundles.pop(path, None)
            self._samplers.pop(path, None)
