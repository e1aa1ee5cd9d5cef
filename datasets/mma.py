"""Rendering the grooves of Debian's ``mma`` (Musical MIDI Accompaniment) to MIDI.

``mma`` ships about 2,000 accompaniment grooves in library files under
``/usr/share/mma/lib/LIB/FILE.mma``. A *family* is one library file
(``stdlib/8beat``); its grooves are variations of one pattern set (``8BEAT``,
``8BEATSUS``, ``8BEATINTRO``, ...), so families, not grooves, are kept whole
when a corpus is split. A *take* renders one main groove as a short song:
optional intro, 8 bars, optional one-bar fill, 7 bars, optional ending, with a
tempo (quarter notes per minute), a random seed (``RndSeed``), a chord
progression and a transposition (semitones) drawn from the take's own seed.
"""

from __future__ import annotations

import random
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from datasets.errors import DatasetError, SkipPiece
from datasets.midi_tools import DRUM_CHANNEL, filter_channels, midi_bytes, read_midi
from perfrnn.chords import transpose_chord
from perfrnn.song_form import SongPlan, plan_meta_events

MMA_LIB = Path("/usr/share/mma/lib")
"""Where Debian's mma package keeps its groove libraries."""

_DEFGROOVE = re.compile(r"^\s*defgroove\s+(\S+)[ \t]*([^\n]*)", re.IGNORECASE | re.MULTILINE)
_ROLE = re.compile(r"(INTRO|ENDING|END|FILL|BREAK)[0-9A-Z]{0,2}$")
_ROLE_WORDS = re.compile(r"\b(intro|ending|end|fill|break)", re.IGNORECASE)
_PITCHED_TRACK = re.compile(
    r"^\s*(begin\s+)?(bass|chord|walk|arpeggio|scale|plectrum|solo|melody|aria)\b",
    re.IGNORECASE | re.MULTILINE,
)
_VARIANT = re.compile(r"(SUS|PLUS)+$")
_SKIP_FILES = {"metronome", "metronome3", "metronome6", "metronome68", "none", "intro", "ending"}

STYLE_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("electronic", ("trance", "techno", "house", "dance", "disco", "dnb", "hiphop", "hip-hop",
                    "rave", "trip", "ambient", "electricpop")),
    ("rock", ("rock", "metal", "punk", "8beat", "16beat", "beat8", "beat16", "hrk", "mtl",
              "thr", "highfive", "16shuffle")),
    ("latin", ("bossa", "samba", "salsa", "mambo", "rhumba", "chacha", "beguine", "merengue",
               "bolero", "tango", "calypso", "afro", "cuban", "latin", "lfusion")),
    ("blues", ("blues", "boogie", "boggie")),
    ("country", ("country", "cntry", "bluegrass", "western", "zydeco")),
    ("funk", ("funk", "soul", "r+b", "rnb", "modernrb", "mellowrb", "rb-ballad", "strut")),
    ("jazz", ("jazz", "swing", "bebop", "bigband", "dixie", "evansish", "charleston")),
)
"""Style families of mma grooves, by substrings of the family name (``lib/file``): the
first style with a matching word wins, so ``latinhouse`` is electronic, ``jazzrock``
rock and ``jazzbossa`` latin. A 3/4 or 6/8 family (a waltz) is never a style's."""

TEMPO_RANGES: tuple[tuple[str, tuple[int, int]], ...] = (
    ("dnb", (164, 176)), ("punk", (160, 196)), ("thr", (150, 190)), ("metal", (110, 170)),
    ("mtl", (110, 170)), ("trance", (130, 142)), ("techno", (124, 138)), ("house", (118, 128)),
    ("rave", (134, 148)), ("disco", (110, 124)), ("dance", (116, 130)), ("hip", (84, 98)),
    ("trip", (76, 96)), ("ambient", (72, 100)), ("ballad", (62, 84)), ("slow", (60, 84)),
    ("fast", (160, 200)), ("waltz", (90, 150)), ("16beat", (84, 118)), ("beat16", (84, 118)),
    ("rock", (100, 150)), ("8beat", (100, 140)), ("beat8", (100, 140)),
)
"""Tempo range (quarter notes per minute) by family-name substring; first match wins."""
DEFAULT_TEMPO_RANGE = (88, 140)

