"""Format readers of the dataset builders: WAD lumps, MUS scores, LMMS projects, sdists,
and the family split."""

from __future__ import annotations

import io
import struct
import tarfile
import zlib
from pathlib import Path

import mido
import pretty_midi
import pytest
from test_datasets_fetch import tiny_midi

from datasets.build import CorpusPiece, build_corpus, select_pieces
from datasets.errors import DatasetError, SkipPiece
from datasets.lmms import convert_project
from datasets.manifest import read_manifest, split_families
from datasets.sources import maestro_sdist_pieces, read_bytes
from datasets.wad import lump_midi, mus_to_midi, music_lumps, read_lumps


def make_mus(events: bytes) -> bytes:
    """A MUS lump: header (score length, start, channels, instruments) then ``events``."""
    header = b"MUS\x1a" + struct.pack("<HHHHHH", len(events), 16, 2, 0, 0, 0)
    return header + events


def make_wad(lumps: list[tuple[str, bytes]]) -> bytes:
    data = b""
    directory = b""
    offset = 12
    for name, payload in lumps:
        directory += struct.pack("<ii8s", offset, len(payload), name.encode())
        data += payload
        offset += len(payload)
    return b"PWAD" + struct.pack("<ii", len(lumps), 12 + len(data)) + data + directory


# Channel 0: program 30, note 60 at volume 100, wait 140 ticks (1 s), release;
# channel 15 (percussion): note 36 at volume 90, wait 70, release; end of score.
MUS_EVENTS = bytes([
    0x40, 0x00, 30,             # controller 0 (program change) on channel 0: program 30
    0x90, 0x80 | 60, 100, 0x81, 0x0C,  # last+play note 60 vol 100; delay 0x01,0x0C = 140
    0x00, 60,                   # release note 60
    0x9F, 0x80 | 36, 90, 0x46,  # last + play note 36 on channel 15, volume 90; delay 70
    0x0F, 36,                   # release note 36 on channel 15
    0x60,                       # score end
])


def test_mus_to_midi_timing_channels_and_programs():
    data = mus_to_midi(make_mus(MUS_EVENTS))
    mid = mido.MidiFile(file=io.BytesIO(data))
    pm = pretty_midi.PrettyMIDI(io.BytesIO(data))
    lead = next(i for i in pm.instruments if not i.is_drum)
    drums = next(i for i in pm.instruments if i.is_drum)
    assert lead.program == 30
    assert [(n.pitch, n.velocity) for n in lead.notes] == [(60, 100)]
    assert lead.notes[0].end - lead.notes[0].start == pytest.approx(1.0, abs=0.01)
    assert [(n.pitch, n.velocity) for n in drums.notes] == [(36, 90)]
    assert drums.notes[0].end - drums.notes[0].start == pytest.approx(0.5, abs=0.01)
    assert any(m.channel == 9 for t in mid.tracks for m in t if m.type == "note_on")


def test_mus_truncated_score_is_skipped():
    with pytest.raises(SkipPiece):
        mus_to_midi(make_mus(bytes([0x90, 0x80 | 60])))


def test_wad_reader_returns_midi_and_converted_mus_lumps(tmp_path):
    path = tmp_path / "test.wad"
    path.write_bytes(make_wad([("MAP01", b"x" * 10), ("D_RUNNIN", tiny_midi(50)),
                               ("D_MUSIC", make_mus(MUS_EVENTS))]))
    assert [lump.name for lump in read_lumps(path)] == ["MAP01", "D_RUNNIN", "D_MUSIC"]
    music = music_lumps(path)
    assert [lump.name for lump in music] == ["D_RUNNIN", "D_MUSIC"]
    for lump in music:
        assert lump_midi(lump)[:4] == b"MThd"
    bad = tmp_path / "bad.wad"
    bad.write_bytes(b"NOPE" + b"\0" * 20)
    with pytest.raises(DatasetError):
        read_lumps(bad)


LMMS_PROJECT = """<?xml version="1.0"?>
<lmms-project version="1.0" type="song">
 <head bpm="128" timesig_numerator="4" timesig_denominator="4" masterpitch="0"/>
 <song>
  <trackcontainer type="song">
   <track type="0" name="Sub Bass" muted="0">
    <instrumenttrack basenote="57" vol="100"><instrument name="tripleoscillator"/></instrumenttrack>
    <pattern pos="0" len="192" steps="16" muted="0">
     <note pos="0" len="48" key="33" vol="100"/>
     <note pos="96" len="48" key="36" vol="100"/>
    </pattern>
   </track>
   <track type="0" name="muted lead" muted="1">
    <instrumenttrack basenote="57"><instrument name="tripleoscillator"/></instrumenttrack>
    <pattern pos="0" len="192"><note pos="0" len="48" key="60" vol="100"/></pattern>
   </track>
   <track type="1" name="Beat" muted="0">
    <bbtrack>
     <trackcontainer type="bbtrackcontainer">
      <track type="0" name="kick01.ogg" muted="0">
       <instrumenttrack basenote="57"><instrument name="audiofileprocessor">
        <audiofileprocessor src="drums/kick01.ogg"/></instrument></instrumenttrack>
       <pattern pos="0" len="192" steps="16">
        <note pos="0" len="-192" key="57" vol="100"/>
        <note pos="96" len="-192" key="57" vol="100"/>
       </pattern>
      </track>
      <track type="0" name="HiHat" muted="0">
       <instrumenttrack basenote="57"><instrument name="audiofileprocessor">
        <audiofileprocessor src="drums/hihat_closed01.ogg"/></instrument></instrumenttrack>
       <pattern pos="0" len="192" steps="16"><note pos="48" len="-192" key="57" vol="50"/></pattern>
      </track>
     </trackcontainer>
    </bbtrack>
    <bbtco pos="192" len="384" muted="0"/>
   </track>
  </trackcontainer>
 </song>
</lmms-project>
"""


