"""Radio figures: gaps and clicks in long captures, tempo-change latency, cost and capacity.

1. **No gaps:** for each style, `--minutes` of a stream made as fast as it
   goes (`perfrnn.radio.Radio`, the server's engine), decoded by libsndfile
   (mpg123). The longest run under -60 dBFS in the audio against the longest
   rest in the stream's own notes plus 50 ms; and, for clicks, how far the
   audio made chunk by chunk is from the same notes rendered in one go.
2. **Tempo changes:** live streams (`webapp.radio.LiveStream`, paced in real
   time, a listener reading), the tempo changed at random moments; the
   latency from the change to the first note at the new tempo, in audio
   seconds after what the listener was hearing.
3. **Cost and capacity:** CPU seconds a second of audio for one stream, then
   N streams at once for `--seconds` each, with listeners: an underrun is a
   listener catching up with the music made (nothing left to play).

    python benchmarks/radio_figures.py --minutes 10 --out /tmp/radio_figures.json
"""

from __future__ import annotations

import argparse
import io
import json
import random
import resource
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def capture(sampler, seconds: float, seed: int) -> dict:
    import soundfile

    from perfrnn.audio import StreamSynth
    from perfrnn.options import GenerationOptions
    from perfrnn.radio import Radio, longest_quiet, longest_rest

    radio = Radio(sampler, GenerationOptions(seed=seed))
    played, rendered = [], []
    render = radio.synth.render

    def recording(messages, until):
        played.extend(messages)
        rendered.append(render(messages, until))
        return rendered[-1]

    radio.synth.render = recording
    data = []
    started, cpu = time.perf_counter(), cpu_seconds()
    while radio.seconds < seconds:
        data.append(radio.next_chunk())
    data.append(radio.close())
    took, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    whole = StreamSynth(radio.programs).render(played, radio.seconds)
    difference = float(np.abs(np.concatenate(rendered) - whole).max())
    audio, rate = soundfile.read(io.BytesIO(b"".join(data)), dtype="float32")
    samples = audio.mean(axis=1)
    return {"seconds": radio.seconds, "decoded_seconds": len(samples) / rate,
            "chunks": len(rendered), "longest_quiet": longest_quiet(samples, rate),
            "longest_rest": longest_rest(radio.heard),
            "chunked_vs_whole": difference, "peak": float(np.abs(whole).max()),
            "wall_per_audio_second": took / radio.seconds,
            "cpu_per_audio_second": cpu / radio.seconds}


def listener(stream, stop: threading.Event, lows: list) -> None:
    """Reads the stream as a player would, and notes the least lead seen."""
    chunks = stream.listen()
    for _ in chunks:
        lows.append(stream.radio.seconds - stream.heard_seconds())
        if stop.is_set():
            break
    chunks.close()


def tempo_latency(registry, trials: int) -> list[float]:
    from perfrnn.options import GenerationOptions
    from perfrnn.radio import Radio
    from webapp.radio import StreamHub

    hub = StreamHub(4)
    stream = hub.open(Radio(registry.sampler("rock"), GenerationOptions(seed=1)), "rock", {})
    stop, lows = threading.Event(), []
    reader = threading.Thread(target=listener, args=(stream, stop, lows))
    reader.start()
    latencies = []
    time.sleep(4)
    for trial in range(trials):
        time.sleep(random.uniform(2.0, 4.0))
        hearing = stream.heard_seconds()
        known = len(stream.radio.tempo_map)
        stream.change(bpm=150.0 if trial % 2 == 0 else 110.0)
        while len(stream.radio.tempo_map) == known:
            time.sleep(0.05)
        latencies.append(stream.radio.tempo_map[-1][0] - hearing)
    stop.set()
    hub.stop_all()
    reader.join(10)
    return latencies


def capacity(registry, count: int, seconds: float) -> dict:
    from perfrnn.options import GenerationOptions
    from perfrnn.radio import Radio
    from webapp.radio import StreamHub

    styles = ("rock", "piano", "drums", "electronic", "jazz", "latin")
    hub = StreamHub(count)
    streams = [hub.open(Radio(registry.sampler(styles[n % len(styles)]),
                              GenerationOptions(seed=n)), styles[n % len(styles)], {})
               for n in range(count)]
    stop = threading.Event()
    lows = [[] for _ in streams]
    readers = [threading.Thread(target=listener, args=(stream, stop, low))
               for stream, low in zip(streams, lows)]
    cpu = cpu_seconds()
    for reader in readers:
        reader.start()
    time.sleep(seconds)
    cpu = cpu_seconds() - cpu
    made = sum(stream.radio.seconds for stream in streams)
    stop.set()
    hub.stop_all()
    for reader in readers:
        reader.join(10)
    least = min((min(low) for low in lows if low), default=float("nan"))
    return {"streams": count, "least_lead_seconds": least, "underrun": bool(least < 0),
            "cpu_per_audio_second": cpu / max(made, 1e-9),
            "cores_busy": cpu / seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="each capture (0: none)")
    parser.add_argument("--styles", default="piano,rock,drums,electronic")
    parser.add_argument("--trials", type=int, default=6, help="tempo changes (0: none)")
    parser.add_argument("--seconds", type=float, default=30.0, help="each capacity run")
    parser.add_argument("--counts", default="2,4,6,8,10,12")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    from perfrnn.console import import_libraries_quietly

    import_libraries_quietly()
    from perfrnn.registry import StyleRegistry, StyleSource

    registry = StyleRegistry([StyleSource(ROOT / "bundles", "shipped")])
    figures: dict = {"captures": {}, "capacity": []}
    for style in args.styles.split(",") if args.minutes > 0 else ():
        row = capture(registry.sampler(style), args.minutes * 60, seed=7)
        figures["captures"][style] = row
        print(f"{style}: {row['seconds'] / 60:.1f} min in {row['chunks']} chunks, decoded "
              f"{row['decoded_seconds']:.2f} s; longest quiet {row['longest_quiet']:.2f} s "
              f"(longest rest in its notes {row['longest_rest']:.2f} s); chunked against "
              f"one go: {row['chunked_vs_whole']:.4f} at most (peak {row['peak']:.2f}); "
              f"CPU {row['cpu_per_audio_second']:.3f} s a second of audio", flush=True)
    latencies = tempo_latency(registry, args.trials) if args.trials else []
    figures["tempo_latency"] = latencies
    if latencies:
        print(f"tempo change heard after {statistics.median(latencies):.2f} s median, "
              f"{max(latencies):.2f} s at most ({len(latencies)} changes, rock at 110-150 BPM)",
              flush=True)
    for count in (int(n) for n in args.counts.split(",") if n):
        row = capacity(registry, count, args.seconds)
        figures["capacity"].append(row)
        print(f"{count} streams: least lead {row['least_lead_seconds']:.2f} s "
              f"({'UNDERRUN' if row['underrun'] else 'no underrun'}), "
              f"{row['cores_busy']:.2f} cores busy, CPU {row['cpu_per_audio_second']:.3f} s "
              "a second of audio", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
