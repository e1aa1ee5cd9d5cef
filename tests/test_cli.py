"""Tests for the command line, `python -m perfrnn generate|info` (perfrnn.cli.main).

Almost everything runs in-process through `main([...])`; two tests start a real
`python -m perfrnn` to check what a user sees on the terminal.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import mido
import pretty_midi
import pytest
from test_midi_writer import timed_messages

from perfrnn.cli import main

REPO_ROOT = Path(__file__).resolve().parents[1]
PIANO_STYLE = "performance_with_dynamics_tiny"  # Magenta's bundles are named after the file
CONDITIONED_STYLE = "multiconditioned_performance_with_dynamics_tiny"
A_MINOR_WEIGHTS = "1,0,1,0,2,1,0,1,0,2,0,1"  # what --key Am stands for, C to B
PRIMER_NOTES = [(60, 0.0, 0.4), (64, 0.5, 0.9), (67, 1.0, 1.4), (72, 1.5, 1.9)]
PRIMER_END = 1.9


def run(capsys, *args) -> tuple[int, str, str]:
    """main(args) -> (exit status, stdout, stderr)."""
    status = main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def generate(capsys, bundle, out, *args) -> tuple[str, list[Path]]:
    """Runs a generate that must succeed; returns stdout and the files in `out`."""
    status, stdout, stderr = run(capsys, "generate", "--bundle", bundle, "--out", out, *args)
    assert status == 0, stderr
    assert "Traceback" not in stderr
    return stdout, sorted(Path(out).iterdir())


def note_ons(path) -> list[tuple[int, int, int]]:
    """(tick, pitch, velocity) of every sounding note_on in the file."""
    return [(tick, message.note, message.velocity)
            for track in mido.MidiFile(path).tracks
            for tick, message in timed_messages(track)
            if message.type == "note_on" and message.velocity > 0]


def pretty_notes(path) -> list[pretty_midi.Note]:
    midi = pretty_midi.PrettyMIDI(str(path))
    return sorted((note for instrument in midi.instruments for note in instrument.notes),
                  key=lambda note: (note.start, note.pitch))


def assert_daw_ready(path: Path) -> mido.MidiFile:
    """The file parses in mido (type 1, 480 ticks per beat) and pretty_midi, with notes."""
    midi = mido.MidiFile(path)
    assert midi.type == 1
    assert midi.ticks_per_beat == 480
    assert len(midi.tracks) == 2  # conductor + piano
    assert note_ons(path), "no notes"
    notes = pretty_notes(path)
    assert notes
    assert all(0 <= note.pitch <= 127 and note.end > note.start >= 0 for note in notes)
    return midi


@pytest.fixture(scope="module")
def native(piano_bundle_path, tmp_path_factory):
    """seed 7, 10 s, at the style's own tempo: (stdout, path), shared as a reference."""
    out = tmp_path_factory.mktemp("native")
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = main(["generate", "--bundle", str(piano_bundle_path), "--seconds", "10",
                       "--seed", "7", "--out", str(out)])
    assert status == 0, stderr.getvalue()
    files = sorted(out.iterdir())
    assert len(files) == 1
    return stdout.getvalue(), files[0]


# ----- generate ------------------------------------------------------------------


def test_generate_writes_one_named_file_and_prints_seed_and_path(native):
    stdout, path = native
    assert path.name == f"{PIANO_STYLE}-10s-seed7.mid"
    lines = stdout.splitlines()
    assert lines[0].startswith("seed 7:")
    assert "1 MIDI file" in lines[0]
    assert [line.strip() for line in lines[1:]] == [str(path)]

    midi = assert_daw_ready(path)
    conductor = [message for message in midi.tracks[0] if message.is_meta]
    tempos = [message.tempo for message in conductor if message.type == "set_tempo"]
    assert tempos == [500_000]  # the bundle's 120 bpm
    assert midi.tracks[1].name == "piano"
    programs = [m.program for m in midi.tracks[1] if m.type == "program_change"]
    assert programs == [0]
    # 10 s of music at 120 bpm: notes until near the end, nothing past it.
    notes = pretty_notes(path)
    end = max(note.end for note in notes)
    assert 5.0 < end <= 10.0 + 1e-6
    assert min(note.start for note in notes) < 2.0


