"""Editing a generated piece: regenerate chosen bars (and parts), or extend it.

A Performance RNN reads left to right, so an edit is a continuation:

- **Regenerate bars a..b.** The LSTM is run over the piece's own events up to
  the start of bar a (its state then is exactly the state the piece had
  there), and EDIT_CANDIDATES continuations of bars a..b are sampled from it
  as one batch. The music after bar b is kept as it was. The model cannot see
  it while sampling (it only reads the past), so each candidate is judged
  afterwards by how well it leads into it: the mean NLL of the JOIN_BARS bars
  after the selection, read right after the candidate (`join_nlls`, the rule
  the loop option judges its join with). The lowest wins; candidates within
  JOIN_TIE of it are told apart by the style score.
- **Regenerate some parts only.** Inside the selection the other parts are fed
  as they are: sampling runs from one step where a kept part plays to the
  next, any note the model makes for a kept part is dropped, and the kept
  parts' own events at that step are fed to the model before it goes on
  (`forced_sampling`). The model hears the kept parts up to the present,
  never ahead of it: a left-to-right LSTM cannot plan a bass line towards a
  drum fill it has not heard yet.
- **Extend.** The piece's events are the primer of N more bars of its own song
  plan, made for the longer length (the same seed draws the same chords).

Everything outside the selection stays as it was, note for note: the new
piece is the source's notes with the selection's notes (of the parts picked)
replaced by the chosen candidate's (`merged_notes`); the model's events are
stitched the same way, so an edit of an edit continues from what is heard.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from note_seq.protobuf import music_pb2

from perfrnn.candidates import join_nlls, rank
from perfrnn.configs import TrackRole
from perfrnn.errors import PerfRNNError
from perfrnn.generate import HUMAN_TIMING_LIMIT_SECONDS, apply_feel
from perfrnn.multitrack import PITCHES
from perfrnn.options import GenerationOptions
from perfrnn.request_plan import RequestPlan, RequestPlanner, SampleRequest
from perfrnn.sampler import Sampler
from perfrnn.scoring import Score
from perfrnn.song_form import continued_song

KINDS = ("regenerate", "extend")
EDIT_CANDIDATES = 4  # continuations sampled as one batch per edit
JOIN_BARS = 1  # bars after a selection its join is judged on
JOIN_TIE = 0.02  # nats/event: joins this close are told apart by the style score
MAX_EXTEND_BARS = 64
MAX_PART_EDIT_BARS = 8
"""The most bars a parts edit regenerates: it samples from each step where a
kept part plays to the next, each time from the whole piece's state."""
# A candidate of a selection draws from stream c * EDIT_STREAMS + segment,
# the segments of a parts edit counted from 0.
EDIT_STREAMS = 1 << 16


@dataclass(frozen=True)
class Edit:
    """What to change. Bars count from 1 at the start of the file, inclusive.

    Attributes:
      kind: "regenerate" (bars first_bar..last_bar) or "extend" (`bars` more).
      parts: Names of the parts to resample (`TrackRole.name`); () for all.
      seed: The random streams of the new music.
      temperature: Of the new music's sampling (1.0 as trained).
    """

    kind: str
    first_bar: int = 1
    last_bar: int = 1
    bars: int = 0
    parts: tuple[str, ...] = ()
    seed: int = 0
    temperature: float = 1.0


@dataclass
class EditedPiece:
    """The new version: its notes as the file plays them (feel applied to the
    new notes only), its model events (primer included) and its options (a
    longer length after an extend).

    `join`: the chosen candidate's join NLL (nats/event), `original_join` the
    source's own over the same bars (None after an extend, or a selection
    that ends the piece). `window`: the seconds of the file that changed."""

    sequence: music_pb2.NoteSequence
    events: np.ndarray
    options: GenerationOptions
    score: Score | None
    join: float | None
    original_join: float | None
    window: tuple[float, float]


def bars_in(plan: RequestPlan) -> int:
    """Bars of the file `plan` makes, the primer's included (the last may be part of one)."""
    return math.ceil((plan.primer_steps + plan.length.steps) / plan.length.bar_steps - 1e-9)


