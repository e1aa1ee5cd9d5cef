"""From a bundle and a request to MIDI files: what the CLI and the worker call."""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from note_seq.protobuf import music_pb2

from perfrnn.bundle import Bundle
from perfrnn.configs import TrackRole, played_tracks
from perfrnn.errors import PerfRNNError
from perfrnn.metre import Metre
from perfrnn.midi_writer import midi_bytes
from perfrnn.multitrack import ROLE_DRUMS, ROLE_HARMONY
from perfrnn.options import FEELS, GenerationOptions, ProgressCallback
from perfrnn.sampler import Generation, Sampler, SampleRequest
from perfrnn.scoring import Score


def main_track(tracks: tuple[TrackRole, ...], parts: Sequence[str] = ()) -> int:
    """The part a "type" sets when it names none: the harmony part of a band
    (drums, bass, harmony, lead), else the first pitched part, else the kit;
    only among `parts` (track names) when the style plays only those."""
    playing = played_tracks(tracks, parts)
    played = [i for i, track in enumerate(tracks) if track in playing]
    if ROLE_HARMONY in played and tracks[ROLE_DRUMS].is_drum:
        return ROLE_HARMONY
    return next((i for i in played if not tracks[i].is_drum), played[0] if played else 0)


def tracks_for_program(tracks: tuple[TrackRole, ...], program: int | None,
                       track: str | None = None,
                       parts: Sequence[str] = ()) -> tuple[TrackRole, ...]:
    """The style's tracks with one part set to GM `program`.

    This is how a "type" choice (grand piano, harpsichord, TR-808 kit, a
    distorted guitar for rock, a saw lead for electronic) reaches the MIDI
    file: as that part's program change. `track` names the part (default
    `main_track` among the `parts` the style plays).
    """
    if program is None:
        return tracks
    if not 0 <= program <= 127:
        raise PerfRNNError(f"program must be a General MIDI number from 0 to 127, got {program}")
    if track is None:
        index = main_track(tracks, parts)
    else:
        names = [role.name for role in tracks]
        if track not in names:
            raise PerfRNNError(f"this style has no part {track!r}; its parts are: "
                               f"{', '.join(names)}")
        index = names.index(track)
    changed = list(tracks)
    changed[index] = dataclasses.replace(tracks[index], program=program)
    return tuple(changed)


SWING_EIGHTH = 2 / 3  # the off-beat eighth moves to the last eighth-triplet
HUMAN_TIMING_SECONDS = 0.008  # standard deviation of the onset nudge
HUMAN_TIMING_LIMIT_SECONDS = 0.02
HUMAN_VELOCITY = 6.0  # standard deviation of the velocity nudge


@dataclass(frozen=True)
class MidiOptions:
    """How generated music is written.

    Attributes:
      quantize: Snap note onsets to a 1/16 grid. A metric style's notes are on
        their sixteenth-or-triplet grid already, and stay there (snapping its
        triplets to sixteenths would move them off the beat).
      program: GM program for one part (the "type"); None for the default.
      track: Name of the part `program` applies to; None for `main_track`.
      feel: "straight" (the grid exactly), "swing" (off-beat eighths and
        sixteenths pushed towards the triplet), "human" (onsets nudged by a
        few milliseconds and velocities by a few steps, from the seed), or
        "swing+human".
    """

    quantize: bool = False
    program: int | None = None
    track: str | None = None
    feel: str = "straight"

    def validate(self) -> None:
        if self.feel not in FEELS:
            raise PerfRNNError(f"feel must be one of {', '.join(FEELS)}, got {self.feel!r}")
        if self.quantize and self.feel != "straight":
            raise PerfRNNError(f"quantize snaps the {self.feel} feel away; choose one of them")


def midi_file_name(style: str, options: GenerationOptions, seed: int, variation: int) -> str:
    """A file name such as `rock-30s-seed1234.mid` or `drums-8bars-seed7-v2.mid`."""
    safe_style = re.sub(r"[^A-Za-z0-9_-]+", "_", style).strip("_") or "style"
    suffix = f"-v{variation + 1}" if options.variations > 1 else ""
    length = f"{options.bars}bars" if options.bars else f"{options.seconds:g}s"
    loop = "-loop" if options.loop else ""
    return f"{safe_style}-{length}{loop}-seed{seed}{suffix}.mid"


