"""Tests for perfrnn.music_io.read_music_file: MIDI, MusicXML (plain and .mxl) and ABC."""

from __future__ import annotations

import random
import zipfile

import pretty_midi
import pytest

from perfrnn.errors import PerfRNNError
from perfrnn.music_io import read_music_file

SCALE = [60, 62, 64, 65]  # C4 D4 E4 F4

XML_NOTE = """
      <note>
        <pitch><step>{step}</step><octave>4</octave></pitch>
        <duration>1</duration>
        <type>quarter</type>
      </note>"""

XML_TEMPLATE = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE score-partwise PUBLIC "-//Recordare//DTD MusicXML 3.1 Partwise//EN"
  "http://www.musicxml.org/dtds/partwise.dtd">
<score-partwise version="3.1">
  <part-list>
    <score-part id="P1"><part-name>Music</part-name></score-part>
  </part-list>
  <part id="P1">
    <measure number="1">
      <attributes>
        <divisions>1</divisions>
        <key><fifths>0</fifths></key>
        <time><beats>4</beats><beat-type>4</beat-type></time>
        <clef><sign>G</sign><line>2</line></clef>
      </attributes>{tempo}{notes}
    </measure>
  </part>
</score-partwise>
"""

XML_TEMPO = """
      <direction placement="above">
        <direction-type><words>Adagio</words></direction-type>
        <sound tempo="{qpm}"/>
      </direction>"""

MXL_CONTAINER = """<?xml version="1.0" encoding="UTF-8"?>
<container>
  <rootfiles>
    <rootfile full-path="score.xml" media-type="application/vnd.recordare.musicxml+xml"/>
  </rootfiles>
</container>
"""

ABC_TUNE = "X:1\nT:t\nM:4/4\nL:1/4\nK:C\nCDEF|\n"


def musicxml_text(qpm: float | None = None) -> str:
    tempo = XML_TEMPO.format(qpm=qpm) if qpm is not None else ""
    notes = "".join(XML_NOTE.format(step=step) for step in "CDEF")
    return XML_TEMPLATE.format(tempo=tempo, notes=notes)


def sorted_notes(sequence):
    return sorted(sequence.notes, key=lambda note: (note.start_time, note.pitch))


# ----- MIDI --------------------------------------------------------------------


def write_midi_file(path, notes, bpm: float = 120.0):
    """notes: (pitch, start s, end s, velocity)."""
    midi = pretty_midi.PrettyMIDI(initial_tempo=bpm)
    piano = pretty_midi.Instrument(program=0)
    for pitch, start, end, velocity in notes:
        piano.notes.append(pretty_midi.Note(velocity=velocity, pitch=pitch, start=start, end=end))
    midi.instruments.append(piano)
    midi.write(str(path))
    return path


@pytest.mark.parametrize("name", ["primer.mid", "primer.midi", "PRIMER.MID"])
def test_reads_midi_notes_in_seconds(tmp_path, name):
    notes = [(60, 0.0, 0.4, 90), (64, 0.5, 0.9, 70), (67, 1.0, 1.75, 100), (72, 1.5, 2.25, 50)]
    path = write_midi_file(tmp_path / name, notes)

    sequence = read_music_file(path)

    got = [(n.pitch, n.start_time, n.end_time, n.velocity) for n in sorted_notes(sequence)]
    assert len(got) == len(notes)
    for (pitch, start, end, velocity), (g_pitch, g_start, g_end, g_velocity) in zip(notes, got):
        assert g_pitch == pitch
        assert g_velocity == velocity
        assert g_start == pytest.approx(start, abs=0.002)
        assert g_end == pytest.approx(end, abs=0.002)
    assert sequence.total_time == pytest.approx(2.25, abs=0.002)
    assert sequence.filename == name


def test_reads_midi_at_its_own_tempo(tmp_path):
    """Times are seconds whatever the file's tempo: a beat at 60 bpm lasts one second."""
    path = tmp_path / "slow.mid"
    midi = pretty_midi.PrettyMIDI(initial_tempo=60.0)
    piano = pretty_midi.Instrument(program=0)
    for beat, pitch in enumerate(SCALE):
        piano.notes.append(pretty_midi.Note(velocity=80, pitch=pitch, start=beat, end=beat + 0.5))
    midi.instruments.append(piano)
    midi.write(str(path))

    sequence = read_music_file(str(path))  # a str path works too

    assert [n.pitch for n in sorted_notes(sequence)] == SCALE
    assert [n.start_time for n in sorted_notes(sequence)] == pytest.approx([0, 1, 2, 3], abs=0.002)
    assert sequence.tempos[0].qpm == pytest.approx(60.0)


# ----- MusicXML ------------------------------------------------------------------


def test_reads_musicxml_with_tempo(tmp_path):
    path = tmp_path / "scale.xml"
    path.write_text(musicxml_text(qpm=60))

    sequence = read_music_file(path)

    notes = sorted_notes(sequence)
    assert len(notes) == 4
    assert [n.pitch for n in notes] == SCALE
    assert notes[1].start_time == pytest.approx(1.0)
    assert [n.start_time for n in notes] == pytest.approx([0.0, 1.0, 2.0, 3.0])
    assert [n.end_time for n in notes] == pytest.approx([1.0, 2.0, 3.0, 4.0])
    assert sequence.filename == "scale.xml"


