"""A piece's notes as JSON, for the browser's piano roll and player.

`notes_json` describes the MIDI file `perfrnn.midi_writer.midi_bytes` writes
for the same arguments: the parts in the file's track order, named and
numbered (program, channel) as the file has them, each note as
[start seconds, end seconds, pitch, velocity] as the file plays (ticks,
quantizing and overlaps decided by `midi_writer.written_parts`, the one
place that decides them); the tempo map, the bar lines, and the song's
sections and chords (`midi_writer.song_marks`, as the conductor track has
them). The shape is the one the API serves (see webapp/web/openapi.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from note_seq.protobuf import music_pb2

from perfrnn.configs import TrackRole
from perfrnn.midi_writer import TICKS_PER_QUARTER, ascii_text, song_marks, written_parts

DECIMALS = 6  # seconds are rounded to the microsecond (a tick is about 1 ms)
MAX_BARS = 10_000  # bar lines listed at most (a 15-minute piece at 300 bpm has 1,125)


def notes_json(sequence: music_pb2.NoteSequence, tracks: Sequence[TrackRole], *,
               bpm: float, native_bpm: float | None = None, quantize: bool = False,
               time_signature: tuple[int, int] = (4, 4)) -> dict:
    """The notes of the MIDI file `midi_bytes(sequence, tracks, bpm=bpm,
    native_bpm=native_bpm, quantize=quantize, time_signature=time_signature)`
    as a JSON-ready dict: "seconds" (the file's length), "bpm", "tempos"
    ([{"time", "qpm"}]), "time_signature", "bars" (start of every bar that
    begins before "seconds"), "sections" ([{"name", "time"}]), "chords"
    ([{"symbol", "time"}]) and "parts" ([{"index", "name", "program",
    "is_drum", "channel", "notes": [[start_s, end_s, pitch, velocity]]}]).
    Times are seconds as the file plays at `bpm` (quarter notes per minute);
    `native_bpm` (default `bpm`) is the tempo the sequence's seconds are at.

    Raises:
      PerfRNNError: As `midi_bytes`, for music a MIDI file cannot hold.
    """
    native_bpm = bpm if native_bpm is None else native_bpm
    written = written_parts(sequence, tracks, native_bpm=native_bpm, quantize=quantize)
    seconds_per_tick = 60.0 / (bpm * TICKS_PER_QUARTER)  # as the file plays

    def at(tick: int) -> float:
        return round(tick * seconds_per_tick, DECIMALS)

    seconds = at(written.end_tick)
    numerator, denominator = time_signature
    seconds_per_bar = numerator * 4 / denominator * 60.0 / bpm
    bars = []
    while len(bars) < MAX_BARS and len(bars) * seconds_per_bar < seconds - 1e-9:
        bars.append(round(len(bars) * seconds_per_bar, DECIMALS))
    sections, chords = [], []
    for tick, message in song_marks(sequence, written.ticks_per_second, written.end_tick):
        if message.type == "marker":
            sections.append({"name": message.text, "time": at(tick)})
        else:
            chords.append({"symbol": message.text, "time": at(tick)})
    parts = [{"index": number, "name": ascii_text(tracks[part.index].name),
              "program": tracks[part.index].program, "is_drum": tracks[part.index].is_drum,
              "channel": part.channel,
              "notes": [[at(on), at(off), pitch, velocity]
                        for on, off, pitch, velocity in part.notes]}
             for number, part in enumerate(written.parts)]
    return {"seconds": seconds, "bpm": float(bpm),
            "tempos": [{"time": 0.0, "qpm": float(bpm)}],
            "time_signature": {"numerator": numerator, "denominator": denominator},
            "bars": bars, "sections": sections, "chords": chords, "parts": parts}


def sequence_from_notes(notes: dict) -> tuple[music_pb2.NoteSequence, tuple[TrackRole, ...]]:
    """The NoteSequence (seconds as the file plays; `instrument` is the part's
    index) and the parts as TrackRoles of a `notes_json` dict: what the piano
    roll is drawn from."""
    sequence = music_pb2.NoteSequence(total_time=float(notes["seconds"]))
    tracks = []
    for number, part in enumerate(notes["parts"]):
        tracks.append(TrackRole(part["name"], int(part["program"]), bool(part["is_drum"])))
        for start, end, pitch, velocity in part["notes"]:
            sequence.notes.add(start_time=start, end_time=end, pitch=pitch, velocity=velocity,
                               instrument=number, is_drum=bool(part["is_drum"]))
    return sequence, tuple(tracks)
