"""Song structure figures: does a piece repeat its bars, play its chords and
keep its groove, as real music of its style does?

Pure functions over note-seq `NoteSequence` protobufs, to compare generated
pieces with real held-out music of the same style (`benchmarks/song_figures.py`).

Units and conventions:

- **Time** in a NoteSequence is seconds. Every figure reads it on the piece's
  own tempo map (`perfrnn.metre.quarters_at`) on a grid of STEPS_PER_QUARTER
  (12) steps per quarter note: each onset is snapped to the nearest step. A
  **beat** is a quarter note.
- **Bars** follow the piece's first time signature (`perfrnn.metre.metre_of`;
  4/4 when it has none, its first signature as written when the metre is one
  metric styles do not play or changes), bar 0 starting at time 0, as a DAW
  draws them. A note belongs to the bar its snapped onset falls in.
- **Parts**: drum notes are those with ``is_drum``; pitched notes all others.
  The bass part is the pitched notes whose ``instrument`` is
  `perfrnn.multitrack.ROLE_BASS`, as `perfrnn.multitrack.assign_roles` sets it
  (`song_figures` assigns the roles itself).
- **Chords** are the piece's CHORD_SYMBOL text annotations (times in seconds,
  as `perfrnn.music_io.read_music_file` reads a file's chord-symbol text
  events), parsed with `perfrnn.chords.parse_chord`; a chord sounds from its
  annotation (snapped to the grid) to the next one. ``N.C.`` is no chord.
- **Sections** are the piece's section annotations (``section_id`` an index in
  `perfrnn.song_form.MARKERS`); a section starts at the bar line nearest its
  annotation.
- **"On beat 1"**: an onset less than ON_ONE_STEPS (3 steps, a quarter of a
  beat) from a bar's downbeat, before or after it.

Every figure is a float, or None when it does not apply to the piece (no
drums, no pitched notes, no chords, too few bars ...). `song_figures` computes
them all; FIGURES lists them with their units.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from note_seq.protobuf import music_pb2

from perfrnn import music_metrics
from perfrnn.chords import Chord, parse_chord
from perfrnn.errors import PerfRNNError
from perfrnn.metre import ONSET_GRID, _tempo_map, metre_of, quarters_at
from perfrnn.multitrack import ROLE_BASS

STEPS_PER_QUARTER = 12
"""Grid steps per quarter note (1/12 beat: sixteenths and eighth triplets both fit)."""
ON_ONE_STEPS = 3
"""An onset is on beat 1 when it is less than this many steps (1/4 beat) from the downbeat."""
REPEAT_JACCARD = 0.75
"""A bar repeats an earlier one when their onset sets have at least this Jaccard index."""
DRUM_LOOKBACK_BARS = 4
"""Bars before a drum bar that it may repeat (`drum_bar_repeat`)."""
PITCHED_LOOKBACK_BARS = 8
"""Bars before a pitched bar that it may repeat (`pitched_bar_repeat`)."""
KICK_PITCHES = (35, 36)
"""GM acoustic bass drum and bass drum 1."""
HI_HAT_PITCHES = (42, 44, 46)
"""GM closed, pedal and open hi-hat."""
FILL_SECTION_IDS = (2,)
"""Section ids (indices in `perfrnn.song_form.MARKERS`) of fill bars: Fill."""
MAIN_SECTION_IDS = (1, 4)
"""Section ids of main bars: A and B."""

_MAJOR_TRIADS = [frozenset({root, (root + 4) % 12, (root + 7) % 12}) for root in range(12)]
_MINOR_TRIADS = [frozenset({root, (root + 3) % 12, (root + 7) % 12}) for root in range(12)]
_TRIAD_MASKS = np.zeros((24, 12), bool)
for _row, _triad in enumerate(_MAJOR_TRIADS + _MINOR_TRIADS):
    _TRIAD_MASKS[_row, sorted(_triad)] = True

FIGURES: dict[str, str] = {
    "drum_bar_repeat": "share of drum bars (from bar 2) repeating one of the 4 bars before "
                       "(Jaccard >= 0.75 of {(step, drum pitch)})",
    "pitched_bar_repeat": "share of pitched bars (from bar 2) repeating one of the 8 bars "
                          "before (Jaccard >= 0.75 of {(step, pitch class)})",
    "groove_consistency": "1 - mean Hamming distance of neighbouring bars' drum onsets / "
                          "steps per bar (MusPy)",
    "chord_tone_share": "share of pitched onsets in the marked chord sounding",
    "chord_tone_share_inferred": "share of pitched onsets in the chord inferred for the bar "
                                 "(note-seq chord inference, marked chords ignored)",
    "bar_triad_share": "share of a bar's pitched onsets in its best major/minor triad, "
                       "mean over bars",
    "bass_root_on_one": "share of bars with a marked chord where the bass plays its root "
                        "on beat 1",
    "bass_root_on_one_inferred": "the same with inferred chords",
    "bass_onset_on_one": "share of bars with notes where the bass plays on beat 1",
    "scale_consistency": "share of pitched notes in the best major/minor scale (MusPy)",
    "drum_notes_per_bar": "drum onsets per bar with drums",
    "kicks_per_bar": "kick (35, 36) onsets per bar with drums",
    "kick_on_one": "share of bars with drums with a kick on beat 1",
    "kick_periodicity": "max autocorrelation of the kick onsets over lags 1/2 beat to "
                        "1 bar (-1 to 1)",
    "hi_hat_periodicity": "the same for the hi-hats (42, 44, 46)",
    "pitch_range": "semitones from the lowest to the highest pitched note",
    "pitch_class_entropy": "bits (0 to log2 12 = 3.58) of the pitched notes' pitch classes",
    "fill_drum_repeat": "drum_bar_repeat over the bars of Fill sections",
    "main_drum_repeat": "drum_bar_repeat over the bars of A and B sections",
}
"""Every figure `song_figures` returns, in order, with its unit."""


# ----- the grid ------------------------------------------------------------------------


def steps_per_bar(sequence: music_pb2.NoteSequence) -> int:
    """Grid steps (1/12 quarter note) per bar, from the piece's first time
    signature (4/4 without one)."""
    try:
        quarters = metre_of(sequence).quarters_per_bar
    except PerfRNNError:  # a metre metric styles do not play, or one that changes
        first = min(sequence.time_signatures, key=lambda s: s.time)
        valid = first.numerator > 0 and first.denominator > 0
        quarters = first.numerator * 4 / first.denominator if valid else 4.0
    return max(1, round(quarters * STEPS_PER_QUARTER))


def grid_steps(sequence: music_pb2.NoteSequence, seconds) -> np.ndarray:
    """The grid step (int64, 1/12 quarter note from time 0) nearest to each
    time in `seconds`, on the piece's tempo map."""
    quarters = quarters_at(sequence, np.asarray(seconds, np.float64).reshape(-1))
    return np.rint(quarters * STEPS_PER_QUARTER).astype(np.int64)


