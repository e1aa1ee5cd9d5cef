"""Tests for perfrnn.midi_writer: every file is read back with mido, pretty_midi and music21."""

from __future__ import annotations

import collections
import math

import mido
import music21
import numpy as np
import pretty_midi
import pytest
from note_seq.protobuf import music_pb2

from perfrnn.configs import TrackRole
from perfrnn.errors import PerfRNNError
from perfrnn.midi_writer import TICKS_PER_QUARTER, midi_bytes, write_midi

PIANO = TrackRole("piano", 0)
BASS = TrackRole("bass", 33)
DRUMS = TrackRole("drums", 25, is_drum=True)
ROLES = [PIANO, BASS, DRUMS]


def make_sequence(notes) -> music_pb2.NoteSequence:
    """notes: (pitch, start s, end s, instrument[, velocity]) tuples."""
    sequence = music_pb2.NoteSequence()
    for pitch, start, end, instrument, *velocity in notes:
        sequence.notes.add(pitch=pitch, start_time=start, end_time=end, instrument=instrument,
                           velocity=velocity[0] if velocity else 80)
    return sequence


def dense_sequence(seed: int, count: int = 600) -> music_pb2.NoteSequence:
    """Random notes over 20 s: chords, same-pitch overlaps, zero and long notes, two drum parts."""
    rng = np.random.default_rng(seed)
    sequence = music_pb2.NoteSequence()
    while len(sequence.notes) < count:
        instrument = int(rng.integers(0, 4))  # 0 piano, 1 bass, 2 drums, 3 more drums
        start = float(rng.uniform(0, 20)) if rng.random() < 0.8 else float(rng.integers(0, 80)) / 4
        duration = float(rng.choice([0.0, 0.001, 0.02, 0.1, 0.25, 0.5, 1.0, 3.0, 9.0]))
        pitch = int(rng.integers(35, 50)) if instrument >= 2 else int(rng.integers(40, 70))
        size = int(rng.choice([1, 1, 1, 2, 3, 4]))
        for step in range(size):  # a chord, or a lone note
            sequence.notes.add(pitch=pitch + 3 * step, start_time=start, end_time=start + duration,
                               instrument=instrument, velocity=int(rng.integers(-10, 160)))
    return sequence


DENSE_ROLES = [PIANO, BASS, DRUMS, TrackRole("percussion", 0, is_drum=True)]


def timed_messages(track: mido.MidiTrack) -> list[tuple[int, mido.Message]]:
    """(absolute tick, message) pairs of one track."""
    now, result = 0, []
    for message in track:
        now += message.time
        result.append((now, message))
    return result


def mido_notes(path) -> list[tuple[int, int, int, int]]:
    """(track, channel, pitch, on tick, off tick) of every note, pairing on/off per track."""
    notes = []
    for index, track in enumerate(mido.MidiFile(path).tracks):
        sounding = {}
        for tick, message in timed_messages(track):
            key = (message.type, getattr(message, "velocity", None))
            if key[0] == "note_on" and key[1] > 0:
                assert (message.channel, message.note) not in sounding, "note started twice"
                sounding[message.channel, message.note] = tick
            elif key[0] == "note_off" or key[0] == "note_on":
                on = sounding.pop((message.channel, message.note))  # KeyError: off without on
                notes.append((index, message.channel, message.note, on, tick))
        assert not sounding, f"hanging notes {sounding}"
    return sorted(notes)


def mido_note_on_count(path) -> int:
    return sum(1 for track in mido.MidiFile(path).tracks for message in track
               if message.type == "note_on" and message.velocity > 0)


def pretty_midi_count(path) -> int:
    midi = pretty_midi.PrettyMIDI(str(path))
    return sum(len(instrument.notes) for instrument in midi.instruments)


def music21_event_notes(path) -> list[tuple[int, int, int, int]]:
    """(track, pitch, on tick, off tick) as music21's MIDI reader pairs them."""
    midi_file = music21.midi.MidiFile()
    midi_file.open(str(path))
    midi_file.read()
    midi_file.close()
    translate = music21.midi.translate
    notes = []
    for index, track in enumerate(midi_file.tracks):
        for on, off, event in translate.getNotesFromEvents(translate.getTimeForEvents(track)):
            notes.append((index, event.pitch, on, off))
    return sorted(notes)


