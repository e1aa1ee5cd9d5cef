"""How well a piece fits its style: a score per piece, for best-of-N and for users.

Pure functions over note-seq `NoteSequence` protobufs (times in seconds).
Each part compares the piece with what the style's own real music does,
recorded at export from its corpus (`style_references`):

- **style match:** the probability the content-only style classifier
  (`perfrnn.style_classifier`) gives the style asked for (a blend: its
  styles, weighted);
- **on the beat:** the share of onsets on the sixteenth or triplet grid, for
  metric styles (`perfrnn.metre.beat_grid_fit`);
- **in key:** the share of pitched notes in the best major or minor scale;
- **longest silence**, against the 99th percentile of the corpus's silences;
- **stuck repetition:** one pitch repeated alone, or one short pattern of
  onsets repeated, for longer than the corpus does;
- **polyphony** against the corpus's range.

`Score.overall` (0 to 1) multiplies the style match by one factor per other
part: 1 inside the style's norm, falling below it as the piece leaves it. A
style without references (an older bundle) gets a neutral score: its parts
that need them are None, and so is `overall` when nothing is left.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from note_seq import sequences_lib
from note_seq.protobuf import music_pb2

from perfrnn import music_metrics
from perfrnn.errors import PerfRNNError
from perfrnn.metre import beat_grid_fit
from perfrnn.style_classifier import StyleClassifier, features

REFERENCES_FORMAT = 1
SCORING_FILE = "scoring.json"  # beside shipped bundles: the classifier and their references
EXCERPT_SECONDS = 30.0  # references are measured on excerpts of this length
CHORD_SECONDS = 0.01  # onsets closer than this are one onset (a chord)
MAX_PATTERN_ONSETS = 4  # "a short pattern": up to this many onsets, repeated
# Repetition and one-pitch runs up to this long are never called stuck, whatever the corpus.
STUCK_FLOOR_SECONDS = 4.0
MIN_SILENCE_LIMIT_SECONDS = 0.1  # a corpus that never rests still allows a sixteenth's rest


# ---------------------------------------------------------------------------
# Measurements


def silences(sequence: music_pb2.NoteSequence) -> list[tuple[float, float]]:
    """(start, seconds) of each stretch from 0 to `total_time` in which no note
    sounds (drums included): before the first note, between notes, after the last."""
    spans = sorted((note.start_time, max(note.end_time, note.start_time))
                   for note in sequence.notes)
    end_of_piece = max(sequence.total_time, spans[-1][1] if spans else 0.0)
    gaps, covered = [], 0.0
    for start, end in spans:
        if start > covered + 1e-6:
            gaps.append((covered, start - covered))
        covered = max(covered, end)
    if end_of_piece > covered + 1e-6:
        gaps.append((covered, end_of_piece - covered))
    return gaps


def longest_silence(sequence: music_pb2.NoteSequence, after: float = 0.0
                    ) -> tuple[float, float]:
    """(start, seconds) of the longest silence that ends after `after` seconds;
    (0, 0) when there is none."""
    return max((gap for gap in silences(sequence) if gap[0] + gap[1] > after + 1e-6),
               key=lambda gap: gap[1], default=(0.0, 0.0))


def _onset_groups(sequence: music_pb2.NoteSequence) -> list[tuple[float, list]]:
    """(onset, [(end, (is_drum, pitch)) per note]) of each onset in time order,
    chords (notes less than CHORD_SECONDS apart) merged."""
    groups: list[tuple[float, list]] = []
    for note in sorted(sequence.notes, key=lambda note: note.start_time):
        entry = (max(note.end_time, note.start_time), (note.is_drum, note.pitch))
        if groups and note.start_time - groups[-1][0] < CHORD_SECONDS:
            groups[-1][1].append(entry)
        else:
            groups.append((note.start_time, [entry]))
    return groups


def longest_one_pitch(sequence: music_pb2.NoteSequence, after: float = 0.0
                      ) -> tuple[float, float]:
    """(start, seconds) of the longest run of one pitch struck again and again
    alone: at least two onsets of that pitch and nothing else, and no other
    note sounding meanwhile; from its first onset to its last note's end; only
    runs that end after `after` seconds. (0, 0) when there is none."""
    sounding: list[tuple[float, tuple]] = []  # (end, key) of notes begun so far
    best = (0.0, 0.0)
    run_key, run_start, run_count, run_end = None, 0.0, 0, 0.0
    for start, notes in _onset_groups(sequence):
        sounding = [(end, key) for end, key in sounding if end > start + 1e-6]
        key = notes[0][1]
        alone = len(notes) == 1 and all(other == key for _, other in sounding)
        if alone and key == run_key:
            run_count, run_end = run_count + 1, max(run_end, notes[0][0])
        elif alone:
            run_key, run_start, run_count, run_end = key, start, 1, notes[0][0]
        else:
            run_key, run_count = None, 0
        if run_count >= 2 and run_end - run_start > best[1] and run_end > after + 1e-6:
            best = (run_start, run_end - run_start)
        sounding += notes
    return best


def longest_repetition(sequence: music_pb2.NoteSequence,
                       max_onsets: int = MAX_PATTERN_ONSETS,
                       after: float = 0.0) -> tuple[float, float]:
    """(start, seconds) of the longest stretch whose onsets (each the set of
    notes struck together) repeat one pattern of 1 to `max_onsets` onsets, at
    least twice over; from its first onset to its notes' last end; only
    stretches that end after `after` seconds. (0, 0) when there is none."""
    groups = _onset_groups(sequence)
    if len(groups) < 2:
        return 0.0, 0.0
    symbols = np.array([hash(tuple(sorted(key for _, key in notes))) for _, notes in groups],
                       np.int64)
    starts = np.array([start for start, _ in groups])
    ends = np.array([max(end for end, _ in notes) for _, notes in groups])
    best = (0.0, 0.0)
    for period in range(1, min(max_onsets, len(groups) // 2) + 1):
        # match[j]: onset j + period repeats onset j
        match = np.concatenate([[0], symbols[period:] == symbols[:-period], [0]])
        edges = np.flatnonzero(np.diff(match.astype(np.int8)))
        for first, last in zip(edges[0::2], edges[1::2]):  # match[first:last] all true
            if last - first < period:  # not twice over
                continue
            finish = last - 1 + period  # the stretch is onsets first..finish
            end = float(ends[first:finish + 1].max())
            seconds = end - float(starts[first])
            if seconds > best[1] and end > after + 1e-6:
                best = (float(starts[first]), seconds)
    return best


def in_key_share(sequence: music_pb2.NoteSequence) -> float | None:
    """Share of pitched notes in the best major or minor scale; None without any."""
    value = music_metrics.scale_consistency(sequence)
    return None if math.isnan(value) else value


def on_beat_share(sequence: music_pb2.NoteSequence) -> float | None:
    """Share of onsets (drum hits, when there are enough) on the sixteenth or
    triplet grid of the piece's tempo; None without notes."""
    value = beat_grid_fit(sequence)
    return None if math.isnan(value) else value


