"""The numpy control extraction gives exactly note-seq's control inputs."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import magenta_reference_path

from perfrnn.configs import get_config
from perfrnn.fast_controls import control_inputs, note_densities, pitch_histograms
from perfrnn.performance_encoding import PerformanceEncoding

CONDITIONED = ("multiconditioned_performance_with_dynamics",
               "density_conditioned_performance_with_dynamics",
               "pitch_conditioned_performance_with_dynamics")


def event_sequences():
    reference = np.load(magenta_reference_path("multiconditioned_performance_with_dynamics"))
    rng = np.random.default_rng(0)
    # Random events: many overlapping notes, note-offs of silent pitches, long shifts.
    random_events = rng.integers(0, 388, 2500)
    # Dense chords: note-ons in bursts then short shifts.
    chords = []
    for _ in range(300):
        pitches = rng.choice(np.arange(40, 90), 3, replace=False)
        chords += [356 + int(rng.integers(0, 32))] + [int(p) for p in pitches]
        chords += [256 + int(rng.integers(0, 40))] + [128 + int(p) for p in pitches]
    return {"magenta reference": reference["events"], "random": random_events,
            "chords": np.array(chords), "one event": np.array([60])}


@pytest.mark.parametrize("config_id", CONDITIONED)
@pytest.mark.parametrize("name", ["magenta reference", "random", "chords", "one event"])
def test_same_inputs_as_note_seq(config_id, name):
    events = event_sequences()[name]
    encoding = PerformanceEncoding(get_config(config_id))
    expected = encoding.inputs_from_events(
        events, encoding.control_values(encoding.performance_from_events(events)))
    np.testing.assert_allclose(encoding.inputs_with_controls(events), expected, atol=1e-6)


def test_values_by_hand():
    # note-on 60, 1 s shift, note-off 60, 1 s shift, note-on 64 and 67, 0.5 s shift
    events = np.array([60, 355, 188, 355, 64, 67, 305])
    density = note_densities(events, 100, 100, window_seconds=3.0)
    # from t=0: 3 notes in the 2.5 s left; after the first shift: 2 notes in 1.5 s
    assert density[0] == pytest.approx(3 / 2.5)
    assert density[2] == pytest.approx(2 / 1.5) and density[3] == density[2]
    histograms = pitch_histograms(events, 100, 100, window_seconds=5.0, prior=0.0)
    assert histograms[0][0] == pytest.approx(1.0)  # C for the first second
    assert histograms[0][4] == pytest.approx(0.5) and histograms[0][7] == pytest.approx(0.5)


def test_unconditioned_has_no_controls():
    assert control_inputs(np.array([1, 2, 300]), 100, 100, None, 3.0, None).shape == (3, 0)
