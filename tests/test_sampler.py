"""The compiled sampler: correctness against the model, options, determinism, limits."""

from __future__ import annotations

import mido
import numpy as np
import pretty_midi
import pytest
from conftest import magenta_bundle_path
from note_seq.protobuf import music_pb2
from test_midi_writer import (
    check_well_formed,
    mido_notes,
    music21_event_notes,
    music21_score_count,
    pretty_midi_count,
)

from perfrnn.bundle import read_bundle
from perfrnn.configs import MAX_NOTE_DURATION_SECONDS
from perfrnn.errors import PerfRNNError
from perfrnn.generate import MidiOptions, generate_midi
from perfrnn.midi_writer import midi_bytes
from perfrnn.note_lengths import QUANTILES, note_lengths
from perfrnn.options import GenerationOptions, pitch_histogram_for_key
from perfrnn.sampler import Sampler, SampleRequest
from perfrnn.sampling_loop import EVENT_STREAM, MAX_BATCH_ROWS, block_uniforms

GREEDY = 1e-9  # a temperature this low makes sampling pick the most likely event


def sharpened(path):
    """A Magenta bundle with its output layer scaled up.

    The tiny reference model is nearly uniform (it trained 30 steps), so its
    top events differ by less than float rounding; scaled logits give peaked
    distributions like a trained model's, where every choice is clear.
    """
    bundle = read_bundle(path)
    bundle.model.output_weights.assign(bundle.model.output_weights * 40)
    return bundle


@pytest.fixture(scope="module")
def sharp_piano():
    return Sampler(sharpened(magenta_bundle_path("performance_with_dynamics")), note_grammar=False)


@pytest.fixture(scope="module")
def sharp_conditioned():
    return Sampler(sharpened(magenta_bundle_path("multiconditioned_performance_with_dynamics")),
                   note_grammar=False)


def reference_events(bundle, first_events, controls, count, temperature=GREEDY, seed=None):
    """Sampling done the slow way: the full model over the growing input each step.

    With a seed, event t uses the same uniform number the compiled loop draws
    for it (inverse-CDF sampling); otherwise it takes the most likely event.
    """
    encoding = bundle.encoding
    uniforms = None
    if seed is not None:
        uniforms = block_uniforms([(seed, 0, 0)], EVENT_STREAM, count)
    events = list(first_events)
    for t in range(count):
        inputs = encoding.inputs_from_events(
            np.array(events), [[c] * (len(events) + 1) for c in controls] if controls else None)
        probabilities = bundle.model.probabilities(inputs, temperature)[-1]
        if uniforms is None:
            events.append(int(np.argmax(probabilities)))
        else:
            cdf = np.cumsum(probabilities)
            events.append(int(np.sum(cdf < uniforms[t, 0] * cdf[-1])))
    return events[len(first_events):]


def time_steps(sampler, events) -> int:
    return int(sampler.encoding.time_shift_steps()[np.asarray(events)].sum())


def test_compiled_loop_follows_the_model_step_for_step(sharp_piano):
    generation = sharp_piano.generate(GenerationOptions(seconds=3, temperature=GREEDY, seed=1))
    start = sharp_piano.encoding.start_event()
    generated = list(generation.events[0][1:])

    assert generation.events[0][0] == start
    assert generated[:40] == reference_events(sharp_piano.bundle, [start], None, 40)


def test_compiled_loop_samples_as_the_model_says(sharp_piano):
    generation = sharp_piano.generate(GenerationOptions(seconds=30, temperature=1.0, seed=77))
    start = sharp_piano.encoding.start_event()
    expected = reference_events(sharp_piano.bundle, [start], None, 60, temperature=1.0, seed=77)

    assert list(generation.events[0][1:61]) == expected
    assert len(set(expected)) > 4  # real sampling: greedy repeats two events here


