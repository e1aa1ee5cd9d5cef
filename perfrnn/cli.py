"""Command line: `python -m perfrnn generate ...`, `python -m perfrnn score FILE.mid
--bundle B` and `python -m perfrnn info BUNDLE`.

Errors a user can make (missing or corrupt bundle or primer, bad lengths,
temperatures or seeds) are printed as one line starting with "error:" and the
program exits with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from perfrnn.chords import MAX_PROGRESSION_BARS, parse_progression
from perfrnn.console import import_libraries_quietly
from perfrnn.errors import PerfRNNError
from perfrnn.options import (
    FEELS,
    MAX_BARS,
    MAX_BPM,
    MAX_CANDIDATES,
    MAX_SECONDS,
    MAX_SEED,
    MAX_VARIATIONS,
    MIN_BPM,
    QUALITIES,
    REQUEST_FORMS,
    GenerationOptions,
    parse_blend,
    parse_form,
    pitch_histogram_for_key,
)

EXAMPLES = """examples:
  python -m perfrnn generate --bundle bundles/piano.mag --seconds 30 --out out/
  python -m perfrnn generate --bundle bundles/rock.mag --seconds 20 --bpm 110 \\
      --temperature 0.9 --seed 7 --variations 4 --quantize --out out/
  python -m perfrnn generate --bundle bundles/drums.mag --bars 4 --loop --bpm 124 --out out/
  python -m perfrnn generate --bundle bundles/piano.mag --bars 8 --chords "Am F C G" --out out/
  python -m perfrnn generate --bundle bundles/rock.mag --bars 16 --chords "C | G | % | F" \\
      --form loop --out out/
  python -m perfrnn generate --bundle bundles/jazz.mag --bars 32 --key Eb --out out/
  python -m perfrnn generate --bundle bundles/piano.mag --primer melody.mid --seconds 15
  python -m perfrnn generate --bundle bundles/jazz.mag --candidates 8 --variations 2
  python -m perfrnn score my-song.mid --bundle bundles/jazz.mag
  python -m perfrnn info bundles/piano.mag

