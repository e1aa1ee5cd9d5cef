"""The Performance RNN network: a stack of LSTMs and a softmax layer.

Magenta's exact math and variable layout (`perfrnn.layout`), so a Magenta
checkpoint's weights drop straight in:

- each layer is TF1's `BasicLSTMCell`: `gates = [x, h] @ kernel + bias`, split
  in the order i, j, f, o; `c' = c * sigmoid(f + 1.0) + sigmoid(i) * tanh(j)`,
  `h' = tanh(c') * sigmoid(o)`;
- the output layer is `logits = h_top @ weights + biases`;
- checkpoint names are `rnn/multi_rnn_cell/cell_N/basic_lstm_cell/{kernel,bias}`
  and `fully_connected/{weights,biases}`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow as tf

from perfrnn.errors import PerfRNNError
from perfrnn.layout import (
    FORGET_BIAS,
    GATE_ORDER,
    OUTPUT_BIASES,
    OUTPUT_WEIGHTS,
    event_rows,
    lstm_bias_name,
    lstm_kernel_name,
    lstm_layer_count,
)

LSTMState = tuple[tuple[tf.Tensor, tf.Tensor], ...]  # ((c, h) per layer)


def lstm_cell(
    x: tf.Tensor, c: tf.Tensor, h: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """One step of Magenta's BasicLSTMCell; returns the new (c, h)."""
    return lstm_update(tf.matmul(tf.concat([x, h], axis=1), kernel), c, bias)


def lstm_update(
    gates: tf.Tensor, c: tf.Tensor, addend: tf.Tensor | None = None
) -> tuple[tf.Tensor, tf.Tensor]:
    """The cell update from gate pre-activations [batch, 4*units] (i, j, f, o).

    `addend` (the bias, and in the sampler the gathered input row) is added
    after the split: the same sums, but XLA then keeps the matmul on its fast
    matrix-vector path instead of fusing the addition into it, which made a
    batch-1 sampling step half again slower.
    """
    i, j, f, o = tf.split(gates, len(GATE_ORDER), axis=1)
    if addend is not None:
        add_i, add_j, add_f, add_o = tf.split(addend, len(GATE_ORDER), axis=-1)
        i, j, f, o = i + add_i, j + add_j, f + add_f, o + add_o
    new_c = c * tf.sigmoid(f + FORGET_BIAS) + tf.sigmoid(i) * tf.tanh(j)
    new_h = tf.tanh(new_c) * tf.sigmoid(o)
    return new_c, new_h