def test_compiled_loop_uses_the_controls(sharp_conditioned):
    options = GenerationOptions(seconds=3, temperature=GREEDY, seed=1, notes_per_second=20,
                                pitch_histogram=pitch_histogram_for_key("Eb"))
    generation = sharp_conditioned.generate(options)
    start = sharp_conditioned.encoding.start_event()
    controls = [20.0, list(pitch_histogram_for_key("Eb"))]

    expected = reference_events(sharp_conditioned.bundle, [start], controls, 30)
    assert list(generation.events[0][1:31]) == expected
    other = sharp_conditioned.generate(GenerationOptions(
        seconds=3, temperature=GREEDY, seed=1, notes_per_second=1,
        pitch_histogram=pitch_histogram_for_key("A")))
    assert list(other.events[0][1:31]) == reference_events(
        sharp_conditioned.bundle, [start], [1.0, list(pitch_histogram_for_key("A"))], 30)


def test_primer_sets_the_state_the_continuation_starts_from(sharp_piano):
    piano_sampler = sharp_piano
    primer = music_pb2.NoteSequence()
    for i, pitch in enumerate([60, 64, 67, 72, 67, 64]):
        primer.notes.add(pitch=pitch, velocity=80, start_time=i * 0.25, end_time=i * 0.25 + 0.3)
    primer.total_time = 1.75
    generation = piano_sampler.generate(
        GenerationOptions(seconds=2, temperature=GREEDY, seed=1), primer=primer)

    primer_events, primer_steps = piano_sampler.planner.primer_events(primer)
    plain_events = piano_sampler.encoding.events_from_performance(
        piano_sampler.encoding.performance_from_sequence(primer))
    assert list(primer_events[:len(plain_events)]) == list(plain_events)
    assert primer_steps == 175
    events = list(generation.events[0])
    assert events[:len(primer_events)] == list(primer_events)
    assert time_steps(piano_sampler, primer_events) == 175  # padded to the primer's length
    expected = reference_events(sharp_piano.bundle, list(primer_events), None, 20)
    assert events[len(primer_events):len(primer_events) + 20] == expected

    sequence = generation.sequences[0]
    first = sorted(sequence.notes, key=lambda n: n.start_time)[:6]
    assert [n.pitch for n in first] == [60, 64, 67, 72, 67, 64]
    assert sequence.total_time == pytest.approx(1.75 + 2.0)


@pytest.mark.parametrize("seconds", [1.5, 10, 31])
def test_generation_stops_at_the_requested_musical_time(piano_sampler, seconds):
    generation = piano_sampler.generate(GenerationOptions(seconds=seconds, seed=5, variations=3))
    target = round(seconds * 100)
    for events, sequence in zip(generation.events, generation.sequences):
        # the last event crossed the target; the one before had not yet reached it
        assert time_steps(piano_sampler, events) >= target
        assert time_steps(piano_sampler, events[:-1]) < target
        assert sequence.total_time == pytest.approx(seconds)
        assert max((note.end_time for note in sequence.notes), default=0) <= seconds + 1e-9


