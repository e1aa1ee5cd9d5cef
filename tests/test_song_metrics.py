"""Song structure figures (`perfrnn.song_metrics`) on small pieces built by hand,
whose values are worked out here."""

from __future__ import annotations

import random

import pytest
from note_seq.protobuf import music_pb2

from perfrnn import song_metrics as figures
from perfrnn.multitrack import ROLE_BASS, ROLE_DRUMS, ROLE_HARMONY, ROLE_LEAD

QPM = 120.0
BEAT = 60.0 / QPM  # seconds per quarter note
KICK, SNARE, HAT = 36, 38, 42
CHORD = music_pb2.NoteSequence.TextAnnotation.CHORD_SYMBOL


def piece(notes, *, numerator: int = 4, denominator: int = 4, chords=(), sections=(),
          tempos=((0.0, QPM),)) -> music_pb2.NoteSequence:
    """A NoteSequence of `notes`: (pitch, start in beats, role[, length in beats]),
    drums for role ROLE_DRUMS, at `tempos` ((seconds, qpm), ...); `chords`
    ((beat, symbol), ...) and `sections` ((beat, section id), ...) as annotations.
    Times in beats are placed on the tempo map (`seconds_at`)."""
    sequence = music_pb2.NoteSequence()
    for time, qpm in tempos:
        sequence.tempos.add(time=time, qpm=qpm)
    sequence.time_signatures.add(numerator=numerator, denominator=denominator)

    def seconds(beat: float) -> float:
        return float(figures.seconds_at(sequence, [beat])[0])

    for pitch, beat, role, *length in notes:
        sequence.notes.add(pitch=pitch, velocity=80, start_time=seconds(beat),
                           end_time=seconds(beat + (length[0] if length else 0.25)),
                           is_drum=role == ROLE_DRUMS, instrument=role)
    for beat, symbol in chords:
        sequence.text_annotations.add(time=seconds(beat), text=symbol, annotation_type=CHORD)
    for beat, section_id in sections:
        sequence.section_annotations.add(time=seconds(beat), section_id=section_id)
    sequence.total_time = max((note.end_time for note in sequence.notes), default=0.0)
    return sequence


def rock_bar(bar: int, beats: int = 4) -> list:
    """Kick on 1 and 3, snare on 2 and 4, eighth-note hats, in bar `bar`."""
    start = bar * beats
    notes = [(KICK if beat % 2 == 0 else SNARE, start + beat, ROLE_DRUMS)
             for beat in range(beats)]
    notes += [(HAT, start + eighth / 2, ROLE_DRUMS) for eighth in range(2 * beats)]
    return notes


def random_drum_bar(bar: int, rng: random.Random) -> list:
    """Each of kick, snare and hat on 4 random steps of the bar's 48 (1/12 beat)."""
    return [(pitch, bar * 4 + step / 12, ROLE_DRUMS) for pitch in (KICK, SNARE, HAT)
            for step in rng.sample(range(48), 4)]


# ----- repeated bars and groove --------------------------------------------------------


def test_a_drum_pattern_repeated_repeats_every_bar():
    sequence = piece([note for bar in range(4) for note in rock_bar(bar)])
    assert figures.drum_bar_repeat(sequence) == 1.0
    assert figures.groove_consistency(sequence) == 1.0


def test_random_drum_bars_do_not_repeat():
    rng = random.Random(0)
    sequence = piece([note for bar in range(8) for note in random_drum_bar(bar, rng)])
    assert figures.drum_bar_repeat(sequence) == 0.0
    assert figures.groove_consistency(sequence) < 0.8


def test_a_bar_repeats_one_of_the_four_before_it_and_no_further():
    rng = random.Random(1)
    bars = [random_drum_bar(bar, rng) for bar in range(5)]
    # Bar 5 plays bar 1 again (4 bars back: a repeat); bar 6 plays bar 0 (6 back: not).
    sequence = piece([note for notes in bars for note in notes]
                     + [(pitch, beat + 16, role) for pitch, beat, role in bars[1]]
                     + [(pitch, beat + 24, role) for pitch, beat, role in bars[0]])
    repeats = figures.bar_repeats(figures._drum_bar_sets(figures.onsets(sequence)), 4)
    assert repeats == {1: False, 2: False, 3: False, 4: False, 5: True, 6: False}
    assert figures.drum_bar_repeat(sequence) == pytest.approx(1 / 6)


