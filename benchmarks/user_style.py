"""A user style from ten files: how long the quick preset takes on this machine,
and whether the style it makes sounds like the uploads.

    .venv/bin/python benchmarks/user_style.py --parent bundles/rock.mag \\
        --style rock=data/rock --style jazz=data/jazz ... [--files 10] [--pieces 20]

The uploads are a style that no corpus here holds: mma's ragtime grooves
(stdlib/ragtime), ten takes rendered with seed 1 as a user would bring them.
Twelve more takes (seed 2) are held out. The script:

1. trains the style as the train page does (`training.pipeline.train_style`,
   the quick preset, fine-tuned from --parent; prepare, train, evaluate and
   export) and times it;
2. measures the held-out takes' NLL (nats/event) under the parent, at the
   parent style nearest to ragtime, and under the new style;
3. trains the content-only classifier of `python -m training classify` on
   the held-out real music of every --style and the held-out ragtime takes,
   and lets it label --pieces generated 30 s pieces of the new style.

Prints figures; asserts nothing. Needs Debian's mma (`bash
datasets/install_system_packages.sh`).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.filterwarnings("ignore", message="Couldn't find ffmpeg")

FAMILY = "stdlib/ragtime"
STYLE = "ragtime"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parent", required=True, help="the bundle to fine-tune from")
    parser.add_argument("--style", action="append", default=[], metavar="NAME=DATA_DIR",
                        help="a style the classifier knows, by its prepared corpus")
    parser.add_argument("--files", type=int, default=10, help="uploaded takes")
    parser.add_argument("--held-out", type=int, default=12, help="held-out takes")
    parser.add_argument("--pieces", type=int, default=20, help="generated pieces to label")
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--steps", type=int, default=None,
                        help="training steps (default: the preset's)")
    parser.add_argument("--samples", type=int, default=None,
                        help="pieces the evaluation generates (default: the preset's)")
    parser.add_argument("--work", default=None, help="working folder (default: a temporary one)")
    return parser.parse_args()


def render_takes(folder: Path, count: int, seed: int) -> None:
    """`count` takes of the ragtime grooves, as MIDI files in `folder`."""
    from datasets import mma

    grooves = [groove for groove in mma.read_catalogue() if groove.family == FAMILY]
    mains = [groove for groove in grooves if groove.role == "main"]
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        groove = mains[index % len(mains)]
        take = mma.plan_take(groove, grooves, index // len(mains) + 1, seed,
                             mma.GENERAL_PROGRESSIONS)
        (folder / f"{groove.name.lower()}-{seed}-{index}.mid").write_bytes(mma.render_take(take))


def held_out_nll(bundle, sequences, mix) -> float:
    from training.train import ExampleMaker, make_eval_step, validation_nll

    maker = ExampleMaker(bundle.config, 256)
    style = maker.encoding.style_vector(mix) if bundle.config.has_style_input else None
    windows = maker.validation_windows(sequences, style=style)
    return validation_nll(make_eval_step(bundle.model), windows, 16)


def main() -> None:
    args = parse_args()
    from perfrnn.bundle import read_bundle
    from training.classify import genre_fidelity
    from training.pipeline import get_preset, train_style
    from training.prepare import prepare_corpus, read_prepared
    from training.train import ExampleMaker, closest_style

    preset = get_preset(args.preset)
    if args.steps is not None:
        preset = dataclasses.replace(preset, steps=args.steps, tune_steps=args.steps)
    if args.samples is not None:
        preset = dataclasses.replace(preset, samples=args.samples)
    corpora = {}
    for item in args.style:
        name, _, data = item.partition("=")
        corpora[name] = Path(data)
    with tempfile.TemporaryDirectory(prefix="user-style-") as temporary:
        work = Path(args.work or temporary)
        uploads, held_out = work / "uploads", work / "held-out"
        render_takes(uploads, args.files, seed=1)
        render_takes(held_out, args.held_out, seed=2)
        prepare_corpus(STYLE, [held_out], work / "held-out-data", config_id="metric_band",
                       kind="band", validation_fraction=0.9, seed=0)
        sequences = [s for s in read_prepared(work / "held-out-data", "validation") if s.notes]

        started = time.perf_counter()
        result = train_style(STYLE, [uploads], work / "train", work / f"{STYLE}.mag",
                             preset=preset, kind="band", parent=args.parent,
                             log=lambda text: print(f"  {text}", file=sys.stderr))
        seconds = time.perf_counter() - started
        print(f"{args.files} uploaded takes, {args.preset} preset from {args.parent}: "
              f"{seconds / 60:.1f} min (prepare, {result.train.steps} steps, evaluate, export)")

        parent = read_bundle(args.parent)
        tuned = read_bundle(result.bundle_path)
        nearest = (closest_style(parent.model, ExampleMaker(parent.config, 256), sequences)
                   if parent.config.has_style_input else None)
        print(f"held-out NLL of {len(sequences)} {STYLE} takes: parent "
              f"{held_out_nll(parent, sequences, nearest):.3f} (style {nearest}), new style "
              f"{held_out_nll(tuned, sequences, tuned.metadata.style_mix):.3f} nats/event")

        fidelity = genre_fidelity({**corpora, STYLE: work / "held-out-data"},
                                  {STYLE: result.bundle_path}, pieces=args.pieces)
        row = fidelity.matrix[fidelity.styles.index(STYLE)]
        heard = ", ".join(f"{name} {count}" for name, count in zip(fidelity.styles, row)
                          if count)
        accuracy = fidelity.real_cross_validated_accuracy
        print(f"classifier (real music, cross-validated {accuracy:.0%}) hears {args.pieces} "
              f"generated pieces as: {heard}; {STYLE} "
              f"{row[fidelity.styles.index(STYLE)] / max(row.sum(), 1):.0%}")


if __name__ == "__main__":
    main()
