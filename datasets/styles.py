"""The offline styles, one table: what each corpus is made of, and how to plan it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from datasets import sources
from datasets.build import CorpusPiece
from datasets.errors import DatasetError


@dataclass(frozen=True)
class Source:
    """One source of a style corpus."""

    name: str
    description: str
    licence: str
    plan: Callable[[int, int, Path], list[CorpusPiece]]
    """(takes, seed, cache folder) -> pieces."""


@dataclass(frozen=True)
class CorpusStyle:
    """An offline style corpus: its kind, default takes per groove and sources."""

    name: str
    kind: str
    description: str
    takes: int
    """Default renders per mma groove (different seed, tempo, chords and key each)."""
    sources: tuple[Source, ...]


def _mma(style: str, kind: str, drums_only: bool) -> Callable[[int, int, Path], list[CorpusPiece]]:
    return lambda takes, seed, cache: sources.mma_pieces(style, takes, seed, drums_only, kind)


STYLES: dict[str, CorpusStyle] = {
    "piano": CorpusStyle(
        "piano", "pitched",
        "Piano: classical scores from music21's corpus written as piano MIDI, and real "
        "MAESTRO piano performances.",
        1,
        (
            Source("music21", "music21's bundled corpus: Joplin, Mozart K545, Clara Schumann, "
                   "Chopin, C.P.E. Bach, Bach chorales and Haydn/Mozart/Beethoven quartet "
                   "movements, all on program 0 (piano)", "music21-corpus",
                   lambda takes, seed, cache: sources.music21_pieces("pitched")),
            Source("maestro", "the 10 MAESTRO performances in the miditok 3.1.0 sdist "
                   "(pip download, cached)", "CC-BY-NC-SA-4.0",
                   lambda takes, seed, cache: sources.maestro_sdist_pieces(cache, "pitched")),
        ),
    ),
    "drums": CorpusStyle(
        "drums", "drums",
        "Drums: the drum kit (MIDI channel 10) of mma's grooves and Freedoom's songs.",
        2,
        (
            Source("mma", "every mma groove with a drum kit, rendered with seeds and tempos; "
                   "only channel 10 kept", "GPL-2.0-or-later", _mma("all", "drums", True)),
            Source("freedoom", "the drum tracks of Freedoom's songs (MIDI lumps in its WADs)",
                   "BSD-3-Clause",
                   lambda takes, seed, cache: sources.freedoom_pieces("drums", "drums")),
        ),
    ),
    "rock": CorpusStyle(
        "rock", "band",
        "Rock: full-band MIDI (drums, bass, guitars, keys) from mma's rock-family grooves "
        "and Freedoom's songs with drums, bass and guitar.",
        3,
        (
            Source("mma", "rock-family grooves (rock, metal, punk, 8-beat, 16-beat, ...) with "
                   "rock chord progressions, seeds, tempos and keys", "GPL-2.0-or-later",
                   _mma("rock", "band", False)),
            Source("freedoom", "Freedoom songs with drums, bass and guitar", "BSD-3-Clause",
                   lambda takes, seed, cache: sources.freedoom_pieces("band", "rock")),
        ),
    ),
    "electronic": CorpusStyle(
        "electronic", "band",
        "Electronic: full-band MIDI from mma's electronic-family grooves, the Planet Blupi "
        "soundtrack, LMMS's demo projects and Freedoom's synth songs.",
        4,
        (
            Source("mma", "electronic-family grooves (trance, techno, house, dance, disco, "
                   "drum and bass, hip-hop, ambient, ...)", "GPL-2.0-or-later",
                   _mma("electronic", "band", False)),
            Source("planetblupi", "the Planet Blupi soundtrack (10 General MIDI songs)",
                   "GPL-3.0-or-later",
                   lambda takes, seed, cache: sources.blupi_pieces("band")),
            Source("lmms", "LMMS demo projects converted from their note patterns",
                   "GPL-2.0-or-later, Artistic-2.0, BSD-2-Clause, CC-BY-SA-3.0, CC-BY-SA-4.0",
                   lambda takes, seed, cache: sources.lmms_pieces("band")),
            Source("freedoom", "Freedoom songs with drums, bass and synths but no guitar",
                   "BSD-3-Clause",
                   lambda takes, seed, cache: sources.freedoom_pieces("band", "electronic")),
        ),
    ),
    **{
        name: CorpusStyle(name, "band", f"{title}: full-band MIDI from mma's {families} grooves, "
                          "rendered with seeds, tempos, keys and the style's chord progressions.",
                          takes,
                          (Source("mma", f"{families} grooves with {progressions}",
                                  "GPL-2.0-or-later", _mma(name, "band", False)),))
        for name, title, families, progressions, takes in (
            ("jazz", "Jazz", "swing, bebop, big-band, combo and trio",
             "ii-V-I progressions", 2),
            ("latin", "Latin", "bossa nova, samba, salsa, mambo, rhumba, cha-cha, bolero and "
             "tango", "bossa and son progressions", 3),
            ("funk", "Funk and soul", "funk, soul and R&B", "seventh-chord vamps", 10),
            ("blues", "Blues", "blues, shuffle and boogie-woogie", "twelve-bar blues", 5),
            ("country", "Country", "country, bluegrass, western swing and zydeco",
             "three-chord progressions", 6),
        )
    },
}
"""The offline styles by name."""


def get_style(name: str) -> CorpusStyle:
    """The style called ``name``; raises :class:`DatasetError` naming the known ones."""
    try:
        return STYLES[name]
    except KeyError:
        raise DatasetError(
            f"unknown style {name!r}; choose from {', '.join(STYLES)}"
        ) from None


def plan_style(style: CorpusStyle, chosen: Sequence[str] | None, takes: int | None,
               seed: int, cache: Path) -> list[CorpusPiece]:
    """All pieces of a style's sources (or of the ``chosen`` ones)."""
    names = [s.name for s in style.sources]
    if chosen:
        sources.check_sources(chosen, names, style.name)
    if takes is not None and takes < 1:
        raise DatasetError(f"--takes must be at least 1, not {takes}")
    pieces: list[CorpusPiece] = []
    for source in style.sources:
        if not chosen or source.name in chosen:
            pieces += source.plan(takes or style.takes, seed, cache)
    return pieces
