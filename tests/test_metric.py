"""Metric styles: music on the beat at any tempo, lengths in bars, loops, feel.

A small metric band made here (random weights that favour notes and short
shifts) is enough: what is tested is where the notes land, not how they sound.
"""

from __future__ import annotations

import io

import mido
import numpy as np
import pytest
from conftest import small_band_bundle
from note_seq.protobuf import music_pb2

from perfrnn.bundle import BundleMetadata, read_bundle, write_bundle
from perfrnn.candidates import loop_join_nll
from perfrnn.configs import BAND_TRACKS, TrackRole, get_config
from perfrnn.encoding import InputPlan
from perfrnn.encodings import encoding_for
from perfrnn.errors import PerfRNNError
from perfrnn.generate import MidiOptions, apply_feel, generate_midi
from perfrnn.metre import (
    COMMON_TIME,
    Metre,
    downbeat_share,
    onset_grid_fit,
    parse_metre,
    position_features,
    quarters_at,
)
from perfrnn.options import GenerationOptions
from perfrnn.request_plan import LOOP_CANDIDATES
from perfrnn.sampler import Sampler
from training.train import ExampleMaker

TICKS_PER_STEP = 480 // 12  # a metric step (1/12 quarter note) in the writer's ticks
BAR_TICKS = 4 * 480


@pytest.fixture(scope="module")
def metric_band():
    metadata = BundleMetadata(style="beatband", tracks=BAND_TRACKS, default_bpm=120.0)
    return small_band_bundle(seed=3, metadata=metadata, config_id="metric_band")


@pytest.fixture(scope="module")
def metric_sampler(metric_band):
    return Sampler(metric_band)


def note_events(data: bytes) -> tuple[mido.MidiFile, list[tuple[int, str, int]]]:
    """(file, [(absolute tick, "on"/"off", pitch)]) of a MIDI file's notes."""
    midi = mido.MidiFile(file=io.BytesIO(data))
    found = []
    for track in midi.tracks:
        tick = 0
        for message in track:
            tick += message.time
            if message.type == "note_on" and message.velocity > 0:
                found.append((tick, "on", message.note))
            elif message.type in ("note_on", "note_off"):
                found.append((tick, "off", message.note))
    return midi, found


def end_of_track_ticks(midi: mido.MidiFile) -> list[int]:
    return [sum(message.time for message in track) for track in midi.tracks]


@pytest.mark.parametrize("bpm", [60, 97, 180])
def test_every_onset_is_on_the_grid_and_eight_bars_end_on_bar_eight(metric_sampler, bpm):
    files = generate_midi(metric_sampler, GenerationOptions(bars=8, bpm=bpm, seed=6)).files
    midi, events = note_events(files[0][1])
    onsets = [tick for tick, kind, _ in events if kind == "on"]
    assert len(onsets) > 20
    assert all(tick % TICKS_PER_STEP == 0 for tick in onsets), "an onset left the 1/12 grid"
    tempos = [m.tempo for m in midi.tracks[0] if m.type == "set_tempo"]
    assert tempos == [round(60_000_000 / bpm)]  # the BPM asked for, exactly
    assert max(tick for tick, _, _ in events) <= 8 * BAR_TICKS  # nothing past bar 8
    assert set(end_of_track_ticks(midi)) == {8 * BAR_TICKS}  # every track ends on bar 8
    assert midi.length == pytest.approx(8 * 4 * 60 / bpm, abs=1e-3)


def test_seconds_at_any_tempo_stay_on_the_grid_and_last_as_asked(metric_sampler):
    for bpm in (70, 133):
        generation = generate_midi(metric_sampler,
                                          GenerationOptions(seconds=12, bpm=bpm, seed=2))
        files = generation.files
        midi, events = note_events(files[0][1])
        assert all(tick % TICKS_PER_STEP == 0 for tick, kind, _ in events if kind == "on")
        assert midi.length == pytest.approx(12.0, abs=1e-3)
        # The sequence handed to the website carries that tempo: its beats are the file's.
        steps = quarters_at(generation.sequences[0],
                            [note.start_time for note in generation.sequences[0].notes]) * 12
        assert np.allclose(steps, np.rint(steps), atol=1e-6)


def test_the_same_seed_gives_the_same_bytes(metric_sampler):
    options = GenerationOptions(bars=4, bpm=110, seed=9, variations=2)
    first = [data for _, data in generate_midi(metric_sampler, options).files]
    again = [data for _, data in generate_midi(metric_sampler, options).files]
    assert first == again and first[0] != first[1]


