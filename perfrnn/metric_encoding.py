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

import math
from collections.abc import Mapping

import numpy as np
from note_seq.protobuf import music_pb2

from perfrnn.configs import ModelConfig
from perfrnn.encoding import InputPlan, history_rows, history_size, no_style
from perfrnn.errors import PerfRNNError
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

    @property
    def step_input_size(self) -> int:
        """The position in the beat, bar and phrase, and the metre."""
        return position_size(self.steps_per_quarter)

    @property
    def row_input_size(self) -> int:
        """The style input: one weight per style the base model learned."""
        return len(self.config.style_names)

    @property
    def control_size(self) -> int:
        """Width of the part of each input row before the event: the position,
        then the style input, then the history inputs."""
        return self.step_input_size + self.row_input_size + history_size(self.history_inputs)

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

    def _control_rows(self, steps, metre: Metre, style: np.ndarray | None) -> np.ndarray:
        """Position and style inputs [len(steps), control_size] at absolute steps."""
        rows = position_features(steps, metre, self.steps_per_quarter)
        names = self.config.style_names
        if not names:
            return rows
        if style is None or np.shape(style) != (len(names),):
            raise PerfRNNError(f"this model needs a style input of {len(names)} weights "
                               f"({', '.join(names)}); see style_vector")
        styles = np.broadcast_to(np.asarray(style, np.float32), (len(rows), len(names)))
        return np.concatenate([rows, styles], axis=1)

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
        """Model inputs [len(events), input_size]: row t is the position after
        event t (`first_step` is the step before the first event), then the
        style input (`style_vector`), then the history inputs after event t
        (`perfrnn.encoding.history_rows`), then event t's one-hot."""
        events = np.asarray(events, np.int64)
        inputs = np.zeros((len(events), self.input_size), np.float32)
        planned = self.step_input_size + self.row_input_size
        inputs[:, :planned] = self.controls_from_events(events, first_step, metre, style)
        if self.history_inputs:
            inputs[:, planned:self.control_size] = history_rows(
                self.history_inputs, events, self.positions_after(events, first_step, metre))[0]
        inputs[np.arange(len(events)), self.control_size + events] = 1.0
        return inputs

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
        event, then the style input."""
        after = first_step + np.cumsum(self.time_shift_steps()[np.asarray(events, np.int64)])
        return self._control_rows(after, metre, style)

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
        """The request's style blend (empty for a model without a style input)."""
        return np.asarray(plan.style if self.row_input_size else (), np.float32)

    def inputs(self, events: np.ndarray, plan: InputPlan) -> np.ndarray:
        """`inputs_from_events` from the start of the piece, in `plan`'s metre and style."""
        return self.inputs_from_events(events, metre=plan.metre, style=plan.style)

    def teacher_inputs(self, events: np.ndarray, plan: InputPlan) -> np.ndarray:
        """The same rows as `inputs` (nothing here is read from the events
        differently when sampling)."""
        return self.inputs(events, plan)

    def training_controls(self, events: np.ndarray, start: int, used: int,
                          plan: InputPlan) -> np.ndarray:
        """The position after each event fed and the style, then the history
        inputs, run from the start of the piece."""
        events = np.asarray(events, np.int64)
        first_step = int(self.time_shift_steps()[events[:start]].sum())
        controls = np.zeros((used, self.control_size), np.float32)
        planned = self.step_input_size + self.row_input_size
        controls[:, :planned] = self.controls_from_events(events[start:start + used], first_step,
                                                          plan.metre, plan.style)
        if self.history_inputs:
            fed = events[:start + used]
            controls[:, planned:] = history_rows(
                self.history_inputs, fed, self.positions_after(fed, 0, plan.metre))[0][start:]
        return controls
