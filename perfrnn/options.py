"""Generation options, validated without loading TensorFlow."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from perfrnn.chords import MAX_PROGRESSION_BARS, key_transposition, parse_chord
from perfrnn.errors import PerfRNNError
from perfrnn.metre import Metre
from perfrnn.song_form import FORMS

if TYPE_CHECKING:  # importing note-seq here would import it before the CLI quiets it
    from note_seq.protobuf import music_pb2

MIN_SECONDS = 0.1
MAX_SECONDS = 600.0  # ten minutes
MAX_VARIATIONS = 16
MAX_BARS = 256
MIN_BPM, MAX_BPM = 20.0, 300.0
# How generated music is played (perfrnn.generate.apply_feel); the grid stays exact by default.
FEELS = ("straight", "swing", "human", "swing+human")
MAX_SEED = 2**31 - 1
MAX_CANDIDATES = 8
# Quality: how many candidates are sampled per variation, the best-scoring kept
# (perfrnn.scoring); one batch, so "best" costs about twice "fast" on a CPU.
QUALITIES = {"fast": 1, "better": 4, "best": 8}
DEFAULT_QUALITY = "better"
# The most music one request samples, candidates included, in seconds: as much
# as MAX_VARIATIONS pieces of MAX_SECONDS. Longer requests get fewer candidates.
MAX_SAMPLED_SECONDS = 16 * 600.0
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
      blend: For a style made from a base model: the styles to play and their
        weights, ((style, weight), ...), e.g. (("rock", 0.7), ("electronic",
        0.3)); None plays the style itself (`parse_blend` reads "rock:70,
        electronic:30").
      candidates: Pieces sampled per variation (1 to MAX_CANDIDATES); the one
        that best fits the style (`perfrnn.scoring`) is kept. See QUALITIES.
      repair: Resample from just before a silence or a stuck passage longer
        than the style's own music has (a few tries), instead of keeping it.
      chords: A chord symbol per bar (`perfrnn.chords.parse_progression`
        reads "C G Am F"), repeated through each section; None: the style's
        own progressions (a style with song inputs; a key-conditioned piano
        follows chords only when given them).
      form: "song" (intro, A sections with fills, ending), "loop" (the main
        section only; the default with `loop`) or "endless" (the radio);
        None: "song", or "loop" with `loop`.
      key: The key of the style's own progression ("G", "Em"); None: drawn
        from the seed. Given chords are played as written.
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
    blend: tuple[tuple[str, float], ...] | None = None
    candidates: int = 1
    repair: bool = True
    chords: tuple[str, ...] | None = None
    form: str | None = None
    key: str | None = None

    @property
    def song_form(self) -> str:
        """The form asked for, else the default: "loop" with `loop`, else "song"."""
        return self.form or ("loop" if self.loop else "song")

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
                                          and not isinstance(self.bars, bool)
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
        if not (isinstance(self.candidates, int) and not isinstance(self.candidates, bool)
                and 1 <= self.candidates <= MAX_CANDIDATES):
            raise PerfRNNError(f"candidates must be a whole number from 1 to {MAX_CANDIDATES}, "
                               f"got {self.candidates}")
        if self.seed is not None and not 0 <= self.seed <= MAX_SEED:
            raise PerfRNNError(f"seed must be between 0 and {MAX_SEED}, got {self.seed}")
        if self.blend is not None:
            check_blend(self.blend)
        if self.chords is not None:
            if not isinstance(self.chords, tuple) or not 1 <= len(self.chords) \
                    <= MAX_PROGRESSION_BARS:
                raise PerfRNNError(f"chords: give 1 to {MAX_PROGRESSION_BARS} bars of chords")
            for symbol in self.chords:
                parse_chord(symbol)
        if self.form is not None and self.form not in FORMS:
            raise PerfRNNError(f"form must be one of {', '.join(FORMS)}, got {self.form!r}")
        if self.key is not None:
            key_transposition(self.key)

    def resolved_seed(self) -> int:
        return random.SystemRandom().randrange(MAX_SEED) if self.seed is None else self.seed


REQUEST_FORMS = tuple(form for form in FORMS if form != "endless")
"""The forms a person may ask for: "song" and "loop" ("endless", a piece
without end, is the radio's)."""


def parse_form(text: str) -> str:
    """A form a person asks for: one of REQUEST_FORMS, in any case.

    Raises:
      PerfRNNError: "endless" (the radio's) or an unknown form.
    """
    form = str(text).strip().lower()
    if form == "endless":
        raise PerfRNNError("the endless form is the radio's (music without end); ask for "
                           f"{' or '.join(REQUEST_FORMS)}")
    if form not in REQUEST_FORMS:
        raise PerfRNNError(f"form must be {' or '.join(REQUEST_FORMS)}, got {str(text)[:20]!r}")
    return form


def candidates_for_quality(quality: str) -> int:
    """Candidates per variation for a quality name (see QUALITIES).

    Raises:
      PerfRNNError: an unknown quality.
    """
    if quality not in QUALITIES:
        raise PerfRNNError(f"quality must be one of {', '.join(QUALITIES)}, got {quality!r}")
    return QUALITIES[quality]


def candidates_within_budget(candidates: int, variations: int, file_seconds: float) -> int:
    """The candidates per variation a request samples: as many as asked, but
    no more than keep its music within MAX_SAMPLED_SECONDS (at least one)."""
    affordable = int(MAX_SAMPLED_SECONDS // max(variations * file_seconds, 1e-9))
    return max(1, min(candidates, affordable))


MAX_BLEND_STYLES = 8


def check_blend(blend) -> None:
    """Raises PerfRNNError unless `blend` is ((style, weight >= 0), ...) with a
    positive total and at most MAX_BLEND_STYLES styles."""
    if not isinstance(blend, tuple) or not 1 <= len(blend) <= MAX_BLEND_STYLES:
        raise PerfRNNError(f"a blend names 1 to {MAX_BLEND_STYLES} styles with their weights")
    for item in blend:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)
                and isinstance(item[1], (int, float)) and not isinstance(item[1], bool)
                and math.isfinite(item[1]) and item[1] >= 0):
            raise PerfRNNError(f"bad blend entry {item!r}: use a style name and a weight >= 0")
    names = [name for name, _ in blend]
    if len(set(names)) < len(names):
        raise PerfRNNError("a blend names each style once")
    if sum(weight for _, weight in blend) <= 0:
        raise PerfRNNError("the blend's weights are all 0; give one style a weight")