def test_loop_runs_in_few_compiled_calls_not_one_per_event(piano_bundle):
    sampler = Sampler(piano_bundle, block_events=256)
    calls = []
    compiled = sampler.loop.sample_block
    sampler.loop.sample_block = lambda *args: calls.append(1) or compiled(*args)

    generation = sampler.generate(GenerationOptions(seconds=30, seed=2))

    events = len(generation.events[0])
    assert events > 300
    assert len(calls) == -(-events // 256)  # one call per block of 256 events
    hlo = compiled.experimental_get_compiler_ir(*sampler.loop.idle_block_arguments(2))(stage="hlo")
    assert "while" in hlo  # the whole event loop is inside the XLA program


def test_same_seed_same_bytes_other_seed_other_music(piano_sampler):
    def render(seed):
        files = generate_midi(piano_sampler, GenerationOptions(seconds=8, seed=seed,
                                                               variations=2)).files
        return [data for _, data in files]

    first, again, other = render(11), render(11), render(12)
    assert first == again
    assert first[0] != other[0]
    assert first[0] != first[1]  # the variations of one batch differ


def arpeggio(seconds_per_note=0.25):
    primer = music_pb2.NoteSequence()
    for i, pitch in enumerate([60, 64, 67, 72, 67, 64]):
        primer.notes.add(pitch=pitch, velocity=80, start_time=i * seconds_per_note,
                         end_time=(i + 1.2) * seconds_per_note, is_drum=False)
    primer.total_time = 6 * seconds_per_note + 0.25
    return primer


def assert_batched_like_alone(sampler, requests):
    """Each request of a batch gets, event for event, what it gets alone."""
    batched = dict(sampler.generate_batch(requests))
    assert sorted(batched) == list(range(len(requests)))
    for index, request in enumerate(requests):
        alone = sampler.generate(request.options, primer=request.primer)
        assert not isinstance(batched[index], PerfRNNError), batched[index]
        assert len(batched[index].events) == request.options.variations
        for together, own in zip(batched[index].events, alone.events):
            assert np.array_equal(together, own), index
    return batched


def test_requests_batched_together_get_the_music_each_gets_alone(piano_sampler,
                                                                 conditioned_sampler):
    assert_batched_like_alone(piano_sampler, [
        SampleRequest(GenerationOptions(seconds=6, seed=1)),
        SampleRequest(GenerationOptions(seconds=3, seed=2, temperature=0.7, variations=3)),
        SampleRequest(GenerationOptions(seconds=9, seed=1, temperature=1.3)),
        SampleRequest(GenerationOptions(seconds=4, seed=4), primer=arpeggio())])
    # each row its own note density and key
    assert_batched_like_alone(conditioned_sampler, [
        SampleRequest(GenerationOptions(seconds=5, seed=3, notes_per_second=2,
                                        pitch_histogram=pitch_histogram_for_key("A"))),
        SampleRequest(GenerationOptions(seconds=5, seed=3, notes_per_second=12)),
        SampleRequest(GenerationOptions(seconds=5, seed=3, variations=2))])


def test_a_metric_style_batches_blends_loops_and_more_rows_than_one_batch():
    sampler = Sampler(read_bundle("bundles/rock.mag"))
    batched = assert_batched_like_alone(sampler, [
        SampleRequest(GenerationOptions(bars=2, seed=5, blend=(("rock", 0.5), ("jazz", 0.5)))),
        SampleRequest(GenerationOptions(bars=1, seed=6, loop=True, variations=9)),  # 36 rows
        SampleRequest(GenerationOptions(bars=3, seed=5, bpm=90, temperature=0.8))])
    assert 9 * 4 > MAX_BATCH_ROWS
    blended = batched[0].events[0]
    assert not np.array_equal(blended, batched[2].events[0][:len(blended)])


def test_a_batch_hands_over_each_request_when_it_is_done_and_others_go_on(piano_sampler):
    sampler = Sampler(piano_sampler.bundle, block_events=64)
    polls = []

    def cancel_after_its_plan():  # polled once when its primer is done, then per block
        polls.append(1)
        return len(polls) >= 2

    seen = []
    requests = [SampleRequest(GenerationOptions(seconds=20, seed=1), progress=seen.append),
                SampleRequest(GenerationOptions(seconds=0)),
                SampleRequest(GenerationOptions(seconds=20, seed=2),
                              cancelled=cancel_after_its_plan),
                SampleRequest(GenerationOptions(seconds=2, seed=3))]
    order = []
    outcomes = {}
    for index, outcome in sampler.generate_batch(requests):
        order.append(index)
        outcomes[index] = outcome
    assert order == [1, 2, 3, 0]  # invalid at once, cancelled, then the short one first
    assert "positive" in str(outcomes[1])
    assert "cancelled" in str(outcomes[2])
    for index in (0, 3):
        alone = piano_sampler.generate(requests[index].options)  # other block size, same music
        assert np.array_equal(outcomes[index].events[0], alone.events[0])
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) > 3


