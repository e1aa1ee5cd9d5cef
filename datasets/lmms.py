"""Converting LMMS projects (``.mmp`` XML, ``.mmpz`` zlib-packed XML) to MIDI.

What converts: the note patterns of instrument tracks on the song editor and of
the Beat+Bassline editor (looped wherever the song places a beat clip), with
the project's tempo (``bpm``, quarter notes per minute) and time signature.
What does not: sounds (synth presets and samples become General MIDI
programs guessed from track names), automation, effects, sample tracks.

LMMS counts 192 ticks per 4/4 bar (48 per quarter note); the MIDI files keep
that resolution. Sample tracks whose name or sample file says kick, snare,
hat, clap and so on become drum notes on channel 10.
"""

from __future__ import annotations

import re
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

import mido

from datasets.errors import SkipPiece
from datasets.midi_tools import DRUM_CHANNEL, midi_bytes

TICKS_PER_QUARTER = 48
TICKS_PER_BAR = 192
STEP_NOTE_TICKS = 12
"""Length (ticks, a 16th note) given to LMMS "step" notes, stored with negative length."""

DRUM_WORDS: tuple[tuple[str, int], ...] = (
    (r"open.?h|opened|ohh|hihat_open|hat.?open", 46),
    (r"kick|bass.?drum|bassdrum|kik|(^|[^a-z])bd([^a-z]|$)", 36),
    (r"clap", 39),
    (r"rim", 37),
    (r"snare|snr|(^|[^a-z])sn([^a-z]|$)", 38),
    (r"hi.?hat|hihat|hat|(^|[^a-z])hh([^a-z]|$)", 42),
    (r"crash|cymbal|(^|[^a-z])cym", 49),
    (r"ride", 51),
    (r"tom.?(low|lo)|low.?tom", 45),
    (r"tom.?(hi|high)|hi.?tom", 50),
    (r"tom", 47),
    (r"shaker|maraca", 70),
    (r"tamb", 54),
    (r"cowbell", 56),
    (r"conga", 63),
    (r"bongo", 61),
    (r"click|klick|tick|perc", 75),
)
"""Regular expression on a track's name and sample file -> General MIDI drum note."""

PROGRAM_WORDS: tuple[tuple[str, int], ...] = (
    (r"bass|(^|[^a-z])sub([^a-z]|$)|303|302", 38),
    (r"pad", 89),
    (r"string|orion", 50),
    (r"choir|voice|vox|aah", 54),
    (r"e-?piano|rhodes|epiano", 4),
    (r"piano", 0),
    (r"organ", 18),
    (r"guitar|axe", 29),
    (r"brass|brazz|trumpet|horn", 62),
    (r"bell|chime|twinkle", 14),
    (r"pluck", 84),
    (r"reed", 68),
    (r"square|sid|c64|chip|papu|bitinvader", 80),
    (r"arp|lead|synth|saw", 81),
)
"""Regular expression on a track's name and instrument plugin -> General MIDI program."""
BASS_PROGRAM = 38  # Synth Bass 1, for unnamed tracks that play low
PAD_PROGRAM = 89  # Pad 2 (warm), for unnamed tracks that play chords
LEAD_PROGRAM = 81  # Lead 2 (sawtooth), for other unnamed tracks
SKIPPED_PLUGINS = {"sfxr"}  # sound effects, not notes


@dataclass
class _Part:
    """Notes of one LMMS instrument track, gathered from the song and the beat editor."""

    name: str
    drum_note: int | None
    program: int | None
    """General MIDI program, or None to guess it from the notes (see :func:`_guess_program`)."""
    notes: list[tuple[int, int, int, int]] = field(default_factory=list)
    """(start tick, length in ticks, MIDI pitch, velocity)."""


def read_project(path: str | Path) -> ElementTree.Element:
    """Parses an ``.mmp`` or ``.mmpz`` project; raises :class:`SkipPiece` if it is unreadable."""
    data = Path(path).read_bytes()
    if not data.lstrip().startswith(b"<"):
        try:
            data = zlib.decompress(data[4:])  # Qt's qCompress: 4-byte length, then zlib
        except zlib.error as exc:
            raise SkipPiece(f"not an LMMS project ({exc})") from exc
    try:
        return ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise SkipPiece(f"LMMS project XML does not parse ({exc})") from exc


