"""Note lengths in encoding steps: what export records and the sampler draws from."""

from __future__ import annotations

import numpy as np

from perfrnn.configs import get_config
from perfrnn.encodings import encoding_for
from perfrnn.note_lengths import (
    QUANTILES,
    UNLIMITED_STEPS,
    length_quantiles,
    length_table,
    note_lengths,
)


def test_note_lengths_are_read_per_role_in_steps():
    encoding = encoding_for(get_config("metric_band"))
    on_keys, off_keys, _ = encoding.note_keys()
    shifts = encoding.time_shift_steps()
    events = [encoding.note_on(1, 40), encoding.time_shift(6), encoding.note_on(3, 72),
              encoding.time_shift(12), encoding.note_off(1, 40), encoding.note_on(1, 40),
              encoding.time_shift(3), encoding.note_on(1, 40), encoding.note_off(3, 72),
              encoding.note_on(2, 60)]  # struck again while sounding; 60 never ends
    lengths = note_lengths(events, on_keys, off_keys, shifts, 128)
    assert lengths == [[], [18, 3], [], [15]]


def test_quantiles_and_the_samplers_table():
    quantiles = length_quantiles(np.arange(1, 101))
    assert len(quantiles) == QUANTILES and quantiles[0] == 1 and quantiles[-1] == 100
    assert quantiles[16] == 50.5  # the median
    assert length_quantiles([]) == []
    table = length_table([quantiles, [], []], [80.0, 0.0, 30.0], roles=4)
    assert table.shape == (4, QUANTILES)
    assert table[0, 0] == 1 and table[0, -1] == 80  # capped at the longest length
    assert (table[1] == UNLIMITED_STEPS).all()  # nothing known
    assert (table[2] == 30).all() and (table[3] == UNLIMITED_STEPS).all()



def test_a_bundle_with_a_broken_length_table_is_refused(piano_bundle):
    import dataclasses

    import pytest

    from perfrnn.errors import PerfRNNError
    from perfrnn.registry import check_metadata

    def with_lengths(rows):
        return dataclasses.replace(piano_bundle, metadata=dataclasses.replace(
            piano_bundle.metadata, note_length_steps=rows))

    assert check_metadata(with_lengths([[float(i) for i in range(QUANTILES)]]))
    assert check_metadata(with_lengths([[]]))
    for rows in ([[1.0, 2.0]], [["long"] * QUANTILES], ["ten"]):
        with pytest.raises(PerfRNNError, match="note_length_steps"):
            check_metadata(with_lengths(rows))