# ---------------------------------------------------------------------------
# References: what the style's real music does


def excerpts(sequences: list, seconds: float, limit: int) -> list:
    """Up to `limit` non-overlapping `seconds`-long excerpts with notes, taken
    round-robin over the pieces (so one long piece does not dominate)."""
    per_piece = []
    for sequence in sequences:
        cuts = []
        start = 0.0
        if not sequence.total_time > 0:  # nothing to cut (or a damaged piece)
            per_piece.append(cuts)
            continue
        while start + seconds <= max(sequence.total_time, seconds) + 1e-9:
            piece = sequences_lib.extract_subsequence(sequence, start, start + seconds)
            if piece.notes:
                piece.total_time = seconds
                cuts.append(piece)
            start += seconds
        per_piece.append(cuts)
    chosen = []
    for round_index in range(max((len(cuts) for cuts in per_piece), default=0)):
        for cuts in per_piece:
            if round_index < len(cuts) and len(chosen) < limit:
                chosen.append(cuts[round_index])
    return chosen



@dataclass(frozen=True)
class StyleReferences:
    """A style's norms, measured on excerpts of its real music at export.

    Attributes:
      excerpts: How many excerpts of EXCERPT_SECONDS they come from.
      silence_p99_seconds: 99th percentile of the silences (`silences`).
      one_pitch_longest_seconds: Longest one-pitch run (`longest_one_pitch`).
      repetition_p99_seconds: 99th percentile over excerpts of their longest
        repetition (`longest_repetition`).
      polyphony_range: 1st and 99th percentiles of excerpts' polyphony; None
        for drums alone.
      in_key_p5: 5th percentile of the in-key share; None for drums alone.
      on_beat_p5: 5th percentile of the on-beat share, for metric styles.
      real_style_match: The mean style match of the style's real excerpts,
        each judged by a classifier that did not learn from its source file;
        None when the classifier does not know the style.
    """

    excerpts: int
    silence_p99_seconds: float
    one_pitch_longest_seconds: float
    repetition_p99_seconds: float
    polyphony_range: tuple[float, float] | None = None
    in_key_p5: float | None = None
    on_beat_p5: float | None = None
    real_style_match: float | None = None

    @property
    def silence_limit(self) -> float:
        """The longest silence the style's norm allows, in seconds."""
        return max(self.silence_p99_seconds, MIN_SILENCE_LIMIT_SECONDS)

    @property
    def one_pitch_limit(self) -> float | None:
        """The longest one-pitch run allowed: 4 s, or longer where the corpus has
        one; None (no limit) where the corpus has one as long as its excerpts."""
        return _stuck_limit(self.one_pitch_longest_seconds)

    @property
    def repetition_limit(self) -> float | None:
        """The longest repetition allowed (see `one_pitch_limit`)."""
        return _stuck_limit(self.repetition_p99_seconds)

    def to_dict(self) -> dict:
        return {"format": REFERENCES_FORMAT, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: Mapping) -> StyleReferences:
        """Reads `to_dict`'s form.

        Raises:
          PerfRNNError: the references are malformed or of another format.
        """
        if not isinstance(data, Mapping) or data.get("format") != REFERENCES_FORMAT:
            raise PerfRNNError("the style's scoring references are of an unknown format")
        try:
            values = {field.name: data[field.name] for field in dataclasses.fields(cls)
                      if field.name in data}
            if values.get("polyphony_range") is not None:
                low, high = values["polyphony_range"]
                values["polyphony_range"] = (float(low), float(high))
            references = cls(**values)
            numbers = [references.silence_p99_seconds, references.one_pitch_longest_seconds,
                       references.repetition_p99_seconds]
            if not all(isinstance(x, (int, float)) and math.isfinite(x) and x >= 0
                       for x in numbers):
                raise ValueError("negative or missing seconds")
        except (TypeError, ValueError) as error:
            raise PerfRNNError(f"the style's scoring references are malformed ({error})"
                               ) from None
        return references


