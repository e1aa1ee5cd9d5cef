"""The Encoding protocol: what every event encoding declares, and nothing more.

An encoding turns music into the events a model reads and writes, and back.
Three implement this protocol (`perfrnn.encodings.encoding_for` picks one):

- `PerformanceEncoding` (`perfrnn.performance_encoding`): Magenta's, for one
  part, time in 10 ms steps, with optional note-density and key controls;
- `MultiTrackEncoding` (`perfrnn.multitrack`): the same in several parts;
- `MetricEncoding` (`perfrnn.metric_encoding`): the parts of a band or kit,
  time in steps of a beat, with the position in the bar as an input.

The sampler, training, scoring and streaming use only what is declared here.

It declares:

- the event vocabulary: `num_classes`, `start_event`, `velocities`;
- the note grammar, what may follow what: which note each event starts or
  ends (`note_keys`) and the steps a note may start on (`onset_allowed`);
- the time unit (`time_unit`) and how an event moves time
  (`time_shift_steps`, `time_shift_events`, `steps_per_second`,
  `follows_tempo`);
- the model inputs. A model input row is laid out as

      [ step inputs | row inputs | history inputs | event one-hot ]

  and the first three are the model's inputs besides the event (their
  widths: `step_input_size`, `row_input_size`, `history_size`; together
  `control_size`):

  - **planned inputs**, known before sampling for every step, from an
    `InputPlan`. *Step inputs* change with the step within a cycle (a
    metric style's position in the beat, bar and phrase), `step_table`;
    *row inputs* change at most once a bar, from the request's song plan
    (`perfrnn.song_form.SongPlan`: the chord now and next, the section and
    the bars left in it; a piano's key from the chord), and otherwise stay
    the same for a whole request (note density and key; a style blend),
    `row_inputs`, one row per bar of the plan. The sampler folds both into
    layer 0's gate tables, so they cost a gather or two per event.
  - **history inputs**, computed from the events generated so far
    (`history_for(metre)`, each a `HistoryInput`: a metric style's
    `perfrnn.lookback.BarLookback`, what each part played one, two and four
    bars ago). The compiled loop moves their state on by
    each event it makes, and `history_rows` computes the same rows for
    teacher-forced training by running the same `update` over the same
    events, from the start of the piece. With none declared, the compiled
    loop is the one without them. (Only the metric encoding lays out history
    columns; the others declare none.)

Where a new input goes: a value known in advance for every step is a step
input (widen `step_table` and `inputs`); a value that depends on what the
model played is a history input (add a `HistoryInput`). Either way the
layer-0 kernel gets the rows, and nothing in the sampler changes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
from note_seq.protobuf import music_pb2

from perfrnn.configs import ModelConfig, TrackRole
from perfrnn.errors import PerfRNNError
from perfrnn.metre import COMMON_TIME, Metre

if TYPE_CHECKING:
    import tensorflow as tf

    from perfrnn.song_form import SongPlan


@dataclasses.dataclass(frozen=True)
class InputPlan:
    """A request's planned inputs: what it asks the model for, known before sampling.

    Attributes:
      metre: The metre the music is in (a metric style's bars and phrases).
      controls: The encoded note density and key of a conditioned style
        (`encode_controls`), empty for none.
      style: The style input of a model that has one (`style_vector`), empty
        for none.
      song: The chords and sections per bar (None: none planned).
      song_start: The step (from the start of the events) where the song's
        first bar begins: the end of a primer.
      bar_steps: Steps of one bar (0: the metre's, for a metric encoding).
    """

    metre: Metre = COMMON_TIME
    controls: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.float32))
    style: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.float32))
    song: SongPlan | None = None
    song_start: int = 0
    bar_steps: int = 0

    def bars_at(self, steps: np.ndarray) -> np.ndarray:
        """The bar of the song plan (an index into its bars; 0 before it
        starts, and the plan repeats after its end) at each absolute step."""
        if self.song is None or self.bar_steps <= 0:
            return np.zeros(np.shape(steps), np.int64)
        bars = np.maximum(np.asarray(steps, np.int64) - self.song_start, 0) // self.bar_steps
        return bars % self.song.bars


class HistoryInput(Protocol):
    """A model input computed from the events so far.

    Its state is a float32 vector per row. `update` moves it on by one event
    (TensorFlow ops over a batch: the compiled loop traces it), `features`
    gives the input row from it. Training computes the same rows from the
    same events with `history_rows`, which runs the same `update`, so
    sampling and teacher forcing cannot disagree.
    """

    width: int  # columns of the model input
    state_size: int  # floats of state per row

    def initial_state(self) -> np.ndarray:
        """The state before any event: [state_size] float32."""

    def update(self, state: tf.Tensor, event: tf.Tensor, position: tf.Tensor) -> tf.Tensor:
        """The state after `event` ([batch] int32), made at the step `position`
        ([batch] int32, the step of the position cycle after the event);
        `state` is [batch, state_size]."""

    def features(self, state: tf.Tensor) -> tf.Tensor:
        """The input row of each state: [batch, width] float32."""


@runtime_checkable
class Encoding(Protocol):
    """What the sampler, training, scoring and streaming know of an encoding."""

    config: ModelConfig
    tracks: tuple[TrackRole, ...]  # the parts, in the order of the roles
    time_unit: str  # what one step is, for people
    # True: steps are fractions of a beat, played at the file's tempo; False:
    # steps are fractions of a second at the style's own tempo, stretched.
    follows_tempo: bool
    history_inputs: tuple[HistoryInput, ...]  # in 4/4; their widths are any metre's
    # True: the model follows a song plan's chords (and sections) through its
    # row inputs (`InputPlan.song`)
    reads_song: bool
    # the note density and key signals of a conditioned style (note-seq's
    # PerformanceControlSignal), empty for others
    control_signals: list

    # ----- vocabulary and grammar -----

    @property
    def num_classes(self) -> int: ...

    def start_event(self) -> int:
        """The event fed first when there is no primer (it takes no time)."""

    def velocities(self) -> np.ndarray:
        """Per event, the MIDI velocity it sets (0: not a velocity event)."""

    def note_keys(self) -> tuple[np.ndarray, np.ndarray, int]:
        """Per event, the note (role * 128 + pitch) it starts and the one it
        ends (-1: none), and the number of notes."""

    def onset_allowed(self, metre: Metre) -> np.ndarray:
        """Per step of the position cycle, whether a note may start there
        ([cycle] bool; one True for an encoding without positions)."""

    # ----- time -----

    def time_shift_steps(self) -> np.ndarray:
        """Per event, the steps it moves time by (0 for most)."""

    def time_shift_events(self, steps: int) -> list[int]:
        """Time-shift events that together move `steps` steps."""

    def steps_per_second(self, bpm: float) -> float:
        """Steps per second of model time when the music plays at `bpm`."""

    def steps_per_file_second(self, bpm: float, native_bpm: float) -> float:
        """Steps per second of a file at `bpm`, for a style whose own tempo
        is `native_bpm`."""

    def steps_at(self, sequence: music_pb2.NoteSequence, seconds) -> np.ndarray:
        """The step nearest each time in `seconds` of `sequence`."""

    # ----- music -----

    def primer_sequence(self, primer: music_pb2.NoteSequence) -> music_pb2.NoteSequence:
        """The parts of `primer` this encoding continues, on its roles.

        Raises:
          PerfRNNError: the primer has nothing this encoding plays.
        """

    def events_from_sequence(self, sequence: music_pb2.NoteSequence,
                             total_steps: int | None = None) -> np.ndarray: ...

    def sequence_from_events(self, events: np.ndarray, total_seconds: float,
                             steps_per_second: float) -> music_pb2.NoteSequence:
        """The notes of `events`, with `steps_per_second` steps a second."""

    # ----- model inputs -----

    @property
    def input_size(self) -> int: ...

    @property
    def step_input_size(self) -> int: ...

    @property
    def row_input_size(self) -> int: ...

    @property
    def control_size(self) -> int:
        """The columns before the event one-hot: step, row and history inputs."""

    def encode_controls(self, notes_per_second: float | None = None,
                        pitch_histogram: Sequence[float] | None = None) -> np.ndarray: ...

    def style_vector(self, mix: Mapping[str, float] | None = None) -> np.ndarray: ...

    def step_table(self, plan: InputPlan) -> np.ndarray:
        """The step inputs of each step of the position cycle: [cycle, step_input_size]."""

    def row_inputs(self, plan: InputPlan) -> np.ndarray:
        """The row inputs of a request, one row per bar of its song plan (one
        row without a plan): [bars, row_input_size]."""

    def history_for(self, metre: Metre) -> tuple[HistoryInput, ...]:
        """The history inputs in `metre` (widths as `history_inputs`)."""

    def inputs(self, events: np.ndarray, plan: InputPlan) -> np.ndarray:
        """Model input rows [len(events), input_size] for `events` from the
        start of a piece, planned inputs from `plan`: row t is what the model
        reads when event t is the last one made."""

    def teacher_inputs(self, events: np.ndarray, plan: InputPlan) -> np.ndarray:
        """Model input rows [len(events), input_size] as teacher forcing reads
        `events` from the start of a piece: the inputs a user chooses when
        sampling (note density, key) read from the events themselves, as
        Magenta's pipeline does; the rest as `inputs`."""

    def training_controls(self, events: np.ndarray, start: int, used: int,
                          plan: InputPlan) -> np.ndarray:
        """The inputs before the event one-hot of the training window that
        feeds events[start:start + used] (its labels follow each):
        [used, control_size]. Note density and key are read from the
        window's own events and its last label, as Magenta's pipeline does;
        the position and the history count from the start of the piece, so
        the window knows where its bars are and what came before it."""


def no_style(mix: Mapping[str, float] | None) -> np.ndarray:
    """The style input of a model without one: empty, and no blend accepted."""
    if mix:
        raise PerfRNNError("this style has no style input, so it cannot blend styles")
    return np.zeros(0, np.float32)


def history_size(history: Sequence[HistoryInput]) -> int:
    """Columns of the model input that `history` takes."""
    return sum(int(item.width) for item in history)


_SCANS: dict[int, tuple] = {}


def _compiled_scan(item: HistoryInput):
    """`item.update` scanned over events, as one compiled graph (run eagerly,
    a scan over a long primer takes a Python step per event)."""
    import tensorflow as tf

    if id(item) not in _SCANS or _SCANS[id(item)][0] is not item:
        def step(state, inputs):
            event, position = inputs
            return item.update(state, event[None], position[None])

        @tf.function(reduce_retracing=True)
        def scan(state, events, positions):
            return tf.scan(step, (events, positions), initializer=state)

        _SCANS[id(item)] = (item, scan)
    return _SCANS[id(item)][1]


def history_rows(history: Sequence[HistoryInput], events: np.ndarray, positions: np.ndarray,
                 initial: Sequence[np.ndarray] | None = None
                 ) -> tuple[np.ndarray, list[np.ndarray]]:
    """The history inputs of teacher-forced events, as the compiled loop makes them.

    Args:
      history: The encoding's history inputs.
      events: Event indices, from the start of a piece or after `initial`.
      positions: The step of the position cycle after each event.
      initial: Each input's state before the first event (default: its
        `initial_state`, the start of a piece).

    Returns:
      The rows [len(events), history_size] (row t: after event t), and each
      input's state after the last event ([state_size] each).
    """
    import tensorflow as tf

    events = np.asarray(events, np.int32)
    rows = np.zeros((len(events), history_size(history)), np.float32)
    states, column = [], 0
    for index, item in enumerate(history):
        first = item.initial_state() if initial is None else initial[index]
        state = tf.constant(np.asarray(first, np.float32)[None])
        if len(events):
            scanned = _compiled_scan(item)(state, tf.constant(events),
                                           tf.constant(positions, tf.int32))
            rows[:, column:column + item.width] = item.features(scanned[:, 0]).numpy()
            state = scanned[-1]
        states.append(state.numpy()[0])
        column += item.width
    return rows, states


class SecondsTime:
    """What the encodings whose steps are seconds share (Magenta's and the
    multi-track one): music made at the style's own tempo and stretched to
    the file's, a note may start at any step, no step, style or history
    inputs. They inherit it; a metric encoding overrides all of it."""

    follows_tempo = False
    history_inputs: tuple[HistoryInput, ...] = ()
    reads_song = False
    step_input_size = 0
    config: ModelConfig

    def onset_allowed(self, metre: Metre = COMMON_TIME) -> np.ndarray:
        """A note may start at any step: one position, always allowed."""
        return np.ones(1, bool)

    def steps_per_second(self, bpm: float) -> float:
        """Steps per second of model time (the same at any tempo)."""
        return float(self.config.steps_per_second)

    def steps_per_file_second(self, bpm: float, native_bpm: float) -> float:
        """Steps per second of a file at `bpm`: the music is made at the
        style's own tempo `native_bpm` and stretched to `bpm`."""
        return self.config.steps_per_second * bpm / native_bpm

    def style_vector(self, mix: Mapping[str, float] | None = None) -> np.ndarray:
        """No style input (see `perfrnn.encoding.no_style`)."""
        return no_style(mix)

    def step_table(self, plan: InputPlan) -> np.ndarray:
        """No step inputs: one position of width 0."""
        return np.zeros((1, 0), np.float32)

    def history_for(self, metre: Metre) -> tuple[HistoryInput, ...]:
        """No history inputs."""
        return ()
