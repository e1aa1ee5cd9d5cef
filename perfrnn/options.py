"""Generation options, validated without loading TensorFlow."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from perfrnn.errors import PerfRNNError

MIN_SECONDS = 0.1
MAX_SECONDS = 600.0  # ten minutes
MAX_VARIATIONS = 16
MAX_BARS = 256
MIN_BPM, MAX_BPM = 20.0, 400.0
# How generated music is played (perfrnn.generate.apply_feel); the grid stays exact by default.
FEELS = ("straight", "swing", "human", "swing+human")
MAX_SEED = 2**31 - 1
ProgressCallback = Callable[[float], None]  # fraction done, 0.0 to 1.0


@dataclass(frozen=True)
class GenerationOptions:
    """What to generate.

    Attributes:
      seconds: Length of new music in the file, in seconds at `bpm` (after
        the primer, if any).
      temperature: Creativity: > 0; 1.0 samples the model as trained, lower is
        more conservative, higher more adventurous.
      seed: Random seed (0 to 2**31-1); None picks one (see `resolved_seed`).
      variations: Number of pieces generated together as one batch.
      notes_per_second: Note-density control for conditioned bundles.
      pitch_histogram: Key control for conditioned bundles: 12 weights, C to B.
      bpm: Tempo of the result in quarter notes per minute; None for the
        style's own. Metric styles play their beat grid at this tempo.
      bars: Length in bars instead of `seconds`; the music ends exactly on
        that bar line.
      loop: Make the last bar lead back into the first, so the piece repeats
        seamlessly (needs `bars`).
    """

    seconds: float = 30.0
    temperature: float = 1.0
    seed: int | None = None
    variations: int = 1
    notes_per_second: float | None = None
    pitch_histogram: tuple[float, ...] | None = None
    bpm: float | None = None
    bars: int | None = None
    loop: bool = False

    def validate(self) -> None:
        """Raises PerfRNNError with a message that says how to fix the option."""
        if not isinstance(self.seconds, (int, float)) or not math.isfinite(self.seconds) \
                or self.seconds <= 0:
            raise PerfRNNError(f"length must be a positive number of seconds, got {self.seconds}")
        if self.seconds < MIN_SECONDS:
            raise PerfRNNError(
                f"length {self.seconds:g} s is too short; ask for at least {MIN_SECONDS:g} s")
        if self.seconds > MAX_SECONDS:
            raise PerfRNNError(
                f"length {self.seconds:g} s is over the maximum of {MAX_SECONDS:g} s (10 minutes)")
        if self.bpm is not None and not (isinstance(self.bpm, (int, float))
                                         and MIN_BPM <= self.bpm <= MAX_BPM):
            raise PerfRNNError(f"tempo must be from {MIN_BPM:g} to {MAX_BPM:g} beats per "
                               f"minute, got {self.bpm}")
        if self.bars is not None and not (isinstance(self.bars, int)
                                          and 1 <= self.bars <= MAX_BARS):
            raise PerfRNNError(f"bars must be a whole number from 1 to {MAX_BARS}, got {self.bars}")
        if self.loop and self.bars is None:
            raise PerfRNNError("a loop is a whole number of bars: give the length in bars")
        if not math.isfinite(self.temperature) or self.temperature <= 0:
            raise PerfRNNError(
                f"temperature must be greater than 0 (1.0 is a good start), got {self.temperature}")
        if not 1 <= self.variations <= MAX_VARIATIONS:
            raise PerfRNNError(
                f"variations must be between 1 and {MAX_VARIATIONS}, got {self.variations}")
        if self.seed is not None and not 0 <= self.seed <= MAX_SEED:
            raise PerfRNNError(f"seed must be between 0 and {MAX_SEED}, got {self.seed}")

    def resolved_seed(self) -> int:
        return random.SystemRandom().randrange(MAX_SEED) if self.seed is None else self.seed


_MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
_MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)  # natural minor
_PITCH_CLASSES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def pitch_histogram_for_key(key: str) -> tuple[float, ...]:
    """A pitch-class histogram (C to B) for a key name such as "C", "F#", "Bbm" or "A minor".

    Scale degrees weigh 1 and the rest 0, with the tonic and fifth doubled so
    the model hears which of the relative major and minor is meant.
    """
    match = re.fullmatch(r"\s*([A-Ga-g])([#b]?)\s*(m|min|minor|maj|major)?\s*", key)
    if not match:
        raise PerfRNNError(
            f"unknown key {key!r}; write a note name and an optional 'm' for minor, "
            "such as C, F#, Bb or Am")
    letter, accidental, mode = match.groups()
    tonic = (_PITCH_CLASSES[letter.upper()] + {"#": 1, "b": -1, "": 0}[accidental]) % 12
    scale = _MINOR_SCALE if mode in ("m", "min", "minor") else _MAJOR_SCALE
    histogram = [0.0] * 12
    for degree in scale:
        histogram[(tonic + degree) % 12] = 1.0
    histogram[tonic] = histogram[(tonic + 7) % 12] = 2.0
    return tuple(histogram)