def music21_score_count(path, **parse_options) -> int:
    """Notes (chord members included) music21's score starts; tied continuations not counted."""
    score = music21.converter.parse(str(path), forceSource=True, **parse_options)
    count = 0
    for element in score.recurse().notes:
        members = element.notes if isinstance(element, music21.chord.ChordBase) else [element]
        for member in members:
            tie = member.tie if member.tie is not None else element.tie
            count += tie is None or tie.type == "start"
    return count


def check_well_formed(path) -> None:
    """The rules a DAW and every parser rely on, checked on the raw events."""
    midi_file = mido.MidiFile(path)
    for track in midi_file.tracks:
        assert track[-1].type == "end_of_track"
        assert sum(message.type == "end_of_track" for message in track) == 1
        last = {}
        for tick, message in timed_messages(track):
            if message.type in ("note_on", "note_off"):
                assert message.type == "note_off" or 1 <= message.velocity <= 127
                kind = 1 if message.type == "note_on" else 0
                # at one tick, every note_off comes before every note_on
                assert last.get(tick, 0) <= kind
                last[tick] = kind
    mido_notes(path)  # asserts pairing: no hanging notes, no off without on, no double on
    assert all(on < off for *_, on, off in mido_notes(path))


def test_file_type_ticks_and_conductor_track(tmp_path):
    sequence = make_sequence([(60, 0.0, 1.0, 0)])
    path = write_midi(sequence, tmp_path / "a.mid", ROLES, bpm=96, title="My song")
    midi_file = mido.MidiFile(path)
    assert midi_file.type == 1
    assert midi_file.ticks_per_beat == TICKS_PER_QUARTER == 480
    conductor = timed_messages(midi_file.tracks[0])
    assert [message.type for _, message in conductor] == [
        "track_name", "set_tempo", "time_signature", "end_of_track"]
    assert all(tick == 0 for tick, _ in conductor)
    assert conductor[0][1].name == "My song"
    assert conductor[1][1].tempo == 625_000  # 60e6 / 96 microseconds per quarter
    signature = conductor[2][1]
    assert (signature.numerator, signature.denominator) == (4, 4)
    default = mido.MidiFile(write_midi(sequence, tmp_path / "b.mid", ROLES))
    assert default.tracks[0][0].name == "perfrnn"
    assert default.tracks[0][1].tempo == 500_000  # native 120 bpm
    check_well_formed(path)


def test_one_named_track_per_part_with_program_change_first(tmp_path):
    sequence = make_sequence([(40, 0.5, 1.0, 1), (36, 0.0, 0.1, 2), (60, 0.0, 2.0, 2)])
    path = write_midi(sequence, tmp_path / "a.mid", ROLES)
    tracks = mido.MidiFile(path).tracks
    assert [track.name for track in tracks] == ["perfrnn", "bass", "drums"]  # piano has no notes
    for track, role in zip(tracks[1:], [BASS, DRUMS]):
        channel_messages = [(tick, m) for tick, m in timed_messages(track) if not m.is_meta]
        tick, first = channel_messages[0]
        assert (tick, first.type, first.program) == (0, "program_change", role.program)
        assert sum(m.type == "program_change" for _, m in channel_messages) == 1
        assert {m.channel for _, m in channel_messages} == {first.channel}
    instruments = pretty_midi.PrettyMIDI(str(path)).instruments
    assert [(i.name, i.program, i.is_drum) for i in instruments] == [
        ("bass", 33, False), ("drums", 25, True)]


def test_drums_alone_on_channel_ten_and_pitched_parts_skip_it(tmp_path):
    roles = [TrackRole(f"part{i}", i) for i in range(12)]
    roles.insert(5, TrackRole("kit", 0, is_drum=True))
    sequence = make_sequence([(60 + i, 0.1 * i, 1.0, i) for i in range(len(roles))])
    path = write_midi(sequence, tmp_path / "a.mid", roles)
    channels = []
    for track in mido.MidiFile(path).tracks[1:]:
        used = {message.channel for message in track if not message.is_meta}
        assert len(used) == 1
        channels.append(used.pop())
    assert channels[5] == 9
    assert channels[:5] + channels[6:] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12]
    drums = [i for i in pretty_midi.PrettyMIDI(str(path)).instruments if i.is_drum]
    assert [i.name for i in drums] == ["kit"]
    too_many = [TrackRole(f"part{i}", i) for i in range(16)]
    with pytest.raises(PerfRNNError):
        midi_bytes(make_sequence([(60, 0, 1, i) for i in range(16)]), too_many)


