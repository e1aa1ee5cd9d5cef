"""Objective metrics on pieces whose values are worked out by hand, and the overlapping area."""

from __future__ import annotations

import math

import numpy as np
import pytest
from note_seq.protobuf import music_pb2

from perfrnn import music_metrics as metrics

BEAT = 0.5  # seconds per beat at the default 120 qpm
SIXTEENTH = BEAT / 4


def make_sequence(notes, qpm: float | None = None) -> music_pb2.NoteSequence:
    """notes: (pitch, start_seconds, end_seconds[, is_drum]) tuples."""
    sequence = music_pb2.NoteSequence()
    if qpm is not None:
        sequence.tempos.add(qpm=qpm)
    for note in notes:
        pitch, start, end = note[:3]
        is_drum = len(note) > 3 and note[3]
        sequence.notes.add(pitch=pitch, velocity=80, start_time=start, end_time=end,
                           is_drum=is_drum, instrument=1 if is_drum else 0)
    return sequence


def melody(pitches, seconds: float = BEAT, start: float = 0.0):
    return [(pitch, start + i * seconds, start + (i + 1) * seconds)
            for i, pitch in enumerate(pitches)]


C_MAJOR_SCALE = [60, 62, 64, 65, 67, 69, 71, 72]
CHROMATIC_SCALE = list(range(60, 72))


# ---------------------------------------------------------------------------
# Pitch


def test_c_major_scale_is_in_one_scale():
    sequence = make_sequence(melody(C_MAJOR_SCALE))
    assert metrics.scale_consistency(sequence) == 1.0
    # C twice, six other pitch classes once: -(1/4 log2 1/4 + 6/8 log2 1/8) = 0.5 + 2.25.
    assert metrics.pitch_class_entropy(sequence) == pytest.approx(2.75)
    assert metrics.pitch_range(sequence) == 12


def test_chromatic_scale_has_maximal_pitch_class_entropy():
    sequence = make_sequence(melody(CHROMATIC_SCALE))
    assert metrics.pitch_class_entropy(sequence) == pytest.approx(math.log2(12))
    assert metrics.scale_consistency(sequence) == pytest.approx(7 / 12)


def test_a_minor_melody_outside_c_major_counts_its_own_scale():
    # A harmonic-minor fragment: G# is outside every natural scale containing A, C, E, F.
    sequence = make_sequence(melody([69, 71, 72, 74, 76, 77, 80, 81]))
    assert metrics.scale_consistency(sequence) == pytest.approx(7 / 8)


def test_pitch_metrics_ignore_drums():
    notes = melody(C_MAJOR_SCALE) + [(37, 0.0, 0.1, True), (42, 0.5, 0.6, True)]
    sequence = make_sequence(notes)
    assert metrics.scale_consistency(sequence) == 1.0
    assert metrics.pitch_class_entropy(sequence) == pytest.approx(2.75)


# ---------------------------------------------------------------------------
# Texture


def test_held_triad_has_polyphony_three():
    sequence = make_sequence([(60, 0.0, 2.0), (64, 0.0, 2.0), (67, 0.0, 2.0)])
    assert metrics.polyphony(sequence) == pytest.approx(3.0)
    assert metrics.polyphony_rate(sequence) == pytest.approx(1.0)


def test_chord_then_single_note():
    # One beat of a triad, then one beat of a single note: (3 + 1) / 2 pitches on average,
    # and half the steps have two or more pitches.
    sequence = make_sequence([(60, 0.0, BEAT), (64, 0.0, BEAT), (67, 0.0, BEAT),
                              (72, BEAT, 2 * BEAT)])
    assert metrics.polyphony(sequence) == pytest.approx(2.0)
    assert metrics.polyphony_rate(sequence) == pytest.approx(0.5)
    assert metrics.polyphony_rate(sequence, threshold=4) == 0.0


def test_polyphony_rate_counts_silence_and_ignores_drums():
    # Two pitches for one beat, one beat of silence with a drum hit at its end.
    sequence = make_sequence([(60, 0.0, BEAT), (64, 0.0, BEAT), (36, 3 * BEAT, 4 * BEAT, True),
                              (38, 3 * BEAT, 4 * BEAT, True)])
    assert metrics.polyphony(sequence) == pytest.approx(2.0)
    assert metrics.polyphony_rate(sequence) == pytest.approx(0.25)


