"""Bar lookback: what each part played one, two and four bars back.

Magenta's Lookback RNN (note-seq's ``LookbackEventSequenceEncoderDecoder``)
feeds, at each step, the events one and two bars back and whether the music
is repeating. This is the same idea for the metric encodings, where an event
is not a step: the input row after each event reads a record of onsets by
step, kept for one 8-bar phrase (the position cycle).

Channels of the record (`CHANNELS`): four drum groups (kick, snare, hi-hat
and cymbals, other drums), an onset of each pitched role (bass, harmony,
lead), and the pitch classes started (12). The input row (`WIDTH` columns):

- the channels at this step 1, 2 and 4 bars back (3 x 19);
- the channels already played at this step (19);
- for 1 and 2 bars back, which of the next 12 steps (a beat) had an onset
  (2 x 12), so the model can time its next shift to the bar it repeats;
- flags: the bar before repeats the one before it; it repeats the one two
  bars before it; the bar so far repeats the bar before; the bar before
  had any onset (4).

`BarLookback.update` (TensorFlow, traced into the compiled sampling loop)
and `lookback_rows` (numpy, for training windows) compute the same rows
from the same events; a test holds them equal.
"""

from __future__ import annotations

import numpy as np

from perfrnn.errors import PerfRNNError

DRUM_GROUPS = (
    (35, 36),                                          # kick
    (37, 38, 39, 40),                                  # snare, rim, clap
    (42, 44, 46, 49, 51, 52, 53, 55, 57, 59),          # hi-hats and cymbals
)
"""GM drum notes of the first three drum groups; every other drum is the fourth."""
PITCHED_ROLES = 3
CHANNELS = 4 + PITCHED_ROLES + 12
LAGS = (1, 2, 4)
"""Bars back that the row reads."""
AHEAD = 12
"""Steps after this one whose onsets 1 and 2 bars back the row shows."""
FLAGS = 4
WIDTH = len(LAGS) * CHANNELS + CHANNELS + 2 * AHEAD + FLAGS


def drum_group(pitch: int) -> int:
    """The lookback drum group (0 kick, 1 snare, 2 hats and cymbals, 3 other) of a GM drum."""
    for group, pitches in enumerate(DRUM_GROUPS):
        if pitch in pitches:
            return group
    return 3


def event_channels(on_keys: np.ndarray, tracks) -> np.ndarray:
    """The record channels each event sets: [num_classes, CHANNELS] float32.

    Args:
      on_keys: Per event, role * 128 + pitch of the note it starts, or -1.
      tracks: The encoding's track roles; the drum role's notes go to drum
        groups, the others (in order) to the pitched channels.
    """
    table = np.zeros((len(on_keys), CHANNELS), np.float32)
    pitched = [index for index, track in enumerate(tracks) if not track.is_drum]
    for event, key in enumerate(on_keys):
        if key < 0:
            continue
        role, pitch = divmod(int(key), 128)
        if tracks[role].is_drum:
            table[event, drum_group(pitch)] = 1.0
        else:
            table[event, 4 + min(pitched.index(role), PITCHED_ROLES - 1)] = 1.0
            table[event, 4 + PITCHED_ROLES + pitch % 12] = 1.0
    return table


