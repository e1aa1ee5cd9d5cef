"""A song's plan: its sections and its chords, one of each per bar.

A plan is what generation knows before it samples, and what prepare reads
from a corpus (the mma take scripts choose every bar's chord and section;
other music gets chords from `note_seq.chord_inference`). Sections are those
the corpora know: ``intro``, ``main``, ``fill`` (one bar that leads into the
next section) and ``ending``. A form lays them out:

- ``song``: intro, A, A ending in a fill, then (from 32 bars of body) B, A,
  and an ending, scaled to the length;
- ``loop``: the main section only;
- ``endless``: intro, then A A B A with fills, without end (the radio).

The bar input a metric model reads (`bar_features`) is the chord now and the
next bar's chord (`perfrnn.chords.chord_features` each), the section and the
bars left in it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from note_seq.protobuf import music_pb2

from perfrnn.chords import CHORD_FEATURES, NO_CHORD, chord_features, parse_chord
from perfrnn.errors import PerfRNNError

SECTIONS = ("intro", "main", "fill", "ending")
"""The sections a model is told about, in input order."""
MARKERS = ("Intro", "A", "Fill", "Ending", "B")
"""The marker a section starts with in a file, by section id (a NoteSequence's
section annotation): ids 0 to 3 are SECTIONS; 4, a B section, plays "main"."""
MAX_BARS_LEFT = 8
"""Bars left in a section are told up to this many (more counts as this many)."""
BAR_FEATURES = 2 * CHORD_FEATURES + len(SECTIONS) + MAX_BARS_LEFT
"""Width of `bar_features`."""
FORMS = ("song", "loop", "endless")
"""The forms a request may ask for (`plan_song`)."""
PHRASE_BARS = 8
"""Bars of one A or B section of a song."""


@dataclass(frozen=True)
class SongPlan:
    """Chords and sections, one per bar, and the markers a MIDI file shows.

    Attributes:
      chords: A chord symbol per bar (``N.C.``: none).
      sections: A name from SECTIONS per bar.
      markers: (bar, label) at each section start: ``Intro``, ``A``, ``B``,
        ``Fill``, ``Ending`` (what a DAW's marker track shows).
    """

    chords: tuple[str, ...]
    sections: tuple[str, ...]
    markers: tuple[tuple[int, str], ...] = ()

    def __post_init__(self):
        if len(self.chords) != len(self.sections) or not self.chords:
            raise PerfRNNError("a song plan needs a chord and a section for each bar")
        unknown = set(self.sections) - set(SECTIONS)
        if unknown:
            raise PerfRNNError(f"unknown section {sorted(unknown)[0]!r}; sections are "
                               f"{', '.join(SECTIONS)}")

    @property
    def bars(self) -> int:
        return len(self.chords)

    def bars_left(self, bar: int) -> int:
        """Bars of the section from `bar` to its end, `bar` included."""
        end = bar
        while end + 1 < self.bars and self.sections[end + 1] == self.sections[bar] and \
                not any(start == end + 1 for start, _ in self.markers):
            end += 1
        return end - bar + 1

    def bar_table(self) -> np.ndarray:
        """`bar_features` of every bar: [bars, BAR_FEATURES] float32."""
        chords = [chord_features(symbol) for symbol in self.chords]
        table = np.zeros((self.bars, BAR_FEATURES), np.float32)
        for bar in range(self.bars):
            following = chords[bar + 1] if bar + 1 < self.bars else chords[bar]
            table[bar, :CHORD_FEATURES] = chords[bar]
            table[bar, CHORD_FEATURES:2 * CHORD_FEATURES] = following
            table[bar, 2 * CHORD_FEATURES + SECTIONS.index(self.sections[bar])] = 1.0
            left = min(self.bars_left(bar), MAX_BARS_LEFT)
            table[bar, 2 * CHORD_FEATURES + len(SECTIONS) + left - 1] = 1.0
        return table

    def pitch_class_histograms(self) -> np.ndarray:
        """Each bar's chord as a pitch-class histogram [bars, 12] summing to 1
        (a uniform one for no chord): the key control of a piano style."""
        table = np.full((self.bars, 12), 1.0 / 12, np.float32)
        for bar, symbol in enumerate(self.chords):
            chord = parse_chord(symbol)
            if not chord.is_no_chord:
                table[bar] = 0.0
                table[bar, list(chord.pitch_classes)] = 1.0 / len(chord.pitch_classes)
        return table


def form_sections(bars: int, form: str) -> tuple[list[str], list[tuple[int, str]]]:
    """The section of each of `bars` bars in a form, and its markers."""
    if form not in FORMS:
        raise PerfRNNError(f"unknown form {form!r}; forms are {', '.join(FORMS)}")
    if bars < 1:
        raise PerfRNNError("a song needs at least one bar")
    if form == "loop":
        return ["main"] * bars, [(0, "A")]
    intro = 0 if bars < 12 else 2 if bars < 24 else 4
    ending = 0 if form == "endless" or bars < 6 else 1 if bars < 12 else 2
    sections, markers = ["intro"] * intro, [(0, "Intro")] if intro else []
    body = bars - intro - ending
    labels = ("A", "A", "B", "A")
    index = 0
    while body > 0:
        length = min(PHRASE_BARS, body)
        body -= length
        label = labels[index % len(labels)] if (form == "endless" or bars - intro >= 32) \
            else "A"
        markers.append((len(sections), label))
        sections += ["main"] * length
        if body > 0 and length >= 4:  # a fill leads into the next section
            sections[-1] = "fill"
            markers.append((len(sections) - 1, "Fill"))
        index += 1
    if ending:
        markers.append((len(sections), "Ending"))
        sections += ["ending"] * ending
    return sections, markers


def plan_song(bars: int, form: str, progression: tuple[str, ...],
              bridge: tuple[str, ...] | None = None) -> SongPlan:
    """A plan of `bars` bars: the form's sections, with `progression` (a chord
    per bar) repeating from the start of each section, and `bridge` (default:
    the progression) in B sections."""
    sections, markers = form_sections(bars, form)
    labels = {}
    for start, label in markers:
        labels[start] = label
    chords, label, start = [], "A", 0
    for bar in range(bars):
        if bar in labels and labels[bar] != "Fill":
            label, start = labels[bar], bar
        chosen = bridge if label == "B" and bridge else progression
        chords.append(chosen[(bar - start) % len(chosen)])
    return SongPlan(tuple(chords), tuple(sections), tuple(markers))


def plan_from_sequence(sequence: music_pb2.NoteSequence, bar_of_time) -> SongPlan | None:
    """The plan a prepared piece records: each bar's chord from its
    CHORD_SYMBOL text annotations and its section from its section
    annotations (ids index SECTIONS; none: ``main`` throughout).

    Args:
      sequence: The piece.
      bar_of_time: Maps times in seconds (array) to bar indices from 0.

    Returns:
      None when the piece has no chords (it is then trained without them).
    """
    chords = [(float(a.time), a.text) for a in sequence.text_annotations
              if a.annotation_type == music_pb2.NoteSequence.TextAnnotation.CHORD_SYMBOL]
    if not chords:
        return None
    end = float(sequence.total_time)
    bars = int(np.asarray(bar_of_time(np.array([max(end - 1e-3, 0.0)])))[0]) + 1
    per_bar = [NO_CHORD] * bars
    chord_bars = np.asarray(bar_of_time(np.array([time + 1e-3 for time, _ in chords])))
    for (_, text), bar in sorted(zip(chords, chord_bars), key=lambda item: item[0][0]):
        for later in range(max(int(bar), 0), bars):
            per_bar[later] = text
    sections = ["main"] * bars
    markers = []
    marks = sorted((float(s.time), int(s.section_id)) for s in sequence.section_annotations)
    if marks:
        mark_bars = np.asarray(bar_of_time(np.array([time + 1e-3 for time, _ in marks])))
        for (_, section_id), bar in zip(marks, mark_bars):
            label = MARKERS[section_id] if 0 <= section_id < len(MARKERS) else "A"
            bar = max(int(bar), 0)
            if bar >= bars:
                continue
            markers.append((bar, label))
            for later in range(bar, bars):
                sections[later] = section_of_marker(label)
    return SongPlan(tuple(per_bar), tuple(sections), tuple(markers))


def section_of_marker(label: str) -> str:
    """The section (a name in SECTIONS) a marker starts."""
    return SECTIONS[MARKERS.index(label)] if label in MARKERS[:4] else "main"


def annotate_song(sequence: music_pb2.NoteSequence, song: SongPlan, start_seconds: float,
                  seconds_per_bar: float, end_seconds: float) -> None:
    """Adds the bars of `song` that start before `end_seconds` to `sequence`:
    a CHORD_SYMBOL text annotation at each chord change and a section
    annotation (id: index in MARKERS) at each marker; bar 0 starts at
    `start_seconds` (times in seconds)."""
    chord_type = music_pb2.NoteSequence.TextAnnotation.CHORD_SYMBOL
    labels = dict(song.markers)
    previous = None
    for bar in range(song.bars):
        time = start_seconds + bar * seconds_per_bar
        if time >= end_seconds - 1e-9:
            break
        if bar in labels:
            sequence.section_annotations.add(time=time, section_id=MARKERS.index(labels[bar]))
        if song.chords[bar] != previous:
            sequence.text_annotations.add(time=time, text=song.chords[bar],
                                          annotation_type=chord_type)
        previous = song.chords[bar]


def continued_song(first: SongPlan, longer: SongPlan) -> SongPlan:
    """`first`'s bars, then `longer`'s after them: the plan of a piece that
    grew (`perfrnn.edits`), whose bars made so far keep their chords and
    sections."""
    bars = first.bars
    if longer.bars <= bars:
        return first
    return SongPlan(first.chords + longer.chords[bars:], first.sections + longer.sections[bars:],
                    tuple(mark for mark in first.markers if mark[0] < bars)
                    + tuple(mark for mark in longer.markers if mark[0] >= bars))


def plan_meta_events(plan: SongPlan, ticks_per_bar: int,
                     first_bar: int = 0) -> list[tuple[int, str, str]]:
    """What a MIDI file's conductor track carries of a plan: (tick, meta type,
    text), a ``marker`` at each section start and a ``text`` event with the
    chord symbol at each bar where the chord changes, from bar `first_bar`."""
    events = [(bar * ticks_per_bar, "marker", label) for bar, label in plan.markers]
    previous = None
    for bar, symbol in enumerate(plan.chords[first_bar:], start=first_bar):
        if symbol != previous:
            events.append((bar * ticks_per_bar, "text", symbol))
        previous = symbol
    return sorted(events, key=lambda event: (event[0], event[1] != "marker"))


def song_chords(sequence: music_pb2.NoteSequence) -> tuple[str | None, str | None]:
    """Makes sure a piece's chords are known: those it marks (CHORD_SYMBOL text
    annotations), else one per bar inferred from its pitched notes with
    `note_seq.chord_inference.infer_chords_for_sequence`, added in place.

    Returns:
      ("marked" or "inferred", None), or (None, why no chords could be had):
      the piece is then trained without chords, never on wrong ones.
    """
    from note_seq import chord_inference, sequences_lib

    chord_type = music_pb2.NoteSequence.TextAnnotation.CHORD_SYMBOL
    if any(a.annotation_type == chord_type for a in sequence.text_annotations):
        return "marked", None
    pitched = music_pb2.NoteSequence()
    pitched.CopyFrom(sequence)
    del pitched.notes[:]
    pitched.notes.extend(note for note in sequence.notes if not note.is_drum)
    if not pitched.notes:
        return None, "no pitched notes to infer chords from"
    del pitched.tempos[1:]  # quantising needs one tempo; the first one places the bars
    try:
        quantized = sequences_lib.quantize_note_sequence(pitched, steps_per_quarter=4)
        chord_inference.infer_chords_for_sequence(quantized, chords_per_bar=1)
    except Exception as error:  # noqa: BLE001 - note-seq raises many kinds
        return None, f"chord inference failed ({type(error).__name__})"
    inferred = [a for a in quantized.text_annotations if a.annotation_type == chord_type]
    if not inferred:
        return None, "chord inference found no chords"
    for annotation in inferred:
        sequence.text_annotations.add(time=annotation.time, text=annotation.text,
                                      annotation_type=chord_type)
    return "inferred", None


def progression_in_c(chords: tuple[str, ...]) -> tuple[str, ...]:
    """`chords` moved to C major / A minor: by the move (-5 to 6 semitones)
    under which their roots, then their chord tones, fit C major best, a
    first chord of C or A counting too; the smallest move on a tie."""
    from perfrnn.chords import transpose_chord

    parsed = [parse_chord(symbol) for symbol in chords if symbol != NO_CHORD]
    c_major = {0, 2, 4, 5, 7, 9, 11}

    def fit(shift: int) -> tuple:
        roots = sum((chord.root + shift) % 12 in c_major for chord in parsed)
        tones = sum((pc + shift) % 12 in c_major for chord in parsed
                    for pc in chord.pitch_classes)
        first = bool(parsed) and (parsed[0].root + shift) % 12 in (0, 9)
        return (2 * roots + tones + first, -abs(shift))

    best = max(range(-5, 7), key=fit)
    return tuple(transpose_chord(symbol, best) for symbol in chords)


PERIODS = (1, 2, 4, 8, 12, 16)
"""Lengths in bars a piece's progression may repeat with."""


def piece_progression(plan: SongPlan, agreement: float = 0.75) -> tuple[str, ...] | None:
    """The progression a piece repeats: the chords of its first bars over the
    shortest period (`PERIODS`) that its chords repeat with in at least
    `agreement` of its bars (twice at least), made up to 4 bars; None when
    none does or a bar has no chord."""
    chords = plan.chords
    for period in PERIODS:
        if len(chords) < period + 4:
            break
        same = [chords[bar] == chords[bar + period] for bar in range(len(chords) - period)]
        if np.mean(same) >= agreement:
            progression = chords[:period] * (-(-4 // period))
            return None if NO_CHORD in progression else progression[:max(period, 4)]
    return None


def common_progressions(plans: list[SongPlan], top: int = 12) -> list[list[str]]:
    """The `top` progressions the pieces of `plans` repeat most often
    (`piece_progression`, moved to C major / A minor), most frequent first."""
    from collections import Counter

    counts: Counter = Counter()
    for plan in plans:
        progression = piece_progression(plan)
        if progression is not None:
            counts[progression_in_c(progression)] += 1
    return [list(progression) for progression, _ in counts.most_common(top)]
