"""The compiled sampling loop and its tables.

The loop over events is a `tf.while_loop` inside a `tf.function(jit_compile=True)`,
so XLA compiles the LSTM step, the sampling and the stop test into one program
and no Python runs per event. The host calls that program once per block of
`block_events` events (the loop inside stops as soon as every row has reached
the musical time it asked for), which is what lets a caller see progress and
cancel; a 30-second piece is one to three calls.

Sampling is by inverse CDF with one counter-based random number per row and
event, drawn on the host for the whole block from the row's own stream,
keyed by (seed, stream) and counted by the event's index (`block_uniforms`);
so the same seed and options give the same events, whatever else shares the
batch. (Gumbel-max sampling needs 388 random numbers per event and cost a
quarter of the step time.) A second stream per row draws the length of the
note an event starts, if it starts one (see `perfrnn.note_lengths`).

A batch runs at one of BATCH_SIZES rows, padded up. One row is a
matrix-vector product, which XLA's CPU backend runs on its fast path (a
lone request is the common case); several rows are a matrix product, whose
rounding in the last bit differs from the matrix-vector path's. Each row's
random numbers are its own, and a sampled event moves only when its random
number falls within a rounding error of a boundary of the cumulative
distribution, so a request's music is, in practice, the same batched or alone
(`tests/test_sampler.py` checks it, and `benchmarks/batch_invariance.py`
counts the pieces that differ).

What the loop reads besides the event comes from the encoding
(`perfrnn.encoding`): the planned inputs as layer 0's gate table (one row per
step of the position cycle, `position_gates`, plus one per request,
`row_gates`), and the history inputs, moved on by each event inside the loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from perfrnn.bundle import Bundle
from perfrnn.encoding import InputPlan, history_size
from perfrnn.errors import PerfRNNError
from perfrnn.metre import Metre, position_cycle
from perfrnn.model import lstm_cell, lstm_update
from perfrnn.multitrack import PITCHES
from perfrnn.note_lengths import QUANTILES, length_table
from perfrnn.plan_guide import GUIDE_COLUMNS, PlanGuide

PAD_EVENT = -1
# The batch sizes the compiled loop runs at (rows, padded up to one of them).
BATCH_SIZES = (1, 2, 4, 8, 16, 32)
MAX_BATCH_ROWS = BATCH_SIZES[-1]
# Compiled when a style loads (about 15 MB of a server's memory each per
# style); a batch of 32 rows (4 variations at quality "best") compiles when
# first needed.
COMPILED_AHEAD = BATCH_SIZES[:-1]
# A row's two random streams: its events', and its note lengths'.
EVENT_STREAM, LENGTH_STREAM = 0, 1
NEVER = -1e9  # the logit of an event the grammar rules out
MAX_PLAN_BARS = 1024
"""The most bars a song plan has; a longer piece repeats its plan."""
GATE_ROWS = (32, 128, MAX_PLAN_BARS)
"""Distinct row-input rows a batch's table holds, padded up to one of these
(each size compiles its own loop; 32 holds a song of a few minutes)."""


@dataclass(frozen=True)
class RowGates:
    """Layer 0's gate input from a request's row inputs: each distinct row
    once ([rows, 4 * units0]), and which of them each bar of its song plan
    reads ([bars] int32; one bar without a plan)."""

    gates: np.ndarray
    bar_rows: np.ndarray


@dataclass
class Row:
    """One row of a batch: a variation (or candidate) of request `index`, and
    where its sampling stands."""

    index: int
    row: int  # its place among its request's rows
    stream: int  # its random streams' key (with the seed)
    seed: int
    target: int  # steps of music it makes
    max_events: int
    gates: np.ndarray  # [distinct rows, 4 * units0]: layer 0's input from its row inputs
    first_position: int  # the step of the position cycle where its new music starts
    temperature: float
    state: list[np.ndarray]  # c, h of each layer, each [units]
    last_event: int
    sounding: np.ndarray  # [keys]
    deadline: np.ndarray  # [keys]
    history: list[np.ndarray] = field(default_factory=list)  # each history input's state
    # Its song plan: which of `gates` each bar reads, the plan's steps before
    # its new music, and the steps of a bar (`RowGates`).
    bar_rows: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int32))
    guide_bars: np.ndarray = field(  # [bars, GUIDE_COLUMNS]: `perfrnn.plan_guide.guide_table`
        default_factory=lambda: np.zeros((1, GUIDE_COLUMNS), np.int32))
    plan_step: int = 0
    bar_steps: int = 1
    pending: int = 0
    quiet_since: int = 0  # the step at which its current silence began
    silence_cap: int = 0  # the longest its silences may last, in steps (0: any)
    elapsed: int = 0  # steps made
    count: int = 0  # events made
    events: list[np.ndarray] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        """It has its music, or it was cut: a model that stopped moving time."""
        return self.elapsed >= self.target or self.count >= self.max_events


class SamplingLoop:
    """The compiled loop of one style, and the tables it reads.

    Args:
      bundle: The loaded style.
      metre: The metre it plays in.
      block_events: Events per compiled call.
      note_grammar: Apply the note grammar (see `perfrnn.sampler.Sampler`).
      silence_capped: Cap silences at each row's `silence_cap` (the style has
        references to take the cap from).
      polyphony_cap: With the grammar, the most notes that may sound at once
        (0: any): a note-on waits until one ends.
    """

    def __init__(self, bundle: Bundle, metre: Metre, block_events: int, note_grammar: bool,
                 silence_capped: bool, polyphony_cap: int = 0):
        self.bundle, self.metre = bundle, metre
        self.encoding = encoding = bundle.encoding
        self.block_events = int(block_events)
        self.note_grammar = bool(note_grammar)
        self.silence_capped = bool(silence_capped)
        self.polyphony_cap = int(polyphony_cap)
        self.history = tuple(encoding.history_for(metre))
        # A song style, with the grammar: the sampler also leans on the plan
        # (`perfrnn.plan_guide`), keeping each step's notes in one more history input.
        self.guide = None
        if note_grammar and encoding.reads_song and encoding.follows_tempo:
            self.guide = PlanGuide(encoding.note_keys()[0], encoding.tracks,
                                   encoding.time_shift_steps(),
                                   position_cycle(metre, encoding.steps_per_quarter))
            self.history += (self.guide.record_input(),)
        model = bundle.model
        kernel0 = model.kernels[0]
        # Layer 0's kernel, split by the input layout: the one-hot event input
        # becomes a row gather, the planned inputs a gate table.
        steps, rows = encoding.step_input_size, encoding.row_input_size
        if steps + rows + history_size(self.history) != encoding.control_size:
            raise PerfRNNError(f"encoding {type(encoding).__name__}: its step, row and history "
                               f"inputs do not add up to its {encoding.control_size} columns")
        self._step_kernel = kernel0[:steps]
        self._row_kernel = kernel0[steps:steps + rows]
        self._history_kernel = kernel0[steps + rows:encoding.control_size]
        self._event_kernel = kernel0[encoding.control_size:model.input_size]
        self._recurrent_kernel0 = kernel0[model.input_size:]
        self.time_shift_table = encoding.time_shift_steps()
        self._time_shift_steps = tf.constant(self.time_shift_table)
        # The event of a time shift of each length (index 0: none).
        shift_events = np.zeros(self.time_shift_table.max() + 1, np.int32)
        shift_events[self.time_shift_table] = np.arange(len(self.time_shift_table))
        shift_events[0] = 0
        self._shift_events = tf.constant(shift_events)
        self.on_keys_table, self.off_keys_table, self.num_keys = encoding.note_keys()
        # Shifted by one so that index 0 means "not a note event".
        self._on_keys = tf.constant(self.on_keys_table + 1)
        self._off_keys = tf.constant(self.off_keys_table + 1)
        self._onset_roles = tf.constant(np.maximum(self.on_keys_table, 0) // PITCHES)
        self._silent_onsets = self._onsets_of_silent_parts()
        metadata = bundle.metadata
        native_rate = encoding.steps_per_second(metadata.default_bpm)
        lengths = length_table(metadata.note_length_steps,
                               [seconds * native_rate for seconds in metadata.max_note_seconds],
                               self.num_keys // PITCHES)
        self._length_table = tf.constant(lengths)
        # Per role, the longest a note may sound: steps, and seconds at the style's own tempo.
        self.longest_steps = lengths.max(axis=1).astype(np.int32)
        self.longest_seconds = lengths.max(axis=1) / native_rate
        self.position_gates = self._position_gates(InputPlan(metre=metre))
        self.cycle = int(self.position_gates.shape[0])
        allowed = encoding.onset_allowed(metre)
        self.onset_allowed = tf.constant(allowed)
        self._onsets_restricted = not bool(np.all(allowed))  # some steps take no note-on
        self.sample_block = tf.function(self._sample_block_graph, jit_compile=True)
        self._run_primer = tf.function(self._run_primer_graph, reduce_retracing=True)

    def _onsets_of_silent_parts(self) -> tf.Tensor | None:
        """Per event, whether it starts a note of a part the style leaves out
        (a drum style of a band base never starts the others); None: none."""
        playing = self.bundle.metadata.played_tracks
        roles = np.where(self.on_keys_table >= 0, self.on_keys_table // PITCHES, -1)
        silent = [role for role, track in enumerate(self.bundle.metadata.tracks)
                  if track not in playing]
        return tf.constant(np.isin(roles, silent) & (roles >= 0)) if silent else None

    def _position_gates(self, plan: InputPlan) -> tf.Tensor:
        """Layer 0's gate input from the step inputs, per step of the position
        cycle, bias included: [cycle, 4 * units]."""
        bias = self.bundle.model.biases[0]
        table = self.encoding.step_table(plan)
        if not table.shape[1]:  # no step inputs: the bias alone
            return tf.convert_to_tensor(bias)[None]
        return tf.matmul(table, self._step_kernel) + bias

    def row_gates(self, values: np.ndarray) -> RowGates:
        """Layer 0's gate input from one request's row inputs, one row per bar
        of its song plan ([bars, row_input_size]), kept once per distinct row."""
        values = np.asarray(values, np.float32).reshape(len(values), -1)
        if len(values) > MAX_PLAN_BARS:
            raise PerfRNNError(f"a song plan has at most {MAX_PLAN_BARS} bars")
        distinct, bar_rows = np.unique(values, axis=0, return_inverse=True)
        units = int(self.position_gates.shape[1])
        gates = np.zeros((len(distinct), units), np.float32)
        if distinct.shape[1]:
            gates = tf.matmul(distinct, self._row_kernel).numpy()
        return RowGates(gates, bar_rows.reshape(-1).astype(np.int32))

    # ----- the state a primer leaves -------------------------------------------------

    def initial_history(self) -> list[np.ndarray]:
        """Each history input's state at the start of a piece."""
        return [item.initial_state() for item in self.history]

    def lstm_state_after(self, inputs: np.ndarray) -> tuple:
        """The LSTM state after model input rows [time, input_size], as numpy
        arrays (c, h) per layer, each [1, units]."""
        model = self.bundle.model
        state = model.zero_state(1)
        if len(inputs):
            state = self._run_primer(tf.constant(inputs[None]))
        return tuple((c.numpy(), h.numpy()) for c, h in state)

    def _run_primer_graph(self, inputs):
        return self.bundle.model.sequence_logits(inputs)[1]

    def sounding_after(self, events: np.ndarray) -> np.ndarray:
        """Which notes (role * 128 + pitch) sound after `events`, as 0/1 floats."""
        sounding = np.zeros(self.num_keys, np.float32)
        for event in np.asarray(events, np.int64):
            if self.on_keys_table[event] >= 0:
                sounding[self.on_keys_table[event]] = 1.0
            elif self.off_keys_table[event] >= 0:
                sounding[self.off_keys_table[event]] = 0.0
        return sounding

    def closing_silence(self, events: np.ndarray) -> int:
        """Steps of silence at the end of `events` (0 when a note still sounds)."""
        if self.sounding_after(events).any():
            return 0
        notes = np.flatnonzero((self.on_keys_table[events] >= 0)
                               | (self.off_keys_table[events] >= 0))
        after = events[notes[-1] + 1:] if len(notes) else events
        return int(self.time_shift_table[after].sum())

    # ----- running rows ----------------------------------------------------------------

    def sample_rows(self, rows: list[Row]) -> None:
        """Samples one block of events for `rows`, padded to a BATCH_SIZES size,
        and moves each row on (its events, state, notes and history)."""
        batch = next(size for size in BATCH_SIZES if size >= len(rows))
        first = rows[0]
        idle = Row(index=-1, row=0, stream=0, seed=0, target=0, max_events=0,
                   gates=np.zeros_like(first.gates[:1]), first_position=0, temperature=1.0,
                   state=[np.zeros_like(part) for part in first.state], last_event=0,
                   sounding=np.zeros_like(first.sounding),
                   deadline=np.zeros_like(first.deadline), history=list(first.history))
        padded = rows + [idle] * (batch - len(rows))

        def column(name, dtype=None):
            return tf.constant(np.array([getattr(row, name) for row in padded], dtype))

        parts = [tf.constant(np.stack([row.state[k] for row in padded]))
                 for k in range(len(first.state))]
        state = tuple(zip(parts[0::2], parts[1::2]))
        notes = (column("sounding", np.float32), column("deadline", np.int32),
                 column("pending", np.int32), column("quiet_since", np.int32),
                 column("silence_cap", np.int32))
        history = tuple(tf.constant(np.stack([row.history[k] for row in padded]))
                        for k in range(len(self.history)))
        streams = [(row.seed, row.stream, row.count) for row in padded]
        distinct = next(size for size in GATE_ROWS if size >= max(len(r.gates) for r in padded))
        gates = np.zeros((batch, distinct, first.gates.shape[1]), np.float32)
        bar_rows = np.zeros((batch, MAX_PLAN_BARS), np.int32)
        guide_bars = np.zeros((batch, MAX_PLAN_BARS, GUIDE_COLUMNS), np.int32)
        for n, row in enumerate(padded):
            gates[n, :len(row.gates)] = row.gates
            bar_rows[n, :len(row.bar_rows)] = row.bar_rows
            guide_bars[n, :len(row.guide_bars)] = row.guide_bars
        song = (tf.constant(bar_rows), column("plan_step", np.int32),
                column("bar_steps", np.int32),
                tf.constant(np.array([len(row.bar_rows) for row in padded], np.int32)),
                tf.constant(guide_bars))
        events, count, state, last_event, elapsed, notes, history = self.sample_block(
            state, column("last_event", np.int32), column("elapsed", np.int32), notes, history,
            column("target", np.int32), self.position_gates, tf.constant(gates), song,
            self.onset_allowed, column("first_position", np.int32),
            column("temperature", np.float32),
            tf.constant(block_uniforms(streams, EVENT_STREAM, self.block_events)),
            tf.constant(block_uniforms(streams, LENGTH_STREAM, self.block_events)))
        events = events.numpy()[:int(count)]
        state = [part.numpy() for layer in state for part in layer]
        last_event, elapsed = last_event.numpy(), elapsed.numpy()
        sounding, deadline, pending, quiet_since, _ = (part.numpy() for part in notes)
        history = [part.numpy() for part in history]
        for n, row in enumerate(rows):
            made = events[:, n][events[:, n] != PAD_EVENT]
            row.events.append(made)
            row.count += len(made)
            row.state = [part[n] for part in state]
            row.last_event, row.elapsed = int(last_event[n]), int(elapsed[n])
            row.sounding, row.deadline, row.pending = sounding[n], deadline[n], int(pending[n])
            row.quiet_since = int(quiet_since[n])
            row.history = [part[n] for part in history]

    def compile(self, batch_sizes: Sequence[int] = COMPILED_AHEAD) -> None:
        """Compiles the loop for each of `batch_sizes` now (about a second
        each on a laptop's CPU), so that no request waits for it."""
        for batch in batch_sizes:
            self.sample_block(*self.idle_block_arguments(batch))

    def idle_block_arguments(self, batch: int) -> tuple:
        """Arguments of a call of the compiled loop at `batch` rows that have
        nothing to do (every row's target is 0): it returns at once."""
        model = self.bundle.model
        zeros = tf.zeros([batch], tf.int32)
        notes = (tf.zeros([batch, self.num_keys]), tf.zeros([batch, self.num_keys], tf.int32),
                 zeros, zeros, zeros)
        history = tuple(tf.zeros([batch, item.state_size]) for item in self.history)
        song = (tf.zeros([batch, MAX_PLAN_BARS], tf.int32), zeros, tf.ones([batch], tf.int32),
                tf.ones([batch], tf.int32),
                tf.zeros([batch, MAX_PLAN_BARS, GUIDE_COLUMNS], tf.int32))
        return (model.zero_state(batch), zeros, zeros, notes, history, zeros,
                self.position_gates,
                tf.zeros([batch, GATE_ROWS[0], self.position_gates.shape[1]]), song,
                self.onset_allowed, zeros, tf.ones([batch]),
                *[tf.fill([self.block_events, batch], 0.5)] * 2)

    # ----- the compiled loop ---------------------------------------------------------

    def _sample_block_graph(self, state, last_event, elapsed, notes, history, target_steps,
                            position_gates, row_gates, song, onset_allowed, first_position,
                            temperature, uniforms, length_uniforms):
        """Samples up to block_events events for every row.

        Args:
          state: LSTM state ((c, h) per layer), each [batch, units].
          last_event: [batch] int32, the event to feed first.
          elapsed: [batch] int32, steps generated so far.
          notes: (sounding [batch, keys] float32, 1 for each note sounding now;
            deadline [batch, keys] int32, the elapsed step at which each
            sounding note ends; pending [batch] int32, steps of a time shift
            split at a note's end still to play; quiet_since [batch] int32, the
            elapsed step at which the current silence began, negative when it
            began in the primer; silence_cap [batch] int32, the most steps a
            silence may last, 0 for any).
          history: each history input's state [batch, state_size], after last_event.
          target_steps: [batch] int32, steps wanted per row (0: a row at rest).
          position_gates: [cycle, 4*units0], step inputs @ kernel + bias of
            layer 0 for each step of the position cycle.
          row_gates: [batch, rows, 4*units0], each row's distinct row inputs @
            kernel (`RowGates`).
          song: (bar_rows [batch, MAX_PLAN_BARS] int32, which row_gates each
            bar of a row's plan reads; plan_step [batch], its plan's steps
            before its new music; bar_steps [batch]; plan_bars [batch], its
            plan's bars (it repeats); guide_bars [batch, MAX_PLAN_BARS,
            GUIDE_COLUMNS], `perfrnn.plan_guide.guide_table` rows), int32.
          onset_allowed: [cycle] bool, whether a note may start at each step.
          first_position: [batch] int32, the cycle step where each row starts.
          temperature: [batch] float32.
          uniforms: [block_events, batch] float32 in (0, 1), the numbers that pick
            each row's events (`block_uniforms`).
          length_uniforms: the same shape, the numbers that draw note lengths.

        Returns:
          events [block_events, batch] (PAD_EVENT once a row is done), the
          number of loop iterations run, and the new state, last events,
          elapsed steps, notes and history.
        """
        batch = last_event.shape[0]
        cycle = tf.shape(position_gates)[0]

        bar_rows, plan_step, bar_steps, plan_bars, guide_bars = song

        def step(i, state, last_event, elapsed, notes, history, events):
            position = tf.math.floormod(first_position + elapsed, cycle)
            bar = tf.math.floormod((plan_step + elapsed) // bar_steps, plan_bars)
            bar_gates = tf.gather(row_gates, tf.gather(bar_rows, bar, batch_dims=1),
                                  batch_dims=1)
            input_gates = (tf.gather(tf.convert_to_tensor(self._event_kernel), last_event)
                           + tf.gather(position_gates, position) + bar_gates)
            if self.history:
                input_gates += self._history_gates(history)
            state, logits = self._network_step(state, input_gates)
            if self.guide is not None:
                logits += self._guide_bias(history, position, guide_bars, bar,
                                           plan_step + elapsed, bar_steps)
            notes, sample, length = self._sample_event(
                logits, notes, elapsed, position, first_position, onset_allowed, cycle,
                temperature, uniforms[i], length_uniforms[i])
            active = elapsed < target_steps
            now = elapsed
            elapsed += tf.where(active, tf.gather(self._time_shift_steps, sample), 0)
            events = tf.tensor_scatter_nd_update(
                events, [[i]], tf.where(active, sample, PAD_EVENT)[None])
            last_event = tf.where(active, sample, last_event)
            notes = self._advance_notes(notes, sample, length, active, now)
            history = self._advance_history(history, sample, active,
                                            tf.math.floormod(first_position + elapsed, cycle))
            return i + 1, state, last_event, elapsed, notes, history, events

        def keep_going(i, state, last_event, elapsed, notes, history, events):
            return tf.logical_and(i < self.block_events,
                                  tf.reduce_any(elapsed < target_steps))

        events = tf.fill([self.block_events, batch], PAD_EVENT)
        count, state, last_event, elapsed, notes, history, events = tf.while_loop(
            keep_going, step,
            (tf.constant(0), state, last_event, elapsed, notes, history, events))
        return events, count, state, last_event, elapsed, notes, history

    def _guide_bias(self, history, position, guide_bars, bar, plan_steps, bar_steps):
        """The plan guide's logit biases (`perfrnn.plan_guide`) at this step."""
        return self.guide.bias(history[-1], position, tf.gather(guide_bars, bar, batch_dims=1),
                               tf.math.floormod(plan_steps, bar_steps), bar_steps)

    def _history_gates(self, history):
        """Layer 0's gate input from the history inputs' features."""
        features = tf.concat([item.features(part) for item, part in zip(self.history, history)],
                             axis=1)
        return tf.matmul(features, tf.convert_to_tensor(self._history_kernel))

    def _advance_history(self, history, sample, active, position):
        """Each history input's state after `sample`, for the rows still active."""
        return tuple(tf.where(active[:, None], item.update(part, sample, position), part)
                     for item, part in zip(self.history, history))

    def _network_step(self, state, input_gates):
        """One LSTM step: the new state and the logits of the next event, from
        layer 0's input gates (its input rows @ kernel)."""
        model = self.bundle.model
        (c, h), upper = state[0], state[1:]
        c, h = lstm_update(tf.matmul(h, tf.convert_to_tensor(self._recurrent_kernel0)),
                           c, input_gates)
        new_state = [(c, h)]
        x = h
        for (c, h), kernel, bias in zip(upper, model.kernels[1:], model.biases[1:]):
            c, h = lstm_cell(x, c, h, tf.convert_to_tensor(kernel), tf.convert_to_tensor(bias))
            new_state.append((c, h))
            x = h
        logits = tf.matmul(x, tf.convert_to_tensor(model.output_weights)) \
            + tf.convert_to_tensor(model.output_biases)
        return tuple(new_state), logits

    def _sample_event(self, logits, notes, elapsed, position, first_position, onset_allowed,
                      cycle, temperature, uniforms, length_uniforms):
        """The next event of each row under the note grammar, and the length
        of the note it starts (if it starts one): (notes, event, length).

        The grammar, when on: a note-off only for a sounding note; no note of
        a part the style leaves out; no note-on while `polyphony_cap` notes
        sound; a metric style's note-on only on a 16th or triplet position; a
        note at its drawn length ends before anything
        else happens; and a silence ends at the row's silence cap. A time
        shift past the next note's end is split there; the rest follows the
        note-off, so the music keeps the model's timing."""
        sounding, deadline, pending, quiet_since, silence_cap = notes
        grammar = self.note_grammar
        batch = tf.shape(logits)[0]
        if grammar:  # a note-off only for a sounding note
            no_key = tf.ones([batch, 1])
            allowed = tf.gather(tf.concat([no_key, sounding], axis=1), self._off_keys, axis=1)
            logits = tf.where(allowed > 0, logits, NEVER)
        if self._silent_onsets is not None:  # no note of a part the style leaves out
            logits = tf.where(self._silent_onsets[None, :], NEVER, logits)
        if grammar and self.polyphony_cap:  # no note-on while polyphony_cap notes sound
            full = tf.reduce_sum(sounding, axis=1) >= self.polyphony_cap
            is_onset = tf.constant(self.on_keys_table >= 0)
            logits = tf.where(tf.logical_and(full[:, None], is_onset[None, :]), NEVER, logits)
        on_the_grid = grammar and self._onsets_restricted
        if on_the_grid:  # a note-on only where the encoding lets one start
            here = tf.gather(onset_allowed, position)  # [batch]: may a note start now?
            is_onset = tf.constant(self.on_keys_table >= 0)
            off_grid = tf.logical_and(is_onset[None, :], tf.logical_not(here)[:, None])
            logits = tf.where(off_grid, NEVER, logits)
        if grammar:  # a note at its drawn length ends before anything else happens
            # steps until the first sounding note's end (0: one is due now)
            left = tf.maximum(tf.reduce_min(tf.where(sounding > 0, deadline, tf.int32.max),
                                            axis=1) - elapsed, 0)
            ending = left == 0
            overdue = tf.logical_and(sounding > 0, deadline <= elapsed[:, None])
            overdue_off = tf.gather(tf.concat([tf.zeros([batch, 1], tf.bool), overdue], 1),
                                    self._off_keys, axis=1)
            logits = tf.where(tf.logical_and(ending[:, None], tf.logical_not(overdue_off)),
                              NEVER, logits)
        capping = grammar and self.silence_capped
        if capping:  # nothing sounds: the silence may last silence_cap steps
            logits, pending, capped, landing = self._cap_silence(
                logits, notes, elapsed, position, first_position, onset_allowed, cycle,
                on_the_grid)
        sample = inverse_cdf_sample(logits, temperature, uniforms)
        if grammar:  # a time shift past the next note's end is split there
            wanted = tf.where(pending > 0, pending, tf.gather(self._time_shift_steps, sample))
            if capping:
                wanted = tf.where(capped, tf.minimum(wanted, landing), wanted)
            moving = tf.logical_and(wanted > 0, tf.logical_not(ending))
            played = tf.minimum(wanted, left)
            sample = tf.where(moving, tf.gather(self._shift_events, played), sample)
            pending = tf.where(moving, wanted - played, pending)
        length = self._drawn_length(tf.gather(self._onset_roles, sample), length_uniforms)
        return (sounding, deadline, pending, quiet_since, silence_cap), sample, length

    def _cap_silence(self, logits, notes, elapsed, position, first_position, onset_allowed,
                     cycle, on_the_grid):
        """While nothing sounds, a silence may last each row's silence_cap
        steps and ends where a note may start: at the limit no time shift is
        allowed, and before it a shift is cut to land there.

        Returns (logits, pending, capped, landing): `capped` rows have their
        next shift cut to `landing` steps."""
        sounding, _, pending, quiet_since, silence_cap = notes
        silent = tf.logical_and(tf.reduce_max(sounding, axis=1) <= 0, silence_cap > 0)
        room = silence_cap - (elapsed - quiet_since)
        if on_the_grid:  # ...and ends where a note may start
            shift_lengths = tf.range(1, int(self.time_shift_table.max()) + 1, dtype=tf.int32)
            ahead = tf.gather(onset_allowed, tf.math.floormod(
                (first_position + elapsed)[:, None] + shift_lengths[None, :], cycle))
            landing = tf.reduce_max(tf.where(
                tf.logical_and(ahead, shift_lengths[None, :] <= room[:, None]),
                shift_lengths[None, :], 0), axis=1)
            here = tf.gather(onset_allowed, position)
            # off the grid with no grid step in reach: the next one will do
            next_step = tf.reduce_min(tf.where(ahead, shift_lengths[None, :],
                                               tf.int32.max), axis=1)
            next_step = tf.where(next_step < tf.int32.max, next_step, 0)
            landing = tf.where(tf.logical_or(landing > 0, here), landing, next_step)
            at_limit = tf.logical_and(landing <= 0, here)
        else:
            landing = tf.maximum(room, 0)
            at_limit = landing <= 0
        capped = tf.logical_and(silent, landing > 0)
        at_limit = tf.logical_and(silent, at_limit)  # something must start now
        is_shift = tf.constant(self.time_shift_table > 0)
        logits = tf.where(tf.logical_and(at_limit[:, None], is_shift[None, :]), NEVER, logits)
        pending = tf.where(at_limit, 0, pending)
        return logits, pending, capped, landing

    def _advance_notes(self, notes, sample, length, active, now):
        """The notes after `sample` (made at step `now`) for the active rows:
        which sound, when each ends, and when the current silence began."""
        sounding, deadline, pending, quiet_since, silence_cap = notes
        started = tf.one_hot(tf.gather(self._on_keys, sample), self.num_keys + 1)[:, 1:]
        ended = tf.one_hot(tf.gather(self._off_keys, sample), self.num_keys + 1)[:, 1:]
        updated = tf.maximum(sounding * (1.0 - ended), started)
        fell_silent = tf.logical_and(tf.reduce_max(sounding, axis=1) > 0,
                                     tf.reduce_max(updated, axis=1) <= 0)
        quiet_since = tf.where(tf.logical_and(active, fell_silent), now, quiet_since)
        sounding = tf.where(active[:, None], updated, sounding)
        deadline = tf.where(started > 0, (now + length)[:, None], deadline)
        return sounding, deadline, pending, quiet_since, silence_cap

    def _drawn_length(self, roles, uniforms):
        """Note lengths in steps ([batch] int32, at least 1) drawn from each
        role's quantiles of `_length_table` by inverse CDF, linear between
        quantiles; `roles` and `uniforms` are [batch]."""
        position = uniforms * (QUANTILES - 1)
        low = tf.minimum(tf.cast(tf.floor(position), tf.int32), QUANTILES - 2)
        fraction = position - tf.cast(low, tf.float32)
        rows = tf.gather(self._length_table, roles)
        below = tf.gather(rows, low, batch_dims=1)
        above = tf.gather(rows, low + 1, batch_dims=1)
        return tf.maximum(tf.cast(tf.round(below + (above - below) * fraction), tf.int32), 1)


def inverse_cdf_sample(logits: tf.Tensor, temperature: tf.Tensor,
                       uniforms: tf.Tensor) -> tf.Tensor:
    """One event per row ([batch] int32) by inverse CDF: the first whose
    cumulative probability at `temperature` reaches the row's uniform number."""
    probabilities = tf.nn.softmax(logits / temperature[:, None])
    cdf = tf.cumsum(probabilities, axis=1)
    threshold = uniforms[:, None] * cdf[:, -1:]
    sample = tf.reduce_sum(tf.cast(cdf < threshold, tf.int32), axis=1)
    return tf.minimum(sample, logits.shape[1] - 1)


def block_uniforms(streams: Sequence[tuple[int, int, int]], kind: int,
                   events: int) -> np.ndarray:
    """The uniform numbers in (0, 1) that pick the next `events` events of each
    row: [events, rows] float32.

    `streams` holds (seed, stream, first event) per row (stream: see
    `perfrnn.request_plan`; first event: how many it has made); `kind` is
    EVENT_STREAM or LENGTH_STREAM. Each stream is counter-based (Philox
    keyed by seed and stream, counted by event), so a row's numbers depend
    on neither the other rows nor the blocks, and the same seed gives the
    same music batched or alone.
    """
    uniforms = np.empty((events, len(streams)), np.float32)
    for column, (seed, row, first_index) in enumerate(streams):
        skip = first_index % 4  # Philox-4x64 makes four numbers per counter value
        generator = np.random.Philox(key=[seed, 2 * row + kind],
                                     counter=[first_index // 4, 0, 0, 0])
        raw = generator.random_raw(skip + events)[skip:]
        # 23 random bits, centred: odd multiples of 2**-24, exact in float32
        uniforms[:, column] = ((raw >> np.uint64(41)) * 2 + 1).astype(np.float32) * 2.0 ** -24
    return uniforms