def test_reads_musicxml_without_tempo_at_120_qpm(tmp_path):
    path = tmp_path / "scale.musicxml"
    path.write_text(musicxml_text(qpm=None))

    sequence = read_music_file(path)

    notes = sorted_notes(sequence)
    assert len(notes) == 4
    assert [n.pitch for n in notes] == SCALE
    assert notes[1].start_time == pytest.approx(0.5)
    assert [n.start_time for n in notes] == pytest.approx([0.0, 0.5, 1.0, 1.5])
    assert sequence.total_time == pytest.approx(2.0)


def test_reads_compressed_mxl(tmp_path):
    path = tmp_path / "scale.mxl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("META-INF/container.xml", MXL_CONTAINER)
        archive.writestr("score.xml", musicxml_text(qpm=90))

    sequence = read_music_file(path)

    notes = sorted_notes(sequence)
    assert [n.pitch for n in notes] == SCALE
    assert [n.start_time for n in notes] == pytest.approx([0.0, 2 / 3, 4 / 3, 2.0])


# ----- ABC -----------------------------------------------------------------------


def test_reads_abc(tmp_path):
    path = tmp_path / "tune.abc"
    path.write_text(ABC_TUNE)

    sequence = read_music_file(path)

    notes = sorted_notes(sequence)
    assert [n.pitch for n in notes] == SCALE
    assert [n.start_time for n in notes] == pytest.approx([0.0, 0.5, 1.0, 1.5])  # 120 QPM
    assert [n.end_time for n in notes] == pytest.approx([0.5, 1.0, 1.5, 2.0])
    assert sequence.filename == "tune.abc"


def test_reads_first_tune_of_an_abc_tunebook(tmp_path):
    path = tmp_path / "book.abc"
    path.write_text(ABC_TUNE + "\nX:2\nT:second\nM:4/4\nL:1/4\nK:C\nGABc|\n")

    sequence = read_music_file(path)

    assert [n.pitch for n in sorted_notes(sequence)] == SCALE


# ----- errors --------------------------------------------------------------------


def assert_names_file(error: pytest.ExceptionInfo, path) -> str:
    message = str(error.value)
    assert str(path) in message
    assert "\n" not in message
    return message


def test_missing_file(tmp_path):
    path = tmp_path / "nothing.mid"
    with pytest.raises(PerfRNNError) as error:
        read_music_file(path)
    assert "no such file" in assert_names_file(error, path)


def test_directory_is_not_a_file(tmp_path):
    path = tmp_path / "folder.mid"
    path.mkdir()
    with pytest.raises(PerfRNNError) as error:
        read_music_file(path)
    assert_names_file(error, path)


@pytest.mark.parametrize("name", ["notes.txt", "song.mp3", "noext"])
def test_unknown_kind_of_file(tmp_path, name):
    path = tmp_path / name
    path.write_text("C D E F")
    with pytest.raises(PerfRNNError) as error:
        read_music_file(path)
    message = assert_names_file(error, path)
    assert "unknown kind" in message
    assert ".mid" in message and ".abc" in message  # says what would work


def test_corrupt_midi(tmp_path):
    path = tmp_path / "corrupt.mid"
    path.write_bytes(random.Random(0).randbytes(2000))
    with pytest.raises(PerfRNNError) as error:
        read_music_file(path)
    assert "not a valid mid file" in assert_names_file(error, path)


def test_truncated_midi(tmp_path):
    whole = write_midi_file(tmp_path / "whole.mid", [(60 + i, i * 0.1, i * 0.1 + 0.5, 80)
                                                     for i in range(40)])
    path = tmp_path / "truncated.mid"
    path.write_bytes(whole.read_bytes()[:60])
    with pytest.raises(PerfRNNError) as error:
        read_music_file(path)
    assert_names_file(error, path)


@pytest.mark.parametrize("text", [
    "this is not xml at all",
    "<score-partwise><part-list>",  # cut short
    musicxml_text(qpm=60)[:400],
])
def test_corrupt_musicxml(tmp_path, text):
    path = tmp_path / "corrupt.xml"
    path.write_text(text)
    with pytest.raises(PerfRNNError) as error:
        read_music_file(path)
    assert "not a valid xml file" in assert_names_file(error, path)


def test_corrupt_mxl(tmp_path):
    path = tmp_path / "corrupt.mxl"
    path.write_bytes(random.Random(1).randbytes(500))
    with pytest.raises(PerfRNNError) as error:
        read_music_file(path)
    assert_names_file(error, path)


@pytest.mark.parametrize("text", [
    "",
    "hello, no tune here\n",
    "% just a comment\n",
])
def test_abc_without_tunes(tmp_path, text):
    path = tmp_path / "empty.abc"
    path.write_text(text)
    with pytest.raises(PerfRNNError) as error:
        read_music_file(path)
    assert "no tune" in assert_names_file(error, path)