def test_requests_that_come_while_a_batch_runs_join_it_with_their_own_music(piano_sampler):
    sampler = Sampler(piano_sampler.bundle, block_events=64)
    late = [SampleRequest(GenerationOptions(seconds=3, seed=seed)) for seed in (7, 8)]
    rooms = []

    def more(room):  # one request comes in after each of the first blocks
        rooms.append(room)
        return [late.pop(0)] if late and len(rooms) >= 2 else []

    order = []
    outcomes = {}
    for index, outcome in sampler.generate_batch(
            [SampleRequest(GenerationOptions(seconds=20, seed=1))], more=more):
        order.append(index)
        outcomes[index] = outcome
    assert rooms[0] == MAX_BATCH_ROWS - 1
    assert order == [1, 2, 0]  # the late short ones are done before the long one
    for index, seed in ((1, 7), (2, 8), (0, 1)):
        alone = piano_sampler.generate(GenerationOptions(seconds=20 if index == 0 else 3,
                                                         seed=seed))
        assert np.array_equal(outcomes[index].events[0], alone.events[0])


def test_random_seed_is_reported_and_reproduces(piano_sampler):
    generation = piano_sampler.generate(GenerationOptions(seconds=4))
    again = piano_sampler.generate(GenerationOptions(seconds=4, seed=generation.seed))
    assert [list(e) for e in again.events] == [list(e) for e in generation.events]


def test_temperature_changes_how_adventurous_sampling_is(piano_sampler):
    def distinct_events(temperature):
        generation = piano_sampler.generate(
            GenerationOptions(seconds=20, seed=3, temperature=temperature, variations=4))
        return np.mean([len(set(events)) / len(events) for events in generation.events])

    assert distinct_events(0.3) < distinct_events(1.0) < distinct_events(2.0)


def test_notes_are_ended_and_never_longer_than_five_seconds(piano_bundle):
    # A model that only ever plays note-ons and waits leaves every note hanging.
    sampler = Sampler(piano_bundle)
    weights = piano_bundle.model.get_weights()
    try:
        biases = weights["fully_connected/biases"].copy()
        biases[:] = -50
        biases[60] = biases[64] = 0  # note-on C4, E4
        biases[256 + 99] = 0.5  # a one-second time shift
        piano_bundle.model.output_biases.assign(biases)
        sampler = Sampler(piano_bundle)
        generation = sampler.generate(GenerationOptions(seconds=12, seed=1))
    finally:
        piano_bundle.model.set_weights(weights)
    sequence = generation.sequences[0]
    assert len(sequence.notes) > 5
    for note in sequence.notes:
        assert 0 < note.end_time - note.start_time <= MAX_NOTE_DURATION_SECONDS + 1e-9
        assert note.end_time <= 12.0


def test_a_model_that_never_moves_time_still_stops(piano_bundle):
    weights = piano_bundle.model.get_weights()
    try:
        biases = weights["fully_connected/biases"].copy()
        biases[256:356] = -100  # no time shifts at all
        piano_bundle.model.output_biases.assign(biases)
        generation = Sampler(piano_bundle, block_events=512).generate(
            GenerationOptions(seconds=2, seed=1))
    finally:
        piano_bundle.model.set_weights(weights)
    assert len(generation.events[0]) < 2000
    assert generation.sequences[0].total_time == 2.0


def test_progress_is_reported_and_cancel_stops(piano_bundle):
    sampler = Sampler(piano_bundle, block_events=128)
    seen = []
    sampler.generate(GenerationOptions(seconds=30, seed=1), progress=seen.append)
    assert len(seen) >= 3
    assert seen == sorted(seen) and seen[-1] == 1.0 and seen[0] < 1.0

    with pytest.raises(PerfRNNError, match="cancelled"):
        sampler.generate(GenerationOptions(seconds=30, seed=1), cancelled=lambda: True)


@pytest.mark.parametrize("options, message", [
    (GenerationOptions(seconds=0), "positive"),
    (GenerationOptions(seconds=-3), "positive"),
    (GenerationOptions(seconds=601), "maximum"),
    (GenerationOptions(seconds=5, temperature=0), "temperature"),
    (GenerationOptions(seconds=5, temperature=-1), "temperature"),
    (GenerationOptions(seconds=5, variations=0), "variations"),
    (GenerationOptions(seconds=5, seed=-1), "seed"),
    (GenerationOptions(seconds=5, notes_per_second=4), "not conditioned"),
])
def test_bad_options_are_refused_with_a_reason(piano_sampler, options, message):
    with pytest.raises(PerfRNNError, match=message):
        piano_sampler.generate(options)