def test_note_density_is_notes_per_second_of_the_played_span():
    # Ten notes from 0.5 s to 5.5 s: the leading half second of silence does not count.
    sequence = make_sequence(melody([60] * 10, seconds=0.5, start=0.5))
    assert metrics.note_density(sequence) == pytest.approx(2.0)


# ---------------------------------------------------------------------------
# Rhythm


def test_inter_onset_intervals_merge_chords():
    sequence = make_sequence([(60, 0.0, 0.4), (64, 0.0, 0.4), (67, 0.005, 0.4),
                              (62, 0.5, 1.0), (65, 1.5, 2.0)])
    assert metrics.inter_onset_intervals(sequence) == pytest.approx([0.5, 1.0])
    # Median 0.75 s is 1.5 beats at 120 qpm and 0.75 beats at 60 qpm.
    assert metrics.median_ioi_beats(sequence) == pytest.approx(1.5)
    sequence.tempos.add(qpm=60)
    assert metrics.median_ioi_beats(sequence) == pytest.approx(0.75)


def test_inter_onset_intervals_can_leave_out_drums():
    sequence = make_sequence([(60, 0.0, 0.5), (36, 0.25, 0.3, True), (62, 1.0, 1.5)])
    assert metrics.inter_onset_intervals(sequence) == pytest.approx([0.25, 0.75])
    assert metrics.inter_onset_intervals(sequence, include_drums=False) == pytest.approx([1.0])


@pytest.mark.parametrize("qpm", [None, 90.0])
def test_silent_bar_makes_a_third_of_the_beats_empty(qpm):
    beat = 60.0 / (qpm or 120.0)
    # A bar of crotchets, a bar of rest, a bar of crotchets: 4 empty beats of 12.
    notes = melody([60, 62, 64, 65], seconds=beat) + melody([67, 65, 64, 62], seconds=beat,
                                                            start=8 * beat)
    sequence = make_sequence(notes, qpm=qpm)
    assert metrics.empty_beat_rate(sequence) == pytest.approx(4 / 12)


def test_empty_beat_rate_counts_drums_and_held_notes():
    # A note held over beats 0-2, a drum hit in beat 5: beats 3 and 4 are empty, of 6.
    sequence = make_sequence([(60, 0.0, 3 * BEAT), (36, 5 * BEAT, 5.5 * BEAT, True)])
    assert metrics.empty_beat_rate(sequence) == pytest.approx(2 / 6)


def rock_beat(bars: int) -> list:
    """Kick on 1 and 3, snare on 2 and 4, closed hi-hat on every sixteenth."""
    notes = []
    for bar in range(bars):
        for sixteenth in range(16):
            time = (bar * 16 + sixteenth) * SIXTEENTH
            notes.append((42, time, time + 0.05, True))
            if sixteenth in (0, 8):
                notes.append((36, time, time + 0.05, True))
            if sixteenth in (4, 12):
                notes.append((38, time, time + 0.05, True))
    return notes


def test_beats_follow_the_whole_tempo_map():
    # Quarter notes at 120 qpm for 2 s, then at 60 qpm: one beat apart all through.
    sequence = make_sequence(melody([60] * 4, seconds=0.5) + melody([62] * 6, 1.0, 2.0))
    sequence.tempos.add(qpm=120.0, time=0.0)
    sequence.tempos.add(qpm=60.0, time=2.0)
    assert metrics.median_ioi_beats(sequence) == pytest.approx(1.0)
    assert metrics.empty_beat_rate(sequence) == 0.0
    # A beat left silent after the change is one empty beat of ten.
    del sequence.notes[5]
    assert metrics.empty_beat_rate(sequence) == pytest.approx(1 / 10)


def test_repeating_sixteenth_note_drum_pattern_is_fully_consistent():
    sequence = make_sequence(rock_beat(4))
    assert metrics.drum_pattern_consistency(sequence) == 1.0
    assert metrics.groove_consistency(sequence) == 1.0