def split_at_step(events: np.ndarray, shifts: np.ndarray, step: int,
                  shift_events) -> tuple[np.ndarray, np.ndarray]:
    """`events` cut where they reach `step` steps: (before, after), where
    `before` moves exactly `step` steps (a time shift across the cut is split
    in two; events past the end are padded with shifts) and `after` starts with
    the first event played at `step` or later. `shift_events(n)` gives the
    shift events of n steps."""
    events = np.asarray(events, np.int32)
    if step <= 0:
        return events[:0], events
    elapsed = np.cumsum(shifts[events])
    reached = int(np.searchsorted(elapsed, step, side="left"))  # first reaching `step`
    if reached >= len(events):
        made = int(elapsed[-1]) if len(events) else 0
        return np.concatenate([events, np.array(shift_events(step - made), np.int32)]), \
            events[len(events):]
    before, after = events[:reached + 1], events[reached + 1:]
    over = int(elapsed[reached]) - step
    if over > 0:  # the shift that crosses the cut is split there
        start = int(elapsed[reached - 1]) if reached else 0
        before = np.concatenate([events[:reached],
                                 np.array(shift_events(step - start), np.int32)])
        after = np.concatenate([np.array(shift_events(over), np.int32), after])
    return before.astype(np.int32), after.astype(np.int32)


