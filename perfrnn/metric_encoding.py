"""The metric event encoding for drum and band styles.

The vocabulary is the multi-track one (`perfrnn.multitrack`): note-on and
note-off per role, time shifts and velocities. What differs is time:

- a time shift of s moves s steps of 1/steps_per_quarter of a quarter note
  (12 per quarter: sixteenths are 3 steps, eighth triplets 4), read from each
  piece's own tempo map, so the model sees one stable grid whatever tempo the
  music was played at;
- each model input row starts with the position after its event: step in the
  beat, beat in the bar, bar in an 8-bar phrase and the metre
  (`perfrnn.metric.position_features`), then the event one-hot.

Generated steps are played at the requested tempo, so a file written at that
tempo has every onset on the grid and every bar on the DAW's bar lines.
A one-role configuration (drums) maps every note onto its one role.
"""

from __future__ import annotations

import numpy as np
from note_seq.protobuf import music_pb2

from perfrnn.configs import ModelConfig
from perfrnn.errors import PerfRNNError
from perfrnn.metric import (
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
    """Events and model inputs of a metric ModelConfig (`config.is_metric`)."""

    def __init__(self, config: ModelConfig):
        if not config.is_metric:
            raise PerfRNNError(f"configuration {config.id!r} is not metric")
        super().__init__(config)
        self.steps_per_quarter = int(config.steps_per_quarter)
        # For each step within a beat, the nearest onset of the 16th or 8th-triplet grid.
        grid = np.array(sorted({round(self.steps_per_quarter * p) for p in ONSET_GRID}))
        within = np.arange(self.steps_per_quarter)
        self._snap = grid[np.argmin(np.abs(within[:, None] - grid[None, :]), axis=1)]

    @property
    def control_size(self) -> int:
        """Width of the position part of each input row."""
        return position_size(self.steps_per_quarter)

    @property
    def input_size(self) -> int:
        return self.control_size + self.num_classes

    def steps_per_second(self, bpm: float) -> float:
        """Steps per second when quarter notes go at `bpm` per minute."""
        return self.steps_per_quarter * bpm / 60.0

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

    def position_table(self, metre: Metre = COMMON_TIME) -> np.ndarray:
        """Position inputs for the steps of one phrase [cycle, control_size];
        step t's row is `table[t % cycle]`."""
        cycle = position_cycle(metre, self.steps_per_quarter)
        return position_features(np.arange(cycle), metre, self.steps_per_quarter)

    def inputs_from_events(self, events: np.ndarray, control_values: list | None = None,
                           first_step: int = 0, metre: Metre = COMMON_TIME) -> np.ndarray:
        """Model inputs [len(events), input_size]: row t is the position after
        event t (`first_step` is the step before the first event), then event
        t's one-hot."""
        events = np.asarray(events, np.int64)
        after = first_step + np.cumsum(self.time_shift_steps()[events])
        inputs = np.zeros((len(events), self.input_size), np.float32)
        inputs[:, :self.control_size] = position_features(after, metre, self.steps_per_quarter)
        inputs[np.arange(len(events)), self.control_size + events] = 1.0
        return inputs

    def inputs_with_controls(self, events: np.ndarray, first_step: int = 0,
                             metre: Metre = COMMON_TIME) -> np.ndarray:
        return self.inputs_from_events(events, first_step=first_step, metre=metre)

    def encode_controls(self, notes_per_second: float | None = None,
                        pitch_histogram: list[float] | None = None) -> np.ndarray:
        if notes_per_second is not None or pitch_histogram is not None:
            raise PerfRNNError("metric styles take no note density or key; leave them out")
        return np.zeros(0, np.float32)
