"""Small MIDI helpers on top of mido: filter channels, set programs, summarise a file.

Times are in seconds, tempos in beats (quarter notes) per minute, channels are
0-based as in mido (the General MIDI drum channel "10" is ``DRUM_CHANNEL = 9``).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import mido

from datasets.errors import SkipPiece

DRUM_CHANNEL = 9
"""0-based MIDI channel of the General MIDI drum kit (channel 10 counted from 1)."""


@dataclass(frozen=True)
class MidiSummary:
    """What the manifest records about one written MIDI file."""

    tempo_bpm: float
    """First tempo of the file in quarter notes per minute (120 when the file sets none)."""
    seconds: float
    """Length in seconds (end of the last event)."""
    notes: int
    """Number of notes (pretty_midi's count) on all channels."""
    drum_notes: int
    """Number of those notes on the drum channel."""
    programs: tuple[int, ...]
    """Sorted General MIDI programs (0-127) of the pitched instruments that play notes."""


def read_midi(data: bytes) -> mido.MidiFile:
    """Parses MIDI bytes with mido; raises :class:`SkipPiece` when they do not parse."""
    try:
        return mido.MidiFile(file=io.BytesIO(data), clip=True)
    except (OSError, EOFError, ValueError, KeyError, IndexError) as exc:
        raise SkipPiece(f"not a readable MIDI file ({exc})") from exc


def midi_bytes(mid: mido.MidiFile) -> bytes:
    """Serialises a mido file to standard MIDI file bytes."""
    buffer = io.BytesIO()
    mid.save(file=buffer)
    return buffer.getvalue()


def filter_channels(mid: mido.MidiFile, keep: Callable[[int], bool]) -> mido.MidiFile:
    """Copy of ``mid`` with only the channel messages whose channel ``keep`` accepts.

    Meta messages (tempo, time signature, names) are kept; delta times are
    preserved by folding the time of dropped messages into the next kept one.
    Tracks left with no channel messages are dropped, except the first (it
    holds the tempo map in a type-1 file).
    """
    out = mido.MidiFile(type=mid.type, ticks_per_beat=mid.ticks_per_beat)
    for index, track in enumerate(mid.tracks):
        new = mido.MidiTrack()
        carry = 0
        has_notes = False
        for msg in track:
            if hasattr(msg, "channel") and not keep(msg.channel):
                carry += msg.time
                continue
            new.append(msg.copy(time=msg.time + carry))
            carry = 0
            has_notes = has_notes or msg.type == "note_on"
        if has_notes or index == 0 or mid.type != 1:
            out.tracks.append(new)
    return out


def set_programs(mid: mido.MidiFile, program: int) -> mido.MidiFile:
    """Sets every pitched channel's program to ``program`` (0-127); adds one at the start.

    Used for the piano corpus, where every part is played on the piano (program 0).
    """
    for track in mid.tracks:
        for index, msg in enumerate(track):
            if msg.type == "program_change" and msg.channel != DRUM_CHANNEL:
                track[index] = msg.copy(program=program)
    return mid


def summarise(data: bytes) -> MidiSummary:
    """Reads MIDI bytes with both mido and pretty_midi and returns what the manifest needs.

    Raises :class:`SkipPiece` if either library cannot read the file or it has no notes.
    """
    import pretty_midi

    mid = read_midi(data)
    tempo_bpm = 120.0
    for track in mid.tracks:
        found = next((m for m in track if m.type == "set_tempo"), None)
        if found is not None:
            tempo_bpm = round(mido.tempo2bpm(found.tempo), 3)
            break
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            pm = pretty_midi.PrettyMIDI(io.BytesIO(data))
        except Exception as exc:  # pretty_midi raises many kinds
            raise SkipPiece(f"pretty_midi cannot read it ({exc})") from exc
    notes = sum(len(inst.notes) for inst in pm.instruments)
    if notes == 0:
        raise SkipPiece("no notes")
    drum_notes = sum(len(inst.notes) for inst in pm.instruments if inst.is_drum)
    programs = tuple(
        sorted({int(inst.program) for inst in pm.instruments if not inst.is_drum and inst.notes})
    )
    return MidiSummary(
        tempo_bpm=tempo_bpm,
        seconds=round(float(pm.get_end_time()), 3),
        notes=notes,
        drum_notes=drum_notes,
        programs=programs,
    )


_TIMING_META = ("set_tempo", "time_signature", "key_signature")


def move_timing_to_first_track(mid: mido.MidiFile) -> mido.MidiFile:
    """Moves tempo, time and key signature events of a type-1 file into its first track.

    The standard (and pretty_midi, and DAWs) expect them there; some game and
    tracker MIDI files scatter them over the other tracks. Event times are kept.
    """
    if mid.type != 1 or len(mid.tracks) < 2:
        return mid
    moved: list[tuple[int, mido.MetaMessage]] = []
    for index in range(1, len(mid.tracks)):
        track, kept, now, carry = mid.tracks[index], mido.MidiTrack(), 0, 0
        for msg in track:
            now += msg.time
            if msg.is_meta and msg.type in _TIMING_META:
                moved.append((now, msg))
                carry += msg.time
                continue
            kept.append(msg.copy(time=msg.time + carry))
            carry = 0
        mid.tracks[index] = kept
    if not moved:
        return mid
    events: list[tuple[int, int, mido.Message | mido.MetaMessage]] = []
    now = 0
    for msg in mid.tracks[0]:
        now += msg.time
        if msg.type != "end_of_track":
            events.append((now, 0, msg))
    end = now
    seen = {(t, m.type, str(m.dict())) for t, _, m in events}
    for when, msg in moved:
        key = (when, msg.type, str(msg.copy(time=0).dict()))
        if key not in seen:
            seen.add(key)
            events.append((when, 1, msg))
    events.sort(key=lambda item: (item[0], item[1]))
    first, now = mido.MidiTrack(), 0
    for when, _, msg in events:
        first.append(msg.copy(time=when - now))
        now = when
    first.append(mido.MetaMessage("end_of_track", time=max(0, end - now)))
    mid.tracks[0] = first
    return mid


def seconds_to_tick(mid: mido.MidiFile, seconds: float) -> int:
    """The tick at ``seconds`` from the start, following the tempo map of the first track."""
    tempo, tick, elapsed = 500000, 0, 0.0
    changes = []
    now = 0
    for msg in mid.tracks[0] if mid.tracks else []:
        now += msg.time
        if msg.type == "set_tempo":
            changes.append((now, msg.tempo))
    for when, new_tempo in changes:
        span = mido.tick2second(when - tick, mid.ticks_per_beat, tempo)
        if elapsed + span >= seconds:
            break
        elapsed, tick, tempo = elapsed + span, when, new_tempo
    return tick + int(mido.second2tick(seconds - elapsed, mid.ticks_per_beat, tempo))


def truncate(mid: mido.MidiFile, max_seconds: float) -> mido.MidiFile:
    """Cuts a file after ``max_seconds``; notes still sounding then are ended there.

    Used for game music that loops the same few minutes for half an hour.
    """
    limit = seconds_to_tick(mid, max_seconds)
    for index, track in enumerate(mid.tracks):
        kept, now, last, sounding = mido.MidiTrack(), 0, 0, set()
        for msg in track:
            now += msg.time
            if msg.type == "end_of_track":
                continue
            if now > limit:
                break
            kept.append(msg.copy(time=now - last))
            last = now
            if msg.type == "note_on" and msg.velocity > 0:
                sounding.add((msg.channel, msg.note))
            elif msg.type in ("note_off", "note_on"):
                sounding.discard((msg.channel, msg.note))
        for channel, note in sorted(sounding):
            kept.append(mido.Message("note_off", channel=channel, note=note, velocity=0,
                                     time=limit - last))
            last = limit
        kept.append(mido.MetaMessage("end_of_track", time=0))
        mid.tracks[index] = kept
    return mid


def rescale_ticks(mid: mido.MidiFile, ticks_per_beat: int) -> mido.MidiFile:
    """Copy of ``mid`` at another resolution (ticks per quarter note); times are kept.

    music21 writes 10,080 ticks per quarter note, which puts long movements past
    the 10-million-tick limit pretty_midi accepts; 480 is what DAWs use.
    """
    if mid.ticks_per_beat == ticks_per_beat:
        return mid
    scale = ticks_per_beat / mid.ticks_per_beat
    out = mido.MidiFile(type=mid.type, ticks_per_beat=ticks_per_beat)
    for track in mid.tracks:
        new, now, last = mido.MidiTrack(), 0, 0
        for msg in track:
            now += msg.time
            when = round(now * scale)
            new.append(msg.copy(time=when - last))
            last = when
        out.tracks.append(new)
    return out
