"""The Encoding protocol: every encoding declares it, and history inputs are
computed in the compiled loop exactly as teacher-forced training computes them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
from conftest import small_band_bundle
from note_seq.protobuf import music_pb2

from perfrnn.bundle import Bundle, BundleMetadata
from perfrnn.configs import BAND_TRACKS, DEFAULT_CONFIGS
from perfrnn.encoding import Encoding, InputPlan, history_rows, history_size
from perfrnn.encodings import encoding_for
from perfrnn.metre import COMMON_TIME, position_cycle
from perfrnn.metric_encoding import MetricEncoding
from perfrnn.model import PerformanceRNN
from perfrnn.options import GenerationOptions
from perfrnn.sampler import Sampler

GREEDY = 1e-9  # a temperature this low makes sampling pick the most likely event


@pytest.mark.parametrize("config_id", sorted(DEFAULT_CONFIGS))
def test_every_encoding_declares_the_protocol_and_its_input_layout(config_id):
    encoding = encoding_for(DEFAULT_CONFIGS[config_id])
    assert isinstance(encoding, Encoding)
    plan = InputPlan(metre=COMMON_TIME, controls=encoding.encode_controls(),
                     style=encoding.style_vector({name: 1.0 for name in
                                                  encoding.config.style_names[:1]}))
    table = encoding.step_table(plan)
    assert table.shape[1] == encoding.step_input_size
    assert len(encoding.onset_allowed(COMMON_TIME)) == len(table)
    assert encoding.row_inputs(plan).shape == (1, encoding.row_input_size)  # no song: one row
    assert encoding.control_size == (encoding.step_input_size + encoding.row_input_size
                                     + history_size(encoding.history_inputs))
    events = np.array([encoding.start_event(), *encoding.time_shift_events(30)])
    inputs = encoding.inputs(events, plan)
    assert inputs.shape == (len(events), encoding.input_size)
    # the event one-hot comes last, after the planned (and history) inputs
    assert np.array_equal(np.argmax(inputs[:, encoding.control_size:], axis=1), events)
    # the planned inputs of each row are the table's row at its step, then the row inputs
    after = np.cumsum(encoding.time_shift_steps()[events]) % len(table)
    assert np.array_equal(inputs[:, :encoding.step_input_size], table[after])
    rows = slice(encoding.step_input_size, encoding.step_input_size + encoding.row_input_size)
    assert np.array_equal(inputs[:, rows],
                          np.broadcast_to(encoding.row_inputs(plan),
                                          (len(events), encoding.row_input_size)))


class StepsSinceOnset:
    """A history input for the test: the steps since the last note-on, one-hot
    (mod 12). Its state: the position now, the last note-on's, and whether
    there was one."""

    width = 12
    state_size = 3

    def __init__(self, is_onset: np.ndarray, cycle: int):
        self.is_onset = tf.constant(is_onset)
        self.cycle = cycle

    def initial_state(self) -> np.ndarray:
        return np.zeros(3, np.float32)

    def update(self, state, event, position):
        position = tf.cast(position, tf.float32)
        onset = tf.gather(self.is_onset, event)
        last = tf.where(onset, position, state[:, 1])
        seen = tf.where(onset, 1.0, state[:, 2])
        return tf.stack([position, last, seen], axis=1)

    def features(self, state):
        since = tf.math.floormod(tf.cast(state[:, 0] - state[:, 1], tf.int32), 12)
        return tf.one_hot(since, 12) * state[:, 2:3]


class HistoryBandEncoding(MetricEncoding):
    """The metric band encoding with one history input."""

    def __init__(self, config):
        super().__init__(config)
        on_keys, _, _ = self.note_keys()
        self.history_inputs = (StepsSinceOnset(on_keys >= 0,
                                               position_cycle(COMMON_TIME, 12)),)


@dataclasses.dataclass
class HistoryBundle(Bundle):
    @property
    def encoding(self):
        return HistoryBandEncoding(self.config)


@pytest.fixture(scope="module")
def history_band():
    base = small_band_bundle(seed=7, config_id="metric_band",
                             metadata=BundleMetadata(style="historyband", tracks=BAND_TRACKS,
                                                     default_bpm=120.0))
    encoding = HistoryBandEncoding(base.config)
    model = PerformanceRNN(encoding.input_size, encoding.num_classes, (32, 32), seed=11)
    # About as likely: a kick to hi-hat note-on of the kit, or a short time shift.
    bias = np.zeros(encoding.num_classes, np.float32)
    bias[encoding.note_on(0, 36):encoding.note_on(0, 47)] = 4.0
    bias[encoding.time_shift(3):encoding.time_shift(7)] = 4.0
    model.output_biases.assign(bias)
    # The history rows of layer 0's kernel weigh heavily, so that the history
    # input decides many of the most likely events.
    kernel = model.kernels[0].numpy()
    first = encoding.step_input_size + encoding.row_input_size
    kernel[first:encoding.control_size] *= 40.0
    model.kernels[0].assign(kernel)
    return HistoryBundle(config=base.config, model=model, metadata=base.metadata)


def drum_primer() -> music_pb2.NoteSequence:
    sequence = music_pb2.NoteSequence()
    sequence.tempos.add(qpm=120.0)
    for beat in range(4):
        sequence.notes.add(pitch=36, velocity=100, start_time=beat * 0.5,
                           end_time=beat * 0.5 + 0.1, is_drum=True, instrument=9)
    sequence.total_time = 2.0
    return sequence


@pytest.mark.parametrize("primed", [False, True])
def test_history_inputs_in_the_loop_are_what_teacher_forcing_computes(history_band, primed):
    sampler = Sampler(history_band, block_events=64, note_grammar=False)
    generation = sampler.generate(GenerationOptions(seconds=12, seed=3, temperature=GREEDY),
                                  primer=drum_primer() if primed else None)
    events = generation.events[0]
    encoding = sampler.encoding
    plan = InputPlan(metre=COMMON_TIME)
    inputs = encoding.inputs(events[:-1], plan)  # as training builds them
    first = encoding.step_input_size + encoding.row_input_size
    history = inputs[:, first:encoding.control_size]
    assert len(np.unique(history, axis=0)) > 3  # the history input does vary
    logits = history_band.model.sequence_logits(tf.constant(inputs[None]))[0].numpy()[0]
    start = len(sampler.planner.primer_events(drum_primer() if primed else None,
                                              COMMON_TIME.steps_per_bar(12))[0])
    new = np.arange(len(events) - 1) >= start - 1  # rows that chose a new event
    assert new.sum() > 60
    # every sampled event is the one teacher forcing finds most likely
    assert np.array_equal(np.argmax(logits, axis=1)[new], events[1:][new])
    # ...and without the history input teacher forcing would find others
    blind = inputs.copy()
    blind[:, first:encoding.control_size] = 0.0
    blind_logits = history_band.model.sequence_logits(tf.constant(blind[None]))[0].numpy()[0]
    assert not np.array_equal(np.argmax(blind_logits, axis=1)[new], events[1:][new])


def test_history_rows_run_the_same_update_over_the_events():
    encoding = HistoryBandEncoding(DEFAULT_CONFIGS["metric_band"].replace(tracks=BAND_TRACKS))
    item = encoding.history_inputs[0]
    onset, shift = encoding.note_on(0, 36), encoding.time_shift(3)
    events = np.array([onset, shift, shift, onset, shift])
    positions = np.cumsum(encoding.time_shift_steps()[events])
    rows, (state,) = history_rows([item], events, positions)
    assert [int(np.argmax(row)) for row in rows] == [0, 3, 6, 0, 3]
    assert state.tolist() == [9.0, 6.0, 1.0]


def test_a_training_window_mid_piece_reads_the_history_from_the_start_of_the_piece():
    encoding = HistoryBandEncoding(DEFAULT_CONFIGS["metric_band"].replace(tracks=BAND_TRACKS))
    rng = np.random.default_rng(5)
    choices = [encoding.note_on(0, 36), encoding.note_on(1, 40), *encoding.time_shift_events(3),
               encoding.time_shift(4), encoding.time_shift(5)]
    events = rng.choice(choices, size=200)
    plan = InputPlan(metre=COMMON_TIME)
    whole = encoding.inputs(events, plan)[:, :encoding.control_size]
    start, used = 120, 50
    window = encoding.training_controls(events, start, used, plan)
    assert np.array_equal(window, whole[start:start + used])
    first = encoding.step_input_size + encoding.row_input_size
    # a window read on its own would have started its history afresh
    alone = encoding.inputs(events[start:start + used], plan)[:, first:encoding.control_size]
    assert not np.array_equal(alone, whole[start:start + used, first:])
