"""Audio rendering speed: seconds to turn a generated 30 s piece into a WAV file.

    .venv/bin/python benchmarks/render_speed.py
    .venv/bin/python benchmarks/render_speed.py --bundle bundles/rock.mag --repeats 9

Generates one piece with the bundle (not timed), then times
`perfrnn.audio.render_wav` on its MIDI file --repeats times and prints the
median and the fastest time and the realtime factor (seconds of audio per
second of rendering, from the median). Prints figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
import warnings
import wave
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
    parser.add_argument("--repeats", type=int, default=5, help="timed renders (default: 5)")
    parser.add_argument("--sample-rate", type=int, default=44100,
                        help="WAV sample rate (default: 44100)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    from perfrnn.audio import audio_available, render_wav, soundfont_path

    available, reason = audio_available()
    if not available:
        sys.exit(f"audio rendering is unavailable: {reason}")
    from perfrnn.bundle import read_bundle
    from perfrnn.generate import generate_midi
    from perfrnn.options import GenerationOptions
    from perfrnn.sampler import Sampler

    sampler = Sampler(read_bundle(args.bundle))
    options = GenerationOptions(seconds=args.seconds, seed=args.seed)
    generation = generate_midi(sampler, options)
    files = generation.files
    name, midi = files[0]
    notes = len(generation.sequences[0].notes)

    times, wav = [], b""
    for _ in range(args.repeats):
        start = time.perf_counter()
        wav = render_wav(midi, sample_rate=args.sample_rate)
        times.append(time.perf_counter() - start)
    with wave.open(io.BytesIO(wav)) as reader:
        audio_seconds = reader.getnframes() / reader.getframerate()
    median = statistics.median(times)
    print(f"piece: {name} from {args.bundle}, {notes} notes, {len(midi)} MIDI bytes")
    print(f"soundfont: {soundfont_path()}; {args.sample_rate} Hz stereo; cpu cores: "
          f"{os.cpu_count()}; {args.repeats} renders")
    print(f"audio: {audio_seconds:.2f} s, WAV {len(wav) / 1e6:.1f} MB")
    print(f"render: median {median:.3f} s, min {min(times):.3f} s, "
          f"realtime factor {audio_seconds / median:.0f}x")


if __name__ == "__main__":
    main()