def test_generate_variations(capsys, piano_bundle_path, tmp_path):
    stdout, files = generate(capsys, piano_bundle_path, tmp_path / "out",
                             "--seconds", 10, "--seed", 7, "--variations", 3)
    assert [path.name for path in files] == [
        f"{PIANO_STYLE}-10s-seed7-v{i}.mid" for i in (1, 2, 3)]
    lines = stdout.splitlines()
    assert lines[0].startswith("seed 7:")
    assert "3 MIDI file" in lines[0]
    assert sorted(line.strip() for line in lines[1:]) == sorted(str(path) for path in files)
    for path in files:
        assert_daw_ready(path)
    assert len({path.read_bytes() for path in files}) == 3, "variations should differ"


def test_same_seed_gives_identical_bytes_and_other_seed_differs(capsys, piano_bundle_path,
                                                                tmp_path, native):
    _, first = native
    _, again = generate(capsys, piano_bundle_path, tmp_path / "again",
                        "--seconds", 10, "--seed", 7)
    _, other = generate(capsys, piano_bundle_path, tmp_path / "other",
                        "--seconds", 10, "--seed", 8)
    assert again[0].name == first.name
    assert again[0].read_bytes() == first.read_bytes()
    assert other[0].name == f"{PIANO_STYLE}-10s-seed8.mid"
    assert other[0].read_bytes() != first.read_bytes()


def test_random_seed_is_printed_and_reproduces(capsys, piano_bundle_path, tmp_path):
    stdout, files = generate(capsys, piano_bundle_path, tmp_path / "random", "--seconds", 3)
    match = re.match(r"seed (\d+): ", stdout)
    assert match, stdout
    seed = int(match.group(1))
    assert 0 <= seed <= 2**31 - 1
    assert [path.name for path in files] == [f"{PIANO_STYLE}-3s-seed{seed}.mid"]
    _, again = generate(capsys, piano_bundle_path, tmp_path / "again",
                        "--seconds", 3, "--seed", seed)
    assert again[0].read_bytes() == files[0].read_bytes()


def test_bpm_sets_tempo_and_stretches_the_music(capsys, piano_bundle_path, tmp_path, native):
    _, reference = native
    _, files = generate(capsys, piano_bundle_path, tmp_path / "out",
                        "--seconds", 10, "--seed", 7, "--bpm", 60)
    midi = assert_daw_ready(files[0])
    tempos = [m.tempo for m in midi.tracks[0] if m.type == "set_tempo"]
    assert tempos == [1_000_000]
    # A length is the file's: 10 s at half the tempo is the first 5 s of the
    # style's music, on the same ticks, each note lasting twice as long.
    assert midi.length == pytest.approx(10.0, abs=1e-3)
    first_half = [on for on in note_ons(reference) if on[0] < 10 * 480]
    assert first_half and note_ons(files[0]) == first_half
    slow, fast = pretty_notes(files[0]), pretty_notes(reference)[:len(first_half)]
    assert [n.pitch for n in slow] == [n.pitch for n in fast]
    assert [n.start for n in slow] == pytest.approx([2 * n.start for n in fast], abs=1e-6)


def test_quantize_snaps_onsets_to_sixteenths(capsys, piano_bundle_path, tmp_path, native):
    _, reference = native
    assert any(tick % 120 for tick, _, _ in note_ons(reference)), "reference already on grid"
    _, files = generate(capsys, piano_bundle_path, tmp_path / "out",
                        "--seconds", 10, "--seed", 7, "--quantize")
    assert_daw_ready(files[0])
    onsets = note_ons(files[0])
    assert onsets
    assert all(tick % 120 == 0 for tick, _, _ in onsets)
    assert {pitch for _, pitch, _ in onsets} == {pitch for _, pitch, _ in note_ons(reference)}


def test_program_sets_the_part_program(capsys, piano_bundle_path, tmp_path, native):
    _, reference = native
    _, files = generate(capsys, piano_bundle_path, tmp_path / "out",
                        "--seconds", 10, "--seed", 7, "--program", 6)
    midi = assert_daw_ready(files[0])
    assert not [m for m in midi.tracks[0] if m.type == "program_change"]
    changes = [(tick, m.program) for tick, m in timed_messages(midi.tracks[1])
               if m.type == "program_change"]
    assert changes == [(0, 6)]
    assert pretty_midi.PrettyMIDI(str(files[0])).instruments[0].program == 6
    assert note_ons(files[0]) == note_ons(reference)