@dataclass(frozen=True)
class Onsets:
    """A piece's note onsets on the grid, one row per note.

    Attributes:
      step: Grid step of the onset from time 0.
      pitch: MIDI pitch.
      is_drum: Drum note (else pitched).
      instrument: The note's instrument (its role index after `assign_roles`).
      bar_steps: Steps per bar.
    """

    step: np.ndarray
    pitch: np.ndarray
    is_drum: np.ndarray
    instrument: np.ndarray
    bar_steps: int

    @property
    def bar(self) -> np.ndarray:
        return self.step // self.bar_steps

    @property
    def in_bar(self) -> np.ndarray:
        return self.step % self.bar_steps

    def select(self, mask: np.ndarray) -> Onsets:
        return Onsets(self.step[mask], self.pitch[mask], self.is_drum[mask],
                      self.instrument[mask], self.bar_steps)

    @property
    def drums(self) -> Onsets:
        return self.select(self.is_drum)

    @property
    def pitched(self) -> Onsets:
        return self.select(~self.is_drum)

    def near_downbeat(self) -> tuple[np.ndarray, np.ndarray]:
        """(bar whose downbeat is nearest each onset, whether the onset is on
        its beat 1: less than ON_ONE_STEPS from it)."""
        bars = np.floor_divide(self.step + self.bar_steps // 2, self.bar_steps)
        return bars, np.abs(self.step - bars * self.bar_steps) < ON_ONE_STEPS


def onsets(sequence: music_pb2.NoteSequence) -> Onsets:
    """The piece's onsets on its grid (notes in their order in the sequence)."""
    notes = list(sequence.notes)
    return Onsets(
        step=grid_steps(sequence, [note.start_time for note in notes]) if notes
        else np.zeros(0, np.int64),
        pitch=np.array([note.pitch for note in notes], np.int64),
        is_drum=np.array([note.is_drum for note in notes], bool),
        instrument=np.array([note.instrument for note in notes], np.int64),
        bar_steps=steps_per_bar(sequence))


def seconds_at(sequence: music_pb2.NoteSequence, quarters) -> np.ndarray:
    """Seconds at each position in `quarters` (quarter notes from time 0) on
    the piece's tempo map: the inverse of `perfrnn.metre.quarters_at`."""
    quarters = np.asarray(quarters, np.float64).reshape(-1)
    times, rates = _tempo_map(sequence)
    starts = quarters_at(sequence, times)
    segment = np.clip(np.searchsorted(starts, quarters, side="right") - 1, 0, len(times) - 1)
    return times[segment] + (quarters - starts[segment]) / rates[segment]


_ONSET_GRID_STEPS = np.array(sorted({round(STEPS_PER_QUARTER * p) for p in ONSET_GRID}))


def snap_to_onset_grid(sequence: music_pb2.NoteSequence) -> music_pb2.NoteSequence:
    """A copy whose onsets sit on the nearest sixteenth or eighth-triplet of
    the piece's tempo map, each note moved whole (its length kept).

    This is how the metric styles' encoding reads real music
    (`perfrnn.metric_encoding`), and what their note grammar lets them play:
    it takes out the humanised timing of rendered music (mma's grooves move
    onsets by a step or two of 1/12 beat), so that a bar repeated with
    jitter still repeats. Music already on that grid is unchanged.
    """
    copy = music_pb2.NoteSequence()
    copy.CopyFrom(sequence)
    if not copy.notes:
        return copy
    steps = quarters_at(copy, [note.start_time for note in copy.notes]) * STEPS_PER_QUARTER
    beats = np.floor(steps / STEPS_PER_QUARTER)
    within = steps - beats * STEPS_PER_QUARTER
    nearest = _ONSET_GRID_STEPS[np.argmin(np.abs(within[:, None] - _ONSET_GRID_STEPS[None, :]),
                                          axis=1)]
    starts = seconds_at(copy, (beats * STEPS_PER_QUARTER + nearest) / STEPS_PER_QUARTER)
    off_grid = np.abs(within - nearest) > 1e-6  # on it already: left exactly as it is
    for note, start, move in zip(copy.notes, starts.tolist(), off_grid.tolist()):
        if not move:
            continue
        start = max(start, 0.0)
        note.end_time = max(note.end_time + start - note.start_time, start)
        note.start_time = start
    copy.total_time = max(copy.total_time, max(note.end_time for note in copy.notes))
    return copy


def _none_if_nan(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


# ----- repeated bars -------------------------------------------------------------------


def jaccard(a: frozenset, b: frozenset) -> float:
    """|a & b| / |a | b| (0.0 for two empty sets)."""
    union = len(a | b)
    return len(a & b) / union if union else 0.0


def bar_repeats(bar_sets: dict[int, frozenset], lookback: int,
                threshold: float = REPEAT_JACCARD) -> dict[int, bool]:
    """For each bar of `bar_sets` (bar index -> its non-empty onset set) from
    bar index 1 on: whether its set has a Jaccard index of at least
    `threshold` with that of one of the `lookback` bars before it (a bar
    missing from `bar_sets` is empty and matches nothing)."""
    empty: frozenset = frozenset()
    return {bar: any(jaccard(onset_set, bar_sets.get(earlier, empty)) >= threshold
                     for earlier in range(max(bar - lookback, 0), bar))
            for bar, onset_set in bar_sets.items() if bar >= 1}


def _drum_bar_sets(notes: Onsets) -> dict[int, frozenset]:
    drums = notes.drums
    sets: dict[int, set] = {}
    for bar, step, pitch in zip(drums.bar.tolist(), drums.in_bar.tolist(), drums.pitch.tolist()):
        sets.setdefault(bar, set()).add((step, pitch))
    return {bar: frozenset(items) for bar, items in sets.items()}


def _pitched_bar_sets(notes: Onsets) -> dict[int, frozenset]:
    pitched = notes.pitched
    sets: dict[int, set] = {}
    for bar, step, pitch in zip(pitched.bar.tolist(), pitched.in_bar.tolist(),
                                pitched.pitch.tolist()):
        sets.setdefault(bar, set()).add((step, pitch % 12))
    return {bar: frozenset(items) for bar, items in sets.items()}


def drum_bar_repeat(sequence: music_pb2.NoteSequence, lookback: int = DRUM_LOOKBACK_BARS,
                    threshold: float = REPEAT_JACCARD) -> float | None:
    """Share of the drum bars (bars with a drum onset, from the piece's 2nd
    bar on) whose onsets {(step in bar, drum pitch)} have a Jaccard index of at
    least `threshold` (0.75) with those of one of the `lookback` (4) bars
    before it. 1.0 for a pattern played over and over; None without a drum
    bar after the first bar."""
    repeats = bar_repeats(_drum_bar_sets(onsets(sequence)), lookback, threshold)
    return _mean(list(repeats.values()))


def pitched_bar_repeat(sequence: music_pb2.NoteSequence,
                       lookback: int = PITCHED_LOOKBACK_BARS,
                       threshold: float = REPEAT_JACCARD) -> float | None:
    """Share of the pitched bars (bars with a pitched onset, from the 2nd bar
    on) whose onsets {(step in bar, pitch class)} have a Jaccard index of at
    least `threshold` (0.75) with those of one of the `lookback` (8) bars
    before it. None without a pitched bar after the first bar."""
    repeats = bar_repeats(_pitched_bar_sets(onsets(sequence)), lookback, threshold)
    return _mean(list(repeats.values()))


def groove_consistency(sequence: music_pb2.NoteSequence) -> float | None:
    """1 minus the mean Hamming distance between neighbouring bars' drum
    onsets, divided by the steps in a bar (MusPy's groove consistency).

    Each bar is a binary vector over its grid steps, one where a drum note
    starts; bars run from the first to the last bar with drums (MusPy counts
    from time 0 to the end and all notes). 1.0 for a pattern repeated exactly
    every bar; None without drums in two bars.
    """
    drums = onsets(sequence).drums
    if not len(drums.step):
        return None
    bars = drums.bar - drums.bar.min()
    count = int(bars.max()) + 1
    if count < 2:
        return None
    grooves = np.zeros((count, drums.bar_steps), bool)
    grooves[bars, drums.in_bar] = True
    distance = np.count_nonzero(grooves[:-1] != grooves[1:], axis=1) / drums.bar_steps
    return float(1.0 - distance.mean())


# ----- chords --------------------------------------------------------------------------


def chord_changes(sequence: music_pb2.NoteSequence) -> list[tuple[int, Chord]]:
    """(grid step, chord) at each CHORD_SYMBOL annotation, in time order
    (symbols that do not parse are left out; N.C. is kept, as no chord)."""
    chord_type = music_pb2.NoteSequence.TextAnnotation.CHORD_SYMBOL
    marks = sorted(((a.time, a.text) for a in sequence.text_annotations
                    if a.annotation_type == chord_type), key=lambda mark: mark[0])
    steps = grid_steps(sequence, [time for time, _ in marks]).tolist() if marks else []
    changes = []
    for step, (_, text) in zip(steps, marks):
        try:
            changes.append((step, parse_chord(text)))
        except PerfRNNError:
            continue
    return changes


def chords_at(changes: Sequence[tuple[int, Chord]], steps) -> list[Chord | None]:
    """The chord sounding at each grid step: the last change at or before it
    (None before the first change, and for N.C.)."""
    if not changes:
        return [None] * len(np.asarray(steps).reshape(-1))
    starts = np.array([step for step, _ in changes])
    found = np.searchsorted(starts, np.asarray(steps).reshape(-1), side="right") - 1
    result = []
    for index in found.tolist():
        chord = changes[index][1] if index >= 0 else None
        result.append(None if chord is None or chord.is_no_chord else chord)
    return result


def with_inferred_chords(sequence: music_pb2.NoteSequence) -> music_pb2.NoteSequence | None:
    """A copy of `sequence` whose chord annotations are one per bar, inferred
    from its pitched notes by note-seq's chord inference (as
    `perfrnn.song_form.song_chords` does for unmarked music; marked chords
    are dropped first), or None when none can be inferred. Generated and real
    music are then judged against chords found the same way."""
    from perfrnn.song_form import song_chords

    copy = music_pb2.NoteSequence()
    copy.CopyFrom(sequence)
    chord_type = music_pb2.NoteSequence.TextAnnotation.CHORD_SYMBOL
    kept = [a for a in copy.text_annotations if a.annotation_type != chord_type]
    del copy.text_annotations[:]
    copy.text_annotations.extend(kept)
    how, _ = song_chords(copy)
    return copy if how == "inferred" else None


def chord_tone_share(sequence: music_pb2.NoteSequence) -> float | None:
    """Share of pitched onsets whose pitch class is in the chord sounding at
    the onset (its CHORD_SYMBOL annotations). Onsets before the first chord
    or under N.C. are not counted; None without chords or without a pitched
    onset under one."""
    changes = chord_changes(sequence)
    if not changes:
        return None
    pitched = onsets(sequence).pitched
    hits = [pitch % 12 in chord.pitch_classes
            for pitch, chord in zip(pitched.pitch.tolist(), chords_at(changes, pitched.step))
            if chord is not None]
    return _mean(hits)


def bar_triad_share(sequence: music_pb2.NoteSequence) -> float | None:
    """For each bar with pitched onsets, the share of them whose pitch class
    is in the major or minor triad (of 24) holding the most of them; the
    mean over those bars. 1.0 when every bar plays one triad's notes; None
    without pitched notes."""
    pitched = onsets(sequence).pitched
    if not len(pitched.step):
        return None
    bars, index = np.unique(pitched.bar, return_inverse=True)
    counts = np.zeros((len(bars), 12), np.int64)
    np.add.at(counts, (index, pitched.pitch % 12), 1)
    in_triad = counts @ _TRIAD_MASKS.T.astype(np.int64)  # [bars, 24]
    return float(np.mean(in_triad.max(axis=1) / counts.sum(axis=1)))


def played_bars(sequence: music_pb2.NoteSequence) -> int:
    """Bars from bar 0 to the last one in which a note starts or sounds (a
    note ending on a bar line does not sound in the bar after it)."""
    if not sequence.notes:
        return 0
    bar_steps = steps_per_bar(sequence)
    starts = grid_steps(sequence, [note.start_time for note in sequence.notes])
    ends = grid_steps(sequence, [note.end_time for note in sequence.notes])
    return int(max(starts.max() // bar_steps + 1, -(-ends.max() // bar_steps)))


def bass_root_on_one(sequence: music_pb2.NoteSequence) -> float | None:
    """Share of bars with a chord (one sounding at the downbeat, of the
    `played_bars`) in which the bass part plays the chord's root
    pitch class on beat 1 (less than 1/4 beat from the downbeat). None
    without chords or without a bass part (pitched notes with instrument
    `ROLE_BASS`)."""
    changes = chord_changes(sequence)
    notes = onsets(sequence)
    bass = notes.pitched.select(notes.pitched.instrument == ROLE_BASS)
    if not changes or not len(bass.step):
        return None
    bars = np.arange(played_bars(sequence))
    chords = chords_at(changes, bars * notes.bar_steps)
    near, on_one = bass.near_downbeat()
    played: dict[int, set[int]] = {}
    for bar, pitch in zip(near[on_one].tolist(), bass.pitch[on_one].tolist()):
        played.setdefault(bar, set()).add(pitch % 12)
    hits = [chord.root in played.get(bar, ()) for bar, chord in zip(bars.tolist(), chords)
            if chord is not None]
    return _mean(hits)


def bass_onset_on_one(sequence: music_pb2.NoteSequence) -> float | None:
    """Share of bars with onsets (of any part) in which the bass part plays
    anything on beat 1 (less than 1/4 beat from the downbeat). None without a
    bass part."""
    notes = onsets(sequence)
    bass = notes.pitched.select(notes.pitched.instrument == ROLE_BASS)
    if not len(bass.step):
        return None
    with_notes = set(notes.bar.tolist())
    near, on_one = bass.near_downbeat()
    return len(with_notes & set(near[on_one].tolist())) / len(with_notes)


# ----- pitch ---------------------------------------------------------------------------


def scale_consistency(sequence: music_pb2.NoteSequence) -> float | None:
    """Largest share of pitched notes in one of the 24 major and natural
    minor scales (MusPy's; `perfrnn.music_metrics.scale_consistency`). None
    without pitched notes."""
    return _none_if_nan(music_metrics.scale_consistency(sequence))


def pitch_range(sequence: music_pb2.NoteSequence) -> float | None:
    """Semitones from the lowest to the highest pitched note; None without any."""
    return _none_if_nan(music_metrics.pitch_range(sequence))


def pitch_class_entropy(sequence: music_pb2.NoteSequence) -> float | None:
    """Shannon entropy in bits of the pitched notes' pitch classes (0 to
    log2 12 = 3.58); None without pitched notes."""
    return _none_if_nan(music_metrics.pitch_class_entropy(sequence))


# ----- drums ---------------------------------------------------------------------------


def drum_notes_per_bar(sequence: music_pb2.NoteSequence) -> float | None:
    """Drum onsets per bar, over the bars with drums; None without drums."""
    drums = onsets(sequence).drums
    if not len(drums.step):
        return None
    return len(drums.step) / len(np.unique(drums.bar))


def kicks_per_bar(sequence: music_pb2.NoteSequence) -> float | None:
    """Kick (35, 36) onsets per bar, over the bars with drums; None without drums."""
    drums = onsets(sequence).drums
    if not len(drums.step):
        return None
    return int(np.isin(drums.pitch, KICK_PITCHES).sum()) / len(np.unique(drums.bar))


def kick_on_one(sequence: music_pb2.NoteSequence) -> float | None:
    """Share of the bars with drums that have a kick (35, 36) on beat 1 (less
    than 1/4 beat from the downbeat); None without drums."""
    drums = onsets(sequence).drums
    if not len(drums.step):
        return None
    with_drums = set(drums.bar.tolist())
    kicks = drums.select(np.isin(drums.pitch, KICK_PITCHES))
    near, on_one = kicks.near_downbeat()
    return len(with_drums & set(near[on_one].tolist())) / len(with_drums)


def onset_periodicity(steps: Iterable[int], bar_steps: int) -> float | None:
    """The periodicity of a binary onset series: its largest autocorrelation
    over lags from 1/2 beat (6 steps) to one bar (`bar_steps`).

    The series is one per grid step (1 where an onset is) from the start of
    the first bar with an onset to the end of the last. The autocorrelation
    at lag L is the Pearson correlation of the series with itself L steps on
    (x[:-L] against x[L:]); lags where either part is constant are left out.
    1.0 for a pattern that repeats exactly with some period in that range
    (four on the floor: lag 12); near 0 for random onsets. None for fewer
    than 2 onsets, a series shorter than 2 bars or no lag to measure.
    """
    steps = np.unique(np.asarray(list(steps), np.int64))
    if len(steps) < 2:
        return None
    first = steps.min() // bar_steps * bar_steps
    length = (steps.max() // bar_steps + 1) * bar_steps - first
    if length < 2 * bar_steps:
        return None
    series = np.zeros(length)
    series[steps - first] = 1.0
    best = None
    for lag in range(STEPS_PER_QUARTER // 2, bar_steps + 1):
        a, b = series[:-lag], series[lag:]
        if a.std() == 0 or b.std() == 0:
            continue
        r = float(np.corrcoef(a, b)[0, 1])
        best = r if best is None else max(best, r)
    return best


def _drum_periodicity(sequence: music_pb2.NoteSequence, pitches) -> float | None:
    drums = onsets(sequence).drums
    return onset_periodicity(drums.step[np.isin(drums.pitch, pitches)], drums.bar_steps)


def kick_periodicity(sequence: music_pb2.NoteSequence) -> float | None:
    """`onset_periodicity` of the kick (35, 36) onsets."""
    return _drum_periodicity(sequence, KICK_PITCHES)


def hi_hat_periodicity(sequence: music_pb2.NoteSequence) -> float | None:
    """`onset_periodicity` of the hi-hat (42, 44, 46) onsets."""
    return _drum_periodicity(sequence, HI_HAT_PITCHES)


# ----- sections ------------------------------------------------------------------------


def bar_sections(sequence: music_pb2.NoteSequence, bars: int) -> list[int | None]:
    """The section id of each of `bars` bars: that of the last section
    annotation starting at or before it (snapped to the nearest bar line);
    None before the first."""
    bar_steps = steps_per_bar(sequence)
    marks = sorted(((int(np.rint(grid_steps(sequence, [a.time])[0] / bar_steps)), a.section_id)
                    for a in sequence.section_annotations), key=lambda mark: mark[0])
    sections: list[int | None] = []
    current, index = None, 0
    for bar in range(bars):
        while index < len(marks) and marks[index][0] <= bar:
            current = marks[index][1]
            index += 1
        sections.append(current)
    return sections


def section_drum_repeat(sequence: music_pb2.NoteSequence,
                        section_ids: Sequence[int]) -> float | None:
    """`drum_bar_repeat` over the bars in sections `section_ids` alone (the
    bars before them still count as history). None without section
    annotations or without a drum bar in those sections."""
    if not sequence.section_annotations:
        return None
    repeats = bar_repeats(_drum_bar_sets(onsets(sequence)), DRUM_LOOKBACK_BARS)
    if not repeats:
        return None
    sections = bar_sections(sequence, max(repeats) + 1)
    return _mean([repeated for bar, repeated in repeats.items() if sections[bar] in section_ids])


def fill_drum_repeat(sequence: music_pb2.NoteSequence) -> float | None:
    """`drum_bar_repeat` over fill bars (sections marked Fill): fills should
    repeat less than main bars."""
    return section_drum_repeat(sequence, FILL_SECTION_IDS)


def main_drum_repeat(sequence: music_pb2.NoteSequence) -> float | None:
    """`drum_bar_repeat` over main bars (sections marked A or B)."""
    return section_drum_repeat(sequence, MAIN_SECTION_IDS)


# ----- all of them ---------------------------------------------------------------------


def song_figures(sequence: music_pb2.NoteSequence, assign: bool = True,
                 infer_chords: bool = True, onset_grid: bool = False
                 ) -> dict[str, float | None]:
    """Every figure of FIGURES for one piece (None where it does not apply).

    Args:
      sequence: The piece, as `perfrnn.music_io.read_music_file` reads it.
      assign: Map its parts onto drums, bass, harmony and lead first
        (`perfrnn.multitrack.assign_roles` with `perfrnn.configs.BAND_TRACKS`);
        False when its notes' instruments are role indices already.
      infer_chords: Also measure against inferred chords (the ``_inferred``
        figures; note-seq's chord inference is the slowest step).
      onset_grid: Move the onsets to the sixteenth and eighth-triplet grid
        first (`snap_to_onset_grid`); else each is read at the nearest 1/12
        beat as it is.
    """
    if onset_grid:
        sequence = snap_to_onset_grid(sequence)
    if assign:
        from perfrnn.configs import BAND_TRACKS
        from perfrnn.multitrack import assign_roles

        sequence, _ = assign_roles(sequence, BAND_TRACKS)
    inferred = with_inferred_chords(sequence) if infer_chords else None
    figures = {
        "drum_bar_repeat": drum_bar_repeat(sequence),
        "pitched_bar_repeat": pitched_bar_repeat(sequence),
        "groove_consistency": groove_consistency(sequence),
        "chord_tone_share": chord_tone_share(sequence),
        "chord_tone_share_inferred": chord_tone_share(inferred) if inferred else None,
        "bar_triad_share": bar_triad_share(sequence),
        "bass_root_on_one": bass_root_on_one(sequence),
        "bass_root_on_one_inferred": bass_root_on_one(inferred) if inferred else None,
        "bass_onset_on_one": bass_onset_on_one(sequence),
        "scale_consistency": scale_consistency(sequence),
        "drum_notes_per_bar": drum_notes_per_bar(sequence),
        "kicks_per_bar": kicks_per_bar(sequence),
        "kick_on_one": kick_on_one(sequence),
        "kick_periodicity": kick_periodicity(sequence),
        "hi_hat_periodicity": hi_hat_periodicity(sequence),
        "pitch_range": pitch_range(sequence),
        "pitch_class_entropy": pitch_class_entropy(sequence),
        "fill_drum_repeat": fill_drum_repeat(sequence),
        "main_drum_repeat": main_drum_repeat(sequence),
    }
    assert list(figures) == list(FIGURES)
    return figures


def mean_figures(pieces: Iterable[dict[str, float | None]]) -> dict[str, dict]:
    """Per figure over pieces: {"mean": mean of the pieces it applies to (None
    if none), "pieces": how many}."""
    pieces = list(pieces)
    summary = {}
    for name in FIGURES:
        values = [piece[name] for piece in pieces if piece.get(name) is not None]
        summary[name] = {"mean": _mean(values), "pieces": len(values)}
    return summary
