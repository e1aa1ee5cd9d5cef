"""Planning a request: from options and a primer to the rows the loop samples,
and from a row's events back to music.

A request becomes a `RequestPlan`: its seed, tempo, length, planned inputs
(`perfrnn.encoding.InputPlan`), the LSTM state and notes its primer leaves,
and how many rows it needs (variations x candidates x loop candidates). Each
row then starts as a `perfrnn.sampling_loop.Row` (`RequestPlanner.new_row`).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from note_seq import sequences_lib
from note_seq.protobuf import music_pb2

from perfrnn.bundle import Bundle
from perfrnn.chords import key_transposition, transpose_chord
from perfrnn.encoding import InputPlan, history_rows
from perfrnn.errors import PerfRNNError
from perfrnn.metre import COMMON_TIME, Metre
from perfrnn.multitrack import PITCHES
from perfrnn.options import (
    GenerationOptions,
    LengthPlan,
    ProgressCallback,
    candidates_within_budget,
    check_primer,
    length_plan,
    pitch_histogram_for_key,
)
from perfrnn.plan_guide import GUIDE_COLUMNS, guide_table
from perfrnn.sampling_loop import MAX_PLAN_BARS, Row, RowGates, SamplingLoop
from perfrnn.scoring import Score, StyleScorer
from perfrnn.song_form import SongPlan, annotate_song, plan_song

# A model that stops moving time forward is cut off after this many events per
# second of music asked for (dense piano runs about 100); the rest is silence.
MAX_EVENTS_PER_SECOND = 400
# A loop is chosen from this many candidates per variation, sampled in one batch.
LOOP_CANDIDATES = 4
# Candidate c of a row draws from stream row + c * CANDIDATE_STREAMS, so the
# first candidate is the piece one candidate gives (rows per request: at most
# MAX_VARIATIONS * LOOP_CANDIDATES = 64).
CANDIDATE_STREAMS = 64


@dataclass
class SampleRequest:
    """One caller's request, to be sampled alone or batched with others
    (see `perfrnn.sampler.Sampler.generate` for what each part means)."""

    options: GenerationOptions
    primer: music_pb2.NoteSequence | None = None
    progress: ProgressCallback | None = None
    cancelled: Callable[[], bool] | None = None

    def check_cancelled(self) -> None:
        """Raises PerfRNNError when the caller has cancelled."""
        if self.cancelled is not None and self.cancelled():
            raise PerfRNNError("generation was cancelled")


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


@dataclass
class RequestPlan:
    """A request made ready to sample: what its rows start from and need."""

    request: SampleRequest
    seed: int
    bpm: float
    length: LengthPlan
    input_plan: InputPlan  # its planned inputs: metre, controls, style
    primer_events: np.ndarray
    primer_steps: int
    rows: int
    candidates: int  # per variation (`candidates_within_budget`)
    state: tuple  # the LSTM state after the primer, (c, h) per layer, each [1, units]
    history: list[np.ndarray]  # each history input's state after the primer
    silence_cap: int  # the longest a silence may last, in steps (0: any)
    quiet_since: int  # where the primer's closing silence began (<= 0), in steps
    row_gates: RowGates  # layer 0's input from its row inputs, per bar of its song
    first_position: int  # the step of the position cycle where its new music starts
    sounding: np.ndarray  # [keys]: 1 for each note the primer leaves sounding
    max_events: int
    plan_step: int = 0  # steps of its song plan before its rows' new music
    # its plan's guide per bar (`perfrnn.plan_guide.guide_table`; one free bar without)
    guide_bars: np.ndarray = field(default_factory=lambda: np.zeros((1, GUIDE_COLUMNS),
                                                                    np.int32))
    joined: int = 0  # rows that have joined the batch so far
    generated: dict[int, np.ndarray] = field(default_factory=dict)  # events per finished row

    @property
    def metre(self) -> Metre:
        return self.input_plan.metre


class RequestPlanner:
    """Plans the requests of one style and turns their rows back into music."""

    def __init__(self, bundle: Bundle, scorer: StyleScorer, loop: SamplingLoop):
        self.bundle, self.scorer, self.loop = bundle, scorer, loop
        self.encoding = loop.encoding
        self.metre = loop.metre

    def plan(self, request: SampleRequest, song: SongPlan | None = None) -> RequestPlan:
        """Everything about one request that its rows need, primer state
        included; `song`, if given, is its song plan (an extended piece keeps
        the bars it has, `perfrnn.edits`), else the request's own."""
        options = request.options
        options.validate()
        seed = options.resolved_seed()
        encoding, metadata = self.encoding, self.bundle.metadata
        if (options.notes_per_second is not None or options.pitch_histogram is not None) \
                and not encoding.control_signals:
            raise PerfRNNError(
                f"style {metadata.style!r} is not conditioned: it takes no "
                "note density or key; leave them out")
        controls = encoding.encode_controls(*self.controls(options))
        bpm = float(options.bpm or metadata.default_bpm)
        length = length_plan(options, bpm, metadata.default_bpm, self.metre, encoding)
        primer_events, primer_steps = self.primer_events(request.primer, length.bar_steps)
        candidates = (1 if self.scorer.neutral else  # nothing to choose with
                      candidates_within_budget(options.candidates, options.variations,
                                               length.file_seconds))
        input_plan = InputPlan(metre=self.metre, controls=controls, style=self.style(options),
                               song=song or self.song(options, length, seed),
                               song_start=primer_steps,
                               bar_steps=length.bar_steps)
        state, history = self.primer_state(primer_events, input_plan)
        request.check_cancelled()  # the primer took time
        guide_bars = (guide_table(input_plan.song) if input_plan.song is not None
                      else np.zeros((1, GUIDE_COLUMNS), np.int32))
        return RequestPlan(
            guide_bars=guide_bars,
            request=request, seed=seed, bpm=bpm, length=length, input_plan=input_plan,
            primer_events=primer_events, primer_steps=primer_steps,
            rows=options.variations * candidates * (LOOP_CANDIDATES if options.loop else 1),
            candidates=candidates, state=state, history=history,
            row_gates=self.loop.row_gates(self.encoding.row_inputs(input_plan)),
            silence_cap=self.silence_cap(bpm),
            quiet_since=-self.loop.closing_silence(primer_events),
            first_position=primer_steps % self.loop.cycle,
            sounding=self.loop.sounding_after(primer_events),
            max_events=int(MAX_EVENTS_PER_SECOND * length.model_seconds)
            + self.loop.block_events)

    def continuation_plan(self, plan: RequestPlan, prefix: np.ndarray,
                          done: int) -> RequestPlan:
        """A plan for one row of the rest of `plan`'s music after `prefix`
        (its first `done` steps of new music)."""
        events = np.concatenate([plan.primer_events, prefix])
        steps = plan.primer_steps + done
        state, history = self.primer_state(events, plan.input_plan)
        return dataclasses.replace(
            plan, primer_events=events, primer_steps=steps,
            length=dataclasses.replace(plan.length, steps=plan.length.steps - done),
            state=state, history=history, first_position=steps % self.loop.cycle,
            plan_step=plan.plan_step + done, sounding=self.loop.sounding_after(events),
            quiet_since=-self.loop.closing_silence(events), rows=1, joined=0, generated={})

    def new_row(self, plan: RequestPlan, index: int, row: int) -> Row:
        """Row `row` of request `index`, as the primer leaves it."""
        per_candidate = max(plan.rows // plan.candidates, 1)
        candidate, place = divmod(row, per_candidate)
        return Row(index=index, row=row, stream=place + candidate * CANDIDATE_STREAMS,
                   silence_cap=plan.silence_cap, quiet_since=plan.quiet_since,
                   seed=plan.seed, target=plan.length.steps,
                   max_events=plan.max_events, gates=plan.row_gates.gates,
                   bar_rows=plan.row_gates.bar_rows, guide_bars=plan.guide_bars,
                   plan_step=plan.plan_step,
                   bar_steps=plan.length.bar_steps, first_position=plan.first_position,
                   temperature=plan.request.options.temperature,
                   state=[part[0] for layer in plan.state for part in layer],
                   history=list(plan.history),
                   last_event=int(plan.primer_events[-1]), sounding=plan.sounding,
                   # its sounding notes may last their part's longest length from here
                   deadline=np.repeat(self.loop.longest_steps, PITCHES))

    # ----- what a request asks for ------------------------------------------------

    def controls(self, options: GenerationOptions):
        """The request's note density and key, else the style's typical ones."""
        config = self.encoding.config
        defaults = self.bundle.metadata.default_controls or {}
        notes_per_second = options.notes_per_second
        if notes_per_second is None and config.has_density_control:
            notes_per_second = defaults.get("notes_per_second")
        pitch_histogram = options.pitch_histogram
        if (pitch_histogram is None and config.has_pitch_histogram_control
                and defaults.get("key")):
            pitch_histogram = pitch_histogram_for_key(defaults["key"])
        return notes_per_second, pitch_histogram

    def song(self, options: GenerationOptions, length: LengthPlan, seed: int) -> SongPlan | None:
        """The request's song plan: its form over the bars it makes, with its
        chords or the style's own progression (`BundleMetadata.progressions`,
        in its key or one drawn from the seed). None for a style that reads
        no song plan, or one with no chords to follow."""
        progressions = self.bundle.metadata.progressions
        if not self.encoding.reads_song or not (options.chords or progressions):
            return None
        bars = MAX_PLAN_BARS if options.song_form == "endless" else \
            min(-(-length.steps // max(length.bar_steps, 1)), MAX_PLAN_BARS)
        if options.chords:
            return plan_song(max(bars, 1), options.song_form, tuple(options.chords))
        draw = random.Random(f"{seed}:song")
        main = tuple(draw.choice(progressions))
        bridge = tuple(draw.choice(progressions))
        shift = key_transposition(options.key) if options.key else draw.randint(-5, 6)
        return plan_song(max(bars, 1), options.song_form,
                         tuple(transpose_chord(chord, shift) for chord in main),
                         tuple(transpose_chord(chord, shift) for chord in bridge))

    def style(self, options: GenerationOptions) -> np.ndarray:
        """The style input: the request's blend, else the bundle's own style
        (empty for a model without a style input, which takes no blend)."""
        own = self.bundle.metadata.style_mix if self.encoding.config.style_names else None
        return self.encoding.style_vector(dict(options.blend or ()) or own)

    def steps_per_file_second(self, bpm: float) -> float:
        """Model steps in one second of the file at `bpm` (see
        `perfrnn.encoding.Encoding.steps_per_file_second`)."""
        return float(self.encoding.steps_per_file_second(bpm, self.bundle.metadata.default_bpm))

    def silence_cap(self, bpm: float) -> int:
        """The longest silence the style's own music has (its 99th percentile),
        in model steps of a request at `bpm`; 0 (no cap) without references."""
        references = self.scorer.references
        if references is None:
            return 0
        return max(int(references.silence_limit * self.steps_per_file_second(bpm)), 1)

    # ----- the primer -----------------------------------------------------------------

    def primer_events(self, primer: music_pb2.NoteSequence | None,
                      bar_steps: int | None = None) -> tuple[np.ndarray, int]:
        """Event indices of the primer (at least one) and its length in steps.

        The primer's parts go onto the style's roles
        (`Encoding.primer_sequence`); a primer of a style whose steps are
        beats is read on its own beat and padded to the bar line after its
        last event, so the new music starts on a downbeat.
        """
        encoding = self.encoding
        if primer is None or not primer.notes:
            return np.array([encoding.start_event()], np.int32), 0
        check_primer(primer)
        primer = encoding.primer_sequence(primer)
        shifts = self.loop.time_shift_table
        steps = int(encoding.steps_at(primer, [primer.total_time])[0])
        events = encoding.events_from_sequence(primer)
        # Onsets snap forward and notes last a step: the events may end after total_time.
        steps = max(steps, int(shifts[events].sum()))
        if encoding.follows_tempo and bar_steps:
            steps = -(-steps // bar_steps) * bar_steps
        events = encoding.events_from_sequence(primer, total_steps=steps)
        return events, int(shifts[events].sum())

    def primer_state(self, events: np.ndarray, input_plan: InputPlan) -> tuple[tuple, list]:
        """The LSTM state after `events` but the last (which the loop feeds
        first), and each history input's state after all of them."""
        rows = self.encoding.inputs(events, input_plan)
        history = []
        if self.loop.history:
            history = self.history_after(events, 0, self.loop.initial_history())
        return self.loop.lstm_state_after(rows[:-1]), history

    def history_after(self, events: np.ndarray, first_step: int,
                      states: list[np.ndarray]) -> list[np.ndarray]:
        """Each history input's state after `events`, from `states` at
        `first_step` (`perfrnn.encoding.history_rows`)."""
        positions = (first_step + np.cumsum(self.loop.time_shift_table[events])) \
            % self.loop.cycle
        return history_rows(self.loop.history, events, positions, states)[1]

    # ----- back to music ---------------------------------------------------------------

    def decode(self, events: np.ndarray, primer_steps: int, length: LengthPlan,
               bpm: float, song: SongPlan | None = None) -> music_pb2.NoteSequence:
        """One variation's events as a NoteSequence that plays at `bpm` and lasts
        the primer plus exactly `length.file_seconds`; the bars of `song` it
        played are its chord and section annotations (`annotate_song`)."""
        native_bpm = self.bundle.metadata.default_bpm
        rate = length.steps_per_second
        total_seconds = (primer_steps + length.steps) / rate
        sequence = self.encoding.sequence_from_events(events, total_seconds,
                                                      steps_per_second=rate)
        # a style whose steps are beats plays at `bpm`; another is stretched to it
        stretch = 1.0 if self.encoding.follows_tempo else native_bpm / bpm
        end_seconds = primer_steps / rate * stretch + length.file_seconds
        self._end_notes(sequence, native_bpm / bpm if self.encoding.follows_tempo else 1.0)
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
        sequence.time_signatures.add(time=0.0, numerator=self.metre.numerator,
                                     denominator=self.metre.denominator)
        if song is not None:
            seconds_per_bar = self.metre.quarters_per_bar * 60.0 / bpm
            annotate_song(sequence, song, primer_steps / rate * stretch, seconds_per_bar,
                          end_seconds)
        return sequence

    def _end_notes(self, sequence: music_pb2.NoteSequence, scale: float) -> None:
        """Marks drum parts' notes and ends every note at its part's longest
        length (`scale` times the seconds at the style's own tempo). The loop
        ends every note it tracks in time; this also ends a note struck again
        while sounding, which a one-track decoding keeps open."""
        roles = self.bundle.metadata.tracks
        longest = self.loop.longest_seconds
        for note in sequence.notes:
            if note.instrument < len(roles):  # a drum style's notes are drum hits
                note.is_drum = roles[note.instrument].is_drum
            if note.instrument < len(longest):
                limit = float(longest[note.instrument]) * scale
                note.end_time = min(note.end_time, note.start_time + limit)

    def score(self, sequence: music_pb2.NoteSequence, plan: RequestPlan) -> Score | None:
        """The score of a piece's new music (after the primer), or None when the
        style has nothing to score with."""
        if self.scorer.neutral:
            return None
        return self.scorer.score(sequence, plan.request.options.blend,
                                 after=plan.primer_steps / self.steps_per_file_second(plan.bpm))
