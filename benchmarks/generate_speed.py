"""Generation speed of the sampler: ms per second of music, ms per event, s per piece.

    .venv/bin/python benchmarks/generate_speed.py                  # 30 s and 600 s of piano
    .venv/bin/python benchmarks/generate_speed.py --bundle bundles/rock.mag --seconds 30 \\
        --batches 1 8
    .venv/bin/python benchmarks/generate_speed.py --code /tmp/old-checkout --code .

`Sampler.generate` is timed end to end (primer, compiled loop, decoding,
scoring) on a shipped bundle after compiling, with 30 s and 600 s of music
and one and eight variations. Each figure is the median of --rounds x
--repeats runs, since a shared machine is noisy:

- **ms per second of music**: wall time over the seconds of music made
  (variations x length): what a user waits for, whatever the encoding;
- **ms per event**: wall time over the events made (note-ons, note-offs,
  velocities and time shifts, forced note-offs and split shifts included);
  a change in how many events a second of music takes shows here and not
  in the figure above;
- **s per piece**: wall time of one request.

`--code DIR` (repeatable) times the `perfrnn` of another checkout (for
example `git worktree add /tmp/old 65b432b^`) in the same run: each round
runs each code in turn, each in a process of its own, so a busy machine
slows them alike. Without --code it times this checkout. Prints
figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", action="append", default=None,
                        help="bundle to time (repeatable; default bundles/piano.mag)")
    parser.add_argument("--seconds", type=float, nargs="+", default=[30.0, 600.0],
                        help="lengths of music to time (default: 30 600)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8],
                        help="variations per request (default: 1 8)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="processes per code and figure, in turn with the other codes "
                             "(default: 3)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs per process, after a warm-up (default: 3)")
    parser.add_argument("--code", action="append", default=None,
                        help="a checkout whose perfrnn to time (repeatable; default: this one)")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # one timing, as JSON
    return parser.parse_args(argv)


def time_in_this_process(code: str, bundle_path: str, seconds: float, batch: int,
                         runs: int, seed: int) -> dict:
    """Times `runs` requests with the perfrnn of `code` (after a warm-up that
    compiles); returns the wall times and events made."""
    import time

    sys.path.insert(0, str(Path(code).resolve()))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from perfrnn.bundle import read_bundle
    from perfrnn.options import GenerationOptions
    from perfrnn.sampler import Sampler

    sampler = Sampler(read_bundle(bundle_path))
    sampler.generate(GenerationOptions(seconds=min(seconds, 5.0), seed=1, variations=batch))
    times, events = [], []
    for run in range(runs):
        options = GenerationOptions(seconds=seconds, seed=seed + run, variations=batch)
        start = time.perf_counter()
        generation = sampler.generate(options)
        times.append(time.perf_counter() - start)
        events.append(sum(len(made) for made in generation.events))
    return {"times": times, "events": events}


def time_in_child(code: str, bundle: str, seconds: float, batch: int, runs: int,
                  seed: int) -> dict:
    """`runs` timed requests in a fresh process running `code`'s perfrnn."""
    job = json.dumps({"code": code, "bundle": bundle, "seconds": seconds, "batch": batch,
                      "runs": runs, "seed": seed})
    result = subprocess.run([sys.executable, __file__, "--child", job], capture_output=True,
                            text=True, check=False, cwd=ROOT)
    if result.returncode:
        raise SystemExit(f"timing {code} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.child:
        job = json.loads(args.child)
        print(json.dumps(time_in_this_process(job["code"], job["bundle"], job["seconds"],
                                              job["batch"], job["runs"], job["seed"])))
        return
    bundles = args.bundle or [str(ROOT / "bundles" / "piano.mag")]
    codes = args.code or [str(ROOT)]
    print(f"median of {args.rounds} x {args.repeats} runs, each code in its own process in turn; "
          f"cpu cores: {os.cpu_count()}")
    print(f"{'code':<28} {'bundle':<12} {'seconds':>7} {'batch':>5} {'ms/s music':>10} "
          f"{'ms/event':>8} {'s/piece':>8} {'events':>7}")
    for bundle in bundles:
        for seconds in args.seconds:
            for batch in args.batches:
                runs = {code: {"times": [], "events": []} for code in codes}
                for round_ in range(args.rounds):
                    for code in codes:
                        timing = time_in_child(code, bundle, seconds, batch, args.repeats,
                                               100 + round_ * args.repeats)
                        runs[code]["times"] += timing["times"]
                        runs[code]["events"] += timing["events"]
                for code in codes:
                    times, events = runs[code]["times"], runs[code]["events"]
                    wall = statistics.median(times)
                    per_event = statistics.median(t / e for t, e in zip(times, events))
                    print(f"{str(code)[-28:]:<28} {Path(bundle).stem:<12} {seconds:>7g} "
                          f"{batch:>5} {wall * 1000 / (seconds * batch):>10.2f} "
                          f"{per_event * 1000:>8.3f} {wall:>8.3f} "
                          f"{statistics.median(events):>7g}", flush=True)


if __name__ == "__main__":
    main()
