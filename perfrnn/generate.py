"""From a bundle and a request to MIDI files: what the CLI and the worker call."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from note_seq.protobuf import music_pb2

from perfrnn.bundle import Bundle
from perfrnn.configs import TrackRole
from perfrnn.errors import PerfRNNError
from perfrnn.midi_writer import midi_bytes
from perfrnn.multitrack import ROLE_DRUMS, ROLE_HARMONY
from perfrnn.options import GenerationOptions, ProgressCallback
from perfrnn.sampler import Generation, Sampler


def main_track(tracks: tuple[TrackRole, ...]) -> int:
    """The part a "type" sets when it names none: the harmony part of a band
    (drums, bass, harmony, lead), else the first pitched part, else the kit."""
    if len(tracks) > ROLE_HARMONY and tracks[ROLE_DRUMS].is_drum:
        return ROLE_HARMONY
    return next((i for i, track in enumerate(tracks) if not track.is_drum), 0)


def tracks_for_program(tracks: tuple[TrackRole, ...], program: int | None,
                       track: str | None = None) -> tuple[TrackRole, ...]:
    """The style's tracks with one part set to GM `program`.

    This is how a "type" choice (grand piano, harpsichord, TR-808 kit, a
    distorted guitar for rock, a saw lead for electronic) reaches the MIDI
    file: as that part's program change. `track` names the part (default
    `main_track`).
    """
    if program is None:
        return tracks
    if not 0 <= program <= 127:
        raise PerfRNNError(f"program must be a General MIDI number from 0 to 127, got {program}")
    if track is None:
        index = main_track(tracks)
    else:
        names = [role.name for role in tracks]
        if track not in names:
            raise PerfRNNError(f"this style has no part {track!r}; its parts are: "
                               f"{', '.join(names)}")
        index = names.index(track)
    changed = list(tracks)
    changed[index] = dataclasses.replace(tracks[index], program=program)
    return tuple(changed)


@dataclass(frozen=True)
class MidiOptions:
    """How generated performances are written.

    Attributes:
      bpm: Tempo of the file in beats per minute; None for the style's own.
      quantize: Snap note onsets to a 1/16 grid.
      program: GM program for one part (the "type"); None for the default.
      track: Name of the part `program` applies to; None for `main_track`.
    """

    bpm: float | None = None
    quantize: bool = False
    program: int | None = None
    track: str | None = None


def midi_file_name(style: str, seconds: float, seed: int, variation: int, variations: int) -> str:
    """A file name such as `rock-30s-seed1234.mid` (`-v2` added per variation)."""
    safe_style = re.sub(r"[^A-Za-z0-9_-]+", "_", style).strip("_") or "style"
    suffix = f"-v{variation + 1}" if variations > 1 else ""
    return f"{safe_style}-{seconds:g}s-seed{seed}{suffix}.mid"


def generate_midi(
    sampler: Sampler,
    options: GenerationOptions,
    midi: MidiOptions = MidiOptions(),
    primer: music_pb2.NoteSequence | None = None,
    progress: ProgressCallback | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> tuple[Generation, list[tuple[str, bytes]]]:
    """Generates music and renders each variation as (file name, MIDI bytes).

    `cancelled` is polled between sampling blocks (see `Sampler.generate`)."""
    bundle: Bundle = sampler.bundle
    tracks = tracks_for_program(bundle.metadata.tracks, midi.program, midi.track)
    generation = sampler.generate(options, primer=primer, progress=progress,
                                  cancelled=cancelled)
    files = []
    for index, sequence in enumerate(generation.sequences):
        name = midi_file_name(bundle.metadata.style, options.seconds, generation.seed, index,
                              options.variations)
        data = midi_bytes(sequence, tracks, bpm=midi.bpm, native_bpm=bundle.metadata.default_bpm,
                          quantize=midi.quantize, title=bundle.metadata.style)
        files.append((name, data))
    return generation, files


def write_files(files: list[tuple[str, bytes]], out_dir: str | Path) -> list[Path]:
    """Writes (name, bytes) pairs into out_dir (created if needed); returns the paths."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, data in files:
            path = out_dir / name
            path.write_bytes(data)
            paths.append(path)
    except OSError as error:
        raise PerfRNNError(f"cannot write to {out_dir}: {error.strerror}") from None
    return paths