def test_a_bar_with_one_hit_more_still_repeats_but_not_with_many():
    base = rock_bar(0)  # 12 hits
    one_more = [(pitch, beat + 4, role) for pitch, beat, role in base] + [(SNARE, 4.75,
                                                                           ROLE_DRUMS)]
    assert figures.drum_bar_repeat(piece(base + one_more)) == 1.0  # Jaccard 12/13
    four_more = one_more + [(SNARE, 4 + beat, ROLE_DRUMS) for beat in (0.25, 1.25, 2.25)]
    assert figures.drum_bar_repeat(piece(base + four_more)) == 1.0  # Jaccard 12/16 = 0.75
    five_more = four_more + [(SNARE, 7.25, ROLE_DRUMS)]
    assert figures.drum_bar_repeat(piece(base + five_more)) == 0.0  # Jaccard 12/17


def test_onsets_snap_to_the_grid_and_bars_follow_the_tempo_map():
    # Four bars at 120 qpm, then four at 100 qpm: bar 5 starts at 8 s; onsets
    # 6 ms off the beat.
    notes = []
    for bar in range(8):
        start = bar * 2.0 if bar < 4 else 8.0 + (bar - 4) * 4 * (60 / 100)
        beat_seconds = 0.5 if bar < 4 else 60 / 100
        for pitch, beat, _ in rock_bar(0):
            notes.append((pitch, start + beat * beat_seconds + 0.006 * (-1) ** bar))
    sequence = music_pb2.NoteSequence()
    sequence.tempos.add(time=0.0, qpm=120)
    sequence.tempos.add(time=8.0, qpm=100)
    for pitch, start in notes:
        sequence.notes.add(pitch=pitch, start_time=start, end_time=start + 0.1, is_drum=True,
                           velocity=90)
    assert figures.drum_bar_repeat(sequence) == 1.0
    assert figures.groove_consistency(sequence) == 1.0
    # Read at one tempo, the bars after the change no longer line up.
    del sequence.tempos[1:]
    assert figures.drum_bar_repeat(sequence) < 0.6


def test_humanised_timing_is_taken_out_on_the_onset_grid():
    # Off-beat hats 1/20 beat late in bar 1 and early in bar 3 (mma's humanised
    # timing): read at the nearest 1/12 beat, a step off.
    jitter = {1: 1 / 20, 3: -1 / 20}
    notes = [(pitch, beat + (jitter.get(bar, 0) if pitch == HAT and beat % 1 else 0), role)
             for bar in range(4) for pitch, beat, role in rock_bar(bar)]
    sequence = piece(notes, tempos=((0.0, QPM), (3.0, 90.0)))  # a change within bar 1
    assert figures.drum_bar_repeat(sequence) == pytest.approx(1 / 3)  # bar 2 repeats bar 0
    snapped = figures.snap_to_onset_grid(sequence)
    assert figures.drum_bar_repeat(snapped) == 1.0
    assert figures.song_figures(sequence, assign=False, onset_grid=True)["drum_bar_repeat"] == 1.0
    # Notes move whole; notes on the grid stay where they are.
    moved = [(a.start_time - b.start_time, a.end_time - b.end_time)
             for a, b in zip(snapped.notes, sequence.notes) if a.start_time != b.start_time]
    assert len(moved) == 8 and all(shift == pytest.approx(end) for shift, end in moved)
    assert figures.snap_to_onset_grid(snapped) == snapped