def test_encoding_reads_the_beat_from_the_tempo_map():
    """Hits on sixteenths and triplets at 97 BPM, with a tempo change, come back
    on the same beats when played at 120 BPM."""
    config = get_config("metric_drums")
    encoding = encoding_for(config)
    sequence = music_pb2.NoteSequence()
    sequence.tempos.add(time=0.0, qpm=97.0)
    sequence.tempos.add(time=60 / 97 * 4, qpm=140.0)  # after one bar
    beats = [0, 0.25, 1, 4 / 3, 5 / 3, 2.5, 4, 4.75, 6 + 1 / 3, 7.5]
    for beat in beats:
        seconds = beat * 60 / 97 if beat < 4 else 4 * 60 / 97 + (beat - 4) * 60 / 140
        # a humanised hit: 12 ms late; the beat it meant is kept
        sequence.notes.add(pitch=36, velocity=100, start_time=seconds + 0.012,
                           end_time=seconds + 0.1, is_drum=True)
    assert quarters_at(sequence, [4 * 60 / 97 + 60 / 140])[0] == pytest.approx(5.0)
    events = encoding.events_from_sequence(sequence)
    decoded = encoding.sequence_from_events(events, steps_per_second=encoding.steps_per_second(120))
    starts = sorted(note.start_time for note in decoded.notes)
    assert starts == pytest.approx([beat * 0.5 for beat in beats])


def test_position_inputs_know_the_beat_bar_and_phrase():
    rows = position_features(np.array([0, 3, 12, 47, 48, 48 * 8]), COMMON_TIME, 12)
    step, quarter, bar, metre = rows[:, :12], rows[:, 12:16], rows[:, 16:24], rows[:, 24:]
    assert np.argmax(step, axis=1).tolist() == [0, 3, 0, 11, 0, 0]
    assert np.argmax(quarter, axis=1).tolist() == [0, 0, 1, 3, 0, 0]
    assert np.argmax(bar, axis=1).tolist() == [0, 0, 0, 0, 1, 0]  # bar 9 starts a phrase
    assert metre[:, 0].tolist() == [1.0] * 6  # 4/4
    assert rows.sum(axis=1).tolist() == [4.0] * 6
    waltz = position_features(np.array([36]), parse_metre("3/4"), 12)
    assert waltz[0, 16 + 1] == 1.0 and np.argmax(waltz[0, 24:]) == 1  # bar 2, in 3/4


def test_training_windows_count_bars_from_the_start_of_the_piece():
    config = get_config("metric_drums").replace(rnn_layer_sizes=(8,))
    maker = ExampleMaker(config, sequence_length=16)
    sequence = music_pb2.NoteSequence()
    sequence.tempos.add(qpm=120.0)
    for i in range(40):  # eighth notes: 0.25 s at 120 BPM
        sequence.notes.add(pitch=42, velocity=80, start_time=i * 0.25,
                           end_time=i * 0.25 + 0.1, is_drum=True)
    events = maker.encode(sequence)
    whole = maker.encoding.inputs_with_controls(events)
    controls, inputs, _, _ = maker.window(events, 20, COMMON_TIME)
    assert np.array_equal(controls, whole[20:36, :maker.encoding.control_size])
    assert np.array_equal(inputs, events[20:36])


def test_the_sampler_feeds_the_positions_training_does(metric_band):
    """Greedy sampling without the note grammar picks, at every event, the
    model's most likely event given the training-time inputs of what came before."""
    sampler = Sampler(metric_band, note_grammar=False)
    # (1e-9: this random model's top logits differ by 2e-5, so 1e-4 still samples)
    events = sampler.generate(GenerationOptions(bars=2, bpm=120, seed=1,
                                                temperature=1e-9)).events[0]
    inputs = sampler.encoding.inputs_from_events(events[:-1])
    logits = metric_band.model.sequence_logits(inputs[None])[0].numpy()[0]
    assert np.argmax(logits, axis=1).tolist() == events[1:].tolist()


def test_a_loop_is_the_candidate_whose_end_leads_back_best(metric_band):
    sampler = Sampler(metric_band)
    looped = sampler.generate(GenerationOptions(bars=4, bpm=120, seed=4, loop=True))
    batch = GenerationOptions(bars=4, bpm=120, seed=4, variations=LOOP_CANDIDATES)
    candidates = [events[1:] for events in sampler.generate(batch).events]
    start = np.array([sampler.encoding.start_event()])
    scores = loop_join_nll(metric_band.model, sampler.encoding, start, candidates, 48,
                           InputPlan(metre=COMMON_TIME))
    assert len(set(scores)) > 1
    best = candidates[int(np.argmin(scores))]
    assert looped.events[0][1:].tolist() == best.tolist()


def test_a_loop_needs_bars_and_bars_must_fit_ten_minutes(metric_sampler):
    with pytest.raises(PerfRNNError, match="bars"):
        metric_sampler.generate(GenerationOptions(seconds=8, loop=True))
    with pytest.raises(PerfRNNError, match="10 minutes"):
        metric_sampler.generate(GenerationOptions(bars=256, bpm=40))