def _stuck_limit(corpus_seconds: float) -> float | None:
    """A stuck-passage limit from the corpus's figure: at least
    STUCK_FLOOR_SECONDS; None where the corpus repeats through whole excerpts
    (a drum groove), so no length of it is stuck."""
    if corpus_seconds >= 0.95 * EXCERPT_SECONDS:
        return None
    return max(STUCK_FLOOR_SECONDS, corpus_seconds)


def _percentile(values: Sequence[float], q: float) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.percentile(finite, q)) if finite else None


def style_references(excerpts: Sequence[music_pb2.NoteSequence], metric: bool
                     ) -> StyleReferences:
    """The norms of a style from excerpts of its real music (each about
    EXCERPT_SECONDS long, `total_time` set to its window).

    Raises:
      PerfRNNError: no excerpt has notes.
    """
    excerpts = [excerpt for excerpt in excerpts if excerpt.notes]
    if not excerpts:
        raise PerfRNNError("no real music to measure the style's norms on")
    gaps = [seconds for excerpt in excerpts for _, seconds in silences(excerpt)]
    poly = [music_metrics.polyphony(excerpt) for excerpt in excerpts]
    low, high = _percentile(poly, 1), _percentile(poly, 99)
    return StyleReferences(
        excerpts=len(excerpts),
        silence_p99_seconds=_percentile(gaps, 99) or 0.0,
        one_pitch_longest_seconds=max(longest_one_pitch(e)[1] for e in excerpts),
        repetition_p99_seconds=_percentile([longest_repetition(e)[1] for e in excerpts], 99),
        polyphony_range=None if low is None else (low, high),
        in_key_p5=_percentile([in_key_share(e) for e in excerpts], 5),
        on_beat_p5=_percentile([on_beat_share(e) for e in excerpts], 5) if metric else None)


# ---------------------------------------------------------------------------
# The score


@dataclass(frozen=True)
class Defect:
    """Where a piece leaves its style's norm so far that it is worth redoing."""

    kind: str  # "silence", "one pitch" or "repetition"
    start: float  # seconds
    seconds: float


