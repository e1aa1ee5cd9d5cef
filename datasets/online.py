"""Online fetchers: MAESTRO v3, the Groove MIDI Dataset and the Lakh MIDI clean subset.

Each fetcher downloads an archive (resuming, see :mod:`datasets.download`) into
the cache, unpacks it safely into ``--out`` and writes the same
``manifest.json`` as the offline builders. MAESTRO and Groove carry their own
split column (``test`` rows go to ``validation``, with ``dataset_split:
"test"`` kept in the entry); Lakh is split by artist. Lakh files get genre
labels from the tagtraum CD2C annotations of the Million Song Dataset, joined
through the Lakh match scores (MIDI md5 -> MSD track).
"""

from __future__ import annotations

import csv
import hashlib
import json
import secrets
import shutil
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from datasets.build import check_out_dir
from datasets.download import download, unpack
from datasets.errors import DatasetError
from datasets.manifest import (
    CorpusFile,
    build_manifest,
    split_families,
    write_manifest,
    write_notes,
)
from datasets.system import cache_dir
from perfrnn.folders import swap_into_place

MIDI_SUFFIXES = (".mid", ".midi")


@dataclass
class FetchOptions:
    """Options of one fetch run."""

    seed: int = 0
    validation_fraction: float = 0.1
    genre: str | None = None
    """Lakh only: keep files with this tagtraum genre (case-insensitive), e.g. ``Rock``."""
    match_url: str | None = None
    genres_url: str | None = None
    genres: bool = True
    """Lakh only: download the match scores and genre labels (False skips them)."""
    cache: Path | None = None


@dataclass(frozen=True)
class OnlineDataset:
    """A public dataset the fetcher knows."""

    name: str
    title: str
    url: str
    sha256: str | None
    """Known SHA-256 of the default archive, or None (then only ``--sha256`` checks it)."""
    licence: str
    kind: str
    homepage: str
    index: Callable[[Path, str, FetchOptions], list[CorpusFile]]
    """(unpacked folder, source label, options) -> manifest entries."""


def _find(folder: Path, filename: str) -> Path:
    found = sorted(folder.rglob(filename))
    if not found:
        raise DatasetError(f"the archive has no {filename}; is --url the right archive?")
    return found[0]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _split_of(value: str) -> str:
    return "train" if value.strip().lower() == "train" else "validation"


def index_maestro(folder: Path, source: str, options: FetchOptions) -> list[CorpusFile]:
    """Entries from MAESTRO's csv (split column; family = composer and title)."""
    table = sorted(folder.rglob("maestro-v*.csv")) or sorted(folder.rglob("*.csv"))
    if not table:
        raise DatasetError("the archive has no MAESTRO csv; is --url the right archive?")
    base = table[0].parent
    files = []
    for row in _rows(table[0]):
        path = base / row.get("midi_filename", "")
        if not row.get("midi_filename") or not path.is_file():
            continue
        family = f"maestro:{row.get('canonical_composer', '')}: {row.get('canonical_title', '')}"
        extra = {"title": row.get("canonical_title", ""),
                 "composer": row.get("canonical_composer", ""),
                 "dataset_split": row.get("split", "")}
        if row.get("duration"):
            extra["seconds"] = round(float(row["duration"]), 3)
        files.append(CorpusFile(path.relative_to(folder).as_posix(), source,
                                "CC-BY-NC-SA-4.0", _split_of(row.get("split", "")), family,
                                "pitched", extra))
    return files


def index_groove(folder: Path, source: str, options: FetchOptions) -> list[CorpusFile]:
    """Entries from Groove's info.csv (split column; family = the performance id)."""
    table = _find(folder, "info.csv")
    base = table.parent
    files = []
    for row in _rows(table):
        path = base / row.get("midi_filename", "")
        if not row.get("midi_filename") or not path.is_file():
            continue
        extra: dict[str, object] = {
            "title": row.get("id", ""), "style": row.get("style", ""),
            "beat_type": row.get("beat_type", ""), "drummer": row.get("drummer", ""),
            "dataset_split": row.get("split", ""),
        }
        if row.get("bpm"):
            extra["tempo_bpm"] = float(row["bpm"])
        if row.get("duration"):
            extra["seconds"] = round(float(row["duration"]), 3)
        files.append(CorpusFile(path.relative_to(folder).as_posix(), source, "CC-BY-4.0",
                                _split_of(row.get("split", "")), f"groove:{row.get('id', '')}",
                                "drums", extra))
    return files


LAKH_MATCH_URL = "http://hog.ee.columbia.edu/craffel/lmd/match_scores.json"
TAGTRAUM_URL = "https://www.tagtraum.com/genres/msd_tagtraum_cd2c.cls.zip"


