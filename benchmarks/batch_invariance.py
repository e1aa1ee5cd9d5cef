"""Is a request's music the same alone and batched with others?

    .venv/bin/python benchmarks/batch_invariance.py                 # 64 pieces per style
    .venv/bin/python benchmarks/batch_invariance.py --bundle bundles/rock.mag --pieces 16

A lone row runs on XLA's matrix-vector path, a batch of rows on its matrix
product, and the two round the last bit differently
(`perfrnn/sampling_loop.py`). For each bundle, --pieces requests (one
variation, --seconds long, seeds 0 to pieces - 1) are sampled alone, then
the same requests in batches of --batch, and the script prints how many
pieces differ in any event and how many events were compared. Prints
figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", action="append", default=None,
                        help="bundle to check (repeatable; default: bundles/piano.mag and "
                             "bundles/rock.mag)")
    parser.add_argument("--pieces", type=int, default=64, help="requests per bundle (64)")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each (30)")
    parser.add_argument("--batch", type=int, default=8, help="requests per batch (8)")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    from perfrnn.bundle import read_bundle
    from perfrnn.options import GenerationOptions
    from perfrnn.sampler import Sampler, SampleRequest

    bundles = args.bundle or [str(ROOT / "bundles" / name) for name in ("piano.mag", "rock.mag")]
    print(f"{'bundle':<12} {'pieces':>6} {'differ':>6} {'events compared':>15}")
    for path in bundles:
        sampler = Sampler(read_bundle(path))
        requests = [SampleRequest(GenerationOptions(seconds=args.seconds, seed=seed))
                    for seed in range(args.pieces)]
        alone = [sampler.generate(request.options).events[0] for request in requests]
        batched = {}
        for first in range(0, len(requests), args.batch):
            group = requests[first:first + args.batch]
            for index, generation in sampler.generate_batch(group):
                batched[first + index] = generation.events[0]
        differ = sum(not (len(alone[i]) == len(batched[i]) and (alone[i] == batched[i]).all())
                     for i in range(len(requests)))
        compared = sum(len(events) for events in alone)
        print(f"{Path(path).stem:<12} {len(requests):>6} {differ:>6} {compared:>15}", flush=True)


if __name__ == "__main__":
    main()