@dataclass(frozen=True)
class Score:
    """How well one piece fits its style (see the module doc); fractions 0 to 1."""

    overall: float | None
    style: float | None
    style_typical: float | None  # the style match of the style's real music, on average
    on_beat: float | None
    in_key: float | None
    longest_silence: float  # seconds
    silence_limit: float | None  # None: no references
    longest_one_pitch: float  # seconds
    one_pitch_limit: float | None  # None: no references, or none for the style
    longest_repetition: float  # seconds
    repetition_limit: float | None  # None: no references, or none for the style
    polyphony: float | None
    polyphony_range: tuple[float, float] | None
    defect: Defect | None = None

    def to_dict(self) -> dict:
        """JSON-ready, numbers rounded for people (3 decimals)."""
        data = dataclasses.asdict(self)
        data["defect"] = None if self.defect is None else dataclasses.asdict(self.defect)

        def rounded(value):
            if isinstance(value, float):
                return round(value, 3)
            if isinstance(value, (list, tuple)):
                return [rounded(v) for v in value]
            if isinstance(value, dict):
                return {k: rounded(v) for k, v in value.items()}
            return value

        return rounded(data)

    def summary(self) -> str:
        """One line such as "style 93% · on the beat 99% · in key 97%"."""
        parts = [f"{name} {value:.0%}" for name, value in
                 (("style", self.style), ("on the beat", self.on_beat), ("in key", self.in_key))
                 if value is not None]
        if self.defect is not None:
            parts.append(f"{self.defect.kind} {self.defect.seconds:.1f} s at "
                         f"{self.defect.start:.1f} s")
        return " · ".join(parts) or "no references to score against"


def _within(value: float, limit: float) -> float:
    """1 up to `limit`, then limit/value: half as good at twice the limit."""
    return 1.0 if value <= limit or value <= 0 else limit / value


SHARE_SHARPNESS = 4  # a share 10% under the style's 5th percentile costs a third


def _share_at_least(share: float, floor: float) -> float:
    """1 from `floor` up, then (share/floor)**SHARE_SHARPNESS: notes off the key
    or off the beat are heard at once, so a share under the norm costs much."""
    return _within(floor, share) ** SHARE_SHARPNESS


def score_piece(sequence: music_pb2.NoteSequence, references: StyleReferences | None,
                classifier: StyleClassifier | None = None,
                style_weights: Mapping[str, float] | None = None,
                after: float = 0.0) -> Score:
    """Scores one piece against its style.

    Args:
      sequence: The piece, in seconds at its own tempo (the first tempo is its beat).
      references: The style's norms; None gives a neutral score for the parts
        that need them.
      classifier: The style classifier; its probability of the styles in
        `style_weights` (weights summing to 1) is the style match. None, or
        a classifier that knows none of them: no style match.
      after: Where the piece's own music starts, in seconds (after a
        primer): silences and stuck passages that end before it are the
        primer's, not the piece's.
    """
    style = None
    if classifier is not None and style_weights:
        known = {name: weight for name, weight in style_weights.items()
                 if name in classifier.styles}
        total = sum(known.values())
        if total > 0:
            probabilities = classifier.probabilities(features(sequence))[0]
            style = float(sum(weight / total * probabilities[classifier.styles.index(name)]
                              for name, weight in known.items()))
    silence_start, silence = longest_silence(sequence, after)
    one_pitch_start, one_pitch = longest_one_pitch(sequence, after)
    repetition_start, repetition = longest_repetition(sequence, after=after)
    in_key = in_key_share(sequence)
    poly = music_metrics.polyphony(sequence)  # nan without pitched notes
    on_beat = None
    if references is not None and references.on_beat_p5 is not None:
        on_beat = on_beat_share(sequence)
    factors = [] if style is None else [style]
    defect = None
    if references is not None:
        if on_beat is not None:
            factors.append(_share_at_least(on_beat, references.on_beat_p5))
        if in_key is not None and references.in_key_p5 is not None:
            factors.append(_share_at_least(in_key, references.in_key_p5))
        if not math.isnan(poly) and references.polyphony_range is not None:
            low, high = references.polyphony_range
            factors.append(_within(poly, high) * _within(low, poly))
        limits = (("silence", silence_start, silence, references.silence_limit),
                  ("one pitch", one_pitch_start, one_pitch, references.one_pitch_limit),
                  ("repetition", repetition_start, repetition, references.repetition_limit))
        factors += [_within(seconds, limit) for _, _, seconds, limit in limits
                    if limit is not None]
        found = [Defect(kind, start, seconds) for kind, start, seconds, limit in limits
                 if limit is not None and seconds > limit]
        defect = min(found, key=lambda d: d.start, default=None)
    return Score(
        overall=float(np.prod(factors)) if factors else None, style=style,
        style_typical=None if references is None or style is None
        else references.real_style_match, on_beat=on_beat,
        in_key=in_key, longest_silence=silence,
        silence_limit=None if references is None else references.silence_limit,
        longest_one_pitch=one_pitch,
        one_pitch_limit=None if references is None else references.one_pitch_limit,
        longest_repetition=repetition,
        repetition_limit=None if references is None else references.repetition_limit,
        polyphony=None if math.isnan(poly) else poly,
        polyphony_range=None if references is None else references.polyphony_range,
        defect=defect)


