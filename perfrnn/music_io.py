"""Reading music files (MIDI, MusicXML, ABC) into NoteSequences.

Times in the returned NoteSequence are seconds. MusicXML and ABC files carry
tempo in quarter notes per minute; a file without one is read at note-seq's
default of 120 QPM.
"""

from __future__ import annotations

import os
from pathlib import Path

import note_seq
from note_seq import abc_parser, musicxml_reader
from note_seq.protobuf import music_pb2

from perfrnn.chords import parse_chord
from perfrnn.errors import PerfRNNError
from perfrnn.song_form import MARKERS

MIDI_SUFFIXES = (".mid", ".midi")
MUSICXML_SUFFIXES = (".xml", ".musicxml", ".mxl")
ABC_SUFFIXES = (".abc",)
MUSIC_SUFFIXES = MIDI_SUFFIXES + MUSICXML_SUFFIXES + ABC_SUFFIXES


def read_music_file(path: str | os.PathLike) -> music_pb2.NoteSequence:
    """Parses a .mid/.midi, .xml/.musicxml/.mxl or .abc file.

    For an ABC file with several tunes, the first tune that parses is used.

    Raises:
      PerfRNNError: the file is missing, of an unknown kind, or does not parse.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise PerfRNNError("no such file", path=path, action="read")
    if suffix not in MUSIC_SUFFIXES:
        raise PerfRNNError(f"unknown kind of file {suffix or '(no suffix)'!r}; use one of "
                           f"{', '.join(MUSIC_SUFFIXES)}", path=path, action="read")
    try:
        if suffix in MIDI_SUFFIXES:
            sequence = note_seq.midi_file_to_note_sequence(str(path))
            add_song_marks(sequence, path)
        elif suffix in MUSICXML_SUFFIXES:
            sequence = musicxml_reader.musicxml_file_to_sequence_proto(str(path))
        else:
            sequence = _read_abc(path)
    except PerfRNNError:
        raise
    except Exception as error:  # note-seq raises many types for bad files
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise PerfRNNError(f"it is not a valid {suffix[1:]} file ({reason})", path=path,
                           action="read") from None
    sequence.filename = path.name
    return sequence


def _read_abc(path: Path) -> music_pb2.NoteSequence:
    tunes, exceptions = abc_parser.parse_abc_tunebook_file(str(path))
    for _, tune in sorted(tunes.items()):
        if tune.notes:
            return tune
    reason = str(exceptions[0]) if exceptions else "no tune with notes found"
    raise PerfRNNError(f"no tune in it parses ({reason})", path=path, action="read")


SECTION_MARKERS = {"intro": "Intro", "a": "A", "verse": "A", "chorus": "A", "main": "A",
                   "b": "B", "bridge": "B", "fill": "Fill", "break": "Fill",
                   "ending": "Ending", "end": "Ending", "outro": "Ending"}
"""Marker texts read as section starts (lower case, trailing digits dropped),
and the `perfrnn.song_form.MARKERS` label each is."""


def add_song_marks(sequence: music_pb2.NoteSequence, path: str | os.PathLike) -> None:
    """Adds a MIDI file's plan to its NoteSequence (which note-seq does not
    read): each ``text`` meta event that is a chord symbol as a CHORD_SYMBOL
    text annotation, each ``marker`` that names a section (Intro, A, B, Verse,
    Chorus, Fill, Ending ...) as a section annotation (id: index in
    `perfrnn.song_form.MARKERS`). Times in seconds, by the file's tempo map."""
    import mido

    try:
        midi = mido.MidiFile(str(path))
    except Exception:  # noqa: BLE001 - note-seq read it; its marks are a bonus
        return
    seconds = 0.0
    for message in midi:  # merged tracks, delta times in seconds
        seconds += message.time
        if not message.is_meta or message.type not in ("text", "marker"):
            continue
        text = str(message.text).strip()
        if message.type == "marker":
            label = SECTION_MARKERS.get(text.lower().rstrip("0123456789 "))
            if label is not None:
                sequence.section_annotations.add(time=seconds, section_id=MARKERS.index(label))
            continue
        if not text or len(text) > 16:
            continue
        try:
            chord = parse_chord(text)
        except PerfRNNError:
            continue
        sequence.text_annotations.add(
            time=seconds, text=chord.symbol,
            annotation_type=music_pb2.NoteSequence.TextAnnotation.CHORD_SYMBOL)
