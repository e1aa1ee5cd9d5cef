"""Plan guidance: the sampler leans on a song plan where the model is unsure.

A song model reads its plan (chords, sections) and a bar lookback as inputs,
but a network trained for a few CPU hours follows them loosely. The sampler
knows the plan for certain, so within main sections it adds fixed biases to
the model's logits (in nats) before the note grammar:

- **repeat:** from the second bar of each section, the notes that were
  played at this step of the bar one bar back (drums; four bars back at the
  start of each group of four) or of the nearest bar among 1, 2 and 4 back
  with the same chord (pitched parts) gain REPEAT_BONUS, other note-ons lose
  EXTRA_PENALTY; time shifts lose EARLY_SHIFT_PENALTY until the step's notes
  are played, and then the shift to the next step that had notes gains
  SHIFT_BONUS; a shift over a bar line loses EARLY_SHIFT_PENALTY. A
  section's first bar and
  fills are free, so sections change and fills stand out;
- **harmony:** pitched note-ons of the bar's chord tones gain CHORD_BONUS,
  others lose OFF_CHORD_PENALTY; the bass's root on beat 1 gains ROOT_BONUS.

Exact notes are kept by an `EventRecord`: a history input of width 0 (no
model input) whose state holds the note-on events of each step of the
position cycle, moved on by the loop like any history input.
"""

from __future__ import annotations

import numpy as np

from perfrnn.chords import parse_chord
from perfrnn.song_form import SongPlan

SLOTS = 8
"""Note-ons kept per step (more at one step are not repeated)."""
REPEAT_BONUS = 8.0
EXTRA_PENALTY = 6.0
SHIFT_BONUS = 8.0
EARLY_SHIFT_PENALTY = 6.0
CHORD_BONUS = 1.0
OFF_CHORD_PENALTY = 3.0
ROOT_BONUS = 2.0
LOOKAHEAD = 48
"""Steps ahead the time-shift guide looks for the next step with notes (a 4/4 bar)."""
GUIDE_COLUMNS = 4
"""Per bar: drum lag, pitched lag (bars back; 0: free), chord root (-1: none), chord bits."""


class EventRecord:
    """A `perfrnn.encoding.HistoryInput` of width 0: the note-on events made
    at each step of the position cycle (up to SLOTS; -1 empty), then the step."""

    width = 0

    def __init__(self, is_onset: np.ndarray, cycle: int):
        self.is_onset = np.asarray(is_onset, bool)
        self.cycle = int(cycle)
        self.state_size = self.cycle * SLOTS + 1

    def initial_state(self) -> np.ndarray:
        state = np.full(self.state_size, -1.0, np.float32)
        state[-1] = 0.0
        return state

    def update(self, state, event, position):
        import tensorflow as tf

        cycle = self.cycle
        record = tf.reshape(state[:, :-1], [-1, cycle, SLOTS])
        before = tf.cast(state[:, -1], tf.int32)
        position = tf.cast(position, tf.int32)
        entered = tf.math.floormod(tf.range(cycle)[None] - before[:, None], cycle)
        moved = tf.math.floormod(position - before, cycle)[:, None]
        cleared = (entered >= 1) & (entered <= moved)
        record = tf.where(cleared[:, :, None], -1.0, record)
        here = tf.gather(record, position, batch_dims=1)  # [batch, SLOTS]
        free = here < 0
        first_free = tf.argmax(tf.cast(free, tf.int32), axis=1, output_type=tf.int32)
        onset = tf.gather(tf.constant(self.is_onset), event) & tf.reduce_any(free, axis=1)
        slot = tf.one_hot(first_free, SLOTS, on_value=True, off_value=False) & onset[:, None]
        here = tf.where(slot, tf.cast(event, tf.float32)[:, None], here)
        record = tf.tensor_scatter_nd_update(
            record, tf.stack([tf.range(tf.shape(record)[0]), position], axis=1), here)
        return tf.concat([tf.reshape(record, [-1, cycle * SLOTS]),
                          tf.cast(position, tf.float32)[:, None]], axis=1)

    def features(self, state):
        import tensorflow as tf

        return tf.zeros([tf.shape(state)[0], 0])