# ---------------------------------------------------------------------------
# Where a style's references and the classifier live


@dataclass(frozen=True)
class StyleScorer:
    """Everything needed to score one style's pieces (see `scorer_for`)."""

    style: str
    references: StyleReferences | None
    classifier: StyleClassifier | None
    style_mix: Mapping[str, float] = dataclasses.field(default_factory=dict)

    def score(self, sequence: music_pb2.NoteSequence,
              blend: Sequence[tuple[str, float]] | None = None, after: float = 0.0) -> Score:
        """`score_piece` with the style's own norms; the style match is that
        of the `blend` when one is given, else of the style (or its mix)."""
        weights = dict(blend) if blend else dict(self.style_mix) or {self.style: 1.0}
        return score_piece(sequence, self.references, self.classifier, weights, after)

    @property
    def neutral(self) -> bool:
        """Nothing to score with: every piece scores None."""
        return self.references is None and (
            self.classifier is None or not ({self.style, *self.style_mix}
                                            & set(self.classifier.styles)))


@lru_cache(maxsize=16)
def _scoring_file(path: str, stamp: tuple[int, int]) -> tuple[StyleClassifier | None, dict]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    classifier = (StyleClassifier.from_dict(data["classifier"])
                  if data.get("classifier") else None)
    return classifier, dict(data.get("references") or {})


def read_scoring_file(path: str | os.PathLike) -> tuple[StyleClassifier | None, dict]:
    """The classifier and references ({style: dict}) of a `scoring.json`;
    (None, {}) when there is no such file.

    Raises:
      PerfRNNError: the file exists but is not a readable scoring file.
    """
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        return None, {}
    try:
        return _scoring_file(str(path), (stat.st_size, stat.st_mtime_ns))
    except (OSError, ValueError, TypeError, AttributeError, KeyError) as error:
        raise PerfRNNError(f"{path} is not a readable scoring file ({error})") from None


def write_scoring_file(path: str | os.PathLike, classifier: StyleClassifier | None,
                       references: Mapping[str, StyleReferences]) -> Path:
    """Writes the classifier and per-style references as `read_scoring_file` reads them."""
    path = Path(path)
    data = {"classifier": None if classifier is None else classifier.to_dict(),
            "references": {style: refs.to_dict() for style, refs in sorted(references.items())}}
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return path


def scorer_for(bundle, folder: str | os.PathLike | None = None) -> StyleScorer:
    """The scorer of a loaded bundle: its references from the `scoring.json`
    in `folder` (default: the bundle's own folder), which also holds the
    classifier they go with, else from its metadata (a style the file does not
    know). A missing or unreadable scoring file, or malformed references,
    leave those parts neutral."""
    metadata = bundle.metadata
    folder = folder if folder is not None else (
        Path(bundle.path).parent if getattr(bundle, "path", None) else None)
    classifier, shipped = None, {}
    if folder is not None:
        try:
            classifier, shipped = read_scoring_file(Path(folder) / SCORING_FILE)
        except PerfRNNError:
            classifier, shipped = None, {}
    raw = shipped.get(metadata.style) or metadata.references
    try:
        references = StyleReferences.from_dict(raw) if raw else None
    except PerfRNNError:
        references = None
    return StyleScorer(style=metadata.style, references=references, classifier=classifier,
                       style_mix=dict(metadata.style_mix or {}))
