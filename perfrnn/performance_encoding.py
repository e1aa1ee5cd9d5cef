"""Magenta's Performance encoding: NoteSequences to events and model inputs, and back.

A thin layer over note-seq's own classes so that the encoding is exactly
Magenta's `performance_with_dynamics` family: 128 note-on, 128 note-off,
`max_shift_steps` time shifts of 1/steps_per_second seconds and
`num_velocity_bins` velocity events, plus the optional note-density and
pitch-class-histogram control signals placed *before* the event one-hot in the
model input, as Magenta's `ConditionalEventSequenceEncoderDecoder` does.
"""

from __future__ import annotations

import math

import note_seq
import numpy as np
from note_seq import performance_controls, performance_lib, sequences_lib
from note_seq.protobuf import music_pb2

from perfrnn.configs import MAX_NOTE_DURATION_SECONDS, ModelConfig
from perfrnn.encoding import InputPlan, SecondsTime
from perfrnn.errors import PerfRNNError
from perfrnn.fast_controls import input_controls


class PerformanceEncoding(SecondsTime):
    """Magenta's encoding of one ModelConfig (`perfrnn.encoding.Encoding`):
    time in steps of 1/steps_per_second seconds at the style's own tempo,
    the note density and key as row inputs, no step or history inputs."""


    def __init__(self, config: ModelConfig):
        self.config = config
        self.tracks = tuple(config.tracks)
        self.time_unit = f"1/{config.steps_per_second} second"
        self._decoded: list[performance_lib.PerformanceEvent] | None = None
        self.event_encoding = note_seq.PerformanceOneHotEncoding(
            num_velocity_bins=config.num_velocity_bins,
            max_shift_steps=config.max_shift_steps,
        )
        self.control_signals: list[performance_controls.PerformanceControlSignal] = []
        if config.has_density_control:
            self.control_signals.append(
                performance_controls.NoteDensityPerformanceControlSignal(
                    window_size_seconds=config.density_window_seconds,
                    density_bin_ranges=list(config.density_bin_ranges),
                )
            )
        if config.has_pitch_histogram_control:
            self.control_signals.append(
                performance_controls.PitchHistogramPerformanceControlSignal(
                    window_size_seconds=config.pitch_histogram_window_seconds
                )
            )

    # ----- sizes -------------------------------------------------------------

    @property
    def num_classes(self) -> int:
        """Number of distinct events (388 for performance_with_dynamics)."""
        return self.event_encoding.num_classes

    @property
    def control_size(self) -> int:
        """Width of the control part of each input row (0 when unconditioned)."""
        return sum(signal.encoder.input_size for signal in self.control_signals)

    @property
    def row_input_size(self) -> int:
        """The controls, the same for every step of a request."""
        return self.control_size

    @property
    def input_size(self) -> int:
        return self.control_size + self.num_classes

    # ----- event tables used by the compiled sampler -------------------------

    def time_shift_steps(self) -> np.ndarray:
        """Steps each event index advances time by (0 for non-time-shift events)."""
        return np.array(
            [self.event_encoding.event_to_num_steps(self.event_encoding.decode_event(i))
             for i in range(self.num_classes)],
            dtype=np.int32,
        )

    def encode_event(self, event: performance_lib.PerformanceEvent) -> int:
        return self.event_encoding.encode_event(event)

    def note_keys(self) -> tuple[np.ndarray, np.ndarray, int]:
        """For each event index, the note it starts and the note it ends (-1: none),
        and the number of notes (128 pitches)."""
        on_keys = np.full(self.num_classes, -1, np.int32)
        off_keys = np.full(self.num_classes, -1, np.int32)
        for pitch in range(128):
            on_keys[self.encode_event(performance_lib.PerformanceEvent(
                performance_lib.PerformanceEvent.NOTE_ON, pitch))] = pitch
            off_keys[self.encode_event(performance_lib.PerformanceEvent(
                performance_lib.PerformanceEvent.NOTE_OFF, pitch))] = pitch
        return on_keys, off_keys, 128

    def velocities(self) -> np.ndarray:
        """For each event index, the MIDI velocity it sets for the notes after it
        (0: not a velocity event)."""
        table = np.zeros(self.num_classes, np.int32)
        for index in range(self.num_classes):
            event = self.event_encoding.decode_event(index)
            if event.event_type == performance_lib.PerformanceEvent.VELOCITY:
                table[index] = performance_lib.velocity_bin_to_velocity(
                    event.event_value, self.config.num_velocity_bins)
        return table

    def steps_at(self, sequence: music_pb2.NoteSequence, seconds) -> np.ndarray:
        """The step (int) nearest each time in `seconds` of `sequence`."""
        return np.rint(np.asarray(seconds, np.float64)
                       * self.config.steps_per_second).astype(np.int64)

    def time_shift_events(self, steps: int) -> list[int]:
        """Time-shift events that together advance `steps` steps."""
        events = []
        while steps > 0:
            shift = min(self.config.max_shift_steps, steps)
            events.append(self.encode_event(performance_lib.PerformanceEvent(
                performance_lib.PerformanceEvent.TIME_SHIFT, shift)))
            steps -= shift
        return events

    def start_event(self) -> int:
        """The event fed first when there is no primer: a mid-range velocity.

        A velocity event takes no time, so output starts at 0 s; without
        velocity bins, the shortest time shift is used instead.
        """
        if self.config.num_velocity_bins:
            event = performance_lib.PerformanceEvent(
                performance_lib.PerformanceEvent.VELOCITY,
                (self.config.num_velocity_bins + 1) // 2)
        else:
            event = performance_lib.PerformanceEvent(
                performance_lib.PerformanceEvent.TIME_SHIFT, 1)
        return self.encode_event(event)

    # ----- sequences <-> performances ---------------------------------------

    def performance_from_sequence(
        self, sequence: music_pb2.NoteSequence, instrument: int | None = None
    ) -> performance_lib.Performance:
        """Quantises a NoteSequence (times in seconds) to a Performance.

        Sustain-pedal control changes are applied first, as Magenta's data
        pipeline does, so pedalled notes keep their sounding length.
        """
        sustained = sequences_lib.apply_sustain_control_changes(sequence)
        quantized = sequences_lib.quantize_note_sequence_absolute(
            sustained, self.config.steps_per_second)
        return performance_lib.Performance(
            quantized,
            num_velocity_bins=self.config.num_velocity_bins,
            max_shift_steps=self.config.max_shift_steps,
            instrument=instrument,
        )

    def events_from_performance(self, performance: performance_lib.Performance) -> np.ndarray:
        """Event indices (int32, one per performance event)."""
        return np.array([self.encode_event(event) for event in performance], dtype=np.int32)

    def events_from_sequence(self, sequence: music_pb2.NoteSequence,
                             total_steps: int | None = None) -> np.ndarray:
        """Event indices of a NoteSequence, padded with time shifts to `total_steps`."""
        performance = self.performance_from_sequence(sequence)
        if total_steps is not None and performance.num_steps < total_steps:
            performance.set_length(total_steps)
        return self.events_from_performance(performance)

    def performance_from_events(self, events: np.ndarray) -> performance_lib.Performance:
        """A note-seq Performance of event indices. Each index is decoded once
        per encoding: note-seq replaces a Performance's events, never changes
        them, so one PerformanceEvent serves every place it occurs."""
        if self._decoded is None:
            self._decoded = [self.event_encoding.decode_event(index)
                             for index in range(self.num_classes)]
        performance = performance_lib.Performance(
            steps_per_second=self.config.steps_per_second,
            num_velocity_bins=self.config.num_velocity_bins,
            max_shift_steps=self.config.max_shift_steps,
        )
        for index in np.asarray(events, np.int64).tolist():
            performance.append(self._decoded[index])
        return performance

    def primer_sequence(self, primer: music_pb2.NoteSequence) -> music_pb2.NoteSequence:
        """One part plays every note of a primer."""
        return primer

    def sequence_from_events(
        self, events: np.ndarray, total_seconds: float | None = None,
        steps_per_second: float | None = None,
    ) -> music_pb2.NoteSequence:
        """Decodes event indices to a NoteSequence (times in seconds of model
        time: `steps_per_second`, if given, must be the configuration's own).

        Notes still sounding at the end are ended there, notes longer than
        MAX_NOTE_DURATION_SECONDS are cut to that length, and note-offs without
        a matching note-on are dropped, as in Magenta. `total_seconds`, when
        given, sets the sequence's length and cuts anything past it.
        """
        if steps_per_second is not None and steps_per_second != self.config.steps_per_second:
            raise PerfRNNError(f"this encoding's steps are 1/{self.config.steps_per_second} "
                               f"second, not 1/{steps_per_second:g}")
        performance = self.performance_from_events(events)
        sequence = performance.to_sequence(max_note_duration=MAX_NOTE_DURATION_SECONDS)
        if total_seconds is not None:
            sequence = sequences_lib.trim_note_sequence(sequence, 0.0, total_seconds)
            sequence.total_time = total_seconds
        return sequence

    # ----- model inputs -----------------------------------------------------

    def control_values(self, performance: performance_lib.Performance) -> list[list]:
        """Per-event control values extracted from a performance (one list per signal)."""
        return [signal.extract(performance) for signal in self.control_signals]

    def inputs_with_controls(self, events: np.ndarray) -> np.ndarray:
        """Model inputs [len(events), input_size] with the controls extracted from
        the events themselves: the same rows as `inputs_from_events(events,
        control_values(performance_from_events(events)))`, computed with numpy
        prefix sums (perfrnn.fast_controls) instead of note-seq's per-event loops.
        """
        events = np.asarray(events, dtype=np.int64)
        inputs = np.zeros((len(events), self.input_size), dtype=np.float32)
        inputs[np.arange(len(events)), self.control_size + events] = 1.0
        if self.control_size and len(events):
            config = self.config
            inputs[:, :self.control_size] = input_controls(
                events, config.steps_per_second, config.max_shift_steps,
                config.density_bin_ranges, config.density_window_seconds,
                config.pitch_histogram_window_seconds)
        return inputs

    def encode_controls(
        self,
        notes_per_second: float | None = None,
        pitch_histogram: list[float] | None = None,
    ) -> np.ndarray:
        """The control part of an input row for constant user-chosen controls.

        Args:
          notes_per_second: Desired note density; None for the signal's default.
          pitch_histogram: 12 non-negative weights for C, C#, ..., B; None for
            the default (all equal).
        """
        values = []
        for signal in self.control_signals:
            if isinstance(signal, performance_controls.NoteDensityPerformanceControlSignal):
                value = signal.default_value if notes_per_second is None else notes_per_second
                if not signal.validate(value) or not math.isfinite(value):
                    raise PerfRNNError(
                        f"note density must be a number of notes per second >= 0, got {value!r}")
            else:
                value = signal.default_value if pitch_histogram is None else list(pitch_histogram)
                if (not signal.validate(value) or not all(map(math.isfinite, value))
                        or min(value) < 0 or sum(value) <= 0):
                    raise PerfRNNError(
                        "key must be 12 non-negative pitch-class weights (C to B) "
                        f"that are not all zero, got {value!r}")
            values.append(signal.encoder.events_to_input([value], 0))
        return np.array(sum(values, []), dtype=np.float32)

    def inputs_from_events(
        self, events: np.ndarray, control_values: list[list] | None = None
    ) -> np.ndarray:
        """Model inputs [len(events), input_size] for an event sequence.

        Row t holds the controls for event t+1 (or event t's when it is the
        last one) followed by the one-hot of event t, exactly as Magenta's
        conditional encoder builds them.
        """
        events = np.asarray(events, dtype=np.int64)
        length = len(events)
        inputs = np.zeros((length, self.input_size), dtype=np.float32)
        inputs[np.arange(length), self.control_size + events] = 1.0
        offset = 0
        for signal, values in zip(self.control_signals, control_values or []):
            width = signal.encoder.input_size
            for t in range(length):
                inputs[t, offset:offset + width] = signal.encoder.events_to_input(
                    values, min(t + 1, len(values) - 1))
            offset += width
        if self.control_signals and control_values is None:
            raise PerfRNNError("this model is conditioned: control values are required")
        return inputs

    @property
    def reads_song(self) -> bool:
        """A key-conditioned piano follows chords: its key control, per bar."""
        return self.config.has_pitch_histogram_control

    def row_inputs(self, plan: InputPlan) -> np.ndarray:
        """The request's encoded note density and key: [1, row_input_size];
        with a song plan, a row per bar whose key is the bar's chord
        (`perfrnn.song_form.SongPlan.pitch_class_histograms`), so that a
        key-conditioned piano follows a progression."""
        controls = np.asarray(plan.controls, np.float32)[None]
        if plan.song is None or not self.config.has_pitch_histogram_control:
            return controls
        rows = np.repeat(controls, plan.song.bars, axis=0)
        rows[:, -12:] = plan.song.pitch_class_histograms()  # the key is the last signal
        return rows

    def inputs(self, events: np.ndarray, plan: InputPlan) -> np.ndarray:
        """Model inputs [len(events), input_size]: the request's controls on
        every row, then the event's one-hot."""
        events = np.asarray(events, np.int64)
        inputs = np.zeros((len(events), self.input_size), np.float32)
        inputs[:, :self.control_size] = plan.controls
        inputs[np.arange(len(events)), self.control_size + events] = 1.0
        return inputs

    def teacher_inputs(self, events: np.ndarray, plan: InputPlan) -> np.ndarray:
        """`inputs_with_controls`: the controls read from the events themselves."""
        return self.inputs_with_controls(events)

    def training_controls(self, events: np.ndarray, start: int, used: int,
                          plan: InputPlan) -> np.ndarray:
        """The controls of a training window, read from its own events (the
        last label included), as Magenta's data pipeline reads them."""
        window = events[start:start + used + 1]
        return self.inputs_with_controls(window)[:used, :self.control_size]
