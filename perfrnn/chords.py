"""Chord symbols: parsing, transposing and the chord input a model reads.

Symbols are note-seq's (`note_seq.chord_symbols_lib`): a root (``C``, ``F#``,
``Bb``), a quality (``m``, ``7``, ``maj7``, ``m7b5``, ``sus4``, ``5`` ...) and
an optional bass (``/E``). ``N.C.`` is no chord. A progression is one chord
per bar.

The chord input is Magenta's ImprovRNN chord encoding
(`note_seq.encoder_decoder`'s ``PitchChordsEncoderDecoder``): no-chord flag,
root (12), pitch classes (12), bass (12).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from note_seq import chord_symbols_lib

from perfrnn.errors import PerfRNNError

NO_CHORD = "N.C."
"""The symbol of bars with no chord."""
CHORD_FEATURES = 37
"""Width of `chord_features`: no-chord flag, root, pitch classes, bass."""
MAX_PROGRESSION_BARS = 64
"""The longest progression a request may give (it repeats through the piece)."""
ACCEPTED_QUALITIES = ("", "m", "7", "maj7", "m7", "dim", "dim7", "aug", "m7b5", "6", "m6",
                      "9", "maj9", "m9", "11", "13", "sus2", "sus4", "7sus4", "5", "mmaj7")
"""The chord qualities the help and error messages name (note-seq accepts a few more
spellings of the same)."""
_NO_CHORD_SPELLINGS = {"n.c.", "nc", "n.c", "n/c", "-"}
_PITCH_NAMES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


@dataclass(frozen=True)
class Chord:
    """One chord: its symbol and pitch classes (0 = C ... 11 = B).

    Attributes:
      symbol: The symbol as given (``NO_CHORD`` for none).
      root: The root's pitch class, or None for no chord.
      pitch_classes: The chord's pitch classes, root first.
      bass: The bass note's pitch class (the root unless a slash chord), or None.
    """

    symbol: str
    root: int | None
    pitch_classes: tuple[int, ...]
    bass: int | None

    @property
    def is_no_chord(self) -> bool:
        return self.root is None


def parse_chord(symbol: str) -> Chord:
    """The chord of a symbol such as ``Am7``, ``F#m7b5``, ``Bb/D`` or ``N.C.``.

    Raises:
      PerfRNNError: a symbol note-seq cannot read; the message names it and
        lists the accepted qualities.
    """
    text = str(symbol).strip()
    if text.lower() in _NO_CHORD_SPELLINGS:
        return Chord(NO_CHORD, None, (), None)
    try:
        pitches = chord_symbols_lib.chord_symbol_pitches(text)
        root = chord_symbols_lib.chord_symbol_root(text)
        bass = chord_symbols_lib.chord_symbol_bass(text)
    except chord_symbols_lib.ChordSymbolError:
        qualities = ", ".join(q or "(major)" for q in ACCEPTED_QUALITIES)
        raise PerfRNNError(
            f"unknown chord symbol {text[:40]!r}: write a root A to G (with # or b), a "
            f"quality ({qualities}) and optionally a bass (/E); N.C. is no chord") from None
    return Chord(text, int(root), tuple(int(p) % 12 for p in pitches), int(bass))


def transpose_chord(symbol: str, semitones: int) -> str:
    """The symbol moved by `semitones` (``N.C.`` stays ``N.C.``), its root and
    bass spelled as `chord_name` spells them (``Eb``, ``F#``)."""
    chord = parse_chord(symbol)
    if chord.is_no_chord or semitones % 12 == 0:
        return chord.symbol
    match = re.fullmatch(r"([A-Ga-g][#b]*)([^/]*)(?:/([A-Ga-g][#b]*))?", chord.symbol)
    if match is None:  # a spelling note-seq reads another way
        return chord_symbols_lib.transpose_chord_symbol(chord.symbol, int(semitones) % 12)
    quality = match.group(2)
    moved = chord_name(chord.root + semitones) + quality
    if match.group(3):
        moved += "/" + chord_name(chord.bass + semitones)
    return moved


def parse_progression(text: str, max_bars: int = MAX_PROGRESSION_BARS) -> tuple[str, ...]:
    """One chord symbol per bar from a progression such as ``"C G Am F"`` or
    ``"C | G | Am | F"``: chords separated by spaces or bar lines, one bar
    each; ``%`` repeats the bar before.

    Raises:
      PerfRNNError: an empty or too long progression, a bar with two chords,
        or an unknown symbol.
    """
    bars: list[str] = []
    groups = [group.split() for group in str(text).split("|")]
    spaced = len(groups) == 1
    for group in groups:
        if not group:
            continue
        if not spaced and len(group) > 1:
            raise PerfRNNError(f"one chord per bar, please: {' '.join(group)[:40]!r} has "
                               f"{len(group)}; give each its own bar")
        for token in group:
            if token == "%":
                if not bars:
                    raise PerfRNNError("a progression cannot start with % (repeat bar)")
                bars.append(bars[-1])
            else:
                bars.append(parse_chord(token).symbol)
            if len(bars) > max_bars:
                raise PerfRNNError(f"a progression has at most {max_bars} bars; it "
                                   "repeats through the piece")
    if not bars:
        raise PerfRNNError("the chord progression is empty; write chords such as "
                           "\"C G Am F\"")
    return tuple(bars)


def key_transposition(key: str) -> int:
    """Semitones (-5 to 6) that move music in C major / A minor to `key`
    (``G``, ``Eb``, ``F#m``, ``Em``); a minor key goes to its relative major.

    Raises:
      PerfRNNError: a key that is not a pitch name with an optional ``m``.
    """
    match = re.fullmatch(r"([A-Ga-g])([#b]?)(m|min|minor|maj|major)?", str(key).strip())
    if not match:
        raise PerfRNNError(f"unknown key {str(key)[:20]!r}: write a tonic such as C, F#, Bb, "
                           "with m for minor (Am)")
    letter, accidental, mode = match.groups()
    tonic = "C D EF G A B".index(letter.upper()) + {"#": 1, "b": -1, "": 0}[accidental]
    if mode in ("m", "min", "minor"):
        tonic += 3  # A minor shares C major's notes
    shift = tonic % 12
    return shift - 12 if shift > 6 else shift


def chord_features(symbol: str) -> np.ndarray:
    """The chord input [CHORD_FEATURES] float32: no-chord flag, root one-hot,
    pitch classes, bass one-hot (Magenta's ImprovRNN chord encoding)."""
    chord = parse_chord(symbol)
    row = np.zeros(CHORD_FEATURES, np.float32)
    if chord.is_no_chord:
        row[0] = 1.0
        return row
    row[1 + chord.root] = 1.0
    row[13 + np.asarray(chord.pitch_classes)] = 1.0
    row[25 + chord.bass] = 1.0
    return row


def chord_name(root: int, minor: bool = False) -> str:
    """A plain symbol for a root pitch class (``Eb``, ``F#m``)."""
    return _PITCH_NAMES[int(root) % 12] + ("m" if minor else "")
