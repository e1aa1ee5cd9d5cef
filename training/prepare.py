"""Training step 1: a pile of music files to train/validation NoteSequence TFRecords.

`prepare_corpus` reads MIDI (.mid, .midi), MusicXML (.xml, .musicxml, .mxl) and
ABC (.abc) files from folders, single files and .zip archives, keeps the notes
of the requested kind (pitched parts merged into one performance, or drums
only), splits the usable files into train and validation by source file, and
writes, under the output folder:

- `train.tfrecord`, `validation.tfrecord`: one serialized `NoteSequence` per
  source file (times in seconds), Magenta's own convention. Augmentation
  (transpose, time stretch) is applied to these at training time, not stored.
- `manifest.json`: every file seen, with its split or the reason it was
  skipped, its warnings, seconds of music, notes and Performance events.
- `report.md`: the same for a person to read.

The output folder appears only when everything is written: the files are
built in a hidden sibling folder and renamed into place, so a failed run
leaves no partial output. Archives are unpacked into the system's temporary
folder and removed afterwards.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import secrets
import shutil
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from note_seq import sequences_lib
from note_seq.protobuf import music_pb2

from datasets.manifest import CORPUS_KINDS, SPLITS
from datasets.manifest import MANIFEST_FORMAT as CORPUS_MANIFEST_FORMAT
from datasets.manifest import MANIFEST_NAME as CORPUS_MANIFEST_NAME
from perfrnn.archives import UnsafeArchiveError, check_zip, unpack_zip
from perfrnn.configs import DEFAULT_CONFIG_ID, DEFAULT_CONFIGS, ModelConfig, get_config
from perfrnn.encodings import encoding_for
from perfrnn.errors import PATH, Fix, PerfRNNError
from perfrnn.folders import swap_into_place
from perfrnn.multitrack import MultiTrackEncoding, assign_roles
from perfrnn.music_io import ABC_SUFFIXES, MUSIC_SUFFIXES, MUSICXML_SUFFIXES, read_music_file
from perfrnn.performance_encoding import PerformanceEncoding
from perfrnn.song_form import song_chords
from training.prepared import (
    MANIFEST_NAME,
    PREPARED_MANIFEST_FORMAT,
    REPORT_NAME,
    FileRecord,
    PrepareResult,
    check_split,
)
from training.report import render_prepare_report

# A folder built by `python -m datasets build` holds a corpus manifest
# (CORPUS_MANIFEST_NAME, format CORPUS_MANIFEST_FORMAT): its splits (whole
# groove families held out) and per-file licences are taken over.
DEFAULT_KIND = "pitched"  # "band" when the configuration is multi-track
DEFAULT_VALIDATION_FRACTION = 0.1
DEFAULT_SEED = 0

ARCHIVE_SUFFIXES = (".zip",)

NO_TEMPO_WARNING = "no tempo in file; read at 120 BPM"
IGNORED_TEMPO_WARNING = (
    "tempo given only as a metronome mark (or a sound element outside a direction), which "
    "the MusicXML reader ignores; read at 120 BPM")

# Why a file was skipped, as a stable code for programs (the website) to use.
SKIP_UNREADABLE = "unreadable"
SKIP_DUPLICATE = "duplicate"
SKIP_ONLY_DRUMS = "only_drums"
SKIP_NO_DRUMS = "no_drum_notes"
SKIP_NO_NOTES = "no_notes"
SKIP_ENCODING_FAILED = "encoding_failed"
SKIP_UNSAFE_ARCHIVE = "unsafe_archive"
SKIP_NO_BEAT = "no_beat"
SKIP_TOO_LARGE = "too_large"
# Work and memory grow with a file's size, length and notes, whatever its
# header claims; a piece past these is skipped with the limit named.
MAX_MUSIC_FILE_BYTES = 16 << 20  # a long orchestral MIDI file is about 1 MiB
MAX_PIECE_SECONDS = 3600.0
MAX_PIECE_NOTES = 200_000
# A metric style learns from files whose onsets follow their own tempo map:
# at least this share of drum hits (of all onsets without drums) within 1/24
# beat of the 1/16 or triplet grid. Random onsets give 0.5, free-tempo
# performances about 0.5, mma's humanised grooves 0.73 to 1.
MIN_GRID_FIT = 0.7

_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}")
_MAX_WARNINGS_PER_FILE = 5
# Python warnings raised while reading that say nothing about the music.
_IGNORED_WARNING_CATEGORIES = (DeprecationWarning, PendingDeprecationWarning, FutureWarning,
                               ResourceWarning, ImportWarning)

ProgressCallback = Callable[[int, int, str], None]
"""Called after each music file with (files done, files in all, source path)."""


@dataclass
class _Candidate:
    """A music file to read: where it is now and how to name it in the manifest."""

    input: str
    source: str
    path: Path
    listed: dict | None = None  # the file's entry in a corpus manifest


# ----- the public entry points ----------------------------------------------------------


def prepare_corpus(
    name: str,
    inputs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    config_id: str = DEFAULT_CONFIG_ID,
    kind: str | None = None,
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
    seed: int = DEFAULT_SEED,
    progress: ProgressCallback | None = None,
) -> PrepareResult:
    """Reads music files into train/validation TFRecords of NoteSequences under `out_dir`.

    Args:
      name: The corpus (style) name: letters, digits, spaces, "-", "_", ".".
      inputs: Folders (searched recursively), music files and .zip archives.
      out_dir: Folder to write; replaced if it holds an earlier prepared corpus,
        refused if it holds anything else.
      config_id: A `perfrnn.configs.DEFAULT_CONFIGS` id; fixes how events are counted.
      kind: "pitched" (drum notes dropped, all pitched parts merged into one
        performance), "drums" (only drum notes, MIDI channel 10, kept) or
        "band" (every part mapped onto the multi-track roles drums, bass,
        harmony, lead); None: "band" for a multi-track configuration, else
        "pitched". A folder holding a `datasets` corpus manifest gives its
        files' splits and licences.
      validation_fraction: Share of usable files held out, 0 <= f < 1. With
        two or more usable files and f > 0, at least one is held out and at
        least one is kept for training.
      seed: Seeds the split; the same files and seed give the same split.
      progress: Called after each music file is read (see ProgressCallback).

    Returns:
      A PrepareResult describing every file and the totals per split.

    Raises:
      PerfRNNError: bad arguments, missing or empty inputs, or no usable music
        left; nothing is written then.
    """
    name = _check_name(name)
    config = get_config(config_id)
    kind = _check_kind(kind, config)
    validation_fraction = _check_fraction(validation_fraction)
    seed = int(seed)
    if not inputs:
        raise PerfRNNError("no input given: name one or more folders, music files or .zip archives")
    input_paths = [Path(item) for item in inputs]
    out_dir = Path(out_dir)
    _check_paths(input_paths, out_dir)

    result = PrepareResult(
        name=name, out_dir=out_dir, config_id=config.id, kind=kind, seed=seed,
        validation_fraction=validation_fraction, inputs=[str(item) for item in inputs],
        files=[], augmentation=_augmentation(config))
    with tempfile.TemporaryDirectory(prefix="perfrnn-prepare-") as work:
        work_dir = Path(work)
        candidates = _collect(input_paths, work_dir / "unpacked", result)
        if not candidates and not result.files:
            raise _nothing_found(input_paths)
        spool_dir = work_dir / "spool"
        spool_dir.mkdir()
        spooled = _read_all(candidates, config, kind, name, spool_dir, result, progress)
        if not result.used:
            raise _nothing_usable(result)
        order = {label: index for index, label in reversed(list(enumerate(result.inputs)))}
        result.files.sort(key=lambda record: (order[record.input], record.source))
        result.warnings.extend(_assign_splits(result.used, validation_fraction, seed))
        _write_output(result, spooled)
    return result


def read_prepared(out_dir: str | os.PathLike, split: str) -> list[music_pb2.NoteSequence]:
    """The NoteSequences of one split ("train" or "validation") of a prepared corpus.

    Raises:
      PerfRNNError: unknown split, or no readable prepared data in `out_dir`.
    """
    path = Path(out_dir) / f"{check_split(split)}.tfrecord"
    if not path.is_file():
        raise PerfRNNError(
            f"no {split} data in {PATH} ({path.name} is missing); "
            "run `python -m training prepare` first", path=out_dir)
    import tensorflow as tf  # lazy: importing TensorFlow takes seconds

    sequences = []
    try:
        for record in tf.data.TFRecordDataset(str(path)):
            sequences.append(music_pb2.NoteSequence.FromString(record.numpy()))
    except (tf.errors.OpError, ValueError) as error:
        raise PerfRNNError(f"{PATH} is corrupt ({_one_line(str(error))}); run `python -m "
                           "training prepare` again", path=path) from None
    return sequences


def read_manifest(out_dir: str | os.PathLike) -> dict:
    """The manifest.json of a prepared corpus, as a dict.

    Raises:
      PerfRNNError: `out_dir` holds no readable manifest of this format.
    """
    path = Path(out_dir) / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PerfRNNError(
            f"{out_dir} is not a prepared corpus (no {MANIFEST_NAME}); "
            "run `python -m training prepare` first") from None
    except (OSError, ValueError) as error:
        raise PerfRNNError(f"cannot read {path} ({_one_line(str(error))})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != PREPARED_MANIFEST_FORMAT:
        raise PerfRNNError(f"{path} is not a prepared-corpus manifest")
    return manifest


# ----- argument checks --------------------------------------------------------------------


def _check_name(name: str) -> str:
    name = str(name).strip()
    if not _NAME_PATTERN.fullmatch(name):
        raise PerfRNNError(
            f"invalid corpus name {name!r}: use 1 to 64 letters, digits, spaces, '-', '_' "
            "or '.', starting with a letter or digit")
    return name


def corpus_name(manifest: dict | None, data_dir: str | os.PathLike) -> str:
    """A prepared corpus's name, the style it teaches: its manifest's, else its
    folder's."""
    return str((manifest or {}).get("name") or Path(data_dir).name)