class PerformanceRNN(tf.Module):
    """Stacked LSTM over event inputs, giving logits over the next event.

    Args:
      input_size: Width of one input row (controls + event one-hot).
      num_classes: Number of events (388 for performance_with_dynamics).
      layer_sizes: Units per LSTM layer, bottom first (Magenta: 512, 512, 512).
      seed: Seed for the initial weights (Glorot uniform, zero biases, as TF1's
        `get_variable` default that Magenta used).
    """

    def __init__(
        self,
        input_size: int,
        num_classes: int,
        layer_sizes: Sequence[int],
        seed: int = 0,
        name: str | None = None,
    ):
        super().__init__(name=name)
        self.input_size = int(input_size)
        self.num_classes = int(num_classes)
        self.layer_sizes = tuple(int(size) for size in layer_sizes)
        if not self.layer_sizes or min(self.layer_sizes) <= 0:
            raise PerfRNNError(f"layer sizes must be positive, got {layer_sizes!r}")
        init = tf.keras.initializers.GlorotUniform(seed=seed)
        self.kernels: list[tf.Variable] = []
        self.biases: list[tf.Variable] = []
        below = self.input_size
        for layer, units in enumerate(self.layer_sizes):
            self.kernels.append(tf.Variable(
                init((below + units, 4 * units)), name=f"kernel_{layer}"))
            self.biases.append(tf.Variable(tf.zeros(4 * units), name=f"bias_{layer}"))
            below = units
        self.output_weights = tf.Variable(
            init((below, self.num_classes)), name="output_weights")
        self.output_biases = tf.Variable(tf.zeros(self.num_classes), name="output_biases")

    # ----- weights by Magenta name ------------------------------------------

    def variables_by_name(self) -> dict[str, tf.Variable]:
        """This model's variables keyed by their Magenta checkpoint names."""
        named = {}
        for layer, (kernel, bias) in enumerate(zip(self.kernels, self.biases)):
            named[lstm_kernel_name(layer)] = kernel
            named[lstm_bias_name(layer)] = bias
        named[OUTPUT_WEIGHTS] = self.output_weights
        named[OUTPUT_BIASES] = self.output_biases
        return named

    def get_weights(self) -> dict[str, np.ndarray]:
        return {name: var.numpy() for name, var in self.variables_by_name().items()}

    def set_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        """Assigns weights keyed by Magenta names; extra names are ignored.

        Raises:
          PerfRNNError: a weight is missing or has the wrong shape.
        """
        for name, var in self.variables_by_name().items():
            if name not in weights:
                raise PerfRNNError(f"checkpoint has no variable {name!r}")
            value = np.asarray(weights[name], dtype=np.float32)
            if tuple(value.shape) != tuple(var.shape):
                raise PerfRNNError(
                    f"variable {name!r} has shape {tuple(value.shape)} in the checkpoint "
                    f"but the model expects {tuple(var.shape)}")
            var.assign(value)

    @classmethod
    def from_weights(cls, weights: Mapping[str, np.ndarray]) -> PerformanceRNN:
        """Builds a model whose shape is read off Magenta-named weights."""
        layer_sizes = [np.shape(weights[lstm_bias_name(layer)])[0] // len(GATE_ORDER)
                       for layer in range(lstm_layer_count(weights))]
        if not layer_sizes or OUTPUT_WEIGHTS not in weights:
            raise PerfRNNError(
                "checkpoint does not hold a Performance RNN (no "
                f"{lstm_bias_name(0)!r} or {OUTPUT_WEIGHTS!r} variable)")
        input_size = np.shape(weights[lstm_kernel_name(0)])[0] - layer_sizes[0]
        num_classes = np.shape(weights[OUTPUT_WEIGHTS])[1]
        model = cls(input_size, num_classes, layer_sizes)
        model.set_weights(weights)
        return model

    # ----- computation -------------------------------------------------------

    def zero_state(self, batch_size: int) -> LSTMState:
        return tuple(
            (tf.zeros((batch_size, units)), tf.zeros((batch_size, units)))
            for units in self.layer_sizes)

    def step(self, x: tf.Tensor, state: LSTMState) -> tuple[tf.Tensor, LSTMState]:
        """One time step: input rows [batch, input_size] to logits [batch, classes]."""
        new_state = []
        for (c, h), kernel, bias in zip(state, self.kernels, self.biases):
            c, h = lstm_cell(x, c, h, kernel, bias)
            new_state.append((c, h))
            x = h
        logits = tf.matmul(x, self.output_weights) + self.output_biases
        return logits, tuple(new_state)

    def sequence_logits(
        self, inputs: tf.Tensor, state: LSTMState | None = None
    ) -> tuple[tf.Tensor, LSTMState]:
        """Runs the network over inputs [batch, time, input_size].

        Returns logits [batch, time, num_classes] (row t scores event t+1) and
        the final state.

        The layers run one after another over the whole sequence, as cuDNN
        does: each layer's input projection (and the output layer) is one big
        matrix product over every time step, and only `h @ recurrent kernel`
        stays in the loop over time. The sums are Magenta's; training runs
        about a quarter faster than stepping the whole stack per event.
        """
        inputs = tf.convert_to_tensor(inputs, dtype=tf.float32)
        in_size = self.input_size
        gates = tf.matmul(tf.reshape(inputs, [-1, in_size]), self.kernels[0][:in_size])
        return self._logits_from_gates(gates + self.biases[0], tf.shape(inputs)[0],
                                       inputs.shape[1], state)

    def event_logits(
        self, controls: tf.Tensor, events: tf.Tensor, state: LSTMState | None = None
    ) -> tuple[tf.Tensor, LSTMState]:
        """`sequence_logits` of inputs given as their parts: controls
        [batch, time, control_size] (width 0 without controls) and event
        indices [batch, time], the rows' one-hot part.

        The same sums, but the one-hot product is a row gather of the kernel:
        on a 2-core CPU a 2x256 band step (32 x 256 events) trains about a
        third faster.
        """
        controls = tf.convert_to_tensor(controls, dtype=tf.float32)
        events = tf.convert_to_tensor(events, dtype=tf.int32)
        width = controls.shape[-1]
        kernel = self.kernels[0]
        gates = tf.gather(kernel[event_rows(width, self.num_classes)], tf.reshape(events, [-1]))
        if width:
            gates += tf.matmul(tf.reshape(controls, [-1, width]), kernel[:width])
        return self._logits_from_gates(gates + self.biases[0], tf.shape(events)[0],
                                       events.shape[1], state)

    def _logits_from_gates(self, gates0: tf.Tensor, batch, length,
                           state: LSTMState | None) -> tuple[tf.Tensor, LSTMState]:
        """The network from layer 0's input gates [batch * time, 4 * units0]
        (bias included) on; `length` is the static time length when known."""
        if state is None:
            state = self.zero_state(batch)
        # A static length when known: XLA needs the loop's bound to compile its gradient.
        if length is None:
            length = tf.shape(gates0)[0] // batch
        x = None
        final_state = []
        for layer, ((c, h), kernel, bias, units) in enumerate(
                zip(state, self.kernels, self.biases, self.layer_sizes)):
            in_size = kernel.shape[0] - units
            if layer == 0:
                input_gates = gates0
            else:
                input_gates = tf.matmul(tf.reshape(x, [-1, in_size]), kernel[:in_size]) + bias
            input_gates = tf.transpose(tf.reshape(input_gates, [batch, -1, 4 * units]),
                                       [1, 0, 2])
            # TensorArrays, not slicing: the gradient of x[t] inside a loop is a full-size
            # tensor per step.
            gates_ta = tf.TensorArray(tf.float32, size=length).unstack(input_gates)
            outputs_ta = tf.TensorArray(tf.float32, size=length)
            recurrent_kernel = kernel[in_size:]

            def body(t, c, h, outputs_ta, gates_ta=gates_ta, recurrent_kernel=recurrent_kernel):
                c, h = lstm_update(tf.matmul(h, recurrent_kernel), c, gates_ta.read(t))
                return t + 1, c, h, outputs_ta.write(t, h)

            _, c, h, outputs_ta = tf.while_loop(
                lambda t, *_: t < length, body, (tf.constant(0), c, h, outputs_ta),
                maximum_iterations=length)
            final_state.append((c, h))
            x = tf.transpose(outputs_ta.stack(), [1, 0, 2])
        logits = tf.matmul(tf.reshape(x, [-1, self.layer_sizes[-1]]), self.output_weights)
        logits = tf.reshape(logits + self.output_biases, [batch, -1, self.num_classes])
        return logits, tuple(final_state)

    def probabilities(self, inputs: np.ndarray, temperature: float = 1.0) -> np.ndarray:
        """Softmax over the next event for each input row (numpy in, numpy out)."""
        batched = np.asarray(inputs, dtype=np.float32)
        squeeze = batched.ndim == 2
        if squeeze:
            batched = batched[None]
        logits, _ = _compiled_sequence_logits(self, tf.constant(batched))
        probs = tf.nn.softmax(logits / temperature).numpy()
        return probs[0] if squeeze else probs


@tf.function(reduce_retracing=True)
def _compiled_sequence_logits(model: PerformanceRNN, inputs: tf.Tensor):
    return model.sequence_logits(inputs)
