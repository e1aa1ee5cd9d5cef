"""Stems: a piece's parts as separate files, for a producer or a video maker
to mix.

`part_files` splits a type 1 MIDI file as `perfrnn.midi_writer.midi_bytes`
writes it (a conductor track, then one track per part) into one file per
part: the conductor track (tempo, time signature, section markers and chord
symbols) and that part's track alone, so each lines up with the others in a
DAW. `stems_zip` packs them, each part's WAV when audio can be made, and the
whole file as `all-parts.mid`.
"""

from __future__ import annotations

import io
import re
import zipfile

import mido

from perfrnn.errors import PerfRNNError

MAX_STEM_PARTS = 16  # a MIDI file has 16 channels
MAX_STEMS_AUDIO_SECONDS = 1200.0  # audio of all parts together (about 200 MB of WAV)
ALL_PARTS_NAME = "all-parts.mid"
# A fixed time stamp, so that the same piece always gives the same zip.
ZIP_TIME = (2020, 1, 1, 0, 0, 0)


def _file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "part"


def part_files(midi: bytes) -> list[tuple[str, bytes]]:
    """(file name such as "01-drums.mid", MIDI bytes) per part of the type 1
    file `midi`, in track order: each holds the conductor track and that part's
    track (480 ticks per quarter kept, so tempo and bar lines stay the same).

    Raises:
      PerfRNNError: the file cannot be read or has more than MAX_STEM_PARTS parts.
    """
    try:
        source = mido.MidiFile(file=io.BytesIO(midi))
    except Exception as error:  # mido raises several kinds for a damaged file
        raise PerfRNNError(f"the MIDI file cannot be read ({error})") from None
    if source.type != 1 or len(source.tracks) < 2:
        conductor, parts = [], list(source.tracks)  # one track: it is the only part
    else:
        conductor, parts = [source.tracks[0]], list(source.tracks[1:])
    if len(parts) > MAX_STEM_PARTS:
        raise PerfRNNError(f"the piece has {len(parts)} parts; stems are made for at most "
                           f"{MAX_STEM_PARTS}")
    files = []
    for number, track in enumerate(parts, start=1):
        single = mido.MidiFile(type=1 if conductor else 0, ticks_per_beat=source.ticks_per_beat)
        single.tracks.extend([*conductor, track])
        buffer = io.BytesIO()
        single.save(file=buffer)
        name = track.name or f"part {number}"
        files.append((f"{number:02d}-{_file_name(name)}.mid", buffer.getvalue()))
    return files


def stems_zip(midi: bytes, audio: bool = True,
              max_audio_seconds: float = MAX_STEMS_AUDIO_SECONDS) -> bytes:
    """The zip of the stems of the MIDI file `midi`: per part `NN-name.mid`
    (`part_files`) and, if `audio` and the parts together last at most
    `max_audio_seconds`, `NN-name.wav` (`perfrnn.audio.render_wav` of that
    part alone); and `all-parts.mid`, the file itself. Without the WAVs, a
    README.txt says why.

    Raises:
      PerfRNNError: as `part_files`.
    """
    from perfrnn.audio import render_wav

    parts = part_files(midi)
    files = [(name, data) for name, data in parts]
    missing = None if audio else "The WAV files are left out: this server makes no audio."
    if audio:
        length = mido.MidiFile(file=io.BytesIO(midi)).length
        if length * len(parts) > max_audio_seconds:
            missing = (f"The WAV files are left out: {len(parts)} parts of {length:.0f} s are "
                       f"more than the {max_audio_seconds:g} s of audio rendered for stems.")
        else:
            try:
                files += [(name[:-4] + ".wav", render_wav(data)) for name, data in parts]
            except PerfRNNError as error:  # no synthesizer or soundfont here
                missing = f"The WAV files are left out: {error}"
    files.append((ALL_PARTS_NAME, midi))
    if missing:
        files.append(("README.txt", (missing + "\n").encode()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in sorted(files, key=lambda file: (file[0].endswith(".wav"), file[0])):
            info = zipfile.ZipInfo(name, ZIP_TIME)
            # WAV hardly compresses; MIDI and text do
            info.compress_type = zipfile.ZIP_STORED if name.endswith(".wav") \
                else zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue()