def write_primer(path: Path, notes=PRIMER_NOTES) -> Path:
    midi = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    piano = pretty_midi.Instrument(program=0)
    for pitch, start, end in notes:
        piano.notes.append(pretty_midi.Note(velocity=90, pitch=pitch, start=start, end=end))
    midi.instruments.append(piano)
    midi.write(str(path))
    return path


@pytest.fixture
def primer_path(tmp_path) -> Path:
    return write_primer(tmp_path / "primer.mid")


def test_primer_is_continued(capsys, piano_bundle_path, tmp_path, primer_path):
    seconds = 5
    _, files = generate(capsys, piano_bundle_path, tmp_path / "out",
                        "--seconds", seconds, "--seed", 7, "--primer", primer_path)
    assert [path.name for path in files] == [f"{PIANO_STYLE}-5s-seed7.mid"]
    assert_daw_ready(files[0])
    notes = pretty_notes(files[0])
    # The output starts with the primer, note for note (native tempo is 120 bpm).
    opening = [note for note in notes if note.start < PRIMER_END - 0.005]
    assert [note.pitch for note in opening] == [pitch for pitch, _, _ in PRIMER_NOTES]
    for note, (_, start, end) in zip(opening, PRIMER_NOTES):
        assert note.start == pytest.approx(start, abs=0.01)
        assert note.end == pytest.approx(end, abs=0.01)
    # ... and goes on for about the requested length after the primer's end.
    assert any(note.start >= PRIMER_END - 0.005 for note in notes), "nothing new"
    end = max(note.end for note in notes)
    assert PRIMER_END + seconds / 2 < end <= PRIMER_END + seconds + 0.01


MUSICXML_PRIMER = """<?xml version="1.0" encoding="UTF-8"?>
<score-partwise version="3.1">
  <part-list><score-part id="P1"><part-name>Music</part-name></score-part></part-list>
  <part id="P1">
    <measure number="1">
      <attributes><divisions>1</divisions><time><beats>4</beats><beat-type>4</beat-type></time>
      </attributes>
      <direction><direction-type><words>Allegro</words></direction-type>
        <sound tempo="120"/></direction>
{notes}
    </measure>
  </part>
</score-partwise>
"""


def test_musicxml_primer(capsys, piano_bundle_path, tmp_path):
    notes = "".join(f"<note><pitch><step>{step}</step><octave>4</octave></pitch>"
                    "<duration>1</duration><type>quarter</type></note>\n" for step in "CDEF")
    primer = tmp_path / "scale.musicxml"
    primer.write_text(MUSICXML_PRIMER.format(notes=notes))
    _, files = generate(capsys, piano_bundle_path, tmp_path / "out",
                        "--seconds", 2, "--seed", 7, "--primer", primer)
    opening = [note for note in pretty_notes(files[0]) if note.start < 1.995]
    assert [note.pitch for note in opening] == [60, 62, 64, 65]
    assert [note.start for note in opening] == pytest.approx([0.0, 0.5, 1.0, 1.5], abs=0.01)
    assert max(note.end for note in pretty_notes(files[0])) <= 4.0 + 0.01


def test_conditioned_bundle_with_key_and_density(capsys, conditioned_bundle_path, tmp_path):
    stdout, files = generate(capsys, conditioned_bundle_path, tmp_path / "am",
                             "--seconds", 20, "--seed", 3, "--key", "Am",
                             "--notes-per-second", 8)
    assert stdout.startswith("seed 3:")
    assert [path.name for path in files] == [f"{CONDITIONED_STYLE}-20s-seed3.mid"]
    assert_daw_ready(files[0])

    # 12 weights equal to A minor's histogram give the very same music ...
    _, weighted = generate(capsys, conditioned_bundle_path, tmp_path / "weights",
                           "--seconds", 20, "--seed", 3, "--key", A_MINOR_WEIGHTS,
                           "--notes-per-second", 8)
    assert weighted[0].read_bytes() == files[0].read_bytes()
    # ... and another key changes it: the control reaches the model. (This tiny model
    # barely tells keys apart: in 5 s, sampled with the same random numbers, no
    # event came out otherwise.)
    _, other = generate(capsys, conditioned_bundle_path, tmp_path / "other",
                        "--seconds", 20, "--seed", 3, "--key", "F#",
                        "--notes-per-second", 8)
    assert other[0].read_bytes() != files[0].read_bytes()