def test_bad_controls_are_refused(conditioned_sampler):
    with pytest.raises(PerfRNNError, match="note density"):
        conditioned_sampler.generate(GenerationOptions(seconds=2, notes_per_second=-1))
    with pytest.raises(PerfRNNError, match="key"):
        conditioned_sampler.generate(GenerationOptions(seconds=2, pitch_histogram=(0.0,) * 12))


@pytest.mark.parametrize("quantize", [False, True])
def test_generated_files_parse_alike_in_mido_pretty_midi_and_music21(
        tmp_path, conditioned_sampler, quantize):
    files = generate_midi(
        conditioned_sampler, GenerationOptions(seconds=20, seed=4, variations=2, bpm=100),
        MidiOptions(quantize=quantize, program=6)).files
    for name, data in files:
        path = tmp_path / name
        path.write_bytes(data)
        check_well_formed(path)  # no hanging notes, no orphan note-offs
        notes = mido_notes(path)
        assert len(notes) > 20
        assert pretty_midi_count(path) == len(notes)
        assert len(music21_event_notes(path)) == len(notes)
        assert music21_score_count(path) >= len(notes)  # music21's score parses it too
        midi = mido.MidiFile(path)
        assert midi.type == 1 and midi.ticks_per_beat == 480
        assert {m.channel for t in midi.tracks for m in t if hasattr(m, "channel")} == {0}
        tempos = [m.tempo for m in midi.tracks[0] if m.type == "set_tempo"]
        assert tempos == [600_000]  # 100 BPM
        # A length is the file's length at any tempo: 20 s at 100 BPM is 20 s of file
        # (the style's 120 BPM music is sampled for 16.7 s and stretched to 100 BPM).
        # (quantizing may move the last onsets up to half a 1/16 note, 0.075 s, later)
        assert pretty_midi.PrettyMIDI(str(path)).get_end_time() <= 20.0 + 0.075 * quantize + 1e-6
        if not quantize:
            assert mido.MidiFile(path).length == pytest.approx(20.0, abs=1e-3)


def test_thirty_seconds_asked_is_thirty_seconds_of_midi(tmp_path, piano_sampler):
    generation = piano_sampler.generate(GenerationOptions(seconds=30, seed=9))
    path = tmp_path / "piece.mid"
    path.write_bytes(midi_bytes(generation.sequences[0], piano_sampler.bundle.metadata.tracks))
    assert 29.0 <= pretty_midi.PrettyMIDI(str(path)).get_end_time() <= 30.0 + 1e-6  # last note
    assert mido.MidiFile(path).length == pytest.approx(30.0)  # the file itself


def test_a_drum_styles_notes_are_drum_hits(piano_bundle):
    import dataclasses

    from perfrnn.configs import TrackRole

    bundle = dataclasses.replace(
        piano_bundle, metadata=dataclasses.replace(
            piano_bundle.metadata, tracks=(TrackRole("drums", 25, is_drum=True),)))
    generation = Sampler(bundle).generate(GenerationOptions(seconds=3.0, seed=1))
    assert generation.sequences[0].notes
    assert all(note.is_drum for note in generation.sequences[0].notes)


def with_note_lengths(bundle, **lengths):
    import dataclasses

    return dataclasses.replace(bundle, metadata=dataclasses.replace(bundle.metadata, **lengths))


def event_note_lengths(sampler, events):
    """The lengths in steps of the notes the events end (the model fed them all)."""
    on_keys, off_keys, _ = sampler.encoding.note_keys()
    return np.concatenate(note_lengths(events, on_keys, off_keys,
                                       sampler.encoding.time_shift_steps(), 128))


