"""Regenerated selections: is everything outside them kept, and do they join?

    .venv/bin/python benchmarks/edit_joins.py                       # 20 edits per shipped style
    .venv/bin/python benchmarks/edit_joins.py --bundle bundles/rock.mag --edits 5 --parts

For each bundle, --edits pieces of --seconds (seeds 0, 1, ...) are generated,
and in each a selection of --bars bars, drawn from the seed among the bars
that have music after them, is regenerated (`perfrnn.edits`; with --parts,
one part drawn from the style's parts, the others fed as they are). It
prints, per style:

- kept: edits whose notes outside the selection (and, with --parts, every
  other part's notes) are all unchanged, and edits whose model note events
  before and after the selection are unchanged, event by event, each at its
  step (and a note-on at its velocity; with --parts, the selection's kept parts are not
  counted here);
- join: the median over edits of the chosen candidate's join NLL (nats per
  event of the bar after the selection, read right after it) and of the
  original's over the same bar; and the edits whose join is no worse;
- seconds per edit (median).

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SHIPPED = ("piano", "drums", "rock", "electronic", "jazz", "latin", "blues", "funk")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", action="append", default=None,
                        help="bundle to edit (repeatable; default: every shipped style)")
    parser.add_argument("--edits", type=int, default=20, help="edits per bundle (20)")
    parser.add_argument("--seconds", type=float, default=30.0,
                        help="length of each piece (30)")
    parser.add_argument("--bars", type=int, default=2, help="bars per selection (2)")
    parser.add_argument("--parts", action="store_true",
                        help="regenerate one part of a band style, the others fed as they are")
    return parser.parse_args(argv)


def onsets(sequence, keep) -> list[tuple]:
    return sorted((round(note.start_time, 6), round(note.end_time, 6), note.pitch,
                   note.velocity, note.instrument) for note in sequence.notes if keep(note))


def main(argv=None) -> None:
    args = parse_args(argv)
    from perfrnn.bundle import read_bundle
    from perfrnn.edits import Edit, EventParts, bars_in, edit_piece
    from perfrnn.generate import tracks_for_program
    from perfrnn.options import GenerationOptions
    from perfrnn.request_plan import SampleRequest
    from perfrnn.sampler import Sampler

    bundles = args.bundle or [str(ROOT / "bundles" / f"{name}.mag") for name in SHIPPED]
    print(f"{'style':<12} {'edits':>5} {'notes kept':>10} {'events kept':>11} "
          f"{'join new':>8} {'join old':>8} {'no worse':>8} {'s/edit':>6}")
    for path in bundles:
        sampler = Sampler(read_bundle(path))
        metadata = sampler.bundle.metadata
        tracks = tracks_for_program(metadata.tracks, None, None, metadata.parts)
        names = [track.name for track in metadata.played_tracks]
        parts = EventParts(sampler.planner)
        kept_notes = kept_events = no_worse = 0
        joins, originals, seconds = [], [], []
        for seed in range(args.edits):
            options = GenerationOptions(seconds=args.seconds, seed=seed)
            generation = sampler.generate(options)
            source, sequence = generation.events[0], generation.sequences[0]
            plan = sampler.planner.plan(SampleRequest(options))
            draw = random.Random(seed)
            last_start = max(bars_in(plan) - args.bars, 1)  # music after the selection
            first = draw.randint(1, last_start)
            picked = (draw.choice(names),) if args.parts and len(names) > 1 else ()
            edit = Edit("regenerate", first_bar=first, last_bar=first + args.bars - 1,
                        parts=picked, seed=1000 + seed)
            started = time.perf_counter()
            edited = edit_piece(sampler, options, source, sequence, tracks, edit)
            seconds.append(time.perf_counter() - started)
            begin, end = edited.window
            changed = {index for index, track in enumerate(tracks)
                       if not picked or track.name in picked}

            def outside(note, begin=begin, end=end, changed=changed):
                return not (begin - 1e-9 <= note.start_time < end - 1e-9
                            and note.instrument in changed)

            kept_notes += onsets(edited.sequence, outside) == onsets(sequence, outside)
            # every note event outside the selection, with its step and velocity
            low = (first - 1) * plan.length.bar_steps - plan.primer_steps
            high = low + args.bars * plan.length.bar_steps
            start = len(plan.primer_events)
            outside_events = [[(step, velocity if parts.is_onset[event] else 0, event)
                               for step, velocity, event in parts.timed(events[start:])
                               if not low <= step < high]
                              for events in (source, edited.events)]
            kept_events += outside_events[0] == outside_events[1]
            if edited.join is not None:
                joins.append(edited.join)
                originals.append(edited.original_join)
                no_worse += edited.join <= edited.original_join + 1e-9
        name = Path(path).stem
        join_new = statistics.median(joins) if joins else float("nan")
        join_old = statistics.median(originals) if originals else float("nan")
        print(f"{name:<12} {args.edits:>5} {kept_notes:>10} {kept_events:>11} "
              f"{join_new:>8.3f} {join_old:>8.3f} {no_worse:>8} "
              f"{statistics.median(seconds):>6.2f}", flush=True)


if __name__ == "__main__":
    main()