def _number(element: ElementTree.Element | None, name: str, default: float) -> float:
    """A numeric attribute, or the ``value`` of a child element of that name (newer LMMS)."""
    if element is None:
        return default
    raw = element.get(name)
    if raw is None:
        child = element.find(name)
        raw = child.get("value") if child is not None else None
    try:
        return float(raw) if raw is not None else default
    except ValueError:
        return default


def _classify(track: ElementTree.Element) -> tuple[int | None, int | None] | None:
    """(drum note, program) for an instrument track (either may be None), or None to skip it."""
    instrument_track = track.find("instrumenttrack")
    instrument = instrument_track.find("instrument") if instrument_track is not None else None
    plugin = instrument.get("name", "") if instrument is not None else ""
    if plugin in SKIPPED_PLUGINS:
        return None
    sample = ""
    if instrument is not None:
        processor = instrument.find("audiofileprocessor")
        if processor is not None:
            sample = Path(processor.get("src", "")).name
    label = f"{track.get('name', '')} {sample}".lower()
    if plugin in ("audiofileprocessor", "kicker") or sample:
        for pattern, note in DRUM_WORDS:
            if re.search(pattern, label):
                return note, 0
    label = f"{label} {plugin}".lower()
    for pattern, program in PROGRAM_WORDS:
        if re.search(pattern, label):
            return None, program
    return None, None


