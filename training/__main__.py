"""Command line: `python -m training prepare|train|evaluate|export ...`.

Errors a user can make (missing or empty inputs, nothing usable, unknown
configuration, an output path that is a file) are printed as one line
starting with "error:" and the program exits with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path
from typing import NoReturn

from perfrnn.configs import DEFAULT_CONFIG_ID, DEFAULT_CONFIGS
from perfrnn.console import import_libraries_quietly
from perfrnn.errors import PerfRNNError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

PREPARE_DESCRIPTION = """\
Read MIDI (.mid, .midi), MusicXML (.xml, .musicxml, .mxl) and ABC (.abc) files
from folders (searched recursively), single files and .zip archives; keep the
notes of one kind (pitched or drums); split the files into train and validation
by source file; write TFRecords of NoteSequences, a manifest and a report.
Files that cannot be used are skipped and listed in the report with the reason;
the run fails only if nothing usable is left.
"""

PREPARE_EXAMPLES = """examples:
  python -m training prepare --name piano --input ~/music/piano --out data/piano
  python -m training prepare --name folk --input tunes.abc scores.zip more_scores/
  python -m training prepare --name drums --kind drums --input grooves/ --out data/drums \\
      --validation-fraction 0.2 --seed 7

output (in --out):
  train.tfrecord, validation.tfrecord  one serialized NoteSequence per source file;
                                       augmentation (transpose, stretch) happens in training
  manifest.json                        every file: split or skip reason, warnings, counts
  report.md                            the same for people to read
