"""Reading music lumps from Doom WAD files, and converting DMX MUS lumps to MIDI.

A WAD is a 12-byte header (``IWAD``/``PWAD``, lump count, directory offset, both
little-endian int32) and a directory of 16-byte entries (offset, size, 8-byte
name). Music lumps are named ``D_*`` and hold either a standard MIDI file
(``MThd``) or a DMX MUS score (``MUS\\x1a``), which :func:`mus_to_midi`
converts. Freedoom 0.12 stores all its songs as MIDI already.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import mido

from datasets.errors import DatasetError, SkipPiece
from datasets.midi_tools import DRUM_CHANNEL, midi_bytes

MIDI_MAGIC = b"MThd"
MUS_MAGIC = b"MUS\x1a"
MUS_TICKS_PER_SECOND = 140
"""DMX MUS scores count time in ticks of 1/140 s."""


@dataclass(frozen=True)
class Lump:
    """One lump of a WAD file."""

    name: str
    """Lump name (up to 8 ASCII characters, e.g. ``D_E1M1``)."""
    data: bytes


def read_lumps(path: str | Path) -> list[Lump]:
    """All lumps of a WAD file, in directory order; raises DatasetError if it is not a WAD."""
    data = Path(path).read_bytes()
    if len(data) < 12 or data[:4] not in (b"IWAD", b"PWAD"):
        raise DatasetError(f"{path} is not a WAD file (no IWAD/PWAD header)")
    count, directory = struct.unpack_from("<ii", data, 4)
    if count < 0 or directory < 12 or directory + 16 * count > len(data):
        raise DatasetError(f"{path} has a damaged lump directory")
    lumps = []
    for index in range(count):
        offset, size, raw = struct.unpack_from("<ii8s", data, directory + 16 * index)
        if offset < 0 or size < 0 or offset + size > len(data):
            raise DatasetError(f"{path}: lump {index} points outside the file")
        name = raw.split(b"\0", 1)[0].decode("ascii", "replace")
        lumps.append(Lump(name, data[offset : offset + size]))
    return lumps


def music_lumps(path: str | Path) -> list[Lump]:
    """The lumps of a WAD that hold music (MIDI or MUS), in directory order."""
    return [lump for lump in read_lumps(path) if lump.data[:4] in (MIDI_MAGIC, MUS_MAGIC)]


def lump_midi(lump: Lump) -> bytes:
    """A music lump as standard MIDI file bytes (MUS scores are converted)."""
    if lump.data[:4] == MIDI_MAGIC:
        return lump.data
    if lump.data[:4] == MUS_MAGIC:
        return mus_to_midi(lump.data)
    raise SkipPiece(f"lump {lump.name} is not music")


_MUS_CONTROLLERS = {1: 0, 2: 1, 3: 7, 4: 10, 5: 11, 6: 91, 7: 93, 8: 64, 9: 67}
"""MUS controller number -> MIDI control change number (0 is a program change)."""
_MUS_SYSTEM = {10: 120, 11: 123, 12: 126, 13: 127, 14: 121}


def _mus_channel(channel: int) -> int:
    """MUS channel 15 is percussion (MIDI 10); MUS 9-14 move up one to skip it."""
    if channel == 15:
        return DRUM_CHANNEL
    return channel + 1 if channel >= DRUM_CHANNEL else channel


def mus_to_midi(data: bytes) -> bytes:
    """Converts a DMX MUS score to a type-0 standard MIDI file.

    Time: MUS ticks are 1/140 s; the MIDI file uses 70 ticks per quarter note at
    120 quarter notes per minute, so one MUS tick is one MIDI tick. Note-on
    without a volume byte reuses the channel's last volume (starting at 127), as
    DMX does. Raises :class:`SkipPiece` if the score is truncated or malformed.
    """
    if data[:4] != MUS_MAGIC or len(data) < 16:
        raise SkipPiece("not a MUS score")
    score_length, score_start = struct.unpack_from("<HH", data, 4)
    end = min(len(data), score_start + score_length)
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(120), time=0))
    volumes = [127] * 16
    pending = 0
    position = score_start

    def byte() -> int:
        nonlocal position
        if position >= end:
            raise SkipPiece("MUS score ends in the middle of an event")
        value = data[position]
        position += 1
        return value

    def emit(message: mido.Message) -> None:
        nonlocal pending
        track.append(message.copy(time=pending))
        pending = 0

    while position < end:
        descriptor = byte()
        last = descriptor & 0x80
        event = (descriptor >> 4) & 0x07
        channel = _mus_channel(descriptor & 0x0F)
        if event == 0:
            emit(mido.Message("note_off", channel=channel, note=byte() & 0x7F, velocity=0))
        elif event == 1:
            note = byte()
            if note & 0x80:
                volumes[channel] = byte() & 0x7F
            emit(mido.Message("note_on", channel=channel, note=note & 0x7F,
                              velocity=volumes[channel]))
        elif event == 2:
            bend = byte() * 64  # 0..255 with 128 centred -> 0..16320 with 8192 centred
            emit(mido.Message("pitchwheel", channel=channel, pitch=min(8191, bend - 8192)))
        elif event == 3:
            number = byte()
            if number in _MUS_SYSTEM:
                emit(mido.Message("control_change", channel=channel,
                                  control=_MUS_SYSTEM[number], value=0))
        elif event == 4:
            number, value = byte(), byte() & 0x7F
            if number == 0:
                if channel != DRUM_CHANNEL:
                    emit(mido.Message("program_change", channel=channel, program=value))
            elif number in _MUS_CONTROLLERS:
                emit(mido.Message("control_change", channel=channel,
                                  control=_MUS_CONTROLLERS[number], value=value))
        elif event == 5:
            pass  # end of measure: nothing to write
        elif event == 6:
            break  # end of score
        else:
            raise SkipPiece(f"unknown MUS event type {event}")
        if last:
            delay = 0
            while True:
                value = byte()
                delay = delay * 128 + (value & 0x7F)
                if not value & 0x80:
                    break
            pending += delay
    track.append(mido.MetaMessage("end_of_track", time=pending))
    mid = mido.MidiFile(type=0, ticks_per_beat=MUS_TICKS_PER_SECOND // 2)
    mid.tracks.append(track)
    return midi_bytes(mid)