def kind_problem(kind: str, config: ModelConfig) -> str | None:
    """Why music prepared as `kind` cannot train `config` (None when it can).

    A band needs a multi-track configuration and a single-part configuration
    takes pitched or drum music; a kit alone also fits a multi-track
    configuration with a drum part (a drum style of a band base)."""
    if kind == "band" and not config.is_multitrack:
        multitrack = [c.id for c in DEFAULT_CONFIGS.values() if c.is_multitrack]
        return (f"kind 'band' needs a multi-track configuration (--config {multitrack[0]}); "
                f"{config.id!r} writes one part")
    if kind == "pitched" and config.is_multitrack:
        return (f"configuration {config.id!r} is multi-track: use kind 'band' (or 'drums' for "
                "a kit alone)")
    if kind == "drums" and config.is_multitrack and not any(t.is_drum for t in config.tracks):
        return f"configuration {config.id!r} has no drum part for kind 'drums'"
    return None


def _check_kind(kind: str | None, config: ModelConfig) -> str:
    if kind is None:
        return "band" if config.is_multitrack else DEFAULT_KIND
    if kind not in CORPUS_KINDS:
        raise PerfRNNError(f"unknown kind {kind!r}; use one of: {', '.join(CORPUS_KINDS)}")
    problem = kind_problem(kind, config)
    if problem:
        raise PerfRNNError(problem)
    return kind


