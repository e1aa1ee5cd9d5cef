"""The DAW-ready Standard MIDI File writer.

Turns a note-seq `NoteSequence` into a type 1 MIDI file with 480 ticks per
quarter note: a conductor track (title, tempo, time signature, and the song's
plan: a marker at each section start, each chord symbol as a text event) and
one named track per part, each with its General MIDI program change at tick 0. Drum parts go on
MIDI channel 10 (channel 9 counted from 0) and nothing else does.

The sequence's times are seconds at the style's native tempo, and each note's
`instrument` field indexes the list of `TrackRole`s; the role, not the note's
`program` or `is_drum` fields, decides the program and the channel. A note at t seconds lands
at tick round(t * native_bpm / 60 * 480) whatever the requested tempo; asking
for another `bpm` only changes the tempo meta event, which stretches the
performance in time by native_bpm / bpm.

The output is made unambiguous so that every parser (mido, pretty_midi,
music21) and every DAW reads the same notes: velocities are clamped to 1..127,
every note lasts at least one tick, overlapping notes of the same pitch on the
same channel are cut where the later one starts (notes starting on the same
tick are merged into one), note-offs come before note-ons at the same tick and
every note is ended. Track names are written as ASCII (accents dropped), the
only text that mido (Latin-1) and music21 (UTF-8) decode alike. Events are
sorted by fully specified keys, so the same input always gives the same bytes.
"""

from __future__ import annotations

import io
import math
import numbers
import os
import pathlib
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import mido
from note_seq.protobuf import music_pb2

from perfrnn.configs import DRUM_CHANNEL, TrackRole
from perfrnn.errors import PerfRNNError
from perfrnn.song_form import MARKERS

TICKS_PER_QUARTER = 480
QUANTIZE_TICKS = TICKS_PER_QUARTER // 4  # a 1/16 note
MIN_QUANTIZED_TICKS = TICKS_PER_QUARTER // 8  # a 1/32 note
MAX_TICK = 0x0FFFFFFF  # the largest delta time a MIDI file can hold
NOTE_OFF_VELOCITY = 64  # the MIDI default release velocity
PITCHED_CHANNELS = tuple(c for c in range(16) if c != DRUM_CHANNEL)


def _round(x: float) -> int:
    """Round half up, so that ticks never depend on banker's rounding."""
    return math.floor(x + 0.5)


def ascii_text(name: str) -> str:
    """A name as ASCII, the only text parsers agree on (mido reads Latin-1, music21 UTF-8)."""
    letters = unicodedata.normalize("NFKD", str(name))
    letters = "".join(c for c in letters if not unicodedata.combining(c))
    return letters.encode("ascii", "replace").decode("ascii")


def _check_bpm(value: float, what: str) -> float:
    if not (isinstance(value, numbers.Real) and math.isfinite(value) and value > 0):
        raise PerfRNNError(f"{what} must be a positive number of beats per minute, got {value!r}.")
    tempo = _round(60_000_000 / value)
    if not 1 <= tempo <= 0xFFFFFF:
        raise PerfRNNError(f"{what}={value!r} is outside what a MIDI file can store "
                           "(about 3.6 to 60,000,000 beats per minute).")
    return float(value)


def _note_ticks(note: music_pb2.NoteSequence.Note, ticks_per_second: float,
                quantize: bool) -> tuple[int, int]:
    """The (on, off) ticks of one note, quantized if asked, at least one tick long."""
    start, end = note.start_time, note.end_time
    if not (math.isfinite(start) and math.isfinite(end)) or start < 0:
        raise PerfRNNError(f"Note {note.pitch} has bad times {start!r}..{end!r}; times must "
                           "be finite seconds from 0.")
    on = _round(start * ticks_per_second)
    off = max(on, _round(end * ticks_per_second))
    if quantize:
        snapped = _round(on / QUANTIZE_TICKS) * QUANTIZE_TICKS
        on, off = snapped, max(off - on + snapped, snapped + MIN_QUANTIZED_TICKS)
    off = max(off, on + 1)
    if off > MAX_TICK:
        raise PerfRNNError(f"Note {note.pitch} ends at {end:.1f} s, past the end of what a "
                           "MIDI file can store.")
    return on, off