def test_seconds_at_inverts_the_tempo_map():
    sequence = piece([], tempos=((0.0, 120.0), (2.0, 60.0), (5.0, 180.0)))
    seconds = [0.0, 1.0, 2.0, 3.5, 5.0, 7.25]
    quarters = figures.quarters_at(sequence, seconds)
    assert quarters.tolist() == pytest.approx([0, 2, 4, 5.5, 7, 13.75])
    assert figures.seconds_at(sequence, quarters).tolist() == pytest.approx(seconds)


def test_bars_follow_the_time_signature():
    waltz = [note for bar in range(4) for note in rock_bar(bar, beats=3)]
    assert figures.steps_per_bar(piece(waltz, numerator=3)) == 36
    assert figures.drum_bar_repeat(piece(waltz, numerator=3)) == 1.0
    assert figures.groove_consistency(piece(waltz, numerator=3)) == 1.0
    assert figures.drum_bar_repeat(piece(waltz)) == 0.0  # read as 4/4


def test_a_repeated_riff_repeats_and_random_notes_do_not():
    riff = [(pitch, beat, ROLE_LEAD) for pitch, beat in
            ((60, 0), (63, 0.5), (65, 1), (67, 2), (70, 3.5))]
    repeated = [(pitch + 12 * (bar % 2), beat + 4 * bar, role)  # octaves: same pitch class
                for bar in range(6) for pitch, beat, role in riff]
    assert figures.pitched_bar_repeat(piece(repeated)) == 1.0
    rng = random.Random(2)
    wandering = [(rng.randrange(48, 84), bar * 4 + sixteenth / 4, ROLE_LEAD)
                 for bar in range(12) for sixteenth in sorted(rng.sample(range(16), 6))]
    assert figures.pitched_bar_repeat(piece(wandering)) <= 0.1
    assert figures.pitched_bar_repeat(piece(rock_bar(0) + rock_bar(1))) is None  # no pitches
    assert figures.drum_bar_repeat(piece(repeated)) is None


# ----- chords --------------------------------------------------------------------------


def test_chord_tones_in_the_chord_sounding():
    chords = ((0, "C"), (4, "Am"), (8, "N.C."), (12, "G7"))
    in_chord = [(60, 0, ROLE_HARMONY), (64, 1, ROLE_LEAD), (67, 3.9, ROLE_LEAD),
                (69, 4, ROLE_HARMONY), (72, 5, ROLE_LEAD), (76, 6, ROLE_LEAD),
                (61, 9, ROLE_LEAD),  # N.C.: not counted
                (65, 12, ROLE_LEAD), (71, 13, ROLE_LEAD), (67, 14, ROLE_BASS)]
    assert figures.chord_tone_share(piece(in_chord, chords=chords)) == 1.0
    outside = in_chord + [(61, 1, ROLE_LEAD), (66, 5, ROLE_LEAD)]
    assert figures.chord_tone_share(piece(outside, chords=chords)) == pytest.approx(9 / 11)
    assert figures.chord_tone_share(piece(in_chord)) is None  # no chords marked
    drums = rock_bar(0) + rock_bar(1)  # drum notes are not chord tones or misses
    assert figures.chord_tone_share(piece(in_chord + drums, chords=chords)) == 1.0


def test_bar_triad_share():
    arpeggios = [(root + offset, 4 * bar + i, ROLE_HARMONY)
                 for bar, root in enumerate((60, 57, 65, 67))
                 for i, offset in enumerate((0, 4 if root != 57 else 3, 7, 12))]
    assert figures.bar_triad_share(piece(arpeggios)) == 1.0
    chromatic = [(60 + i, i / 3, ROLE_LEAD) for i in range(12)]  # one bar, 12 classes
    assert figures.bar_triad_share(piece(chromatic)) == pytest.approx(3 / 12)
    assert figures.bar_triad_share(piece(rock_bar(0))) is None


