"""Objective metrics of a piece, and how far a generated set is from a real one.

Pure functions over note-seq `NoteSequence` protobufs (times in seconds). The
per-piece metrics follow MusPy's definitions (`muspy.metrics`, Dong et al.
2020); where MusPy works on a tick grid we quantize to `resolution` steps per
beat (default 24, MusPy's default), with the beat read from the sequence's
tempo map as `perfrnn.metre.quarters_at` reads it (120 quarter notes per
minute when it has none). Metrics that are
undefined for a piece (no pitched notes, no drum notes, too short) are nan.

The set-level comparison is the "overlapping area" of Yang & Lerch (2018), "On
the evaluation of generative models in music": the area under the minimum of
the two sets' Gaussian kernel density estimates, 1.0 for identical
distributions and 0.0 for disjoint ones.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from note_seq.protobuf import music_pb2

from perfrnn.metre import DEFAULT_QPM, quarters_at

DEFAULT_RESOLUTION = 24  # grid steps per beat (quarter note), as MusPy
DEFAULT_CHORD_SECONDS = 0.01  # onsets closer than this are one onset (one RNN time step)

# Every scalar `compute_metrics` returns, in order, with its unit.
METRICS: dict[str, str] = {
    "pitch_class_entropy": "bits (0 to log2 12 = 3.58)",
    "pitch_range": "semitones",
    "scale_consistency": "fraction of pitched notes in the best major/minor scale",
    "polyphony": "pitches sounding, when any sounds",
    "polyphony_rate": "fraction of time steps with 2+ pitches sounding",
    "note_density": "notes per second",
    "median_ioi_beats": "beats between successive onsets (median)",
    "empty_beat_rate": "fraction of beats with no note",
    "drum_pattern_consistency": "fraction of drum onsets on a duple or triple grid",
    "groove_consistency": "1 - mean Hamming distance of neighbouring bars' onsets",
}

_MAJOR_SCALE = np.array([1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1], bool)  # C major
_MINOR_SCALE = np.array([1, 0, 1, 1, 0, 1, 0, 1, 1, 0, 1, 0], bool)  # C natural minor


# ---------------------------------------------------------------------------
# Grid helpers


def beats_per_bar(sequence: music_pb2.NoteSequence) -> float:
    """Quarter notes per bar from the first time signature; 4.0 when there is none."""
    if sequence.time_signatures:
        signature = sequence.time_signatures[0]
        if signature.numerator > 0 and signature.denominator > 0:
            return signature.numerator * 4.0 / signature.denominator
    return 4.0


def _notes(sequence: music_pb2.NoteSequence, *, drums: bool | None = None):
    """(pitch, start_seconds, end_seconds) arrays; drums=None: all notes."""
    selected = [note for note in sequence.notes if drums is None or note.is_drum == drums]
    pitches = np.array([note.pitch for note in selected], dtype=np.int64)
    starts = np.array([note.start_time for note in selected], dtype=np.float64)
    ends = np.array([note.end_time for note in selected], dtype=np.float64)
    return pitches, starts, np.maximum(ends, starts)


def _to_steps(sequence: music_pb2.NoteSequence, starts: np.ndarray, ends: np.ndarray,
              resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and end grid steps (`resolution` per quarter note, by the tempo
    map) of notes starting and ending at `starts` and `ends` seconds; every
    note lasts at least one step."""
    start_steps = np.round(quarters_at(sequence, starts) * resolution).astype(np.int64)
    end_steps = np.maximum(np.round(quarters_at(sequence, ends) * resolution).astype(np.int64),
                           start_steps + 1)
    return start_steps, end_steps


def _length_steps(sequence: music_pb2.NoteSequence, resolution: int) -> int:
    """Steps from time 0 to the end of the last note (drums included)."""
    _, starts, ends = _notes(sequence)
    if not len(starts):
        return 0
    return int(_to_steps(sequence, starts, ends, resolution)[1].max())


def _pianoroll(sequence: music_pb2.NoteSequence, resolution: int) -> np.ndarray:
    """Binary (steps, 128) roll of the pitched notes, as long as the whole piece."""
    roll = np.zeros((_length_steps(sequence, resolution), 128), bool)
    pitches, starts, ends = _notes(sequence, drums=False)
    start_steps, end_steps = _to_steps(sequence, starts, ends, resolution)
    for pitch, start, end in zip(pitches, start_steps, end_steps):
        roll[start:end, pitch] = True
    return roll


