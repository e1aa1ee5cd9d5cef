"""Source readers for the offline builders: each returns lists of
:class:`~datasets.build.CorpusPiece`.

Every function here only *plans* (reads catalogues, finds files); the work of
rendering or converting happens in the pieces' ``make`` recipes, which are
module-level functions bound with :func:`functools.partial` so that worker
processes can run them.
"""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
from collections import defaultdict
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import mido

from datasets import mma, wad
from datasets.build import CorpusPiece
from datasets.errors import DatasetError, SkipPiece
from datasets.lmms import convert_project
from datasets.midi_tools import (
    DRUM_CHANNEL,
    filter_channels,
    midi_bytes,
    move_timing_to_first_track,
    read_midi,
    rescale_ticks,
    set_programs,
    truncate,
)
from datasets.system import debian_version, ensure_debian_package, pypi_sdist, python_version

FREEDOOM_WADS = ("/usr/share/games/doom/freedoom1.wad", "/usr/share/games/doom/freedoom2.wad")
BLUPI_MUSIC = Path("/usr/share/planetblupi/music")
LMMS_PROJECTS = Path("/usr/share/lmms/projects")
MIDITOK_SDIST = "miditok==3.1.0"

LMMS_LICENCES: tuple[tuple[str, str], ...] = (
    (r"CapDan-(ReggaeTry|ReggaetonTry|ZeroSumGame)|EsoXLB-|Impulslogik-|Momo64-|Oglsdl-|"
     r"Settel-|Socceroos-|TameAnderson-|Thomasso-|Crunk|Greshz-|Surrender-", "Artistic-2.0"),
    (r"Saber-", "BSD-2-Clause"),
    (r"Alf42red-|CapDan-TwilightArea", "CC-BY-SA-3.0"),
    (r"Jousboxx-|Skiessi", "CC-BY-SA-4.0"),
)
"""LMMS demo project name -> licence, from Debian's copyright file of lmms-common;
projects not listed are GPL-2.0-or-later like the rest of LMMS."""


# ---------------------------------------------------------------- mma grooves

def mma_pieces(style: str, takes: int, seed: int, drums_only: bool,
               kind: str) -> list[CorpusPiece]:
    """Takes of the mma grooves of a style family (``rock``, ``electronic``, or ``all``).

    For ``all`` (the drums corpus) only the plain main grooves are used: the
    SUS/PLUS variants change the pitched parts, not the drum kit.
    """
    ensure_debian_package("mma")
    source = f"debian:mma {debian_version('mma')}"
    catalogue = mma.read_catalogue()
    by_family: dict[str, list[mma.Groove]] = defaultdict(list)
    for groove in catalogue:
        by_family[groove.family].append(groove)
    progressions = mma.STYLE_PROGRESSIONS.get(style, mma.GENERAL_PROGRESSIONS)
    pieces = []
    for family, grooves in sorted(by_family.items()):
        if style != "all" and (mma.style_family(family) != style or not grooves[0].pitched):
            continue  # band styles need the pitched tracks that drum-machine grooves lack
        for groove in grooves:
            if groove.role != "main" or (drums_only and groove.variant):
                continue
            for number in range(1, takes + 1):
                take = mma.plan_take(groove, grooves, number, seed, progressions)
                pieces.append(CorpusPiece(
                    path=f"mma/{family}/{groove.name.lower()}-take{number}.mid",
                    group="mma", family=f"mma:{family}", source=source,
                    licence="GPL-2.0-or-later", kind=kind,
                    make=partial(mma.render_take, take, drums_only),
                    title=f"{groove.name} take {number}",
                    extra=(("groove", groove.reference), ("mma_seed", take.seed),
                           ("chords", " ".join(take.progression)),
                           ("transpose", 0 if drums_only else take.transpose)),
                ))
    return pieces


# ---------------------------------------------------------------- freedoom

def _channel_programs(data: bytes) -> dict[int, int]:
    """Channel -> program for every channel that plays notes (drums: -1)."""
    mid = read_midi(data)
    programs: dict[int, int] = {}
    playing: set[int] = set()
    for track in mid.tracks:
        for msg in track:
            if msg.type == "program_change" and msg.channel not in programs:
                programs[msg.channel] = msg.program
            elif msg.type == "note_on" and msg.velocity > 0:
                playing.add(msg.channel)
    return {c: (-1 if c == DRUM_CHANNEL else programs.get(c, 0)) for c in playing}


def freedoom_song(wad_path: str, lump_name: str, drums_only: bool) -> bytes:
    """A Freedoom song lump as MIDI (only the drum channel with ``drums_only``)."""
    for lump in wad.music_lumps(wad_path):
        if lump.name == lump_name:
            data = wad.lump_midi(lump)
            if not drums_only:
                return data
            return midi_bytes(filter_channels(read_midi(data), lambda c: c == DRUM_CHANNEL))
    raise SkipPiece(f"no lump {lump_name} in {wad_path}")


