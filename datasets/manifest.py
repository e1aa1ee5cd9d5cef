"""The corpus manifest (``manifest.json``, format ``perfrnn-corpus/1``), the family split,
and the README/LICENCES notes written next to every corpus.

Manifest shape::

    {"format": "perfrnn-corpus/1", "name": STYLE, "builder": "datasets build STYLE",
     "created": ISO time, "files": [{"file", "source", "licence", "split", "family",
     "kind", ...}], "licences": {licence: meaning}}

Each file entry may carry more keys (``tempo_bpm`` in quarter notes per minute,
``seconds``, ``notes``, ``title``, ...); readers must ignore keys they do not know.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets.errors import DatasetError
from datasets.licences import licence_meaning

MANIFEST_FORMAT = "perfrnn-corpus/1"
MANIFEST_NAME = "manifest.json"
SPLITS = ("train", "validation")
CORPUS_KINDS = ("pitched", "drums", "band")
"""What a corpus holds (and `python -m training prepare --kind` keeps): pitched
parts merged into one performance, drums alone, or a band of parts."""


@dataclass
class CorpusFile:
    """One file of a corpus, as the manifest lists it."""

    file: str
    """Path relative to the corpus folder, with forward slashes."""
    source: str
    """Where it came from, e.g. ``debian:mma 21.09-1`` or ``pypi:music21 10.5.1``."""
    licence: str
    split: str
    """``train`` or ``validation``."""
    family: str
    """Group kept whole by the split (groove family, source song, composer, ...)."""
    kind: str
    """One of ``CORPUS_KINDS``: ``pitched``, ``drums`` or ``band``."""
    extra: dict[str, Any] = field(default_factory=dict)
    """More facts about the file (tempo_bpm, seconds, notes, title, ...)."""

    def to_json(self) -> dict[str, Any]:
        """The manifest entry: the fixed keys first, then the extra ones."""
        entry = {
            "file": self.file, "source": self.source, "licence": self.licence,
            "split": self.split, "family": self.family, "kind": self.kind,
        }
        entry.update({k: v for k, v in self.extra.items() if k not in entry})
        return entry


def split_families(
    families: Sequence[tuple[str, str, int]], validation_fraction: float, seed: int
) -> dict[str, str]:
    """Assigns whole families to ``train`` or ``validation``.

    ``families`` holds (group, family, number of files). Within each group (a
    source such as mma or freedoom) the families are shuffled with ``seed`` and
    taken into validation, skipping those that would overshoot the target by
    half, until they hold ``validation_fraction`` of the group's files. A group
    with two or more families keeps at least one in each split when the
    fraction is above 0. Same input and seed give the same split.
    """
    if not 0.0 <= validation_fraction < 1.0:
        raise DatasetError(
            f"--validation-fraction must be at least 0 and below 1, not {validation_fraction}"
        )
    by_group: dict[str, dict[str, int]] = defaultdict(dict)
    for group, family, count in families:
        by_group[group][family] = by_group[group].get(family, 0) + count
    split: dict[str, str] = {}
    for group in sorted(by_group):
        counts = by_group[group]
        order = sorted(counts)
        random.Random(f"{seed}:{group}").shuffle(order)
        target = validation_fraction * sum(counts.values())
        held: list[str] = []
        if validation_fraction > 0 and len(order) > 1:
            total_held = 0
            for family in order[:-1]:  # the last family in the order always trains
                if total_held >= target:
                    break
                if total_held + counts[family] <= max(1.5 * target, 1):
                    held.append(family)
                    total_held += counts[family]
            if not held:  # every family is bigger than the target: hold out the smallest
                held.append(min(order[:-1], key=lambda f: (counts[f], order.index(f))))
        for family in order:
            split[family] = "validation" if family in held else "train"
    return split


def build_manifest(name: str, builder: str, files: Iterable[CorpusFile],
                   **extra: Any) -> dict[str, Any]:
    """The manifest dictionary for a corpus; ``extra`` adds top-level keys (e.g. ``skipped``)."""
    entries = sorted(files, key=lambda f: f.file)
    licences = sorted({f.licence for f in entries})
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "name": name,
        "builder": builder,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "files": [f.to_json() for f in entries],
        "licences": {licence: licence_meaning(licence) for licence in licences},
    }
    manifest.update(extra)
    return manifest


def write_manifest(folder: Path, manifest: dict[str, Any]) -> Path:
    """Writes ``manifest.json`` into ``folder`` and returns its path."""
    path = folder / MANIFEST_NAME
    path.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """Reads and checks a corpus manifest; raises :class:`DatasetError` if it is not one."""
    path = Path(folder) / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read a corpus manifest at {path}: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise DatasetError(f"{path} is not a {MANIFEST_FORMAT} manifest")
    return manifest


def totals(files: Iterable[CorpusFile]) -> dict[str, dict[str, float]]:
    """Files and minutes of music per split."""
    result = {split: {"files": 0, "minutes": 0.0} for split in SPLITS}
    for entry in files:
        result[entry.split]["files"] += 1
        result[entry.split]["minutes"] += float(entry.extra.get("seconds", 0.0)) / 60.0
    for split in SPLITS:
        result[split]["minutes"] = round(result[split]["minutes"], 1)
    return result


def write_notes(folder: Path, manifest: dict[str, Any], description: str) -> None:
    """Writes the corpus's README.md, LICENCES.md and a .gitignore that ignores everything.

    The .gitignore keeps a corpus built inside a git checkout out of commits.
    """
    files = manifest["files"]
    per_source: Counter[tuple[str, str]] = Counter((f["source"], f["licence"]) for f in files)
    minutes: Counter[str] = Counter()
    for f in files:
        minutes[f["split"]] += float(f.get("seconds", 0.0)) / 60.0
    splits = Counter(f["split"] for f in files)
    lines = [
        f"# Corpus: {manifest['name']}",
        "",
        f"Built by `python -m {manifest['builder'].split(' ', 1)[0]} "
        f"{manifest['builder'].split(' ', 1)[1]}` on {manifest['created']}.",
        "",
        description,
        "",
        "| split | files | minutes |",
        "|---|---|---|",
    ]
    lines += [f"| {s} | {splits[s]} | {minutes[s]:.1f} |" for s in SPLITS]
    lines += ["", "| source | licence | files |", "|---|---|---|"]
    lines += [f"| {src} | {lic} | {n} |" for (src, lic), n in sorted(per_source.items())]
    lines += [
        "",
        "`manifest.json` lists every file with its source, licence, split, family and kind.",
        "Whole families (groove files, songs, works) are in one split only.",
        "This folder is built, never committed: its own `.gitignore` ignores everything.",
        "See LICENCES.md before you share anything made from it.",
        "",
    ]
    (folder / "README.md").write_text("\n".join(lines), encoding="utf-8")
    licence_lines = ["# Licences of this corpus", ""]
    for licence, meaning in manifest["licences"].items():
        count = sum(1 for f in files if f["licence"] == licence)
        sources = sorted({f["source"] for f in files if f["licence"] == licence})
        licence_lines += [
            f"## {licence} ({count} files)",
            "",
            meaning,
            "",
            "Sources: " + ", ".join(sources),
            "",
        ]
    (folder / "LICENCES.md").write_text("\n".join(licence_lines), encoding="utf-8")
    (folder / ".gitignore").write_text("# built corpus: never commit\n*\n", encoding="utf-8")
