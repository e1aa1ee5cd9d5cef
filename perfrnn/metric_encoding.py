"""The metric event encoding for drum and band styles.

The vocabulary is the multi-track one (`perfrnn.multitrack`): note-on and
note-off per role, time shifts and velocities. What differs is time:

- a time shift of s moves s steps of 1/steps_per_quarter of a quarter note
  (12 per quarter: sixteenths are 3 steps, eighth triplets 4), read from each
  piece's own tempo map, so the model sees one stable grid whatever tempo the
  music was played at;
- each model input row starts with the position after its event: step in the
  beat, beat in the bar, bar in an 8-bar phrase and the metre
  (`perfrnn.metre.position_features`), then, for a base model and the
  styles made from it, the style input (one weight per style the base
  learned, summing to 1: a one-hot for one style, a blend for several),
  then the event one-hot.

Generated steps are played at the requested tempo, so a file written at that
tempo has every onset on the grid and every bar on the DAW's bar lines.
A one-role configuration (drums) maps every note onto its one role.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import numpy as np
from note_seq.protobuf import music_pb2

from perfrnn.chords import NO_CHORD
from perfrnn.configs import ModelConfig
from perfrnn.encoding import InputPlan, history_rows, history_size, no_style
from perfrnn.errors import PerfRNNError
from perfrnn.lookback import BarLookback, event_channels, lookback_rows
from perfrnn.metre import (
    COMMON_TIME,
    ONSET_GRID,
    Metre,
    position_cycle,
    position_features,
    position_size,
    quarters_at,
)
from perfrnn.multitrack import MultiTrackEncoding
from perfrnn.song_form import BAR_FEATURES, MAX_BARS_LEFT, SongPlan


class MetricEncoding(MultiTrackEncoding):
    """Events and model inputs of a metric ModelConfig (`config.is_metric`):
    time in steps of a beat, played at the file's tempo; the position as step
    inputs, the style blend as row inputs, and room for history inputs
    (`perfrnn.encoding`)."""

    follows_tempo = True

    def __init__(self, config: ModelConfig):
        if not config.is_metric:
            raise PerfRNNError(f"configuration {config.id!r} is not metric")
        super().__init__(config)
        self.steps_per_quarter = int(config.steps_per_quarter)
        self.time_unit = f"1/{self.steps_per_quarter} quarter note"
        # For each step within a beat, the nearest onset of the 16th or 8th-triplet grid.
        grid = np.array(sorted({round(self.steps_per_quarter * p) for p in ONSET_GRID}))
        within = np.arange(self.steps_per_quarter)
        self._snap = grid[np.argmin(np.abs(within[:, None] - grid[None, :]), axis=1)]
        self._lookbacks: dict[Metre, tuple] = {}
        if config.song_inputs:
            self._lookback_channels = event_channels(self.note_keys()[0], self.tracks)
            self.history_inputs = self.history_for(COMMON_TIME)

    @property
    def step_input_size(self) -> int:
        """The position in the beat, bar and phrase, and the metre."""
        return position_size(self.steps_per_quarter)

    @property
    def reads_song(self) -> bool:
        return self.config.song_inputs

    @property
    def bar_input_size(self) -> int:
        """The song plan's bar input (`perfrnn.song_form.BAR_FEATURES`: chord
        now and next, section, bars left) of a configuration with song inputs."""
        return BAR_FEATURES if self.config.song_inputs else 0

    @property
    def row_input_size(self) -> int:
        """The bar input, then the style input: one weight per style the base
        model learned."""
        return self.bar_input_size + len(self.config.style_names)

    @property
    def control_size(self) -> int:
        """Width of the part of each input row before the event: the position,
        then the row inputs, then the history inputs."""
        return self.step_input_size + self.row_input_size + history_size(self.history_inputs)

    def history_for(self, metre: Metre) -> tuple:
        """The bar lookback in `metre` (`perfrnn.lookback`) for a configuration
        with song inputs; else the history inputs set on the encoding."""
        if not self.config.song_inputs:
            return self.history_inputs
        if metre not in self._lookbacks:
            self._lookbacks[metre] = (BarLookback(
                self._lookback_channels, metre.steps_per_bar(self.steps_per_quarter),
                position_cycle(metre, self.steps_per_quarter)),)
        return self._lookbacks[metre]

    def style_vector(self, mix: Mapping[str, float] | None = None) -> np.ndarray:
        """The style input [len(style_names)]: each style's share of `mix`
        ({style: weight}, weights >= 0, scaled to sum to 1). Width 0 for a model
        without a style input, which takes no mix.

        Raises:
          PerfRNNError: a style the model does not know, a bad weight, or no
            mix for a model that needs one.
        """
        names = self.config.style_names
        if not names:
            return no_style(mix)
        if not mix:
            raise PerfRNNError(f"this model plays a blend of its styles "
                               f"({', '.join(names)}); name at least one")
        vector = np.zeros(len(names), np.float32)
        for name, weight in mix.items():
            if name not in names:
                raise PerfRNNError(f"unknown style {name!r} in the blend; this model knows "
                                   f"{', '.join(names)}")
            weight = float(weight)
            if not math.isfinite(weight) or weight < 0:
                raise PerfRNNError(f"the blend weight of {name!r} must be a number >= 0, "
                                   f"not {weight}")
            vector[names.index(name)] += weight
        total = float(vector.sum())
        if total <= 0:
            raise PerfRNNError("the blend's weights are all 0; give one style a weight")
        return vector / total

    @property
    def input_size(self) -> int:
        return self.control_size + self.num_classes

    def steps_per_second(self, bpm: float) -> float:
        """Steps per second when quarter notes go at `bpm` per minute."""
        return self.steps_per_quarter * bpm / 60.0

    def steps_per_file_second(self, bpm: float, native_bpm: float) -> float:
        """Steps per second of a file at `bpm`: the grid plays at the file's tempo."""
        return self.steps_per_second(bpm)

    def primer_sequence(self, primer: music_pb2.NoteSequence) -> music_pb2.NoteSequence:
        """A band's primer on its roles; a kit's primer, its drums.

        Raises:
          PerfRNNError: the primer has nothing this style plays.
        """
        if len(self.tracks) > 1:
            return super().primer_sequence(primer)
        if not self.tracks[0].is_drum:
            return primer
        drums = music_pb2.NoteSequence()
        drums.CopyFrom(primer)
        del drums.notes[:]
        drums.notes.extend(note for note in primer.notes if note.is_drum)
        if not drums.notes:
            raise PerfRNNError("the primer has no drums (MIDI channel 10) for this "
                               "drum style to continue")
        return drums

    def steps_at(self, sequence: music_pb2.NoteSequence, seconds) -> np.ndarray:
        """The grid step nearest each time, by the sequence's own tempo map."""
        return np.rint(quarters_at(sequence, seconds)
                       * self.steps_per_quarter).astype(np.int64)

    def onset_steps_at(self, sequence: music_pb2.NoteSequence, seconds) -> np.ndarray:
        """The grid step of a note starting at each time: the nearest sixteenth or
        eighth-triplet position of the sequence's own beat.

        Played music pushes and drags (mma's grooves are humanised by 10-30 ms);
        the encoding keeps the beat position meant, and a "feel" can put the
        push back when the result is written.
        """
        steps = np.rint(quarters_at(sequence, seconds) * self.steps_per_quarter).astype(np.int64)
        beats, within = np.divmod(steps, self.steps_per_quarter)
        return beats * self.steps_per_quarter + self._snap[within]

    def onset_allowed(self, metre: Metre = COMMON_TIME) -> np.ndarray:
        """For each step of a phrase [cycle], whether a note may start there: on a
        sixteenth or eighth-triplet position, the only onsets the encoding keeps."""
        cycle = position_cycle(metre, self.steps_per_quarter)
        within = np.arange(cycle) % self.steps_per_quarter
        return self._snap[within] == within

    def inputs_from_events(self, events: np.ndarray, control_values: list | None = None,
                           first_step: int = 0, metre: Metre = COMMON_TIME,
                           style: np.ndarray | None = None) -> np.ndarray:
        """Model inputs [len(events), input_size] without a song plan: row t is
        the position after event t (`first_step` is the step before the first
        event), then the style input (`style_vector`), then the history inputs
        after event t, then event t's one-hot (see `inputs`)."""
        return self._rows(events, first_step, self._plan(metre, style))

    def _plan(self, metre: Metre, style: np.ndarray | None) -> InputPlan:
        return InputPlan(metre=metre, style=np.zeros(0, np.float32) if style is None else style)

    def _rows(self, events: np.ndarray, first_step: int, plan: InputPlan) -> np.ndarray:
        events = np.asarray(events, np.int64)
        inputs = np.zeros((len(events), self.input_size), np.float32)
        inputs[:, :self.control_size] = self._controls(events, first_step, len(events), plan,
                                                       from_start=first_step == 0)
        inputs[np.arange(len(events)), self.control_size + events] = 1.0
        return inputs

    def _controls(self, events: np.ndarray, first_step: int, used: int, plan: InputPlan,
                  from_start: bool, start: int = 0) -> np.ndarray:
        """Position, row and history inputs [used, control_size] after
        events[start:start + used]; `first_step` is the step before
        events[start]. History runs from the start of `events` (which must be
        the start of the piece when `from_start`)."""
        window = events[start:start + used]
        after = first_step + np.cumsum(self.time_shift_steps()[window])
        controls = np.zeros((used, self.control_size), np.float32)
        steps = self.step_input_size
        controls[:, :steps] = position_features(after, plan.metre, self.steps_per_quarter)
        rows = self.row_inputs(plan)
        controls[:, steps:steps + self.row_input_size] = rows[self.song_bars(plan, after)]
        history = self.history_for(plan.metre)
        if history:
            fed = events[:start + used]
            absolute = np.cumsum(self.time_shift_steps()[fed]) + (0 if from_start else
                                                                   first_step)
            controls[:, steps + self.row_input_size:] = self._history_rows(
                history, fed, absolute, plan.metre, start)
        return controls

    def _history_rows(self, history, events, absolute, metre: Metre,
                      first_row: int) -> np.ndarray:
        """History rows after each event from `first_row` on: the lookback's
        numpy twin when it is the only one, else
        `perfrnn.encoding.history_rows` (TensorFlow)."""
        if len(history) == 1 and isinstance(history[0], BarLookback):
            return lookback_rows(history[0], events, absolute, first_row)
        cycle = position_cycle(metre, self.steps_per_quarter)
        return history_rows(history, events, absolute % cycle)[0][first_row:]

    def song_bars(self, plan: InputPlan, steps: np.ndarray) -> np.ndarray:
        """The row of `row_inputs(plan)` at each absolute step: the song
        plan's bar (0 for all without a plan)."""
        if plan.song is None or not self.bar_input_size:
            return np.zeros(len(steps), np.int64)
        bar_steps = plan.bar_steps or plan.metre.steps_per_bar(self.steps_per_quarter)
        return dataclasses.replace(plan, bar_steps=bar_steps).bars_at(steps)

    def positions_after(self, events: np.ndarray, first_step: int = 0,
                        metre: Metre = COMMON_TIME) -> np.ndarray:
        """The step of the position cycle after each event (`first_step`: the
        step before the first one)."""
        after = first_step + np.cumsum(self.time_shift_steps()[np.asarray(events, np.int64)])
        return after % position_cycle(metre, self.steps_per_quarter)

    def controls_from_events(self, events: np.ndarray, first_step: int = 0,
                             metre: Metre = COMMON_TIME,
                             style: np.ndarray | None = None) -> np.ndarray:
        """The planned part of `inputs_from_events` [len(events),
        step_input_size + row_input_size] alone: the position after each
        event, then the row inputs (no song plan)."""
        plan = self._plan(metre, style)
        after = first_step + np.cumsum(self.time_shift_steps()[np.asarray(events, np.int64)])
        planned = np.zeros((len(after), self.step_input_size + self.row_input_size), np.float32)
        planned[:, :self.step_input_size] = position_features(after, metre,
                                                              self.steps_per_quarter)
        planned[:, self.step_input_size:] = self.row_inputs(plan)[self.song_bars(plan, after)]
        return planned

    def inputs_with_controls(self, events: np.ndarray, first_step: int = 0,
                             metre: Metre = COMMON_TIME,
                             style: np.ndarray | None = None) -> np.ndarray:
        return self.inputs_from_events(events, first_step=first_step, metre=metre,
                                       style=style)

    def encode_controls(self, notes_per_second: float | None = None,
                        pitch_histogram: list[float] | None = None) -> np.ndarray:
        if notes_per_second is not None or pitch_histogram is not None:
            raise PerfRNNError("metric styles take no note density or key; leave them out")
        return np.zeros(0, np.float32)

    def step_table(self, plan: InputPlan) -> np.ndarray:
        """The position inputs of each step of one phrase: [cycle, step_input_size]."""
        cycle = position_cycle(plan.metre, self.steps_per_quarter)
        return position_features(np.arange(cycle), plan.metre, self.steps_per_quarter)

    def row_inputs(self, plan: InputPlan) -> np.ndarray:
        """One row per bar of the song plan (one without a plan): the bar input
        (`perfrnn.song_form.SongPlan.bar_table`; without a plan, no chord, the
        main section, the most bars left), then the style blend."""
        names = self.config.style_names
        style = np.asarray(plan.style if names else (), np.float32)
        if style.shape != (len(names),):
            raise PerfRNNError(f"this model needs a style input of {len(names)} weights "
                               f"({', '.join(names)}); see style_vector")
        if not self.bar_input_size:
            return style[None]
        song = plan.song or SongPlan((NO_CHORD,), ("main",))
        table = song.bar_table()
        if plan.song is None:
            table[0, -MAX_BARS_LEFT:] = 0.0
            table[0, -1] = 1.0
        return np.concatenate([table, np.broadcast_to(style, (len(table), len(style)))], axis=1)

    def inputs(self, events: np.ndarray, plan: InputPlan) -> np.ndarray:
        """`inputs_from_events` from the start of the piece, with `plan`'s metre,
        style and song (the row input of the bar after each event)."""
        return self._rows(events, 0, plan)

    def teacher_inputs(self, events: np.ndarray, plan: InputPlan) -> np.ndarray:
        """The same rows as `inputs` (nothing here is read from the events
        differently when sampling)."""
        return self.inputs(events, plan)

    def training_controls(self, events: np.ndarray, start: int, used: int,
                          plan: InputPlan) -> np.ndarray:
        """The position after each event fed, the row inputs of its bar, then
        the history inputs, run from the start of the piece."""
        events = np.asarray(events, np.int64)
        first_step = int(self.time_shift_steps()[events[:start]].sum())
        return self._controls(events, first_step, used, plan, from_start=True, start=start)
