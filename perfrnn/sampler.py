"""The sampler: generates music in a style, one request or a batch of them.

`Sampler` is what callers hold, one per style. The work is in modules that
each read top to bottom:

- `perfrnn.sampling_loop`: the compiled loop over events and its tables;
- `perfrnn.request_plan`: a request's options and primer made into rows,
  and rows decoded back to music;
- `perfrnn.batching`: rows of several requests sampled as one batch;
- `perfrnn.candidates`: loops, best-of-N candidates and repair;
- `perfrnn.sample_stream`: one row sampled without end (radio).

What the model reads, and how time moves, is the encoding's
(`perfrnn.encoding`); the sampler never asks which encoding it holds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence

import tensorflow as tf
from note_seq.protobuf import music_pb2

from perfrnn.batching import generate_batch
from perfrnn.bundle import Bundle
from perfrnn.errors import PerfRNNError
from perfrnn.metre import COMMON_TIME, Metre, parse_metre
from perfrnn.options import GenerationOptions, ProgressCallback
from perfrnn.request_plan import Generation, RequestPlanner, SampleRequest
from perfrnn.sample_stream import SampleStream
from perfrnn.sampling_loop import COMPILED_AHEAD, SamplingLoop
from perfrnn.scoring import StyleScorer, scorer_for

__all__ = ["Generation", "SampleRequest", "SampleStream", "Sampler", "use_cpu_threads"]


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


def polyphony_cap(bundle: Bundle, scorer: StyleScorer) -> int:
    """The most notes a one-part pitched style (a piano) may sound at once:
    the middle of its own music's range of polyphony per passage (its
    references' 1st to 99th percentiles), rounded; 0 (any) for other styles
    and without references. Left alone, the piano model piles notes up:
    6.5 pitches at once (MusPy's polyphony) against its music's 3.4; with
    this cap (4) it plays 4.1."""
    tracks = bundle.metadata.played_tracks
    references = scorer.references
    if len(tracks) != 1 or tracks[0].is_drum or references is None \
            or references.polyphony_range is None:
        return 0
    low, high = references.polyphony_range
    return max(round((low + high) / 2), 2)


class Sampler:
    """Generates music from one bundle; build once, call `generate` many times.

    Args:
      bundle: The loaded style.
      block_events: Events per compiled call (bounds how often progress is
        reported; the compiled loop itself runs all of them).
      note_grammar: Sample a note-off only for a note that is sounding, and a
        note-on only where the encoding lets one start (a metric style: on a
        sixteenth or eighth-triplet position, the only onsets its encoding
        keeps from real music). A model that loses track of its open notes
        otherwise spends note-offs on silent pitches (they are dropped) and
        leaves the sounding ones hanging; renormalising over the events that
        make sense keeps its choices among them. The grammar also ends each
        note at a length drawn from its part's notes in the style's training
        music if the model has not ended it by then
        (`perfrnn.note_lengths`), and lets no silence last longer than the
        longest the style's own music has (its 99th percentile,
        `perfrnn.scoring`): at that point a note must start (where one may).
        False samples the raw model, as Magenta does.
      scorer: Judges candidates and finds passages to repair (default: the
        bundle's own, `perfrnn.scoring.scorer_for`).
    """

    def __init__(self, bundle: Bundle, block_events: int = 2048, note_grammar: bool = True,
                 scorer: StyleScorer | None = None):
        self.bundle = bundle
        self.scorer = scorer if scorer is not None else scorer_for(bundle)
        self.loop = SamplingLoop(bundle, self.metre, block_events, note_grammar,
                                 silence_capped=self.scorer.references is not None,
                                 polyphony_cap=polyphony_cap(bundle, self.scorer))
        self.encoding = self.loop.encoding
        self.planner = RequestPlanner(bundle, self.scorer, self.loop)

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
        with times in seconds as the file plays at `options.bpm`. A style
        whose steps are beats plays its grid at that tempo; any other style's
        music is stretched to it from the style's own tempo.

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
        variation, candidate or loop candidate), at most MAX_BATCH_ROWS at a
        time (`perfrnn.batching`).

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
        return generate_batch(self.planner, requests, more)

    def open_stream(self, options: GenerationOptions) -> SampleStream:
        """A stream of music without end (see `SampleStream`), from `options`'
        seed, temperature, tempo, controls, blend and chords (its length is
        ignored; a style that reads a song plays the "endless" form)."""
        options = dataclasses.replace(options, seconds=1.0, bars=None, loop=False,
                                      variations=1, candidates=1, form="endless")
        plan = self.planner.plan(SampleRequest(options))
        row = self.planner.new_row(plan, 0, 0)
        row.target = 0
        return SampleStream(self.planner, plan, row)

    def compile(self, batch_sizes: Sequence[int] = COMPILED_AHEAD) -> None:
        """Compiles the sampling loop for each of `batch_sizes` now (about a
        second each on a laptop's CPU), so that no request waits for it
        (default: every batch size but the rare 32 rows)."""
        self.loop.compile(batch_sizes)

    def steps_per_file_second(self, bpm: float) -> float:
        """Model steps in one second of the file at `bpm`: a style whose steps
        are beats counts them at `bpm`; another is sampled at its own tempo
        and stretched to `bpm`."""
        return self.planner.steps_per_file_second(bpm)

    @property
    def metre(self) -> Metre:
        """The metre the style plays in (4/4 unless its bundle says otherwise)."""
        return parse_metre(self.bundle.metadata.time_signature or COMMON_TIME.name)
