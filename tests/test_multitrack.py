"""Multi-track (band) styles: the joint encoding, role mapping, bundles, sampling, training."""

from __future__ import annotations

import json
from pathlib import Path

import mido
import numpy as np
import pretty_midi
import pytest
import tensorflow as tf
from note_seq.protobuf import music_pb2

from perfrnn.bundle import Bundle, BundleMetadata, read_bundle, write_bundle
from perfrnn.configs import BAND_TRACKS, TrackRole, get_config
from perfrnn.encodings import encoding_for
from perfrnn.errors import PerfRNNError
from perfrnn.generate import MidiOptions, generate_midi
from perfrnn.multitrack import MultiTrackEncoding, assign_roles
from perfrnn.music_io import read_music_file
from perfrnn.options import GenerationOptions
from perfrnn.sampler import Sampler
from tests.conftest import small_band_bundle
from training.prepare import prepare_corpus, read_manifest, read_prepared
from training.train import train_model

BAND = "multitrack_performance_with_dynamics"
ROCK_TRACKS = (TrackRole("drums", 16, True), TrackRole("bass", 34),
               TrackRole("rhythm guitar", 29), TrackRole("lead guitar", 30))


def band_encoding() -> MultiTrackEncoding:
    encoding = encoding_for(get_config(BAND))
    assert isinstance(encoding, MultiTrackEncoding)
    return encoding


def add_note(sequence, role, pitch, start, end, velocity=80, is_drum=False):
    sequence.notes.add(instrument=role, pitch=pitch, start_time=start, end_time=end,
                       velocity=velocity, is_drum=is_drum)


def band_sequence() -> music_pb2.NoteSequence:
    sequence = music_pb2.NoteSequence()
    for beat in range(8):
        add_note(sequence, 0, 36 if beat % 2 == 0 else 38, beat * 0.5, beat * 0.5 + 0.05,
                 velocity=100, is_drum=True)
        add_note(sequence, 1, 40 + (beat % 2) * 7, beat * 0.5, beat * 0.5 + 0.45, velocity=90)
    for pitch in (60, 64, 67):
        add_note(sequence, 2, pitch, 0.0, 2.0, velocity=60)
    for index, pitch in enumerate((72, 74, 76, 77)):
        add_note(sequence, 3, pitch, 2.0 + index * 0.5, 2.4 + index * 0.5, velocity=110)
    sequence.total_time = 4.0
    return sequence


def note_tuples(sequence):
    return sorted((n.instrument, n.pitch, round(n.start_time, 2), round(n.end_time, 2),
                   n.is_drum) for n in sequence.notes)


# ----- the encoding ----------------------------------------------------------------------


def test_vocabulary_has_note_events_per_role():
    encoding = band_encoding()
    assert encoding.num_classes == 4 * 256 + 100 + 32
    assert encoding.input_size == encoding.num_classes and encoding.control_size == 0
    assert encoding.describe_event(encoding.note_on(1, 40)) == "bass note-on 40"
    assert encoding.describe_event(encoding.note_off(0, 36)) == "drums note-off 36"
    steps = encoding.time_shift_steps()
    assert steps[encoding.time_shift(1)] == 1 and steps[encoding.time_shift(100)] == 100
    assert steps.sum() == sum(range(1, 101))
    assert steps[encoding.start_event()] == 0


def test_round_trip_keeps_every_part():
    encoding = band_encoding()
    sequence = band_sequence()
    events = encoding.events_from_sequence(sequence)
    decoded = encoding.sequence_from_events(events, total_seconds=4.0)
    expected = [(i, p, s, e, i == 0) for i, p, s, e, _ in note_tuples(sequence)]
    assert note_tuples(decoded) == expected
    assert decoded.total_time == 4.0
    programs = {note.instrument: note.program for note in decoded.notes}
    assert programs == {index: track.program for index, track in enumerate(BAND_TRACKS)}
    # velocities survive to within one bin (32 bins of 4)
    original = sorted((n.instrument, n.pitch, n.start_time, n.velocity) for n in sequence.notes)
    again = sorted((n.instrument, n.pitch, n.start_time, n.velocity) for n in decoded.notes)
    assert all(abs(a[3] - b[3]) < 4 for a, b in zip(original, again))


