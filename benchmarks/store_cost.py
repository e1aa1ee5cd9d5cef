"""CPU a generation job spends on a finished piece after sampling: what the
job did before issue 26 (draw the piano roll, render the WAV) against what
it does now (the notes JSON, the NoteSequence and the events), and what a
first download of each file costs now.

    .venv/bin/python benchmarks/store_cost.py
    .venv/bin/python benchmarks/store_cost.py --bundle bundles/rock.mag --repeats 9

Generates one piece with the bundle (not timed), then times each step
--repeats times in this thread (`time.thread_time`: CPU seconds, which a
busy machine disturbs less than wall time) and prints the medians. Prints
figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.filterwarnings("ignore", message="Couldn't find ffmpeg")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", default=str(ROOT / "bundles" / "piano.mag"),
                        help="bundle that generates the piece (default: bundles/piano.mag)")
    parser.add_argument("--seconds", type=float, default=30.0,
                        help="length of the generated piece (default: 30)")
    parser.add_argument("--seed", type=int, default=1, help="generation seed (default: 1)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each step")
    return parser.parse_args()


def cpu_seconds(step, repeats: int) -> float:
    """The median CPU seconds of this thread over `repeats` calls of `step()`."""
    times = []
    for _ in range(repeats):
        started = time.thread_time()
        step()
        times.append(time.thread_time() - started)
    return statistics.median(times)


def main() -> None:
    args = parse_args()
    import numpy as np

    from perfrnn.audio import audio_available, render_mp3, render_wav
    from perfrnn.bundle import read_bundle
    from perfrnn.generate import generate_midi
    from perfrnn.notes_json import notes_json, sequence_from_notes
    from perfrnn.options import GenerationOptions
    from perfrnn.pianoroll import pianoroll_png
    from perfrnn.sampler import Sampler
    from perfrnn.stems import stems_zip

    audio, reason = audio_available()
    generated = generate_midi(Sampler(read_bundle(args.bundle)),
                              GenerationOptions(seconds=args.seconds, seed=args.seed))
    piece = generated.pieces[0]
    metre = (generated.metre.numerator, generated.metre.denominator)
    title = f"{generated.style} - seed {generated.seed}"
    print(f"piece: {piece.name} from {args.bundle}, {len(piece.sequence.notes)} notes, "
          f"{len(piece.tracks)} parts; CPU seconds, median of {args.repeats}")

    def stored_now() -> None:
        notes = notes_json(piece.sequence, piece.tracks, bpm=generated.bpm,
                           quantize=piece.quantized, time_signature=metre)
        json.dumps(notes, separators=(",", ":")).encode()
        piece.sequence.SerializeToString()
        np.save(io.BytesIO(), np.asarray(piece.events, np.int32), allow_pickle=False)

    def drawn_before() -> None:
        pianoroll_png(piece.sequence, piece.tracks, title=title)
        if audio:
            render_wav(piece.midi)

    pianoroll_png(piece.sequence, piece.tracks, title=title)  # matplotlib loaded: not timed
    before = cpu_seconds(drawn_before, args.repeats)
    now = cpu_seconds(stored_now, args.repeats)
    what = "piano roll and WAV" if audio else f"piano roll only (no audio here: {reason})"
    print(f"job before (a {what}): {before:.4f} s")
    print(f"job now (notes JSON, NoteSequence, events): {now:.4f} s")
    notes = notes_json(piece.sequence, piece.tracks, bpm=generated.bpm,
                       quantize=piece.quantized, time_signature=metre)
    firsts = {"pianoroll": lambda: pianoroll_png(*sequence_from_notes(notes), title=title),
              "stems": lambda: stems_zip(piece.midi, audio)}
    if audio:
        firsts = {"wav": lambda: render_wav(piece.midi), "mp3": lambda: render_mp3(piece.midi),
                  **firsts}
    print("first download now: " + ", ".join(
        f"{kind} {cpu_seconds(make, args.repeats):.4f} s" for kind, make in firsts.items()))


if __name__ == "__main__":
    main()