def test_lmms_project_converts_song_and_beat_patterns(tmp_path):
    packed = tmp_path / "demo.mmpz"
    raw = LMMS_PROJECT.encode()
    packed.write_bytes(struct.pack(">I", len(raw)) + zlib.compress(raw))
    data = convert_project(packed)
    pm = pretty_midi.PrettyMIDI(io.BytesIO(data))
    assert pm.get_tempo_changes()[1][0] == pytest.approx(128, abs=0.01)
    bass = [i for i in pm.instruments if not i.is_drum]
    assert len(bass) == 1 and bass[0].program == 38  # the muted lead is left out
    assert [n.pitch for n in bass[0].notes] == [45, 48]  # LMMS key 33 (A1) is MIDI 45
    drums = [i for i in pm.instruments if i.is_drum]
    kicks = sorted(n.start for i in drums for n in i.notes if n.pitch == 36)
    hats = [n for i in drums for n in i.notes if n.pitch == 42]
    beat = 60 / 128
    # The one-bar beat pattern loops twice in a clip that starts at bar 2.
    assert kicks == pytest.approx([4 * beat, 6 * beat, 8 * beat, 10 * beat], abs=1e-3)
    assert len(hats) == 2
    plain = tmp_path / "demo.mmp"
    plain.write_text(LMMS_PROJECT)
    assert convert_project(plain) == data


def test_maestro_files_are_taken_from_the_miditok_sdist(tmp_path):
    sdist = tmp_path / "miditok-3.1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        for name, data in [("miditok-3.1.0/tests/MIDIs_one_track/Maestro_1.mid", tiny_midi(60)),
                           ("miditok-3.1.0/tests/MIDIs_one_track/POP909_008.mid", tiny_midi(61)),
                           ("miditok-3.1.0/tests/MIDIs_one_track/Maestro_2.mid", tiny_midi(62))]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    pieces = maestro_sdist_pieces(tmp_path, sdist=sdist)
    assert [p.family for p in pieces] == ["maestro:Maestro_1", "maestro:Maestro_2"]
    assert {p.licence for p in pieces} == {"CC-BY-NC-SA-4.0"}
    assert pieces[0].make() == tiny_midi(60)


def test_split_keeps_families_whole_and_is_deterministic():
    families = [("mma", f"mma:f{i}", 1 + i % 3) for i in range(20)] + [("freedoom", "fd:a", 1)]
    first = split_families(families, 0.2, seed=1)
    assert first == split_families(families, 0.2, seed=1)
    assert first != split_families(families, 0.2, seed=2)
    assert first["fd:a"] == "train"  # a group with one family keeps it for training
    held = sum(c for g, f, c in families if g == "mma" and first[f] == "validation")
    assert 0.2 * 40 <= held < 0.2 * 40 + 3
    assert set(split_families(families, 0.0, seed=1).values()) == {"train"}
    with pytest.raises(DatasetError):
        split_families(families, 1.0, seed=1)


def test_build_engine_skips_bad_pieces_and_refuses_foreign_out(tmp_path):
    good = tmp_path / "good.mid"
    good.write_bytes(tiny_midi(60))
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"not midi")
    pieces = [
        CorpusPiece(f"x/{i}.mid", "g", f"g:{i}", "test", "BSD-2-Clause", "pitched",
                    make=__import__("functools").partial(read_bytes, str(good if i else bad)))
        for i in range(4)
    ]
    assert len(select_pieces(pieces, 2, seed=0)) == 2
    result = build_corpus("t", pieces, tmp_path / "out", builder="datasets build t",
                          description="test", jobs=1, validation_fraction=0.3)
    assert len(result.files) == 3 and len(result.skipped) == 1
    manifest = read_manifest(tmp_path / "out")
    assert {f["split"] for f in manifest["files"]} == {"train", "validation"}
    assert manifest["files"][0]["tempo_bpm"] == 120.0
    # An earlier corpus is replaced; a folder holding something else is refused.
    build_corpus("t", pieces, tmp_path / "out", builder="datasets build t", description="",
                 jobs=1)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not empty"):
        build_corpus("t", pieces, other, builder="b", description="", jobs=1)
    assert (other / "notes.txt").read_text() == "mine"
    assert Path(tmp_path / "out" / ".gitignore").read_text().endswith("*\n")


def test_truncate_and_timing_events_moved_to_the_first_track():
    from datasets.midi_tools import midi_bytes, move_timing_to_first_track, truncate

    mid = mido.MidiFile(type=1, ticks_per_beat=100)
    mid.tracks.append(mido.MidiTrack([mido.MetaMessage("track_name", name="tempo", time=0)]))
    notes = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=1_000_000, time=0)])
    for pitch in range(60, 70):  # ten notes of one beat (1 s at 60 BPM)
        notes.append(mido.Message("note_on", note=pitch, velocity=90, time=0))
        notes.append(mido.Message("note_off", note=pitch, velocity=0, time=100))
    mid.tracks.append(notes)
    fixed = move_timing_to_first_track(mid)
    assert not any(m.type == "set_tempo" for m in fixed.tracks[1])
    assert any(m.type == "set_tempo" for m in fixed.tracks[0])
    cut = truncate(fixed, 3.5)
    pm = pretty_midi.PrettyMIDI(io.BytesIO(midi_bytes(cut)))
    assert [n.pitch for n in pm.instruments[0].notes] == [60, 61, 62, 63]
    assert pm.instruments[0].notes[-1].end == pytest.approx(3.5, abs=0.02)