ROCK_PROGRESSIONS = (
    ("C", "G", "Am", "F"), ("C", "F", "G", "F"), ("Am", "F", "C", "G"), ("C", "Bb", "F", "C"),
    ("C", "F", "C", "G"), ("Am", "F", "G", "Am"), ("C5", "F5", "G5", "C5"),
    ("E5", "G5", "A5", "C5"), ("Am", "G", "F", "E"), ("C", "Am", "F", "G"),
)
"""Four-bar chord progressions (in C major / A minor) for rock takes."""

ELECTRONIC_PROGRESSIONS = (
    ("Am", "F", "C", "G"), ("Am", "Dm", "Em", "Am"), ("Am", "G", "F", "G"),
    ("Am", "Am", "F", "G"), ("Am7", "Dm7", "Em7", "Am7"), ("Cmaj7", "Am7", "Fmaj7", "G"),
    ("Dm", "Bb", "F", "C"), ("Am", "F", "Dm", "E"),
)
"""Four-bar chord progressions (in C major / A minor) for electronic takes."""

GENERAL_PROGRESSIONS = ROCK_PROGRESSIONS[:6] + ELECTRONIC_PROGRESSIONS[:3]

JAZZ_PROGRESSIONS = (
    ("Dm7", "G7", "Cmaj7", "Cmaj7"), ("Dm7", "G7", "Cmaj7", "A7"), ("Cmaj7", "A7", "Dm7", "G7"),
    ("Em7", "A7", "Dm7", "G7"), ("Fmaj7", "Bb7", "Em7", "A7"), ("Bm7b5", "E7", "Am7", "D7"),
    ("Cmaj7", "C6", "Dm7", "G7"), ("Am7", "D7", "Dm7", "G7"),
)
"""ii-V-I and turnaround progressions (in C) for jazz takes."""

BLUES_PROGRESSIONS = (
    ("C7", "C7", "C7", "C7", "F7", "F7", "C7", "C7", "G7", "F7", "C7", "G7"),
    ("C7", "F7", "C7", "C7", "F7", "F7", "C7", "C7", "G7", "F7", "C7", "G7"),
    ("Am7", "Am7", "Am7", "Am7", "Dm7", "Dm7", "Am7", "Am7", "E7", "Dm7", "Am7", "E7"),
)
"""Twelve-bar blues (in C and A minor), a chord per bar."""

LATIN_PROGRESSIONS = (
    ("Am7", "D7", "Gmaj7", "Cmaj7"), ("Dm7", "G7", "Cmaj7", "Cmaj7"), ("Am", "E7", "Am", "E7"),
    ("Cmaj7", "Dm7", "Em7", "Dm7"), ("Dm", "A7", "Dm", "A7"), ("Am", "Dm", "E7", "Am"),
)
"""Bossa, son and salsa progressions (in C / A minor)."""

FUNK_PROGRESSIONS = (
    ("C7", "C7", "F7", "C7"), ("Am7", "D7", "Am7", "D7"), ("Em7", "A7", "Em7", "A7"),
    ("Cm7", "F7", "Cm7", "F7"), ("C9", "C9", "F9", "G9"), ("Dm7", "Dm7", "G7", "G7"),
)
"""One- and two-chord vamps (dominant and minor sevenths) for funk and soul takes."""

COUNTRY_PROGRESSIONS = (
    ("C", "F", "G", "C"), ("C", "C", "F", "C"), ("G", "C", "D", "G"), ("C", "F", "C", "G"),
    ("C", "Am", "F", "G"), ("D", "G", "A", "D"),
)
"""Three-chord progressions for country takes."""

STYLE_PROGRESSIONS = {
    "rock": ROCK_PROGRESSIONS, "electronic": ELECTRONIC_PROGRESSIONS,
    "jazz": JAZZ_PROGRESSIONS, "blues": BLUES_PROGRESSIONS, "latin": LATIN_PROGRESSIONS,
    "funk": FUNK_PROGRESSIONS, "country": COUNTRY_PROGRESSIONS,
}
"""The chord progressions a style's takes choose from (others: GENERAL_PROGRESSIONS)."""


