"""The compatibility test: Magenta's own bundles load and give Magenta's probabilities.

The reference files were made by the released magenta==2.1.4 package. This test
must stay green forever: it is what lets a Magenta user bring their `.mag` files.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import MAGENTA_IDS, magenta_bundle_path, magenta_reference_path

from perfrnn.bundle import read_bundle
from perfrnn.configs import get_config
from perfrnn.performance_encoding import PerformanceEncoding


@pytest.mark.parametrize("generator_id", MAGENTA_IDS)
def test_magenta_bundle_probabilities_match_magenta_softmax(generator_id):
    bundle = read_bundle(magenta_bundle_path(generator_id))
    reference = np.load(magenta_reference_path(generator_id))

    probabilities = bundle.model.probabilities(reference["inputs"])

    assert probabilities.shape == reference["softmax"].shape == (300, 388)
    assert np.abs(probabilities - reference["softmax"]).max() < 1e-4


@pytest.mark.parametrize("generator_id", MAGENTA_IDS)
def test_magenta_bundle_shape_matches_its_variables(generator_id):
    bundle = read_bundle(magenta_bundle_path(generator_id))
    variables = json.loads(
        magenta_bundle_path(generator_id).with_name(f"{generator_id}_tiny_variables.json")
        .read_text())
    shapes = dict(variables["checkpoint_variables"])

    assert bundle.config.id == generator_id
    assert bundle.config.rnn_layer_sizes == (64, 64)
    for name, weight in bundle.model.get_weights().items():
        assert list(weight.shape) == shapes[name], name


@pytest.mark.parametrize("generator_id", MAGENTA_IDS)
def test_encoder_builds_magentas_inputs_from_events(generator_id):
    """Our encoding of the reference events equals the inputs Magenta built.

    For the conditioned model only rows whose control windows (3 s density,
    5 s pitch histogram) end before the excerpt does are comparable: Magenta
    computed the controls on the full performance the 300 events were cut from.
    """
    reference = np.load(magenta_reference_path(generator_id))
    encoding = PerformanceEncoding(get_config(generator_id))
    performance = encoding.performance_from_events(reference["events"])

    assert list(encoding.events_from_performance(performance)) == list(reference["events"])
    inputs = encoding.inputs_from_events(reference["events"], encoding.control_values(performance))
    assert inputs.shape == reference["inputs"].shape
    assert encoding.input_size == reference["inputs"].shape[1]

    comparable = len(inputs)
    if encoding.control_signals:
        steps = np.cumsum(encoding.time_shift_steps()[reference["events"]])
        window_end = steps + 5 * encoding.config.steps_per_second
        comparable = int(np.searchsorted(window_end, steps[-1], side="right"))
        assert comparable > 150
    np.testing.assert_allclose(inputs[:comparable], reference["inputs"][:comparable], atol=1e-6)