def guide_table(song: SongPlan) -> np.ndarray:
    """The guide of each bar of a plan: [bars, GUIDE_COLUMNS] int32 (see
    GUIDE_COLUMNS)."""
    table = np.zeros((song.bars, GUIDE_COLUMNS), np.int32)
    start = 0
    starts = {bar for bar, _ in song.markers}
    for bar in range(song.bars):
        if bar == 0 or bar in starts or song.sections[bar] != song.sections[bar - 1]:
            start = bar
        chord = parse_chord(song.chords[bar])
        table[bar, 2] = -1 if chord.is_no_chord else chord.root
        table[bar, 3] = sum(1 << pc for pc in chord.pitch_classes)
        into = bar - start
        if song.sections[bar] == "fill" or into == 0:
            continue
        table[bar, 0] = 4 if into % 4 == 0 else 1
        table[bar, 1] = next((lag for lag in (1, 2, 4) if lag <= into
                              and song.chords[bar - lag] == song.chords[bar]), 0)
    return table


class PlanGuide:
    """The guide's biases for an encoding's events (TensorFlow, traced into
    the compiled loop).

    Args:
      on_keys: Per event, role * 128 + pitch of the note it starts, or -1.
      tracks: The encoding's track roles (the first pitched one is the bass).
      shift_steps: Per event, the steps it moves time by.
      cycle: Steps of the position cycle.
    """

    def __init__(self, on_keys: np.ndarray, tracks, shift_steps: np.ndarray, cycle: int):
        shift_steps = np.asarray(shift_steps, np.int32)
        shift_events = np.zeros(shift_steps.max() + 1, np.int32)
        shift_events[shift_steps] = np.arange(len(shift_steps))
        on_keys = np.asarray(on_keys)
        roles = np.where(on_keys >= 0, on_keys // 128, -1)
        drum_roles = [index for index, track in enumerate(tracks) if track.is_drum]
        pitched_roles = [index for index, track in enumerate(tracks) if not track.is_drum]
        self.is_drum_onset = np.isin(roles, drum_roles) & (on_keys >= 0)
        self.is_pitched_onset = np.isin(roles, pitched_roles) & (on_keys >= 0)
        self.pitch_class = np.where(self.is_pitched_onset, on_keys % 128 % 12,
                                    0).astype(np.int32)
        self.is_bass_onset = (roles == pitched_roles[0]) if pitched_roles else \
            np.zeros(len(on_keys), bool)
        lengths = np.arange(1, LOOKAHEAD + 1)
        self.shift_of_length = np.asarray(shift_events)[np.minimum(lengths,
                                                                   len(shift_events) - 1)]
        self.shift_steps = shift_steps
        self.is_shift = shift_steps > 0
        self.cycle = int(cycle)
        self.num_classes = len(on_keys)

    def record_input(self) -> EventRecord:
        return EventRecord(self.is_drum_onset | self.is_pitched_onset, self.cycle)

    def bias(self, record_state, position, guide, step_in_bar, bar_steps):
        """Logit biases [batch, num_classes].

        Args:
          record_state: The EventRecord's state [batch, state_size].
          position: [batch] int32, the step of the position cycle now.
          guide: [batch, GUIDE_COLUMNS] int32, this bar's row of `guide_table`.
          step_in_bar: [batch] int32.
          bar_steps: [batch] int32.
        """
        import tensorflow as tf

        cycle, classes = self.cycle, self.num_classes
        record = tf.cast(tf.reshape(record_state[:, :-1], [-1, cycle, SLOTS]), tf.int32)

        def played(offsets):  # [batch, len, classes]: the events at position + offsets
            steps = tf.math.floormod(position[:, None] + offsets, cycle)
            events = tf.gather(record, steps, batch_dims=1)  # [batch, len, SLOTS]
            return tf.reduce_max(tf.one_hot(events, classes), axis=2)

        drum_lag, pitch_lag, root, bits = (guide[:, k] for k in range(GUIDE_COLUMNS))
        now = played(tf.zeros_like(position)[:, None])[:, 0]
        is_drum = tf.constant(self.is_drum_onset, tf.float32)[None]
        is_pitched = tf.constant(self.is_pitched_onset, tf.float32)[None]
        drum_then = played((-drum_lag * bar_steps)[:, None])[:, 0] * is_drum
        pitch_then = played((-pitch_lag * bar_steps)[:, None])[:, 0] * is_pitched
        drum_on = tf.cast(drum_lag > 0, tf.float32)[:, None]
        pitch_on = tf.cast(pitch_lag > 0, tf.float32)[:, None]
        wanted = tf.clip_by_value(drum_then * drum_on + pitch_then * pitch_on - now, 0.0, 1.0)
        guided = is_drum * drum_on + is_pitched * pitch_on
        extra = guided * (1.0 - wanted) * (1.0 - now)
        bias = REPEAT_BONUS * wanted - EXTRA_PENALTY * extra
        # Once this step's notes are played: the shift to the next step that had notes.
        lag = tf.where(drum_lag > 0, drum_lag, pitch_lag)
        ahead = tf.range(1, LOOKAHEAD + 1)[None] - (lag * bar_steps)[:, None]
        steps = tf.math.floormod(position[:, None] + ahead, cycle)
        busy = tf.reduce_any(tf.gather(record, steps, batch_dims=1) >= 0, axis=2)
        left = bar_steps - step_in_bar  # steps to the next bar line
        busy &= tf.range(1, LOOKAHEAD + 1)[None] < left[:, None]
        # the next step that had notes, else the bar line
        first = tf.where(tf.reduce_any(busy, axis=1),
                         tf.argmax(tf.cast(busy, tf.int32), axis=1, output_type=tf.int32),
                         tf.minimum(left, LOOKAHEAD) - 1)
        shift = tf.gather(tf.constant(self.shift_of_length, tf.int32), first)
        waiting = tf.reduce_sum(wanted, axis=1) > 0
        settled = (lag > 0) & tf.logical_not(waiting)
        is_shift = tf.constant(self.is_shift, tf.float32)[None]
        bias += SHIFT_BONUS * tf.one_hot(shift, classes) * tf.cast(settled, tf.float32)[:, None]
        bias -= EARLY_SHIFT_PENALTY * is_shift * tf.cast(waiting, tf.float32)[:, None]
        # No shift over a bar line: a song's downbeats are where its bars line up.
        crossing = tf.constant(self.shift_steps)[None] > left[:, None]
        bias -= EARLY_SHIFT_PENALTY * tf.cast(crossing, tf.float32)
        # Harmony: the bar's chord tones, and the root in the bass on beat 1.
        chord = tf.bitwise.bitwise_and(tf.bitwise.right_shift(bits[:, None], tf.range(12)[None]),
                                       1)  # [batch, 12]
        in_chord = tf.cast(tf.gather(chord, tf.constant(self.pitch_class), axis=1),
                           tf.float32)  # [batch, classes]
        has_chord = tf.cast(root >= 0, tf.float32)[:, None]
        bias += has_chord * is_pitched * (CHORD_BONUS * in_chord
                                          - OFF_CHORD_PENALTY * (1.0 - in_chord))
        is_root = tf.cast(tf.equal(tf.constant(self.pitch_class)[None], root[:, None]),
                          tf.float32)
        downbeat = tf.cast(step_in_bar == 0, tf.float32)[:, None]
        bias += ROOT_BONUS * downbeat * has_chord * is_root \
            * tf.constant(self.is_bass_onset, tf.float32)[None]
        return bias
