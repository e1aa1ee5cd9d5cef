"""Do band styles fail the genre classifier because their notes ring too long?

    .venv/bin/python benchmarks/note_length_fidelity.py --percentile 75 \\
        --style rock=data/rock:BUNDLE ... [--real piano=data/piano ...] [--pieces 24]

The classifier of `python -m training classify` is trained on held-out real
music of every --style and --real corpus. Each bundle's generated pieces (30 s)
are labelled twice: as generated, and with every pitched note cut at the
given percentile of its part's note lengths in the style's training music
(a blunt stand-in for a model that ends its notes). Prints, per style, the
caps and the share heard as the style both ways; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.filterwarnings("ignore", message="Couldn't find ffmpeg")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--style", action="append", default=[], metavar="NAME=DATA:BUNDLE",
                        help="a band style: its prepared corpus and its bundle")
    parser.add_argument("--real", action="append", default=[], metavar="NAME=DATA",
                        help="another style the classifier knows (no bundle)")
    parser.add_argument("--percentile", type=float, default=75.0)
    parser.add_argument("--pieces", type=int, default=24, help="pieces per style")
    parser.add_argument("--seconds", type=float, default=30.0,
                        help="length of each generated piece and real excerpt (default: 30)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    import numpy as np

    from perfrnn.bundle import read_bundle
    from perfrnn.options import GenerationOptions
    from perfrnn.sampler import Sampler
    from training.classify import features, fit
    from training.evaluate import excerpts
    from training.prepare import read_prepared

    styles, corpora = {}, {}
    for item in args.style:
        name, _, rest = item.partition("=")
        data, _, bundle = rest.partition(":")
        corpora[name], styles[name] = Path(data), Path(bundle)
    for item in args.real:
        name, _, data = item.partition("=")
        corpora[name] = Path(data)
    rows, labels = [], []
    for name, data in corpora.items():
        held_out = [piece for piece in read_prepared(data, "validation") if piece.notes]
        for excerpt in excerpts(held_out, args.seconds, 10**6):
            rows.append(features(excerpt))
            labels.append(name)
    model = fit(np.array(rows), labels)

    for name, path in styles.items():
        training = [piece for piece in read_prepared(corpora[name], "train") if piece.notes]
        caps = {}
        for role in (1, 2, 3):  # bass, harmony, lead
            lengths = [note.end_time - note.start_time for piece in training
                       for note in piece.notes if note.instrument == role]
            if lengths:
                caps[role] = float(np.percentile(lengths, args.percentile))
        bundle = read_bundle(path)
        sampler = Sampler(bundle)
        raw, capped = [], []
        seed = 0
        while len(raw) < args.pieces:
            count = min(8, args.pieces - len(raw))
            for sequence in sampler.generate(GenerationOptions(
                    seconds=args.seconds, seed=seed, variations=count)).sequences:
                sequence.tempos.add(qpm=bundle.metadata.default_bpm)
                raw += model.predict(features(sequence))
                for note in sequence.notes:
                    if note.instrument in caps:
                        note.end_time = min(note.end_time, note.start_time + caps[note.instrument])
                capped += model.predict(features(sequence))
            seed += 1
        share = {kind: sum(label == name for label in heard) / len(heard)
                 for kind, heard in (("as generated", raw), ("notes cut", capped))}
        print(f"{name}: caps (s) {', '.join(f'{v:.2f}' for v in caps.values())}; heard as "
              f"{name}: {share['as generated']:.0%} as generated, {share['notes cut']:.0%} with "
              f"notes cut at the {args.percentile:g}th percentile "
              f"(most heard: {Counter(capped).most_common(2)})", flush=True)


if __name__ == "__main__":
    main()