def _remove_overlaps(notes: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Make notes of one pitch on one channel follow each other without overlapping.

    Takes and returns (on_tick, off_tick, pitch, velocity) tuples sorted by onset.
    Notes starting on the same tick merge into one (the longer end, the louder
    velocity); a note still sounding when the next starts is cut at that onset.
    """
    kept: list[list[int]] = []
    for on, off, pitch, velocity in sorted(notes):
        if kept and kept[-1][0] == on:
            kept[-1][1] = max(kept[-1][1], off)
            kept[-1][3] = max(kept[-1][3], velocity)
            continue
        if kept and kept[-1][1] > on:
            kept[-1][1] = on  # on > previous onset, so the cut note keeps >= 1 tick
        kept.append([on, off, pitch, velocity])
    return [(on, off, pitch, velocity) for on, off, pitch, velocity in kept]


def assign_channels(roles: Sequence[TrackRole], used: Sequence[int]) -> dict[int, int]:
    """MIDI channels for the used role indices: drums on 9, others on 0..15 skipping 9."""
    channels: dict[int, int] = {}
    pitched = iter(PITCHED_CHANNELS)
    for index in used:
        if roles[index].is_drum:
            channels[index] = DRUM_CHANNEL
        else:
            channel = next(pitched, None)
            if channel is None:
                raise PerfRNNError(f"A MIDI file has only {len(PITCHED_CHANNELS)} channels for "
                                   "pitched parts; this sequence uses more. Use fewer parts.")
            channels[index] = channel
    return channels


def _check_parts(tracks: Sequence[TrackRole], numerator: int, denominator: int) -> None:
    """Raises PerfRNNError for a time signature or part list a file cannot hold."""
    if not (1 <= numerator <= 32 and denominator in (1, 2, 4, 8, 16, 32)):
        raise PerfRNNError(f"time signature {numerator}/{denominator} cannot be written; "
                           "use a numerator 1-32 over 1, 2, 4, 8, 16 or 32")
    if not tracks:
        raise PerfRNNError("At least one track role is needed to write a MIDI file.")
    for role in tracks:
        if not 0 <= role.program <= 127:
            raise PerfRNNError(f"Track {role.name!r} has program {role.program}; "
                               "General MIDI programs run from 0 to 127.")


def _notes_by_part(notes: list[tuple[int, int, int, int, int]], channels: dict[int, int],
                   used: list[int]) -> dict[int, list[tuple[int, int, int, int]]]:
    """(on, off, pitch, velocity) per part index of `used`, from (part, on, off,
    pitch, velocity) in ticks, without overlaps. Overlaps are removed per
    channel and pitch, so several drum parts sharing channel 10 cannot
    overlap each other either; a note struck by several parts at once goes
    to the lowest."""
    by_key: dict[tuple[int, int], list[tuple[int, int, int, int]]] = {}
    owner: dict[tuple[int, int, int], int] = {}  # (channel, pitch, on) -> lowest role index
    for index, on, off, pitch, velocity in notes:
        key = (channels[index], pitch)
        by_key.setdefault(key, []).append((on, off, pitch, velocity))
        owner[key + (on,)] = min(owner.get(key + (on,), index), index)
    clean: dict[int, list[tuple[int, int, int, int]]] = {index: [] for index in used}
    for key, group in by_key.items():
        for note in _remove_overlaps(group):
            clean[owner[key + (note[0],)]].append(note)
    return clean


@dataclass(frozen=True)
class WrittenPart:
    """One part's track as `midi_bytes` writes it.

    Attributes:
      index: The part's index in the track roles (`note.instrument`).
      channel: Its MIDI channel, 0-15 (9: drums).
      notes: (on tick, off tick, pitch, velocity) in onset order, overlaps
        removed, each at least one tick long.
    """

    index: int
    channel: int
    notes: list[tuple[int, int, int, int]]


@dataclass(frozen=True)
class WrittenParts:
    """What a sequence becomes in a MIDI file: its parts in track order (after
    the conductor track), the last tick, and ticks per second of the
    sequence's time (`native_bpm / 60 * TICKS_PER_QUARTER`)."""

    parts: list[WrittenPart]
    end_tick: int
    ticks_per_second: float


def written_parts(sequence: music_pb2.NoteSequence, tracks: Sequence[TrackRole], *,
                  native_bpm: float = 120.0, quantize: bool = False) -> WrittenParts:
    """The notes `midi_bytes` writes for `sequence`, part by part, in ticks
    (the one place that decides the file's notes: ticks, quantizing, channels
    and overlaps); the arguments are those of `midi_bytes`.

    Raises:
      PerfRNNError: As `midi_bytes`.
    """
    native_bpm = _check_bpm(native_bpm, "native_bpm")
    ticks_per_second = native_bpm / 60 * TICKS_PER_QUARTER
    # Every track ends at the sequence's length (or its last event, if later),
    # so a DAW shows the piece as long as was asked for, final silence included.
    total = sequence.total_time if math.isfinite(sequence.total_time) else 0.0
    end_tick = min(_round(max(total, 0.0) * ticks_per_second), MAX_TICK)
    notes = []  # (role index, on tick, off tick, pitch, velocity)
    for note in sequence.notes:
        if not 0 <= note.instrument < len(tracks):
            raise PerfRNNError(f"A note has instrument {note.instrument} but there are only "
                               f"{len(tracks)} track roles.")
        if not 0 <= note.pitch <= 127:
            raise PerfRNNError(f"Pitch {note.pitch} is outside MIDI's range 0..127.")
        on, off = _note_ticks(note, ticks_per_second, quantize)
        if on < end_tick:  # quantizing keeps lengths: a late onset must not end past the end
            off = max(min(off, end_tick), on + 1)
        velocity = min(max(note.velocity, 1), 127)
        notes.append((note.instrument, on, off, note.pitch, velocity))
    used = sorted({index for index, *_ in notes}) or list(range(len(tracks)))
    channels = assign_channels(tracks, used)
    clean = _notes_by_part(notes, channels, used)
    return WrittenParts([WrittenPart(index, channels[index], clean[index]) for index in used],
                        end_tick, ticks_per_second)


def midi_bytes(sequence: music_pb2.NoteSequence, tracks: Sequence[TrackRole], *,
               bpm: float | None = None, native_bpm: float = 120.0,
               quantize: bool = False, title: str | None = None,
               time_signature: tuple[int, int] = (4, 4)) -> bytes:
    """The sequence as the bytes of a type 1 Standard MIDI File, 480 ticks per quarter.

    Args:
      sequence: Notes with times in seconds at `native_bpm`; `note.instrument`
        indexes `tracks`. Pitches 0..127; velocities are clamped to 1..127.
      tracks: The parts, one `TrackRole` per instrument index.
      bpm: The tempo to write, in quarter notes per minute; the performance is
        stretched by native_bpm / bpm. None keeps the native tempo.
      native_bpm: The tempo, in quarter notes per minute, the sequence's
        seconds were played at.
      quantize: Snap onsets to the nearest 1/16 note (keeping each note's
        duration, at least a 1/32 note).
      title: The conductor track's name; "perfrnn" if None.
      time_signature: (numerator, denominator) for the conductor track.

    Raises:
      PerfRNNError: For an empty track list, a bad program, tempo, pitch or time,
        a note whose instrument has no track, or more than 15 pitched parts.
    """
    native_bpm = _check_bpm(native_bpm, "native_bpm")
    bpm = native_bpm if bpm is None else _check_bpm(bpm, "bpm")
    numerator, denominator = time_signature
    _check_parts(tracks, numerator, denominator)
    written = written_parts(sequence, tracks, native_bpm=native_bpm, quantize=quantize)
    end_tick = written.end_tick

    midi = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_QUARTER)
    midi.tracks.append(_track(end_tick, [
        (0, mido.MetaMessage("track_name", name=ascii_text(title or "perfrnn"))),
        (0, mido.MetaMessage("set_tempo", tempo=_round(60_000_000 / bpm))),
        (0, mido.MetaMessage("time_signature", numerator=numerator, denominator=denominator,
                             clocks_per_click=24, notated_32nd_notes_per_beat=8)),
        *song_marks(sequence, written.ticks_per_second, end_tick),
    ]))
    for part in written.parts:
        role, channel = tracks[part.index], part.channel
        events = []  # (tick, 0 = off / 1 = on, pitch, velocity)
        for on, off, pitch, velocity in part.notes:
            events += [(off, 0, pitch, NOTE_OFF_VELOCITY), (on, 1, pitch, velocity)]
        messages = [
            (0, mido.MetaMessage("track_name", name=ascii_text(role.name))),
            (0, mido.Message("program_change", channel=channel, program=role.program)),
        ]
        for tick, kind, pitch, velocity in sorted(events):
            # (clean notes: every value is in range, so mido's checks are skipped)
            messages.append((tick, mido.Message("note_on" if kind else "note_off",
                                                channel=channel, note=int(pitch),
                                                velocity=int(velocity), skip_checks=True)))
        midi.tracks.append(_track(end_tick, messages))

    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