--chords, and --key for a band, need a style that follows chords ("follows chords"
in `info`): a key-conditioned piano, or a band trained with song inputs.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m perfrnn",
        description="Generate music in a style with a Performance RNN bundle (.mag).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    generate = commands.add_parser(
        "generate", help="write MIDI files of new music",
        description="Generate new music with a bundle and write one MIDI file per variation.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    generate.add_argument("--bundle", required=True, metavar="PATH",
                          help="the style's .mag bundle (ours or Magenta's)")
    generate.add_argument("--seconds", type=float, default=None,
                          help=f"length of new music in seconds, up to {MAX_SECONDS:g} "
                               "(default: 30)")
    generate.add_argument("--bars", type=int, default=None,
                          help=f"length in bars instead of seconds, 1..{MAX_BARS}; the music "
                               "ends exactly on that bar line")
    generate.add_argument("--loop", action="store_true",
                          help="make the last bar lead back into the first, so the piece "
                               "repeats seamlessly in a DAW's loop (needs --bars)")
    generate.add_argument("--bpm", type=float, default=None,
                          help=f"tempo of the MIDI file, {MIN_BPM:g} to {MAX_BPM:g}; a metric "
                               "style (drums and the band styles) plays its beat grid at it, "
                               "others are stretched to it (default: the style's own tempo)")
    generate.add_argument("--feel", choices=FEELS, default="straight",
                          help="straight keeps the grid exact; swing pushes off-beats "
                               "towards the triplet; human nudges timing and velocity "
                               "(default: straight)")
    generate.add_argument("--temperature", type=float, default=1.0,
                          help="creativity, > 0: below 1 is safer, above 1 wilder (default: 1.0)")
    generate.add_argument("--seed", type=int, default=None,
                          help=f"random seed 0..{MAX_SEED}; the same seed and options give "
                               "the same file (default: random, printed afterwards)")
    generate.add_argument("--variations", type=int, default=1,
                          help=f"number of pieces to generate together, 1..{MAX_VARIATIONS} "
                               "(default: 1)")
    generate.add_argument("--candidates", type=int, default=1,
                          help=f"pieces sampled per variation, 1..{MAX_CANDIDATES}; the one that "
                               "best fits the style is kept (the website's quality: "
                               + ", ".join(f"{name} {count}" for name, count in QUALITIES.items())
                               + "; default: 1)")
    generate.add_argument("--no-repair", dest="repair", action="store_false",
                          help="keep silences and stuck passages longer than the style's own "
                               "music has, instead of resampling from just before them")
    generate.add_argument("--primer", metavar="FILE", default=None,
                          help="a MIDI or MusicXML file for the music to continue")
    generate.add_argument("--notes-per-second", type=float, default=None,
                          help="note density, for conditioned bundles")
    _add_song_arguments(generate)
    generate.add_argument("--program", type=int, default=None,
                          help="General MIDI program (0-127) for the main part (the 'type'); "
                               "see `info` for the style's parts")
    generate.add_argument("--part", default=None,
                          help="the part --program applies to, by name (default: the main "
                               "part: the piano, the kit, or a band's harmony part)")
    generate.add_argument("--blend", default=None, metavar="STYLE:WEIGHT,...",
                          help="for a style made from a base model: play a blend of the base's "
                               "styles instead, e.g. rock:70,electronic:30 (see `info`)")
    generate.add_argument("--quantize", action="store_true",
                          help="snap note onsets to a 1/16-note grid so bars line up in a DAW")
    generate.add_argument("--out", default="out", metavar="DIR",
                          help="folder for the MIDI files (default: out/)")

    _add_score_parser(commands)

    info = commands.add_parser("info", help="print a bundle's metadata",
                               description="Print what a bundle holds: style, model, tracks, "
                                           "data provenance and metrics.")
    info.add_argument("bundle", metavar="PATH", help="a .mag bundle")
    info.add_argument("--json", action="store_true", help="print the metadata as JSON")
    return parser


def _add_song_arguments(generate) -> None:
    """The generate command's key, chords and form."""
    generate.add_argument("--key", default=None,
                          help="key: for a key-conditioned style (a piano), a name (C, F#, "
                               "Bbm) or 12 comma-separated pitch-class weights from C to B; "
                               "for a style that follows chords, the key its own "
                               "progressions are played in (G, Em; default: drawn from the "
                               "seed)")
    generate.add_argument("--chords", default=None, metavar='"C G Am F"',
                          help="the chords to follow: one chord per bar, separated by "
                               "spaces, or |-separated bars (\"C | G | %% | F\"); %% repeats "
                               f"the bar before; at most {MAX_PROGRESSION_BARS} bars. The "
                               "progression repeats through each section (default: the "
                               "style's own progressions)")
    generate.add_argument("--form", default=None, metavar="|".join(REQUEST_FORMS),
                          help="song: intro, sections with fills, ending; loop: the main "
                               "section only (default: song; --loop implies loop)")