def apply_feel(sequence: music_pb2.NoteSequence, feel: str, bpm: float,
               seed: int) -> music_pb2.NoteSequence:
    """A copy of `sequence` (seconds at `bpm`) played with a feel (see MidiOptions).

    Swing maps each beat's first half to its first two thirds and the second
    half to the last third, so the off-beat eighth lands on the last
    eighth-triplet and sixteenths move in proportion; downbeats stay put.
    Human nudges are drawn from `seed`, so the same seed gives the same file.
    """
    if feel == "straight":
        return sequence
    result = music_pb2.NoteSequence()
    result.CopyFrom(sequence)
    beat = 60.0 / bpm
    rng = np.random.default_rng(seed)

    def swing(seconds: float) -> float:
        beats, within = divmod(seconds / beat, 1.0)
        if within < 0.5:
            within *= 2 * SWING_EIGHTH
        else:
            within = SWING_EIGHTH + (within - 0.5) * 2 * (1 - SWING_EIGHTH)
        return (beats + within) * beat

    for note in result.notes:
        start, end = note.start_time, note.end_time
        if "swing" in feel:
            start, end = swing(start), max(swing(end), swing(start) + 1e-3)
        if "human" in feel:
            nudge = float(np.clip(rng.normal(0.0, HUMAN_TIMING_SECONDS),
                                  -HUMAN_TIMING_LIMIT_SECONDS, HUMAN_TIMING_LIMIT_SECONDS))
            nudge = max(nudge, -start)
            start, end = start + nudge, min(end + nudge, result.total_time or end + nudge)
            end = max(end, start + 1e-3)
            note.velocity = int(np.clip(round(note.velocity + rng.normal(0, HUMAN_VELOCITY)),
                                        1, 127))
        note.start_time, note.end_time = start, end
    return result


@dataclass
class GeneratedPiece:
    """One variation, with everything a front end shows or saves.

    Attributes:
      name: Its file name, such as `rock-30s-seed7-v2.mid`.
      midi: The Standard MIDI File's bytes.
      sequence: The notes as the file plays them (feel applied), in seconds
        at the generation's tempo.
      tracks: The parts as written, the chosen type's program applied.
      score: How well it fits the style (`perfrnn.scoring`); None when the
        style has nothing to score with.
      events: The model's event indices (int32), primer included, as
        `Generation.events` holds them (what an edit continues,
        `perfrnn.edits`); None for music not sampled here.
      quantized: Whether the file's onsets were snapped to the 1/16 grid
        (`midi_bytes(quantize=True)`).
    """

    name: str
    midi: bytes
    sequence: music_pb2.NoteSequence
    tracks: tuple[TrackRole, ...]
    score: Score | None = None
    events: np.ndarray | None = None
    quantized: bool = False


@dataclass
class Generated:
    """What `generate_midi` made: its variations and the settings they share."""

    style: str
    seed: int
    bpm: float  # quarter notes per minute, as written in the files
    metre: Metre
    pieces: list[GeneratedPiece]  # best first when they were scored
    repairs: int = 0  # passages resampled (see `GenerationOptions.repair`)

    @property
    def files(self) -> list[tuple[str, bytes]]:
        """(file name, MIDI bytes) per variation, for `write_files`."""
        return [(piece.name, piece.midi) for piece in self.pieces]

    @property
    def sequences(self) -> list[music_pb2.NoteSequence]:
        return [piece.sequence for piece in self.pieces]


@dataclass
class MidiRequest:
    """One request for `generate_midi_batch` (see `generate_midi` for each part)."""

    options: GenerationOptions
    midi: MidiOptions = MidiOptions()
    primer: music_pb2.NoteSequence | None = None
    progress: ProgressCallback | None = None
    cancelled: Callable[[], bool] | None = None
    style: str | None = None


def generate_midi(
    sampler: Sampler,
    options: GenerationOptions,
    midi: MidiOptions = MidiOptions(),
    primer: music_pb2.NoteSequence | None = None,
    progress: ProgressCallback | None = None,
    cancelled: Callable[[], bool] | None = None,
    style: str | None = None,
) -> Generated:
    """Generates music and renders each variation as a MIDI file.

    The files play at `options.bpm` (the style's tempo when None) and last
    `options.seconds` (or `options.bars` bars) after the primer; a metric
    style's notes sit exactly on that tempo's grid. `style` is the name the
    user chose the style by (file names and titles; default the bundle's).
    `cancelled` is polled between sampling blocks (see `Sampler.generate`)."""
    request = MidiRequest(options, midi, primer, progress, cancelled, style)
    for _, outcome in generate_midi_batch(sampler, [request]):
        if isinstance(outcome, PerfRNNError):
            raise outcome
        return outcome
    raise AssertionError("generate_midi_batch yields one outcome per request")


