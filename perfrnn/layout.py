"""The Performance RNN's layout, as Magenta lays it out: numpy only, no TensorFlow.

The TensorFlow model (`perfrnn.model`), the numpy control extraction
(`perfrnn.fast_controls`) and both trainers (`training/train.py` and the
PyTorch `training/gpu_train.py`, which runs where TensorFlow is not installed)
read these rules from here:

- event indices (Magenta's Performance one-hot): 0-127 note-on, 128-255
  note-off, then the time shifts of 1.. steps, then the velocities;
- a model input row is the controls first, then the one-hot of the event
  (Magenta's `ConditionalEventSequenceEncoderDecoder`), and row t holds the
  controls of event t+1 (the last row its own);
- each LSTM layer is TF1's `BasicLSTMCell`: `gates = [x, h] @ kernel + bias`,
  split in the order i, j, f, o, with 1.0 added to the forget gate;
- checkpoint names are `rnn/multi_rnn_cell/cell_N/basic_lstm_cell/{kernel,bias}`
  and `fully_connected/{weights,biases}`;
- training windows are `sequence_length + 1` events (inputs, then the labels
  one event on), drawn at random; validation takes consecutive windows of
  each piece, at most `MAX_VALIDATION_WINDOWS` in all.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

import numpy as np

NOTES_PER_OCTAVE = 12
NOTE_OFF_BASE = 128
"""Index of the first note-off event (note-ons are 0-127, one per MIDI pitch)."""
SHIFT_BASE = 256
"""Index of the first time shift (1 step); shift k steps is SHIFT_BASE + k - 1."""

GATE_ORDER = ("i", "j", "f", "o")
"""Magenta's gates along the 4 * units axis: input, new input, forget, output."""
FORGET_BIAS = 1.0
"""Added to the forget gate's pre-activation by the cell itself (not stored)."""

OUTPUT_WEIGHTS = "fully_connected/weights"
OUTPUT_BIASES = "fully_connected/biases"
MAX_VALIDATION_WINDOWS = 256
"""Validation windows a training run scores, over all its corpora."""


def lstm_kernel_name(layer: int) -> str:
    """Checkpoint name of LSTM layer `layer`'s kernel ([input + units, 4 * units])."""
    return f"rnn/multi_rnn_cell/cell_{layer}/basic_lstm_cell/kernel"


def lstm_bias_name(layer: int) -> str:
    """Checkpoint name of LSTM layer `layer`'s bias ([4 * units], forget bias not included)."""
    return f"rnn/multi_rnn_cell/cell_{layer}/basic_lstm_cell/bias"


def lstm_layer_count(names: Collection[str]) -> int:
    """How many LSTM layers the checkpoint names hold (layers 0, 1, ... in a row)."""
    layers = 0
    while lstm_bias_name(layers) in names:
        layers += 1
    return layers


def gate_slice(gate: str, units: int, order: Sequence[str] = GATE_ORDER) -> slice:
    """Where `gate` lies along a [4 * units] gate axis laid out in `order`."""
    index = order.index(gate)
    return slice(index * units, (index + 1) * units)


def gate_permutation(units: int, source: Sequence[str], target: Sequence[str]) -> np.ndarray:
    """Indices that take a [4 * units] gate axis from the `source` order to the
    `target` order (int64 [4 * units])."""
    return np.concatenate([np.arange(4 * units)[gate_slice(gate, units, source)]
                           for gate in target])


def event_rows(control_size: int, num_classes: int) -> slice:
    """The rows of layer 0's kernel (columns of an input row) that the event
    one-hot takes: they follow the `control_size` control columns."""
    return slice(control_size, control_size + num_classes)


def join_inputs(controls, one_hot, concatenate: Callable = np.concatenate):
    """Input rows [..., control_size + num_classes]: the controls, then the event
    one-hot. `concatenate` joins along the last axis (`torch.cat` for tensors)."""
    return concatenate([controls, one_hot], -1)


def controls_of_next_events(controls: np.ndarray) -> np.ndarray:
    """Input-row controls from per-event controls [n, width]: row t holds those
    of event t+1, and the last row keeps its own (same dtype, [n, width])."""
    return np.concatenate([controls[1:], controls[-1:]])


def random_window_start(rng: np.random.Generator, events: int, sequence_length: int) -> int:
    """A training window's first event, uniform over the starts whose window of
    `sequence_length + 1` events fits in a piece of `events` events (0 when none does)."""
    return int(rng.integers(max(events - sequence_length - 1, 0) + 1))


def validation_window_starts(events: int, sequence_length: int) -> range:
    """The first events of a piece's consecutive validation windows (none for a
    piece of fewer than two events)."""
    return range(0, max(events - 1, 0), sequence_length)


def validation_share(corpora: int) -> int:
    """Validation windows each corpus (style) may give, so that every one counts
    alike within `MAX_VALIDATION_WINDOWS` (at least one each)."""
    return max(MAX_VALIDATION_WINDOWS // max(corpora, 1), 1)