def freedoom_pieces(kind: str, want: str) -> list[CorpusPiece]:
    """Freedoom songs, one per distinct music lump, chosen by their instruments.

    ``want``: ``drums`` (songs with a drum kit; only the kit is kept), ``rock``
    (drums, bass 32-39 and guitar 24-31) or ``electronic`` (drums, bass and
    synth 80-103, no guitar).
    """
    ensure_debian_package("freedoom")
    source = f"debian:freedoom {debian_version('freedoom')}"
    seen: set[str] = set()
    pieces = []
    for wad_path in FREEDOOM_WADS:
        for lump in wad.music_lumps(wad_path):
            digest = hashlib.sha1(lump.data).hexdigest()
            if digest in seen:
                continue  # the same song under another map's name
            seen.add(digest)
            try:
                programs = set(_channel_programs(wad.lump_midi(lump)).values())
            except SkipPiece:
                continue
            drums = -1 in programs
            bass = any(32 <= p <= 39 for p in programs)
            guitar = any(24 <= p <= 31 for p in programs)
            synth = any(80 <= p <= 103 for p in programs)
            keep = {
                "drums": drums,
                "rock": drums and bass and guitar,
                "electronic": drums and bass and synth and not guitar,
            }[want]
            if not keep:
                continue
            stem = Path(wad_path).stem
            pieces.append(CorpusPiece(
                path=f"freedoom/{stem}/{lump.name.lower()}.mid", group="freedoom",
                family=f"freedoom:{lump.name}", source=source, licence="BSD-3-Clause", kind=kind,
                make=partial(freedoom_song, wad_path, lump.name, want == "drums"),
                title=f"Freedoom {lump.name}", extra=(("wad", f"{stem}.wad"),),
            ))
    return pieces


# ---------------------------------------------------------------- planetblupi, lmms

def read_bytes(path: str) -> bytes:
    """The bytes of a file (a recipe for MIDI files used as they are)."""
    return Path(path).read_bytes()


BLUPI_MAX_SECONDS = 240.0
"""The Blupi songs loop for 10 to 29 minutes; the first 4 minutes hold each whole song."""


def blupi_song(path: str) -> bytes:
    """A Planet Blupi song, cut after :data:`BLUPI_MAX_SECONDS` (it loops after that)."""
    mid = move_timing_to_first_track(read_midi(Path(path).read_bytes()))
    return midi_bytes(truncate(mid, BLUPI_MAX_SECONDS))


def blupi_pieces(kind: str) -> list[CorpusPiece]:
    """The Planet Blupi game soundtrack (10 synth-heavy General MIDI songs, first 4 minutes)."""
    ensure_debian_package("planetblupi-music-midi")
    source = f"debian:planetblupi-music-midi {debian_version('planetblupi-music-midi')}"
    return [
        CorpusPiece(path=f"planetblupi/{path.stem}.mid", group="planetblupi",
                    family=f"planetblupi:{path.stem}", source=source,
                    licence="GPL-3.0-or-later", kind=kind, make=partial(blupi_song, str(path)),
                    title=f"Planet Blupi {path.stem}")
        for path in sorted(BLUPI_MUSIC.glob("*.mid"))
    ]


def lmms_licence(name: str) -> str:
    """Licence of an LMMS demo project, from its file name."""
    for pattern, licence in LMMS_LICENCES:
        if re.search(pattern, name):
            return licence
    return "GPL-2.0-or-later"


def lmms_pieces(kind: str) -> list[CorpusPiece]:
    """LMMS's demo projects, converted from their note patterns (see :mod:`datasets.lmms`)."""
    ensure_debian_package("lmms-common")
    source = f"debian:lmms-common {debian_version('lmms-common')}"
    paths = sorted(LMMS_PROJECTS.rglob("*.mmp")) + sorted(LMMS_PROJECTS.rglob("*.mmpz"))
    pieces = []
    for path in sorted(paths):
        relative = path.relative_to(LMMS_PROJECTS).with_suffix("")
        if relative.parts[0] == "templates":
            continue
        pieces.append(CorpusPiece(
            path=f"lmms/{relative.as_posix()}.mid", group="lmms", family=f"lmms:{path.stem}",
            source=source, licence=lmms_licence(path.name), kind=kind,
            make=partial(convert_project, str(path)), title=path.stem,
        ))
    return pieces


# ---------------------------------------------------------------- piano: music21 and MAESTRO

PIANO_WORKS: tuple[tuple[str, int], ...] = (
    ("joplin/*.mxl", 100),
    ("mozart/k545/*.mxl", 120),
    ("schumann_clara/polonaise_op1n*.mxl", 100),
    ("cpebach/*.mxl", 100),
    ("chopin/*.krn", 120),
    ("schubert/*.xml", 80),
    ("schumann_robert/dichterliebe_no2.xml", 80),
    ("beach/*.musicxml", 80),
    ("liliuokalani/*.mxl", 80),
    ("johnson_j_r/*.mxl", 80),
    ("bach/bwv*.mxl", 80),
    ("haydn/*/movement*.mxl", 110),
    ("mozart/k*/movement*.mxl", 110),
    ("beethoven/opus*/movement*.mxl", 110),
)
"""Keyboard-friendly music21 corpus files (globs under music21/corpus) and the tempo
(quarter notes per minute) used when a score has no metronome mark. The chorales
and string-quartet movements are four-part textures that sit well on a piano."""


