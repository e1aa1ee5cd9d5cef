"""One row sampled without end, a few steps at a time: the radio's music."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from perfrnn.errors import PerfRNNError
from perfrnn.request_plan import MAX_EVENTS_PER_SECOND, RequestPlan, RequestPlanner
from perfrnn.sampling_loop import Row


class SampleStream:
    """One row sampled without end, a few steps at a time (radio): its LSTM
    state, sounding notes, silence and random stream carry over from one
    `extend` to the next, so the music never restarts. Settings change
    between calls. Not safe to share between threads; the Sampler is."""

    def __init__(self, planner: RequestPlanner, plan: RequestPlan, row: Row):
        self.planner, self.plan, self.row = planner, plan, row
        self.bpm = plan.bpm
        self.target = 0  # steps asked for so far
        self.notes_per_second, self.pitch_histogram = planner.controls(plan.request.options)

    def steps_per_file_second(self) -> float:
        """Model steps in one second of audio at the stream's tempo."""
        return self.planner.steps_per_file_second(self.bpm)

    def extend(self, steps: int) -> np.ndarray:
        """The event indices of the next `steps` steps of music. The last time
        shift may reach past them; the next call then starts that much later."""
        loop, row = self.planner.loop, self.row
        self.target += int(steps)
        if row.elapsed >= self.target:
            return np.zeros(0, np.int32)
        row.target = self.target
        model_seconds = steps / float(self.plan.length.steps_per_second)
        row.max_events = row.count + int(MAX_EVENTS_PER_SECOND * model_seconds) \
            + loop.block_events
        while not row.finished:
            loop.sample_rows([row])
        events = list(row.events)
        row.events.clear()  # the stream keeps no record of its events
        if row.elapsed < self.target:  # the model stopped moving time: the rest is silence
            shifts = np.asarray(self.planner.encoding.time_shift_events(
                self.target - row.elapsed), np.int32)
            events.append(shifts)
            if loop.history:  # the history goes on through the silence, as it would in the loop
                row.history = self.planner.history_after(
                    shifts, row.first_position + row.elapsed, row.history)
            row.elapsed, row.last_event = self.target, int(shifts[-1])
        return np.concatenate(events) if events else np.zeros(0, np.int32)

    def change(self, bpm: float | None = None, temperature: float | None = None,
               notes_per_second: float | None = None,
               pitch_histogram: Sequence[float] | None = None) -> None:
        """New settings for the music after the next `extend`."""
        row, planner = self.row, self.planner
        if temperature is not None:
            row.temperature = float(temperature)
        if bpm is not None:
            self.bpm = float(bpm)
            row.silence_cap = planner.silence_cap(self.bpm)
        if notes_per_second is not None or pitch_histogram is not None:
            if not planner.encoding.control_signals:
                raise PerfRNNError(f"style {planner.bundle.metadata.style!r} is not "
                                   "conditioned: it takes no note density or key")
            if notes_per_second is not None:
                self.notes_per_second = float(notes_per_second)
            if pitch_histogram is not None:
                self.pitch_histogram = tuple(pitch_histogram)
            controls = planner.encoding.encode_controls(self.notes_per_second,
                                                        self.pitch_histogram)
            input_plan = dataclasses.replace(self.plan.input_plan, controls=controls)
            gates = planner.loop.row_gates(planner.encoding.row_inputs(input_plan))
            row.gates, row.bar_rows = gates.gates, gates.bar_rows