class EventParts:
    """Which part (role) each event of an encoding belongs to, for mixing the
    events of some parts from one stream with the rest from another."""

    def __init__(self, planner: RequestPlanner):
        encoding = planner.encoding
        on_keys, off_keys, _ = encoding.note_keys()
        key = np.where(on_keys >= 0, on_keys, off_keys)
        self.role = np.where(key >= 0, key // PITCHES, -1)  # -1: no note
        self.shifts = planner.loop.time_shift_table
        self.velocity = encoding.velocities()
        self.is_onset = on_keys >= 0
        self.shift_events = encoding.time_shift_events

    def timed(self, events: np.ndarray, velocity: int = 0) -> list[tuple[int, int, int]]:
        """(step, velocity event in force, event) of each note event in
        `events`, `velocity` in force before them."""
        notes, step = [], 0
        for event in np.asarray(events, np.int64):
            if self.shifts[event]:
                step += int(self.shifts[event])
            elif self.velocity[event]:
                velocity = int(event)
            elif self.role[event] >= 0:
                notes.append((step, velocity, int(event)))
        return notes

    def mixed(self, first: np.ndarray, second: np.ndarray, from_first, steps: int,
              velocity: int, through: bool = False) -> np.ndarray:
        """`steps` steps of music: the note events of roles `from_first(role)`
        from `first` and the rest from `second`, in time order (at one step
        `first`'s come first), with a velocity event where the velocity
        changes (`velocity`: the velocity event in force before them).
        `through`: `second`'s events at `steps` itself come last, after the
        final shift (what is fed before the music at `steps` is sampled)."""
        notes = [note for note in self.timed(first, velocity)
                 if from_first(self.role[note[2]]) and note[0] < steps]
        notes += [note for note in self.timed(second, velocity)
                  if not from_first(self.role[note[2]])
                  and (note[0] < steps or (through and note[0] == steps))]
        notes.sort(key=lambda note: note[0])  # stable: `first`'s first at one step
        out, now = [], 0
        for step, wanted, event in notes:
            out += self.shift_events(step - now)
            now = step
            if wanted and wanted != velocity and self.is_onset[event]:
                out.append(wanted)
                velocity = wanted
            out.append(event)
        out += self.shift_events(steps - now)
        return np.array(out, np.int32)


def part_roles(tracks: tuple[TrackRole, ...], parts: tuple[str, ...],
               played: set[int]) -> set[int]:
    """The roles of the parts named (`TrackRole.name`, as the file and the
    notes JSON name them); every played role when none are."""
    if not parts:
        return set(played)
    names = {track.name: index for index, track in enumerate(tracks)}
    unknown = [name for name in parts if name not in names]
    if unknown:
        raise PerfRNNError(f"there is no part {unknown[0]!r} in this piece; its parts are: "
                           + ", ".join(track.name for track in tracks))
    return {names[name] for name in parts}


def edit_piece(sampler: Sampler, options: GenerationOptions, events: np.ndarray,
               sequence: music_pb2.NoteSequence, tracks: tuple[TrackRole, ...], edit: Edit,
               primer: music_pb2.NoteSequence | None = None,
               feel: str = "straight",
               check: Callable[[], None] | None = None) -> EditedPiece:
    """The piece (`events` from the sampler, primer included; `sequence` as its
    file plays) made with `options` (and `primer`), edited by `edit`.

    `check()` is called between sampling blocks (it raises PerfRNNError to
    stop: the caller cancelled).

    Raises:
      PerfRNNError: the edit asks for bars outside the piece, an empty
        selection, a part it does not have, or too many bars.
    """
    planner = sampler.planner
    if edit.kind not in KINDS:
        raise PerfRNNError(f"kind must be one of {', '.join(KINDS)}, got {edit.kind!r}")
    options = dataclasses.replace(options, variations=1, candidates=1)
    plan = planner.plan(SampleRequest(options, primer))
    start = len(plan.primer_events)
    events = np.asarray(events, np.int32)
    if len(events) < start or not np.array_equal(events[:start], plan.primer_events):
        raise PerfRNNError("this piece's events do not match its settings; generate it again")
    row = events[start:]
    if edit.kind == "extend":
        if edit.parts:
            raise PerfRNNError("an extend adds every part; leave parts out")
        return _extended(sampler, plan, row, sequence, tracks, edit, feel, check)
    return _regenerated(sampler, plan, row, sequence, tracks, edit, feel, check)


def _selection(plan: RequestPlan, edit: Edit) -> tuple[int, int]:
    """The steps of new music (after the primer) bars first..last span."""
    bars = bars_in(plan)
    first, last = edit.first_bar, edit.last_bar
    if first > last:
        raise PerfRNNError(f"the selection is empty: bar {first} comes after bar {last}")
    if first < 1 or last > bars:
        raise PerfRNNError(f"bars {first}-{last} are outside the piece: it has bars 1-{bars}")
    bar_steps = plan.length.bar_steps
    begin = (first - 1) * bar_steps - plan.primer_steps
    if begin < 0:
        primer_bars = math.ceil(plan.primer_steps / bar_steps)
        raise PerfRNNError(f"bars 1-{primer_bars} are the primer you gave; choose bars after it")
    end = min(last * bar_steps - plan.primer_steps, plan.length.steps)
    return begin, end


def _regenerated(sampler: Sampler, plan: RequestPlan, row: np.ndarray,
                 sequence: music_pb2.NoteSequence, tracks: tuple[TrackRole, ...], edit: Edit,
                 feel: str, check: Callable[[], None] | None) -> EditedPiece:
    planner = sampler.planner
    parts = EventParts(planner)
    split = _splitter(parts)
    begin, end = _selection(plan, edit)
    before, rest = split(row, begin)
    original, after = split(rest, end - begin)
    played = {int(role) for role in parts.role[row] if role >= 0} | set(range(len(tracks)))
    chosen = part_roles(tracks, edit.parts, played)
    kept = played - chosen
    if kept and edit.last_bar - edit.first_bar + 1 > MAX_PART_EDIT_BARS:
        raise PerfRNNError(f"regenerate at most {MAX_PART_EDIT_BARS} bars of chosen parts at "
                           "once (every part: any number)")
    velocity = _velocity_after(parts, np.concatenate([plan.primer_events, before]))
    made = forced_sampling(planner, plan, before, begin, end - begin, original, chosen, kept,
                           edit, velocity, check)
    head = np.concatenate([plan.primer_events, before])
    # the music after the selection, under the velocity the source had there
    resumed = _velocity_after(parts, np.concatenate([head, original]))

    onsets = np.flatnonzero(parts.is_onset[after])
    marks = np.flatnonzero(parts.velocity[after] > 0)
    # a note-on after the selection before any velocity event of its own
    unmarked = len(onsets) and (not len(marks) or onsets[0] < marks[0])

    def continued(row: np.ndarray) -> np.ndarray:
        if unmarked and resumed and \
                _velocity_after(parts, np.concatenate([head, row])) != resumed:
            return np.concatenate([np.array([resumed], np.int32), after])
        return after

    rows = made + [original]
    afters = [continued(row) for row in rows]
    music_after = end < plan.length.steps
    joins = (join_nlls(planner.bundle.model, planner.encoding,
                       [(head, row, split(rest, plan.length.bar_steps * JOIN_BARS)[0])
                        for row, rest in zip(rows, afters)], plan.input_plan)
             if music_after else [0.0] * len(rows))
    window = _seconds(planner, plan, begin), _seconds(planner, plan, end)
    picks = []
    for index, candidate in enumerate(made):
        events = np.concatenate([head, candidate, afters[index]])
        decoded = planner.decode(events, plan.primer_steps, plan.length, plan.bpm,
                                 plan.input_plan.song)
        new = merged_notes(sequence, apply_feel(decoded, feel, plan.bpm, edit.seed), window,
                           chosen, slack=_slack(feel))
        picks.append((joins[index], new, events, index))
    best = min(join for join, *_ in picks)
    ties = [pick for pick in picks if pick[0] <= best + JOIN_TIE]
    scored = [(pick, planner.score(pick[1], plan)) for pick in ties]
    (join, new, events, _), score = max(scored, key=lambda item: (rank(item[1]), -item[0][3]))
    return EditedPiece(new, events, plan.request.options, score,
                       join if music_after else None, joins[-1] if music_after else None,
                       window)


def _extended(sampler: Sampler, plan: RequestPlan, row: np.ndarray,
              sequence: music_pb2.NoteSequence, tracks: tuple[TrackRole, ...], edit: Edit,
              feel: str, check: Callable[[], None] | None) -> EditedPiece:
    planner = sampler.planner
    if not 1 <= edit.bars <= MAX_EXTEND_BARS:
        raise PerfRNNError(f"extend by 1 to {MAX_EXTEND_BARS} bars, not {edit.bars}")
    options = plan.request.options
    seconds_per_bar = plan.metre.quarters_per_bar * 60.0 / plan.bpm
    longer = (dataclasses.replace(options, bars=options.bars + edit.bars) if options.bars
              else dataclasses.replace(options, seconds=options.seconds
                                       + edit.bars * seconds_per_bar))
    try:
        longer.validate()
    except PerfRNNError as error:
        raise PerfRNNError(f"the piece cannot grow by {edit.bars} bars: {error}") from None
    long_plan = planner.plan(SampleRequest(longer, plan.request.primer))
    if plan.input_plan.song is not None and long_plan.input_plan.song is not None:
        # the bars made so far keep their chords and sections
        long_plan = planner.plan(SampleRequest(longer, plan.request.primer),
                                 continued_song(plan.input_plan.song, long_plan.input_plan.song))
    parts = EventParts(planner)
    before, _ = _splitter(parts)(row, plan.length.steps)
    steps = long_plan.length.steps - plan.length.steps
    played = set(range(len(tracks)))
    velocity = _velocity_after(parts, np.concatenate([plan.primer_events, before]))
    made = forced_sampling(planner, long_plan, before, plan.length.steps, steps,
                           np.zeros(0, np.int32), played, set(), edit, velocity, check)
    head = np.concatenate([long_plan.primer_events, before])
    picks = []
    for index, candidate in enumerate(made):
        events = np.concatenate([head, candidate])
        decoded = planner.decode(events, long_plan.primer_steps, long_plan.length,
                                 long_plan.bpm, long_plan.input_plan.song)
        # the new music's first step, which is whole, at the latest the file's old end
        window = (min(sequence.total_time, _seconds(planner, long_plan, plan.length.steps)),
                  decoded.total_time)
        new = merged_notes(sequence, apply_feel(decoded, feel, plan.bpm, edit.seed), window,
                           played, extend=decoded, slack=_slack(feel))
        picks.append((planner.score(new, long_plan), new, events, index))
    score, new, events, _ = max(picks, key=lambda pick: (rank(pick[0]), -pick[3]))
    return EditedPiece(new, events, longer, score, None, None, window)


def _slack(feel: str) -> float:
    """How far (s) a feel may move an onset either way (swing keeps beats apart)."""
    return HUMAN_TIMING_LIMIT_SECONDS if feel == "human" else 0.0


def _splitter(parts: EventParts):
    def split(events: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray]:
        return split_at_step(events, parts.shifts, step, parts.shift_events)
    return split


def _velocity_after(parts: EventParts, events: np.ndarray) -> int:
    """The velocity event in force after `events` (0: none)."""
    marks = np.flatnonzero(parts.velocity[events] > 0)
    return int(events[marks[-1]]) if len(marks) else 0


def _seconds(planner: RequestPlanner, plan: RequestPlan, step: int) -> float:
    """The file's time (s) at `step` steps of new music."""
    return (plan.primer_steps + step) / planner.steps_per_file_second(plan.bpm)


def forced_sampling(planner: RequestPlanner, plan: RequestPlan, before: np.ndarray,
                    begin: int, steps: int, original: np.ndarray, chosen: set[int],
                    kept: set[int], edit: Edit, velocity: int,
                    check: Callable[[], None] | None = None) -> list[np.ndarray]:
    """EDIT_CANDIDATES continuations, `steps` long, of `plan`'s new music
    `before` (its first `begin` steps), sampled as one batch. With `kept`
    parts, their events of `original` (the same steps as the source played
    them) are fed as they are: each candidate is sampled up to the next step
    where a kept part plays, any kept part's note it made is dropped, the kept
    parts' events there are appended, and sampling resumes from the state
    they leave. Returns each candidate's events, `steps` long."""
    parts = EventParts(planner)
    split = _splitter(parts)
    is_chosen = chosen.__contains__
    forced_steps = {step for step, _, event in parts.timed(original)
                    if int(parts.role[event]) in kept and 0 < step < steps}
    stops = sorted(forced_steps) + [steps]
    made = [np.zeros(0, np.int32) for _ in range(EDIT_CANDIDATES)]
    done = 0
    for segment, stop in enumerate(stops):
        # what is heard before sampling from `done`: the kept parts as they were
        prefixes = [parts.mixed(candidate, original, is_chosen, done, velocity, through=True)
                    if kept else candidate for candidate in made]
        rows = []
        for index, prefix in enumerate(prefixes):
            rest = planner.continuation_plan(plan, np.concatenate([before, prefix]),
                                             begin + done)
            row = planner.new_row(rest, -1, index)
            row.seed, row.stream = edit.seed, index * EDIT_STREAMS + segment
            row.temperature = edit.temperature
            row.target = stop - done
            rows.append(row)
        while not all(row.finished for row in rows):
            if check is not None:
                check()
            planner.loop.sample_rows([row for row in rows if not row.finished])
        for index, row in enumerate(rows):
            new = np.concatenate(row.events) if row.events else np.zeros(0, np.int32)
            made[index] = np.concatenate([prefixes[index], split(new, stop - done)[0]])
        done = stop
    if kept:
        made = [parts.mixed(candidate, original, is_chosen, steps, velocity)
                for candidate in made]
    return [split(candidate, steps)[0] for candidate in made]


def merged_notes(source: music_pb2.NoteSequence, new: music_pb2.NoteSequence,
                 window: tuple[float, float], roles: set[int],
                 extend: music_pb2.NoteSequence | None = None,
                 slack: float = 0.0) -> music_pb2.NoteSequence:
    """`source` with the notes of `roles` that start in `window` (seconds,
    start inclusive, both ends `slack` seconds earlier: a human feel moves
    onsets up to that much, either way) replaced by `new`'s there. A new note that would sound
    into a kept note of its pitch and part is ended at that note's start.
    With `extend` (the longer decoding), the file grows to its length and
    takes its annotations (chords, sections) from the window's start on."""
    begin, end = window[0] - slack, window[1] - slack

    def inside(note) -> bool:
        return begin - 1e-9 <= note.start_time < end - 1e-9 and note.instrument in roles

    merged = music_pb2.NoteSequence()
    merged.CopyFrom(source)
    del merged.notes[:]
    kept = [note for note in source.notes if not inside(note)]
    added = [note for note in new.notes if inside(note)]
    onsets: dict[tuple[int, int], list[float]] = {}
    for note in kept:
        onsets.setdefault((note.instrument, note.pitch), []).append(note.start_time)
    for note in added:
        later = [time for time in onsets.get((note.instrument, note.pitch), ())
                 if time > note.start_time + 1e-9]
        if later:
            note.end_time = min(note.end_time, min(later))
    for note in sorted(kept + added, key=lambda note: (note.start_time, note.instrument,
                                                        note.pitch)):
        merged.notes.add().CopyFrom(note)
    if extend is not None:
        merged.total_time = extend.total_time
        for field in ("text_annotations", "section_annotations"):
            old, grown = getattr(source, field), getattr(extend, field)
            kept_marks = [mark for mark in old if mark.time < begin - 1e-9]
            added_marks = [mark for mark in grown if mark.time >= begin - 1e-9]
            del getattr(merged, field)[:]
            for mark in kept_marks + added_marks:
                getattr(merged, field).add().CopyFrom(mark)
    return merged
