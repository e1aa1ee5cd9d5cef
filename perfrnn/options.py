"""Generation options, validated without loading TensorFlow."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from perfrnn.errors import PerfRNNError

MAX_SECONDS = 600.0  # ten minutes
MAX_VARIATIONS = 16
MAX_SEED = 2**31 - 1
ProgressCallback = Callable[[float], None]  # fraction done, 0.0 to 1.0


@dataclass(frozen=True)
class GenerationOptions:
    """What to generate.

    Attributes:
      seconds: Length of new music, in seconds (after the primer, if any).
      temperature: Creativity: > 0; 1.0 samples the model as trained, lower is
        more conservative, higher more adventurous.
      seed: Random seed (0 to 2**31-1); None picks one (see `resolved_seed`).
      variations: Number of pieces generated together as one batch.
      notes_per_second: Note-density control for conditioned bundles.
      pitch_histogram: Key control for conditioned bundles: 12 weights, C to B.
    """

    seconds: float
    temperature: float = 1.0
    seed: int | None = None
    variations: int = 1
    notes_per_second: float | None = None
    pitch_histogram: tuple[float, ...] | None = None

    def validate(self) -> None:
        """Raises PerfRNNError with a message that says how to fix the option."""
        if not isinstance(self.seconds, (int, float)) or not math.isfinite(self.seconds) \
                or self.seconds <= 0:
            raise PerfRNNError(f"length must be a positive number of seconds, got {self.seconds}")
        if self.seconds > MAX_SECONDS:
            raise PerfRNNError(
                f"length {self.seconds:g} s is over the maximum of {MAX_SECONDS:g} s (10 minutes)")
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