def test_a_bass_on_the_root_on_beat_one():
    chords = ((0, "C"), (4, "F"), (8, "G"), (12, "Am"))
    roots = (36, 41, 43, 45)
    on_root = [(root, 4 * bar, ROLE_BASS) for bar, root in enumerate(roots)]
    on_root += [(root + 7, 4 * bar + 2, ROLE_BASS) for bar, root in enumerate(roots)]
    sequence = piece(on_root, chords=chords)
    assert figures.bass_root_on_one(sequence) == 1.0
    assert figures.bass_onset_on_one(sequence) == 1.0
    # The fifth on beat 1 and the root on beat 3: the bass plays on one, not the root.
    on_fifth = [(pitch, beat + (2 if beat % 4 == 0 else -2), role)
                for pitch, beat, role in on_root]
    sequence = piece(on_fifth, chords=chords)
    assert figures.bass_root_on_one(sequence) == 0.0
    assert figures.bass_onset_on_one(sequence) == 1.0
    # A sixteenth late is not on one; a 1/12 beat early still is.
    late = [(pitch, beat + 0.25, role) for pitch, beat, role in on_root[:4]]
    assert figures.bass_onset_on_one(piece(late, chords=chords)) == 0.0
    early = [(root, 4 * bar - 1 / 12, ROLE_BASS) for bar, root in enumerate(roots) if bar]
    early += [(48, 0, ROLE_HARMONY)]  # bar 1: no bass
    assert figures.bass_root_on_one(piece(early, chords=chords)) == pytest.approx(3 / 4)
    # Only bars with a chord count; without chords or a bass there is no figure.
    half = piece(on_root, chords=((0, "C"), (4, "N.C."), (8, "G"), (12, "N.C.")))
    assert figures.bass_root_on_one(half) == 1.0
    assert figures.bass_root_on_one(piece(on_root)) is None
    harmony = [(pitch, beat, ROLE_HARMONY) for pitch, beat, _ in on_root]
    assert figures.bass_root_on_one(piece(harmony, chords=chords)) is None
    assert figures.bass_onset_on_one(piece(harmony)) is None


def test_chords_can_be_inferred_from_the_notes():
    chords = ("C", "F", "G", "Am")
    held = [(root + offset, 4 * bar, role, 4)
            for bar, root in enumerate((48, 53, 55, 57))
            for offset, role in ((0, ROLE_BASS), (12 + 0, ROLE_HARMONY),
                                 (12 + (3 if bar == 3 else 4), ROLE_HARMONY),
                                 (12 + 7, ROLE_HARMONY))]
    sequence = figures.with_inferred_chords(piece(held))
    inferred = [a.text for a in sequence.text_annotations if a.annotation_type == CHORD]
    assert inferred == list(chords)
    assert figures.chord_tone_share(sequence) == 1.0
    assert figures.bass_root_on_one(sequence) == 1.0
    assert figures.with_inferred_chords(piece(rock_bar(0))) is None


# ----- pitch ---------------------------------------------------------------------------


def test_scale_consistency_range_and_entropy():
    scale = [(pitch, i, ROLE_LEAD) for i, pitch in enumerate((60, 62, 64, 65, 67, 69, 71, 72))]
    assert figures.scale_consistency(piece(scale)) == 1.0
    assert figures.pitch_range(piece(scale)) == 12
    assert figures.pitch_class_entropy(piece(scale)) == pytest.approx(2.75)
    chromatic = [(60 + i, i, ROLE_LEAD) for i in range(12)]
    assert figures.scale_consistency(piece(chromatic)) == pytest.approx(7 / 12)
    assert figures.scale_consistency(piece(rock_bar(0))) is None


# ----- drums ---------------------------------------------------------------------------


def test_drum_counts_per_bar():
    # Bar 2 has no drums and is not counted; bar 3 has no kick on one.
    notes = rock_bar(0) + rock_bar(1) + [(SNARE, 12, ROLE_DRUMS), (KICK, 13, ROLE_DRUMS)]
    sequence = piece(notes)
    assert figures.drum_notes_per_bar(sequence) == pytest.approx(26 / 3)
    assert figures.kicks_per_bar(sequence) == pytest.approx(5 / 3)
    assert figures.kick_on_one(sequence) == pytest.approx(2 / 3)
    assert figures.kick_on_one(piece(rock_bar(0) + [(60, 4, ROLE_LEAD)])) == 1.0
    assert figures.drum_notes_per_bar(piece([(60, 0, ROLE_LEAD)])) is None