def test_drum_pattern_consistency_takes_the_better_meter():
    # Per beat: 16ths at steps 0, 6, 12, 18 and triplets at 8, 16 (of 24). Duple grid holds
    # 4 of the 6 onsets, triple grid 3 (0, 8, 16).
    notes = []
    for beat in range(4):
        for step in (0, 6, 12, 18, 8, 16):
            time = (beat + step / 24) * BEAT
            notes.append((42, time, time + 0.02, True))
    assert metrics.drum_pattern_consistency(make_sequence(notes)) == pytest.approx(4 / 6)
    triplets = [(42, (beat + k / 3) * BEAT, (beat + k / 3) * BEAT + 0.02, True)
                for beat in range(4) for k in range(3)]
    assert metrics.drum_pattern_consistency(make_sequence(triplets)) == 1.0


def test_drum_hit_off_the_grid_lowers_drum_pattern_consistency():
    notes = rock_beat(1)  # 16 hi-hats + 2 kicks + 2 snares = 20 hits
    notes.append((39, 3 * SIXTEENTH / 2, 3 * SIXTEENTH / 2 + 0.05, True))  # a 32nd off the grid
    assert metrics.drum_pattern_consistency(make_sequence(notes)) == pytest.approx(20 / 21)


def test_groove_consistency_of_two_different_bars():
    # Bar 1: crotchets. Bar 2: quavers. They differ at the 4 off-beat quavers of 96 steps.
    notes = melody([60] * 4) + melody([62] * 8, seconds=BEAT / 2, start=4 * BEAT)
    assert metrics.groove_consistency(make_sequence(notes)) == pytest.approx(1 - 4 / 96)


def test_groove_consistency_follows_the_time_signature():
    # Crotchets in 3/4: every bar has the same three onsets.
    sequence = make_sequence(melody([60] * 9))
    sequence.time_signatures.add(numerator=3, denominator=4)
    assert metrics.groove_consistency(sequence) == 1.0
    assert math.isnan(metrics.groove_consistency(make_sequence(melody([60] * 3))))


# ---------------------------------------------------------------------------
# Undefined cases and the table of metrics


def test_empty_sequence_gives_nan_everywhere():
    values = metrics.compute_metrics(music_pb2.NoteSequence())
    assert list(values) == list(metrics.METRICS)
    assert all(math.isnan(value) for value in values.values())
    assert metrics.inter_onset_intervals(music_pb2.NoteSequence()) == []


def test_drums_only_leaves_pitch_metrics_undefined():
    values = metrics.compute_metrics(make_sequence(rock_beat(2)))
    for name in ("pitch_class_entropy", "pitch_range", "scale_consistency", "polyphony",
                 "polyphony_rate"):
        assert math.isnan(values[name]), name
    assert values["drum_pattern_consistency"] == 1.0
    assert values["empty_beat_rate"] == 0.0
    assert values["median_ioi_beats"] == pytest.approx(0.25)


def test_pitched_only_leaves_drum_pattern_undefined():
    values = metrics.compute_metrics(make_sequence(melody(C_MAJOR_SCALE)))
    assert math.isnan(values["drum_pattern_consistency"])
    assert values["scale_consistency"] == 1.0
    assert values["note_density"] == pytest.approx(2.0)
    assert values["median_ioi_beats"] == pytest.approx(1.0)
    assert values["polyphony"] == pytest.approx(1.0)


def test_ioi_histogram_is_a_density():
    sequences = [make_sequence(melody([60] * 8, seconds=0.25)),
                 make_sequence(melody([60] * 4, seconds=3.0))]
    density, edges = metrics.ioi_histogram(sequences, bins=20, max_seconds=2.0)
    assert len(edges) == 21 and edges[-1] == 2.0
    assert np.sum(density * np.diff(edges)) == pytest.approx(1.0)
    assert density[-1] > 0  # the 3-second intervals land in the last bin
    empty_density, _ = metrics.ioi_histogram([], bins=5)
    assert not empty_density.any()


# ---------------------------------------------------------------------------
# Overlapping area


def test_overlapping_area_of_identical_samples_is_one():
    sample = np.random.default_rng(0).normal(size=300)
    assert metrics.overlapping_area(sample, sample) == pytest.approx(1.0, abs=1e-3)


def test_overlapping_area_of_far_apart_samples_is_zero():
    rng = np.random.default_rng(1)
    assert metrics.overlapping_area(rng.normal(0, 1, 200), rng.normal(50, 1, 200)) < 1e-6


