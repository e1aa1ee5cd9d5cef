"""Note-density and pitch-histogram control inputs, vectorised with numpy.

note-seq's `NoteDensityPerformanceControlSignal` and
`PitchHistogramPerformanceControlSignal` walk a window forward from every
event in Python: minutes for an hour of piano. These functions compute the
same values (the tests compare them with note-seq's on real music) with
prefix sums, so training a conditioned model is not held up by its input
pipeline. numpy only: the GPU trainer (`training/gpu_train.py`) uses them on
machines without TensorFlow or note-seq.

Event indices are Magenta's Performance one-hot layout (`perfrnn.layout`):
0-127 note-on, 128-255 note-off, then `max_shift_steps` time shifts of 1..
steps, then velocities.
"""

from __future__ import annotations

import numpy as np

from perfrnn.layout import NOTE_OFF_BASE, NOTES_PER_OCTAVE, SHIFT_BASE, controls_of_next_events

HISTOGRAM_PRIOR = 0.01  # note-seq's prior count per pitch class


def _event_times(events: np.ndarray, max_shift_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(steps each event advances, time in steps before each event, length n + 1)."""
    is_shift = (events >= SHIFT_BASE) & (events < SHIFT_BASE + max_shift_steps)
    shifts = np.where(is_shift, events - SHIFT_BASE + 1, 0).astype(np.int64)
    before = np.concatenate([[0], np.cumsum(shifts)])
    return shifts, before


def _window_ends(before: np.ndarray, window_steps: int) -> np.ndarray:
    """For each event i, one past the last event j >= i whose start is inside
    [time_i, time_i + window); (note-seq's loop examines exactly those)."""
    starts = before[:-1]
    return np.searchsorted(starts, starts + window_steps, side="left")


def _hold_after_non_shifts(values: np.ndarray, events: np.ndarray,
                           max_shift_steps: int) -> np.ndarray:
    """note-seq recomputes a value only at the first event and after a time
    shift; every other event repeats the previous event's value."""
    is_shift = (events >= SHIFT_BASE) & (events < SHIFT_BASE + max_shift_steps)
    fresh = np.ones(len(events), bool)
    fresh[1:] = is_shift[:-1]
    source = np.maximum.accumulate(np.where(fresh, np.arange(len(events)), 0))
    return values[source]


def note_densities(events: np.ndarray, steps_per_second: int, max_shift_steps: int,
                   window_seconds: float) -> np.ndarray:
    """Notes per second in the window starting at each event (float64 [n])."""
    events = np.asarray(events, np.int64)
    if not len(events):
        return np.zeros(0)
    window = int(round(window_seconds * steps_per_second))
    _, before = _event_times(events, max_shift_steps)
    ends = _window_ends(before, window)
    note_ons = np.concatenate([[0], np.cumsum(events < NOTE_OFF_BASE)])
    counts = note_ons[ends] - note_ons[:-1]
    actual = np.minimum(before[-1] - before[:-1], window)
    density = np.where(actual > 0, counts * steps_per_second / np.maximum(actual, 1), 0.0)
    return _hold_after_non_shifts(density, events, max_shift_steps)


def _sounding_classes(events: np.ndarray) -> np.ndarray:
    """Distinct pitches of each pitch class sounding just before each event
    (int64 [n, 12]). A note-on starts its pitch sounding, a note-off stops it,
    so a pitch sounds when its last note-on or note-off before the event was a
    note-on; note-seq counts it the same way, event by event."""
    rows = np.flatnonzero(events < SHIFT_BASE)
    pitches = events[rows] % NOTE_OFF_BASE
    is_on = (events[rows] < NOTE_OFF_BASE).astype(np.int64)
    order = np.lexsort((rows, pitches))  # each pitch's note-ons and note-offs in time
    same_pitch = pitches[order][1:] == pitches[order][:-1]
    was_on = np.zeros(len(rows), np.int64)
    was_on[order[1:]] = np.where(same_pitch, is_on[order][:-1], 0)
    changes = np.zeros((len(events), NOTES_PER_OCTAVE), np.int64)
    changes[rows, pitches % NOTES_PER_OCTAVE] = is_on - was_on
    return np.cumsum(changes, axis=0) - changes


def pitch_histograms(events: np.ndarray, steps_per_second: int, max_shift_steps: int,
                     window_seconds: float, prior: float = HISTOGRAM_PRIOR) -> np.ndarray:
    """Seconds each pitch class sounds in the window starting at each event, plus
    the prior (float64 [n, 12]; not normalised)."""
    events = np.asarray(events, np.int64)
    count = len(events)
    if not count:
        return np.zeros((0, NOTES_PER_OCTAVE))
    window = int(round(window_seconds * steps_per_second))
    shifts, before = _event_times(events, max_shift_steps)
    active = _sounding_classes(events)
    seconds = active * (shifts / steps_per_second)[:, None]
    prefix = np.concatenate([np.zeros((1, NOTES_PER_OCTAVE)), np.cumsum(seconds, axis=0)])
    ends = _window_ends(before, window)
    histograms = prior + prefix[ends] - prefix[:-1]
    return _hold_after_non_shifts(histograms, events, max_shift_steps)


def control_inputs(events: np.ndarray, steps_per_second: int, max_shift_steps: int,
                   density_bin_ranges: tuple[float, ...] | None,
                   density_window_seconds: float,
                   histogram_window_seconds: float | None) -> np.ndarray:
    """The control part of each input row (float32 [n, width]), as Magenta's
    conditional encoder builds it: the density bin one-hot, then the
    normalised pitch-class histogram. Row t holds the controls of event t
    (`input_controls` gives the model's input rows)."""
    events = np.asarray(events, np.int64)
    parts = []
    if density_bin_ranges is not None:
        density = note_densities(events, steps_per_second, max_shift_steps,
                                 density_window_seconds)
        bins = np.searchsorted(np.asarray(density_bin_ranges), density, side="right")
        one_hot = np.zeros((len(events), len(density_bin_ranges) + 1), np.float32)
        one_hot[np.arange(len(events)), bins] = 1.0
        parts.append(one_hot)
    if histogram_window_seconds is not None:
        histograms = pitch_histograms(events, steps_per_second, max_shift_steps,
                                      histogram_window_seconds)
        totals = histograms.sum(axis=1, keepdims=True)
        parts.append(np.where(totals > 0, histograms / np.where(totals > 0, totals, 1.0),
                              1.0 / NOTES_PER_OCTAVE).astype(np.float32))
    if not parts:
        return np.zeros((len(events), 0), np.float32)
    return np.concatenate(parts, axis=1)


def input_controls(events: np.ndarray, steps_per_second: int, max_shift_steps: int,
                   density_bin_ranges: tuple[float, ...] | None,
                   density_window_seconds: float,
                   histogram_window_seconds: float | None) -> np.ndarray:
    """The control part of the model's input rows for `events` (float32 [n,
    width]), extracted from these events alone: row t holds the controls of
    event t+1, the last row its own (`perfrnn.layout.controls_of_next_events`).
    A training window passes its own events, the label event included, as
    Magenta extracts controls from each performance it cuts out."""
    return controls_of_next_events(control_inputs(
        events, steps_per_second, max_shift_steps, density_bin_ranges,
        density_window_seconds, histogram_window_seconds))
