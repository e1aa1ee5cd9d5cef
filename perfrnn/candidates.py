"""From a request's sampled rows to its variations: loops, candidates, repair.

- **Loops:** a looping variation is chosen from LOOP_CANDIDATES rows: the one
  whose end the model finds leads best back into its start (`loop_join_nll`).
- **Candidates:** of a variation's candidates, the one that best fits the
  style (`perfrnn.scoring`) is kept.
- **Repair:** a silence or stuck passage longer than the style's own music
  has is resampled from a bar before it, a few times (`repaired`).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from note_seq.protobuf import music_pb2

from perfrnn.encoding import Encoding, InputPlan
from perfrnn.errors import PerfRNNError
from perfrnn.model import PerformanceRNN
from perfrnn.request_plan import (
    CANDIDATE_STREAMS,
    LOOP_CANDIDATES,
    Generation,
    RequestPlan,
    RequestPlanner,
)
from perfrnn.scoring import Score

# A repair resamples the rest of a piece from a bar before a silence or stuck
# passage beyond the style's norm, at most this many times; try k of stream s
# draws from stream s + k * REPAIR_STREAMS.
REPAIR_ATTEMPTS = 4
REPAIR_STREAMS = 1 << 12


def finish(planner: RequestPlanner, plan: RequestPlan) -> Generation | PerfRNNError:
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
                rows = best_loops(planner, plan, rows)
            candidates.append(rows)
        chosen, repairs = [], 0
        for variation in range(options.variations):
            picks = []
            for candidate in range(plan.candidates):
                row = candidates[candidate][variation]
                sequence = planner.decode(np.concatenate([plan.primer_events, row]),
                                          plan.primer_steps, plan.length, plan.bpm,
                                          plan.input_plan.song)
                picks.append((row, sequence, planner.score(sequence, plan), candidate))
            row, sequence, score, candidate = max(
                picks, key=lambda pick: (rank(pick[2]), -pick[3]))
            if options.repair and score is not None and score.defect is not None \
                    and not options.loop:
                stream = variation + candidate * CANDIDATE_STREAMS
                row, sequence, score, tries = repaired(planner, plan, row, sequence, score,
                                                       stream)
                repairs += tries
            chosen.append((np.concatenate([plan.primer_events, row]), sequence, score))
    except PerfRNNError as error:
        return error
    if all(score is not None for _, _, score in chosen):
        order = sorted(range(len(chosen)), key=lambda i: (rank(chosen[i][2]), -i),
                       reverse=True)
        chosen = [chosen[i] for i in order]
    return Generation(sequences=[sequence for _, sequence, _ in chosen], seed=plan.seed,
                      events=[events for events, _, _ in chosen], bpm=plan.bpm,
                      metre=plan.metre, scores=[score for _, _, score in chosen],
                      repairs=repairs)


def rank(score: Score | None) -> tuple[bool, bool, float]:
    """A score as a sort key, higher better: scored before unscored, then
    without a defect (a silence or stuck passage beyond the norm) before with
    one, then by overall."""
    if score is None or score.overall is None:
        return False, False, -1.0
    return True, score.defect is None, score.overall


# ----- loops ------------------------------------------------------------------------


def best_loops(planner: RequestPlanner, plan: RequestPlan,
               rows: list[np.ndarray]) -> list[np.ndarray]:
    """Of each variation's LOOP_CANDIDATES candidates, the one whose end best
    leads back into its start: the lowest mean NLL of its own first bar fed
    right after its last event (the model's judgement of the join)."""
    scores = loop_join_nll(planner.bundle.model, planner.encoding, plan.primer_events, rows,
                           plan.length.bar_steps, plan.input_plan)
    best = []
    for variation in range(plan.request.options.variations):
        group = range(variation * LOOP_CANDIDATES, (variation + 1) * LOOP_CANDIDATES)
        best.append(rows[min(group, key=lambda i: scores[i])])
    return best


def loop_join_nll(model: PerformanceRNN, encoding: Encoding, prefix: np.ndarray,
                  rows: list[np.ndarray], bar_steps: int, inputs: InputPlan) -> list[float]:
    """For each row of new events after `prefix` (the start event or the
    primer's events), the mean NLL (nats/event) of the row's own first bar
    played again right after its end: low when the end leads back into the
    start (`join_nlls`)."""
    shifts = encoding.time_shift_steps()
    joins = [(prefix, row, row[:int(np.searchsorted(np.cumsum(shifts[row]), bar_steps)) + 1])
             for row in rows]
    return join_nlls(model, encoding, joins, inputs)


def join_nlls(model: PerformanceRNN, encoding: Encoding,
              joins: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
              inputs: InputPlan) -> list[float]:
    """Per (prefix, row, following): the mean NLL (nats/event) of `following`
    fed right after prefix + row. Scored in one batch, positions counted from
    the prefix's start as in sampling, read as teacher forcing reads them
    (`Encoding.teacher_inputs`, with the request's `inputs`)."""
    sequences = [np.concatenate([prefix, row, following]) for prefix, row, following in joins]
    scored = [len(following) for _, _, following in joins]
    # The prefix's rows are read once when every join shares it (an edit's
    # candidates, a loop's rows): its state then starts each row's reading.
    # (Not for a conditioned encoding: its control inputs look ahead of each event.)
    shared = len(joins[0][0]) - 1 if not encoding.control_signals and all(
        np.array_equal(prefix, joins[0][0]) for prefix, _, _ in joins) else 0
    state = None
    if shared > 0:
        head = encoding.teacher_inputs(sequences[0][:shared], inputs)
        _, state = model.sequence_logits(tf.constant(head[None]))
        state = tuple((tf.tile(c, [len(joins), 1]), tf.tile(h, [len(joins), 1]))
                      for c, h in state)
    longest = max(len(sequence) for sequence in sequences)
    batch = np.zeros((len(sequences), longest - 1 - shared, encoding.input_size), np.float32)
    for index, sequence in enumerate(sequences):
        rows = encoding.teacher_inputs(sequence[:-1], inputs)[shared:]
        batch[index, :len(rows)] = rows
    logits = model.sequence_logits(tf.constant(batch), state)[0].numpy()
    log_probs = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)
    scores = []
    for index, (sequence, count) in enumerate(zip(sequences, scored)):
        if not count:
            scores.append(0.0)
            continue
        labels = sequence[1 + shared:]
        positions = np.arange(len(labels) - count, len(labels))
        scores.append(float(-log_probs[index, positions, labels[positions]].mean()))
    return scores