def _entropy_bits(counts: np.ndarray) -> float:
    total = counts.sum()
    if total < 1:
        return math.nan
    prob = counts[counts > 0] / total
    return float(-(prob * np.log2(prob)).sum())


# ---------------------------------------------------------------------------
# Pitch


def pitch_class_entropy(sequence: music_pb2.NoteSequence) -> float:
    """Shannon entropy in bits of the pitched notes' pitch-class histogram.

    0 for one pitch class, log2(12) = 3.585 for all twelve equally often (as
    MusPy, log base 2). Drum notes are ignored; nan without pitched notes.
    """
    pitches, _, _ = _notes(sequence, drums=False)
    return _entropy_bits(np.bincount(pitches % 12, minlength=12))


def pitch_range(sequence: music_pb2.NoteSequence) -> float:
    """Highest minus lowest pitched note, in semitones; nan without pitched notes."""
    pitches, _, _ = _notes(sequence, drums=False)
    return float(pitches.max() - pitches.min()) if len(pitches) else math.nan


def scale_consistency(sequence: music_pb2.NoteSequence) -> float:
    """Largest fraction of pitched notes inside one major or minor scale (MusPy).

    1.0 for a piece that stays in one key; 7/12 for a chromatic scale. Drum
    notes are ignored; nan without pitched notes.
    """
    pitches, _, _ = _notes(sequence, drums=False)
    if not len(pitches):
        return math.nan
    counts = np.bincount(pitches % 12, minlength=12)
    best = max(counts[np.roll(scale, root)].sum()
               for scale in (_MAJOR_SCALE, _MINOR_SCALE) for root in range(12))
    return float(best / len(pitches))


# ---------------------------------------------------------------------------
# Texture and rhythm


def polyphony(sequence: music_pb2.NoteSequence,
              resolution: int = DEFAULT_RESOLUTION) -> float:
    """Mean number of distinct pitches sounding, over the grid steps where any sounds.

    As MusPy: pitched notes on a grid of `resolution` steps per beat (a note
    lasts at least one step). A held three-note chord gives 3.0; nan without
    pitched notes.
    """
    roll = _pianoroll(sequence, resolution)
    sounding = roll.sum(axis=1)
    active = np.count_nonzero(sounding)
    return float(sounding.sum() / active) if active else math.nan


def polyphony_rate(sequence: music_pb2.NoteSequence,
                   resolution: int = DEFAULT_RESOLUTION, threshold: int = 2) -> float:
    """Fraction of grid steps, from 0 to the piece's end, with `threshold`+ pitches sounding.

    MusPy's polyphony rate, with one difference: MusPy counts steps with
    *more than* `threshold` pitches although its documentation says "multiple
    pitches"; here a step counts when at least `threshold` (default 2) pitches
    sound. Drum notes only lengthen the piece. nan without pitched notes.
    """
    if not any(not note.is_drum for note in sequence.notes):
        return math.nan
    roll = _pianoroll(sequence, resolution)
    return float(np.count_nonzero(roll.sum(axis=1) >= threshold) / len(roll))


def note_density(sequence: music_pb2.NoteSequence) -> float:
    """Notes (drums included) per second of the played span.

    The span runs from the first onset to the last note's end, so leading and
    trailing silence does not dilute it. nan without notes or for a zero span.
    """
    _, starts, ends = _notes(sequence)
    if not len(starts):
        return math.nan
    span = ends.max() - starts.min()
    return float(len(starts) / span) if span > 0 else math.nan


def inter_onset_intervals(sequence: music_pb2.NoteSequence, *, include_drums: bool = True,
                          chord_seconds: float = DEFAULT_CHORD_SECONDS) -> list[float]:
    """Seconds between successive onsets, for a histogram.

    Onsets less than `chord_seconds` after the previous one are the same
    onset (the notes of a chord), so a chord adds no zero intervals. A piece
    with fewer than two distinct onsets gives an empty list.
    """
    return np.diff(_onsets(sequence, include_drums, chord_seconds)).tolist()


def _onsets(sequence: music_pb2.NoteSequence, include_drums: bool,
            chord_seconds: float) -> np.ndarray:
    """Distinct onsets in seconds, in order: a note starting less than
    `chord_seconds` after the previous onset joins it."""
    _, starts, _ = _notes(sequence, drums=None if include_drums else False)
    onsets = np.sort(starts)
    if len(onsets) < 2:
        return onsets
    return onsets[np.concatenate([[True], np.diff(onsets) >= chord_seconds])]