def _lakh_genres(options: FetchOptions) -> dict[str, str]:
    """MIDI md5 -> tagtraum genre, via the best-scoring MSD match of each MIDI file."""
    cache = cache_dir(options.cache) / "downloads"
    match_url = options.match_url or LAKH_MATCH_URL
    genres_url = options.genres_url or TAGTRAUM_URL
    match_path = download(match_url, cache / _file_name(match_url))
    genres_path = download(genres_url, cache / _file_name(genres_url))
    try:
        scores = json.loads(match_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        match_path.unlink()
        raise DatasetError(f"{match_url} is not valid JSON (deleted; run again)") from exc
    if zipfile.is_zipfile(genres_path):
        with zipfile.ZipFile(genres_path) as zf:
            name = next((n for n in zf.namelist() if n.endswith(".cls")), None)
            if name is None:
                raise DatasetError(f"{genres_url} holds no .cls file")
            text = zf.read(name).decode("utf-8", "replace")
    else:
        text = genres_path.read_text(encoding="utf-8", errors="replace")
    track_genre = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            fields = line.split("\t")
            if len(fields) >= 2:
                track_genre[fields[0]] = fields[1]
    best: dict[str, tuple[float, str]] = {}
    for track, matches in scores.items():
        genre = track_genre.get(track)
        if genre is None:
            continue
        for md5, score in matches.items():
            if md5 not in best or score > best[md5][0]:
                best[md5] = (float(score), genre)
    return {md5: genre for md5, (_, genre) in best.items()}


def index_lakh(folder: Path, source: str, options: FetchOptions) -> list[CorpusFile]:
    """Entries for the Lakh clean subset (``clean_midi/ARTIST/TITLE.mid``), split by artist."""
    genres = _lakh_genres(options) if options.genres or options.genre else {}
    entries = []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES):
        relative = path.relative_to(folder)
        artist = relative.parts[-2] if len(relative.parts) >= 2 else "unknown"
        md5 = hashlib.md5(path.read_bytes()).hexdigest()  # noqa: S324 - Lakh's own file key
        genre = genres.get(md5)
        if options.genre and (genre or "").lower() != options.genre.lower():
            path.unlink()
            continue
        extra = {"title": path.stem, "artist": artist, "genre": genre, "md5": md5}
        entries.append((relative.as_posix(), f"lakh:{artist}", extra))
    split = split_families([("lakh", family, 1) for _, family, _ in entries],
                           options.validation_fraction, options.seed)
    return [CorpusFile(file, source, "Lakh-MIDI", split[family], family, "band", extra)
            for file, family, extra in entries]


ONLINE: dict[str, OnlineDataset] = {
    "maestro": OnlineDataset(
        "maestro", "MAESTRO v3.0.0 (MIDI only): ~200 hours of virtuosic piano performances",
        "https://storage.googleapis.com/magentadata/datasets/maestro/v3.0.0/"
        "maestro-v3.0.0-midi.zip",
        None, "CC-BY-NC-SA-4.0", "pitched", "https://magenta.tensorflow.org/datasets/maestro",
        index_maestro,
    ),
    "groove": OnlineDataset(
        "groove", "Groove MIDI Dataset v1.0.0: 13.6 hours of drumming on an electronic kit",
        "https://storage.googleapis.com/magentadata/datasets/groove/groove-v1.0.0-midionly.zip",
        None, "CC-BY-4.0", "drums", "https://magenta.tensorflow.org/datasets/groove",
        index_groove,
    ),
    "lakh": OnlineDataset(
        "lakh", "Lakh MIDI Dataset, clean subset (~17,000 songs by artist and title), with "
        "tagtraum genre labels", "http://hog.ee.columbia.edu/craffel/lmd/clean_midi.tar.gz",
        None, "Lakh-MIDI", "band", "https://colinraffel.com/projects/lmd/", index_lakh,
    ),
}
"""The online datasets by name."""


def _file_name(url: str) -> str:
    name = Path(urlparse(url).path).name
    return name or "download"


def fetch(
    name: str,
    out: str | Path,
    *,
    url: str | None = None,
    sha256: str | None = None,
    options: FetchOptions | None = None,
) -> tuple[Path, list[CorpusFile], float]:
    """Downloads, unpacks and indexes dataset ``name`` into ``out``.

    Returns (out folder, manifest entries, seconds taken). The archive stays in
    the cache (``downloads/``) so that a second fetch does not download again.
    """
    started = time.monotonic()
    options = options or FetchOptions()
    try:
        dataset = ONLINE[name]
    except KeyError:
        raise DatasetError(f"unknown dataset {name!r}; choose from {', '.join(ONLINE)}") from None
    out_dir = Path(out)
    check_out_dir(out_dir)
    source_url = url or dataset.url
    checksum = sha256 or (dataset.sha256 if url is None else None)
    archive = download(source_url, cache_dir(options.cache) / "downloads" / _file_name(source_url),
                       checksum)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.parent / f".{out_dir.name}.partial-{secrets.token_hex(4)}"
    try:
        try:
            unpack(archive, staging)
        except DatasetError as exc:
            if "corrupt" in str(exc):
                archive.unlink(missing_ok=True)
                raise DatasetError(f"{exc}; the download was deleted, run again to fetch it "
                                   "afresh") from exc
            raise
        files = dataset.index(staging, f"{name}:{source_url}", options)
        if not files:
            raise DatasetError(f"no MIDI files listed in the {name} archive from {source_url}")
        manifest = build_manifest(name, f"datasets fetch {name}", files, url=source_url,
                                  sha256=checksum, homepage=dataset.homepage)
        write_manifest(staging, manifest)
        write_notes(staging, manifest, dataset.title + ".")
        swap_into_place(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir, files, time.monotonic() - started
