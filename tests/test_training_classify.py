"""The genre-fidelity classifier: content-only features, fitting, confusion matrix."""

from __future__ import annotations

import numpy as np
import pytest
from note_seq.protobuf import music_pb2

from training.classify import (
    FEATURES,
    confusion,
    cross_validate,
    cross_validated_predictions,
    features,
    fit,
    recall_by_style,
)


def groove(seed: int, seconds: float = 8.0) -> music_pb2.NoteSequence:
    rng = np.random.default_rng(seed)
    sequence = music_pb2.NoteSequence(total_time=seconds)
    sequence.tempos.add(qpm=120)
    for step in range(int(seconds * 4)):
        t = step * 0.25
        sequence.notes.add(pitch=42, start_time=t, end_time=t + 0.05, velocity=70, is_drum=True)
        if step % 2 == 0:
            sequence.notes.add(pitch=36 if step % 4 == 0 else 38, start_time=t,
                               end_time=t + 0.05, velocity=int(rng.integers(90, 120)),
                               is_drum=True)
    return sequence


def melody(seed: int, seconds: float = 8.0, program: int = 0) -> music_pb2.NoteSequence:
    rng = np.random.default_rng(seed)
    sequence = music_pb2.NoteSequence(total_time=seconds)
    t = 0.0
    while t < seconds - 0.5:
        length = float(rng.choice([0.25, 0.5]))
        pitch = int(60 + rng.choice([0, 2, 4, 5, 7, 9, 11]))
        sequence.notes.add(pitch=pitch, start_time=t, end_time=t + length, program=program,
                           velocity=int(rng.integers(50, 90)), instrument=0)
        t += length
    return sequence


def test_features_see_content_not_programs_or_names():
    plain = melody(1)
    renamed = melody(1, program=81)
    for note in renamed.notes:
        note.instrument = 3
    assert np.array_equal(features(plain), features(renamed))
    assert len(features(plain)) == len(FEATURES)
    drums = features(groove(2))
    assert drums[FEATURES.index("drum_share")] == 1.0
    assert drums[FEATURES.index("kick_regularity")] == pytest.approx(1.0)
    assert drums[FEATURES.index("hat_per_second")] == pytest.approx(4.0, rel=0.05)


def test_two_styles_are_told_apart():
    x = np.array([features(groove(i)) for i in range(10)]
                 + [features(melody(i)) for i in range(10)])
    labels = ["drums"] * 10 + ["piano"] * 10
    model = fit(x, labels)
    assert model.predict(features(groove(99))) == ["drums"]
    assert model.predict(features(melody(99))) == ["piano"]
    assert cross_validate(x, labels, [str(i) for i in range(20)], folds=4) == 1.0
    # one file of drums labelled piano: held out, it is heard as drums
    wrong = labels[:9] + ["piano"] + labels[10:]
    predicted = cross_validated_predictions(x, wrong, [str(i) for i in range(20)], folds=4)
    assert predicted[9] == "drums" and predicted[:9] == ["drums"] * 9
    assert recall_by_style(wrong, predicted) == {"drums": 1.0, "piano": 10 / 11}
    probabilities = model.probabilities(x)
    assert np.allclose(probabilities.sum(axis=1), 1.0)


def test_confusion_matrix():
    matrix = confusion(["a", "a", "b"], ["a", "b", "b"], ["a", "b"])
    assert matrix.tolist() == [[1, 1], [0, 1]]