def song_marks(path) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(bar, marker) and (bar, chord symbol) of the conductor track's song plan
    (4/4 at 480 ticks per beat)."""
    marks = [(tick // (4 * 480), message.type, message.text)
             for tick, message in timed_messages(mido.MidiFile(path).tracks[0])
             if message.type in ("marker", "text")]
    return ([(bar, text) for bar, kind, text in marks if kind == "marker"],
            [(bar, text) for bar, kind, text in marks if kind == "text"])


def test_chords_and_form_are_followed(capsys, conditioned_bundle_path, tmp_path):
    """A key-conditioned piano follows --chords bar by bar, in the --form asked for:
    the file's conductor track carries the plan it played."""
    _, song = generate(capsys, conditioned_bundle_path, tmp_path / "song",
                       "--bars", 8, "--seed", 3, "--chords", "Am F C G")
    markers, chords = song_marks(song[0])
    # a song of 8 bars: A, and a one-bar ending that starts the progression again
    assert markers == [(0, "A"), (7, "Ending")]
    assert chords == list(enumerate(["Am", "F", "C", "G", "Am", "F", "C", "Am"]))
    assert_daw_ready(song[0])

    _, loop = generate(capsys, conditioned_bundle_path, tmp_path / "loop",
                       "--bars", 8, "--seed", 3, "--chords", "Am | % | F | G", "--form", "LOOP")
    markers, chords = song_marks(loop[0])
    assert chords == [(0, "Am"), (2, "F"), (3, "G"), (4, "Am"), (6, "F"), (7, "G")]
    assert markers == [(0, "A")]  # the main section only
    assert loop[0].read_bytes() != song[0].read_bytes()

    _, looped = generate(capsys, conditioned_bundle_path, tmp_path / "looped",
                         "--bars", 8, "--seed", 3, "--chords", "Am F C G", "--loop")
    assert song_marks(looped[0])[0] == [(0, "A")]  # --loop plays the loop form


@pytest.fixture(scope="module")
def song_band_path(tmp_path_factory) -> Path:
    """A small band that follows chords (song inputs, no key control), whose
    own progression is C F G C."""
    from conftest import small_band_bundle

    from perfrnn.bundle import BundleMetadata, write_bundle
    from perfrnn.configs import BAND_TRACKS

    path = tmp_path_factory.mktemp("songband") / "songband.mag"
    write_bundle(small_band_bundle(config_id="metric_band_song", metadata=BundleMetadata(
        style="songband", tracks=BAND_TRACKS, default_bpm=120.0,
        progressions=[["C", "F", "G", "C"]])), path)
    return path


def test_key_of_a_band_that_follows_chords(capsys, song_band_path, tmp_path):
    """--key of a style that is not key-conditioned is the key its own
    progressions are played in."""
    _, files = generate(capsys, song_band_path, tmp_path / "g", "--bars", 4, "--seed", 2,
                        "--key", "G")
    assert song_marks(files[0])[1] == [(0, "G"), (1, "C"), (2, "D"), (3, "G")]
    _, relative = generate(capsys, song_band_path, tmp_path / "em", "--bars", 4, "--seed", 2,
                           "--key", "Em")
    assert song_marks(relative[0])[1] == song_marks(files[0])[1]  # E minor: G major's notes
    _, given = generate(capsys, song_band_path, tmp_path / "given", "--bars", 4, "--seed", 2,
                        "--chords", "Dm7 G7 Cmaj7 Cmaj7")
    assert song_marks(given[0])[1] == [(0, "Dm7"), (1, "G7"), (2, "Cmaj7")]

    status, stdout, stderr = run(capsys, "generate", "--bundle", song_band_path, "--out",
                                 tmp_path / "weights", "--bars", 4, "--key", A_MINOR_WEIGHTS)
    assert status == 2 and stdout == "" and stderr.count("\n") == 1
    assert stderr.startswith("error: ") and "key name" in stderr
    assert not (tmp_path / "weights").exists()