class BarLookback:
    """The lookback `perfrnn.encoding.HistoryInput` of one metre.

    Args:
      channels: `event_channels` of the encoding.
      bar_steps: Steps per bar.
      cycle: Steps of the position cycle (a whole number of bars, at least 5).
    """

    width = WIDTH

    def __init__(self, channels: np.ndarray, bar_steps: int, cycle: int):
        if cycle % bar_steps or cycle // bar_steps <= max(LAGS):
            raise PerfRNNError(f"a lookback needs a cycle of more than {max(LAGS)} whole bars")
        self.channels = np.asarray(channels, np.float32)
        self.bar_steps, self.cycle = int(bar_steps), int(cycle)
        self.state_size = self.cycle * CHANNELS + 1

    def initial_state(self) -> np.ndarray:
        return np.zeros(self.state_size, np.float32)

    def update(self, state, event, position):
        import tensorflow as tf

        cycle = self.cycle
        record = tf.reshape(state[:, :-1], [-1, cycle, CHANNELS])
        before = tf.cast(state[:, -1], tf.int32)
        position = tf.cast(position, tf.int32)
        steps = tf.range(cycle)[None]
        entered = tf.math.floormod(steps - before[:, None], cycle)
        moved = tf.math.floormod(position - before, cycle)[:, None]
        keep = tf.cast((entered < 1) | (entered > moved), tf.float32)
        record = record * keep[:, :, None]
        here = tf.one_hot(position, cycle)[:, :, None] * tf.gather(self.channels, event)[:, None]
        record = tf.maximum(record, here)
        return tf.concat([tf.reshape(record, [-1, cycle * CHANNELS]),
                          tf.cast(position, tf.float32)[:, None]], axis=1)

    def features(self, state):
        import tensorflow as tf

        cycle, bar = self.cycle, self.bar_steps
        record = tf.reshape(state[:, :-1], [-1, cycle, CHANNELS])
        position = tf.cast(state[:, -1], tf.int32)

        def at(offsets):  # [batch, len(offsets), CHANNELS] at position + offsets
            offsets = tf.constant(offsets, tf.int32)[None]
            steps = tf.math.floormod(position[:, None] + offsets, cycle)
            return tf.gather(record, steps, batch_dims=1)

        parts = [at([-lag * bar])[:, 0] for lag in LAGS] + [at([0])[:, 0]]
        for lag in (1, 2):
            ahead = at([-lag * bar + k for k in range(1, AHEAD + 1)])
            parts.append(tf.reduce_max(ahead, axis=2))
        start = tf.math.floormod(position, bar)  # steps since the bar began
        whole = np.arange(bar, dtype=np.int32)

        def shifted(first):  # the bar starting `first` steps before this bar's start
            steps = tf.math.floormod(position[:, None] - start[:, None]
                                     + tf.constant(whole - first, tf.int32)[None], cycle)
            return tf.gather(record, steps, batch_dims=1)

        last, two, three = shifted(bar), shifted(2 * bar), shifted(3 * bar)
        this, previous = shifted(0), last

        def same(a, b):
            return tf.cast(tf.reduce_all(tf.equal(a, b), axis=[1, 2]), tf.float32)

        so_far = tf.cast(tf.range(bar)[None] < start[:, None], tf.float32)[:, :, None]
        parts.append(tf.stack([
            same(last, two), same(last, three), same(this * so_far, previous * so_far),
            tf.cast(tf.reduce_any(last > 0, axis=[1, 2]), tf.float32)], axis=1))
        return tf.concat(parts, axis=1)


def lookback_rows(lookback: BarLookback, events: np.ndarray,
                  absolute_after: np.ndarray, first_row: int = 0) -> np.ndarray:
    """The rows [len(events) - first_row, WIDTH] that `lookback`'s update and
    features give after each event of a piece from event `first_row` on, in
    numpy.

    Args:
      lookback: The lookback (its channels and bar).
      events: Event indices from the start of the piece.
      absolute_after: The step after each event, counted from the piece's start.
      first_row: The first event whose row is wanted (a training window's).
    """
    events = np.asarray(events, np.int64)
    every_after = np.asarray(absolute_after, np.int64)
    rows = np.zeros((len(events) - first_row, WIDTH), np.float32)
    if not len(rows):
        return rows
    bar = lookback.bar_steps
    every_played = lookback.channels[events]  # [N, C]
    total = int(every_after[-1]) + 1
    pad = 4 * bar + AHEAD  # zeros before the piece
    record = np.zeros((pad + total + max(bar, AHEAD), CHANNELS), np.float32)
    np.maximum.at(record, pad + every_after, every_played)
    # What is played at each event's own step up to it (the step is still being filled).
    after = every_after[first_row:]
    cumulative = np.cumsum(every_played, axis=0)
    first_of_step = np.searchsorted(every_after, after, side="left")
    before = np.where(first_of_step[:, None] > 0, cumulative[first_of_step - 1], 0)
    now = ((cumulative[first_row:] - before) > 0).astype(np.float32)
    column = 0
    for lag in LAGS:
        rows[:, column:column + CHANNELS] = record[pad + after - lag * bar]
        column += CHANNELS
    rows[:, column:column + CHANNELS] = now
    column += CHANNELS
    onsets = record.max(axis=1)
    for lag in (1, 2):
        index = pad + after[:, None] - lag * bar + np.arange(1, AHEAD + 1)[None]
        rows[:, column:column + AHEAD] = onsets[index]
        column += AHEAD
    start = after % bar
    bar_start = pad + after - start
    window = np.arange(bar)[None]
    last = record[bar_start[:, None] - bar + window]
    two = record[bar_start[:, None] - 2 * bar + window]
    three = record[bar_start[:, None] - 3 * bar + window]
    this = record[bar_start[:, None] + window]
    so_far = (window < start[:, None])[:, :, None]
    # The step being filled is left out of "so far" (only steps before it count).
    rows[:, column] = np.all(last == two, axis=(1, 2))
    rows[:, column + 1] = np.all(last == three, axis=(1, 2))
    rows[:, column + 2] = np.all(np.where(so_far, this, 0) == np.where(so_far, last, 0),
                                 axis=(1, 2))
    rows[:, column + 3] = np.any(last > 0, axis=(1, 2))
    return rows
