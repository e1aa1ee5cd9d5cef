"""Is the music on the beat? Figures for metric styles, as a DAW would show them.

    .venv/bin/python benchmarks/beat_figures.py bundles/drums.mag bundles/rock.mag \\
        bundles/electronic.mag [--pieces 20] [--loops 20]

For each bundle it prints:

- **grid**: the share of drum hits of default pieces of --seconds (30 s; quantise off)
  within 1/24 beat of the 1/16 or triplet grid of the file's own tempo map,
  read back from the MIDI bytes with note-seq's reader (random onsets give
  0.5; `perfrnn.metre.onset_grid_fit`);
- **downbeats**: the share of bars whose beat 1 carries the kick
  (`perfrnn.metre.downbeat_share`);
- **bars**: `--bars 8` at 60, 97 and 180 BPM: the tick of the last note-off and
  of each track's end, against bar 8's tick (read with mido);
- **loops**: 4-bar loops repeated four times: the onsets within half a bar of
  each join (bar 4 into bar 1) against their range around the loop's own three
  inner bar lines (fewer is a hole, more a pile-up), and the notes still
  sounding across a join (none should be).

Prints figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.filterwarnings("ignore", message="Couldn't find ffmpeg")

TICKS = 480


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundles", nargs="+", help="metric .mag bundles")
    parser.add_argument("--pieces", type=int, default=20, help="pieces per style (default: 20)")
    parser.add_argument("--seconds", type=float, default=30.0,
                        help="length of each piece for the grid figures (default: 30)")
    parser.add_argument("--loops", type=int, default=20, help="4-bar loops per style")
    parser.add_argument("--temperature", type=float, default=1.0)
    return parser.parse_args()


def midi_notes(data: bytes):
    """(file, [(on tick, off tick, pitch, is drum)]) read back with mido."""
    import mido

    midi = mido.MidiFile(file=io.BytesIO(data))
    notes = []
    for track in midi.tracks:
        tick, sounding = 0, {}
        for message in track:
            tick += message.time
            if message.type == "note_on" and message.velocity > 0:
                sounding[(message.channel, message.note)] = tick
            elif message.type in ("note_on", "note_off"):
                start = sounding.pop((message.channel, message.note), None)
                if start is not None:
                    notes.append((start, tick, message.note, message.channel == 9))
    return midi, notes


def onsets_around(onsets: list[int], line: int, bar: int) -> int:
    """Onsets within half a bar either side of the bar line at tick `line` of a
    4-bar loop played round (ticks wrap at 4 bars)."""
    return sum(1 for on in onsets if (on - line + bar // 2) % (4 * bar) < bar)


def main() -> None:
    args = parse_args()
    import note_seq

    from perfrnn.bundle import read_bundle
    from perfrnn.generate import generate_midi
    from perfrnn.metre import downbeat_share, onset_grid_fit
    from perfrnn.options import GenerationOptions
    from perfrnn.sampler import Sampler

    for path in args.bundles:
        bundle = read_bundle(path)
        sampler = Sampler(bundle)
        name = bundle.metadata.style
        bar = round(sampler.metre.quarters_per_bar * TICKS)

        on_grid, downbeats = [], []
        for seed in range(args.pieces):
            files = generate_midi(sampler, GenerationOptions(
                seconds=args.seconds, seed=seed, temperature=args.temperature)).files
            # The file as a MIDI reader sees it: its own tempo map and time signature.
            played = note_seq.midi_to_note_sequence(files[0][1])
            if not any(note.is_drum for note in played.notes):
                continue
            on_grid.append(onset_grid_fit(played, drums_only=True))
            downbeats.append(downbeat_share(played))
        print(f"{name}: grid {statistics.mean(on_grid):.3f} "
              f"(min {min(on_grid):.3f}), downbeat kick {statistics.mean(downbeats):.3f} "
              f"over {len(on_grid)} pieces of {args.seconds:g} s")

        for bpm in (60, 97, 180):
            files = generate_midi(sampler, GenerationOptions(bars=8, bpm=bpm, seed=1)).files
            midi, notes = midi_notes(files[0][1])
            ends = {sum(message.time for message in track) for track in midi.tracks}
            print(f"  --bars 8 at {bpm} BPM: last note-off at tick "
                  f"{max(off for _, off, _, _ in notes)}, tracks end at {sorted(ends)}, "
                  f"bar 8 ends at {8 * bar}; {midi.length:.3f} s")

        outside = across = 0
        for seed in range(args.loops):
            files = generate_midi(sampler, GenerationOptions(bars=4, loop=True, seed=seed)).files
            _, notes = midi_notes(files[0][1])
            onsets = [on for on, *_ in notes]
            inside = [onsets_around(onsets, line * bar, bar) for line in (1, 2, 3)]
            join = onsets_around(onsets, 0, bar)  # bar 4 into bar 1, as at each join
            outside += not min(inside) <= join <= max(inside)
            across += sum(1 for _, off, _, _ in notes if off > 4 * bar)
        print(f"  loops: {args.loops} 4-bar loops, each repeated 4 times: the onsets around "
              f"the joins fall outside the range around the loop's own bar lines in "
              f"{outside}; {across} notes sound across a join")


if __name__ == "__main__":
    main()
