"""How long a style's notes last, in steps of its encoding, and how long a
generated note may last.

An LSTM that loses track of its open notes leaves them ringing: the band
styles' pitched notes lasted four to seven times their corpus's median, and
a classifier heard jazz, latin and electronic as rock or country for it. The
sampler therefore gives each note it starts a length drawn from its part's
note lengths in the style's training music (`length_table`, from quantiles
recorded at export), and ends the note there unless the model ends it first.
The note-off is fed back to the network, so the music that follows knows.

Lengths are in steps: for a metric style, steps of its beat grid (12 per
quarter note), so a length holds at any tempo; otherwise 1/steps_per_second
of a second at the style's own tempo.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

# Points of the recorded distribution: the 0th, 1/32th, ..., 100th percentile.
QUANTILES = 33
# A note with no recorded limit may last this long (12 s at 100 steps a second,
# beyond Magenta's 5 s cap when decoding; 25 bars of a metric style's grid).
UNLIMITED_STEPS = 1200


def note_lengths(events: Iterable[int], on_keys: np.ndarray, off_keys: np.ndarray,
                 shift_steps: np.ndarray, keys_per_role: int) -> list[list[int]]:
    """The lengths in steps of the notes in an event sequence, per role.

    Args:
      events: Event indices.
      on_keys, off_keys: Per event index, the note (role * keys_per_role +
        pitch) it starts or ends, -1 for none (`encoding.note_keys()`).
      shift_steps: Per event index, the steps it advances time.
      keys_per_role: Notes per role (128 pitches).

    Returns:
      One list per role that occurs, in role order up to the highest one; a note
      started again while sounding ends there; unended notes are not counted.
    """
    started: dict[int, int] = {}
    lengths: list[list[int]] = []
    now = 0
    for event in events:
        on, off = int(on_keys[event]), int(off_keys[event])
        key = on if on >= 0 else off
        if key >= 0 and key in started:
            role = key // keys_per_role
            lengths.extend([] for _ in range(role + 1 - len(lengths)))
            lengths[role].append(now - started.pop(key))
        if on >= 0:
            started[on] = now
        now += int(shift_steps[event])
    return lengths


def length_quantiles(lengths: Sequence[float]) -> list[float]:
    """QUANTILES evenly spaced percentiles (0th to 100th) of some lengths in
    steps; [] for none."""
    if not len(lengths):
        return []
    points = np.percentile(np.asarray(lengths, np.float64), np.linspace(0, 100, QUANTILES))
    return [round(float(value), 2) for value in points]


def length_table(quantiles: Sequence[Sequence[float]], max_steps: Sequence[float],
                 roles: int) -> np.ndarray:
    """The sampler's note lengths, [roles, QUANTILES] float32 steps.

    A role draws from its recorded quantiles, each at most its longest length
    (`max_note_seconds` in steps: the 99.5th percentile, where the 100th can
    be a pedalled chord of minutes). A role without quantiles always gets its
    longest length, and a role with neither UNLIMITED_STEPS. Values are whole
    steps (at least 1), so the loop and the decoding end a note at the same
    step.
    """
    table = np.full((roles, QUANTILES), float(UNLIMITED_STEPS), np.float32)
    for role in range(roles):
        if role < len(max_steps) and max_steps[role] > 0:
            table[role] = float(max_steps[role])
        if role < len(quantiles) and len(quantiles[role]) == QUANTILES:
            table[role] = np.minimum(np.asarray(quantiles[role], np.float32), table[role])
    return np.maximum(np.round(table), 1.0)