@pytest.mark.parametrize("native_bpm, bpm, tick, seconds", [
    (120.0, 60.0, 960, 2.0),    # half speed: one native second is two quarters, at 1 s each
    (120.0, None, 960, 1.0),    # no stretch
    (120.0, 240.0, 960, 0.5),   # double speed
    (90.0, 90.0, 720, 1.0),     # another native tempo
])
def test_tempo_stretches_the_performance(tmp_path, native_bpm, bpm, tick, seconds):
    sequence = make_sequence([(60, 1.0, 1.5, 0)])
    path = write_midi(sequence, tmp_path / "a.mid", [PIANO], bpm=bpm, native_bpm=native_bpm)
    [(_, _, _, on, off)] = mido_notes(path)
    assert on == tick
    assert off == round(tick * 1.5)
    assert mido.MidiFile(path).tracks[0][1].tempo == round(60e6 / (bpm or native_bpm))
    [note] = pretty_midi.PrettyMIDI(str(path)).instruments[0].notes
    assert note.start == pytest.approx(seconds)
    assert note.end == pytest.approx(seconds * 1.5)


def test_quantize_snaps_onsets_and_keeps_durations(tmp_path):
    sequence = make_sequence([
        (60, 0.26, 0.5, 0),     # on 249.6 -> 250 -> 240, off 480 moves with it to 470
        (62, 0.30, 0.30, 0),    # zero length -> one 1/32 note (60 ticks) from tick 240
        (64, 1.0, 1.01, 0),     # 10 ticks -> 60
        (65, 0.0625, 2.0, 0),   # 60 ticks is exactly half a 1/16: rounds up to 120
    ])
    path = write_midi(sequence, tmp_path / "a.mid", [PIANO], quantize=True)
    notes = {(pitch, on, off) for _, _, pitch, on, off in mido_notes(path)}
    assert notes == {(60, 240, 470), (62, 240, 300), (64, 960, 1020), (65, 120, 1980)}
    dense = write_midi(dense_sequence(7), tmp_path / "dense.mid", DENSE_ROLES, quantize=True)
    onsets = [on for *_, on, _ in mido_notes(dense)]
    assert len(onsets) > 400 and all(on % 120 == 0 for on in onsets)
    assert all(off - on >= 60 for *_, on, off in mido_notes(dense))
    check_well_formed(dense)


def test_overlapping_notes_of_one_pitch_are_cut_and_merged(tmp_path):
    sequence = make_sequence([
        (60, 0.0, 1.0, 0, 50), (60, 0.5, 1.5, 0, 70),   # overlap: first cut at 0.5 s
        (62, 2.0, 2.5, 0, 40), (62, 2.0, 3.0, 0, 90),   # same onset: one note, longer, louder
        (64, 0.0, 2.0, 0), (67, 0.5, 1.0, 0),           # other pitches overlap freely
        (36, 0.0, 1.0, 2, 30), (36, 0.5, 1.0, 3, 100),  # two drum parts share channel 10
    ])
    roles = [PIANO, BASS, DRUMS, TrackRole("percussion", 0, is_drum=True)]
    path = write_midi(sequence, tmp_path / "a.mid", roles)
    check_well_formed(path)
    assert mido_notes(path) == sorted([
        (1, 0, 60, 0, 480), (1, 0, 60, 480, 1440), (1, 0, 62, 1920, 2880),
        (1, 0, 64, 0, 1920), (1, 0, 67, 480, 960), (2, 9, 36, 0, 480), (3, 9, 36, 480, 960)])
    velocities = [m.velocity for m in mido.MidiFile(path).tracks[1] if m.type == "note_on"]
    assert 90 in velocities and 40 not in velocities
    piano = pretty_midi.PrettyMIDI(str(path)).instruments[0]
    assert sorted((n.pitch, n.start, n.end) for n in piano.notes if n.pitch in (60, 62)) == [
        (60, 0.0, 0.5), (60, 0.5, 1.5), (62, 2.0, 3.0)]


def test_zero_length_and_very_long_notes(tmp_path):
    sequence = make_sequence([
        (60, 1.0, 1.0, 0), (61, 1.0, 0.5, 0),   # zero length, and an end before the start
        (62, 0.0, 3600.0, 0),                   # an hour
    ])
    path = write_midi(sequence, tmp_path / "a.mid", [PIANO])
    check_well_formed(path)
    assert {(p, on, off) for _, _, p, on, off in mido_notes(path)} == {
        (60, 960, 961), (61, 960, 961), (62, 0, 3_456_000)}
    notes = sorted(pretty_midi.PrettyMIDI(str(path)).instruments[0].notes, key=lambda n: n.pitch)
    assert [n.end for n in notes] == pytest.approx([961 / 960, 961 / 960, 3600.0])
    assert music21_score_count(path, quantizePost=False) == 3
    with pytest.raises(PerfRNNError):  # past the largest delta time a MIDI file can hold
        midi_bytes(make_sequence([(60, 0.0, 1e6, 0)]), [PIANO])