# ----- repair -----------------------------------------------------------------------


def repaired(planner: RequestPlanner, plan: RequestPlan, row: np.ndarray,
             sequence: music_pb2.NoteSequence, score: Score,
             stream: int) -> tuple[np.ndarray, music_pb2.NoteSequence, Score, int]:
    """Resamples the rest of a piece from a bar before its first defect
    (`Score.defect`), up to REPAIR_ATTEMPTS times, keeping a try when it
    ends the defect or moves it later, or scores better.

    Returns (events, sequence, score, tries kept)."""
    rate = planner.steps_per_file_second(plan.bpm)
    shifts = planner.loop.time_shift_table
    accepted = 0
    for attempt in range(1, REPAIR_ATTEMPTS + 1):
        defect = score.defect  # it ends in the new music (see `RequestPlanner.score`)
        if defect is None:
            break
        plan.request.check_cancelled()
        start = max(defect.start - plan.metre.quarters_per_bar * 60.0 / plan.bpm, 0.0)
        cut_step = max(int(start * rate) - plan.primer_steps, 0)
        steps = np.cumsum(shifts[row])
        cut = int(np.searchsorted(steps, cut_step, side="right"))
        done = int(steps[cut - 1]) if cut else 0
        if done >= plan.length.steps:
            break
        tail = continuation(planner, plan, row[:cut], done,
                            stream + attempt * REPAIR_STREAMS)
        candidate = np.concatenate([row[:cut], tail])
        redone = planner.decode(np.concatenate([plan.primer_events, candidate]),
                                plan.primer_steps, plan.length, plan.bpm,
                                plan.input_plan.song)
        new_score = planner.score(redone, plan)
        later = new_score.defect is None or new_score.defect.start > defect.start + 1e-6
        if later or rank(new_score) > rank(score):
            row, sequence, score = candidate, redone, new_score
            accepted += 1
    return row, sequence, score, accepted


def continuation(planner: RequestPlanner, plan: RequestPlan, prefix: np.ndarray, done: int,
                 stream: int) -> np.ndarray:
    """New events for the rest of a request's music after `prefix` (its
    first `done` steps), sampled alone from random stream `stream`."""
    rest = planner.continuation_plan(plan, prefix, done)
    row = planner.new_row(rest, -1, 0)
    row.stream = stream
    while not row.finished:
        planner.loop.sample_rows([row])
    return np.concatenate(row.events) if row.events else np.zeros(0, np.int32)