"""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one `error: ...` line, exit status 2."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    """The `python -m training` parser with its subcommands."""
    from datasets.manifest import CORPUS_KINDS
    from training.prepare import DEFAULT_KIND, DEFAULT_SEED, DEFAULT_VALIDATION_FRACTION

    parser = _Parser(
        prog="python -m training",
        description="Train a style: prepare a corpus of music files, then train a model on it.",
        epilog=PREPARE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    prepare = commands.add_parser(
        "prepare", help="read music files into train/validation TFRecords",
        description=PREPARE_DESCRIPTION,
        epilog=PREPARE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    prepare.add_argument("--name", required=True,
                         help="name of the corpus (style), e.g. piano")
    prepare.add_argument("--input", required=True, nargs="+", action="extend",
                         metavar="PATH", dest="inputs",
                         help="folders (searched recursively), music files or .zip archives; "
                              "may be given more than once")
    prepare.add_argument("--out", default=None, metavar="DIR",
                         help="folder to write (default: data/NAME); an earlier prepared "
                              "corpus there is replaced")
    prepare.add_argument("--config", default=DEFAULT_CONFIG_ID,
                         help=f"model configuration that fixes the event encoding "
                              f"(default: {DEFAULT_CONFIG_ID}; one of: "
                              f"{', '.join(DEFAULT_CONFIGS)})")
    prepare.add_argument("--kind", default=None, metavar="|".join(CORPUS_KINDS),
                         help="pitched: drum notes dropped, pitched parts merged; drums: only "
                              "drum notes (MIDI channel 10) kept; band: every part mapped onto "
                              "the roles drums, bass, harmony, lead (default: band for a "
                              f"multi-track --config, else {DEFAULT_KIND})")
    prepare.add_argument("--validation-fraction", type=float,
                         default=DEFAULT_VALIDATION_FRACTION, metavar="F",
                         help="share of files held out for validation, 0 <= F < 1 "
                              f"(default: {DEFAULT_VALIDATION_FRACTION})")
    prepare.add_argument("--seed", type=int, default=DEFAULT_SEED,
                         help=f"seed of the train/validation split (default: {DEFAULT_SEED})")
    _add_train_parser(commands)
    _add_evaluate_parser(commands)
    _add_export_parser(commands)
    _add_gpu_parsers(commands)
    _add_classify_parser(commands)
    _add_references_parser(commands)
    return parser


TRAIN_DESCRIPTION = """\
Train a Performance RNN on a corpus written by `python -m training prepare`.
Each example is a random window of a randomly stretched and transposed piece
(Magenta's augmentation). Checkpoints, the best weights, TensorBoard logs and
history.json go to --out; running the same command again resumes from the last
checkpoint (--steps is the total to reach). Ctrl-C or SIGTERM saves a
checkpoint and stops.

Several --data folders train a base model: each corpus is a style (its
prepared name), the network is told which style each window comes from, and
one model learns them all. --init-from fine-tunes a base (a run folder or a
.mag bundle with a style input) on one corpus: a new style that starts from
the music the base already knows.
"""

TRAIN_EXAMPLES = """examples:
  python -m training train --data data/piano --out runs/piano
  python -m training train --data data/piano --out runs/small --layers 256 256 --steps 5000
  python -m training train --config metric_band --data data/rock data/jazz data/funk \\
      --out runs/base
  python -m training train --config metric_band --data data/ragtime --out runs/ragtime \\
      --init-from runs/base --steps 300
"""


def _add_train_parser(commands) -> None:
    from training import train as defaults

    train = commands.add_parser(
        "train", help="train a model on a prepared corpus (resumes when run again)",
        description=TRAIN_DESCRIPTION, epilog=TRAIN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("--data", required=True, metavar="DIR", nargs="+",
                       help="prepared corpus folder (from `python -m training prepare`); "
                            "several train a base model with a style input")
    train.add_argument("--grow-from", metavar="RUN_OR_BUNDLE",
                       help="start a new model from an older one of the same shape with "
                            "fewer inputs (e.g. metric_band_song from a metric_band "
                            "base): its weights, the new inputs at zero weight")
    train.add_argument("--init-from", metavar="RUN_OR_BUNDLE",
                       help="fine-tune: start from a base run folder or a .mag bundle with a "
                            "style input, keeping its layer sizes")
    train.add_argument("--out", required=True, metavar="DIR",
                       help="run folder: checkpoints, best weights, logs, history.json")
    train.add_argument("--config", default=None,
                       help=f"model configuration (default: the parent's with --init-from, "
                            f"else {DEFAULT_CONFIG_ID}; one of: "
                            f"{', '.join(DEFAULT_CONFIGS)})")
    train.add_argument("--layers", type=int, nargs="+", default=None, metavar="N",
                       help="LSTM layer sizes (default: the configuration's, 512 512 512)")
    train.add_argument("--steps", type=int, default=defaults.DEFAULT_STEPS,
                       help=f"total training steps to reach (default: {defaults.DEFAULT_STEPS})")
    train.add_argument("--batch-size", type=int, default=None, metavar="B",
                       help="sequences per step (default: the configuration's, 64)")
    train.add_argument("--sequence-length", type=int, default=defaults.DEFAULT_SEQUENCE_LENGTH,
                       metavar="L", help="events per training window "
                                         f"(default: {defaults.DEFAULT_SEQUENCE_LENGTH})")
    train.add_argument("--eval-every", type=int, default=defaults.DEFAULT_EVAL_EVERY, metavar="N",
                       help=f"steps between validations (default: {defaults.DEFAULT_EVAL_EVERY})")
    train.add_argument("--checkpoint-every", type=int, default=defaults.DEFAULT_CHECKPOINT_EVERY,
                       metavar="N", help="steps between checkpoints "
                                         f"(default: {defaults.DEFAULT_CHECKPOINT_EVERY})")
    train.add_argument("--patience", type=int, default=defaults.DEFAULT_PATIENCE, metavar="K",
                       help="stop when validation has not improved for K evaluations; "
                            f"0 never stops (default: {defaults.DEFAULT_PATIENCE})")
    train.add_argument("--seed", type=int, default=defaults.DEFAULT_SEED,
                       help=f"seed of the weights and the data (default: {defaults.DEFAULT_SEED})")
    train.add_argument("--learning-rate", type=float, default=None, metavar="LR",
                       help="Adam's step size (default: a resumed run's own, else the "
                            "configuration's, 1e-3); a resumed run takes a new one and keeps "
                            "it, so lower it when validation stalls")


EVALUATE_DESCRIPTION = """\
Measure a trained run: the held-out negative log-likelihood per event, and
objective metrics (pitch-class entropy, scale consistency, polyphony, note
density, inter-onset intervals, empty beats, drum-pattern consistency) of
generated pieces against held-out real music of the same length, with the
overlapping area of the two distributions. Writes RUN/evaluation/ with
metrics.json, report.md, plots and sample MIDI files.
"""


def _add_evaluate_parser(commands) -> None:
    from training import evaluate as defaults

    evaluate = commands.add_parser(
        "evaluate", help="held-out NLL and objective metrics of generated vs real music",
        description=EVALUATE_DESCRIPTION,
        epilog="example:\n  python -m training evaluate --run runs/piano --samples 40",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    evaluate.add_argument("--run", required=True, metavar="DIR",
                          help="run folder (from `python -m training train`)")
    evaluate.add_argument("--style", default=None,
                          help="for a base model (several corpora): the style to evaluate")
    evaluate.add_argument("--out", default=None, metavar="DIR",
                          help="where to write (default: RUN/evaluation)")
    evaluate.add_argument("--samples", type=int, default=defaults.DEFAULT_SAMPLES, metavar="N",
                          help=f"pieces to generate and compare (default: "
                               f"{defaults.DEFAULT_SAMPLES})")
    evaluate.add_argument("--seconds", type=float, default=defaults.DEFAULT_SECONDS,
                          help=f"length of each piece (default: {defaults.DEFAULT_SECONDS:g})")
    evaluate.add_argument("--temperature", type=float, default=defaults.DEFAULT_TEMPERATURE,
                          help=f"sampling temperature (default: {defaults.DEFAULT_TEMPERATURE:g})")
    evaluate.add_argument("--seed", type=int, default=defaults.DEFAULT_SEED,
                          help=f"seed of the generated pieces (default: {defaults.DEFAULT_SEED})")


EXPORT_DESCRIPTION = """\
Write a run's best weights as a .mag bundle that `python -m perfrnn generate`
and the website load, with a model card: parts and GM programs, types, default
tempo, data sources and licences (from the corpus manifest), training steps,
validation NLL and, after `python -m training evaluate`, its metrics.
"""


def _add_export_parser(commands) -> None:
    export = commands.add_parser(
        "export", help="write a run as a .mag bundle with a model card",
        description=EXPORT_DESCRIPTION,
        epilog="examples:\n  python -m training export --run runs/piano --out bundles/piano.mag\n"
               "  python -m training export --run runs/rock --out bundles/rock.mag --style rock "
               "\\\n      --tracks drums:16:drum,bass:34,guitar:29,lead:30",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    export.add_argument("--run", required=True, metavar="DIR",
                        help="run folder (from `python -m training train`)")
    export.add_argument("--out", required=True, metavar="FILE.mag", help="bundle to write")
    export.add_argument("--style", default=None,
                        help="style name shown to users (default: the corpus name)")
    export.add_argument("--description", default="", help="one line about the style")
    export.add_argument("--tracks", default=None, metavar="NAME:PROGRAM[:drum],...",
                        help="the parts' names and default GM programs, in the model's order "
                             "(default: the configuration's)")
    export.add_argument("--types", default=None, metavar="FILE.json",
                        help='instrument choices: a JSON list of {"name", "program", "track"}')
    export.add_argument("--bpm", type=float, default=None,
                        help="default tempo (default: the corpus' median tempo)")
    export.add_argument("--card-notes", default="", metavar="TEXT",
                        help="extra text for the model card")


def _add_gpu_parsers(commands) -> None:
    from training.pack import DEFAULT_AUGMENTATIONS

    pack = commands.add_parser(
        "pack", help="encode a prepared corpus for training/gpu_train.py (PyTorch, no TF)",
        description="Encode a prepared corpus as int16 event arrays (training pieces "
                    "augmented --augmentations times) for training/gpu_train.py, which trains "
                    "on a GPU machine that has PyTorch but no TensorFlow.",
        epilog="example:\n  python -m training pack --data data/piano --out packs/piano.npz "
               "--config multiconditioned_performance_with_dynamics\n"
               "  python3 training/gpu_train.py --pack packs/piano.npz --out gpu_out\n"
               "  python -m training import-weights --weights gpu_out/piano.npz --out runs/piano",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    pack.add_argument("--data", required=True, metavar="DIR", nargs="+",
                      help="prepared corpus folder; several (metric) pack a base model")
    pack.add_argument("--out", required=True, metavar="FILE.npz", help="pack to write")
    pack.add_argument("--config", default=DEFAULT_CONFIG_ID,
                      help=f"model configuration (default: {DEFAULT_CONFIG_ID})")
    pack.add_argument("--augmentations", type=int, default=DEFAULT_AUGMENTATIONS, metavar="N",
                      help=f"augmented copies of each training piece (default: "
                           f"{DEFAULT_AUGMENTATIONS})")
    pack.add_argument("--seed", type=int, default=0, help="seed of the augmentation")
    weights = commands.add_parser(
        "import-weights", help="turn training/gpu_train.py's weights into a run folder",
        description="Write a run folder (train_config.json, history.json, best/ checkpoint) "
                    "from weights trained by training/gpu_train.py, for evaluate and export.")
    weights.add_argument("--weights", required=True, metavar="FILE.npz")
    weights.add_argument("--out", required=True, metavar="DIR", help="run folder to write")
    weights.add_argument("--data", default=None, metavar="DIR",
                         help="the prepared corpus (default: the path the pack recorded)")


def _add_classify_parser(commands) -> None:
    classify = commands.add_parser(
        "classify", help="genre fidelity: a content-only style classifier on generated music",
        description="Train a style classifier on held-out real music of each style (content "
                    "only: no GM programs, no track names), then label pieces each bundle "
                    "generates; writes fidelity.md with the confusion matrix.",
        epilog="example:\n  python -m training classify --style piano=data/piano:bundles/piano.mag "
               "\\\n      --style drums=data/drums:bundles/drums.mag --pieces 100 --out reports",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    classify.add_argument("--style", action="append", required=True,
                          metavar="NAME=DATA_DIR[:BUNDLE]",
                          help="a style's prepared corpus and, to test it, its bundle")
    classify.add_argument("--reference", action="append", default=[], metavar="NAME=DATA_DIR",
                          help="more real music of a style that no model trained on, all of "
                               "its files (both splits): fresh takes of all the style's groove "
                               "families (new pieces, of the trained grooves too), for a style "
                               "whose held-out families are too few to stand for it")
    classify.add_argument("--pieces", type=int, default=100, help="pieces per bundle")
    classify.add_argument("--seconds", type=float, default=30.0, help="length of each piece")
    classify.add_argument("--temperature", type=float, default=1.0)
    classify.add_argument("--out", default="reports", metavar="DIR",
                          help="where fidelity.md and fidelity.json go (default: reports)")


def _add_references_parser(commands) -> None:
    references = commands.add_parser(
        "references", help="the scoring file: the style classifier and each style's norms",
        description="Train the content-only style classifier on held-out real music of each "
                    "style and measure each style's norms (silences, repetition, polyphony, "
                    "key, beat) on its whole corpus; writes the scoring.json that sits beside "
                    "the bundles and scores every generated piece.",
        epilog="example:\n  python -m training references --style piano=data/piano "
               "--style rock=data/rock \\\n      --reference rock=data/takes-rock "
               "--out bundles/scoring.json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    references.add_argument("--style", action="append", required=True, metavar="NAME=DATA_DIR",
                            help="a style and its prepared corpus (repeat for each style)")
    references.add_argument("--reference", action="append", default=[],
                            metavar="NAME=DATA_DIR",
                            help="more real music of a style that no model trained on, for "
                                 "the classifier (as for classify)")
    references.add_argument("--out", default="bundles/scoring.json", metavar="FILE",
                            help="the file to write (default: bundles/scoring.json)")


def _reference_corpora(items: list[str], corpora: dict) -> dict[str, list[Path]]:
    """--reference NAME=DATA_DIR options, by style, each style one of `corpora`."""
    references: dict[str, list[Path]] = {}
    for name, data in _named_dirs(items, "--reference"):
        if name not in corpora:
            raise PerfRNNError(f"--reference {name}={data}: no --style {name}=... to add it to")
        references.setdefault(name, []).append(data)
    return references


def _named_dirs(items: list[str], option: str) -> list[tuple[str, Path]]:
    """NAME=DATA_DIR pairs of a repeated option."""

    pairs = []
    for item in items:
        name, _, data = item.partition("=")
        if not name or not data:
            raise PerfRNNError(f"{option} {item!r}: write NAME=DATA_DIR")
        pairs.append((name, Path(data)))
    return pairs


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    # The parser imports note-seq, whose audio helper warns about ffmpeg.
    warnings.filterwarnings("ignore", message="Couldn't find ffmpeg")
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_request:  # --help, or a usage error already printed
        return exit_request.code if isinstance(exit_request.code, int) else EXIT_USAGE
    try:
        if args.command == "prepare":
            import_libraries_quietly()
            return _prepare(args)
        if args.command == "train":
            import_libraries_quietly()
            return _train(args)
        if args.command == "evaluate":
            import_libraries_quietly()
            return _evaluate(args)
        if args.command == "export":
            import_libraries_quietly()
            return _export(args)
        if args.command == "classify":
            import_libraries_quietly()
            return _classify(args)
        if args.command == "references":
            import_libraries_quietly()
            return _references(args)
        if args.command == "pack":
            import_libraries_quietly()
            from training.pack import pack_corpus

            meta = pack_corpus(args.data, args.out, args.config, args.augmentations, args.seed)
            print(f"wrote {args.out}: {meta['train_pieces']} training pieces "
                  f"({meta['train_events']:,} events), {meta['validation_pieces']} validation "
                  f"pieces ({meta['validation_events']:,} events)")
            return 0
        if args.command == "import-weights":
            import_libraries_quietly()
            from training.pack import import_weights

            run = import_weights(args.weights, args.out, args.data)
            print(f"wrote run folder {run}; next: python -m training evaluate --run {run}")
            return 0
    except PerfRNNError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        if args.command == "train":
            print("interrupted; checkpoints written so far are kept", file=sys.stderr)
        else:
            print("interrupted; nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_USAGE


def _prepare(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from training.prepare import prepare_corpus
    from training.report import format_summary

    bar = None

    def progress(done: int, total: int, source: str) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc="reading", unit="file", file=sys.stderr,
                       disable=None, leave=False)
        bar.set_postfix_str(source[-40:], refresh=False)
        bar.update(1)

    out_dir = args.out if args.out is not None else os.path.join("data", args.name.strip())
    try:
        result = prepare_corpus(
            args.name, args.inputs, out_dir, config_id=args.config, kind=args.kind,
            validation_fraction=args.validation_fraction, seed=args.seed, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    print(format_summary(result))
    return 0



def _train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from training.train import train_model

    bar = None

    def progress(step: int, total: int, loss: float, rate: float) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, initial=step - 1, desc="training", unit="step",
                       file=sys.stderr, disable=None, dynamic_ncols=True)
        bar.set_postfix_str(f"loss {loss:.3f}, {rate:,.0f} events/s", refresh=False)
        bar.update(1)

    def log(text: str) -> None:
        if bar is not None:
            bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr)

    try:
        result = train_model(
            args.data, args.out, config_id=args.config, layer_sizes=args.layers,
            steps=args.steps, batch_size=args.batch_size, sequence_length=args.sequence_length,
            eval_every=args.eval_every, checkpoint_every=args.checkpoint_every,
            patience=args.patience, seed=args.seed, progress=progress, log=log,
            init_from=args.init_from, learning_rate=args.learning_rate,
            grow_from=args.grow_from)
    finally:
        if bar is not None:
            bar.close()
    nll = ("n/a" if result.best_validation_nll is None
           else f"{result.best_validation_nll:.4f} nats/event")
    print(f"step {result.steps}; best validation NLL {nll}; "
          f"{result.events_per_second:,.0f} events/s; checkpoint {result.checkpoint_path}")
    if result.interrupted:
        print("interrupted; a checkpoint was saved: run the same command to resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from training.evaluate import evaluate_run

    bars: dict = {}

    def progress(stage: str, done: int, total: int) -> None:
        if stage not in bars:
            bars[stage] = tqdm(total=total, desc=stage, file=sys.stderr, disable=None,
                               leave=False)
        bars[stage].update(done - bars[stage].n)

    try:
        result = evaluate_run(args.run, args.out, samples=args.samples, seconds=args.seconds,
                              temperature=args.temperature, seed=args.seed, progress=progress,
                              style=args.style)
    finally:
        for bar in bars.values():
            bar.close()
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    nll = result.validation_nll_per_event
    overlap = result.mean_overlapping_area
    print(f"held-out NLL: {'n/a' if nll is None else f'{nll:.4f}'} nats/event; mean "
          f"overlapping area: {'n/a' if overlap is None else f'{overlap:.2f}'} "
          f"({result.generated_pieces} generated vs {result.real_pieces} real pieces)")
    for name, value in result.overlapping_area.items():
        print(f"  {name:<26} {value:.2f}")
    print(f"report: {result.report_path}")
    return 0


def _export(args: argparse.Namespace) -> int:
    import json

    from training.export import export_bundle, parse_tracks

    types = None
    if args.types is not None:
        try:
            with open(args.types, encoding="utf-8") as stream:
                types = json.load(stream)
        except (OSError, ValueError) as error:
            raise PerfRNNError(f"cannot read --types {args.types} ({error})") from None
        if not isinstance(types, list) or not all(
                isinstance(item, dict) and "name" in item and "program" in item
                for item in types):
            raise PerfRNNError('--types must be a JSON list of {"name": ..., "program": ...}')
    tracks = parse_tracks(args.tracks) if args.tracks else None
    path = export_bundle(args.run, args.out, style=args.style, description=args.description,
                         tracks=tracks, types=types, default_bpm=args.bpm,
                         card_notes=args.card_notes)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB); try: "
          f"python -m perfrnn generate --bundle {path} --seconds 20")
    return 0


def _references(args: argparse.Namespace) -> int:
    from training.classify import build_scoring

    corpora = dict(_named_dirs(args.style, "--style"))
    written = build_scoring(corpora, _reference_corpora(args.reference, corpora), Path(args.out),
                            progress=lambda text: print(text, file=sys.stderr))
    for style, norms in written.items():
        match = ("-" if norms.real_style_match is None
                 else f"{norms.real_style_match:.0%}")
        print(f"{style}: {norms.excerpts} excerpts; silences up to {norms.silence_limit:.2f} s; "
              f"repetition up to {norms.repetition_limit:.1f} s; real music's style match "
              f"{match}")
    print(f"wrote {args.out}")
    return 0


def _classify(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from training.classify import genre_fidelity, write_report

    corpora, bundles = {}, {}
    for item in args.style:
        name, _, rest = item.partition("=")
        data, _, bundle = rest.partition(":")
        if not name or not data:
            raise PerfRNNError(f"--style {item!r}: write NAME=DATA_DIR or NAME=DATA_DIR:BUNDLE")
        corpora[name] = Path(data)
        if bundle:
            bundles[name] = Path(bundle)
    references = _reference_corpora(args.reference, corpora)
    bars: dict = {}

    def progress(style: str, done: int, total: int) -> None:
        if style not in bars:
            bars[style] = tqdm(total=total, desc=style, file=sys.stderr, disable=None,
                               leave=False)
        bars[style].update(done - bars[style].n)

    try:
        result = genre_fidelity(corpora, bundles, pieces=args.pieces, seconds=args.seconds,
                                temperature=args.temperature, progress=progress,
                                references=references)
    finally:
        for bar in bars.values():
            bar.close()
    path = write_report(result, args.out)
    print(path.read_text(encoding="utf-8"))
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