def test_empty_sequence_writes_one_track_per_role(tmp_path):
    path = write_midi(music_pb2.NoteSequence(), tmp_path / "a.mid", ROLES)
    midi_file = mido.MidiFile(path)
    assert [track.name for track in midi_file.tracks] == ["perfrnn", "piano", "bass", "drums"]
    assert [m.channel for track in midi_file.tracks for m in track if not m.is_meta] == [0, 1, 9]
    check_well_formed(path)
    assert mido_note_on_count(path) == pretty_midi_count(path) == 0
    assert music21_score_count(path) == 0


def test_velocities_are_clamped_and_names_are_ascii(tmp_path):
    sequence = make_sequence([(60, 0.0, 1.0, 0, 0), (62, 0.0, 1.0, 0, 300)])
    path = write_midi(sequence, tmp_path / "a.mid", [TrackRole("Flûte ñ", 73)], title="Café")
    velocities = sorted(m.velocity for m in mido.MidiFile(path).tracks[1] if m.type == "note_on")
    assert velocities == [1, 127]
    assert [track.name for track in mido.MidiFile(path).tracks] == ["Cafe", "Flute n"]
    assert pretty_midi.PrettyMIDI(str(path)).instruments[0].name == "Flute n"


@pytest.mark.parametrize("quantize", [False, True])
def test_parsers_agree_on_a_dense_random_sequence(tmp_path, quantize):
    sequence = dense_sequence(seed=2024)
    path = write_midi(sequence, tmp_path / "dense.mid", DENSE_ROLES, quantize=quantize)
    check_well_formed(path)
    notes = mido_notes(path)
    assert len(notes) > 500  # a few same-pitch notes merge, but nearly all survive
    assert mido_note_on_count(path) == len(notes)
    assert pretty_midi_count(path) == len(notes)
    # music21's MIDI reader pairs the events exactly as we do ...
    assert music21_event_notes(path) == sorted((t, p, on, off) for t, _, p, on, off in notes)
    # ... and pretty_midi finds the same notes at the same times (native 120 bpm: 960 ticks/s).
    found = sorted((round(n.start * 960), round(n.end * 960), n.pitch)
                   for i in pretty_midi.PrettyMIDI(str(path)).instruments for n in i.notes)
    assert found == sorted((on, off, pitch) for _, _, pitch, on, off in notes)
    # music21's score transcription loses none of them; it counts some twice on a file this
    # dense (see score_friendly_sequence), so equality is checked there instead.
    assert music21_score_count(path, quantizePost=False) >= len(notes)


def score_friendly_sequence(seed: int) -> music_pb2.NoteSequence:
    """Dense random notes whose notation music21's converter.parse can count exactly.

    converter.parse turns the MIDI notes into notation (chords within a chord
    window, voices, measures, ties, and by default quantization to 1/16 and
    1/12 notes), and music21 10.5 then counts some notes twice whatever the
    file holds: a note whose onset and end fall in the windows of two chords
    is put in both, and a drum chord split at a barline (crossing it, or
    quantized across it) loses its ties. So here onsets lie on the 1/16 grid,
    durations come from a few well-separated values, chord members share them,
    and drum hits are short. The file still has chords, long notes, overlaps
    of different pitches, zero-length notes and out-of-range velocities.
    """
    rng = np.random.default_rng(seed)
    sequence = music_pb2.NoteSequence()
    for _ in range(400):
        instrument = int(rng.integers(0, 3))
        start = float(rng.integers(0, 240)) / 8  # 1/16 notes at the native 120 bpm
        if instrument == 2:
            duration, pitch = 0.01, int(rng.integers(35, 60))
        else:
            duration = float(rng.choice([0.0, 0.05, 0.25, 0.5, 2.0, 8.0]))
            pitch = int(rng.integers(40, 80))
        for step in range(3 if rng.random() < 0.2 else 1):
            sequence.notes.add(pitch=pitch + 4 * step, start_time=start, end_time=start + duration,
                               instrument=instrument, velocity=int(rng.integers(-5, 140)))
    return sequence