def median_ioi_beats(sequence: music_pb2.NoteSequence, *,
                     chord_seconds: float = DEFAULT_CHORD_SECONDS) -> float:
    """Median inter-onset interval (drums included) in quarter notes of the
    tempo map; nan under two onsets."""
    onsets = _onsets(sequence, True, chord_seconds)
    if len(onsets) < 2:
        return math.nan
    return float(np.median(np.diff(quarters_at(sequence, onsets))))


def empty_beat_rate(sequence: music_pb2.NoteSequence,
                    resolution: int = DEFAULT_RESOLUTION) -> float:
    """Fraction of beats, from 0 to the last note's end, in which no note (drums too) sounds.

    MusPy's empty-beat rate, with a note occupying beats [start, end): MusPy
    also counts the beat in which a note ends exactly on the boundary and one
    beat past the piece's end, which makes a piece of back-to-back notes look
    full after silence. nan without notes.
    """
    _, starts, ends = _notes(sequence)
    if not len(starts):
        return math.nan
    start_steps, end_steps = _to_steps(sequence, starts, ends, resolution)
    n_beats = -(-int(end_steps.max()) // resolution)
    occupied = np.zeros(n_beats + 1, np.int64)
    np.add.at(occupied, start_steps // resolution, 1)
    np.add.at(occupied, (end_steps - 1) // resolution + 1, -1)
    return float(np.count_nonzero(np.cumsum(occupied)[:n_beats] == 0) / n_beats)


def _drum_pattern(resolution: int, meter: str) -> np.ndarray:
    """MusPy's onset mask within a beat: duple = 16th notes, triple = eighth triplets."""
    pattern = np.zeros(resolution, bool)
    pattern[0] = True
    divisions = (4, 2) if meter == "duple" else (3,)
    for division in divisions:
        if resolution % division == 0:
            pattern[:: resolution // division] = True
    return pattern


def drum_pattern_consistency(sequence: music_pb2.NoteSequence,
                             resolution: int = DEFAULT_RESOLUTION) -> float:
    """Largest fraction of drum onsets on a duple (16th) or triple (8th-triplet) grid (MusPy).

    Onsets are rounded to the nearest of `resolution` steps per beat (at 120
    qpm and 24 steps a step is 21 ms). 1.0 when every drum hit falls on a
    sixteenth note; nan without drum notes.
    """
    _, starts, ends = _notes(sequence, drums=True)
    if not len(starts):
        return math.nan
    positions = _to_steps(sequence, starts, ends, resolution)[0] % resolution
    return float(max(_drum_pattern(resolution, meter)[positions].mean()
                     for meter in ("duple", "triple")))


def estimate_grid_qpm(sequence: music_pb2.NoteSequence, low: float = 60.0,
                      high: float = 200.0, resolution: int = DEFAULT_RESOLUTION) -> float:
    """The tempo (quarter notes per minute) whose sixteenth or eighth-triplet grid
    the onsets fit best: the drum onsets when there are at least 8, else all.

    Generated performances have no tempo of their own, so beat-based metrics
    (empty beats, groove and drum-pattern consistency, inter-onset intervals in
    beats) are measured on this grid for generated and real music alike. Of
    the tempos within 0.02 of the best fit the slowest is taken: a pattern on
    the grid at q is also on the finer grid at 2q.
    """
    _, starts, _ = _notes(sequence, drums=True)
    if len(starts) < 8:
        _, starts, _ = _notes(sequence)
    if not len(starts):
        return DEFAULT_QPM
    onsets = np.asarray(starts) - float(np.min(starts))
    candidates = np.arange(low, high + 1e-9, 0.5)
    steps = np.rint(onsets[None, :] * candidates[:, None] / 60.0 * resolution).astype(np.int64)
    duple = (steps % (resolution // 4) == 0).mean(axis=1)
    triple = (steps % (resolution // 3) == 0).mean(axis=1)
    score = np.maximum(duple, triple)
    return float(candidates[np.flatnonzero(score >= score.max() - 0.02)[0]])


def with_grid_tempo(sequence: music_pb2.NoteSequence) -> music_pb2.NoteSequence:
    """A copy whose first tempo is `estimate_grid_qpm`, its time shifted so the
    first onset (drum onset, when there are drums) falls on a beat."""
    _, starts, _ = _notes(sequence, drums=True)
    if len(starts) < 8:
        _, starts, _ = _notes(sequence)
    copy = music_pb2.NoteSequence()
    copy.CopyFrom(sequence)
    offset = float(np.min(starts)) if len(starts) else 0.0
    for note in copy.notes:
        note.start_time = max(note.start_time - offset, 0.0)
        note.end_time = max(note.end_time - offset, note.start_time)
    copy.total_time = max(copy.total_time - offset, 0.0)
    del copy.tempos[:]
    copy.tempos.add(qpm=estimate_grid_qpm(sequence))
    return copy


def groove_consistency(sequence: music_pb2.NoteSequence,
                       resolution: int = DEFAULT_RESOLUTION) -> float:
    """1 minus the mean Hamming distance between neighbouring bars' onset patterns (MusPy).

    Each bar (from the first time signature, 4/4 when none) is a binary vector
    of `resolution` steps per beat with a one where any note (drums included)
    starts; the distance is normalized by the bar's step count. 1.0 for a
    pattern repeated exactly every bar; nan under two bars.
    """
    _, starts, ends = _notes(sequence)
    if not len(starts):
        return math.nan
    start_steps, end_steps = _to_steps(sequence, starts, ends, resolution)
    bar_steps = max(1, round(resolution * beats_per_bar(sequence)))
    n_bars = -(-int(end_steps.max()) // bar_steps)
    if n_bars < 2:
        return math.nan
    grooves = np.zeros((n_bars, bar_steps), bool)
    bars, positions = np.divmod(start_steps, bar_steps)
    grooves[bars, positions] = True
    distance = np.count_nonzero(grooves[:-1] != grooves[1:])
    return float(1.0 - distance / (bar_steps * (n_bars - 1)))


def compute_metrics(sequence: music_pb2.NoteSequence,
                    resolution: int = DEFAULT_RESOLUTION) -> dict[str, float]:
    """Every scalar metric of `METRICS` for one piece; nan where undefined."""
    return {
        "pitch_class_entropy": pitch_class_entropy(sequence),
        "pitch_range": pitch_range(sequence),
        "scale_consistency": scale_consistency(sequence),
        "polyphony": polyphony(sequence, resolution),
        "polyphony_rate": polyphony_rate(sequence, resolution),
        "note_density": note_density(sequence),
        "median_ioi_beats": median_ioi_beats(sequence),
        "empty_beat_rate": empty_beat_rate(sequence, resolution),
        "drum_pattern_consistency": drum_pattern_consistency(sequence, resolution),
        "groove_consistency": groove_consistency(sequence, resolution),
    }


def metric_values(sequences: Iterable[music_pb2.NoteSequence],
                  resolution: int = DEFAULT_RESOLUTION) -> dict[str, list[float]]:
    """Each metric's value for every piece, in order (nan kept), for histograms."""
    values: dict[str, list[float]] = {name: [] for name in METRICS}
    for sequence in sequences:
        for name, value in compute_metrics(sequence, resolution).items():
            values[name].append(value)
    return values


def ioi_histogram(sequences: Iterable[music_pb2.NoteSequence], bins: int | Sequence[float] = 40,
                  max_seconds: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Density histogram of all pieces' inter-onset intervals up to `max_seconds`.

    Returns (density, bin_edges) as numpy.histogram with density=True; longer
    intervals are counted in the last bin. All zeros when there are none.
    """
    intervals = [ioi for sequence in sequences for ioi in inter_onset_intervals(sequence)]
    clipped = np.minimum(np.asarray(intervals, np.float64), max_seconds)
    counts, edges = np.histogram(clipped, bins=bins, range=(0.0, max_seconds))
    widths = np.diff(edges)
    density = counts / (counts.sum() * widths) if counts.sum() else counts.astype(np.float64)
    return density, edges


# ---------------------------------------------------------------------------
# Comparing a generated set with a real one


def _finite(values: Iterable[float]) -> np.ndarray:
    array = np.asarray(list(values), dtype=np.float64).ravel()
    return array[np.isfinite(array)]


def _scott_bandwidth(sample: np.ndarray) -> float:
    """Scott's rule, as scipy.stats.gaussian_kde: std (ddof=1) * n^(-1/5); 0 if degenerate."""
    if len(sample) < 2:
        return 0.0
    return float(np.std(sample, ddof=1) * len(sample) ** -0.2)


def _kde(sample: np.ndarray, bandwidth: float, grid: np.ndarray) -> np.ndarray:
    """Gaussian kernel density of `sample` at `grid`, summed in chunks to bound memory."""
    density = np.zeros_like(grid)
    for begin in range(0, len(sample), 1024):
        z = (grid[None, :] - sample[begin:begin + 1024, None]) / bandwidth
        density += np.exp(-0.5 * z * z).sum(axis=0)
    return density / (len(sample) * bandwidth * math.sqrt(2.0 * math.pi))


def overlapping_area(real: Sequence[float], generated: Sequence[float]) -> float:
    """Overlap in [0, 1] of the two samples' Gaussian kernel density estimates.

    The integral of min(p_real, p_generated), each a KDE with Scott's
    bandwidth, computed with the trapezoid rule on a grid over the range where
    both densities lie within six bandwidths of their data. Non-finite values
    are ignored; nan when either sample is then empty. A sample with no spread
    (a single value or all equal) borrows the other's bandwidth; when both have
    none the result is 1.0 if they hold the same value and 0.0 otherwise.
    """
    real_values, generated_values = _finite(real), _finite(generated)
    if not len(real_values) or not len(generated_values):
        return math.nan
    real_bw, generated_bw = _scott_bandwidth(real_values), _scott_bandwidth(generated_values)
    if real_bw <= 0 and generated_bw <= 0:
        values = np.concatenate([real_values, generated_values])
        same = math.isclose(values.min(), values.max(), rel_tol=1e-9, abs_tol=1e-12)
        return 1.0 if same else 0.0
    real_bw = real_bw if real_bw > 0 else generated_bw
    generated_bw = generated_bw if generated_bw > 0 else real_bw
    low = max(real_values.min() - 6 * real_bw, generated_values.min() - 6 * generated_bw)
    high = min(real_values.max() + 6 * real_bw, generated_values.max() + 6 * generated_bw)
    if high <= low:
        return 0.0
    points = int(np.clip((high - low) / (min(real_bw, generated_bw) / 10), 1024, 20000))
    grid = np.linspace(low, high, points)
    overlap = np.minimum(_kde(real_values, real_bw, grid),
                         _kde(generated_values, generated_bw, grid))
    return float(np.clip(np.trapezoid(overlap, grid), 0.0, 1.0))


def _mean_std(values: np.ndarray) -> tuple[float, float]:
    if not len(values):
        return math.nan, math.nan
    return float(values.mean()), float(values.std())


def compare_metric_values(real: Mapping[str, Sequence[float]],
                          generated: Mapping[str, Sequence[float]]) -> dict:
    """Summaries of per-piece metric values (as `metric_values` returns) of two sets.

    Returns {"metrics": {name: {"real_mean", "real_std", "real_count",
    "generated_mean", "generated_std", "generated_count", "overlapping_area"}},
    "mean_overlapping_area": float}, over the metrics in both mappings. Means
    and (population) standard deviations skip nan; counts are the pieces where
    the metric is defined. The mean overlapping area averages the metrics
    defined in both sets (nan if none is).
    """
    summary: dict[str, dict[str, float]] = {}
    for name in [name for name in real if name in generated]:
        real_values, generated_values = _finite(real[name]), _finite(generated[name])
        real_mean, real_std = _mean_std(real_values)
        generated_mean, generated_std = _mean_std(generated_values)
        summary[name] = {
            "real_mean": real_mean,
            "real_std": real_std,
            "real_count": len(real_values),
            "generated_mean": generated_mean,
            "generated_std": generated_std,
            "generated_count": len(generated_values),
            "overlapping_area": overlapping_area(real_values, generated_values),
        }
    areas = [item["overlapping_area"] for item in summary.values()
             if not math.isnan(item["overlapping_area"])]
    return {"metrics": summary,
            "mean_overlapping_area": float(np.mean(areas)) if areas else math.nan}


def compare_metrics(real_sequences: Iterable[music_pb2.NoteSequence],
                    generated_sequences: Iterable[music_pb2.NoteSequence],
                    resolution: int = DEFAULT_RESOLUTION) -> dict:
    """`compare_metric_values` of the metrics of a real and a generated set of pieces."""
    return compare_metric_values(metric_values(real_sequences, resolution),
                                 metric_values(generated_sequences, resolution))