def test_offs_come_before_ons_and_velocity_only_on_change():
    encoding = band_encoding()
    sequence = music_pb2.NoteSequence()
    add_note(sequence, 1, 40, 0.0, 0.5)
    add_note(sequence, 1, 43, 0.5, 1.0)  # same velocity: no velocity event
    add_note(sequence, 3, 70, 0.5, 1.0, velocity=120)
    events = list(encoding.events_from_sequence(sequence))
    names = [encoding.describe_event(e) for e in events]
    assert names == ["velocity 20", "bass note-on 40", "shift 50", "bass note-off 40",
                     "bass note-on 43", "velocity 30", "lead note-on 70", "shift 50",
                     "bass note-off 43", "lead note-off 70"]


def test_padding_to_total_steps():
    encoding = band_encoding()
    sequence = music_pb2.NoteSequence()
    add_note(sequence, 2, 60, 0.0, 0.5)
    events = encoding.events_from_sequence(sequence, total_steps=350)
    assert encoding.time_shift_steps()[events].sum() == 350


def test_decoding_cleans_up_what_a_model_may_sample():
    encoding = band_encoding()
    events = [
        encoding.note_off(2, 61),        # orphan note-off: dropped
        encoding.note_on(2, 60),
        encoding.time_shift(50),
        encoding.note_on(2, 60),         # re-struck: the first note ends here
        *encoding.time_shift_events(700),  # held 7 s: cut at 5 s
        encoding.note_on(0, 42),         # still sounding at the end: ended there
        encoding.time_shift(10),
    ]
    decoded = encoding.sequence_from_events(np.array(events))
    assert note_tuples(decoded) == [(0, 42, 7.5, 7.6, True), (2, 60, 0.0, 0.5, False),
                                    (2, 60, 0.5, 5.5, False)]
    with pytest.raises(PerfRNNError, match="outside the vocabulary"):
        encoding.sequence_from_events(np.array([encoding.num_classes]))


def test_total_seconds_cuts_notes():
    encoding = band_encoding()
    events = [encoding.note_on(1, 40), *encoding.time_shift_events(300), encoding.note_off(1, 40)]
    decoded = encoding.sequence_from_events(np.array(events), total_seconds=2.0)
    assert note_tuples(decoded) == [(1, 40, 0.0, 2.0, False)]
    assert decoded.total_time == 2.0


def test_a_note_with_an_unknown_role_is_refused():
    sequence = music_pb2.NoteSequence()
    add_note(sequence, 7, 60, 0.0, 1.0)
    with pytest.raises(PerfRNNError, match="assign_roles"):
        band_encoding().events_from_sequence(sequence)


def test_controls_are_refused():
    with pytest.raises(PerfRNNError, match="no note density"):
        band_encoding().encode_controls(notes_per_second=3.0)
    with pytest.raises(PerfRNNError, match="no note-density"):
        MultiTrackEncoding(get_config(BAND).replace(density_bin_ranges=(1.0, 2.0)))


def test_single_part_configs_keep_magentas_encoding():
    assert encoding_for(get_config("performance_with_dynamics")).num_classes == 388
    assert not get_config("performance_with_dynamics").is_multitrack
    assert get_config(BAND).is_multitrack


# ----- parts onto roles ---------------------------------------------------------------------