@pytest.mark.parametrize("quantize_post", [True, False])  # music21's default, and raw times
@pytest.mark.parametrize("quantize", [False, True])
def test_music21_score_counts_the_same_notes(tmp_path, quantize, quantize_post):
    path = write_midi(score_friendly_sequence(seed=0), tmp_path / "a.mid", ROLES,
                      quantize=quantize)
    check_well_formed(path)
    expected = mido_note_on_count(path)
    assert expected > 500
    assert pretty_midi_count(path) == expected
    assert music21_score_count(path, quantizePost=quantize_post) == expected


def test_same_input_gives_the_same_bytes(tmp_path):
    sequence = dense_sequence(seed=5, count=300)
    first = midi_bytes(sequence, DENSE_ROLES, bpm=100, quantize=True, title="x")
    assert midi_bytes(sequence, DENSE_ROLES, bpm=100, quantize=True, title="x") == first
    shuffled = music_pb2.NoteSequence()
    for index in np.random.default_rng(0).permutation(len(sequence.notes)):
        shuffled.notes.add().CopyFrom(sequence.notes[int(index)])
    assert midi_bytes(shuffled, DENSE_ROLES, bpm=100, quantize=True, title="x") == first
    path = write_midi(sequence, tmp_path / "new" / "folder" / "a.mid", DENSE_ROLES, bpm=100,
                      quantize=True, title="x")
    assert path == tmp_path / "new" / "folder" / "a.mid"
    assert path.read_bytes() == first


@pytest.mark.parametrize("notes, roles, options", [
    ([(60, 0, 1, 3)], ROLES, {}),                       # no fourth track role
    ([(60, 0, 1, -1)], ROLES, {}),                      # negative instrument index
    ([(128, 0, 1, 0)], ROLES, {}),                      # pitch out of range
    ([(60, -1, 1, 0)], ROLES, {}),                      # negative time
    ([(60, math.nan, 1, 0)], ROLES, {}),                # not a time
    ([(60, 0, 1, 0)], [TrackRole("x", 128)], {}),       # program out of range
    ([(60, 0, 1, 0)], [], {}),                          # no track roles at all
    ([(60, 0, 1, 0)], ROLES, {"bpm": 0}),
    ([(60, 0, 1, 0)], ROLES, {"bpm": -120}),
    ([(60, 0, 1, 0)], ROLES, {"bpm": math.inf}),
    ([(60, 0, 1, 0)], ROLES, {"bpm": 1.0}),             # slower than a MIDI tempo can say
    ([(60, 0, 1, 0)], ROLES, {"native_bpm": 0}),
])
def test_user_errors_raise_perfrnn_error_and_write_nothing(tmp_path, notes, roles, options):
    with pytest.raises(PerfRNNError):
        write_midi(make_sequence(notes), tmp_path / "a.mid", roles, **options)
    assert not (tmp_path / "a.mid").exists()


def test_music21_reads_chords_and_drums_back(tmp_path):
    sequence = make_sequence([
        (60, 0.0, 0.5, 0), (64, 0.0, 0.5, 0), (67, 0.0, 0.5, 0),   # a C major chord
        (36, 0.0, 0.1, 2), (42, 0.0, 0.1, 2), (38, 0.5, 0.6, 2),
    ])
    path = write_midi(sequence, tmp_path / "a.mid", ROLES)
    score = music21.converter.parse(str(path), forceSource=True)
    piano, drums = score.parts
    [chord] = piano.recurse().getElementsByClass(music21.chord.Chord)
    assert [p.midi for p in chord.pitches] == [60, 64, 67]
    assert music21_score_count(path) == mido_note_on_count(path) == 6
    assert isinstance(drums.recurse().notes.first(), music21.percussion.PercussionChord)
    counted = collections.Counter(type(n).__name__ for n in drums.recurse().notes)
    assert counted == {"PercussionChord": 1, "Unpitched": 1}


def test_file_lasts_as_long_as_the_sequence_even_when_it_ends_in_silence(tmp_path):
    sequence = make_sequence([(60, 0.0, 1.0, 0)])
    sequence.total_time = 30.0
    path = tmp_path / "silent_end.mid"
    write_midi(sequence, path, [TrackRole("piano", 0)], bpm=60, native_bpm=120)

    midi = mido.MidiFile(path)
    assert midi.length == pytest.approx(60.0)  # 30 s at 120 BPM is 60 beats; 60 s at 60 BPM
    assert all(timed_messages(track)[-1][0] == 60 * 480 for track in midi.tracks)
