"""Pictures: the piano roll (perfrnn.pianoroll) and the evaluation-report plots (training.plots)."""

from __future__ import annotations

import io
import math
import random

import numpy as np
import pytest
from note_seq.protobuf import music_pb2

from perfrnn.configs import TrackRole
from perfrnn.pianoroll import TRACK_COLOURS, pianoroll_png, write_pianoroll
from training import plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TRACKS = (TrackRole("piano"), TrackRole("bass", 33))


def decode(png: bytes) -> np.ndarray:
    """RGB(A) floats in [0, 1], shape (height, width, channels)."""
    from matplotlib.image import imread

    assert png.startswith(PNG_SIGNATURE)
    return imread(io.BytesIO(png), format="png")


def pixels_of(image: np.ndarray, colour: str, tolerance: float = 0.03) -> int:
    from matplotlib.colors import to_rgb

    distance = np.abs(image[..., :3] - np.array(to_rgb(colour))).max(axis=-1)
    return int(np.count_nonzero(distance < tolerance))


def two_track_sequence(second_track: bool = True) -> music_pb2.NoteSequence:
    sequence = music_pb2.NoteSequence()
    sequence.tempos.add(qpm=120)
    for i in range(16):
        sequence.notes.add(pitch=72 + i % 5, velocity=127, start_time=i * 0.5,
                           end_time=i * 0.5 + 0.45, instrument=0)
        if second_track:
            sequence.notes.add(pitch=40 + i % 3, velocity=127, start_time=i * 0.5,
                               end_time=i * 0.5 + 0.45, instrument=1, program=33)
    return sequence


def long_sequence(notes: int = 5000, seconds: float = 600.0) -> music_pb2.NoteSequence:
    rng = random.Random(0)
    sequence = music_pb2.NoteSequence()
    for i in range(notes):
        start = rng.uniform(0, seconds - 1)
        is_drum = i % 4 == 0
        sequence.notes.add(pitch=rng.randint(36, 51) if is_drum else rng.randint(30, 100),
                           velocity=rng.randint(1, 127), start_time=start,
                           end_time=start + rng.uniform(0.02, 1.0), is_drum=is_drum,
                           instrument=2 if is_drum else i % 2)
    return sequence


# ---------------------------------------------------------------------------
# Piano roll


@pytest.mark.parametrize("width_px,height_px", [(1200, 400), (640, 240)])
def test_pianoroll_is_a_png_of_the_requested_size(width_px, height_px):
    image = decode(pianoroll_png(two_track_sequence(), TRACKS, width_px=width_px,
                                 height_px=height_px, title="Two tracks"))
    assert image.shape[:2] == (height_px, width_px)


def test_empty_sequence_gives_a_picture_without_colour():
    image = decode(pianoroll_png(music_pb2.NoteSequence(), width_px=300, height_px=120))
    assert image.shape[:2] == (120, 300)
    rgb = image[..., :3]
    assert np.allclose(rgb.max(axis=-1), rgb.min(axis=-1), atol=0.02)  # greys only
    assert (rgb < 0.9).any()  # the "no notes" text


def test_each_track_has_its_own_colour():
    one_track = decode(pianoroll_png(two_track_sequence(second_track=False), TRACKS))
    two_tracks = decode(pianoroll_png(two_track_sequence(), TRACKS))
    first, second = TRACK_COLOURS[0], TRACK_COLOURS[1]
    # Thousands of note pixels, far more than a legend swatch.
    assert pixels_of(one_track, first) > 2000
    assert pixels_of(one_track, second) == 0
    assert pixels_of(two_tracks, first) > 2000
    assert pixels_of(two_tracks, second) > 2000


def test_soft_notes_are_paler():
    loud = two_track_sequence(second_track=False)
    soft = two_track_sequence(second_track=False)
    for note in soft.notes:
        note.velocity = 20
    colour = TRACK_COLOURS[0]
    below_legend = slice(40, None)  # the legend's swatch is always fully opaque
    assert pixels_of(decode(pianoroll_png(soft))[below_legend], colour) == 0
    assert pixels_of(decode(pianoroll_png(loud))[below_legend], colour) > 2000


def test_ten_minute_piece_with_drums_renders(tmp_path):
    tracks = (TrackRole("piano"), TrackRole("bass", 33), TrackRole("drums", 0, is_drum=True))
    path = write_pianoroll(long_sequence(), tmp_path / "long.png", tracks=tracks,
                           width_px=1000, height_px=300)
    image = decode(path.read_bytes())
    assert image.shape[:2] == (300, 1000)
    for colour in TRACK_COLOURS[:3]:
        assert pixels_of(image, colour, tolerance=0.06) > 0


def test_tracks_without_roles_and_zero_length_notes():
    sequence = music_pb2.NoteSequence()
    sequence.notes.add(pitch=60, velocity=100, start_time=1.0, end_time=1.0, instrument=5)
    sequence.notes.add(pitch=36, velocity=100, start_time=0.0, end_time=0.1, is_drum=True,
                       instrument=5)
    image = decode(pianoroll_png(sequence, width_px=400, height_px=200))
    assert image.shape[:2] == (200, 400)


# ---------------------------------------------------------------------------
# Evaluation-report plots


def test_loss_curve_with_missing_validation_points():
    history = [{"step": step, "train_loss": 4.0 / (1 + step / 100),
                "validation_nll": 4.2 / (1 + step / 100) if step % 500 == 0 else None}
               for step in range(0, 2001, 100)]
    image = decode(plots.loss_curve_png(history, width_px=640, height_px=320))
    assert image.shape[:2] == (320, 640)
    assert pixels_of(image, "#ff7f0e", tolerance=0.06) > 0  # the validation line


def test_loss_curve_without_validation_or_history():
    history = [{"step": 1, "train_loss": 3.0, "validation_nll": None},
               {"step": 2, "train_loss": 2.5}]
    assert decode(plots.loss_curve_png(history)).shape[:2] == (400, 800)
    assert decode(plots.loss_curve_png([])).shape[:2] == (400, 800)


def test_metric_histograms_grid():
    rng = np.random.default_rng(0)
    real = {"note_density": list(rng.normal(5, 1, 50)), "polyphony": [2.0] * 10,
            "drum_pattern_consistency": [math.nan] * 10}
    generated = {"note_density": list(rng.normal(6, 1, 50)), "polyphony": [2.0, math.nan],
                 "drum_pattern_consistency": [math.nan], "groove_consistency": [0.9, 0.8]}
    overlap = {"note_density": 0.62, "polyphony": 1.0, "drum_pattern_consistency": math.nan}
    image = decode(plots.metric_histograms_png(real, generated, overlap, columns=3,
                                               panel_px=(200, 150)))
    assert image.shape[:2] == (2 * 150 + 30, 3 * 200)
    assert pixels_of(image, "#1f77b4", tolerance=0.3) > 0
    assert decode(plots.metric_histograms_png({}, {}, {})).shape[2] in (3, 4)


def test_ioi_histogram_plot():
    edges = np.linspace(0, 2, 21)
    density = np.full(20, 0.5)
    image = decode(plots.ioi_histogram_png(density, density[::-1], edges, overlap=0.9))
    assert image.shape[:2] == (300, 600)