def _music21_family(relative: str) -> str:
    """Split family of a music21 corpus file: the work (chorale number, quartet, piece)."""
    parts = relative.split("/")
    if parts[0] == "bach":
        return "music21:bach/" + re.sub(r"[-.][a-z0-9]*$", "", Path(parts[-1]).stem)
    if len(parts) >= 3:  # composer/work/movement
        return "music21:" + "/".join(parts[:2])
    return "music21:" + "/".join(parts[:-1] + [Path(parts[-1]).stem])


def music21_to_midi(path: str, default_bpm: int) -> bytes:
    """A music21 corpus score as piano MIDI (every part on program 0).

    A score without a metronome mark gets ``default_bpm`` quarter notes per
    minute; repeats that music21 cannot expand are dropped.
    """
    import warnings

    from music21 import converter, midi, repeat, tempo

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            score = converter.parse(path)
        except Exception as exc:  # music21 raises many kinds
            raise SkipPiece(f"music21 cannot read it ({exc})") from exc
        if hasattr(score, "scores"):  # an Opus: take its first score
            score = score.scores[0]
        marked = any(True for _ in score.recurse().getElementsByClass(tempo.MetronomeMark))
        try:
            midi_file = midi.translate.streamToMidiFile(score)
        except repeat.ExpanderException:
            for mark in list(score.recurse().getElementsByClass(["Repeat", "RepeatMark"])):
                site = mark.activeSite
                if site is not None:
                    site.remove(mark)
            try:
                midi_file = midi.translate.streamToMidiFile(score)
            except Exception as exc:
                raise SkipPiece(f"music21 cannot write it as MIDI ({exc})") from exc
        data = midi_file.writestr()
    mid = set_programs(rescale_ticks(mido.MidiFile(file=io.BytesIO(data)), 480), 0)
    if not marked:
        for track in mid.tracks:
            for index, msg in enumerate(track):
                if msg.type == "set_tempo":
                    track[index] = msg.copy(tempo=mido.bpm2tempo(default_bpm))
    return midi_bytes(mid)


def music21_pieces(kind: str = "pitched") -> list[CorpusPiece]:
    """Keyboard-friendly works of music21's bundled corpus (see :data:`PIANO_WORKS`)."""
    import music21

    root = Path(music21.__file__).parent / "corpus"
    source = f"pypi:music21 {python_version('music21')}"
    pieces = []
    seen: set[Path] = set()
    for pattern, default_bpm in PIANO_WORKS:
        for path in sorted(root.glob(pattern)):
            if path in seen:
                continue
            seen.add(path)
            relative = path.relative_to(root).as_posix()
            pieces.append(CorpusPiece(
                path="music21/" + str(Path(relative).with_suffix(".mid")), group="music21",
                family=_music21_family(relative), source=source, licence="music21-corpus",
                kind=kind, make=partial(music21_to_midi, str(path), default_bpm),
                title=relative,
            ))
    if not pieces:
        raise DatasetError(f"no music21 corpus files under {root}; reinstall music21")
    return pieces


def tar_member(archive: str, member: str) -> bytes:
    """The bytes of one member of a tar archive."""
    with tarfile.open(archive) as tar:
        handle = tar.extractfile(member)
        if handle is None:
            raise SkipPiece(f"{member} is not a file")
        return handle.read()


def maestro_sdist_pieces(cache: Path, kind: str = "pitched",
                         sdist: Path | None = None) -> list[CorpusPiece]:
    """The 10 MAESTRO performances in the miditok 3.1.0 source archive (CC BY-NC-SA 4.0)."""
    try:
        archive = sdist or pypi_sdist(MIDITOK_SDIST, cache)
    except DatasetError as exc:
        raise DatasetError(f"{exc}; or leave MAESTRO out with --sources music21") from exc
    try:
        with tarfile.open(archive) as tar:
            names = sorted(
                m.name for m in tar.getmembers()
                if m.isfile() and re.search(r"/tests/MIDIs_one_track/Maestro_\d+\.midi?$", m.name)
            )
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DatasetError(
            f"{archive} is not a readable sdist ({exc}); delete it and run again"
        ) from exc
    source = f"pypi:{MIDITOK_SDIST.replace('==', ' ')} (tests/MIDIs_one_track)"
    return [
        CorpusPiece(path=f"maestro/{Path(name).stem.lower()}.mid", group="maestro",
                    family=f"maestro:{Path(name).stem}", source=source,
                    licence="CC-BY-NC-SA-4.0", kind=kind,
                    make=partial(tar_member, str(archive), name),
                    title=f"MAESTRO performance {Path(name).stem}")
        for name in names
    ]


def check_sources(chosen: Sequence[str], known: Sequence[str], style: str) -> None:
    """Raises DatasetError for a --sources name the style does not have."""
    unknown = [name for name in chosen if name not in known]
    if unknown:
        raise DatasetError(
            f"unknown source {', '.join(unknown)} for {style}; choose from {', '.join(known)}"
        )
