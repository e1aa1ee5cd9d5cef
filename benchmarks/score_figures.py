"""Scoring figures: the scorer's speed, best-of-N fidelity and repairs, per shipped style.

For each style, 100 pieces of 30 s (temperature 1.0, seeds 0 to 99) are
generated three ways in the same run:

- **raw:** one candidate, no silence cap and no repair (the sampler before
  scoring: its scorer has no references);
- **N = 1:** one candidate, with the silence cap and repair (quality "fast");
- **N = 8:** eight candidates, the best kept (quality "best").

It prints, per way, the mean style match of the pieces (the shipped
classifier's probability of the style) against that of the style's real
held-out music (cross-validated, from `bundles/scoring.json`); the genre
fidelity (the share of pieces the classifier hears as the style), by the
shipped classifier and by an **independent** one trained on other music
(the training splits, which the selecting classifier never saw); and how
many pieces break the repair rule: a silence longer than the 99th
percentile of the corpus's silences, or one pitch repeated alone for more
than 4 s where the corpus never does that. Then the scorer's own time.

    python benchmarks/score_figures.py --pieces 100 --out /tmp/score_figures.json

Needs the prepared corpora in data/ (see bundles/README.md; --data for
another folder) for the independent classifier; give --no-independent
without them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STYLES = {"piano": "piano", "drums": "drums-band", "rock": "rock", "electronic": "electronic",
          "jazz": "jazz", "latin": "latin", "blues": "blues"}  # their corpora in --data
OTHER_STYLES = {"funk": "funk", "country": "country"}  # known to the classifier
ONE_PITCH_SECONDS = 4.0


def independent_classifier(seconds: float, data: Path):
    """A classifier trained on the training splits' excerpts (at most 300 per
    style) of the prepared corpora in `data`."""
    import numpy as np

    from perfrnn.style_classifier import features
    from training.classify import fit
    from training.evaluate import excerpts
    from training.prepare import read_prepared

    rows, labels = [], []
    for style, folder in {**STYLES, **OTHER_STYLES}.items():
        for excerpt in excerpts(read_prepared(data / folder, "train"), seconds, limit=300):
            rows.append(features(excerpt))
            labels.append(style)
    return fit(np.array(rows), labels)


def breaks_rule(score, references) -> bool:
    """A silence past the corpus's 99th percentile, or one pitch alone past 4 s
    where the corpus never does that."""
    stuck = (score.longest_one_pitch > ONE_PITCH_SECONDS
             and references.one_pitch_longest_seconds <= ONE_PITCH_SECONDS)
    return score.longest_silence > references.silence_p99_seconds + 1e-6 or stuck


def generate(sampler, pieces: int, seconds: float, candidates: int) -> list:
    """`pieces` NoteSequences with their scores, seeds 0.. (one variation each)."""
    from perfrnn.options import GenerationOptions
    from perfrnn.sampler import SampleRequest

    requests = [SampleRequest(GenerationOptions(seconds=seconds, seed=seed,
                                                candidates=candidates))
                for seed in range(pieces)]
    made = [None] * pieces
    for index, generation in sampler.generate_batch(requests):
        if isinstance(generation, Exception):
            raise generation
        made[index] = (generation.sequences[0], generation.scores[0], generation.repairs)
    return made


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pieces", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--styles", default=",".join(STYLES))
    parser.add_argument("--no-independent", action="store_true")
    parser.add_argument("--data", type=Path, default=ROOT / "data",
                        help="folder of the prepared corpora for the independent classifier "
                             "(default: data/)")
    parser.add_argument("--out", default=None, help="also write the figures as JSON")
    args = parser.parse_args()

    from perfrnn.console import import_libraries_quietly

    import_libraries_quietly()
    from perfrnn.bundle import read_bundle
    from perfrnn.sampler import Sampler
    from perfrnn.scoring import scorer_for
    from perfrnn.style_classifier import features

    other = None if args.no_independent else independent_classifier(args.seconds, args.data)
    figures = {}
    for style in args.styles.split(","):
        bundle = read_bundle(ROOT / "bundles" / f"{style}.mag")
        scorer = scorer_for(bundle)
        references = scorer.references
        ways = {"raw": (Sampler(bundle, block_events=512,
                                scorer=dataclasses.replace(scorer, references=None)), 1),
                "N=1": (Sampler(bundle, block_events=512, scorer=scorer), 1),
                "N=8": (Sampler(bundle, block_events=512, scorer=scorer), 8)}
        figures[style] = {"real_style_match": references.real_style_match}
        for way, (sampler, candidates) in ways.items():
            started = time.perf_counter()
            made = generate(sampler, args.pieces, args.seconds, candidates)
            took = time.perf_counter() - started
            scores = [scorer.score(sequence) for sequence, _, _ in made]
            heard = [other.predict(features(sequence))[0] for sequence, _, _ in made] \
                if other is not None else []
            figures[style][way] = {
                "style_match": statistics.mean(s.style for s in scores),
                "fidelity": statistics.mean(
                    float(scorer.classifier.predict(features(sequence))[0] == style)
                    for sequence, _, _ in made),
                "fidelity_independent": statistics.mean(h == style for h in heard)
                if heard else None,
                "overall": statistics.mean(s.overall for s in scores),
                "breaking_rule": sum(breaks_rule(s, references) for s in scores),
                "longest_silence_max": max(s.longest_silence for s in scores),
                "longest_one_pitch_max": max(s.longest_one_pitch for s in scores),
                "repairs": sum(repairs for _, _, repairs in made),
                "seconds": took,
            }
            row = figures[style][way]
            print(f"{style:<10} {way:<4} style match {row['style_match']:.3f} (real "
                  f"{references.real_style_match:.3f}) fidelity {row['fidelity']:.2f} "
                  + (f"independent {row['fidelity_independent']:.2f} "
                     if heard else "")
                  + f"overall {row['overall']:.3f} breaking the rule {row['breaking_rule']} "
                  f"(silence max {row['longest_silence_max']:.2f} s, limit "
                  f"{references.silence_p99_seconds:.2f}; one pitch max "
                  f"{row['longest_one_pitch_max']:.1f} s) repairs {row['repairs']} "
                  f"{took:.0f} s", flush=True)
        timings = []
        for sequence, _, _ in made[:30]:
            started = time.perf_counter()
            scorer.score(sequence)
            timings.append(time.perf_counter() - started)
        figures[style]["scorer_ms_median"] = 1000 * statistics.median(timings)
        figures[style]["scorer_ms_max"] = 1000 * max(timings)
        print(f"{style:<10} scorer {figures[style]['scorer_ms_median']:.1f} ms median, "
              f"{figures[style]['scorer_ms_max']:.1f} ms max a {args.seconds:g} s piece",
              flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