def test_swing_and_human_feel_move_notes_only_when_asked(metric_sampler):
    plain = generate_midi(metric_sampler, GenerationOptions(bars=2, bpm=120, seed=3))
    files = plain.files
    straight = generate_midi(metric_sampler, GenerationOptions(bars=2, bpm=120, seed=3),
                             MidiOptions(feel="straight")).files
    assert files == straight
    sequence = music_pb2.NoteSequence()
    for start in (0.0, 0.25, 0.5, 1.0):  # a beat, an off-beat eighth, the next beat, ...
        sequence.notes.add(pitch=36, velocity=90, start_time=start, end_time=start + 0.1)
    sequence.total_time = 2.0
    swung = apply_feel(sequence, "swing", 120.0, seed=1)
    assert [round(n.start_time, 4) for n in swung.notes] == [0.0, round(1 / 3, 4), 0.5, 1.0]
    human = apply_feel(sequence, "human", 120.0, seed=1)
    moved = [abs(a.start_time - b.start_time) for a, b in zip(human.notes, sequence.notes)]
    assert max(moved) > 0 and max(moved) <= 0.02 + 1e-9
    assert apply_feel(sequence, "human", 120.0, seed=1) == human  # from the seed
    with pytest.raises(PerfRNNError, match="feel"):
        generate_midi(metric_sampler, GenerationOptions(bars=1), MidiOptions(feel="lazy"))


def test_downbeat_share_counts_kicks_on_beat_one():
    sequence = music_pb2.NoteSequence()
    sequence.tempos.add(qpm=120.0)
    for bar in range(4):  # kick on beat 1 in bars 1 and 3 only; hats everywhere
        for eighth in range(8):
            start = bar * 2.0 + eighth * 0.25
            sequence.notes.add(pitch=42, start_time=start, end_time=start + 0.1, is_drum=True,
                               velocity=70)
        if bar % 2 == 0:
            sequence.notes.add(pitch=36, start_time=bar * 2.0, end_time=bar * 2.0 + 0.1,
                               is_drum=True, velocity=100)
    assert downbeat_share(sequence) == pytest.approx(0.5)
    assert onset_grid_fit(sequence, drums_only=True) == 1.0


def test_a_metric_bundle_round_trips_and_old_encodings_still_load(tmp_path, metric_band):
    path = write_bundle(metric_band, tmp_path / "beatband.mag")
    loaded = read_bundle(path)
    assert loaded.config.is_metric and loaded.metadata.time_signature == "4/4"
    assert not loaded.is_magenta_compatible
    one = Sampler(metric_band).generate(GenerationOptions(bars=2, seed=1)).events[0]
    two = Sampler(loaded).generate(GenerationOptions(bars=2, seed=1)).events[0]
    assert one.tolist() == two.tolist()


def test_a_waltz_style_writes_three_four(tmp_path):
    metadata = BundleMetadata(style="waltz", tracks=(TrackRole("drums", 0, is_drum=True),),
                              time_signature="3/4")
    bundle = small_band_bundle(seed=1, metadata=metadata, config_id="metric_drums")
    files = generate_midi(Sampler(bundle), GenerationOptions(bars=4, bpm=90, seed=2)).files
    midi, events = note_events(files[0][1])
    signature = [m for m in midi.tracks[0] if m.type == "time_signature"][0]
    assert (signature.numerator, signature.denominator) == (3, 4)
    assert set(end_of_track_ticks(midi)) == {4 * 3 * 480}
    assert Metre(3, 4).steps_per_bar(12) == 36


def test_the_note_grammar_starts_notes_only_on_sixteenths_and_triplets(metric_band):
    """The small band's random weights start notes anywhere on the 1/12 grid;
    with the grammar (the default) every onset is on the 1/16 or triplet grid."""
    options = GenerationOptions(bars=8, bpm=100, seed=6)
    raw = Sampler(metric_band, note_grammar=False).generate(options).sequences[0]
    kept = Sampler(metric_band).generate(options).sequences[0]
    assert onset_grid_fit(raw) < 0.8
    assert onset_grid_fit(kept) == 1.0


def test_a_primer_pads_to_the_bar_line_after_its_last_event(metric_sampler):
    """A hit just before beat 4 snaps forward to the bar line and lasts a step:
    the new music then starts on the next bar line, not a step late."""
    primer = music_pb2.NoteSequence()
    primer.tempos.add(qpm=120.0)
    primer.notes.add(pitch=36, velocity=100, start_time=1.975, end_time=1.985, is_drum=True)
    primer.total_time = 1.985
    files = generate_midi(metric_sampler, GenerationOptions(bars=2, bpm=120, seed=1),
                          primer=primer).files
    midi, events = note_events(files[0][1])
    assert set(end_of_track_ticks(midi)) == {4 * BAR_TICKS}  # 2 bars of primer, 2 new
    assert all(tick % TICKS_PER_STEP == 0 for tick, kind, _ in events if kind == "on")


def test_quantize_keeps_a_metric_style_on_its_triplets_and_refuses_a_feel(metric_sampler):
    options = GenerationOptions(bars=4, bpm=120, seed=2)
    plain = generate_midi(metric_sampler, options).files
    quantized = generate_midi(metric_sampler, options, MidiOptions(quantize=True)).files
    assert quantized == plain
    with pytest.raises(PerfRNNError, match="quantize"):
        generate_midi(metric_sampler, options, MidiOptions(quantize=True, feel="swing"))
