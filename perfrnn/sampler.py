"""The sampler: generates performances with one compiled autoregressive loop.

The loop over events is a `tf.while_loop` inside a `tf.function(jit_compile=True)`,
so XLA compiles the LSTM step, the sampling and the stop test into one program
and no Python runs per event. The host calls that program once per block of
`block_events` events (the loop inside stops as soon as every variation has
reached the requested musical time), which is what lets a caller see progress
and cancel; a 30-second piece is one to three calls.

Sampling is by inverse CDF with one counter-based random number per row and
event, drawn on the host for the whole block from the row's own stream,
keyed by (seed, variation) and counted by the event's index
(`block_uniforms`); so the same seed and options give the same events and
hence identical MIDI bytes, whatever else shares the batch. (Gumbel-max
sampling needs 388 random numbers per event and cost a quarter of the step
time.) A second stream per row draws the length of the note an event starts,
if it starts one (see `perfrnn.note_lengths`).

Several requests for one style can be sampled as one batch (`generate_batch`):
each row carries its own state, length, temperature, start position and
controls. A batch runs at one of `BATCH_SIZES` rows, padded, never at one:
XLA's CPU matrix product of a single row takes another path than that of 2
to 32 rows, whose rows come out bit for bit alike whatever the batch (checked
by `tests/test_sampler.py`). So a request's music does not depend on what it
was batched with.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf
from note_seq import sequences_lib
from note_seq.protobuf import music_pb2

from perfrnn.bundle import Bundle
from perfrnn.errors import PerfRNNError
from perfrnn.metre import COMMON_TIME, Metre, parse_metre
from perfrnn.model import PerformanceRNN, lstm_cell, lstm_update
from perfrnn.multitrack import PITCHES, assign_roles
from perfrnn.note_lengths import QUANTILES, length_table
from perfrnn.options import (
    GenerationOptions,
    LengthPlan,
    ProgressCallback,
    candidates_within_budget,
    check_primer,
    length_plan,
    pitch_histogram_for_key,
)
from perfrnn.scoring import Score, StyleScorer, scorer_for

PAD_EVENT = -1
# A model that stops moving time forward is cut off after this many events per
# second of music asked for (dense piano runs about 100); the rest is silence.
MAX_EVENTS_PER_SECOND = 400
# A loop is chosen from this many candidates per variation, sampled in one batch.
LOOP_CANDIDATES = 4
# The batch sizes the compiled loop runs at (rows, padded up): never one row, and
# at most MAX_BATCH_ROWS, the range in which a row's arithmetic does not depend
# on the batch (see the module's docstring).
BATCH_SIZES = (2, 4, 8, 16, 32)
MAX_BATCH_ROWS = BATCH_SIZES[-1]
# A row's two random streams: its events', and its note lengths'.
EVENT_STREAM, LENGTH_STREAM = 0, 1
# Candidate c of a row draws from stream row + c * CANDIDATE_STREAMS, so the
# first candidate is the piece one candidate gives (rows per request: at most
# MAX_VARIATIONS * LOOP_CANDIDATES = 64).
CANDIDATE_STREAMS = 64
# A repair resamples the rest of a piece from a bar before a silence or stuck
# passage beyond the style's norm, at most this many times; try k of stream s
# draws from stream s + k * REPAIR_STREAMS.
REPAIR_ATTEMPTS = 4
REPAIR_STREAMS = 1 << 12


def use_cpu_threads(threads: int) -> bool:
    """Runs TensorFlow's CPU work on at most `threads` threads per operation
    (0: TensorFlow's choice, a thread per core). One thread per sampling
    batch wastes no CPU time on threads that spin waiting for each other
    (a batch of 8 costs 1.16 core-seconds on one thread against 1.66 on two,
    on the 2-core test machine), so a busy server serves more; parallel
    batches use the other cores. It applies only before TensorFlow starts
    working; returns False (and changes nothing) after."""
    if threads <= 0:
        return True
    try:
        tf.config.threading.set_intra_op_parallelism_threads(int(threads))
        tf.config.threading.set_inter_op_parallelism_threads(int(threads))
    except RuntimeError:  # TensorFlow has started: its pools are made
        return False
    return True


@dataclass
class Generation:
    """The result of one request: one NoteSequence per variation, with times
    in seconds as the file plays at `bpm` (quarter notes per minute)."""

    sequences: list[music_pb2.NoteSequence]
    seed: int
    events: list[np.ndarray]  # event indices per variation, primer included
    bpm: float = 120.0
    metre: Metre = COMMON_TIME
    # per variation, how well it fits the style (None: nothing to score with);
    # variations that were scored are in order, best first
    scores: list[Score | None] = field(default_factory=list)
    repairs: int = 0  # passages resampled


def loop_join_nll(model: PerformanceRNN, encoding, prefix: np.ndarray, rows: list[np.ndarray],
                  bar_steps: int, metre: Metre, style: np.ndarray | None = None) -> list[float]:
    """For each row of new events after `prefix` (the start event or the
    primer's events), the mean NLL (nats/event) of the row's own first bar
    played again right after its end: low when the end leads back into the
    start. Rows are scored in one batch, positions counted from the prefix's
    start as in sampling; `style` is the style input of a model that has one."""
    shifts = encoding.time_shift_steps()
    sequences, scored = [], []
    for row in rows:
        elapsed = np.cumsum(shifts[row])
        first_bar = row[:int(np.searchsorted(elapsed, bar_steps)) + 1]
        sequences.append(np.concatenate([prefix, row, first_bar]))
        scored.append(len(first_bar))
    longest = max(len(sequence) for sequence in sequences)
    inputs = np.zeros((len(rows), longest - 1, encoding.input_size), np.float32)
    for index, sequence in enumerate(sequences):
        if encoding.config.is_metric:
            rows_in = encoding.inputs_from_events(sequence[:-1], metre=metre, style=style)
        else:
            rows_in = encoding.inputs_with_controls(sequence[:-1])
        inputs[index, :len(sequence) - 1] = rows_in
    logits = model.sequence_logits(tf.constant(inputs))[0].numpy()
    log_probs = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)
    scores = []
    for index, (sequence, count) in enumerate(zip(sequences, scored)):
        labels = sequence[1:]
        positions = np.arange(len(labels) - count, len(labels))
        scores.append(float(-log_probs[index, positions, labels[positions]].mean()))
    return scores


@dataclass
class SampleRequest:
    """One caller's request, to be sampled alone or batched with others
    (see `Sampler.generate` for what each part means)."""

    options: GenerationOptions
    primer: music_pb2.NoteSequence | None = None
    progress: ProgressCallback | None = None
    cancelled: Callable[[], bool] | None = None


@dataclass
class _Plan:
    """A request made ready to sample: what its rows start from and need."""

    request: SampleRequest
    seed: int
    bpm: float
    metre: Metre
    length: LengthPlan
    style: np.ndarray | None
    primer_events: np.ndarray
    primer_steps: int
    rows: int
    candidates: int  # per variation (`candidates_within_budget`)
    state: tuple  # the LSTM state after the primer, (c, h) per layer, each [1, units]
    controls: np.ndarray  # the encoded note density and key (empty for none)
    silence_cap: int  # the longest a silence may last, in steps (0: any)
    quiet_since: int  # where the primer's closing silence began (<= 0), in steps
    row_gates: np.ndarray  # [4 * units0]: layer 0's input from its controls or style
    first_position: int  # the step of the position cycle where its new music starts
    sounding: np.ndarray  # [keys]: 1 for each note the primer leaves sounding
    max_events: int
    joined: int = 0  # rows that have joined the batch so far
    generated: dict[int, np.ndarray] = field(default_factory=dict)  # events per finished row


@dataclass
class _Row:
    """One row of a batch: a variation (or loop candidate) of request `index`,
    and where its sampling stands."""

    index: int
    row: int  # its place among its request's rows
    stream: int  # its random streams' key (with the seed)
    seed: int
    target: int  # steps of music it makes
    max_events: int
    gates: np.ndarray
    first_position: int
    temperature: float
    state: list[np.ndarray]  # c, h of each layer, each [units]
    last_event: int
    sounding: np.ndarray  # [keys]
    deadline: np.ndarray  # [keys]
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


class Sampler:
    """Generates music from one bundle; build once, call `generate` many times.

    Args:
      bundle: The loaded style.
      block_events: Events per compiled call (bounds how often progress is
        reported; the compiled loop itself runs all of them).
      note_grammar: Sample a note-off only for a note that is sounding, and,
        for a metric style, a note-on only on a sixteenth or eighth-triplet
        position (the only onsets its encoding keeps from real music). A
        model that loses track of its open notes otherwise spends note-offs
        on silent pitches (they are dropped) and leaves the sounding ones
        hanging; renormalising over the events that make sense keeps its
        choices among them. The grammar also ends each note at a length
        drawn from its part's notes in the style's training music if the
        model has not ended it by then (`perfrnn.note_lengths`), and lets
        no silence last longer than the longest the style's own music has
        (its 99th percentile, `perfrnn.scoring`): at that point a note must
        start (on the grid, for a metric style). False samples the raw
        model, as Magenta does.
      scorer: Judges candidates and finds passages to repair (default: the
        bundle's own, `perfrnn.scoring.scorer_for`).
    """

    def __init__(self, bundle: Bundle, block_events: int = 2048, note_grammar: bool = True,
                 scorer: StyleScorer | None = None):
        self.bundle = bundle
        # judges candidates and finds passages to repair (perfrnn.scoring)
        self.scorer = scorer if scorer is not None else scorer_for(bundle)
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
        # The event of a time shift of each length (index 0: none).
        shift_events = np.zeros(self._time_shift_table.max() + 1, np.int32)
        shift_events[self._time_shift_table] = np.arange(len(self._time_shift_table))
        shift_events[0] = 0
        self._shift_events = tf.constant(shift_events)
        on_keys, off_keys, self._num_keys = self.encoding.note_keys()
        self._on_keys_table, self._off_keys_table = on_keys, off_keys
        # Shifted by one so that index 0 means "not a note event".
        self._on_keys = tf.constant(on_keys + 1)
        # A style that plays only some parts (a drum style of a band base) never
        # starts a note of the others.
        playing = bundle.metadata.played_tracks
        roles = np.where(on_keys >= 0, on_keys // PITCHES, -1)
        silent = [role for role, track in enumerate(bundle.metadata.tracks)
                  if track not in playing]
        self._silent_onsets = (tf.constant(np.isin(roles, silent) & (roles >= 0))
                               if silent else None)
        self._off_keys = tf.constant(off_keys + 1)
        self._onset_roles = tf.constant(np.maximum(on_keys, 0) // PITCHES)
        metadata = bundle.metadata
        native_rate = (self.encoding.steps_per_second(metadata.default_bpm)
                       if self.encoding.config.is_metric
                       else self.encoding.config.steps_per_second)
        lengths = length_table(metadata.note_length_steps,
                               [seconds * native_rate for seconds in metadata.max_note_seconds],
                               self._num_keys // PITCHES)
        self._length_table = tf.constant(lengths)
        # Per role, the longest a note may sound: steps, and seconds at the style's own tempo.
        self._longest_steps = lengths.max(axis=1).astype(np.int32)
        self._longest_seconds = lengths.max(axis=1) / native_rate
        self._gates, self._request_kernel = self._position_gates()
        self._cycle = int(self._gates.shape[0])
        self._onset_allowed = tf.constant(self.encoding.onset_allowed(self.metre)
                                          if self.encoding.config.is_metric else [True])
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
        seconds (or `options.bars` bars) of new music after the primer's end,
        with times in seconds as the file plays at `options.bpm`. A metric
        style plays its beat grid at that tempo; any other style's music is
        stretched to it from the style's own tempo.

        Raises:
          PerfRNNError: an option is invalid, or `cancelled()` became true.
        """
        request = SampleRequest(options, primer, progress, cancelled)
        for _, outcome in self.generate_batch([request]):
            if isinstance(outcome, PerfRNNError):
                raise outcome
            return outcome
        raise AssertionError("generate_batch yields one outcome per request")

    def generate_batch(self, requests: Sequence[SampleRequest],
                       more: Callable[[int], Sequence[SampleRequest]] | None = None
                       ) -> Iterator[tuple[int, Generation | PerfRNNError]]:
        """Samples several requests together: one batch of rows (a row per
        variation, or per loop candidate), at most MAX_BATCH_ROWS at a time.

        Rows join the batch as others finish, between blocks: a request's
        rows wait only for room, never for a whole batch to end. `more`, if
        given, is asked between blocks for up to `room` more requests to
        join (say, those that came in meanwhile); their indices follow those
        of `requests`.

        Yields (index, outcome) for each request as soon as its rows are done:
        its Generation (the same as `generate` gives it alone), or the
        PerfRNNError that ended it (an invalid option or primer, or
        `cancelled()` became true); the other requests carry on.
        """
        waiting = list(enumerate(requests))
        taken = len(waiting)
        plans: dict[int, _Plan] = {}
        rows: list[_Row] = []
        while True:
            if more is not None and not waiting and len(rows) < MAX_BATCH_ROWS:
                for request in more(MAX_BATCH_ROWS - len(rows)):
                    waiting.append((taken, request))
                    taken += 1
            while waiting and len(rows) < MAX_BATCH_ROWS:  # rows join while there is room
                index, request = waiting[0]
                if index not in plans:
                    try:
                        plans[index] = self._plan(request)
                    except PerfRNNError as error:
                        waiting.pop(0)
                        yield index, error
                        continue
                plan = plans[index]
                joining = min(MAX_BATCH_ROWS - len(rows), plan.rows - plan.joined)
                rows += [self._new_row(plan, index, row)
                         for row in range(plan.joined, plan.joined + joining)]
                plan.joined += joining
                if plan.joined == plan.rows:
                    waiting.pop(0)
            if not rows:
                return
            for index in sorted({row.index for row in rows}):  # cancelled: its rows stop
                request = plans[index].request
                if request.cancelled is not None and request.cancelled():
                    rows = [row for row in rows if row.index != index]
                    waiting = [(i, r) for i, r in waiting if i != index]
                    del plans[index]
                    yield index, PerfRNNError("generation was cancelled")
            if rows:
                self._sample_rows(rows)
            for row in [row for row in rows if row.finished]:
                rows.remove(row)
                plan = plans[row.index]
                plan.generated[row.row] = np.concatenate(row.events)
            for index in sorted({row.index for row in rows} | set(plans)):
                plan = plans[index]
                if plan.request.progress is not None:
                    plan.request.progress(self._share_done(plan, rows, index))
                if len(plan.generated) == plan.rows:
                    del plans[index]
                    yield index, self._finish(plan)

    @staticmethod
    def _share_done(plan: _Plan, rows: list[_Row], index: int) -> float:
        """How much of its music a request has, 0 to 1 (rows not yet begun count 0)."""
        running = sum(min(row.elapsed / row.target, 1.0) for row in rows if row.index == index)
        return (len(plan.generated) + running) / plan.rows

    def _new_row(self, plan: _Plan, index: int, row: int) -> _Row:
        """A row of request `index`, as the primer leaves it."""
        per_candidate = max(plan.rows // plan.candidates, 1)
        candidate, place = divmod(row, per_candidate)
        return _Row(index=index, row=row, stream=place + candidate * CANDIDATE_STREAMS,
                    silence_cap=plan.silence_cap, quiet_since=plan.quiet_since,
                    seed=plan.seed, target=plan.length.steps,
                    max_events=plan.max_events, gates=plan.row_gates,
                    first_position=plan.first_position,
                    temperature=plan.request.options.temperature,
                    state=[part[0] for layer in plan.state for part in layer],
                    last_event=int(plan.primer_events[-1]), sounding=plan.sounding,
                    # its sounding notes may last their part's longest length from here
                    deadline=np.repeat(self._longest_steps, PITCHES))

    def _sample_rows(self, rows: list[_Row]) -> None:
        """Samples one block of events for `rows`, padded to a BATCH_SIZES size,
        and moves each row on (its events, state and notes)."""
        batch = next(size for size in BATCH_SIZES if size >= len(rows))
        idle = _Row(index=-1, row=0, stream=0, seed=0, target=0, max_events=0,
                    gates=np.zeros_like(rows[0].gates), first_position=0, temperature=1.0,
                    state=[np.zeros_like(part) for part in rows[0].state], last_event=0,
                    sounding=np.zeros_like(rows[0].sounding),
                    deadline=np.zeros_like(rows[0].deadline))
        padded = rows + [idle] * (batch - len(rows))

        def column(name, dtype=None):
            return tf.constant(np.array([getattr(row, name) for row in padded], dtype))

        parts = [tf.constant(np.stack([row.state[k] for row in padded]))
                 for k in range(len(rows[0].state))]
        state = tuple(zip(parts[0::2], parts[1::2]))
        notes = (column("sounding", np.float32), column("deadline", np.int32),
                 column("pending", np.int32), column("quiet_since", np.int32),
                 column("silence_cap", np.int32))
        streams = [(row.seed, row.stream, row.count) for row in padded]
        events, count, state, last_event, elapsed, notes = self._sample_block(
            state, column("last_event", np.int32), column("elapsed", np.int32), notes,
            column("target", np.int32), self._gates, column("gates", np.float32),
            self._onset_allowed, column("first_position", np.int32),
            column("temperature", np.float32),
            tf.constant(block_uniforms(streams, EVENT_STREAM, self.block_events)),
            tf.constant(block_uniforms(streams, LENGTH_STREAM, self.block_events)))
        events = events.numpy()[:int(count)]
        state = [part.numpy() for layer in state for part in layer]
        last_event, elapsed = last_event.numpy(), elapsed.numpy()
        sounding, deadline, pending, quiet_since, _ = (part.numpy() for part in notes)
        for n, row in enumerate(rows):
            made = events[:, n][events[:, n] != PAD_EVENT]
            row.events.append(made)
            row.count += len(made)
            row.state = [part[n] for part in state]
            row.last_event, row.elapsed = int(last_event[n]), int(elapsed[n])
            row.sounding, row.deadline, row.pending = sounding[n], deadline[n], int(pending[n])
            row.quiet_since = int(quiet_since[n])

    def _plan(self, request: SampleRequest) -> _Plan:
        """Everything about one request that its rows need, primer state included."""
        options = request.options
        options.validate()
        seed = options.resolved_seed()
        encoding = self.encoding
        metadata = self.bundle.metadata
        if (options.notes_per_second is not None or options.pitch_histogram is not None) \
                and not encoding.control_signals:
            raise PerfRNNError(
                f"style {metadata.style!r} is not conditioned: it takes no "
                "note density or key; leave them out")
        notes_per_second, pitch_histogram = self._controls(options)
        controls = encoding.encode_controls(notes_per_second, pitch_histogram)
        bpm = float(options.bpm or metadata.default_bpm)
        metre = self.metre
        length = length_plan(options, bpm, metadata.default_bpm, metre, encoding)
        primer_events, primer_steps = self._primer_events(request.primer, length.bar_steps)
        candidates = (1 if self.scorer.neutral else  # nothing to choose with
                      candidates_within_budget(options.candidates, options.variations,
                                               length.file_seconds))
        style = self._style(options)
        state = self._primer_state(primer_events[:-1], controls, metre, style)
        if request.cancelled is not None and request.cancelled():  # the primer took time
            raise PerfRNNError("generation was cancelled")
        return _Plan(
            request=request, seed=seed, bpm=bpm, metre=metre, length=length, style=style,
            primer_events=primer_events, primer_steps=primer_steps,
            rows=options.variations * candidates * (LOOP_CANDIDATES if options.loop else 1),
            candidates=candidates,
            state=state, controls=controls, row_gates=self._row_gates(controls, style),
            silence_cap=self._silence_cap(bpm),
            quiet_since=-self._closing_silence(primer_events),
            first_position=primer_steps % self._cycle,
            sounding=self._sounding_after(primer_events),
            max_events=int(MAX_EVENTS_PER_SECOND * length.model_seconds) + self.block_events)

    def _finish(self, plan: _Plan) -> Generation | PerfRNNError:
        """A request's Generation from its rows' events: per variation the best
        loop and the best-scoring candidate, repaired where it needs it; the
        variations best first when they were scored."""
        generated = [plan.generated[row] for row in range(plan.rows)]
        options = plan.request.options
        per_candidate = plan.rows // plan.candidates
        try:
            candidates = []  # per candidate, per variation: its events
            for candidate in range(plan.candidates):
                rows = generated[candidate * per_candidate:(candidate + 1) * per_candidate]
                if options.loop:
                    rows = self._best_loops(plan.primer_events, rows, options.variations,
                                            plan.length.bar_steps, plan.metre, plan.style)
                candidates.append(rows)
            chosen, repairs = [], 0
            for variation in range(options.variations):
                picks = []
                for candidate in range(plan.candidates):
                    row = candidates[candidate][variation]
                    sequence = self._decode(np.concatenate([plan.primer_events, row]),
                                            plan.primer_steps, plan.length, plan.bpm)
                    picks.append((row, sequence, self._score(sequence, plan), candidate))
                row, sequence, score, candidate = max(
                    picks, key=lambda pick: (_rank(pick[2]), -pick[3]))
                if options.repair and score is not None and score.defect is not None \
                        and not options.loop:
                    stream = (variation * (LOOP_CANDIDATES if options.loop else 1)
                              + candidate * CANDIDATE_STREAMS)
                    row, sequence, score, tries = self._repaired(plan, row, sequence, score,
                                                                 stream)
                    repairs += tries
                chosen.append((np.concatenate([plan.primer_events, row]), sequence, score))
        except PerfRNNError as error:
            return error
        if all(score is not None for _, _, score in chosen):
            order = sorted(range(len(chosen)), key=lambda i: (_rank(chosen[i][2]), -i),
                           reverse=True)
            chosen = [chosen[i] for i in order]
        return Generation(sequences=[sequence for _, sequence, _ in chosen], seed=plan.seed,
                          events=[events for events, _, _ in chosen], bpm=plan.bpm,
                          metre=plan.metre, scores=[score for _, _, score in chosen],
                          repairs=repairs)

    def _score(self, sequence: music_pb2.NoteSequence, plan: _Plan) -> Score | None:
        """The score of a piece's new music (after the primer), or None when the
        style has nothing to score with."""
        if self.scorer.neutral:
            return None
        return self.scorer.score(sequence, plan.request.options.blend,
                                 after=self._file_seconds(plan.primer_steps, plan))

    def steps_per_file_second(self, bpm: float) -> float:
        """Model steps in one second of the file at `bpm`: a metric style counts
        its steps in beats; a time-based one is sampled at its own tempo and
        stretched to `bpm`."""
        if self.encoding.config.is_metric:
            return float(self.encoding.steps_per_second(bpm))
        return self.encoding.config.steps_per_second * bpm / self.bundle.metadata.default_bpm

    def _file_seconds(self, steps: int, plan: _Plan) -> float:
        return steps / self.steps_per_file_second(plan.bpm)

    def _silence_cap(self, bpm: float) -> int:
        """The longest silence the style's own music has (its 99th percentile),
        in model steps of a request at `bpm`; 0 (no cap) without references."""
        references = self.scorer.references
        if references is None:
            return 0
        return max(int(references.silence_limit * self.steps_per_file_second(bpm)), 1)

    def _closing_silence(self, events: np.ndarray) -> int:
        """Steps of silence at the end of `events` (0 when a note still sounds)."""
        if self._sounding_after(events).any():
            return 0
        notes = np.flatnonzero((self._on_keys_table[events] >= 0)
                               | (self._off_keys_table[events] >= 0))
        after = events[notes[-1] + 1:] if len(notes) else events
        return int(self._time_shift_table[after].sum())

    def _repaired(self, plan: _Plan, row: np.ndarray, sequence: music_pb2.NoteSequence,
                  score: Score, stream: int) -> tuple[np.ndarray, music_pb2.NoteSequence,
                                                      Score, int]:
        """Resamples the rest of a piece from a bar before its first defect
        (`Score.defect`), up to REPAIR_ATTEMPTS times, keeping a try when it
        ends the defect or moves it later, or scores better.

        Returns (events, sequence, score, tries kept)."""
        rate = self.steps_per_file_second(plan.bpm)
        accepted = 0
        for attempt in range(1, REPAIR_ATTEMPTS + 1):
            defect = score.defect  # it ends in the new music (see `_score`)
            if defect is None:
                break
            request = plan.request
            if request.cancelled is not None and request.cancelled():
                raise PerfRNNError("generation was cancelled")
            start = max(defect.start - plan.metre.quarters_per_bar * 60.0 / plan.bpm, 0.0)
            cut_step = max(int(start * rate) - plan.primer_steps, 0)
            steps = np.cumsum(self._time_shift_table[row])
            cut = int(np.searchsorted(steps, cut_step, side="right"))
            done = int(steps[cut - 1]) if cut else 0
            if done >= plan.length.steps:
                break
            tail = self._continuation(plan, row[:cut], done,
                                      stream + attempt * REPAIR_STREAMS)
            candidate = np.concatenate([row[:cut], tail])
            redone = self._decode(np.concatenate([plan.primer_events, candidate]),
                                  plan.primer_steps, plan.length, plan.bpm)
            new_score = self._score(redone, plan)
            later = new_score.defect is None or new_score.defect.start > defect.start + 1e-6
            if later or _rank(new_score) > _rank(score):
                row, sequence, score = candidate, redone, new_score
                accepted += 1
        return row, sequence, score, accepted

    def _continuation(self, plan: _Plan, prefix: np.ndarray, done: int,
                      stream: int) -> np.ndarray:
        """New events for the rest of a request's music after `prefix` (its
        first `done` steps), sampled alone from random stream `stream`."""
        events = np.concatenate([plan.primer_events, prefix])
        steps = plan.primer_steps + done
        rest = dataclasses.replace(
            plan, primer_events=events, primer_steps=steps,
            length=dataclasses.replace(plan.length, steps=plan.length.steps - done),
            state=self._primer_state(events[:-1], plan.controls, plan.metre, plan.style),
            first_position=steps % self._cycle, sounding=self._sounding_after(events),
            quiet_since=-self._closing_silence(events), rows=1, joined=0, generated={})
        row = self._new_row(rest, -1, 0)
        row.stream = stream
        while not row.finished:
            self._sample_rows([row])
        return np.concatenate(row.events) if row.events else np.zeros(0, np.int32)

    def open_stream(self, options: GenerationOptions) -> SampleStream:
        """A stream of music without end (see `SampleStream`), from `options`'
        seed, temperature, tempo, controls and blend (its length is ignored)."""
        options = dataclasses.replace(options, seconds=1.0, bars=None, loop=False,
                                      variations=1, candidates=1)
        plan = self._plan(SampleRequest(options))
        row = self._new_row(plan, 0, 0)
        row.target = 0
        return SampleStream(self, plan, row)

    def compile(self, batch_sizes: Sequence[int] = BATCH_SIZES) -> None:
        """Compiles the sampling loop for each of `batch_sizes` now (about a
        second each on a laptop's CPU), so that no request waits for it."""
        for batch in batch_sizes:
            self._sample_block(*self.idle_block_arguments(batch))

    def idle_block_arguments(self, batch: int) -> tuple:
        """Arguments of a call of the compiled loop at `batch` rows that have
        nothing to do (every row's target is 0): it returns at once."""
        model = self.bundle.model
        zeros = tf.zeros([batch], tf.int32)
        notes = (tf.zeros([batch, self._num_keys]), tf.zeros([batch, self._num_keys], tf.int32),
                 zeros, zeros, zeros)
        return (model.zero_state(batch), zeros, zeros, notes, zeros, self._gates,
                tf.zeros([batch, self._gates.shape[1]]), self._onset_allowed, zeros,
                tf.ones([batch]), *[tf.fill([self.block_events, batch], 0.5)] * 2)

    @property
    def metre(self) -> Metre:
        """The metre the style plays in (4/4 unless its bundle says otherwise)."""
        return parse_metre(self.bundle.metadata.time_signature or COMMON_TIME.name)

    def _decode(self, events: np.ndarray, primer_steps: int, length: LengthPlan,
                bpm: float) -> music_pb2.NoteSequence:
        """One variation's events as a NoteSequence that plays at `bpm` and lasts
        the primer plus exactly `length.file_seconds`."""
        metadata = self.bundle.metadata
        native_bpm = metadata.default_bpm
        rate = length.steps_per_second
        total_seconds = (primer_steps + length.steps) / rate
        if self.encoding.config.is_metric:
            sequence = self.encoding.sequence_from_events(events, total_seconds,
                                                          steps_per_second=rate)
            stretch = 1.0
        else:
            sequence = self.encoding.sequence_from_events(events, total_seconds)
            stretch = native_bpm / bpm
        end_seconds = primer_steps / rate * stretch + length.file_seconds
        roles = metadata.tracks
        for note in sequence.notes:
            if note.instrument < len(roles):  # a drum style's notes are drum hits
                note.is_drum = roles[note.instrument].is_drum
            if note.instrument < len(self._longest_seconds):
                # The loop ends every note it tracks in time; this also ends a note
                # struck again while sounding, which a one-track decoding keeps open.
                limit = float(self._longest_seconds[note.instrument]) * (
                    native_bpm / bpm if self.encoding.config.is_metric else 1.0)
                note.end_time = min(note.end_time, note.start_time + limit)
        if stretch != 1.0:
            sequence = sequences_lib.stretch_note_sequence(sequence, stretch)
        # Steps are whole: cut at the length asked for, not the nearest step.
        for note in list(sequence.notes):
            if note.start_time >= end_seconds - 1e-9:
                sequence.notes.remove(note)
            else:
                note.end_time = min(note.end_time, end_seconds)
        sequence.total_time = end_seconds
        del sequence.tempos[:]
        sequence.tempos.add(time=0.0, qpm=bpm)
        del sequence.time_signatures[:]
        signature = self.metre
        sequence.time_signatures.add(time=0.0, numerator=signature.numerator,
                                     denominator=signature.denominator)
        return sequence

    def _best_loops(self, prefix: np.ndarray, rows: list[np.ndarray], variations: int,
                    bar_steps: int, metre: Metre, style: np.ndarray | None) -> list[np.ndarray]:
        """Of each variation's LOOP_CANDIDATES candidates, the one whose end best
        leads back into its start: the lowest mean NLL of its own first bar fed
        right after its last event (the model's judgement of the join)."""
        scores = loop_join_nll(self.bundle.model, self.encoding, prefix, rows, bar_steps, metre,
                               style)
        best = []
        for variation in range(variations):
            group = range(variation * LOOP_CANDIDATES, (variation + 1) * LOOP_CANDIDATES)
            best.append(rows[min(group, key=lambda i: scores[i])])
        return best

    def _style(self, options: GenerationOptions) -> np.ndarray | None:
        """The style input: the request's blend, else the bundle's own style
        (None for a style without one)."""
        if not self.encoding.config.is_metric:
            if options.blend:
                raise PerfRNNError(f"style {self.bundle.metadata.style!r} cannot blend styles")
            return None
        mix = dict(options.blend or ()) or self.bundle.metadata.style_mix
        return self.encoding.style_vector(mix)

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

    def _primer_events(self, primer: music_pb2.NoteSequence | None,
                       bar_steps: int | None = None) -> tuple[np.ndarray, int]:
        """Event indices of the primer (at least one) and its length in steps.

        A multi-track style's primer has its parts mapped onto the style's
        roles, a metric drum style keeps the primer's drums; a metric style's primer
        is read on its own beat and padded to the bar line after its last
        event, so the new music starts on a downbeat.
        """
        encoding = self.encoding
        if primer is None or not primer.notes:
            return np.array([encoding.start_event()], np.int32), 0
        check_primer(primer)
        if encoding.config.is_multitrack:
            primer, _ = assign_roles(primer, encoding.tracks)
            if not primer.notes:
                raise PerfRNNError("the primer has no part this style plays")
        elif encoding.config.is_metric and encoding.config.tracks[0].is_drum:
            drums = music_pb2.NoteSequence()
            drums.CopyFrom(primer)
            del drums.notes[:]
            drums.notes.extend(note for note in primer.notes if note.is_drum)
            if not drums.notes:
                raise PerfRNNError("the primer has no drums (MIDI channel 10) for this "
                                   "drum style to continue")
            primer = drums
        steps = int(encoding.steps_at(primer, [primer.total_time])[0])
        events = encoding.events_from_sequence(primer)
        # Onsets snap forward and notes last a step: the events may end after total_time.
        steps = max(steps, int(self._time_shift_table[events].sum()))
        if encoding.config.is_metric and bar_steps:
            steps = -(-steps // bar_steps) * bar_steps
        events = encoding.events_from_sequence(primer, total_steps=steps)
        return events, int(self._time_shift_table[events].sum())

    def _sounding_after(self, events: np.ndarray) -> np.ndarray:
        """Which notes (role * 128 + pitch) sound after `events`, as 0/1 floats."""
        sounding = np.zeros(self._num_keys, np.float32)
        for event in np.asarray(events, np.int64):
            if self._on_keys_table[event] >= 0:
                sounding[self._on_keys_table[event]] = 1.0
            elif self._off_keys_table[event] >= 0:
                sounding[self._off_keys_table[event]] = 0.0
        return sounding

    def _primer_state(self, events: np.ndarray, controls: np.ndarray, metre: Metre,
                      style: np.ndarray | None) -> tuple:
        """The LSTM state after `events` (the primer but its last event), as
        numpy arrays (c, h) per layer, each [1, units]."""
        model = self.bundle.model
        state = model.zero_state(1)
        if len(events):
            if self.encoding.config.is_metric:
                inputs = self.encoding.inputs_from_events(events, metre=metre, style=style)[None]
            else:
                inputs = np.zeros((1, len(events), model.input_size), np.float32)
                inputs[0, :, :len(controls)] = controls
                inputs[0, np.arange(len(events)), len(controls) + events] = 1.0
            state = self._run_primer(tf.constant(inputs))
        return tuple((c.numpy(), h.numpy()) for c, h in state)

    def _position_gates(self) -> tuple[tf.Tensor, tf.Tensor]:
        """Layer 0's gate input from the position, per step of the position
        cycle, bias included ([cycle, 4 * units]: one row for a style without
        a position input, one per step of an 8-bar phrase for a metric style);
        and the kernel rows that take a request's own controls or style."""
        bias = self.bundle.model.biases[0]
        if not self.encoding.config.is_metric:
            return tf.convert_to_tensor(bias)[None], self._control_kernel
        styles = len(self.encoding.config.style_names)
        positions = self.encoding.position_table(
            self.metre, np.zeros(styles, np.float32) if styles else None)
        positions = positions[:, :positions.shape[1] - styles]
        gates = tf.matmul(positions, self._control_kernel[:positions.shape[1]]) + bias
        return gates, self._control_kernel[positions.shape[1]:]

    def _row_gates(self, controls: np.ndarray, style: np.ndarray | None) -> np.ndarray:
        """Layer 0's gate input from one request's controls (a conditioned style)
        or style blend (a metric style with a style input): [4 * units]."""
        values = style if self.encoding.config.is_metric else controls
        units = int(self._gates.shape[1])
        if values is None or not len(values):
            return np.zeros(units, np.float32)
        row = np.asarray(values, np.float32)[None]
        return tf.matmul(row, self._request_kernel).numpy()[0]

    def _run_primer_graph(self, inputs):
        return self.bundle.model.sequence_logits(inputs)[1]

    # ----- the compiled loop ------------------------------------------------------

    def _sample_block_graph(self, state, last_event, elapsed, notes, target_steps,
                            position_gates, row_gates, onset_allowed, first_position,
                            temperature, uniforms, length_uniforms):
        """Samples up to block_events events for every row.

        It is long on purpose: the loop's step is one closure that XLA compiles
        whole, reading the block's tensors directly; cut into helpers it would
        pass a dozen tensors through each call for no gain in clarity.

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
          target_steps: [batch] int32, steps wanted per row (0: a row at rest).
          position_gates: [cycle, 4*units0], position @ kernel + bias of layer 0
            for each step of the position cycle.
          row_gates: [batch, 4*units0], each row's controls or style @ kernel.
          onset_allowed: [cycle] bool, whether a note may start at each step.
          first_position: [batch] int32, the cycle step where each row starts.
          temperature: [batch] float32.
          uniforms: [block_events, batch] float32 in (0, 1), the numbers that pick
            each row's events (`block_uniforms`).
          length_uniforms: the same shape, the numbers that draw note lengths.

        Returns:
          events [block_events, batch] (PAD_EVENT once a row is done),
          the number of loop iterations run, and the new state, last events,
          elapsed steps and notes.
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

        grammar = self.note_grammar
        on_the_grid = grammar and self.encoding.config.is_metric  # known when tracing
        no_key = tf.ones([batch, 1])
        cycle = tf.shape(position_gates)[0]
        is_onset = tf.constant(self._on_keys_table >= 0)
        capping = grammar and self.scorer.references is not None  # known when tracing
        is_shift = tf.constant(self._time_shift_table > 0)
        shift_lengths = tf.range(1, int(self._time_shift_table.max()) + 1, dtype=tf.int32)

        def step(i, state, last_event, elapsed, notes, events):
            """One event for every row (long on purpose: see above)."""
            sounding, deadline, pending, quiet_since, silence_cap = notes
            (c, h), upper = state[0], state[1:]
            position = tf.math.floormod(first_position + elapsed, cycle)
            input_gates = (tf.gather(event_kernel, last_event)
                           + tf.gather(position_gates, position) + row_gates)
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
            if self._silent_onsets is not None:  # no note of a part the style leaves out
                logits = tf.where(self._silent_onsets[None, :], -1e9, logits)
            if on_the_grid:  # a metric style's note-on only on a 16th or triplet position
                here = tf.gather(onset_allowed, position)  # [batch]: may a note start now?
                off_grid = tf.logical_and(is_onset[None, :], tf.logical_not(here)[:, None])
                logits = tf.where(off_grid, -1e9, logits)
            if grammar:  # a note at its drawn length ends before anything else happens
                # steps until the first sounding note's end (0: one is due now)
                left = tf.maximum(tf.reduce_min(tf.where(sounding > 0, deadline, tf.int32.max),
                                                axis=1) - elapsed, 0)
                ending = left == 0
                overdue = tf.logical_and(sounding > 0, deadline <= elapsed[:, None])
                overdue_off = tf.gather(tf.concat([tf.zeros([batch, 1], tf.bool), overdue], 1),
                                        self._off_keys, axis=1)
                logits = tf.where(tf.logical_and(ending[:, None], tf.logical_not(overdue_off)),
                                  -1e9, logits)
            if capping:  # nothing sounds: the silence may last silence_cap steps
                silent = tf.logical_and(tf.reduce_max(sounding, axis=1) <= 0, silence_cap > 0)
                room = silence_cap - (elapsed - quiet_since)
                if on_the_grid:  # ...and ends where a note may start
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
                logits = tf.where(tf.logical_and(at_limit[:, None], is_shift[None, :]),
                                  -1e9, logits)
                pending = tf.where(at_limit, 0, pending)
            # Inverse-CDF sampling: one uniform number per variation and event.
            probabilities = tf.nn.softmax(logits / temperature[:, None])
            cdf = tf.cumsum(probabilities, axis=1)
            threshold = uniforms[i][:, None] * cdf[:, -1:]
            sample = tf.reduce_sum(tf.cast(cdf < threshold, tf.int32), axis=1)
            sample = tf.minimum(sample, num_classes - 1)
            if grammar:  # a time shift past the next note's end is split there: the rest
                # follows the note-off, so the music keeps the model's timing
                wanted = tf.where(pending > 0, pending, tf.gather(self._time_shift_steps, sample))
                if capping:
                    wanted = tf.where(capped, tf.minimum(wanted, landing), wanted)
                moving = tf.logical_and(wanted > 0, tf.logical_not(ending))
                played = tf.minimum(wanted, left)
                sample = tf.where(moving, tf.gather(self._shift_events, played), sample)
                pending = tf.where(moving, wanted - played, pending)
            active = elapsed < target_steps
            length = self._drawn_length(tf.gather(self._onset_roles, sample), length_uniforms[i])
            now = elapsed
            elapsed += tf.where(active, tf.gather(self._time_shift_steps, sample), 0)
            events = tf.tensor_scatter_nd_update(
                events, [[i]], tf.where(active, sample, PAD_EVENT)[None])
            last_event = tf.where(active, sample, last_event)
            started = tf.one_hot(tf.gather(self._on_keys, sample), self._num_keys + 1)[:, 1:]
            ended = tf.one_hot(tf.gather(self._off_keys, sample), self._num_keys + 1)[:, 1:]
            updated = tf.maximum(sounding * (1.0 - ended), started)
            fell_silent = tf.logical_and(tf.reduce_max(sounding, axis=1) > 0,
                                         tf.reduce_max(updated, axis=1) <= 0)
            quiet_since = tf.where(tf.logical_and(active, fell_silent), now, quiet_since)
            sounding = tf.where(active[:, None], updated, sounding)
            deadline = tf.where(started > 0, (now + length)[:, None], deadline)
            notes = (sounding, deadline, pending, quiet_since, silence_cap)
            return i + 1, tuple(new_state), last_event, elapsed, notes, events

        def keep_going(i, state, last_event, elapsed, notes, events):
            return tf.logical_and(i < self.block_events,
                                  tf.reduce_any(elapsed < target_steps))

        events = tf.fill([self.block_events, batch], PAD_EVENT)
        count, state, last_event, elapsed, notes, events = tf.while_loop(
            keep_going, step, (tf.constant(0), state, last_event, elapsed, notes, events))
        return events, count, state, last_event, elapsed, notes

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


def block_uniforms(streams: Sequence[tuple[int, int, int]], kind: int,
                   events: int) -> np.ndarray:
    """The uniform numbers in (0, 1) that pick the next `events` events of each
    row: [events, rows] float32.

    `streams` holds (seed, row, first event) per row (row: its place among
    its request's rows; first event: how many it has made); `kind` is
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


class SampleStream:
    """One row sampled without end, a few steps at a time (radio): its LSTM
    state, sounding notes, silence and random stream carry over from one
    `extend` to the next, so the music never restarts. Settings change
    between calls. Not safe to share between threads; the Sampler is."""

    def __init__(self, sampler: Sampler, plan: _Plan, row: _Row):
        self.sampler, self.plan, self.row = sampler, plan, row
        self.bpm = plan.bpm
        self.target = 0  # steps asked for so far
        self.notes_per_second, self.pitch_histogram = sampler._controls(plan.request.options)

    def steps_per_file_second(self) -> float:
        """Model steps in one second of audio at the stream's tempo."""
        return self.sampler.steps_per_file_second(self.bpm)

    def extend(self, steps: int) -> np.ndarray:
        """The event indices of the next `steps` steps of music. The last time
        shift may reach past them; the next call then starts that much later."""
        sampler, row = self.sampler, self.row
        self.target += int(steps)
        if row.elapsed >= self.target:
            return np.zeros(0, np.int32)
        row.target = self.target
        model_seconds = steps / float(self.plan.length.steps_per_second)
        row.max_events = row.count + int(MAX_EVENTS_PER_SECOND * model_seconds) \
            + sampler.block_events
        while not row.finished:
            sampler._sample_rows([row])
        events = list(row.events)
        row.events.clear()  # the stream keeps no history
        if row.elapsed < self.target:  # the model stopped moving time: the rest is silence
            shifts = sampler.encoding.time_shift_events(self.target - row.elapsed)
            events.append(np.asarray(shifts, np.int32))
            row.elapsed, row.last_event = self.target, int(shifts[-1])
        return np.concatenate(events) if events else np.zeros(0, np.int32)

    def change(self, bpm: float | None = None, temperature: float | None = None,
               notes_per_second: float | None = None,
               pitch_histogram: Sequence[float] | None = None) -> None:
        """New settings for the music after the next `extend`."""
        row, sampler = self.row, self.sampler
        if temperature is not None:
            row.temperature = float(temperature)
        if bpm is not None:
            self.bpm = float(bpm)
            row.silence_cap = sampler._silence_cap(self.bpm)
        if notes_per_second is not None or pitch_histogram is not None:
            if not sampler.encoding.control_signals:
                raise PerfRNNError(f"style {sampler.bundle.metadata.style!r} is not "
                                   "conditioned: it takes no note density or key")
            if notes_per_second is not None:
                self.notes_per_second = float(notes_per_second)
            if pitch_histogram is not None:
                self.pitch_histogram = tuple(pitch_histogram)
            controls = sampler.encoding.encode_controls(self.notes_per_second,
                                                        self.pitch_histogram)
            row.gates = sampler._row_gates(controls, self.plan.style)


def _rank(score: Score | None) -> tuple[bool, bool, float]:
    """A score as a sort key, higher better: scored before unscored, then
    without a defect (a silence or stuck passage beyond the norm) before with
    one, then by overall."""
    if score is None or score.overall is None:
        return False, False, -1.0
    return True, score.defect is None, score.overall