def _add_score_parser(commands) -> None:
    score = commands.add_parser(
        "score", help="how well MIDI files fit a style",
        description="Score MIDI or MusicXML files against a style, as generated pieces are "
                    "scored: style match (a content-only classifier), on the beat, in key, "
                    "longest silence, stuck repetition and polyphony, each against the "
                    "style's own real music.", epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    score.add_argument("files", nargs="+", metavar="FILE", help="MIDI or MusicXML files")
    score.add_argument("--bundle", required=True, metavar="PATH",
                       help="the style's .mag bundle (its references, and the classifier in "
                            "the scoring.json beside it)")
    score.add_argument("--json", action="store_true", help="print the scores as JSON")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "generate":
            return run_generate(args)
        if args.command == "score":
            return run_score(args)
        return run_info(args)
    except PerfRNNError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _parse_key(text: str | None) -> tuple[float, ...] | None:
    if text is None:
        return None
    if "," in text:
        try:
            weights = tuple(float(part) for part in text.split(","))
        except ValueError:
            raise PerfRNNError(f"--key weights must be numbers, got {text!r}") from None
        if len(weights) != 12:
            raise PerfRNNError(f"--key needs 12 weights (C to B), got {len(weights)}")
        return weights
    return pitch_histogram_for_key(text)


def _song_options(options: GenerationOptions, key: str | None, bundle) -> GenerationOptions:
    """`options` for the loaded style: --key is the key control of a
    key-conditioned style (as parsed into `options`), else the key of the
    style's own progressions for a style that follows chords; --chords is
    refused for a style that does not follow them."""
    encoding, style = bundle.encoding, bundle.metadata.style
    if options.chords and not encoding.reads_song:
        raise PerfRNNError(f"style {style!r} does not follow chords; leave --chords out")
    if key is None or encoding.control_signals or not encoding.reads_song:
        return options  # an unconditioned style refuses the key control when it samples
    if "," in key:
        raise PerfRNNError(f"style {style!r} is not key-conditioned: it takes a key name "
                           "(G, Em) for its progressions, not 12 weights")
    songs = dataclasses.replace(options, pitch_histogram=None, key=key.strip())
    songs.validate()
    return songs


def run_generate(args: argparse.Namespace) -> int:
    if args.bars is not None and args.seconds is not None:
        raise PerfRNNError("give the length once: --bars or --seconds, not both")
    options = GenerationOptions(
        seconds=30.0 if args.seconds is None else args.seconds,
        temperature=args.temperature, seed=args.seed,
        variations=args.variations, candidates=args.candidates, repair=args.repair,
        notes_per_second=args.notes_per_second,
        pitch_histogram=_parse_key(args.key), bpm=args.bpm, bars=args.bars, loop=args.loop,
        blend=parse_blend(args.blend) if args.blend else None,
        chords=None if args.chords is None else parse_progression(args.chords),
        form=None if args.form is None else parse_form(args.form))
    options.validate()  # before the slow imports, so mistakes are reported at once
    if args.program is not None and not 0 <= args.program <= 127:
        raise PerfRNNError(f"--program must be from 0 to 127, got {args.program}")
    import_libraries_quietly()
    from tqdm import tqdm

    from perfrnn.bundle import read_bundle
    from perfrnn.generate import MidiOptions, generate_midi, write_files
    from perfrnn.music_io import read_music_file
    from perfrnn.sampler import Sampler

    bundle = read_bundle(args.bundle)
    options = _song_options(options, args.key, bundle)
    primer = read_music_file(args.primer) if args.primer else None
    sampler = Sampler(bundle)
    with tqdm(total=100, desc=f"generating {bundle.metadata.style}", unit="%",
              file=sys.stderr, disable=None, bar_format="{l_bar}{bar}| {elapsed}<{remaining}") \
            as bar:
        def progress(fraction: float) -> None:
            bar.update(round(100 * fraction) - bar.n)

        generation = generate_midi(
            sampler, options, MidiOptions(quantize=args.quantize, program=args.program,
                                          track=args.part, feel=args.feel),
            primer=primer, progress=progress)
    paths = write_files(generation.files, args.out)
    print(f"seed {generation.seed}: wrote {len(paths)} MIDI file(s)"
          + (" (best first)" if any(piece.score for piece in generation.pieces) else ""))
    for path, piece in zip(paths, generation.pieces):
        print(f"  {path}" + (f"  {piece.score.summary()}" if piece.score else ""))
    if generation.repairs:
        print(f"{generation.repairs} passage(s) resampled: silent or stuck beyond the style's "
              "norm")
    return 0


def run_score(args: argparse.Namespace) -> int:
    import_libraries_quietly()
    from perfrnn.bundle import read_bundle
    from perfrnn.music_io import read_music_file
    from perfrnn.scoring import scorer_for

    bundle = read_bundle(args.bundle)
    scorer = scorer_for(bundle)
    if scorer.neutral:
        print(f"note: style {bundle.metadata.style!r} has no references and the classifier "
              "does not know it; only its measurements are shown", file=sys.stderr)
    scores = {}
    for name in args.files:
        sequence = read_music_file(name)
        if not sequence.notes:
            raise PerfRNNError(f"{name} has no notes to score")
        scores[name] = scorer.score(sequence)
    if args.json:
        print(json.dumps({name: score.to_dict() for name, score in scores.items()}, indent=2))
        return 0
    for name, score in scores.items():
        overall = "-" if score.overall is None else f"{score.overall:.0%}"
        print(f"{name}: fits {bundle.metadata.style} {overall}  ({score.summary()})")
        for label, text in _score_lines(score):
            print(f"  {label:<20} {text}")
    return 0


def _score_lines(score) -> list[tuple[str, str]]:
    """(part, explanation) lines of a Score, for people."""
    def limit(value):
        return ("no limit for this style" if value is None
                else f"the style's norm: up to {value:.1f} s")

    lines = []
    if score.style is not None:
        typical = ("" if score.style_typical is None
                   else f"; its real music scores {score.style_typical:.0%} on average")
        lines.append((f"style {score.style:.0%}", "how sure a classifier that hears only the "
                                                  f"notes is of the style{typical}"))
    if score.on_beat is not None:
        lines.append((f"on the beat {score.on_beat:.0%}",
                      "onsets on the sixteenth or triplet grid"))
    if score.in_key is not None:
        lines.append((f"in key {score.in_key:.0%}", "pitched notes in one major or minor scale"))
    lines.append((f"silence {score.longest_silence:.1f} s",
                  "the longest rest; " + limit(score.silence_limit)))
    lines.append((f"one pitch {score.longest_one_pitch:.1f} s",
                  "one note struck again and again alone; " + limit(score.one_pitch_limit)))
    lines.append((f"repetition {score.longest_repetition:.1f} s",
                  "one short pattern repeated; " + limit(score.repetition_limit)))
    if score.polyphony is not None:
        span = ("no reference" if score.polyphony_range is None else
                "the style's music: {:.1f} to {:.1f}".format(*score.polyphony_range))
        lines.append((f"polyphony {score.polyphony:.1f}", f"notes sounding at once; {span}"))
    return lines


def run_info(args: argparse.Namespace) -> int:
    import_libraries_quietly()
    from perfrnn.bundle import read_bundle

    bundle = read_bundle(args.bundle)
    meta, config = bundle.metadata, bundle.config
    encoding = bundle.encoding
    summary = {
        "file": str(Path(args.bundle)),
        "size_bytes": Path(args.bundle).stat().st_size,
        "style": meta.style,
        "description": meta.description,
        "generator_id": config.id,
        "layers": list(config.rnn_layer_sizes),
        "parameters": sum(int(v.numpy().size) for v in bundle.model.variables_by_name().values()),
        "input_size": encoding.input_size,
        "classes": encoding.num_classes,
        "controls": [signal.name for signal in encoding.control_signals],
        "follows_chords": encoding.reads_song,
        "magenta_compatible": bundle.is_magenta_compatible,
        "default_bpm": meta.default_bpm,
        "time_signature": meta.time_signature,
        "metric": config.is_metric,
        "default_controls": meta.default_controls,
        "max_note_seconds": meta.max_note_seconds,
        "tracks": [track.to_dict() for track in meta.tracks],
        "parts": meta.parts,
        "style_input": list(config.style_names),
        "style_mix": meta.style_mix,
        "types": meta.types,
        "provenance": meta.provenance,
        "metrics": meta.metrics,
        "training": meta.training,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    width = max(len(key) for key in summary)
    for key, value in summary.items():
        if isinstance(value, (list, dict)):
            value = json.dumps(value) if value else "-"
        print(f"{key.replace('_', ' '):<{width}}  {value}")
    if meta.card:
        print()
        print(meta.card)
    return 0
