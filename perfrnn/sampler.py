"""The sampler: generates performances with one compiled autoregressive loop.

The loop over events is a `tf.while_loop` inside a `tf.function(jit_compile=True)`,
so XLA compiles the LSTM step, the sampling and the stop test into one program
and no Python runs per event. The host calls that program once per block of
`block_events` events (the loop inside stops as soon as every variation has
reached the requested musical time), which is what lets a caller see progress
and cancel; a 30-second piece is one to three calls.

Sampling is by inverse CDF with one counter-based (stateless) random number
per variation and event, drawn for the whole block before the loop and keyed
by (seed, index of the block's first event); so the same seed and options give
the same events and hence identical MIDI bytes. (Gumbel-max sampling needs 388
random numbers per event and cost a quarter of the step time.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
from note_seq.protobuf import music_pb2

from perfrnn.bundle import Bundle
from perfrnn.errors import PerfRNNError
from perfrnn.model import lstm_cell, lstm_update
from perfrnn.multitrack import assign_roles
from perfrnn.options import GenerationOptions, ProgressCallback, pitch_histogram_for_key

PAD_EVENT = -1
# A model that stops moving time forward is cut off after this many events per
# second of music asked for (dense piano runs about 100); the rest is silence.
MAX_EVENTS_PER_SECOND = 400


@dataclass
class Generation:
    """The result of one request: one NoteSequence per variation."""

    sequences: list[music_pb2.NoteSequence]
    seed: int
    events: list[np.ndarray]  # event indices per variation, primer included


class Sampler:
    """Generates music from one bundle; build once, call `generate` many times.

    Args:
      bundle: The loaded style.
      block_events: Events per compiled call (bounds how often progress is
        reported; the compiled loop itself runs all of them).
      note_grammar: Sample a note-off only for a note that is sounding. A
        model that loses track of its open notes otherwise spends note-offs
        on silent pitches (they are dropped) and leaves the sounding ones
        hanging; renormalising over the events that make sense keeps its
        choices among them. False samples the raw model, as Magenta does.
    """

    def __init__(self, bundle: Bundle, block_events: int = 2048, note_grammar: bool = True):
        self.bundle = bundle
        self.note_grammar = bool(note_grammar)
        self.encoding = bundle.encoding
        self.block_events = int(block_events)
        model = bundle.model
        control_size = self.encoding.control_size
        kernel0 = model.kernels[0]
        # Split layer 0's kernel so the one-hot event input becomes a row gather.
        self._control_kernel = kernel0[:control_size]
        self._event_kernel = kernel0[control_size:model.input_size]
        self._recurrent_kernel0 = kernel0[model.input_size:]
        self._time_shift_table = self.encoding.time_shift_steps()
        self._time_shift_steps = tf.constant(self._time_shift_table)
        on_keys, off_keys, self._num_keys = self.encoding.note_keys()
        self._on_keys_table, self._off_keys_table = on_keys, off_keys
        # Shifted by one so that index 0 means "not a note event".
        self._on_keys = tf.constant(on_keys + 1)
        self._off_keys = tf.constant(off_keys + 1)
        self._sample_block = tf.function(self._sample_block_graph, jit_compile=True)
        self._run_primer = tf.function(self._run_primer_graph, reduce_retracing=True)

    # ----- public -------------------------------------------------------------

    def generate(
        self,
        options: GenerationOptions,
        primer: music_pb2.NoteSequence | None = None,
        progress: ProgressCallback | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> Generation:
        """Generates `options.variations` pieces continuing `primer` (if any).

        The output starts with the primer's notes and adds `options.seconds`
        seconds of new music after the primer's end.

        Raises:
          PerfRNNError: an option is invalid, or `cancelled()` became true.
        """
        options.validate()
        seed = options.resolved_seed()
        encoding = self.encoding
        steps_per_second = encoding.config.steps_per_second
        if (options.notes_per_second is not None or options.pitch_histogram is not None) \
                and not encoding.control_signals:
            raise PerfRNNError(
                f"style {self.bundle.metadata.style!r} is not conditioned: it takes no "
                "note density or key; leave them out")
        notes_per_second, pitch_histogram = self._controls(options)
        controls = encoding.encode_controls(notes_per_second, pitch_histogram)

        primer_events, primer_seconds = self._primer_events(primer)
        batch = options.variations
        control_gates = (tf.matmul(controls[None], self._control_kernel)
                         + self.bundle.model.biases[0])
        state = self._primer_state(primer_events[:-1], controls, batch)
        last_event = tf.fill([batch], int(primer_events[-1]))
        sounding = tf.tile(tf.constant(self._sounding_after(primer_events))[None], [batch, 1])
        elapsed = tf.zeros([batch], tf.int32)
        target_steps = int(round(options.seconds * steps_per_second))
        max_events = int(MAX_EVENTS_PER_SECOND * options.seconds) + self.block_events
        blocks = []
        done_events = 0
        while done_events < max_events:
            if cancelled is not None and cancelled():
                raise PerfRNNError("generation was cancelled")
            events, count, state, last_event, elapsed, sounding = self._sample_block(
                state, last_event, elapsed, sounding, tf.constant(target_steps), control_gates,
                tf.constant(options.temperature, tf.float32),
                tf.constant(seed, tf.int64), tf.constant(done_events, tf.int64))
            count = int(count)
            blocks.append(events.numpy()[:count])
            done_events += count
            reached = int(tf.reduce_min(elapsed))
            if progress is not None:
                progress(min(1.0, reached / target_steps))
            if reached >= target_steps:
                break

        generated = np.concatenate(blocks, axis=0).T  # [batch, events]
        total_seconds = primer_seconds + target_steps / steps_per_second
        roles = self.bundle.metadata.tracks
        all_events, sequences = [], []
        for row in generated:
            events = np.concatenate([primer_events, row[row != PAD_EVENT]])
            all_events.append(events)
            sequence = encoding.sequence_from_events(events, total_seconds)
            limits = self.bundle.metadata.max_note_seconds
            for note in sequence.notes:
                if note.instrument < len(roles):  # a drum style's notes are drum hits
                    note.is_drum = roles[note.instrument].is_drum
                if note.instrument < len(limits) and limits[note.instrument] > 0:
                    note.end_time = min(note.end_time,
                                        note.start_time + limits[note.instrument])
            sequences.append(sequence)
        return Generation(sequences=sequences, seed=seed, events=all_events)

    def _controls(self, options: GenerationOptions):
        """The request's note density and key, else the style's typical ones."""
        defaults = self.bundle.metadata.default_controls or {}
        notes_per_second = options.notes_per_second
        if notes_per_second is None and self.encoding.config.has_density_control:
            notes_per_second = defaults.get("notes_per_second")
        pitch_histogram = options.pitch_histogram
        if (pitch_histogram is None and self.encoding.config.has_pitch_histogram_control
                and defaults.get("key")):
            pitch_histogram = pitch_histogram_for_key(defaults["key"])
        return notes_per_second, pitch_histogram

    # ----- primer ---------------------------------------------------------------

    def _primer_events(self, primer: music_pb2.NoteSequence | None) -> tuple[np.ndarray, float]:
        """Event indices of the primer (at least one) and its length in seconds.

        A multi-track style's primer has its parts mapped onto the style's roles.
        """
        encoding = self.encoding
        rate = encoding.config.steps_per_second
        seconds = primer.total_time if primer is not None else 0.0
        steps = int(round(seconds * rate))
        if primer is None or not primer.notes:
            events = [encoding.start_event(), *encoding.time_shift_events(steps)]
            return np.array(events, np.int32), steps / rate
        if encoding.config.is_multitrack:
            primer, _ = assign_roles(primer, encoding.tracks)
            if not primer.notes:
                raise PerfRNNError("the primer has no part this style plays")
        events = encoding.events_from_sequence(primer, total_steps=steps)
        return events, int(self._time_shift_table[events].sum()) / rate

    def _sounding_after(self, events: np.ndarray) -> np.ndarray:
        """Which notes (role * 128 + pitch) sound after `events`, as 0/1 floats."""
        sounding = np.zeros(self._num_keys, np.float32)
        for event in np.asarray(events, np.int64):
            if self._on_keys_table[event] >= 0:
                sounding[self._on_keys_table[event]] = 1.0
            elif self._off_keys_table[event] >= 0:
                sounding[self._off_keys_table[event]] = 0.0
        return sounding

    def _primer_state(self, events: np.ndarray, controls: np.ndarray, batch: int):
        model = self.bundle.model
        state = model.zero_state(1)
        if len(events):
            inputs = np.zeros((1, len(events), model.input_size), np.float32)
            inputs[0, :, :len(controls)] = controls
            inputs[0, np.arange(len(events)), len(controls) + events] = 1.0
            state = self._run_primer(tf.constant(inputs))
        return tuple((tf.tile(c, [batch, 1]), tf.tile(h, [batch, 1])) for c, h in state)

    def _run_primer_graph(self, inputs):
        return self.bundle.model.sequence_logits(inputs)[1]

    # ----- the compiled loop ------------------------------------------------------

    def _sample_block_graph(self, state, last_event, elapsed, sounding, target_steps,
                            control_gates,
                            temperature, seed, first_index):
        """Samples up to block_events events for every variation.

        Args:
          state: LSTM state ((c, h) per layer), each [batch, units].
          last_event: [batch] int32, the event to feed first.
          elapsed: [batch] int32, steps generated so far.
          sounding: [batch, keys] float32, 1 for each note sounding now.
          target_steps: int32 scalar, steps wanted.
          control_gates: [1, 4*units0], controls @ kernel + bias of layer 0.
          temperature: float32 scalar.
          seed: int64 scalar, the user's seed.
          first_index: int64 scalar, index of this block's first event.

        Returns:
          events [block_events, batch] (PAD_EVENT once a variation is done),
          the number of loop iterations run, and the new state, last events,
          elapsed steps and sounding notes.
        """
        model = self.bundle.model
        batch = last_event.shape[0]
        kernels = [tf.convert_to_tensor(k) for k in model.kernels[1:]]
        biases = [tf.convert_to_tensor(b) for b in model.biases[1:]]
        output_weights = tf.convert_to_tensor(model.output_weights)
        output_biases = tf.convert_to_tensor(model.output_biases)
        event_kernel = tf.convert_to_tensor(self._event_kernel)
        recurrent_kernel0 = tf.convert_to_tensor(self._recurrent_kernel0)
        num_classes = model.num_classes
        uniforms = block_uniforms(seed, first_index, self.block_events, batch)

        grammar = self.note_grammar
        no_key = tf.ones([batch, 1])

        def step(i, state, last_event, elapsed, sounding, events):
            (c, h), upper = state[0], state[1:]
            input_gates = tf.gather(event_kernel, last_event) + control_gates
            c, h = lstm_update(tf.matmul(h, recurrent_kernel0), c, input_gates)
            new_state = [(c, h)]
            x = h
            for (c, h), kernel, bias in zip(upper, kernels, biases):
                c, h = lstm_cell(x, c, h, kernel, bias)
                new_state.append((c, h))
                x = h
            logits = tf.matmul(x, output_weights) + output_biases
            if grammar:  # a note-off only for a sounding note
                allowed = tf.gather(tf.concat([no_key, sounding], axis=1), self._off_keys, axis=1)
                logits = tf.where(allowed > 0, logits, -1e9)
            # Inverse-CDF sampling: one uniform number per variation and event.
            probabilities = tf.nn.softmax(logits / temperature)
            cdf = tf.cumsum(probabilities, axis=1)
            threshold = uniforms[i][:, None] * cdf[:, -1:]
            sample = tf.reduce_sum(tf.cast(cdf < threshold, tf.int32), axis=1)
            sample = tf.minimum(sample, num_classes - 1)
            active = elapsed < target_steps
            elapsed += tf.where(active, tf.gather(self._time_shift_steps, sample), 0)
            events = tf.tensor_scatter_nd_update(
                events, [[i]], tf.where(active, sample, PAD_EVENT)[None])
            last_event = tf.where(active, sample, last_event)
            started = tf.one_hot(tf.gather(self._on_keys, sample), self._num_keys + 1)[:, 1:]
            ended = tf.one_hot(tf.gather(self._off_keys, sample), self._num_keys + 1)[:, 1:]
            updated = tf.maximum(sounding * (1.0 - ended), started)
            sounding = tf.where(active[:, None], updated, sounding)
            return i + 1, tuple(new_state), last_event, elapsed, sounding, events

        def keep_going(i, state, last_event, elapsed, sounding, events):
            return tf.logical_and(i < self.block_events,
                                  tf.reduce_any(elapsed < target_steps))

        events = tf.fill([self.block_events, batch], PAD_EVENT)
        count, state, last_event, elapsed, sounding, events = tf.while_loop(
            keep_going, step, (tf.constant(0), state, last_event, elapsed, sounding, events))
        return events, count, state, last_event, elapsed, sounding


def block_uniforms(seed: tf.Tensor, first_index: tf.Tensor, events: int, batch: int) -> tf.Tensor:
    """The uniform numbers (0, 1) that pick events [first_index, first_index + events).

    Shape [events, batch]. Counter-based, so they depend only on the arguments.
    (XLA's Philox differs from TensorFlow's kernel: call this compiled to get
    the numbers the sampler used.)
    """
    return tf.random.stateless_uniform(
        [events, batch], seed=tf.stack([seed, first_index]),
        minval=np.finfo(np.float32).tiny, maxval=1.0, alg="philox")
