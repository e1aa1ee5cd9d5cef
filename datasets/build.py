"""The build engine shared by all styles: make each piece, check it, split, write.

A builder (see :mod:`datasets.styles`) lists :class:`CorpusPiece` objects, each a
picklable recipe that returns MIDI bytes. :func:`build_corpus` runs them (in
worker processes), reads every result back with mido and pretty_midi, keeps
those with notes of the corpus kind, splits whole families between train and
validation, and writes the files, ``manifest.json``, README.md and LICENCES.md.
The corpus is built in a hidden sibling folder and renamed into place at the
end, so a failed or interrupted run leaves no half-built ``--out``.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets.errors import DatasetError, SkipPiece
from datasets.manifest import (
    MANIFEST_FORMAT,
    MANIFEST_NAME,
    CorpusFile,
    build_manifest,
    split_families,
    write_manifest,
    write_notes,
)
from datasets.midi_tools import midi_bytes, move_timing_to_first_track, read_midi, summarise
from perfrnn.folders import swap_into_place


@dataclass(frozen=True)
class CorpusPiece:
    """One source piece and the recipe that turns it into one MIDI file."""

    path: str
    """Output path relative to the corpus folder, ending in ``.mid``."""
    group: str
    """Source group (``mma``, ``freedoom``, ...): the split and ``--limit`` balance across them."""
    family: str
    """Split family, unique across groups (``mma:stdlib/8beat``)."""
    source: str
    licence: str
    kind: str
    """``pitched``, ``drums`` or ``band``: what the file must contain to be kept."""
    make: Callable[[], bytes]
    """Returns the MIDI bytes; raises :class:`SkipPiece` when the piece yields nothing."""
    title: str = ""
    extra: tuple[tuple[str, Any], ...] = ()
    """More facts for the manifest entry (groove, seed, ...)."""


@dataclass
class BuildResult:
    """What a build wrote."""

    out: Path
    files: list[CorpusFile]
    skipped: list[dict[str, str]] = field(default_factory=list)
    seconds_taken: float = 0.0


def select_pieces(pieces: Sequence[CorpusPiece], limit: int | None,
                  seed: int) -> list[CorpusPiece]:
    """Up to ``limit`` pieces, taken in turn from each source group (all when no limit).

    Each group's order is shuffled with ``seed`` first, so a small limit still
    samples every source and many families.
    """
    if limit is None:
        return list(pieces)
    if limit < 1:
        raise DatasetError(f"--limit must be at least 1, not {limit}")
    groups: dict[str, list[CorpusPiece]] = {}
    for piece in pieces:
        groups.setdefault(piece.group, []).append(piece)
    for name, members in groups.items():
        random.Random(f"{seed}:{name}:limit").shuffle(members)
    chosen: list[CorpusPiece] = []
    while len(chosen) < limit and any(groups.values()):
        for name in list(groups):
            if groups[name] and len(chosen) < limit:
                chosen.append(groups[name].pop(0))
    return chosen


def make_checked(piece: CorpusPiece) -> tuple[bytes, dict[str, Any]]:
    """Runs a piece's recipe and checks the MIDI it returns (in a worker process).

    Returns the bytes and the manifest facts (tempo_bpm, seconds, notes); raises
    :class:`SkipPiece` when the file has no notes of the piece's kind.
    """
    data = midi_bytes(move_timing_to_first_track(read_midi(piece.make())))
    summary = summarise(data)
    pitched = summary.notes - summary.drum_notes
    if piece.kind == "drums" and (summary.drum_notes == 0 or pitched):
        raise SkipPiece("no drum notes on channel 10" if not summary.drum_notes else
                        "pitched notes in a drums file")
    if piece.kind == "pitched" and pitched == 0:
        raise SkipPiece("no pitched notes")
    if piece.kind == "band" and (summary.drum_notes == 0 or pitched == 0):
        raise SkipPiece("a band file needs drums and pitched parts")
    facts: dict[str, Any] = {
        "title": piece.title,
        "tempo_bpm": summary.tempo_bpm,
        "seconds": summary.seconds,
        "notes": summary.notes,
    }
    if piece.kind != "drums":
        facts["programs"] = list(summary.programs)
    facts.update(dict(piece.extra))
    return data, facts


def _attempt(piece: CorpusPiece) -> tuple[bytes | None, dict[str, Any] | str]:
    try:
        return make_checked(piece)
    except SkipPiece as exc:
        return None, str(exc) or "skipped"


def check_out_dir(out: Path) -> None:
    """Refuses an ``--out`` that is a file or a non-empty folder holding something else
    than an earlier corpus (which is replaced)."""
    if out.exists() and not out.is_dir():
        raise DatasetError(f"--out {out} is a file; give a folder")
    if out.is_dir() and any(out.iterdir()):
        manifest = out / MANIFEST_NAME
        if not manifest.is_file() or MANIFEST_FORMAT not in manifest.read_text(errors="replace"):
            raise DatasetError(
                f"--out {out} is not empty and holds no earlier corpus; "
                "give an empty or new folder"
            )


def _progress(total: int, description: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit="piece", file=sys.stderr, disable=None,
                dynamic_ncols=True)


def build_corpus(
    name: str,
    pieces: Sequence[CorpusPiece],
    out: str | os.PathLike[str],
    *,
    builder: str,
    description: str,
    seed: int = 0,
    validation_fraction: float = 0.1,
    jobs: int | None = None,
) -> BuildResult:
    """Makes every piece, splits by family and writes the corpus folder ``out``.

    ``jobs`` is the number of worker processes (default: CPU count; 1 runs in
    this process). Raises :class:`DatasetError` if nothing usable came out.
    """
    started = time.monotonic()
    out_dir = Path(out)
    check_out_dir(out_dir)
    if not pieces:
        raise DatasetError(f"no source pieces for {name}; nothing to build")
    made: dict[str, tuple[CorpusPiece, dict[str, Any]]] = {}
    skipped: list[dict[str, str]] = []
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.parent / f".{out_dir.name}.partial-{secrets.token_hex(4)}"
    staging.mkdir()
    try:
        workers = max(1, jobs if jobs is not None else (os.cpu_count() or 1))
        with _progress(len(pieces), f"building {name}") as bar:
            if workers == 1:
                results = map(_attempt, pieces)
                _collect(pieces, results, staging, made, skipped, bar)
            else:
                with ProcessPoolExecutor(max_workers=workers) as pool:
                    results = pool.map(_attempt, pieces, chunksize=1)
                    _collect(pieces, results, staging, made, skipped, bar)
        if not made:
            reasons = sorted({s["reason"] for s in skipped})[:3]
            raise DatasetError(f"no usable files for {name} ({'; '.join(reasons)})")
        families = [(p.group, p.family, 1) for p, _ in made.values()]
        split = split_families(families, validation_fraction, seed)
        files = [
            CorpusFile(path, p.source, p.licence, split[p.family], p.family, p.kind, facts)
            for path, (p, facts) in made.items()
        ]
        manifest = build_manifest(
            name, builder, files, seed=seed, validation_fraction=validation_fraction,
            skipped=skipped,
        )
        write_manifest(staging, manifest)
        write_notes(staging, manifest, description)
        swap_into_place(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return BuildResult(out_dir, files, skipped, time.monotonic() - started)


def _collect(pieces, results, staging: Path, made, skipped, bar) -> None:
    for piece, (data, facts) in zip(pieces, results):
        bar.update(1)
        if data is None:
            skipped.append({"piece": piece.path, "reason": str(facts)})
            continue
        target = staging / piece.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        made[piece.path] = (piece, facts)
