"""A content-only style classifier: which style a piece sounds like.

It sees musical content only: pitches, rhythms, drum patterns, density and
which kinds of parts play (drums or pitched, low or high), never GM program
numbers or track names, since the "type" setting decides those. The
classifier is multinomial logistic regression on standardised features
(`training.classify.fit` trains it on real music); this module holds its
features and its weights, so that `perfrnn.scoring` can judge a generated
piece without the training package.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from perfrnn import music_metrics as metrics
from perfrnn.errors import PerfRNNError

KICKS = (35, 36)
SNARES = (37, 38, 39, 40)
HATS = (42, 44, 46)
FEATURES = (
    "drum_share", "low_share", "high_share", "mean_pitch", "pitch_spread",
    "pitch_class_entropy", "scale_consistency", "polyphony", "notes_per_second",
    "drum_hits_per_second", "kick_per_second", "snare_per_second", "hat_per_second",
    "median_ioi_seconds", "short_ioi_share", "median_note_seconds", "long_note_share",
    "mean_velocity", "velocity_spread", "drum_pattern_consistency", "groove_consistency",
    "kick_regularity", "silence_share",
)


def features(sequence) -> np.ndarray:
    """The content features of one piece (float64, FEATURES order; no programs, no names)."""
    notes = list(sequence.notes)
    seconds = max(sequence.total_time, max((n.end_time for n in notes), default=0.0), 1e-6)
    drums = [n for n in notes if n.is_drum]
    pitched = [n for n in notes if not n.is_drum]
    pitches = np.array([n.pitch for n in pitched], float)
    onsets = np.unique(np.round([n.start_time for n in notes], 2))
    iois = np.diff(onsets)
    lengths = np.array([n.end_time - n.start_time for n in pitched], float)
    velocities = np.array([n.velocity for n in notes], float)
    kick_times = np.array(sorted(n.start_time for n in drums if n.pitch in KICKS))
    kick_gaps = np.diff(kick_times)

    def rate(selected) -> float:
        return len(selected) / seconds

    def value(x) -> float:
        return float(x) if x is not None and math.isfinite(x) else -1.0

    sounding = np.zeros(int(seconds * 10) + 1, bool)
    for n in notes:
        start = int(n.start_time * 10)
        sounding[start:max(int(n.end_time * 10), start + 1)] = True
    return np.array([
        len(drums) / max(len(notes), 1),
        float((pitches < 48).mean()) if len(pitches) else 0.0,
        float((pitches >= 72).mean()) if len(pitches) else 0.0,
        float(pitches.mean()) if len(pitches) else -1.0,
        float(pitches.std()) if len(pitches) else -1.0,
        value(metrics.pitch_class_entropy(sequence)),
        value(metrics.scale_consistency(sequence)),
        value(metrics.polyphony(sequence)),
        rate(notes),
        rate(drums),
        rate([n for n in drums if n.pitch in KICKS]),
        rate([n for n in drums if n.pitch in SNARES]),
        rate([n for n in drums if n.pitch in HATS]),
        float(np.median(iois)) if len(iois) else -1.0,
        float((iois < 0.15).mean()) if len(iois) else 0.0,
        float(np.median(lengths)) if len(lengths) else -1.0,
        float((lengths > 1.0).mean()) if len(lengths) else 0.0,
        float(velocities.mean()) if len(velocities) else 0.0,
        float(velocities.std()) if len(velocities) else 0.0,
        value(metrics.drum_pattern_consistency(sequence)),
        value(metrics.groove_consistency(sequence)),
        # how evenly the kick drum is spaced (1 = a metronome, as four-on-the-floor)
        float(1.0 - min(kick_gaps.std() / kick_gaps.mean(), 1.0))
        if len(kick_gaps) > 2 and kick_gaps.mean() > 0 else 0.0,
        float(1.0 - sounding.mean()),
    ])


@dataclass
class StyleClassifier:
    """Standardisation and logistic-regression weights over FEATURES."""

    styles: list[str]
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray  # [features + 1, styles]

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        z = (np.atleast_2d(x) - self.mean) / self.scale
        logits = np.hstack([z, np.ones((len(z), 1))]) @ self.weights
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, x: np.ndarray) -> list[str]:
        return [self.styles[i] for i in self.probabilities(x).argmax(axis=1)]

    def to_dict(self) -> dict:
        """The classifier as JSON-ready lists (see `from_dict`)."""
        return {"features": list(FEATURES), "styles": list(self.styles),
                "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "weights": self.weights.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> StyleClassifier:
        """Reads `to_dict`'s form.

        Raises:
          PerfRNNError: the data is malformed or was made for other features.
        """
        try:
            if list(data["features"]) != list(FEATURES):
                raise PerfRNNError("the style classifier was made for other features; "
                                   "rebuild it with `python -m training references`")
            classifier = cls([str(style) for style in data["styles"]],
                             np.asarray(data["mean"], float), np.asarray(data["scale"], float),
                             np.asarray(data["weights"], float))
        except (KeyError, TypeError, ValueError) as error:
            raise PerfRNNError(f"the style classifier is malformed ({error})") from None
        n = len(FEATURES)
        if classifier.mean.shape != (n,) or classifier.scale.shape != (n,) \
                or classifier.weights.shape != (n + 1, len(classifier.styles)):
            raise PerfRNNError("the style classifier's weights have the wrong shape")
        return classifier