def generate_midi_batch(sampler: Sampler, requests: Sequence[MidiRequest],
                        more: Callable[[int], Sequence[MidiRequest]] | None = None
                        ) -> Iterator[tuple[int, Generated | PerfRNNError]]:
    """Generates several requests for one style in one sampling batch, which
    `more(room)` may join between blocks (see `Sampler.generate_batch`).

    Yields (index, outcome) as each request is done (indices count `requests`
    then those `more` gave): its Generated, the same files as `generate_midi`
    makes of it alone, or the PerfRNNError that ended it (the others carry on)."""
    bundle: Bundle = sampler.bundle
    accepted: list[tuple[int, MidiRequest, tuple[TrackRole, ...]]] = []  # by sampler index
    refused: list[tuple[int, PerfRNNError]] = []
    counter = itertools.count()

    def admit(requests: Sequence[MidiRequest]) -> list[SampleRequest]:
        admitted = []
        for request in requests:
            index = next(counter)
            try:
                request.midi.validate()
                tracks = tracks_for_program(bundle.metadata.tracks, request.midi.program,
                                            request.midi.track, bundle.metadata.parts)
            except PerfRNNError as error:
                refused.append((index, error))
                continue
            accepted.append((index, request, tracks))
            admitted.append(SampleRequest(request.options, request.primer, request.progress,
                                          request.cancelled))
        return admitted

    outcomes = sampler.generate_batch(
        admit(requests), more=(lambda room: admit(more(room))) if more is not None else None)
    while refused:
        yield refused.pop(0)
    for position, generation in outcomes:
        while refused:
            yield refused.pop(0)
        index, request, tracks = accepted[position]
        if isinstance(generation, PerfRNNError):
            yield index, generation
        else:
            yield index, _midi_files(generation, request, tracks, bundle)
    while refused:
        yield refused.pop(0)


def _midi_files(generation: Generation, request: MidiRequest, tracks: tuple[TrackRole, ...],
                bundle: Bundle) -> Generated:
    """A Generation written as MIDI files, the request's feel and type applied."""
    style = request.style or bundle.metadata.style
    pieces = []
    scores = generation.scores or [None] * len(generation.sequences)
    quantize = request.midi.quantize and not bundle.encoding.follows_tempo
    for index, (sequence, score, events) in enumerate(zip(generation.sequences, scores,
                                                          generation.events)):
        sequence = apply_feel(sequence, request.midi.feel, generation.bpm,
                              generation.seed + index)
        data = _piece_midi(sequence, tracks, generation.bpm, generation.metre, quantize,
                           style)
        pieces.append(GeneratedPiece(
            midi_file_name(style, request.options, generation.seed, index),
            data, sequence, tracks, score, np.asarray(events, np.int32), quantize))
    return Generated(style=style, seed=generation.seed, bpm=generation.bpm,
                     metre=generation.metre, pieces=pieces, repairs=generation.repairs)


def _piece_midi(sequence: music_pb2.NoteSequence, tracks: tuple[TrackRole, ...], bpm: float,
                metre: Metre, quantize: bool, title: str) -> bytes:
    """A piece's Standard MIDI File, at `bpm` in `metre` (feel already applied)."""
    return midi_bytes(sequence, tracks, bpm=bpm, native_bpm=bpm, quantize=quantize,
                      title=title, time_signature=(metre.numerator, metre.denominator))


def edited_files(sampler: Sampler, edited, tracks: tuple[TrackRole, ...], midi: MidiOptions,
                 style: str, version: int) -> Generated:
    """An edited piece (`perfrnn.edits.EditedPiece`, feel already applied to
    its new notes) written with its `tracks` as the one piece of a Generated,
    named for its version."""
    bundle = sampler.bundle
    options = edited.options
    bpm = float(options.bpm or bundle.metadata.default_bpm)
    quantize = midi.quantize and not bundle.encoding.follows_tempo
    data = _piece_midi(edited.sequence, tracks, bpm, sampler.metre, quantize, style)
    name = midi_file_name(style, dataclasses.replace(options, variations=1), options.seed or 0,
                          0).replace(".mid", f"-version{version}.mid")
    piece = GeneratedPiece(name, data, edited.sequence, tracks, edited.score,
                           np.asarray(edited.events, np.int32), quantize)
    return Generated(style=style, seed=options.seed or 0, bpm=bpm, metre=sampler.metre,
                     pieces=[piece])


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