def test_notes_last_no_longer_than_the_styles_limit(piano_bundle):
    capped = Sampler(with_note_lengths(piano_bundle, max_note_seconds=[0.2]))
    options = GenerationOptions(seconds=6.0, seed=3)
    plain = Sampler(piano_bundle).generate(options)
    limited = capped.generate(options)
    assert max(n.end_time - n.start_time for n in plain.sequences[0].notes) > 0.2
    assert max(n.end_time - n.start_time for n in limited.sequences[0].notes) <= 0.2 + 1e-6
    # the loop ended the notes: the network was fed their note-offs at 20 steps
    lengths = event_note_lengths(capped, limited.events[0])
    assert len(lengths) > 10 and lengths.max() == 20
    assert time_steps(capped, limited.events[0][:-1]) < 600 <= time_steps(
        capped, limited.events[0])


def test_note_lengths_are_drawn_from_the_styles_quantiles(piano_bundle):
    """Each note ends at a length drawn from its part's recorded quantiles (here
    1 to 65 steps, evenly spread) unless the model ends it first; a time shift
    that passes a note's end is split there, so time still adds up."""
    quantiles = [float(2 * i + 1) for i in range(QUANTILES)]
    sampler = Sampler(with_note_lengths(piano_bundle, note_length_steps=[quantiles]))
    generation = sampler.generate(GenerationOptions(seconds=20, seed=4, variations=2))
    plain = Sampler(piano_bundle).generate(GenerationOptions(seconds=20, seed=4, variations=2))
    lengths = np.concatenate([event_note_lengths(sampler, events)
                              for events in generation.events])
    model_lengths = np.concatenate([event_note_lengths(sampler, events)
                                    for events in plain.events])
    assert lengths.max() <= 65
    assert np.percentile(lengths, 10) < 10 < 30 < np.percentile(lengths, 90)
    assert np.median(lengths) < np.median(model_lengths)
    for events, sequence in zip(generation.events, generation.sequences):
        assert time_steps(sampler, events[:-1]) < 2000 <= time_steps(sampler, events)
        assert sequence.total_time == pytest.approx(20.0)


def test_note_grammar_ends_only_sounding_notes(piano_bundle):
    """With the grammar every note-off ends a sounding note, and the choice among
    the allowed events is the model's own (the raw model's probabilities with
    the impossible note-offs taken out)."""
    sampler = Sampler(piano_bundle)
    generation = sampler.generate(GenerationOptions(seconds=20, temperature=1.0, seed=5))
    events = generation.events[0]
    on_keys, off_keys, _ = sampler.encoding.note_keys()
    sounding = set()
    offs = 0
    for event in events:
        if on_keys[event] >= 0:
            sounding.add(on_keys[event])
        elif off_keys[event] >= 0:
            assert off_keys[event] in sounding
            sounding.discard(off_keys[event])
            offs += 1
    assert offs > 10
    # the raw model spends note-offs on silent pitches at this seed
    raw = Sampler(piano_bundle, note_grammar=False).generate(
        GenerationOptions(seconds=20, temperature=1.0, seed=5)).events[0]
    silent_offs, sounding = 0, set()
    for event in raw:
        if on_keys[event] >= 0:
            sounding.add(on_keys[event])
        elif off_keys[event] >= 0:
            silent_offs += off_keys[event] not in sounding
            sounding.discard(off_keys[event])
    assert silent_offs > 0
    # step for step: the masked distribution of the model, greedy
    bundle = sharpened(magenta_bundle_path("performance_with_dynamics"))
    sampler = Sampler(bundle)
    greedy = sampler.generate(GenerationOptions(seconds=3, temperature=GREEDY, seed=1))
    start = sampler.encoding.start_event()
    expected, sounding = [start], set()
    for _ in range(30):
        probabilities = bundle.model.probabilities(
            sampler.encoding.inputs_from_events(np.array(expected)))[-1].copy()
        for event in range(len(probabilities)):
            if off_keys[event] >= 0 and off_keys[event] not in sounding:
                probabilities[event] = 0.0
        choice = int(np.argmax(probabilities))
        if on_keys[choice] >= 0:
            sounding.add(on_keys[choice])
        elif off_keys[choice] >= 0:
            sounding.discard(off_keys[choice])
        expected.append(choice)
    assert list(greedy.events[0][:31]) == expected