@dataclass(frozen=True)
class Groove:
    """One groove of an mma library file."""

    lib: str
    """Library folder under ``/usr/share/mma/lib`` (``stdlib``, ``casio``, ...)."""
    file: str
    """Library file name without ``.mma`` (``8beat``)."""
    name: str
    """Groove name in capitals (``8BEAT1SUS``)."""
    role: str
    """``main``, or ``intro``/``end``/``fill`` for the decorations of a family."""
    variant: bool
    """True for the SUS/PLUS variants, which add sustained or solo parts to a main groove."""
    pitched: bool = True
    """False for drum-machine families (mma's ``zoom`` library) that play drums only."""

    @property
    def family(self) -> str:
        """The library file the groove belongs to, ``lib/file``."""
        return f"{self.lib}/{self.file}"

    @property
    def reference(self) -> str:
        """mma's extended groove name, unambiguous across libraries (``stdlib/8beat:8BEAT``)."""
        return f"{self.family}:{self.name}"


def read_catalogue(lib_dir: Path = MMA_LIB) -> list[Groove]:
    """All grooves of the mma libraries, sorted by family then name (metronomes left out)."""
    if not lib_dir.is_dir():
        raise DatasetError(f"no mma groove library at {lib_dir}; install the Debian package mma")
    grooves: dict[tuple[str, str, str], Groove] = {}
    for path in sorted(lib_dir.glob("*/*.mma")):
        lib, stem = path.parent.name, path.stem
        if stem.lower() in _SKIP_FILES:
            continue
        text = path.read_text(encoding="latin-1")
        pitched = bool(_PITCHED_TRACK.search(text))
        for raw, description in _DEFGROOVE.findall(text):
            name = raw.upper()
            if "METRONOME" in name:
                continue
            match = _ROLE.search(name) or _ROLE_WORDS.search(description[:40])
            role = "main"
            if match:
                word = match.group(1).upper()
                role = {"INTRO": "intro", "FILL": "fill", "BREAK": "fill"}.get(word, "end")
            variant = role == "main" and bool(_VARIANT.search(name)) and len(name) > 5
            grooves[(lib, stem, name)] = Groove(lib, stem, name, role, variant, pitched)
    return sorted(grooves.values(), key=lambda g: (g.family, g.name))


def style_family(family: str) -> str:
    """The style (a name in `STYLE_WORDS`) of an mma family name (``lib/file``), or
    ``other``."""
    lowered = family.lower().split("/", 1)[-1]
    if any(word in lowered for word in ("waltz", "68", "34", "jazz-54")):
        return "other"  # the styles are in 4/4; a waltz would split a style's metre
    for style, words in STYLE_WORDS:
        if any(word in lowered for word in words):
            return style
    return "other"


def tempo_range(family: str) -> tuple[int, int]:
    """Tempo range (quarter notes per minute) for a family, from its name."""
    lowered = family.lower()
    for word, bounds in TEMPO_RANGES:
        if word in lowered:
            return bounds
    return DEFAULT_TEMPO_RANGE


@dataclass(frozen=True)
class Take:
    """Everything needed to render one take of a groove; picklable for worker processes."""

    groove: str
    """Extended name of the main groove (``stdlib/8beat:8BEAT``)."""
    intro: str | None
    fill: str | None
    end: str | None
    tempo_bpm: int
    """Tempo in quarter notes per minute."""
    seed: int
    """mma's ``RndSeed``."""
    progression: tuple[str, ...]
    transpose: int
    """Semitones, applied by mma to every pitched track (drums are not transposed)."""


def plan_take(
    groove: Groove, family_grooves: list[Groove], take: int, seed: int, progressions
) -> Take:
    """Chooses the tempo, seed, progression, key and decorations of take number ``take``."""
    rng = random.Random(f"{seed}:{groove.reference}:{take}")

    def pick(role: str) -> str | None:
        names = [g.reference for g in family_grooves if g.role == role]
        return rng.choice(names) if names else None

    low, high = tempo_range(groove.family)
    return Take(
        groove=groove.reference,
        intro=pick("intro"),
        fill=pick("fill"),
        end=pick("end"),
        tempo_bpm=rng.randint(low, high),
        seed=rng.randrange(1, 2**31 - 1),
        progression=tuple(rng.choice(progressions)),
        transpose=rng.randint(-5, 6),
    )


