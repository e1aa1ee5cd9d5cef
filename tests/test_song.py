"""Songs: chord symbols, song plans, the bar lookback and following a plan."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from perfrnn.bundle import BundleMetadata
from perfrnn.chords import (
    CHORD_FEATURES,
    chord_features,
    key_transposition,
    parse_chord,
    parse_progression,
    transpose_chord,
)
from perfrnn.configs import BAND_TRACKS, get_config
from perfrnn.encoding import InputPlan, history_rows
from perfrnn.encodings import encoding_for
from perfrnn.errors import PerfRNNError
from perfrnn.lookback import WIDTH, lookback_rows
from perfrnn.metre import COMMON_TIME, Metre, position_cycle
from perfrnn.options import GenerationOptions
from perfrnn.request_plan import SampleRequest
from perfrnn.sampler import Sampler
from perfrnn.song_form import BAR_FEATURES, SECTIONS, form_sections, plan_song
from tests.conftest import small_band_bundle

GREEDY = 1e-9


# ----- chord symbols --------------------------------------------------------------


def test_chord_symbols_parse_to_root_pitch_classes_and_bass():
    chord = parse_chord("Am7")
    assert (chord.root, sorted(chord.pitch_classes), chord.bass) == (9, [0, 4, 7, 9], 9)
    slash = parse_chord("Bb/D")
    assert (slash.root, slash.bass) == (10, 2)
    assert parse_chord("N.C.").is_no_chord and parse_chord("nc").is_no_chord
    assert transpose_chord("Bb/D", 3) == "Db/F"
    assert transpose_chord("N.C.", 5) == "N.C."


@pytest.mark.parametrize("symbol", ["Hm", "C#x", "Cmaj99", "", "C$", "X" * 200])
def test_an_unknown_chord_symbol_is_refused_with_the_accepted_qualities(symbol):
    with pytest.raises(PerfRNNError) as error:
        parse_chord(symbol)
    message = str(error.value)
    assert "unknown chord symbol" in message and "maj7" in message and "sus4" in message
    assert len(message) < 400


def test_a_progression_is_one_chord_per_bar():
    assert parse_progression("C G Am F") == ("C", "G", "Am", "F")
    assert parse_progression("C | G | % | F") == ("C", "G", "G", "F")
    with pytest.raises(PerfRNNError, match="one chord per bar"):
        parse_progression("C G | Am")
    with pytest.raises(PerfRNNError, match="at most 64 bars"):
        parse_progression(" ".join(["C"] * 65))
    with pytest.raises(PerfRNNError, match="empty"):
        parse_progression(" | ")
    with pytest.raises(PerfRNNError, match="unknown chord symbol 'Q7'"):
        parse_progression("C Q7")


def test_keys_move_c_major_and_a_minor_music():
    assert key_transposition("C") == 0 and key_transposition("Am") == 0
    assert key_transposition("G") == -5 and key_transposition("Em") == -5
    assert key_transposition("F#") == 6 and key_transposition("Bb") == -2
    with pytest.raises(PerfRNNError, match="unknown key"):
        key_transposition("H")


def test_chord_features_are_magentas_improv_rnn_encoding():
    row = chord_features("G7/B")
    assert row.shape == (CHORD_FEATURES,)
    assert row[0] == 0 and row[1 + 7] == 1 and row[25 + 11] == 1
    assert sorted(np.flatnonzero(row[13:25])) == [2, 5, 7, 11]
    assert chord_features("N.C.")[0] == 1 and chord_features("N.C.").sum() == 1


# ----- forms and plans --------------------------------------------------------------


def test_a_song_has_an_intro_sections_with_fills_and_an_ending():
    sections, markers = form_sections(40, "song")
    assert sections[:4] == ["intro"] * 4 and sections[-2:] == ["ending"] * 2
    assert sections.count("fill") == 4  # a fill before each following section
    assert [label for _, label in markers if label != "Fill"] == \
        ["Intro", "A", "A", "B", "A", "A", "Ending"]
    loop, _ = form_sections(8, "loop")
    assert loop == ["main"] * 8
    short, _ = form_sections(4, "song")
    assert "intro" not in short and set(short) <= set(SECTIONS)


def test_a_song_plan_repeats_its_progression_from_each_section_start():
    plan = plan_song(15, "song", ("C", "G", "Am", "F"), bridge=("Dm", "G"))
    assert plan.bars == 15
    assert plan.sections[:2] == ("intro", "intro")
    assert plan.chords[2:6] == ("C", "G", "Am", "F")  # A starts the progression again
    table = plan.bar_table()
    assert table.shape == (15, BAR_FEATURES)
    assert np.all(table.sum(axis=1) > 0)
    # each bar reads its own chord, and the next bar's
    assert np.array_equal(table[2, :CHORD_FEATURES], chord_features("C"))
    assert np.array_equal(table[2, CHORD_FEATURES:2 * CHORD_FEATURES], chord_features("G"))


# ----- the lookback -----------------------------------------------------------------


def random_band_events(encoding, count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ons = np.flatnonzero(encoding.note_keys()[0] >= 0)
    events = []
    for _ in range(count):
        if rng.random() < 0.5:
            events.append(int(rng.choice(ons)))
        else:
            events += encoding.time_shift_events(int(rng.integers(1, 40)))
    return np.array(events)


@pytest.mark.parametrize("metre", [COMMON_TIME, Metre(3, 4)])
def test_the_lookback_in_numpy_is_the_lookback_in_tensorflow(metre):
    encoding = encoding_for(get_config("metric_band_song"))
    lookback, = encoding.history_for(metre)
    events = random_band_events(encoding, 500, seed=1)
    after = np.cumsum(encoding.time_shift_steps()[events])
    traced, _ = history_rows([lookback], events, after % position_cycle(metre, 12))
    assert traced.shape == (len(events), WIDTH)
    assert np.array_equal(lookback_rows(lookback, events, after), traced)
    assert np.array_equal(lookback_rows(lookback, events, after, first_row=300), traced[300:])
    assert traced[:, -4:].any(axis=0).sum() >= 2  # the flags do move


def test_the_lookback_sees_a_bar_that_repeats():
    encoding = encoding_for(get_config("metric_drums_song"))
    lookback, = encoding.history_for(COMMON_TIME)
    kick, hat = encoding.note_on(0, 36), encoding.note_on(0, 42)
    bar = [kick, hat, *encoding.time_shift_events(24), hat, *encoding.time_shift_events(24)]
    events = np.array(bar * 4)
    after = np.cumsum(encoding.time_shift_steps()[events])
    rows = lookback_rows(lookback, events, after)
    last = rows[-1]
    # the bar before repeats the one before it, and the one two bars before
    assert last[-4] == 1 and last[-3] == 1 and last[-1] == 1
    # one bar back at the downbeat: a kick and a hi-hat
    downbeat = np.flatnonzero(after == 3 * 48)[0]
    assert rows[downbeat, 0] == 1 and rows[downbeat, 2] == 1


# ----- following a plan, in the loop and in training -------------------------------


@pytest.fixture(scope="module")
def song_band():
    bundle = small_band_bundle(seed=7, config_id="metric_band_song",
                               metadata=BundleMetadata(style="songband", tracks=BAND_TRACKS,
                                                       default_bpm=120.0,
                                                       progressions=[["C", "F", "G", "C"]]))
    encoding = bundle.encoding
    # The row (song) and history rows of layer 0's kernel weigh heavily, so
    # that they decide many of the most likely events.
    kernel = bundle.model.kernels[0].numpy()
    kernel[encoding.step_input_size:encoding.control_size] *= 30.0
    bundle.model.kernels[0].assign(kernel)
    return bundle


@pytest.mark.parametrize("chords", [None, ("Am", "Dm", "E7", "Am")])
def test_song_and_lookback_inputs_in_the_loop_are_what_teacher_forcing_reads(song_band, chords):
    sampler = Sampler(song_band, block_events=64, note_grammar=False)
    options = GenerationOptions(seconds=16, seed=3, temperature=GREEDY, bpm=120.0,
                                chords=chords)
    generation = sampler.generate(options)
    events = generation.events[0]
    planner = sampler.planner
    request_plan = planner.plan(SampleRequest(options))
    plan = request_plan.input_plan
    assert plan.song is not None and plan.song.bars == 8
    if chords:
        assert plan.song.chords[:4] == chords
    inputs = sampler.encoding.inputs(events[:-1], plan)
    logits = song_band.model.sequence_logits(tf.constant(inputs[None]))[0].numpy()[0]
    assert np.array_equal(np.argmax(logits, axis=1), events[1:])
    # ...and without the song plan teacher forcing would find other events
    unplanned = sampler.encoding.inputs(events[:-1], InputPlan(style=plan.style))
    blind = song_band.model.sequence_logits(tf.constant(unplanned[None]))[0].numpy()[0]
    assert not np.array_equal(np.argmax(blind, axis=1), events[1:])


def test_the_same_song_gives_the_same_music_batched_or_alone(song_band):
    sampler = Sampler(song_band, block_events=64)
    options = GenerationOptions(seconds=8, seed=11, chords=("C", "Am", "F", "G"))
    alone = sampler.generate(options).events[0]
    batched = dict(sampler.generate_batch([
        SampleRequest(options), SampleRequest(GenerationOptions(seconds=8, seed=12))]))
    assert np.array_equal(batched[0].events[0], alone)
    assert not np.array_equal(batched[1].events[0][:len(alone)], alone)


# ----- the plan in the MIDI file -------------------------------------------------


def test_the_midi_file_carries_sections_as_markers_and_chords_as_text(song_band, tmp_path):
    import io

    import mido

    from perfrnn.midi_writer import midi_bytes
    from perfrnn.music_io import read_music_file

    sampler = Sampler(song_band, block_events=64)
    generation = sampler.generate(GenerationOptions(seconds=32, seed=5, bpm=120.0,
                                                    chords=("C", "Am", "F", "G")))
    sequence = generation.sequences[0]
    data = midi_bytes(sequence, BAND_TRACKS, bpm=120.0, native_bpm=120.0)
    midi = mido.MidiFile(file=io.BytesIO(data))
    marks, tick = [], 0
    for message in midi.tracks[0]:
        tick += message.time
        if message.type in ("marker", "text"):
            marks.append((tick // (4 * midi.ticks_per_beat), message.type, message.text))
    markers = [(bar, text) for bar, kind, text in marks if kind == "marker"]
    chords = [(bar, text) for bar, kind, text in marks if kind == "text"]
    # 16 bars at 120 BPM: a 2-bar intro, A (fill in its last bar), A, a 2-bar ending
    assert markers == [(0, "Intro"), (2, "A"), (9, "Fill"), (10, "A"), (14, "Ending")]
    assert chords[:5] == [(0, "C"), (1, "Am"), (2, "C"), (3, "Am"), (4, "F")]
    # read back as the plan it was made with
    path = tmp_path / "song.mid"
    path.write_bytes(data)
    read = read_music_file(path)
    assert [a.text for a in read.text_annotations][:3] == ["C", "Am", "C"]
    assert [s.section_id for s in read.section_annotations] == [0, 1, 2, 1, 3]
