"""Metre: beats, bars and phrases for the drum and band (metric) styles.

A metric style counts time in steps of 1/steps_per_quarter of a quarter note
instead of 10 ms steps, so its music sits on the bar lines a DAW draws at any
tempo. This module holds the pure functions behind it:

- reading the beat of real music from its tempo map and time signature
  (`quarters_at`, `metre_of`), and how well its onsets fit the grid
  (`onset_grid_fit`);
- the position inputs the network sees at every event: where it is in the
  beat, the bar and an 8-bar phrase, and which metre it plays in
  (`position_features`), in the manner of the "beat" inputs of the biaxial
  RNN (one-hot rather than binary, so each position has its own weights).

Times are in seconds (NoteSequence), quarter notes (float) or steps (int).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from perfrnn.errors import PerfRNNError

if TYPE_CHECKING:  # note-seq is slow to import and noisy; the CLI validates options without it
    from note_seq.protobuf import music_pb2

DEFAULT_QPM = 120.0
PHRASE_BARS = 8  # the position input counts bars 1..8 of a phrase (4-bar phrases are halves)
MAX_QUARTERS_PER_BAR = 4
# An onset fits the grid when it is within this many quarter notes of a
# sixteenth or eighth-triplet position (the measure the figures use).
GRID_TOLERANCE_QUARTERS = 1 / 24
# Onset positions (in quarter notes, within a beat) of the 16th and 8th-triplet grids.
ONSET_GRID = (0.0, 0.25, 1 / 3, 0.5, 2 / 3, 0.75, 1.0)
_GRID_POSITIONS = np.array(ONSET_GRID)
MIN_DRUM_HITS = 8


@dataclass(frozen=True)
class Metre:
    """A time signature such as 4/4: `numerator` notes of 1/`denominator` per bar."""

    numerator: int = 4
    denominator: int = 4

    @property
    def name(self) -> str:
        return f"{self.numerator}/{self.denominator}"

    @property
    def quarters_per_bar(self) -> float:
        return self.numerator * 4 / self.denominator

    def steps_per_bar(self, steps_per_quarter: int) -> int:
        return round(self.quarters_per_bar * steps_per_quarter)


# The metres metric styles know, in the order of the position input's one-hot.
# 2/2 is read as 4/4 (the same quarters); others are refused.
METRES = (Metre(4, 4), Metre(3, 4), Metre(6, 8), Metre(2, 4))
_ALIASES = {(2, 2): Metre(4, 4)}
COMMON_TIME = METRES[0]


def parse_metre(text: str) -> Metre:
    """A metre from text such as "4/4", "3/4" or "6/8"."""
    try:
        numerator, denominator = (int(part) for part in str(text).strip().split("/"))
    except ValueError:
        raise PerfRNNError(f"time signature must look like 4/4, 3/4 or 6/8, got {text!r}") from None
    return known_metre(numerator, denominator)


def known_metre(numerator: int, denominator: int) -> Metre:
    """The Metre for numerator/denominator, if metric styles know it."""
    metre = _ALIASES.get((numerator, denominator), Metre(numerator, denominator))
    if metre not in METRES:
        known = ", ".join(m.name for m in METRES)
        raise PerfRNNError(f"time signature {numerator}/{denominator} is not one metric "
                           f"styles play; they know {known}")
    return metre


def metre_of(sequence: music_pb2.NoteSequence) -> Metre:
    """The sequence's metre: its first time signature (4/4 when it has none).

    Raises:
      PerfRNNError: the metre is not one of METRES, or it changes within the
        piece (metric styles need one metre per piece; cut the piece first).
    """
    signatures = sorted(sequence.time_signatures, key=lambda s: s.time)
    if not signatures:
        return COMMON_TIME
    first = known_metre(signatures[0].numerator, signatures[0].denominator)
    for signature in signatures[1:]:
        if known_metre_or_none(signature.numerator, signature.denominator) != first:
            raise PerfRNNError(f"the time signature changes from {first.name} to "
                               f"{signature.numerator}/{signature.denominator} at "
                               f"{signature.time:.1f} s")
    return first


def known_metre_or_none(numerator: int, denominator: int) -> Metre | None:
    try:
        return known_metre(numerator, denominator)
    except PerfRNNError:
        return None


def first_metre_change(sequence: music_pb2.NoteSequence) -> float | None:
    """Seconds at which the time signature first differs from the first one (None: never)."""
    signatures = sorted(sequence.time_signatures, key=lambda s: s.time)

    def metre(signature):  # 2/2 is 4/4; an unknown metre is compared as written
        pair = (signature.numerator, signature.denominator)
        return known_metre_or_none(*pair) or pair

    for signature in signatures[1:]:
        if metre(signature) != metre(signatures[0]):
            return signature.time
    return None


def _tempo_map(sequence: music_pb2.NoteSequence) -> tuple[np.ndarray, np.ndarray]:
    """Tempo change times (seconds) and quarter notes per second from each on."""
    changes: dict[float, float] = {}
    for tempo in sorted(sequence.tempos, key=lambda t: t.time):
        if tempo.qpm > 0 and math.isfinite(tempo.qpm):
            changes[max(float(tempo.time), 0.0)] = tempo.qpm / 60.0
    if 0.0 not in changes:
        first = min(changes) if changes else None
        changes[0.0] = changes[first] if first is not None else DEFAULT_QPM / 60.0
    times = np.array(sorted(changes), np.float64)
    rates = np.array([changes[t] for t in times], np.float64)
    return times, rates


def quarters_at(sequence: music_pb2.NoteSequence, seconds) -> np.ndarray:
    """Quarter notes from the start at each time in `seconds`, by the tempo map.

    A sequence without tempos is read at 120 quarter notes per minute, as MIDI
    files are.
    """
    seconds = np.asarray(seconds, np.float64)
    times, rates = _tempo_map(sequence)
    starts = np.concatenate([[0.0], np.cumsum(np.diff(times) * rates[:-1])])
    segment = np.clip(np.searchsorted(times, seconds, side="right") - 1, 0, len(times) - 1)
    return starts[segment] + (seconds - times[segment]) * rates[segment]


def onset_grid_fit(sequence: music_pb2.NoteSequence, drums_only: bool = False,
                   tolerance: float = GRID_TOLERANCE_QUARTERS) -> float:
    """Share of onsets within `tolerance` quarter notes of the sixteenth or
    eighth-triplet grid of the sequence's own tempo map (nan without onsets).

    This is what a DAW shows: notes on or off the grid it draws at the
    file's tempo. Random onsets give 0.5 (six windows of 1/12 beat each);
    `drums_only` counts the drum hits alone.
    """
    starts = [note.start_time for note in sequence.notes if note.is_drum or not drums_only]
    if not starts:
        return math.nan
    within_beat = np.mod(quarters_at(sequence, starts), 1.0)
    distance = np.min(np.abs(within_beat[:, None] - _GRID_POSITIONS[None, :]), axis=1)
    return float(np.mean(distance <= tolerance + 1e-9))


def beat_grid_fit(sequence: music_pb2.NoteSequence) -> float:
    """How well a piece follows its own beat: the grid fit of its drum hits
    when it has at least MIN_DRUM_HITS of them (strummed chords and
    arpeggiated pads are spread on purpose), else of all its onsets."""
    drums = sum(1 for note in sequence.notes if note.is_drum)
    return onset_grid_fit(sequence, drums_only=drums >= MIN_DRUM_HITS)


KICK_PITCHES = (35, 36)  # GM acoustic and bass drum


def downbeat_share(sequence: music_pb2.NoteSequence,
                   tolerance: float = GRID_TOLERANCE_QUARTERS) -> float:
    """Share of bars with drum hits whose beat 1 carries the kick (nan without drums).

    Bars follow the sequence's own tempo map and first time signature from
    time 0, as a DAW draws them. A piece without a kick is judged by its most
    frequent drum instead (the style's strongest drum).
    """
    drums = [note for note in sequence.notes if note.is_drum]
    if not drums:
        return math.nan
    pitches = np.array([note.pitch for note in drums])
    strong = np.isin(pitches, KICK_PITCHES)
    if not strong.any():
        values, counts = np.unique(pitches, return_counts=True)
        strong = pitches == values[np.argmax(counts)]
    try:
        bar = metre_of(sequence).quarters_per_bar
    except PerfRNNError:
        bar = sequence.time_signatures[0].numerator * 4 / sequence.time_signatures[0].denominator
    quarters = quarters_at(sequence, [note.start_time for note in drums])
    bars = np.floor((quarters + tolerance) / bar).astype(np.int64)
    on_one = np.abs(quarters - np.rint(quarters / bar) * bar) <= tolerance + 1e-9
    with_hits = np.unique(bars)
    with_kick = np.unique(bars[strong & on_one])
    return float(len(with_kick) / len(with_hits))


def position_size(steps_per_quarter: int) -> int:
    """Width of the position input: step in the beat, beat in the bar, bar in
    the phrase, metre."""
    return steps_per_quarter + MAX_QUARTERS_PER_BAR + PHRASE_BARS + len(METRES)


def position_features(steps, metre: Metre, steps_per_quarter: int) -> np.ndarray:
    """The position input [len(steps), position_size] at each absolute step.

    One-hot blocks: the step within the quarter note, the quarter note within
    the bar, the bar within an 8-bar phrase, and the metre. Bar 1 starts at
    step 0.
    """
    steps = np.asarray(steps, np.int64)
    bar_steps = metre.steps_per_bar(steps_per_quarter)
    bars, in_bar = np.divmod(steps, bar_steps)
    rows = np.arange(len(steps))
    features = np.zeros((len(steps), position_size(steps_per_quarter)), np.float32)
    offset = 0
    features[rows, offset + in_bar % steps_per_quarter] = 1.0
    offset += steps_per_quarter
    features[rows, offset + np.minimum(in_bar // steps_per_quarter,
                                       MAX_QUARTERS_PER_BAR - 1)] = 1.0
    offset += MAX_QUARTERS_PER_BAR
    features[rows, offset + bars % PHRASE_BARS] = 1.0
    offset += PHRASE_BARS
    features[rows, offset + METRES.index(metre)] = 1.0
    return features


def position_cycle(metre: Metre, steps_per_quarter: int) -> int:
    """Steps after which the position input repeats: one 8-bar phrase."""
    return metre.steps_per_bar(steps_per_quarter) * PHRASE_BARS