# ----- errors --------------------------------------------------------------------


def corrupt_bytes(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def error_case(name: str, tmp_path: Path, piano: Path, conditioned: Path) -> list[str]:
    """The generate arguments (after --out) of one mistake."""
    if name == "truncated bundle":
        bundle = tmp_path / "truncated.mag"
        bundle.write_bytes(piano.read_bytes()[:1000])
    elif name == "random bytes bundle":
        bundle = tmp_path / "random.mag"
        bundle.write_bytes(corrupt_bytes(5000))
    elif name == "missing bundle":
        bundle = tmp_path / "no-such-bundle.mag"
    elif name.startswith("conditioned"):
        bundle = conditioned
    else:
        bundle = piano
    args = ["--bundle", str(bundle), "--seconds", "2", "--seed", "1"]
    if name in ("bars 0", "200 bars at 40 bpm"):  # a length in bars instead
        args = ["--bundle", str(bundle), "--seed", "1"]
    if name == "corrupt primer":
        (tmp_path / "corrupt.mid").write_bytes(corrupt_bytes(3000, seed=1))
    if name == "unknown primer kind":
        (tmp_path / "melody.txt").write_text("C D E F G")
    extra = {
        "negative seconds": ["--seconds", "-5"],
        "zero seconds": ["--seconds", "0"],
        "over ten minutes": ["--seconds", "601"],
        "nan seconds": ["--seconds", "nan"],
        "zero temperature": ["--temperature", "0"],
        "negative temperature": ["--temperature", "-1"],
        "zero variations": ["--variations", "0"],
        "17 variations": ["--variations", "17"],
        "negative seed": ["--seed", "-5"],
        "seed over 2**31-1": ["--seed", str(2**31)],
        "missing primer": ["--primer", str(tmp_path / "no-such-primer.mid")],
        "corrupt primer": ["--primer", str(tmp_path / "corrupt.mid")],
        "unknown primer kind": ["--primer", str(tmp_path / "melody.txt")],
        "density for unconditioned bundle": ["--notes-per-second", "8"],
        "key for unconditioned bundle": ["--key", "C"],
        "program 200": ["--program", "200"],
        "program -1": ["--program", "-1"],
        "bpm 0": ["--bpm", "0"],
        "bpm -120": ["--bpm", "-120"],
        "bars 0": ["--bars", "0"],
        "loop without bars": ["--loop"],
        "200 bars at 40 bpm": ["--bars", "200", "--bpm", "40"],
        "bars and seconds": ["--bars", "4"],
        "unknown key H": ["--key", "H"],
        "conditioned 11 weights": ["--key", "1,1,1,1,1,1,1,1,1,1,1"],
        "conditioned weights not numbers": ["--key", "1,1,1,1,1,1,1,1,1,1,1,x"],
        "conditioned all zero weights": ["--key", "0,0,0,0,0,0,0,0,0,0,0,0"],
        "conditioned negative weight": ["--key=-1,1,1,1,1,1,1,1,1,1,1,1"],
        "conditioned negative density": ["--notes-per-second", "-1"],
        "unknown chord": ["--chords", "C Hm7 F"],
        "two chords in a bar": ["--chords", "C G | Am"],
        "progression over 64 bars": ["--chords", " ".join(["C", "G"] * 33)],
        "empty progression": ["--chords", " | "],
        "endless form": ["--form", "endless"],
        "unknown form": ["--form", "xyz"],
        "chords for a style that follows none": ["--chords", "C G Am F"],
    }
    return args + extra.get(name, [])


ERROR_CASES = [
    "missing bundle", "truncated bundle", "random bytes bundle",
    "negative seconds", "zero seconds", "over ten minutes", "nan seconds",
    "zero temperature", "negative temperature", "zero variations", "17 variations",
    "negative seed", "seed over 2**31-1",
    "missing primer", "corrupt primer", "unknown primer kind",
    "density for unconditioned bundle", "key for unconditioned bundle",
    "program 200", "program -1", "bpm 0", "bpm -120", "bars 0", "loop without bars",
    "200 bars at 40 bpm", "bars and seconds", "unknown key H",
    "conditioned 11 weights", "conditioned weights not numbers",
    "conditioned all zero weights", "conditioned negative weight",
    "conditioned negative density",
    "unknown chord", "two chords in a bar", "progression over 64 bars", "empty progression",
    "endless form", "unknown form", "chords for a style that follows none",
]


@pytest.mark.parametrize("case", ERROR_CASES)
def test_generate_mistakes_exit_2_with_one_error_line(capsys, tmp_path, piano_bundle_path,
                                                      conditioned_bundle_path, case):
    out = tmp_path / "out"
    args = error_case(case, tmp_path, piano_bundle_path, conditioned_bundle_path)
    status, stdout, stderr = run(capsys, "generate", "--out", out, *args)
    assert status == 2
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    assert len(lines[0]) > len("error: ") + 10  # says what is wrong
    assert stdout == ""
    assert not out.exists(), "no output for a failed run"


@pytest.mark.parametrize("case, words", [
    ("missing bundle", ["no-such-bundle.mag", "no such file"]),
    ("truncated bundle", ["truncated.mag"]),
    ("random bytes bundle", ["random.mag"]),
    ("over ten minutes", ["601", "10 minutes"]),
    ("zero temperature", ["temperature"]),
    ("17 variations", ["variations", "16"]),
    ("negative seed", ["seed", "-5"]),
    ("missing primer", ["no-such-primer.mid"]),
    ("corrupt primer", ["corrupt.mid"]),
    ("unknown primer kind", ["melody.txt", ".txt"]),
    ("density for unconditioned bundle", ["not conditioned"]),
    ("program 200", ["--program", "200"]),
    ("bpm 0", ["tempo", "20"]),
    ("bars 0", ["bars", "256"]),
    ("loop without bars", ["loop", "bars"]),
    ("200 bars at 40 bpm", ["200 bars", "40 BPM", "10 minutes"]),
    ("bars and seconds", ["--bars", "--seconds", "not both"]),
    ("unknown key H", ["'H'"]),
    ("unknown chord", ["'Hm7'", "maj7", "m7b5", "sus4"]),
    ("two chords in a bar", ["one chord per bar"]),
    ("progression over 64 bars", ["64 bars"]),
    ("endless form", ["radio", "song or loop"]),
    ("unknown form", ["'xyz'", "song or loop"]),
    ("chords for a style that follows none", [PIANO_STYLE, "does not follow chords"]),
])
def test_error_messages_name_the_problem(capsys, tmp_path, piano_bundle_path,
                                         conditioned_bundle_path, case, words):
    args = error_case(case, tmp_path, piano_bundle_path, conditioned_bundle_path)
    status, _, stderr = run(capsys, "generate", "--out", tmp_path / "out", *args)
    assert status == 2
    for word in words:
        assert word in stderr, f"{word!r} not in {stderr!r}"


@pytest.mark.parametrize("args", [
    ["--seed", "abc"], ["--seconds", "ten"], ["--variations", "1.5"], ["--program", "six"],
])
def test_malformed_numbers_are_usage_errors(capsys, piano_bundle_path, tmp_path, args):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--bundle", str(piano_bundle_path), "--out", str(out), *args])
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err
    assert "error:" in stderr and "Traceback" not in stderr
    assert not out.exists()


def test_generate_needs_a_bundle(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--seconds", "5"])
    assert exit_info.value.code == 2
    assert "--bundle" in capsys.readouterr().err


def test_out_that_is_a_file_is_an_error(capsys, piano_bundle_path, tmp_path):
    out = tmp_path / "not-a-folder"
    out.write_text("in the way")
    status, _, stderr = run(capsys, "generate", "--bundle", piano_bundle_path, "--out", out,
                            "--seconds", 1, "--seed", 1)
    assert status == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(out) in lines[0]
    assert out.read_text() == "in the way"


def test_tiny_length_is_refused_with_the_minimum(capsys, piano_bundle_path, tmp_path):
    status, _, stderr = run(capsys, "generate", "--bundle", piano_bundle_path,
                            "--out", tmp_path / "out", "--seconds", "0.001", "--seed", 1)
    assert status == 2
    assert stderr.startswith("error: ") and "at least 0.1 s" in stderr


@pytest.mark.parametrize("weights", ["nan,1,1,1,1,1,1,1,1,1,1,1", "inf,1,1,1,1,1,1,1,1,1,1,1"])
def test_non_finite_key_weights_are_rejected(capsys, conditioned_bundle_path, tmp_path, weights):
    out = tmp_path / "out"
    status, _, stderr = run(capsys, "generate", "--bundle", conditioned_bundle_path, "--out", out,
                            "--seconds", 1, "--seed", 1, "--key", weights)
    assert status == 2
    assert stderr.startswith("error: ")
    assert not out.exists()


# ----- info ----------------------------------------------------------------------


def info_fields(stdout: str) -> dict[str, str]:
    """'key   value' lines of `info` as a dict (keys with spaces, as printed)."""
    fields = {}
    for line in stdout.splitlines():
        match = re.match(r"(\S+(?: \S+)*)\s{2,}(.*)$", line)
        if match:
            fields[match.group(1)] = match.group(2).strip()
    return fields


def test_info_prints_the_bundle(capsys, piano_bundle_path):
    status, stdout, stderr = run(capsys, "info", piano_bundle_path)
    assert status == 0, stderr
    fields = info_fields(stdout)
    assert fields["style"] == PIANO_STYLE
    assert fields["generator id"] == "performance_with_dynamics"
    assert fields["layers"] == "[64, 64]"
    assert fields["magenta compatible"] == "True"
    assert fields["controls"] == "-"
    assert fields["size bytes"] == str(piano_bundle_path.stat().st_size)
    assert json.loads(fields["tracks"]) == [{"name": "piano", "program": 0, "is_drum": False}]


def test_info_json(capsys, piano_bundle_path, conditioned_bundle_path):
    status, stdout, _ = run(capsys, "info", "--json", piano_bundle_path)
    assert status == 0
    summary = json.loads(stdout)
    assert summary["style"] == PIANO_STYLE
    assert summary["generator_id"] == "performance_with_dynamics"
    assert summary["layers"] == [64, 64]
    assert summary["magenta_compatible"] is True
    assert summary["controls"] == []
    assert summary["follows_chords"] is False
    assert summary["default_bpm"] == 120.0
    assert summary["input_size"] == summary["classes"] == 388
    assert summary["parameters"] > 0

    status, stdout, _ = run(capsys, "info", conditioned_bundle_path, "--json")
    assert status == 0
    summary = json.loads(stdout)
    assert summary["style"] == CONDITIONED_STYLE
    assert summary["generator_id"] == "multiconditioned_performance_with_dynamics"
    assert summary["layers"] == [64, 64]
    assert summary["magenta_compatible"] is True
    assert len(summary["controls"]) == 2  # note density and pitch histogram
    assert summary["follows_chords"] is True  # its key control, bar by bar
    assert summary["input_size"] > summary["classes"]


@pytest.mark.parametrize("kind", ["missing", "truncated"])
def test_info_bad_bundle(capsys, tmp_path, piano_bundle_path, kind):
    bundle = tmp_path / f"{kind}.mag"
    if kind == "truncated":
        bundle.write_bytes(piano_bundle_path.read_bytes()[:1000])
    status, stdout, stderr = run(capsys, "info", bundle)
    assert status == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(bundle) in lines[0]
    assert "Traceback" not in stderr
    assert stdout == ""


# ----- a real process ------------------------------------------------------------


def run_module(*args: str) -> subprocess.CompletedProcess:
    """`python -m perfrnn ARGS` as a user runs it: TensorFlow's log level left unset."""
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, "-m", "perfrnn", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_module_help():
    result = run_module("--help")
    assert result.returncode == 0, result.stderr
    assert "generate" in result.stdout and "info" in result.stdout
    assert "usage:" in result.stdout


def test_module_missing_bundle_is_one_clean_line(tmp_path):
    missing = tmp_path / "missing.mag"
    result = run_module("generate", "--bundle", str(missing), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and str(missing) in lines[0]
    for noise in ("Traceback", "oneDNN", "absl", "tensorflow", "cpu_feature_guard", "ffmpeg"):
        assert noise not in result.stderr
    assert not (tmp_path / "out").exists()