def _guess_program(notes: list[tuple[int, int, int, int]]) -> int:
    """Program for a track whose name says nothing: bass if it plays low, pad if chords."""
    pitches = sorted(pitch for _, _, pitch, _ in notes)
    if pitches[len(pitches) // 2] < 48:
        return BASS_PROGRAM
    starts: dict[int, int] = defaultdict(int)
    for start, _, _, _ in notes:
        starts[start] += 1
    if sum(starts.values()) >= 2.5 * len(starts):
        return PAD_PROGRAM
    return LEAD_PROGRAM


def _pitch_offset(track: ElementTree.Element, master_pitch: int) -> int:
    """Semitones from LMMS key numbers to MIDI notes (LMMS key 57 is A4 = MIDI 69)."""
    instrument_track = track.find("instrumenttrack")
    base = int(_number(instrument_track, "basenote", 57))
    offset = 12 + (57 - base)
    if instrument_track is not None and instrument_track.get("usemasterpitch", "1") == "1":
        offset += master_pitch
    return offset


def _pattern_notes(pattern: ElementTree.Element, offset: int) -> list[tuple[int, int, int, int]]:
    """(position in pattern, length, pitch, velocity) of a pattern's notes, in ticks."""
    notes = []
    for note in pattern.findall("note"):
        length = int(_number(note, "len", STEP_NOTE_TICKS))
        if length <= 0:
            length = STEP_NOTE_TICKS
        pitch = int(_number(note, "key", 57)) + offset
        velocity = int(round(_number(note, "vol", 100) * 0.9))
        if 0 <= pitch <= 127:
            notes.append((int(_number(note, "pos", 0)), length, pitch, max(1, min(127, velocity))))
    return notes


def project_to_midi(root: ElementTree.Element, title: str = "") -> bytes:
    """Converts a parsed LMMS project to standard MIDI file bytes (type 1).

    Raises :class:`SkipPiece` when nothing in it converts to notes.
    """
    head = root.find("head")
    bpm = _number(head, "bpm", 140.0)
    numerator = int(_number(head, "timesig_numerator", 4)) or 4
    denominator = int(_number(head, "timesig_denominator", 4)) or 4
    master_pitch = int(_number(head, "masterpitch", 0))
    song_tracks = root.findall("./song/trackcontainer/track")
    parts: dict[int, _Part] = {}

    def part_for(track: ElementTree.Element) -> _Part | None:
        key = id(track)
        if key not in parts:
            kind = _classify(track)
            if kind is None:
                return None
            parts[key] = _Part(track.get("name", "track"), kind[0], kind[1])
        return parts[key]

    # Song-editor instrument tracks: notes at pattern position + note position.
    for track in song_tracks:
        if track.get("type") != "0" or track.get("muted") == "1":
            continue
        part = part_for(track)
        if part is None:
            continue
        offset = _pitch_offset(track, master_pitch)
        for pattern in track.findall("pattern"):
            if pattern.get("muted") == "1":
                continue
            start = int(_number(pattern, "pos", 0))
            part.notes += [(start + p, n, k, v) for p, n, k, v in _pattern_notes(pattern, offset)]

    # Beat+Bassline: the i-th beat track's clips loop pattern i (at tick 192*i) of every
    # instrument in the shared beat container, which LMMS saves in the first beat track.
    beat_tracks = [t for t in song_tracks if t.get("type") == "1"]
    container = beat_tracks[0].find("bbtrack/trackcontainer") if beat_tracks else None
    beat_instruments = container.findall("track") if container is not None else []
    for index, beat_track in enumerate(beat_tracks):
        if beat_track.get("muted") == "1":
            continue
        patterns: list[tuple[ElementTree.Element, ElementTree.Element]] = []
        length = TICKS_PER_BAR
        for instrument in beat_instruments:
            if instrument.get("type") != "0" or instrument.get("muted") == "1":
                continue
            for pattern in instrument.findall("pattern"):
                if int(_number(pattern, "pos", 0)) // TICKS_PER_BAR == index:
                    patterns.append((instrument, pattern))
                    bars = -(-int(_number(pattern, "len", TICKS_PER_BAR)) // TICKS_PER_BAR)
                    length = max(length, bars * TICKS_PER_BAR)
        for clip in beat_track.findall("bbtco"):
            if clip.get("muted") == "1":
                continue
            clip_start = int(_number(clip, "pos", 0))
            clip_length = int(_number(clip, "len", length))
            for instrument, pattern in patterns:
                part = part_for(instrument)
                if part is None:
                    continue
                notes = _pattern_notes(pattern, _pitch_offset(instrument, master_pitch))
                for loop_start in range(0, clip_length, length):
                    for position, duration, pitch, velocity in notes:
                        if position < length and loop_start + position < clip_length:
                            part.notes.append(
                                (clip_start + loop_start + position, duration, pitch, velocity)
                            )
    return _write_parts([p for p in parts.values() if p.notes], bpm, numerator, denominator, title)


def _write_parts(
    parts: list[_Part], bpm: float, numerator: int, denominator: int, title: str
) -> bytes:
    """Writes the parts as a type-1 MIDI file: a tempo track, then one track per part."""
    if not parts:
        raise SkipPiece("no notes in any instrument track")
    mid = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_QUARTER)
    meta = mido.MidiTrack()
    meta.append(mido.MetaMessage("track_name", name=title[:60] or "LMMS project", time=0))
    meta.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0))
    if denominator in (1, 2, 4, 8, 16, 32):
        meta.append(mido.MetaMessage("time_signature", numerator=numerator,
                                     denominator=denominator, time=0))
    meta.append(mido.MetaMessage("end_of_track", time=0))
    mid.tracks.append(meta)
    pitched_channels = [c for c in range(16) if c != DRUM_CHANNEL]
    # Drum parts share channel 10; pitched parts take the other channels in turn.
    by_channel: dict[int, list[_Part]] = defaultdict(list)
    for index, part in enumerate(p for p in parts if p.drum_note is None):
        by_channel[pitched_channels[index % len(pitched_channels)]].append(part)
    for part in parts:
        if part.drum_note is not None:
            by_channel[DRUM_CHANNEL].append(part)
    for channel, channel_parts in sorted(by_channel.items()):
        for part in channel_parts:
            events: list[tuple[int, int, mido.Message]] = []
            for start, length, pitch, velocity in part.notes:
                note = part.drum_note if part.drum_note is not None else pitch
                events.append((start, 1, mido.Message("note_on", channel=channel, note=note,
                                                      velocity=velocity)))
                events.append((start + length, 0, mido.Message("note_off", channel=channel,
                                                               note=note, velocity=0)))
            events.sort(key=lambda item: (item[0], item[1]))
            track = mido.MidiTrack()
            track.append(mido.MetaMessage("track_name", name=part.name[:60], time=0))
            if channel != DRUM_CHANNEL:
                program = part.program if part.program is not None else _guess_program(part.notes)
                track.append(mido.Message("program_change", channel=channel,
                                          program=program, time=0))
            now = 0
            for tick, _, message in events:
                track.append(message.copy(time=tick - now))
                now = tick
            track.append(mido.MetaMessage("end_of_track", time=0))
            mid.tracks.append(track)
    return midi_bytes(mid)


def convert_project(path: str | Path) -> bytes:
    """Reads an LMMS project file and returns it as MIDI bytes (see :func:`project_to_midi`)."""
    return project_to_midi(read_project(path), title=Path(path).stem)