def take_plan(take: Take) -> SongPlan:
    """The sections and chords (as played, after the transposition) of each bar
    of a take, as `take_script` lays them out."""
    sections, markers = [], []

    def part(section: str, label: str, count: int) -> None:
        markers.append((len(sections), label))
        sections.extend([section] * count)

    if take.intro:
        part("intro", "Intro", 4)
    part("main", "A", 8)
    if take.fill:
        part("fill", "Fill", 1)
    part("main", "A", 7 if take.fill else 8)
    if take.end:
        part("ending", "Ending", 2)
    chords = tuple(transpose_chord(take.progression[bar % len(take.progression)],
                                   take.transpose) for bar in range(len(sections)))
    return SongPlan(chords, tuple(sections), tuple(markers))


def add_plan_marks(mid, plan: SongPlan) -> None:
    """Writes a take's plan into its MIDI file's first track: a marker at each
    section start, the chord symbol as a text event at each chord change
    (what prepare reads back as the piece's sections and chords)."""
    import mido

    numerator, denominator = 4, 4
    for message in mid.tracks[0]:
        if message.type == "time_signature":
            numerator, denominator = message.numerator, message.denominator
            break
    ticks_per_bar = round(mid.ticks_per_beat * numerator * 4 / denominator)
    track, absolute = mid.tracks[0], []
    tick = 0
    for message in track:
        tick += message.time
        absolute.append((tick, message))
    end = absolute.pop()[1] if absolute and absolute[-1][1].type == "end_of_track" else None
    for at, kind, text in plan_meta_events(plan, ticks_per_bar):
        absolute.append((at, mido.MetaMessage(kind, text=text)))
    absolute.sort(key=lambda item: item[0])
    track.clear()
    previous = 0
    for at, message in absolute:
        track.append(message.copy(time=at - previous))
        previous = at
    track.append(end.copy(time=0) if end is not None else mido.MetaMessage("end_of_track"))


def take_script(take: Take) -> str:
    """The mma song text of a take: intro 4 bars, 8 bars, fill 1 bar, 7 bars, ending 2 bars."""
    lines = [f"Tempo {take.tempo_bpm}", f"RndSeed {take.seed}", f"Transpose {take.transpose}"]
    bar = 0
    chords = take.progression

    def bars(groove: str, count: int) -> None:
        nonlocal bar
        lines.append(f"Groove {groove}")
        for _ in range(count):
            lines.append(f"{bar + 1} {chords[bar % len(chords)]}")
            bar += 1

    if take.intro:
        bars(take.intro, 4)
    bars(take.groove, 8)
    if take.fill:
        bars(take.fill, 1)
    bars(take.groove, 7 if take.fill else 8)
    if take.end:
        bars(take.end, 2)
    return "\n".join(lines) + "\n"


def render_take(take: Take, drums_only: bool = False, timeout_s: float = 120.0) -> bytes:
    """Renders a take with the ``mma`` command and returns standard MIDI file bytes.

    With ``drums_only`` only the drum channel (10) is kept. Raises
    :class:`SkipPiece` when mma fails or the result has no notes of the kind wanted.
    """
    exe = shutil.which("mma")
    if exe is None:
        raise DatasetError("the mma command is missing: run `sudo apt-get install -y mma`")
    with tempfile.TemporaryDirectory(prefix="perfrnn-mma-") as tmp:
        song = Path(tmp) / "take.mma"
        out = Path(tmp) / "take.mid"
        song.write_text(take_script(take), encoding="utf-8")
        try:
            result = subprocess.run(
                [exe, "-w", "-xNOCREDIT", str(song), "-f", str(out)],
                capture_output=True, text=True, timeout=timeout_s, check=False, cwd=tmp,
            )
        except subprocess.TimeoutExpired as exc:
            raise SkipPiece(f"mma took more than {timeout_s:.0f} s") from exc
        if result.returncode != 0 or not out.is_file():
            errors = [ln for ln in (result.stdout + result.stderr).splitlines() if "rror" in ln]
            raise SkipPiece(f"mma failed: {(errors or ['no MIDI written'])[0].strip()}")
        data = out.read_bytes()
    mid = read_midi(data)
    add_plan_marks(mid, take_plan(take))
    if drums_only:
        mid = filter_channels(mid, lambda channel: channel == DRUM_CHANNEL)
        if not any(m.type == "note_on" and m.velocity > 0 for t in mid.tracks for m in t):
            raise SkipPiece("the groove has no drum kit")
    return midi_bytes(mid)