def parse_blend(text: str) -> tuple[tuple[str, float], ...]:
    """Reads "rock:70,electronic:30" (weights in any unit; they are scaled to
    sum to 1) into ((style, weight), ...).

    Raises:
      PerfRNNError: the text is not of that form.
    """
    blend = []
    for item in filter(None, (part.strip() for part in str(text).split(","))):
        name, _, weight = item.partition(":")
        try:
            value = float(weight) if weight.strip() else 1.0
        except ValueError:
            raise PerfRNNError(f"bad blend entry {item!r}: use style:weight, e.g. rock:70"
                               ) from None
        blend.append((name.strip(), value))
    result = tuple(blend)
    check_blend(result)
    return result


@dataclass(frozen=True)
class LengthPlan:
    """How long the model runs for one request.

    Attributes:
      steps: Model steps of new music.
      steps_per_second: Model steps per second of model time.
      model_seconds: `steps` in model seconds (the style's own tempo for a
        time-based style, the requested one for a metric style).
      bar_steps: Model steps per bar.
      file_seconds: Seconds of new music in the file, as asked.
    """

    steps: int
    steps_per_second: float
    model_seconds: float
    bar_steps: int
    file_seconds: float


def length_plan(options: GenerationOptions, bpm: float, native_bpm: float, metre: Metre,
                encoding) -> LengthPlan:
    """The one rule for lengths: `seconds` (or `bars`) is the length of new
    music in the file at `bpm`, for every kind of style.

    A metric style counts steps in beats and plays them at `bpm`; a
    time-based style is sampled at its own tempo and stretched to `bpm`, so it
    runs `seconds * bpm / native_bpm` model seconds, at most MAX_SECONDS.

    Raises:
      PerfRNNError: the file would last more than MAX_SECONDS, or a
        time-based style would have to make more than MAX_SECONDS of music.
    """
    seconds_per_bar = metre.quarters_per_bar * 60.0 / bpm
    file_seconds = options.bars * seconds_per_bar if options.bars else options.seconds
    if file_seconds > MAX_SECONDS + 1e-9:
        longest = int(MAX_SECONDS / seconds_per_bar)
        raise PerfRNNError(f"{options.bars} bars at {bpm:g} BPM last {file_seconds:.0f} "
                           f"seconds, over the maximum of {MAX_SECONDS:g} s (10 minutes); at "
                           f"this tempo the longest is {longest} bars")
    config = encoding.config
    if encoding.follows_tempo:  # steps are beats: the grid plays at `bpm`
        rate = encoding.steps_per_second(bpm)
        bar_steps = metre.steps_per_bar(config.steps_per_quarter)
        steps = options.bars * bar_steps if options.bars else max(1, round(file_seconds * rate))
    else:  # steps are seconds at the style's own tempo, stretched to `bpm`
        rate = encoding.steps_per_second(bpm)
        model_seconds = file_seconds * bpm / native_bpm
        if model_seconds > MAX_SECONDS + 1e-9:
            raise PerfRNNError(
                f"at {bpm:g} BPM the longest piece this style makes is "
                f"{MAX_SECONDS * native_bpm / bpm:.0f} seconds: it plays at {native_bpm:g} BPM "
                "and is stretched to the tempo asked for")
        bar_steps = max(1, round(seconds_per_bar * bpm / native_bpm * rate))
        steps = max(1, round(model_seconds * rate))
    return LengthPlan(steps=steps, steps_per_second=rate, model_seconds=steps / rate,
                      bar_steps=bar_steps, file_seconds=file_seconds)


MAX_PRIMER_SECONDS = 60.0
MAX_PRIMER_NOTES = 4000
"""A primer is a short piece to continue: the work and memory of priming the
model grow with its length and notes, so both are bounded (a 60 s piano
primer has a few hundred to two thousand notes)."""


def check_primer(primer: music_pb2.NoteSequence) -> None:
    """Raises PerfRNNError naming the limit when `primer` lasts longer than
    MAX_PRIMER_SECONDS or has more than MAX_PRIMER_NOTES notes."""
    seconds = primer.total_time
    if not math.isfinite(seconds) or seconds > MAX_PRIMER_SECONDS:
        raise PerfRNNError(f"the primer lasts {seconds:,.0f} seconds; a primer may last at "
                           f"most {MAX_PRIMER_SECONDS:g} seconds: cut it shorter")
    if len(primer.notes) > MAX_PRIMER_NOTES:
        raise PerfRNNError(f"the primer has {len(primer.notes):,} notes; a primer may have "
                           f"at most {MAX_PRIMER_NOTES:,}: cut it shorter")
    if any(not 0.0 <= note.start_time <= note.end_time for note in primer.notes):
        raise PerfRNNError("a note in the primer starts before time 0 or ends before it "
                           "starts; the file is damaged")


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