def _check_fraction(fraction: float) -> float:
    try:
        fraction = float(fraction)
    except (TypeError, ValueError):
        fraction = math.nan
    if not (math.isfinite(fraction) and 0.0 <= fraction < 1.0):
        raise PerfRNNError(
            f"validation fraction must be at least 0 and below 1 (e.g. 0.1), got {fraction}")
    return fraction


def _check_paths(inputs: list[Path], out_dir: Path) -> None:
    """Refuses missing inputs, and an output folder that is a file, holds other things or
    holds the inputs."""
    for item in inputs:
        if not item.exists():
            raise PerfRNNError(f"input not found: {item}")
        if item.is_file() and not _is_music(item) and not _is_archive(item):
            raise PerfRNNError(
                f"input {item} is not a music file or archive; use "
                f"{', '.join(MUSIC_SUFFIXES + ARCHIVE_SUFFIXES)} files or folders of them")
    if out_dir.exists() and not out_dir.is_dir():
        raise PerfRNNError(f"output {out_dir} is an existing file; give a folder to write into")
    resolved_out = out_dir.resolve()
    for item in inputs:
        if item.resolve().is_relative_to(resolved_out):
            raise PerfRNNError(
                f"output folder {out_dir} holds the input {item}; choose another output folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MANIFEST_NAME).is_file():
        raise PerfRNNError(
            f"output folder {out_dir} already holds files that are not a prepared corpus; "
            "choose a new or empty folder")


def _augmentation(config: ModelConfig) -> dict:
    low, high = config.transpose_range
    return {
        "applied": "at training time, to the stored NoteSequences; not stored",
        "transpose_semitones": [low, high],
        "stretch_factors": list(config.stretch_factors),
    }


# ----- finding files ------------------------------------------------------------------------


def _is_music(path: Path) -> bool:
    return path.suffix.lower() in MUSIC_SUFFIXES


def _is_archive(path: Path) -> bool:
    return path.suffix.lower() in ARCHIVE_SUFFIXES


def _collect(inputs: list[Path], unpack_root: Path, result: PrepareResult) -> list[_Candidate]:
    """All music files under the inputs, in a stable order; archives unpacked.

    Refused archives are added to `result.files` as skipped; files that are
    neither music nor archives are counted in `result.ignored_files`.
    """
    candidates: list[_Candidate] = []
    for index, item in enumerate(inputs):
        label = str(item)
        listed: dict[str, dict] = {}
        if item.is_file():
            found = [(item.name, item)]
        else:
            listed = _corpus_manifest_entries(item, result)
            found, ignored = _walk(item)
            result.ignored_files += ignored
            if not found:
                result.warnings.append(f"input folder {label} holds no music files")
        for source, path in sorted(found, key=lambda pair: pair[0]):
            if _is_music(path):
                candidates.append(_Candidate(label, source, path, listed.get(source)))
                continue
            destination = unpack_root / f"{index}-{len(candidates)}-{len(result.files)}"
            destination.mkdir(parents=True)
            try:
                unpacked = unpack_zip(path, destination, MUSIC_SUFFIXES)
            except UnsafeArchiveError as error:
                shutil.rmtree(destination, ignore_errors=True)
                result.files.append(FileRecord(input=label, source=source).skip(
                    _one_line(str(error)), SKIP_UNSAFE_ARCHIVE))
                continue
            result.ignored_files += len(unpacked.ignored)
            candidates.extend(_Candidate(label, f"{source}/{entry}", unpacked_path)
                              for entry, unpacked_path in unpacked.files)
    return candidates


def _corpus_manifest_entries(folder: Path, result: PrepareResult) -> dict[str, dict]:
    """The file entries of a `datasets` corpus manifest in `folder`, by relative path."""
    path = folder / CORPUS_MANIFEST_NAME
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        result.warnings.append(f"{path} is unreadable ({_one_line(str(error))}); "
                               "its splits and licences are not used")
        return {}
    if not isinstance(manifest, dict) or manifest.get("format") != CORPUS_MANIFEST_FORMAT:
        return {}
    entries = {}
    for entry in manifest.get("files") or []:
        if isinstance(entry, dict) and isinstance(entry.get("file"), str):
            entries[entry["file"].replace(os.sep, "/")] = entry
    return entries


def _walk(folder: Path) -> tuple[list[tuple[str, Path]], int]:
    """(relative source, path) of the music files and archives under a folder; ignored count."""
    found: list[tuple[str, Path]] = []
    ignored = 0
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__MACOSX")
        for file_name in sorted(files):
            path = Path(root) / file_name
            if file_name.startswith("."):
                continue
            if _is_music(path) or _is_archive(path):
                found.append((path.relative_to(folder).as_posix(), path))
            else:
                ignored += 1
    return found, ignored


def _nothing_found(inputs: list[Path]) -> PerfRNNError:
    looked_for = ", ".join(MUSIC_SUFFIXES + ARCHIVE_SUFFIXES)
    return PerfRNNError(f"no music files found in {PATH} (looked for {looked_for} files)",
                        path=", ".join(str(item) for item in inputs))


# ----- reading files --------------------------------------------------------------------------


def _read_all(
    candidates: list[_Candidate], config: ModelConfig, kind: str, name: str,
    spool_dir: Path, result: PrepareResult, progress: ProgressCallback | None,
) -> dict[int, Path]:
    """Reads every candidate into `result.files`.

    Returns:
      id() of each used record -> file holding its serialized NoteSequence.
    """
    encoding = encoding_for(config)
    seen: dict[str, str] = {}
    spooled: dict[int, Path] = {}
    for done, candidate in enumerate(candidates, start=1):
        record, sequence = _read_one(candidate, encoding, kind, name, seen)
        result.files.append(record)
        if sequence is not None:
            spool_path = spool_dir / f"{len(spooled)}.pb"
            spool_path.write_bytes(sequence.SerializeToString())
            spooled[id(record)] = spool_path
        if progress is not None:
            progress(done, len(candidates), candidate.source)
    return spooled


def _read_one(
    candidate: _Candidate, encoding: PerformanceEncoding | MultiTrackEncoding, kind: str,
    name: str,
    seen: dict[str, str],
) -> tuple[FileRecord, music_pb2.NoteSequence | None]:
    """Reads, filters and measures one file. Never raises for a bad file."""
    record = FileRecord(input=candidate.input, source=candidate.source)
    if candidate.listed:
        record.origin = _text_or_none(candidate.listed.get("source"))
        record.licence = _text_or_none(candidate.listed.get("licence"))
    path = candidate.path
    try:
        with open(path, "rb") as stream:
            record.sha1 = hashlib.file_digest(stream, "sha1").hexdigest()
    except OSError as error:
        return record.skip(f"cannot open it ({error.strerror or error})", SKIP_UNREADABLE), None
    if record.sha1 in seen:
        return record.skip(f"same content as {seen[record.sha1]}", SKIP_DUPLICATE), None
    seen[record.sha1] = candidate.source
    size = path.stat().st_size
    if size > MAX_MUSIC_FILE_BYTES:
        return record.skip(f"it is {size >> 20} MiB; a music file may be at "
                           f"most {MAX_MUSIC_FILE_BYTES >> 20} MiB", SKIP_TOO_LARGE), None

    suffix = path.suffix.lower()
    try:
        if suffix == ".mxl":  # a zip the MusicXML reader unpacks in memory
            check_zip(path)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            sequence = read_music_file(path)
    except PerfRNNError as error:
        return record.skip(_reader_reason(error, path), SKIP_UNREADABLE), None
    except Exception as error:  # noqa: BLE001 - a bad file must never stop the run
        return record.skip(f"cannot read it ({type(error).__name__}: "
                           f"{_one_line(str(error))})", SKIP_UNREADABLE), None
    record.warnings.extend(_file_warnings(path, suffix, sequence, caught))
    if not sequence.total_time <= MAX_PIECE_SECONDS:  # also catches NaN
        return record.skip(f"it lasts {sequence.total_time:,.0f} seconds; a piece may last at "
                           f"most {MAX_PIECE_SECONDS:,.0f}", SKIP_TOO_LARGE), None
    if len(sequence.notes) > MAX_PIECE_NOTES:
        return record.skip(f"it has {len(sequence.notes):,} notes; a piece may have at most "
                           f"{MAX_PIECE_NOTES:,}", SKIP_TOO_LARGE), None
    if any(not 0.0 <= note.start_time <= note.end_time for note in sequence.notes):
        return record.skip("a note in it starts before time 0 or ends before it starts",
                           SKIP_UNREADABLE), None

    if kind == "band":
        kept, record.roles = assign_roles(sequence, encoding.tracks)
        dropped = len(sequence.notes) - len(kept.notes)
        if kept.notes and not any(note.is_drum for note in kept.notes):
            record.warnings.append("no drum part (MIDI channel 10)")
    else:
        kept, dropped = _keep_kind(sequence, kind)
        if encoding.config.is_multitrack:  # a kit alone, in a band model's drum part
            drum_role = next(i for i, track in enumerate(encoding.tracks) if track.is_drum)
            for note in kept.notes:
                note.instrument = drum_role
    record.dropped_notes = dropped
    if not kept.notes:
        if kind == "pitched" and dropped:
            return record.skip("only drums; a pitched style needs pitched notes "
                               "(use kind 'drums' for a drum style)", SKIP_ONLY_DRUMS), None
        if kind == "drums" and dropped:
            return record.skip("no drum notes (MIDI channel 10); a drum style needs drums",
                               SKIP_NO_DRUMS), None
        return record.skip("no notes in it", SKIP_NO_NOTES), None
    if encoding.config.is_metric:
        kept, problem = _on_its_beat(kept, record)
        if problem:
            return record.skip(problem, SKIP_NO_BEAT), None
        if kind == "band":
            record.chords, problem = song_chords(kept)
            if problem:
                record.warnings.append(f"trained without chords: {problem}")
    try:
        events = len(encoding.events_from_sequence(kept))
    except Exception as error:  # noqa: BLE001 - note-seq raises many types
        return record.skip(f"cannot turn its notes into events ({type(error).__name__}: "
                           f"{_one_line(str(error))})", SKIP_ENCODING_FAILED), None

    kept.filename = candidate.source
    kept.collection_name = name
    kept.id = f"/id/{_source_type(suffix)}/{record.sha1}"
    record.seconds = kept.total_time
    record.notes = len(kept.notes)
    record.events = events
    listed_split = (candidate.listed or {}).get("split")
    if listed_split in SPLITS:
        record.split = listed_split
    return record, kept


def _on_its_beat(sequence: music_pb2.NoteSequence,
                 record: FileRecord) -> tuple[music_pb2.NoteSequence, str | None]:
    """Checks that a file has a beat a metric style can learn from.

    The beat comes from the file itself: the tempo map and time signatures of
    a MIDI file (an mma render carries its groove's), the measures of
    MusicXML and ABC as music21 and note-seq read them. A piece whose metre
    changes is cut where it changes. Records the metre and the grid fit.

    Returns:
      The (possibly cut) sequence, and why the file must be skipped (None: fine).
    """
    from perfrnn.metre import beat_grid_fit, first_metre_change, metre_of

    change = first_metre_change(sequence)
    if change is not None:
        if change <= 0.0:
            return sequence, "its time signature changes at the very start"
        sequence = sequences_lib.trim_note_sequence(sequence, 0.0, change)
        del sequence.time_signatures[1:]
        record.warnings.append(f"cut at {change:.1f} s, where its time signature changes; "
                               "metric styles need one metre per piece")
        if not sequence.notes:
            return sequence, "no notes before its time signature changes"
    try:
        record.metre = metre_of(sequence).name
    except PerfRNNError as error:
        return sequence, str(error)
    record.grid_fit = beat_grid_fit(sequence)
    if not record.grid_fit >= MIN_GRID_FIT:
        return sequence, (
            f"its notes do not follow its own tempo map: {record.grid_fit:.0%} of its drum hits "
            "(or onsets, without drums) are "
            f"on the 1/16 or triplet grid, and a metric style needs {MIN_GRID_FIT:.0%}; "
            "a free-tempo performance has no beat to learn from")
    return sequence, None


def _text_or_none(value) -> str | None:
    return str(value) if value not in (None, "") else None


def _keep_kind(sequence: music_pb2.NoteSequence,
               kind: str) -> tuple[music_pb2.NoteSequence, int]:
    """A copy with only drum (kind "drums") or only pitched notes; also the dropped count.

    Pitch bends and control changes of the dropped kind go too. total_time is
    set to the end of the last kept note (seconds).
    """
    want_drums = kind == "drums"
    kept = music_pb2.NoteSequence()
    kept.CopyFrom(sequence)
    del kept.notes[:]
    kept.notes.extend(note for note in sequence.notes if note.is_drum == want_drums)
    del kept.pitch_bends[:]
    kept.pitch_bends.extend(bend for bend in sequence.pitch_bends if bend.is_drum == want_drums)
    del kept.control_changes[:]
    kept.control_changes.extend(
        change for change in sequence.control_changes if change.is_drum == want_drums)
    kept.total_time = max((note.end_time for note in kept.notes), default=0.0)
    return kept, len(sequence.notes) - len(kept.notes)


def _file_warnings(path: Path, suffix: str, sequence: music_pb2.NoteSequence,
                   caught: list[warnings.WarningMessage]) -> list[str]:
    """Warnings about a file that was read: missing tempo, tunebooks, reader warnings."""
    found: list[str] = []
    if suffix in MUSICXML_SUFFIXES:
        tempo_warning = _musicxml_tempo_warning(path)
        if tempo_warning:
            found.append(tempo_warning)
    elif suffix in ABC_SUFFIXES:
        if not sequence.tempos:
            found.append(NO_TEMPO_WARNING)
        tunes = _count_abc_tunes(path)
        if tunes > 1:
            found.append(f"tunebook with {tunes} tunes; only the first tune with notes is used")
    for message in caught:
        if issubclass(message.category, _IGNORED_WARNING_CATEGORIES):
            continue
        text = _one_line(str(message.message))
        if "ffmpeg" in text or text in found:
            continue
        found.append(text)
    return found[:_MAX_WARNINGS_PER_FILE]


def _musicxml_tempo_warning(path: Path) -> str | None:
    """A warning when note-seq will read a MusicXML file at its default 120 QPM.

    note-seq takes tempo only from <direction><sound tempo="..."/></direction>
    with a tempo above 0; a <metronome> mark alone, or a <sound> placed
    directly in a measure, is ignored.
    """
    from note_seq import musicxml_parser

    try:
        # The reader's own loader, so that .mxl archives resolve the same way.
        score = musicxml_parser.MusicXMLDocument._get_score(str(path))
    except Exception:  # noqa: BLE001 - the file was already read once; be lenient
        return None
    for direction in score.iter("direction"):
        for sound in direction.iter("sound"):
            if _positive_number(sound.get("tempo")):
                return None
    ignored_marks = any(True for _ in score.iter("metronome")) or any(
        _positive_number(sound.get("tempo")) for sound in score.iter("sound"))
    return IGNORED_TEMPO_WARNING if ignored_marks else NO_TEMPO_WARNING


def _positive_number(text: str | None) -> bool:
    try:
        return text is not None and float(text) > 0
    except ValueError:
        return False


def _count_abc_tunes(path: Path) -> int:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return 0
    return len(re.findall(r"^X:", text, flags=re.MULTILINE))


def _source_type(suffix: str) -> str:
    if suffix in MUSICXML_SUFFIXES:
        return "musicxml"
    if suffix in ABC_SUFFIXES:
        return "abc"
    return "midi"


def _reader_reason(error: PerfRNNError, path: Path) -> str:
    """Why read_music_file refused `path`, without the (possibly temporary) path."""
    return _one_line(error.describe(path.name, lead=error.path != str(path)))


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "no details"


def _nothing_usable(result: PrepareResult) -> PerfRNNError:
    skipped = result.skipped
    codes = [record.reason_code for record in skipped]
    count = f"{len(skipped)} file{'s' if len(skipped) != 1 else ''}"
    if codes and all(code == SKIP_ONLY_DRUMS for code in codes):
        which = "the only file holds" if len(codes) == 1 else f"all {count} hold"
        return PerfRNNError(f"{which} only drums (MIDI channel 10), and a pitched style "
                            "needs pitched notes",
                            fix=Fix("kind", "drums", "to make a drum style from them"))
    if codes and all(code == SKIP_NO_DRUMS for code in codes):
        which = "the only file has no" if len(codes) == 1 else f"none of the {count} has"
        return PerfRNNError(f"{which} drum notes (MIDI channel 10), and a drum style needs "
                            "them", fix=Fix("kind", "pitched", "for pitched music"))
    if codes and all(code == SKIP_NO_BEAT for code in codes):
        which = "the only file has no" if len(codes) == 1 else f"none of the {count} has a"
        return PerfRNNError(
            f"{which} steady beat that a drum or band style can learn from (their notes do "
            f"not follow their own tempo, or the metre is not 4/4, 3/4, 6/8 or 2/4: "
            f"{skipped[0].source}: {skipped[0].reason}); choose files made on a grid "
            "(sequenced or quantised)",
            fix=Fix("kind", "pitched", "or to train a pitched style"))
    shown = "; ".join(f"{record.source}: {record.reason}" for record in skipped[:3])
    more = f"; and {len(skipped) - 3} more" if len(skipped) > 3 else ""
    only_drums = codes.count(SKIP_ONLY_DRUMS)
    fix = Fix("kind", "drums", f"{only_drums} hold only drums: for a drum style") \
        if only_drums else None
    if len(skipped) == 1:
        return PerfRNNError(f"no usable music: the only file was skipped: {shown}", fix=fix)
    return PerfRNNError(f"no usable music: all {count} were skipped: {shown}{more}", fix=fix)


# ----- splitting and writing ------------------------------------------------------------------


def _assign_splits(used: list[FileRecord], fraction: float, seed: int) -> list[str]:
    """Sets each used record's split; returns run-level warnings.

    Records whose split a corpus manifest gave keep it. The others are
    shuffled with `seed` (from their stable reading order) and the first
    round(fraction * n) go to validation, but at least one when there are two
    or more files and fraction > 0, and never all of them.
    """
    preset = [record for record in used if record.split in SPLITS]
    if preset:
        used = [record for record in used if record.split not in SPLITS]
        splits = {record.split for record in preset}
        if used:
            _assign_splits(used, fraction, seed)
        note = (f"{len(preset)} files took their train/validation split from the corpus "
                "manifest")
        if "validation" not in splits and not any(r.split == "validation" for r in used):
            return [note, "no validation data: the corpus manifest holds out no file"]
        return [note]
    count = len(used)
    if count == 1:
        held_out = 0
    elif fraction == 0:
        held_out = 0
    else:
        held_out = min(max(1, round(fraction * count)), count - 1)
    order = list(range(count))
    random.Random(seed).shuffle(order)
    validation = set(order[:held_out])
    for index, record in enumerate(used):
        record.split = "validation" if index in validation else "train"
    if count == 1:
        return ["only one usable file: it is used for training and there is no validation data; "
                "add more files to measure how well a model generalises"]
    if held_out == 0:
        return ["validation fraction is 0: there is no validation data"]
    return []


def _write_output(result: PrepareResult, spooled: dict[int, Path]) -> None:
    """Writes the TFRecords, manifest and report into a hidden sibling, then renames it."""
    out_dir = result.out_dir
    created = _make_parents(out_dir.parent)
    staging = out_dir.parent / f".{out_dir.name}.partial-{secrets.token_hex(4)}"
    try:
        staging.mkdir()
        _write_tfrecords(staging, result, spooled)
        (staging / MANIFEST_NAME).write_text(
            json.dumps(result.to_manifest(), indent=2, ensure_ascii=False) + "\n",
            encoding="utf-8")
        (staging / REPORT_NAME).write_text(render_prepare_report(result), encoding="utf-8")
        swap_into_place(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for folder in reversed(created):
            try:
                folder.rmdir()
            except OSError:
                break
        raise


def _write_tfrecords(folder: Path, result: PrepareResult, spooled: dict[int, Path]) -> None:
    import tensorflow as tf  # lazy: importing TensorFlow takes seconds

    for split in SPLITS:
        with tf.io.TFRecordWriter(str(folder / f"{split}.tfrecord")) as writer:
            for record in result.used:
                if record.split == split:
                    writer.write(spooled[id(record)].read_bytes())


def _make_parents(folder: Path) -> list[Path]:
    """Creates `folder` and its missing parents; returns the ones created, outermost first."""
    missing = []
    current = folder
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    missing.reverse()
    for item in missing:
        item.mkdir(exist_ok=True)
    return missing