def write_band_midi(path: Path, with_drums: bool = True, bars: int = 4) -> Path:
    """A small song: drums, a bass (program 33), chords on a guitar (29), a synth lead (81),
    a low single line on piano (a bass by shape) and a single-line pad (harmony by family)."""
    midi = pretty_midi.PrettyMIDI(initial_tempo=120)

    def part(program, notes, is_drum=False, name=""):
        instrument = pretty_midi.Instrument(program=program, is_drum=is_drum, name=name)
        instrument.notes = [pretty_midi.Note(velocity=v, pitch=p, start=s, end=e)
                            for p, s, e, v in notes]
        midi.instruments.append(instrument)

    beats = range(bars * 4)
    if with_drums:
        part(0, [(36 if b % 2 == 0 else 38, b * 0.5, b * 0.5 + 0.1, 100) for b in beats]
             + [(42, b * 0.5 + 0.25, b * 0.5 + 0.3, 70) for b in beats], is_drum=True)
    part(33, [(40 + 5 * (b // 4 % 2), b * 0.5, b * 0.5 + 0.4, 90) for b in beats])
    part(29, [(p, bar * 2.0, bar * 2.0 + 1.9, 70) for bar in range(bars) for p in (52, 56, 59)])
    part(81, [(76 + b % 3, b * 0.5 + 0.25, b * 0.5 + 0.5, 100) for b in beats])
    part(0, [(36 + b % 2, b * 0.5, b * 0.5 + 0.3, 60) for b in beats[:4]])
    part(89, [(64, bar * 2.0, bar * 2.0 + 1.5, 50) for bar in range(bars)])
    midi.write(str(path))
    return path


def test_parts_are_mapped_by_program_channel_and_shape(tmp_path):
    sequence = read_music_file(write_band_midi(tmp_path / "song.mid"))
    mapped, counts = assign_roles(sequence, BAND_TRACKS)
    assert counts == {"drums": 1, "bass": 2, "harmony": 2, "lead": 1}
    roles = {}
    for note in mapped.notes:
        roles.setdefault(note.program, set()).add(note.instrument)
    assert roles == {0: {0, 1}, 33: {1}, 29: {2}, 89: {2}, 81: {3}}
    assert all(note.is_drum == (note.instrument == 0) for note in mapped.notes)
    assert len(mapped.notes) == len(sequence.notes)


def test_a_style_without_drums_drops_the_drum_part(tmp_path):
    sequence = read_music_file(write_band_midi(tmp_path / "song.mid"))
    tracks = (TrackRole("bass", 33), TrackRole("keys", 0))
    mapped, counts = assign_roles(sequence, tracks)
    assert "drums" not in counts and not any(note.is_drum for note in mapped.notes)
    assert {note.instrument for note in mapped.notes} <= {0, 1}


# ----- bundles and sampling -----------------------------------------------------------------


def band_bundle(seed: int = 5) -> Bundle:
    return small_band_bundle(seed, BundleMetadata(style="rock", tracks=ROCK_TRACKS,
                                                  default_bpm=120.0))


def test_band_bundle_round_trip_and_generation(tmp_path):
    path = write_bundle(band_bundle(), tmp_path / "rock.mag")
    bundle = read_bundle(path)
    assert bundle.config.is_multitrack and not bundle.is_magenta_compatible
    assert bundle.metadata.tracks == ROCK_TRACKS
    description = json.loads(bundle_description(path))
    assert description["encoding"]["num_classes"] == 1156
    assert [t["name"] for t in description["encoding"]["tracks"]] == [t.name for t in ROCK_TRACKS]

    sampler = Sampler(bundle)
    options = GenerationOptions(seconds=6.0, temperature=1.0, variations=2, seed=11)
    generation = generate_midi(sampler, options, MidiOptions(program=27))
    files = generation.files
    assert len(files) == 2
    for name, data in files:
        path = tmp_path / name
        path.write_bytes(data)
        midi = mido.MidiFile(str(path))
        assert abs(midi.length - 6.0) < 0.05
        parts = {}
        for track in midi.tracks[1:]:
            channels = {m.channel for m in track if m.type in ("note_on", "note_off")}
            programs = [m.program for m in track if m.type == "program_change"]
            parts[track.name] = (channels, programs)
        assert set(parts) == {t.name for t in ROCK_TRACKS}
        assert parts["drums"] == ({9}, [16])
        assert parts["rhythm guitar"][1] == [27]  # the type replaces the first pitched part
        assert parts["bass"][1] == [34] and 9 not in parts["bass"][0]
        assert all(9 not in channels for name, (channels, _) in parts.items() if name != "drums")
        roll = pretty_midi.PrettyMIDI(str(path))
        assert sum(1 for i in roll.instruments if i.is_drum) == 1
    # same seed, same bytes
    again = generate_midi(sampler, options, MidiOptions(program=27)).files
    assert again == files


def bundle_description(path: Path) -> str:
    from note_seq.protobuf import generator_pb2

    proto = generator_pb2.GeneratorBundle.FromString(path.read_bytes())
    return proto.bundle_details.description


def test_band_primer_is_mapped_and_continued(tmp_path):
    sampler = Sampler(band_bundle())
    primer = read_music_file(write_band_midi(tmp_path / "primer.mid", bars=1))
    generation = sampler.generate(GenerationOptions(seconds=3.0, seed=2), primer=primer)
    sequence = generation.sequences[0]
    assert sequence.total_time == pytest.approx(2.0 + 3.0, abs=0.02)
    early = [n for n in sequence.notes if n.start_time < 1.9]
    assert {n.instrument for n in early} == {0, 1, 2, 3}


def test_a_band_bundle_with_the_wrong_number_of_tracks_is_refused(tmp_path):
    bundle = band_bundle()
    bundle.metadata.tracks = ROCK_TRACKS[:3]
    path = write_bundle(bundle, tmp_path / "broken.mag")
    with pytest.raises(PerfRNNError, match="writes 4 parts"):
        read_bundle(path)


# ----- preparing and training a band corpus ---------------------------------------------


def test_prepare_and_train_a_band(tmp_path):
    music = tmp_path / "songs"
    music.mkdir()
    for index in range(4):
        write_band_midi(music / f"song{index}.mid", with_drums=index != 3, bars=2 + index)
    data = tmp_path / "data"
    result = prepare_corpus("band", [music], data, config_id=BAND, validation_fraction=0.25)
    assert result.kind == "band"
    manifest = read_manifest(data)
    records = {record["source"]: record for record in manifest["files"]}
    assert records["song0.mid"]["roles"] == {"drums": 1, "bass": 2, "harmony": 2, "lead": 1}
    assert "no drum part (MIDI channel 10)" in records["song3.mid"]["warnings"]
    sequences = read_prepared(data, "train") + read_prepared(data, "validation")
    assert {note.instrument for s in sequences for note in s.notes} == {0, 1, 2, 3}

    encoding = band_encoding()
    for sequence in sequences:
        record = records[sequence.filename]
        assert len(encoding.events_from_sequence(sequence)) == record["events"]

    run = tmp_path / "run"
    trained = train_model(data, run, config_id=BAND, layer_sizes=[16], steps=4,
                          sequence_length=32, batch_size=2, eval_every=4, checkpoint_every=4,
                          log=lambda text: None)
    assert trained.steps == 4
    assert trained.best_validation_nll is not None

    with pytest.raises(PerfRNNError, match="multi-track configuration"):
        train_model(data, tmp_path / "run2", config_id="performance_with_dynamics",
                    layer_sizes=[16], steps=1, log=lambda text: None)


def test_kind_and_configuration_must_agree(tmp_path):
    music = tmp_path / "songs"
    music.mkdir()
    write_band_midi(music / "song.mid")
    with pytest.raises(PerfRNNError, match="needs a multi-track configuration"):
        prepare_corpus("x", [music], tmp_path / "a", kind="band")
    with pytest.raises(PerfRNNError, match="use kind 'band'"):
        prepare_corpus("x", [music], tmp_path / "b", config_id=BAND, kind="pitched")


def test_a_corpus_manifest_gives_splits_and_licences(tmp_path):
    music = tmp_path / "corpus"
    (music / "family_a").mkdir(parents=True)
    (music / "family_b").mkdir()
    for offset, folder in enumerate(("family_a", "family_b")):
        for index in range(2):
            write_band_midi(music / folder / f"{index}.mid", bars=2 + index + 2 * offset)
    files = [{"file": f"{folder}/{index}.mid", "source": "debian:mma", "licence": "GPL-2.0",
              "split": "validation" if folder == "family_b" else "train", "family": folder}
             for folder in ("family_a", "family_b") for index in range(2)]
    (music / "manifest.json").write_text(json.dumps(
        {"format": "perfrnn-corpus/1", "name": "x", "files": files}))
    result = prepare_corpus("x", [music], tmp_path / "data", config_id=BAND, seed=3)
    splits = {record.source: record.split for record in result.used}
    assert splits == {"family_a/0.mid": "train", "family_a/1.mid": "train",
                      "family_b/0.mid": "validation", "family_b/1.mid": "validation"}
    assert {record.licence for record in result.used} == {"GPL-2.0"}
    assert {record.origin for record in result.used} == {"debian:mma"}
    assert any("corpus manifest" in warning for warning in result.warnings)


def test_band_inputs_match_tf_one_hot():
    encoding = band_encoding()
    events = encoding.events_from_sequence(band_sequence())
    inputs = encoding.inputs_from_events(events)
    np.testing.assert_array_equal(inputs, tf.one_hot(events, encoding.num_classes).numpy())