def test_periodicity_of_four_on_the_floor_and_of_random_kicks():
    floor = [(KICK, beat, ROLE_DRUMS) for beat in range(16)]
    assert figures.kick_periodicity(piece(floor)) == pytest.approx(1.0)
    hats = [(HAT, eighth / 2, ROLE_DRUMS) for eighth in range(32)]
    assert figures.hi_hat_periodicity(piece(hats)) == pytest.approx(1.0)
    rng = random.Random(3)
    # Kicks on a random half of 8 bars' steps: no lag finds them again (and
    # half of each shifted series still meets a kick: the figure removes the mean).
    scattered = [(KICK, step / 12, ROLE_DRUMS) for step in rng.sample(range(8 * 48), 4 * 48)]
    assert figures.kick_periodicity(piece(scattered)) < 0.25
    assert figures.hi_hat_periodicity(piece(floor)) is None  # no hats
    assert figures.kick_periodicity(piece(floor[:4])) is None  # one bar


def test_onset_periodicity_reads_lags_from_half_a_beat_to_a_bar():
    # A hit every 3 steps (a sixteenth) repeats at lag 6: periodic. One every
    # 5 bars repeats at no lag within a bar.
    assert figures.onset_periodicity(range(0, 96, 3), 48) == pytest.approx(1.0)
    assert figures.onset_periodicity([0, 48 * 5, 48 * 10], 48) < 0.1


# ----- sections and all figures --------------------------------------------------------


def test_fill_bars_repeat_less_than_main_bars():
    notes = [note for bar in range(7) for note in rock_bar(bar)]
    fill = [(SNARE, 28 + sixteenth / 4, ROLE_DRUMS) for sixteenth in range(16)]
    sequence = piece(notes + fill + rock_bar(8),
                     sections=((0, 1), (28, 2), (32, 1)))  # A, Fill at bar 7, A
    assert figures.main_drum_repeat(sequence) == 1.0
    assert figures.fill_drum_repeat(sequence) == 0.0
    assert figures.drum_bar_repeat(sequence) == pytest.approx(7 / 8)
    assert figures.fill_drum_repeat(piece(notes + fill)) is None  # no sections


def test_song_figures_computes_every_figure():
    chords = ((0, "C"), (4, "G"))
    notes = [note for bar in range(2) for note in rock_bar(bar)]
    notes += [(36, 0, ROLE_BASS), (43, 4, ROLE_BASS), (60, 0, ROLE_HARMONY, 4),
              (64, 0, ROLE_HARMONY, 4), (67, 4, ROLE_HARMONY, 4), (71, 4, ROLE_HARMONY, 4)]
    sequence = piece(notes, chords=chords, sections=((0, 1),))
    result = figures.song_figures(sequence, assign=False)
    assert list(result) == list(figures.FIGURES)
    assert result["drum_bar_repeat"] == 1.0
    assert result["chord_tone_share"] == 1.0
    assert result["bass_root_on_one"] == 1.0
    assert result["fill_drum_repeat"] is None
    assert result["main_drum_repeat"] == 1.0
    summary = figures.mean_figures([result, {**result, "drum_bar_repeat": 0.0,
                                             "chord_tone_share": None}])
    assert summary["drum_bar_repeat"] == {"mean": 0.5, "pieces": 2}
    assert summary["chord_tone_share"] == {"mean": 1.0, "pieces": 1}
    assert summary["fill_drum_repeat"] == {"mean": None, "pieces": 0}


def test_song_figures_assigns_roles_by_program():
    """A file's parts: the low single line on a bass program is the bass."""
    sequence = piece([(36, 0, ROLE_LEAD), (43, 4, ROLE_LEAD)], chords=((0, "C"), (4, "G")))
    for note in sequence.notes:
        note.instrument, note.program = 5, 33  # a bass part, not yet a role
    assert figures.bass_root_on_one(sequence) is None
    assert figures.song_figures(sequence)["bass_root_on_one"] == 1.0