def test_overlapping_area_of_unit_normals_one_apart():
    # Two unit normals one standard deviation apart overlap by 2 * Phi(-1/2) = 0.617.
    rng = np.random.default_rng(2)
    expected = 1 + math.erf(-0.5 / math.sqrt(2))
    area = metrics.overlapping_area(rng.normal(0, 1, 2000), rng.normal(1, 1, 2000))
    assert area == pytest.approx(expected, abs=0.04)
    assert metrics.overlapping_area(rng.normal(1, 1, 2000),
                                    rng.normal(0, 1, 2000)) == pytest.approx(expected, abs=0.04)


def test_overlapping_area_ignores_nan_and_handles_degenerate_samples():
    rng = np.random.default_rng(3)
    real, generated = rng.normal(0, 1, 400), rng.normal(0.5, 1, 400)
    clean = metrics.overlapping_area(real, generated)
    with_nan = metrics.overlapping_area(list(real) + [math.nan, math.inf], [math.nan, *generated])
    assert with_nan == pytest.approx(clean)
    assert math.isnan(metrics.overlapping_area([], generated))
    assert math.isnan(metrics.overlapping_area([math.nan, math.nan], generated))
    assert metrics.overlapping_area([1.0, 1.0, 1.0], [1.0]) == 1.0
    assert metrics.overlapping_area([1.0, 1.0], [2.0, 2.0]) == 0.0
    # A constant sample borrows the other's bandwidth (0.1 * 200^-0.2 = 0.035), so it
    # overlaps a sample spread around it (about 0.49 here) instead of scoring 0.
    near = metrics.overlapping_area([1.0] * 20, rng.normal(1.0, 0.1, 200))
    assert 0.3 < near < 0.7


def test_compare_metrics_of_a_set_with_itself():
    sequences = [make_sequence(melody(C_MAJOR_SCALE[: 3 + i], seconds=0.25 + 0.05 * i))
                 for i in range(6)]
    comparison = metrics.compare_metrics(sequences, sequences)
    assert set(comparison["metrics"]) == set(metrics.METRICS)
    density = comparison["metrics"]["note_density"]
    assert density["real_mean"] == pytest.approx(density["generated_mean"])
    assert density["real_count"] == 6
    assert density["overlapping_area"] == pytest.approx(1.0, abs=1e-3)
    drum = comparison["metrics"]["drum_pattern_consistency"]
    assert drum["real_count"] == 0 and math.isnan(drum["overlapping_area"])
    assert math.isnan(drum["real_mean"])
    assert comparison["mean_overlapping_area"] == pytest.approx(1.0, abs=1e-3)


def test_compare_metric_values_averages_only_defined_metrics():
    comparison = metrics.compare_metric_values(
        {"a": [1.0, 2.0, 3.0], "b": [0.0, 0.0], "c": [math.nan]},
        {"a": [1.0, 2.0, 3.0], "b": [5.0, 5.0], "c": [1.0], "only_generated": [1.0]})
    assert set(comparison["metrics"]) == {"a", "b", "c"}
    assert comparison["metrics"]["a"]["real_std"] == pytest.approx(np.std([1.0, 2.0, 3.0]))
    assert comparison["mean_overlapping_area"] == pytest.approx(0.5, abs=1e-3)


def test_grid_tempo_is_found_from_the_onsets_alone():
    from perfrnn.music_metrics import drum_pattern_consistency, estimate_grid_qpm, with_grid_tempo

    rng = np.random.default_rng(0)
    sixteenth = 60.0 / 97.0 / 4
    groove = music_pb2.NoteSequence(total_time=20.0)  # no tempo: as generated music
    for step in range(int(18 / sixteenth)):
        if step % 2 == 0 or rng.random() < 0.3:
            start = 0.37 + step * sixteenth
            groove.notes.add(pitch=42, start_time=start, end_time=start + 0.05, velocity=80,
                             is_drum=True)
    assert estimate_grid_qpm(groove) == pytest.approx(97.0, abs=0.5)
    assert drum_pattern_consistency(groove) < 0.6  # measured on a 120 BPM grid
    assert drum_pattern_consistency(with_grid_tempo(groove)) == pytest.approx(1.0)
    scattered = music_pb2.NoteSequence(total_time=20.0)
    for start in rng.uniform(0, 19, 60):
        scattered.notes.add(pitch=38, start_time=start, end_time=start + 0.05, velocity=80,
                            is_drum=True)
    assert drum_pattern_consistency(with_grid_tempo(scattered)) < 0.6