def song_marks(sequence: music_pb2.NoteSequence, ticks_per_second: float,
                end_tick: int) -> list[tuple[int, mido.MetaMessage]]:
    """The conductor track's song plan: a marker at each section start (which
    Logic, GarageBand and Ableton show on their marker track) and the chord
    symbol as a text event at each chord change, from the sequence's section
    and CHORD_SYMBOL annotations."""
    marks = []
    for section in sequence.section_annotations:
        tick = _round(section.time * ticks_per_second)
        if 0 <= section.section_id < len(MARKERS) and 0 <= tick < end_tick:
            marks.append((tick, mido.MetaMessage("marker", text=MARKERS[section.section_id])))
    chord_type = music_pb2.NoteSequence.TextAnnotation.CHORD_SYMBOL
    for annotation in sequence.text_annotations:
        tick = _round(annotation.time * ticks_per_second)
        if annotation.annotation_type == chord_type and 0 <= tick < end_tick:
            marks.append((tick, mido.MetaMessage("text", text=ascii_text(annotation.text)[:32])))
    return sorted(marks, key=lambda mark: (mark[0], mark[1].type != "marker"))


def _track(end_tick: int,
           timed: list[tuple[int, mido.Message | mido.MetaMessage]]) -> mido.MidiTrack:
    """A track from (absolute tick, message) pairs already in order.

    The end_of_track event goes at end_tick, or right after the last message if later.
    """
    track = mido.MidiTrack()
    now = 0
    for tick, message in timed:
        message.time = tick - now  # each message is made for this track alone
        track.append(message)
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=max(end_tick - now, 0)))
    return track


def write_midi(sequence: music_pb2.NoteSequence, path: str | os.PathLike,
               tracks: Sequence[TrackRole], **kwargs) -> pathlib.Path:
    """Write `midi_bytes(sequence, tracks, **kwargs)` to `path` and return the path.

    Parent folders are created; the keyword arguments are those of `midi_bytes`.
    """
    path = pathlib.Path(path)
    data = midi_bytes(sequence, tracks, **kwargs)  # before touching the disk: errors leave no file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
